#!/usr/bin/env bash
# The test command: installs what the suite needs, builds, starts a throwaway PostgreSQL on a free
# loopback port, runs the whole suite against it, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/postgres.sh

# The report tool must never depend on the HTTP stack (it builds in seconds, runs anywhere).
swift package describe --type json | python3 -c '
import json, sys
package = json.load(sys.stdin)
targets = {t["name"]: t for t in package["targets"]}
def closure(name, seen):
    for dep in targets.get(name, {}).get("target_dependencies", []):
        if dep not in seen:
            seen.add(dep)
            closure(dep, seen)
    return seen
deps = closure("AuditReportCommand", set())
products = set()
for name in deps | {"AuditReportCommand"}:
    products.update(targets[name].get("product_dependencies", []))
banned = {"Hummingbird", "AsyncHTTPClient", "NIOCore", "NIOPosix", "NIOHTTP1", "NIOSSL", "AuditGateway"}
bad = sorted((deps | products) & banned)
if bad:
    sys.exit("auditgate-report depends on the HTTP stack: %s" % bad)
print("auditgate-report depends on: %s" % sorted(deps | products))
'

work=$(mktemp -d /tmp/auditgate-test.XXXXXX)
chmod 755 "$work"
cleanup() { pg_stop "$work/pg"; rm -rf "$work"; }
trap cleanup EXIT

swift build --build-tests
bin=$(swift build --show-bin-path)
pg_start "$work/pg"
echo "test PostgreSQL on 127.0.0.1:$PGPORT"
export AUDITGATE_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/postgres"
export AUDITGATE_BIN_DIR="$bin"

# The canonical encoding, checked by a verifier written from the documentation alone.
psql -qh 127.0.0.1 -p "$PGPORT" -U postgres -c "CREATE DATABASE verifier_selftest"
"$bin/auditgate" migrate --database-url "postgresql://postgres@127.0.0.1:$PGPORT/verifier_selftest" >/dev/null
bash tools/verify_chain_selftest.sh "postgresql://postgres@127.0.0.1:$PGPORT/verifier_selftest" "$bin"

# The provider stand-in against the official SDKs, then the running gateway driven by those SDKs and by
# every client the README's table names; then the run command itself, twice, from a fresh copy.
AUDITGATE_CLIENTS_VENV=$(bash scripts/install-clients.sh)
export AUDITGATE_CLIENTS_VENV
python3 -m pytest -q -p no:cacheprovider tools/standin/test_standin.py tests/compat tests/run_command

# The Swift suite (unit, store, journal, evidence) last.
swift test --skip-build
