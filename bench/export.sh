#!/usr/bin/env bash
# Export benchmark (not a test), everything side by side in one run, on one store of EXCHANGES
# exchanges (2 × EXCHANGES journal records: a request and a response each):
#   1. `auditgate-report export` of the whole store, timed wall-clock, with its peak RSS
#      (`/usr/bin/time -v`), against `psql \copy (SELECT …) TO … CSV HEADER` of the same rows, both as
#      auditgate_reader: once with the export's own query (same columns, timestamps formatted the same
#      way, same ORDER BY) and once as a plain SELECT of the columns (no formatting, no ORDER BY);
#   2. the parts of the export timed alone, for an approximate breakdown: the chain verification over
#      the period (`auditgate-report verify --from --to`), the summary query (`auditgate-report summary`,
#      which runs the export's summary SQL) and the chain-heads query of integrity.json (psql);
#   3. the same export and psql copy for a period holding only the first SMALL_EXCHANGES exchanges of
#      the same store, to show that the export's peak memory does not grow with the period.
# Every measurement runs REPEAT times; the tables give the median run and the min–max range.
# Usage: bash bench/export.sh   (env: EXCHANGES, SMALL_EXCHANGES, CONCURRENCY, REPEAT, PROFILE)
# PostgreSQL runs with its default settings; PGOPTIONS (e.g. '-c jit=off') reaches every client session.
# PROFILE=DIR additionally records one whole-store export with `perf record -g` into DIR/perf.data and
# writes the flat and caller profiles to DIR (not timed; off by default).
# Progress goes to stderr, the markdown tables to stdout.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
EXCHANGES=${EXCHANGES:-1000000}
SMALL_EXCHANGES=${SMALL_EXCHANGES:-100000}
CONCURRENCY=${CONCURRENCY:-8}
REPEAT=${REPEAT:-3}
PROFILE=${PROFILE:-}
RECORDS=$((2 * EXCHANGES))
FROM=2000-01-01
TO=2100-01-01
# The export's columns, in its order (PackageExporter.exchangeColumns, without bodies).
COLUMNS=(request_id started_at finished_at chain_id request_seq response_seq user_id team_id key_id end_user
    client_ip api method path provider model stream status_code outcome input_tokens output_tokens
    cache_read_tokens cache_write_tokens latency_ms ttfb_ms redactions)
PLAIN_LIST=$(IFS=,; echo "${COLUMNS[*]}")
# As the export selects them: timestamps through to_char (its UTC format), everything else as is.
TS_FORMAT='YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'
EXPORT_LIST=$(for c in "${COLUMNS[@]}"; do
    case $c in started_at | finished_at) echo "to_char($c, '$TS_FORMAT')" ;; *) echo "$c" ;; esac
done | paste -sd,)

log() { echo "[$(date +%T)] $*" >&2; }
now() { date +%s.%N; }
load1() { cut -d' ' -f1 /proc/loadavg; }
# median and range of the numbers in FILE (one per line): prints "median min–max".
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END { printf "%s %s–%s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}
fmt_rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# --- machine and build ------------------------------------------------------------------------
log "machine: $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
df -h /tmp >&2
[ -x /usr/bin/time ] || { log "/usr/bin/time is missing: apt-get install -y time"; exit 1; }
log "building auditgate and auditgate-report (release, --scratch-path .build-bench)"
swift build -c release --product auditgate --scratch-path .build-bench >&2
swift build -c release --product auditgate-report --scratch-path .build-bench >&2
BIN="$(swift build -c release --scratch-path .build-bench --show-bin-path)"
AUDITGATE="$BIN/auditgate"
REPORT="$BIN/auditgate-report"

TMP=$(mktemp -d /tmp/auditgate-bench.XXXXXX)
chmod 755 "$TMP" # the postgres user must reach its data directory inside
source scripts/postgres.sh
cleanup() { pg_stop "$TMP/pg" || true; rm -rf "$TMP"; }
trap cleanup EXIT
: >"$TMP/load.txt"

# Sign the packages when this build has `keygen` (as an auditor would); otherwise export unsigned.
SIGN=()
SIGNED="unsigned (this build has no \`auditgate-report keygen\`)"
if "$REPORT" keygen --help >/dev/null 2>&1; then
    "$REPORT" keygen --out "$TMP/signing.pem" >/dev/null
    SIGN=(--signing-key "$TMP/signing.pem")
    SIGNED="signed (Ed25519 key from \`auditgate-report keygen\`)"
fi
log "packages: $SIGNED"

# --- the store --------------------------------------------------------------------------------
log "starting PostgreSQL"
pg_start "$TMP/pg"
DB=bench
READER="postgresql://auditgate_reader@127.0.0.1:$PGPORT/$DB"
sql() { PGTZ=UTC psql -h 127.0.0.1 -p "$PGPORT" -U postgres -X -q -t -A -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
# reader ARGS...: psql as auditgate_reader, in UTC like the export.
reader() { PGTZ=UTC psql -h 127.0.0.1 -p "$PGPORT" -U auditgate_reader -X -q -t -A -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

psql -h 127.0.0.1 -p "$PGPORT" -U postgres -X -q -v ON_ERROR_STOP=1 -d postgres -c "create database $DB"
"$AUDITGATE" migrate --database-url "postgresql://postgres@127.0.0.1:$PGPORT/$DB" >/dev/null
log "filling a spool with $RECORDS records ($EXCHANGES exchanges), $CONCURRENCY appenders, async"
t0=$(now)
"$AUDITGATE" spool load --no-store --durability async --chain-id bench-export --spool-dir "$TMP/spool" \
    --records "$RECORDS" --concurrency "$CONCURRENCY" >"$TMP/fill.out" 2>"$TMP/fill.err" \
    || { cat "$TMP/fill.err" >&2; exit 1; }
t1=$(now)
log "$(grep '^appended' "$TMP/fill.out"); spool $(du -sh "$TMP/spool" | cut -f1)"
"$AUDITGATE" spool flush --chain-id bench-export --spool-dir "$TMP/spool" --timeout 3600 \
    --database-url "postgresql://auditgate_writer@127.0.0.1:$PGPORT/$DB" >/dev/null 2>"$TMP/flush.err" \
    || { cat "$TMP/flush.err" >&2; exit 1; }
t2=$(now)
rm -rf "$TMP/spool"
sql "VACUUM ANALYZE"
t3=$(now)
FILL=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN { printf "load %.0f s, flush %.0f s, VACUUM ANALYZE %.0f s", b - a, c - b, d - c }')
log "filled: $FILL"
STORED=$(sql "SELECT count(*) FROM audit.exchanges")
[ "$STORED" = "$EXCHANGES" ] || { log "audit.exchanges holds $STORED rows, not $EXCHANGES"; exit 1; }
DBSIZE=$(sql "SELECT pg_size_pretty(pg_database_size('$DB'))")
log "audit.exchanges: $STORED rows; database $DBSIZE"
# What the readers' sessions run with (PGOPTIONS, if set, reaches every libpq client: psql and the tool).
SETTINGS=$(reader -c "SELECT 'jit=' || current_setting('jit') || ', cursor_tuple_fraction=' || current_setting('cursor_tuple_fraction') || ', work_mem=' || current_setting('work_mem')")
log "readers' settings: $SETTINGS${PGOPTIONS:+ (PGOPTIONS=$PGOPTIONS)}"

# The small period: from FROM to just after the SMALL_EXCHANGES-th exchange (millisecond bounds, as
# the export reads --to), so it holds SMALL_EXCHANGES exchanges, give or take the few sharing that ms.
SMALL_TO=$(sql "SELECT to_char(date_trunc('milliseconds', started_at) + interval '1 millisecond', '$TS_FORMAT') FROM audit.exchanges ORDER BY started_at OFFSET $((SMALL_EXCHANGES - 1)) LIMIT 1")
SMALL=$(sql "SELECT count(*) FROM audit.exchanges WHERE started_at >= '$FROM' AND started_at < '$SMALL_TO'")
log "small period: [$FROM, $SMALL_TO) holds $SMALL exchanges"

# --- timed steps ------------------------------------------------------------------------------
# step NAME CMD...: runs CMD (a program: under /usr/bin/time -v; a shell function: as is), timed
# wall-clock; appends its seconds to $TMP/NAME.secs, a program's peak RSS (KiB) to $TMP/NAME.rss, and
# the 1-minute load average at its start to $TMP/load.txt.
step() {
    local name=$1 t0 t1 rss=""
    shift
    load1 >>"$TMP/load.txt"
    t0=$(now)
    if [ "$(type -t "$1")" = function ]; then
        "$@" >"$TMP/step.out" 2>"$TMP/step.err" \
            || { log "$name failed:"; cat "$TMP/step.out" "$TMP/step.err" >&2; exit 1; }
    else
        /usr/bin/time -v -o "$TMP/time.txt" "$@" >"$TMP/step.out" 2>"$TMP/step.err" \
            || { log "$name failed:"; cat "$TMP/step.out" "$TMP/step.err" "$TMP/time.txt" >&2; exit 1; }
        rss=$(sed -n 's/^\tMaximum resident set size (kbytes): //p' "$TMP/time.txt")
        echo "$rss" >>"$TMP/$name.rss"
    fi
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$TMP/$name.secs"
    log "$name: $(tail -n 1 "$TMP/$name.secs") s${rss:+, peak RSS $rss KiB}"
}
copy_sorted() { # copy_sorted TO FILE: the export's query, as one COPY
    reader -c "\\copy (SELECT $EXPORT_LIST FROM audit.exchanges WHERE started_at >= '$FROM' AND started_at < '$1' ORDER BY started_at, chain_id, request_seq) TO '$2' CSV HEADER"
}
copy_plain() { # copy_plain TO FILE: the columns as they are, in no particular order
    reader -c "\\copy (SELECT $PLAIN_LIST FROM audit.exchanges WHERE started_at >= '$FROM' AND started_at < '$1') TO '$2' CSV HEADER"
}
HEADS_SQL="SELECT DISTINCT ON (chain_id) chain_id, seq, hash FROM audit.events WHERE recorded_at < '$TO' ORDER BY chain_id, seq DESC"
# export_args TO DIR: the export command for the package of [FROM, TO) into DIR, in the array EXPORT.
export_args() { EXPORT=("$REPORT" export --database "$READER" --from "$FROM" --to "$1" --out "$2" "${SIGN[@]}"); }

sizes() { # sizes DIR NAME: "file bytes" lines of a package into $TMP/NAME.sizes (first run only)
    [ -f "$TMP/$2.sizes" ] || (cd "$1" && for f in *; do echo "$f $(stat -c %s "$f")"; done) >"$TMP/$2.sizes"
}

for ((i = 1; i <= REPEAT; i++)); do
    log "run $i of $REPEAT ($(cut -d' ' -f1-3 /proc/loadavg))"
    sql "CHECKPOINT" >/dev/null
    step copy_plain copy_plain "$TO" "$TMP/plain.csv"
    step copy_sorted copy_sorted "$TO" "$TMP/sorted.csv"
    export_args "$TO" "$TMP/pkg"
    step export "${EXPORT[@]}"
    grep -q "^package .*: $EXCHANGES exchanges" "$TMP/step.out" || { cat "$TMP/step.out" >&2; exit 1; }
    if [ "$i" = 1 ]; then
        cat "$TMP/step.out" >&2
        sizes "$TMP/pkg" big
        stat -c %s "$TMP/plain.csv" >"$TMP/plain.size"
        stat -c %s "$TMP/sorted.csv" >"$TMP/sorted.size"
        # Same rows? The export writes CRLF line ends and guards formula-like cells; psql writes LF and
        # names the to_char columns to_char in its header, so the header line is left out.
        if cmp -s <(tail -n +2 "$TMP/pkg/exchanges.csv" | tr -d '\r') <(tail -n +2 "$TMP/sorted.csv"); then
            SAME="identical"
        else
            SAME="DIFFERENT"
            diff <(tail -n +2 "$TMP/pkg/exchanges.csv" | tr -d '\r') <(tail -n +2 "$TMP/sorted.csv") | head -n 6 >&2 || true
        fi
        log "export's exchanges.csv vs psql's CSV of the same query, header and CRLF aside: $SAME"
    fi
    rm -rf "$TMP/pkg" "$TMP/plain.csv" "$TMP/sorted.csv"
    step verify "$REPORT" verify --database "$READER" --from "$FROM" --to "$TO"
    step summary "$REPORT" summary --database "$READER" --from "$FROM" --to "$TO"
    step heads reader -o /dev/null -c "$HEADS_SQL"
    step copy_sorted_small copy_sorted "$SMALL_TO" "$TMP/sorted.csv"
    export_args "$SMALL_TO" "$TMP/pkg"
    step export_small "${EXPORT[@]}"
    # The export reads --to at millisecond precision, as written; it must find the same exchanges.
    grep -q "^package .*: $SMALL exchanges" "$TMP/step.out" || { cat "$TMP/step.out" >&2; exit 1; }
    sizes "$TMP/pkg" small
    rm -rf "$TMP/pkg" "$TMP/sorted.csv"
done

if [ -n "$PROFILE" ]; then
    mkdir -p "$PROFILE"
    log "profiling one whole-store export with perf record -g into $PROFILE/perf.data"
    export_args "$TO" "$TMP/pkg"
    perf record -g -o "$PROFILE/perf.data" -- "${EXPORT[@]}" >/dev/null 2>"$TMP/perf.err" || { cat "$TMP/perf.err" >&2; exit 1; }
    perf report -i "$PROFILE/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
        | swift demangle --simplified >"$PROFILE/flat.txt"
    perf report -i "$PROFILE/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
        | swift demangle --simplified >"$PROFILE/children.txt"
    rm -rf "$TMP/pkg"
    log "profile written to $PROFILE/flat.txt and $PROFILE/children.txt"
fi

# --- report -----------------------------------------------------------------------------------
med() { stats "$TMP/$1.secs" | cut -d' ' -f1; }
range() { stats "$TMP/$1.secs" | cut -d' ' -f2; }
rss() { stats "$TMP/$1.rss" | awk '{ printf "%.1f MiB", $1 / 1024 }'; }
row() { # row LABEL NAME ROWS REFERENCE RSS?
    local secs ratio
    secs=$(med "$2")
    ratio=$(awk -v a="$secs" -v b="$(med "$4")" 'BEGIN { printf "%.2f", a / b }')
    echo "| $1 | $3 | $secs | $(range "$2") | **$(fmt_rate "$3" "$secs")** | $ratio | ${5:-} |"
}
LOADS=$(sort -g "$TMP/load.txt" | awk '{ v[NR] = $1 } END { printf "%s–%s (median %s)", v[1], v[NR], v[int((NR + 1) / 2)] }')
echo
echo "Export of $EXCHANGES exchanges ($RECORDS journal records), PostgreSQL 15, median of $REPEAT runs" \
    "($(nproc) cores, 1-min load $LOADS, $(date +%F)); packages $SIGNED:"
echo
echo "| step | exchanges | seconds | range (s) | exchanges/s | time vs the reference row | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row "\`auditgate-report export\` (whole store)" export "$EXCHANGES" copy_plain "$(rss export)"
row "\`psql \\copy\` of the export's query (to_char, ORDER BY), CSV" copy_sorted "$EXCHANGES" copy_plain
row "\`psql \\copy\` of the plain columns (no ORDER BY), CSV — reference" copy_plain "$EXCHANGES" copy_plain
echo "| export ÷ psql of the export's query | | $(awk -v a="$(med export)" -v b="$(med copy_sorted)" 'BEGIN { printf "%.2f", a / b }') | | | | |"
row "\`auditgate-report export\` (first $SMALL exchanges)" export_small "$SMALL" copy_sorted_small "$(rss export_small)"
row "\`psql \\copy\` of the export's query (first $SMALL exchanges) — reference" copy_sorted_small "$SMALL" copy_sorted_small
echo
echo "Parts of the whole-store export, each timed alone (process start and connecting included):"
echo
echo "| part | seconds | range (s) | share of the export |"
echo "|---|---:|---:|---:|"
EXPORT_S=$(med export)
part() { echo "| $1 | $2 | ${3:-} | $(awk -v a="$2" -v b="$EXPORT_S" 'BEGIN { printf "%.0f %%", 100 * a / b }') |"; }
part "chain verification over the period (\`auditgate-report verify --from --to\`, $RECORDS records)" "$(med verify)" "$(range verify)"
part "summary query (\`auditgate-report summary\`)" "$(med summary)" "$(range summary)"
part "chain heads query of integrity.json (psql)" "$(med heads)" "$(range heads)"
REST=$(awk -v e="$EXPORT_S" -v a="$(med verify)" -v b="$(med summary)" -v c="$(med heads)" 'BEGIN { printf "%.3f", e - a - b - c }')
part "the rest: streaming the exchanges to CSV + JSON Lines, hashing, fsync, manifest (by difference)" "$REST"
echo
echo "Output sizes (first run):"
echo
echo "| file | whole store | first $SMALL exchanges |"
echo "|---|---:|---:|"
while read -r f b; do
    s=$(awk -v f="$f" '$1 == f { print $2 }' "$TMP/small.sizes")
    echo "| package: $f | $b B ($(mib "$b") MiB) | ${s:-?} B |"
done <"$TMP/big.sizes"
echo "| \`psql \\copy\` CSV, export's query | $(cat "$TMP/sorted.size") B ($(mib "$(cat "$TMP/sorted.size")") MiB) | |"
echo "| \`psql \\copy\` CSV, plain columns | $(cat "$TMP/plain.size") B ($(mib "$(cat "$TMP/plain.size")") MiB) | |"
echo
echo "Server settings of the readers' sessions: $SETTINGS${PGOPTIONS:+ (from PGOPTIONS=$PGOPTIONS)}."
echo "Store: $FILL; database $DBSIZE. Rows of the export's exchanges.csv vs psql's CSV of the same query (header and CRLF aside): $SAME."
