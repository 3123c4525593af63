#!/usr/bin/env bash
# The run command: installs what AuditGate needs, builds it, starts a local PostgreSQL (kept in
# .auditgate-dev/ between runs), applies the schema, and checks the configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
source scripts/postgres.sh

dev=$PWD/.auditgate-dev
mkdir -p "$dev"
chmod 755 "$dev"
swift build
bin=$(swift build --show-bin-path)

port=$(cat "$dev/pg.port" 2>/dev/null || free_port)
if ! pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then
    pg_start "$dev/pg" "$port"
    echo "$port" >"$dev/pg.port"
fi
psql -qh 127.0.0.1 -p "$port" -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'auditgate'" | grep -q 1 ||
    psql -qh 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE auditgate"
"$bin/auditgate" migrate --database-url "postgresql://postgres@127.0.0.1:$port/auditgate"

export AUDITGATE_DATABASE_URL="postgresql://auditgate_reader@127.0.0.1:$port/auditgate"
cat <<MSG

PostgreSQL is running on 127.0.0.1:$port with the audit schema (data in $dev/pg).
  writer:  postgresql://auditgate_writer@127.0.0.1:$port/auditgate
  reader:  $AUDITGATE_DATABASE_URL
Try the journal:   $bin/auditgate spool load --chain-id demo --spool-dir $dev/spool \\
                     --database-url postgresql://auditgate_writer@127.0.0.1:$port/auditgate --records 1000 --wait-shipped
Verify the store:  AUDITGATE_DATABASE_URL=$AUDITGATE_DATABASE_URL $bin/auditgate-report verify
Stop PostgreSQL:   source scripts/postgres.sh && pg_stop $dev/pg
MSG
