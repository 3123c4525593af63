#!/usr/bin/env bash
# Gateway benchmark (not a test), side by side in one run, everything on this machine:
#   direct  wrk -> nginx fixed-answer upstream
#   nginx   wrk -> nginx plain reverse proxy -> upstream   (the floor any proxy reaches here)
#   spool   wrk -> AuditGate, durability spool  -> upstream (+ its PostgreSQL store)
#   async   wrk -> AuditGate, durability async  -> upstream (+ its PostgreSQL store)
#   spool-1, async-1   the same with AUDITGATE_EVENT_LOOPS=1 (one NIO event loop thread instead of
#           one per core: no hops between loops, the other core left to the journal and PostgreSQL)
# For each target: throughput at CONNECTIONS connections, latency percentiles at 1 connection, and
# the CPU and memory of the proxy's own processes. After every run against AuditGate, every call wrk
# completed is looked up in audit.exchanges (with its response record); the figure is printed. The
# store is verified with `auditgate-report verify` at the end.
# Every measurement runs REPEAT times, the targets interleaved; tables give medians and ranges.
# Usage: bash bench/gateway.sh   (env: DURATION, LATENCY_DURATION, CONNECTIONS, REPEAT, TARGETS,
#        PROFILE=DIR for an extra `perf record` of the spool gateway under load)
# Progress goes to stderr, the markdown tables to stdout.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
LATENCY_DURATION=${LATENCY_DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
REPEAT=${REPEAT:-3}
TARGETS=${TARGETS:-"direct nginx spool async spool-1 async-1"}
PROFILE=${PROFILE:-}
source bench/lib.sh

bench_require
log "machine: $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_build
bench_setup

UPSTREAM_PORT=$(free_port)
upstream_start "$UPSTREAM_PORT"
PROXY_PORT=$(free_port)
proxy_start "$PROXY_PORT" "$UPSTREAM_PORT"
declare -A GATEWAY_PORTS
for target in $TARGETS; do
    case $target in
    spool | async | spool-1 | async-1)
        GATEWAY_PORTS[$target]=$(free_port)
        gateway_config "$target" "${GATEWAY_PORTS[$target]}" "${target%-1}" "$UPSTREAM_PORT"
        if [ "${target#*-}" = 1 ]; then
            AUDITGATE_EVENT_LOOPS=1 gateway_start "$target" "${GATEWAY_PORTS[$target]}"
        else
            gateway_start "$target" "${GATEWAY_PORTS[$target]}"
        fi
        ;;
    direct | nginx) ;;
    *) log "unknown target $target"; exit 2 ;;
    esac
done
PG_PID=$(head -1 "$TMP/pg/postmaster.pid")

port_of() {
    case $1 in
    direct) echo "$UPSTREAM_PORT" ;; nginx) echo "$PROXY_PORT" ;;
    *) echo "${GATEWAY_PORTS[$1]}" ;;
    esac
}
# The processes whose CPU and memory count as the target's own.
pids_of() {
    case $1 in
    direct) proc_tree "$NGINX_PID_upstream" ;; nginx) proc_tree "$NGINX_PID_proxy" ;;
    *) local var="GATEWAY_PID_${1//-/_}"; echo "${!var}" ;;
    esac
}
is_gateway() { [ -n "${GATEWAY_PORTS[$1]:-}" ]; }

# to_us VALUE: wrk's "126.00us" / "1.20ms" / "1.01s" in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) f = 1; else if (v ~ /ms$/) f = 1000; else if (v ~ /m$/) f = 60e6; else f = 1e6
        sub(/[a-z]+$/, "", v); printf "%.0f", v * f }'
}

# run TARGET KIND CONNECTIONS SECONDS REP: one wrk run; appends a line to $TMP/results.txt:
#   target kind rep requests_per_s p50_us p99_us requests cpu_cores cpu_us_per_call pg_cpu_cores
run() {
    local target=$1 kind=$2 conns=$3 secs=$4 rep=$5 threads=2 ids="$TMP/ids-$1-$2-$5.txt" out
    [ "$conns" -ge 2 ] || threads=1
    local pids
    pids=$(pids_of "$target")
    local t0 c0 pg0 t1 c1 pg1
    t0=$(now) c0=$(cpu_ticks $pids) pg0=$(cpu_ticks $(proc_tree "$PG_PID"))
    out=$(BENCH_KEY=$BENCH_KEY BENCH_IDS=$(is_gateway "$target" && echo "$ids" || true) \
        wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s bench/wrk/messages.lua \
        "http://127.0.0.1:$(port_of "$target")/v1/messages")
    t1=$(now) c1=$(cpu_ticks $pids) pg1=$(cpu_ticks $(proc_tree "$PG_PID"))
    echo "$out" >"$TMP/wrk-$target-$kind-$rep.txt"
    local rps requests non2xx errors p50 p99
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    errors=$(sed -n 's/^ *Socket errors: //p' <<<"$out")
    p50=$(to_us "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
    p99=$(to_us "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
    [ -z "$non2xx" ] || log "  $target: $non2xx responses were not 2xx"
    [ -z "$errors" ] || log "  $target: socket errors: $errors"
    local cores per_call pg_cores
    cores=$(awk -v c="$((c1 - c0))" -v k="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", c / k / (b - a) }')
    per_call=$(awk -v c="$((c1 - c0))" -v k="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.0f", n ? c / k / n * 1e6 : 0 }')
    pg_cores=$(awk -v c="$((pg1 - pg0))" -v k="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", c / k / (b - a) }')
    log "  $target $kind #$rep: $rps req/s, p50 ${p50} µs, p99 ${p99} µs, $requests calls, CPU $cores cores ($per_call µs/call), PostgreSQL $pg_cores cores"
    echo "$target $kind $rep $rps $p50 $p99 $requests $cores $per_call $pg_cores" >>"$TMP/results.txt"
    if is_gateway "$target"; then
        local total found pct waited
        read -r total found pct waited < <(completeness "$ids" 300)
        log "  completeness: $found of $total calls wrk completed are exchanges with a response record ($pct %, store caught up in $waited s)"
        echo "| $target | $kind | $rep | $total | $found | $pct % | $waited |" >>"$TMP/completeness.md"
        if [ "$found" -lt "$total" ]; then
            log "  MISSING: $((total - found)) completed calls are not complete exchanges in the store"
            echo "incomplete" >>"$TMP/failures.txt"
        fi
    fi
}

: >"$TMP/results.txt"
: >"$TMP/completeness.md"
: >"$TMP/failures.txt"
log "warm-up: 3 s at $CONNECTIONS connections per target"
for target in $TARGETS; do
    BENCH_KEY=$BENCH_KEY wrk -t2 -c"$CONNECTIONS" -d3s -s bench/wrk/messages.lua \
        "http://127.0.0.1:$(port_of "$target")/v1/messages" >/dev/null
done
sleep 2
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
for ((rep = 1; rep <= REPEAT; rep++)); do
    log "repetition $rep of $REPEAT: throughput, $CONNECTIONS connections, ${DURATION} s each"
    for target in $TARGETS; do run "$target" throughput "$CONNECTIONS" "$DURATION" "$rep"; done
    log "repetition $rep of $REPEAT: latency, 1 connection, ${LATENCY_DURATION} s each"
    for target in $TARGETS; do run "$target" latency 1 "$LATENCY_DURATION" "$rep"; done
done

if [ -n "$PROFILE" ]; then
    mkdir -p "$PROFILE"
    log "profile: perf record -g of the spool gateway for 10 s at $CONNECTIONS connections"
    perf record -F 999 -g -p "$(pids_of spool)" -o "$PROFILE/perf.data" -- sleep 10 >/dev/null 2>&1 &
    perf_pid=$!
    BENCH_KEY=$BENCH_KEY wrk -t2 -c"$CONNECTIONS" -d10s -s bench/wrk/messages.lua \
        "http://127.0.0.1:$(port_of spool)/v1/messages" >/dev/null
    wait "$perf_pid" || true
    perf report -i "$PROFILE/perf.data" --no-children --sort symbol --stdio 2>/dev/null | swift demangle --simplified >"$PROFILE/flat.txt" || true
    perf report -i "$PROFILE/perf.data" --children --sort symbol --stdio 2>/dev/null | swift demangle --simplified >"$PROFILE/children.txt" || true
    perf script -i "$PROFILE/perf.data" -F comm,tid,ip,sym 2>/dev/null | swift demangle --simplified >"$PROFILE/script.txt" || true
    python3 bench/profile_breakdown.py "$PROFILE/script.txt" >"$PROFILE/breakdown.md" || true
fi

# --- figures ----------------------------------------------------------------------------------------
# median TARGET KIND COLUMN: median of a results column (1-based) over the repetitions; also "min–max".
median() {
    awk -v t="$1" -v k="$2" -v c="$3" '$1 == t && $2 == k { print $c }' "$TMP/results.txt" | sort -g |
        awk '{ v[NR] = $1 } END { printf "%s %s–%s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
VERIFY=$(verify_store) || true
log "verify: $VERIFY"

NGINX_RPS=$(median nginx throughput 4 | cut -d' ' -f1)
DIRECT_P50=$(median direct latency 5 | cut -d' ' -f1)
DIRECT_P99=$(median direct latency 6 | cut -d' ' -f1)
echo "Started $START_DATE; $REPEAT repetitions; wrk -t2 -c$CONNECTIONS -d${DURATION}s (throughput), wrk -t1 -c1 -d${LATENCY_DURATION}s (latency)."
echo
echo "### Throughput at $CONNECTIONS connections"
echo
echo "| target | requests/s | range | vs nginx | CPU of its processes (cores) | CPU per call (µs) | PostgreSQL CPU (cores) | RSS after the runs (MiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for target in $TARGETS; do
    read -r rps range < <(median "$target" throughput 4)
    read -r cores _ < <(median "$target" throughput 8)
    read -r per_call _ < <(median "$target" throughput 9)
    read -r pg_cores _ < <(median "$target" throughput 10)
    ratio=$([ -n "${NGINX_RPS:-}" ] && awk -v a="$rps" -v b="$NGINX_RPS" 'BEGIN { printf "%.0f %%", 100 * a / b }' || echo n/a)
    rss=0
    for pid in $(pids_of "$target"); do rss=$((rss + $(rss_kib "$pid"))); done
    echo "| $target | **$rps** | $range | $ratio | $cores | $per_call | $pg_cores | $(awk -v k="$rss" 'BEGIN { printf "%.1f", k / 1024 }') |"
done
echo
echo "### Latency at 1 connection (µs)"
echo
echo "| target | p50 | p50 range | p99 | p99 range | added p50 over direct | added p99 over direct |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for target in $TARGETS; do
    read -r p50 r50 < <(median "$target" latency 5)
    read -r p99 r99 < <(median "$target" latency 6)
    added50=$([ -n "${DIRECT_P50:-}" ] && echo $((p50 - DIRECT_P50)) || echo n/a)
    added99=$([ -n "${DIRECT_P99:-}" ] && echo $((p99 - DIRECT_P99)) || echo n/a)
    echo "| $target | $p50 | $r50 | $p99 | $r99 | **$added50** | $added99 |"
done
echo
echo "### Completeness after every run"
echo
echo "| target | run | repetition | calls wrk completed | complete exchanges in the store | share | store caught up after (s) |"
echo "|---|---|---:|---:|---:|---:|---:|"
cat "$TMP/completeness.md"
echo
for target in $TARGETS; do
    is_gateway "$target" || continue
    echo "Peak RSS (VmHWM) of the $target gateway: $(awk -v k="$(hwm_kib "$(pids_of "$target")")" 'BEGIN { printf "%.1f", k / 1024 }') MiB."
done
echo "auditgate-report verify of the store after all runs: $VERIFY"
[ ! -s "$TMP/failures.txt" ] && [[ $VERIFY == pass* ]]
