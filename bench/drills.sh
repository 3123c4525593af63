#!/usr/bin/env bash
# Fault drills under load (not tests; the fast drills are in the test suite too), each on a fresh
# AuditGate in spool mode with its own chain, under wrk load (CONNECTIONS connections, non-streamed
# Anthropic calls to the nginx fixed-answer upstream), on one PostgreSQL:
#   pg-stop    PostgreSQL stopped (pg_ctl -m fast) for OUTAGE seconds in the middle of the load
#   pg-kill    the PostgreSQL postmaster killed with SIGKILL, restarted 5 s later
#   gw-kill    the gateway killed with SIGKILL, restarted 2 s later on the same spool
#   spool-full PostgreSQL stopped with a 4 MiB spool cap: the spool fills, calls get 503, then
#              PostgreSQL comes back and calls are taken again
# After each drill: every call wrk completed with 200 is an exchange with its response record
# (completeness), no request id is in the store twice, the exchanges left without a response record
# (`incomplete`) are counted, and `auditgate-report verify` must pass. Prints one table.
# Usage: bash bench/drills.sh   (env: DRILLS, CONNECTIONS, OUTAGE)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
DRILLS=${DRILLS:-"pg-stop pg-kill gw-kill spool-full"}
CONNECTIONS=${CONNECTIONS:-8}
OUTAGE=${OUTAGE:-30}
source bench/lib.sh

bench_require
bench_build
bench_setup
UPSTREAM_PORT=$(free_port)
upstream_start "$UPSTREAM_PORT"
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
: >"$TMP/drills.md"
FAILED=0

# load NAME SECONDS: wrk against gateway NAME in the background; sets LOAD_PID.
load() {
    local name=$1 secs=$2 port
    port=$(sed -n 's/^  port: //p' "$TMP/gw-$name/auditgate.yaml")
    BENCH_KEY=$BENCH_KEY BENCH_IDS="$TMP/ids-$name.txt" BENCH_STATUS="$TMP/status-$name.txt" \
        wrk -t2 -c"$CONNECTIONS" -d"${secs}s" --timeout 30s -s bench/wrk/messages.lua \
        "http://127.0.0.1:$port/v1/messages" >"$TMP/wrk-$name.txt" 2>&1 &
    LOAD_PID=$!
}

postmaster_pid() { head -1 "$TMP/pg/postmaster.pid"; }

# pg_kill9: SIGKILL to the postmaster, then waits until its children have gone too.
pg_kill9() {
    local pm children
    pm=$(postmaster_pid)
    children=$(pgrep -P "$pm" || true)
    kill -9 "$pm"
    for _ in $(seq 200); do
        local alive=0 pid
        for pid in $pm $children; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    log "PostgreSQL processes still alive 20 s after SIGKILL"
}

# report NAME WHAT: completeness, duplicates, incomplete exchanges and verify for drill NAME.
report() {
    local name=$1 what=$2 chain="bench-$1" total found pct waited statuses dupes incomplete verify
    read -r total found pct waited < <(completeness "$TMP/ids-$name.txt" 300)
    statuses=$(sort -n "$TMP/status-$name.txt" | awk '{ printf "%s%s×%s", (NR > 1 ? ", " : ""), $2, $1 }')
    dupes=$(sql "SELECT count(*) FROM (SELECT request_id FROM audit.events WHERE chain_id = '$chain' AND kind = 'request'
                 GROUP BY request_id HAVING count(*) > 1) d")
    incomplete=$(sql "SELECT count(*) FROM audit.exchanges WHERE chain_id = '$chain' AND outcome = 'incomplete'")
    verify=$(verify_store) || FAILED=1
    log "$name: answers $statuses; $found of $total answered calls complete in the store; $incomplete incomplete; $dupes duplicates; verify $verify"
    [ "$found" = "$total" ] && [ "$dupes" = 0 ] || FAILED=1
    echo "| $name | $what | $statuses | $total | $found ($pct %) | $waited | $incomplete | $dupes | $verify |" >>"$TMP/drills.md"
}

wait_load() { wait "$LOAD_PID" || { log "wrk failed"; cat "$TMP/wrk-$1.txt" >&2; }; }

for drill in $DRILLS; do
    port=$(free_port)
    case $drill in
    pg-stop)
        gateway_config "$drill" "$port" spool "$UPSTREAM_PORT"
        gateway_start "$drill" "$port"
        log "$drill: $((OUTAGE + 20)) s of load, PostgreSQL stopped from 10 s to $((10 + OUTAGE)) s"
        load "$drill" $((OUTAGE + 20))
        sleep 10
        pg_stop "$TMP/pg"
        sleep "$OUTAGE"
        pg_start "$TMP/pg" "$PGPORT"
        wait_load "$drill"
        report "$drill" "PostgreSQL stopped for $OUTAGE s under load"
        ;;
    pg-kill)
        gateway_config "$drill" "$port" spool "$UPSTREAM_PORT"
        gateway_start "$drill" "$port"
        log "$drill: 25 s of load, PostgreSQL SIGKILLed at 10 s, restarted 5 s later"
        load "$drill" 25
        sleep 10
        pg_kill9
        sleep 5
        pg_start "$TMP/pg" "$PGPORT"
        wait_load "$drill"
        report "$drill" "PostgreSQL SIGKILLed under load, back after 5 s"
        ;;
    gw-kill)
        gateway_config "$drill" "$port" spool "$UPSTREAM_PORT"
        gateway_start "$drill" "$port"
        log "$drill: 25 s of load, gateway SIGKILLed at 10 s, restarted 2 s later"
        load "$drill" 25
        sleep 10
        pid_var="GATEWAY_PID_${drill//-/_}"
        kill -9 "${!pid_var}"
        sleep 2
        gateway_start "$drill" "$port"
        wait_load "$drill"
        report "$drill" "gateway SIGKILLed under load, restarted after 2 s"
        ;;
    spool-full)
        gateway_config "$drill" "$port" spool "$UPSTREAM_PORT" "  spool_max_bytes: 4194304"
        gateway_start "$drill" "$port"
        log "$drill: 40 s of load with a 4 MiB spool, PostgreSQL stopped from 5 s to 25 s"
        load "$drill" 40
        sleep 5
        pg_stop "$TMP/pg"
        sleep 20
        pg_start "$TMP/pg" "$PGPORT"
        wait_load "$drill"
        report "$drill" "4 MiB spool, PostgreSQL stopped 20 s: spool full, then back"
        grep -q '^503 ' "$TMP/status-$drill.txt" || { log "$drill: no 503 at all: the spool never filled"; FAILED=1; }
        ;;
    *) log "unknown drill $drill"; exit 2 ;;
    esac
done

echo "Started $START_DATE; wrk -t2 -c$CONNECTIONS against AuditGate (spool mode), one fresh gateway and chain per drill."
echo
echo "| drill | what happened | answers wrk got (count×status) | calls answered 200 | of them complete in the store | store complete after the load ended (s) | incomplete exchanges | duplicate request ids | auditgate-report verify |"
echo "|---|---|---|---:|---:|---:|---:|---:|---|"
cat "$TMP/drills.md"
exit "$FAILED"
