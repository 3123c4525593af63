#!/usr/bin/env bash
# End-to-end check that tools/verify_chain.py (written from docs/canonical-encoding.md alone) agrees
# with AuditGate on real data: the real journal appends a chain, the verifier must say OK; a
# superuser edits one field (append-only trigger disabled inside the transaction), it must FAIL there.
#
# usage: tools/verify_chain_selftest.sh SUPERUSER_URL BIN_DIR [WRITER_URL]
#   SUPERUSER_URL  an already migrated AuditGate database, as a superuser (the tampering needs it)
#   BIN_DIR        the directory holding `auditgate` (and, optionally, `auditgate-report`)
#   WRITER_URL     connection for `auditgate spool load` (default: SUPERUSER_URL)
# Adds rows under a new chain id (selftest-<time>-<pid>) and leaves them; changes nothing else.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '6,10p' "$0" >&2; exit 2; }
db=$1 bin=$2 writer=${3:-$1}
verifier="$(cd "$(dirname "$0")" && pwd)/verify_chain.py"
chain="selftest-$(date -u +%Y%m%dT%H%M%S)-$$" records=200 target=17
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "selftest FAILED: $*" >&2; exit 1; }
export PGCLIENTENCODING=UTF8
doc="$(dirname "$verifier")/../docs/canonical-encoding.md"
python3 - "$verifier" "$doc" <<'PY' || fail "the verifier's query is not verbatim in $doc"
import sys; sys.dont_write_bytecode = True; sys.path.insert(0, sys.argv[1].rsplit("/", 1)[0]); import verify_chain
sys.exit(verify_chain.QUERY not in open(sys.argv[2], encoding="utf-8").read())
PY

"$bin/auditgate" spool load --chain-id "$chain" --spool-dir "$work/spool" --database-url "$writer" \
    --records "$records" --body-bytes 100 --wait-shipped >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; fail "spool load"; }

# check EXPECTED_EXIT EXPECTED_LINE: the verifier on the doc's query, as a file, on stdin and via --database.
check() {
    psql -X --csv -v ON_ERROR_STOP=1 -d "$db" -c "$(python3 "$verifier" --print-query --chain-id "$chain")" >"$work/chain.csv"
    local mode rc
    for mode in file stdin database; do
        rc=0
        case $mode in
            file) python3 "$verifier" "$work/chain.csv" >"$work/out" || rc=$? ;;
            stdin) python3 "$verifier" <"$work/chain.csv" >"$work/out" || rc=$? ;;
            database) python3 "$verifier" --database "$db" --chain-id "$chain" >"$work/out" || rc=$? ;;
        esac
        [ "$rc" = "$1" ] || { cat "$work/out" >&2; fail "verify_chain.py ($mode) exited $rc, expected $1"; }
        grep -qxF -- "$2" "$work/out" || { cat "$work/out" >&2; fail "verify_chain.py ($mode) did not print: $2"; }
    done
    echo "verify_chain.py: $2"
}

# The Swift verifier's line for this chain (other chains in the store may be in any state).
swift_agrees() {
    [ -x "$bin/auditgate-report" ] || { echo "($bin/auditgate-report missing: Swift cross-check skipped)"; return 0; }
    "$bin/auditgate-report" verify --database "$db" >"$work/swift" || true
    local line head
    line=$(grep -F "chain $chain: " "$work/swift") || fail "auditgate-report printed no line for $chain"
    head=$(python3 "$verifier" "$work/chain.csv" | grep -F "chain $chain: " | sed 's/.* head \([0-9a-f]\{16\}\).*/\1/') || true
    case $line in *"$records records, head $head $1") echo "auditgate-report agrees: $line" ;;
        *) fail "auditgate-report says '$line', expected $records records, head $head..., $1" ;; esac
}

check 0 "OK: 1 chain(s), $records records verified"
swift_agrees intact

# Tamper as a superuser would: one field of one record, trigger disabled and re-enabled in one transaction.
psql -X -q -v ON_ERROR_STOP=1 -v chain="$chain" -v seq="$target" -d "$db" >/dev/null <<'SQL'
BEGIN;
ALTER TABLE audit.events DISABLE TRIGGER events_append_only;
UPDATE audit.events SET model = 'x' WHERE chain_id = :'chain' AND seq = :seq;
ALTER TABLE audit.events ENABLE TRIGGER events_append_only;
COMMIT;
SQL

check 1 "FAILED: chain $chain seq $target: hash mismatch: the record's fields do not produce its stored hash (the record was altered)"
swift_agrees BROKEN
echo "selftest passed (chain $chain)"
