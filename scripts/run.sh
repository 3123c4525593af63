#!/usr/bin/env bash
# The run command: installs what AuditGate needs, builds it, starts a local PostgreSQL (kept in
# .auditgate-dev/ between runs), applies the schema, and starts the gateway; without provider keys in
# the environment it starts the provider stand-in beside it, so a first call works within a minute.
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

# A client key for trying it out, made once and kept in .auditgate-dev/ (only its SHA-256 is in the config).
[ -f "$dev/client.key" ] || echo "agk_$(openssl rand -hex 32)" >"$dev/client.key"
key=$(cat "$dev/client.key")
key_sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)

# Without provider keys, the provider stand-in answers for both APIs on loopback.
if [ -z "${ANTHROPIC_API_KEY:-}${OPENAI_API_KEY:-}" ]; then
    python3 tools/standin/standin.py --port 0 --port-file "$dev/standin.port" >"$dev/standin.log" 2>&1 &
    standin_pid=$!
    trap 'kill $standin_pid 2>/dev/null' EXIT
    for _ in $(seq 50); do [ -s "$dev/standin.port" ] && break; sleep 0.1; done
    anthropic_url="http://127.0.0.1:$(cat "$dev/standin.port")" openai_url=$anthropic_url
    export ANTHROPIC_API_KEY=sk-ant-standin OPENAI_API_KEY=sk-openai-standin
    echo "no provider keys in the environment: using the provider stand-in at $anthropic_url"
else
    anthropic_url=https://api.anthropic.com openai_url=https://api.openai.com
fi
gateway_port=${AUDITGATE_PORT:-8045}
cat >"$dev/auditgate.yaml" <<YAML
# Made by scripts/run.sh; config/auditgate.yaml is the documented example.
server:
  host: 127.0.0.1
  port: $gateway_port
database:
  url: "postgresql://auditgate_writer@127.0.0.1:$port/auditgate"
upstreams:
  anthropic:
    base_url: $anthropic_url
    api_key: \${ANTHROPIC_API_KEY}
  openai:
    base_url: $openai_url
    api_key: \${OPENAI_API_KEY}
auth:
  mode: strict
  keys:
    - key_sha256: "$key_sha"
      user: newcomer
      team: trying-it
audit:
  chain_id: dev-1
  durability: spool
  spool_dir: $dev/spool
  bodies: redacted
YAML

cat <<MSG

AuditGate on http://127.0.0.1:$gateway_port  (audit store: PostgreSQL 127.0.0.1:$port, data in $dev/pg)
Your client key: $key
Try it:
  curl -s http://127.0.0.1:$gateway_port/v1/messages -H "x-api-key: $key" -H "anthropic-version: 2023-06-01" \\
       -H "content-type: application/json" \\
       -d '{"model":"claude-sonnet-4-6","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'
  psql -h 127.0.0.1 -p $port -U auditgate_reader auditgate -c 'SELECT started_at, user_id, model, outcome, input_tokens, output_tokens FROM audit.exchanges'
  AUDITGATE_DATABASE_URL=$AUDITGATE_DATABASE_URL $bin/auditgate-report verify
SDKs: ANTHROPIC_BASE_URL=http://127.0.0.1:$gateway_port ANTHROPIC_API_KEY=$key
      OPENAI_BASE_URL=http://127.0.0.1:$gateway_port/v1 OPENAI_API_KEY=$key
Real providers: export ANTHROPIC_API_KEY / OPENAI_API_KEY before running this script.
Stop: Ctrl-C (PostgreSQL keeps running: source scripts/postgres.sh && pg_stop $dev/pg)

MSG
"$bin/auditgate" serve --config "$dev/auditgate.yaml"
