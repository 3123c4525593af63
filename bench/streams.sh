#!/usr/bin/env bash
# Streams at scale (not a test): STREAMS concurrent streamed Anthropic Messages calls held open,
# first straight to the nginx upstream (the baseline for time to first event), then through AuditGate.
# The upstream sends bench/sse/messages.sse (124 events, 15 KB) at SSE_RATE bytes/s per stream, so
# with the defaults every stream stays open about 30 s and all STREAMS are open at the same time.
# Measured: the gateway's RSS (sampled every 0.5 s, and its peak VmHWM), its CPU, time to first event
# (direct and through the gateway), streams completed; then every completed stream is looked up in
# audit.exchanges (response record, stream = true, the upstream's 120 output tokens) and the store is
# verified with `auditgate-report verify`.
# Usage: bash bench/streams.sh   (env: STREAMS, SSE_RATE, RAMP, MODE)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-2000}
SSE_RATE=${SSE_RATE:-500}
RAMP=${RAMP:-10}
MODE=${MODE:-spool}
source bench/lib.sh

bench_require
log "machine: $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg); open files: $(ulimit -n)"
bench_build
bench_setup
UPSTREAM_PORT=$(free_port)
upstream_start "$UPSTREAM_PORT" "$SSE_RATE"
GATEWAY_PORT=$(free_port)
gateway_config streams "$GATEWAY_PORT" "$MODE" "$UPSTREAM_PORT"
gateway_start streams "$GATEWAY_PORT"
PID=$GATEWAY_PID_streams
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')

log "direct: $STREAMS streams to the upstream, opened over $RAMP s, $SSE_RATE bytes/s each"
python3 bench/streams.py --url "http://127.0.0.1:$UPSTREAM_PORT" --streams "$STREAMS" --ramp "$RAMP" \
    >"$TMP/direct.json" || true
log "direct: $(cat "$TMP/direct.json")"

IDLE_RSS=$(rss_kib "$PID")
log "through AuditGate ($MODE): $STREAMS streams; gateway RSS before: $((IDLE_RSS / 1024)) MiB"
: >"$TMP/rss.txt"
(while kill -0 "$PID" 2>/dev/null; do rss_kib "$PID" >>"$TMP/rss.txt"; sleep 0.5; done) &
SAMPLER=$!
BENCH_PIDS+=($SAMPLER)
c0=$(cpu_ticks "$PID") t0=$(now)
python3 bench/streams.py --url "http://127.0.0.1:$GATEWAY_PORT" --key "$BENCH_KEY" --streams "$STREAMS" \
    --ramp "$RAMP" --ids "$TMP/ids.txt" >"$TMP/gateway.json" || true
c1=$(cpu_ticks "$PID") t1=$(now)
kill "$SAMPLER" 2>/dev/null || true
log "gateway: $(cat "$TMP/gateway.json")"
PEAK_SAMPLED=$(sort -n "$TMP/rss.txt" | tail -1)
HWM=$(hwm_kib "$PID")
CORES=$(awk -v c="$((c1 - c0))" -v k="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", c / k / (b - a) }')

read -r total found pct waited < <(completeness "$TMP/ids.txt" 300)
sql "TRUNCATE public.bench_ids"
psql -qX "$SUPER_URL" -v ON_ERROR_STOP=1 -c "\\copy public.bench_ids FROM '$TMP/ids.txt'"
METERED=$(sql "SELECT count(*) FROM public.bench_ids i JOIN audit.exchanges e USING (request_id)
               WHERE e.stream AND e.outcome = 'ok' AND e.output_tokens = 120 AND e.input_tokens = 25")
VERIFY=$(verify_store) || true

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); v=d
for k in sys.argv[2].split("."): v=v.get(k) if isinstance(v, dict) else None
print(json.dumps(v) if isinstance(v, dict) else v)' "$1" "$2"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo "Started $START_DATE: $STREAMS streams opened over $RAMP s, upstream sending $SSE_RATE bytes/s per stream (15,044-byte stream), AuditGate in $MODE mode."
echo
echo "| path | streams completed | failures | most open at once | time to first event p50 / p90 / p99 / max (ms) | wall (s) |"
echo "|---|---:|---|---:|---:|---:|"
for run in direct gateway; do
    f="$TMP/$run.json"
    echo "| $run | $(field "$f" completed) of $(field "$f" streams) | $(field "$f" failures) | $(field "$f" open_max) | $(field "$f" ttfe_ms.p50) / $(field "$f" ttfe_ms.p90) / $(field "$f" ttfe_ms.p99) / $(field "$f" ttfe_ms.max) | $(field "$f" seconds) |"
done
echo
echo "| gateway RSS before | peak RSS sampled | peak RSS (VmHWM) | CPU while streaming (cores) |"
echo "|---:|---:|---:|---:|"
echo "| $(mib "$IDLE_RSS") MiB | $(mib "$PEAK_SAMPLED") MiB | **$(mib "$HWM") MiB** | $CORES |"
echo
echo "Completeness: $found of $total completed streams are exchanges with a response record ($pct %, store caught up in $waited s);"
echo "$METERED of them recorded as streamed, outcome ok, 25 input and 120 output tokens."
echo "auditgate-report verify: $VERIFY"
[ "$found" = "$total" ] && [ "$total" = "$STREAMS" ] && [ "$METERED" = "$total" ] && [[ $VERIFY == pass* ]]
