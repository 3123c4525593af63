#!/usr/bin/env bash
# The test command: installs what the suite needs, builds, starts a throwaway PostgreSQL on a free
# loopback port, runs the whole suite against it, and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/postgres.sh

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

swift test --skip-build
