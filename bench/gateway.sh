#!/usr/bin/env bash
# Gateway benchmark (not a test), side by side in one run, everything on this machine:
#   direct  wrk -> nginx fixed-answer upstream
#   nginx   wrk -> nginx plain reverse proxy -> upstream   (the floor any proxy reaches here)
#   nio-relay  wrk -> bench/nio-relay, a bare HTTP/1.1 relay on SwiftNIO with no audit work
#           -> upstream   (the floor of the HTTP stack AuditGate is built on)
#   spool   wrk -> AuditGate, durability spool  -> upstream (+ its PostgreSQL store)
#   async   wrk -> AuditGate, durability async  -> upstream (+ its PostgreSQL store)
#   spool-1, async-1   the same with AUDITGATE_EVENT_LOOPS=1 (one NIO event loop thread instead of
#           one per core: no hops between loops, the other core left to the journal and PostgreSQL)
#   spool-base, async-base   the same two modes on the build of BASELINE=REV (a git revision, built
#           in a worktree of its own): the previous build side by side with this one, in one run
# For each target: throughput at CONNECTIONS connections, latency percentiles at 1 connection, and
# the CPU and memory of the proxy's own processes, and where the machine's cores went during each
# throughput run (the proxy, the upstream, PostgreSQL, the rest: wrk and the kernel's own work). After every run against AuditGate, every call wrk
# completed is looked up in audit.exchanges (with its response record); the figure is printed. The
# store is verified with `auditgate-report verify` at the end.
# Every measurement runs REPEAT times, the targets interleaved; tables give medians and ranges.
# Usage: bash bench/gateway.sh   (env: DURATION, LATENCY_DURATION, CONNECTIONS, REPEAT, TARGETS,
#        PROFILE=DIR for an extra `perf record` of the spool gateway under load, BASELINE=REV with
#        the targets spool-base / async-base)
# Progress goes to stderr, the markdown tables to stdout.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20}
LATENCY_DURATION=${LATENCY_DURATION:-15}
CONNECTIONS=${CONNECTIONS:-32}
REPEAT=${REPEAT:-3}
TARGETS=${TARGETS:-"direct nginx nio-relay spool async spool-1 async-1"}
PROFILE=${PROFILE:-}
source bench/lib.sh

bench_require
log "machine: $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
bench_build
[[ " $TARGETS " != *" nio-relay "* ]] || relay_build
if [[ " $TARGETS " == *"-base "* ]]; then
    [ -n "${BASELINE:-}" ] || { log "the targets spool-base and async-base need BASELINE=REV"; exit 2; }
    baseline_build "$BASELINE"
fi
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
    spool-base | async-base)
        GATEWAY_PORTS[$target]=$(free_port)
        gateway_config "$target" "${GATEWAY_PORTS[$target]}" "${target%-base}" "$UPSTREAM_PORT"
        AUDITGATE=$AUDITGATE_BASE gateway_start "$target" "${GATEWAY_PORTS[$target]}"
        ;;
    nio-relay)
        RELAY_PORT=$(free_port)
        "$RELAY" "$RELAY_PORT" "$UPSTREAM_PORT" >"$TMP/nio-relay.log" 2>&1 &
        RELAY_PID=$!
        BENCH_PIDS+=($RELAY_PID)
        wait_port "$RELAY_PORT"
        ;;
    direct | nginx) ;;
    *) log "unknown target $target"; exit 2 ;;
    esac
done
PG_PID=$(head -1 "$TMP/pg/postmaster.pid")

port_of() {
    case $1 in
    direct) echo "$UPSTREAM_PORT" ;; nginx) echo "$PROXY_PORT" ;; nio-relay) echo "$RELAY_PORT" ;;
    *) echo "${GATEWAY_PORTS[$1]}" ;;
    esac
}
# The processes whose CPU and memory count as the target's own.
pids_of() {
    case $1 in
    direct) proc_tree "$NGINX_PID_upstream" ;; nginx) proc_tree "$NGINX_PID_proxy" ;;
    nio-relay) echo "$RELAY_PID" ;;
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
#   upstream_cpu_cores machine_busy_cores
run() {
    local target=$1 kind=$2 conns=$3 secs=$4 rep=$5 threads=2 ids="$TMP/ids-$1-$2-$5.txt" out
    [ "$conns" -ge 2 ] || threads=1
    local pids
    pids=$(pids_of "$target")
    local t0 c0 pg0 up0 m0 t1 c1 pg1 up1 m1 upstream_pids=""
    [ "$target" = direct ] || upstream_pids=$(proc_tree "$NGINX_PID_upstream")
    t0=$(now) c0=$(cpu_ticks $pids) pg0=$(pg_ticks "$PG_PID") up0=$(cpu_ticks $upstream_pids) m0=$(machine_ticks)
    out=$(BENCH_KEY=$BENCH_KEY BENCH_IDS=$(is_gateway "$target" && echo "$ids" || true) \
        wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s bench/wrk/messages.lua \
        "http://127.0.0.1:$(port_of "$target")/v1/messages")
    t1=$(now) c1=$(cpu_ticks $pids) pg1=$(pg_ticks "$PG_PID") up1=$(cpu_ticks $upstream_pids) m1=$(machine_ticks)
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
    local cores per_call pg_cores up_cores machine_cores
    # cores TICKS: CPU ticks over the run, as cores busy on average.
    cores() { awk -v c="$1" -v k="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", c / k / (b - a) }'; }
    cores=$(cores $((c1 - c0)))
    per_call=$(awk -v c="$((c1 - c0))" -v k="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.0f", n ? c / k / n * 1e6 : 0 }')
    pg_cores=$(cores $((pg1 - pg0))) up_cores=$(cores $((up1 - up0))) machine_cores=$(cores $((m1 - m0)))
    log "  $target $kind #$rep: $rps req/s, p50 ${p50} µs, p99 ${p99} µs, $requests calls, CPU $cores cores ($per_call µs/call), PostgreSQL $pg_cores cores, upstream $up_cores cores, machine $machine_cores cores busy"
    echo "$target $kind $rep $rps $p50 $p99 $requests $cores $per_call $pg_cores $up_cores $machine_cores" >>"$TMP/results.txt"
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

# --- the journal's and the store's own cost per record, at their best ---------------------------------
# STORE_RECORDS records (no bodies) spooled with `spool load --no-store` (async, 32 appenders), then
# shipped into the same store in one go with `spool flush` (COPY per 2,000 records): the CPU per
# record of sealing and spooling, of shipping, and of PostgreSQL, without any HTTP. Bulk shipping is
# the cheapest way rows reach audit.events, so these are the least an audited call's two records cost.
STORE_RECORDS=${STORE_RECORDS:-100000}
log "store floor: $STORE_RECORDS records spooled, then shipped with spool flush"
# `times` in the command substitution prints the CPU of that subshell's children on its last line.
load_times=$(
    "$AUDITGATE" spool load --no-store --chain-id bench-store-floor --spool-dir "$TMP/store-floor" --durability async \
        --records "$STORE_RECORDS" --concurrency 32 --body-bytes 0 >/dev/null 2>"$TMP/store-floor.err"
    times
)
pg0=$(pg_ticks "$PG_PID") t0=$(now)
flush_times=$(
    "$AUDITGATE" spool flush --chain-id bench-store-floor --spool-dir "$TMP/store-floor" --timeout 600 \
        --database-url "$WRITER_URL" >/dev/null 2>>"$TMP/store-floor.err"
    times
)
pg1=$(pg_ticks "$PG_PID") t1=$(now)
# per_record TIMES: the children's user and system time ("0m1.234s 0m0.567s", the last line of
# `times`) in µs per record.
per_record() {
    tail -1 <<<"$1" | awk -v n="$STORE_RECORDS" '{ u = $1; s = $2; gsub(/s$/, "", u); gsub(/s$/, "", s)
        split(u, a, "m"); split(s, b, "m"); printf "%.1f", (a[1] * 60 + a[2] + b[1] * 60 + b[2]) / n * 1e6 }'
}
APPEND_US=$(per_record "$load_times")
SHIPPER_US=$(per_record "$flush_times")
STORE_US=$(awk -v c="$((pg1 - pg0))" -v k="$CLK_TCK" -v n="$STORE_RECORDS" 'BEGIN { printf "%.1f", c / k / n * 1e6 }')
STORE_RATE=$(awk -v n="$STORE_RECORDS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
log "store floor: journal append $APPEND_US µs per record; shipping $STORE_RATE records/s, PostgreSQL $STORE_US µs per record, the shipper process $SHIPPER_US µs per record"

# --- figures ----------------------------------------------------------------------------------------
# median_of: the median of the numbers on stdin, then "min–max"; nothing for no numbers.
median_of() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%s %s–%s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
# median TARGET KIND COLUMN: median of a results column (1-based) over the repetitions; also "min–max".
median() { awk -v t="$1" -v k="$2" -v c="$3" '$1 == t && $2 == k { print $c }' "$TMP/results.txt" | median_of; }
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
echo "### Where the machine's $(nproc) cores went at $CONNECTIONS connections (µs of CPU per call)"
echo
echo "Per throughput run, each part's CPU time divided by the calls wrk completed; medians over the"
echo "repetitions. *Rest* is the machine's busy time (/proc/stat: user, nice, system, irq, softirq)"
echo "less the other three: wrk, the kernel's interrupt work, anything else running. *Budget at N %* is"
echo "what a proxy could spend per call and still reach N % of nginx's median throughput, if the"
echo "upstream and PostgreSQL cost what they cost in this target's runs and wrk and the rest cost what"
echo "they cost in nginx's runs (wrk records no request ids there, so that rest is the smaller):"
echo "$(nproc) cores × 10⁶ / (N % × nginx's calls/s) − upstream − PostgreSQL − rest."
echo
echo "| target | calls/s | proxy | upstream | PostgreSQL | rest | machine busy (cores) | budget at 50 % | budget at 70 % |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
# per-run shares: target rps proxy_us upstream_us pg_us rest_us machine_cores
awk '$2 == "throughput" && $4 > 0 {
        proxy = $8 / $4 * 1e6; up = $11 / $4 * 1e6; pg = $10 / $4 * 1e6; m = $12 / $4 * 1e6
        printf "%s %s %.1f %.1f %.1f %.1f %s\n", $1, $4, proxy, up, pg, m - proxy - up - pg, $12 }' \
    "$TMP/results.txt" >"$TMP/shares.txt"
# share_median TARGET COLUMN: the median of a column of shares.txt over the target's runs.
share_median() { awk -v t="$1" -v c="$2" '$1 == t { print $c }' "$TMP/shares.txt" | median_of | cut -d' ' -f1; }
NGINX_REST=$(share_median nginx 6)
for target in $TARGETS; do
    rps=$(share_median "$target" 2) proxy=$(share_median "$target" 3) up=$(share_median "$target" 4)
    pg=$(share_median "$target" 5) rest=$(share_median "$target" 6) busy=$(share_median "$target" 7)
    budget() {
        [ "$target" != direct ] && [ -n "${NGINX_RPS:-}" ] && [ -n "$NGINX_REST" ] || { echo n/a; return; }
        awk -v n="$(nproc)" -v f="$1" -v r="$NGINX_RPS" -v u="$up" -v p="$pg" -v w="$NGINX_REST" \
            'BEGIN { printf "%.0f", n * 1e6 / (f * r) - u - p - w }'
    }
    printf '| %s | %s | %.0f | %.0f | %.0f | %.0f | %s | %s | %s |\n' "$target" "$rps" "$proxy" "$up" "$pg" "$rest" "$busy" "$(budget 0.5)" "$(budget 0.7)"
done
echo
echo "**The journal's and the store's cost per record at their best** (\`spool load --no-store\` of"
echo "$STORE_RECORDS records without bodies by 32 appenders, \`async\`, then \`spool flush\` of them into the"
echo "same store, COPY per 2,000 records), in µs of CPU per record: sealing and spooling (the whole"
echo "\`spool load\` process) **$APPEND_US**; shipping (the whole \`spool flush\` process) **$SHIPPER_US**;"
echo "PostgreSQL **$STORE_US** ($STORE_RATE records/s)."
echo
RELAY_US=$(share_median nio-relay 3)
NGINX_UP=$(share_median nginx 4)
if [ -n "$RELAY_US" ] && [ -n "${NGINX_RPS:-}" ]; then
    # ceiling EXTRA_US_PER_CALL: calls/s and % of nginx's if a call costs the machine the floor plus EXTRA.
    ceiling() {
        awk -v n="$(nproc)" -v p="$RELAY_US" -v u="$NGINX_UP" -v w="$NGINX_REST" -v x="$1" -v r="$NGINX_RPS" \
            'BEGIN { c = n * 1e6 / (p + u + w + x); printf "**%.0f calls/s, %.0f %% of nginx'"'"'s**", c, 100 * c / r }'
    }
    echo "**Ceilings of an audited call on this machine**, each part at its measured best. The floor of"
    echo "every call is a proxy that costs what nio-relay costs ($RELAY_US µs, no audit work at all), and the"
    echo "upstream and the rest as in nginx's runs ($NGINX_UP and $NGINX_REST µs). A call has two records."
    echo
    echo "- The floor and PostgreSQL's cost of the two rows (2 × $STORE_US µs): $(ceiling "$(awk -v s="$STORE_US" 'BEGIN { print 2 * s }')")."
    echo "- Also sealing, spooling and shipping the two records (2 × ($APPEND_US + $SHIPPER_US) µs):"
    echo "  $(ceiling "$(awk -v s="$STORE_US" -v a="$APPEND_US" -v h="$SHIPPER_US" 'BEGIN { print 2 * (s + a + h) }')")."
    echo
fi
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
