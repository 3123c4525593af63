#!/usr/bin/env bash
# Journal micro-benchmark (not a test), everything side by side in one run:
#   1. append throughput of `auditgate spool load --no-store`, spool mode (append returns after the
#      group-committed fdatasync) vs async mode (returns at once), for several appender counts;
#   2. shipping a filled spool into PostgreSQL (`auditgate spool flush`) vs loading the same rows
#      with `psql \copy` into a second, freshly migrated database.
# Every measurement runs REPEAT times; the tables give the median run and the min–max range.
# Usage: bash bench/journal.sh   (env: RECORDS, CONCURRENCY, BODY_BYTES, SHIP_RECORDS, REPEAT)
# Progress goes to stderr, the markdown tables to stdout.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-200000}
CONCURRENCY=${CONCURRENCY:-"1 8 32 128"}
BODY_BYTES=${BODY_BYTES:-2048}
SHIP_RECORDS=${SHIP_RECORDS:-200000}
REPEAT=${REPEAT:-3}
COLUMNS_LIST=$(echo chain_id, seq, recorded_at, kind, request_id, user_id, team_id, key_id, end_user, client_ip, \
    api, method, path, provider, model, stream, status_code, outcome, input_tokens, output_tokens, \
    cache_read_tokens, cache_write_tokens, latency_ms, ttfb_ms, redactions, body_sha256, detail, prev_hash, hash)

log() { echo "[$(date +%T)] $*" >&2; }
now() { date +%s.%N; }
# rate COUNT START END: prints "COUNT/(END-START) END-START".
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f %.3f\n", n / (b - a), b - a }'; }
# summary FILE COLUMN: of lines "rate secs ...", the median line by COLUMN's rate, then "min–max" of it.
summary() {
    sort -n -k"$2" "$1" | sed -n "$(((REPEAT + 1) / 2))p"
    sort -n -k"$2" "$1" | awk -v c="$2" 'NR == 1 { lo = $c } { hi = $c } END { print lo "–" hi }'
}

# --- machine and build ------------------------------------------------------------------------
log "machine: $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
df -h /tmp >&2
log "building auditgate (release, --scratch-path .build-bench)"
swift build -c release --product auditgate --scratch-path .build-bench >&2
AUDITGATE="$(swift build -c release --scratch-path .build-bench --show-bin-path)/auditgate"

TMP=$(mktemp -d /tmp/auditgate-bench.XXXXXX)
chmod 755 "$TMP" # the postgres user must reach its data directory inside
source scripts/postgres.sh
cleanup() { pg_stop "$TMP/pg" || true; rm -rf "$TMP"; }
trap cleanup EXIT

# fdatasync calls are counted with a perf tracepoint (near zero overhead) when perf can do it.
PERF=0
if command -v perf >/dev/null && perf stat -e syscalls:sys_enter_fdatasync -o /dev/null true 2>/dev/null; then PERF=1; fi

# --- 1. append throughput ---------------------------------------------------------------------
# load_once MODE APPENDERS BODY: one run on a fresh spool; prints "records/s seconds fdatasyncs".
load_once() {
    local mode=$1 appenders=$2 body=$3 dir="$TMP/spool-$1-$2-$3" out syncs="n/a"
    rm -rf "$dir"
    local cmd=("$AUDITGATE" spool load --no-store --chain-id "bench-$mode-$appenders" --spool-dir "$dir"
        --durability "$mode" --records "$RECORDS" --concurrency "$appenders" --body-bytes "$body")
    [ "$PERF" = 0 ] || cmd=(perf stat -x, -e syscalls:sys_enter_fdatasync -o "$TMP/perf.txt" -- "${cmd[@]}")
    out=$("${cmd[@]}" 2>"$TMP/load.err") || { cat "$TMP/load.err" >&2; return 1; }
    [ "$PERF" = 0 ] || syncs=$(awk -F, '/sys_enter_fdatasync/ { print $1 }' "$TMP/perf.txt")
    rm -rf "$dir"
    out=$(grep '^appended' <<<"$out") || { cat "$TMP/load.err" >&2; return 1; }
    log "$out; fdatasync calls: $syncs"
    # appended N records (F failed) in T s: R records/s (...)
    local failed secs recs
    read -r failed secs recs < <(sed -E 's/^appended [0-9]+ records \(([0-9]+) failed\) in ([0-9.]+) s: ([0-9]+) .*/\1 \2 \3/' <<<"$out")
    [ "$failed" = 0 ] || { log "$failed appends failed"; cat "$TMP/load.err" >&2; return 1; }
    echo "$recs $secs $syncs"
}

# load MODE APPENDERS BODY: REPEAT runs; adds the median run's row to $TMP/append.md.
load() {
    log "append: $1 mode, $2 appenders, $3-byte bodies, $RECORDS records, $REPEAT runs"
    : >"$TMP/runs.txt"
    for ((i = 1; i <= REPEAT; i++)); do load_once "$@" >>"$TMP/runs.txt"; done
    local recs secs syncs range per="n/a"
    { read -r recs secs syncs; read -r range; } < <(summary "$TMP/runs.txt" 1)
    [ "$syncs" = n/a ] || per=$(awk -v n="$RECORDS" -v s="$syncs" 'BEGIN { printf "%.1f", n / s }')
    echo "| $1 | $2 | $3 | $secs | **$recs** | $range | $syncs | $per |" >>"$TMP/append.md"
}

for appenders in $CONCURRENCY; do
    for mode in spool async; do load "$mode" "$appenders" 0; done
done
for mode in spool async; do load "$mode" 32 "$BODY_BYTES"; done

# --- 2. shipping into PostgreSQL vs psql \copy ------------------------------------------------
log "starting PostgreSQL"
pg_start "$TMP/pg"
sql() { psql -h 127.0.0.1 -p "$PGPORT" -U postgres -X -q -t -A -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

# ship_once N: fresh databases shipN and copyN; prints "flush rows/s, seconds, copy rows/s, seconds".
ship_once() {
    local ship=ship$1 copy=copy$1 spool="$TMP/spool-ship" t0 t1 size flush copied shipped
    for db in $ship $copy; do
        sql postgres "create database $db" >/dev/null
        "$AUDITGATE" migrate --database-url "postgresql://postgres@127.0.0.1:$PGPORT/$db" >/dev/null
    done
    rm -rf "$spool"
    "$AUDITGATE" spool load --no-store --chain-id bench-ship --spool-dir "$spool" --durability async \
        --records "$SHIP_RECORDS" --concurrency 32 --body-bytes 0 >/dev/null 2>"$TMP/fill.err"
    size=$(du -sh "$spool" | cut -f1)
    sql postgres checkpoint >/dev/null
    t0=$(now)
    "$AUDITGATE" spool flush --chain-id bench-ship --spool-dir "$spool" --timeout 3600 \
        --database-url "postgresql://auditgate_writer@127.0.0.1:$PGPORT/$ship" >/dev/null 2>"$TMP/flush.err" \
        || { cat "$TMP/flush.err" >&2; return 1; }
    t1=$(now)
    flush=$(rate "$SHIP_RECORDS" "$t0" "$t1")
    shipped=$(sql "$ship" "select count(*) from audit.events")
    [ "$shipped" = "$SHIP_RECORDS" ] || { log "$ship holds $shipped rows, not $SHIP_RECORDS"; return 1; }

    sql "$ship" "\\copy (SELECT $COLUMNS_LIST FROM audit.events ORDER BY seq) TO '$TMP/rows.tsv'"
    sql postgres checkpoint >/dev/null
    t0=$(now)
    sql "$copy" "\\copy audit.events ($COLUMNS_LIST) FROM '$TMP/rows.tsv'"
    t1=$(now)
    copied=$(rate "$SHIP_RECORDS" "$t0" "$t1")
    log "run $1 (rows/s, seconds): spool flush $flush; psql \\copy $copied;" \
        "spool $size, text $(du -h "$TMP/rows.tsv" | cut -f1)"
    echo "$flush $copied"
    rm -rf "$spool" "$TMP/rows.tsv"
    sql postgres "drop database $ship"
    sql postgres "drop database $copy"
}

log "shipping $SHIP_RECORDS records, $REPEAT runs"
: >"$TMP/ship.txt"
for ((i = 1; i <= REPEAT; i++)); do ship_once "$i" >>"$TMP/ship.txt"; done
{ read -r FLUSH_RATE FLUSH_SECS _; read -r FLUSH_RANGE; } < <(summary "$TMP/ship.txt" 1)
{ read -r _ _ COPY_RATE COPY_SECS; read -r COPY_RANGE; } < <(summary "$TMP/ship.txt" 3)
RATIO=$(awk -v a="$FLUSH_RATE" -v b="$COPY_RATE" 'BEGIN { printf "%.2f", a / b }')

# --- report -----------------------------------------------------------------------------------
echo
echo "Append throughput, \`spool load --no-store\`, $RECORDS records, median of $REPEAT runs ($(nproc) cores, $(date +%F)):"
echo
echo "| mode | appenders | body bytes | seconds | records/s | range (records/s) | fdatasync calls | records/fdatasync |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
cat "$TMP/append.md"
echo
echo "Shipping $SHIP_RECORDS records (no bodies) into PostgreSQL 15, median of $REPEAT runs:"
echo
echo "| loader | seconds | rows/s | range (rows/s) | vs psql \\copy |"
echo "|---|---:|---:|---:|---:|"
echo "| \`auditgate spool flush\` (COPY per 2,000 records) | $FLUSH_SECS | **$FLUSH_RATE** | $FLUSH_RANGE | $RATIO |"
echo "| \`psql \\copy audit.events FROM\` (one COPY) | $COPY_SECS | **$COPY_RATE** | $COPY_RANGE | 1.00 |"
