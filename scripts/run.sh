#!/usr/bin/env bash
# The run command: installs what AuditGate needs, builds it, starts a local PostgreSQL (kept in
# .auditgate-dev/ between runs), applies the schema, and starts the gateway; without provider keys in
# the environment it starts the provider stand-in beside it, so a first call works within a minute.
#
# Safe to run again and again: what an earlier run left behind (a PostgreSQL still running, a stand-in
# or its port file, a gateway still holding the port) is either reused, replaced, or named in a
# one-line message that says what to do. Each step says what it reused and what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh

dev=$PWD/.auditgate-dev
gateway_port=${AUDITGATE_PORT:-8045}

say() { echo "run.sh: $*"; }
fail() {
    echo "run.sh: $*" >&2
    exit 1
}

# port_taken PORT: true when something listens on 127.0.0.1:PORT (a bind there fails).
port_taken() {
    ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# alive_as PIDFILE WORD: prints the pid in PIDFILE when that process runs and its command line has WORD.
alive_as() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2" || return 1
    echo "$pid"
}

bash scripts/install-deps.sh
mkdir -p "$dev"
chmod 755 "$dev"

# The gateway's port before the build, so a taken port is named before minutes of building.
if port_taken "$gateway_port"; then
    if pid=$(alive_as "$dev/gateway.pid" "auditgate serve"); then
        fail "port $gateway_port is held by the AuditGate an earlier run started (pid $pid): stop it with 'kill $pid', or run on another port: AUDITGATE_PORT=$((gateway_port + 1)) bash scripts/run.sh"
    fi
    fail "port $gateway_port is already in use by another program: stop it, or run on another port: AUDITGATE_PORT=$((gateway_port + 1)) bash scripts/run.sh"
fi

swift build
bin=$(swift build --show-bin-path)

# PostgreSQL: the cluster in .auditgate-dev/pg, reused when it still runs (on whatever port it has).
if [ -f "$dev/pg/postmaster.pid" ] && as_postgres "$(pg_bindir)/pg_ctl" -D "$dev/pg" status >/dev/null 2>&1; then
    port=$(sed -n 4p "$dev/pg/postmaster.pid")
    pg_isready -q -h 127.0.0.1 -p "$port" -t 30 || fail "the PostgreSQL in $dev/pg runs but does not answer on port $port: see $dev/pg/server.log, or stop it with 'source scripts/postgres.sh && pg_stop $dev/pg'"
    say "PostgreSQL: reused the cluster still running in $dev/pg on port $port"
else
    port=$(cat "$dev/pg.port" 2>/dev/null || true)
    if [ -z "$port" ] || port_taken "$port"; then
        [ -n "$port" ] && say "PostgreSQL: port $port of the last run is taken now; moving to a free one"
        port=$(free_port)
    fi
    [ -f "$dev/pg/PG_VERSION" ] && what="started the cluster kept in $dev/pg" || what="created and started a new cluster in $dev/pg"
    pg_start "$dev/pg" "$port" || fail "PostgreSQL did not start (its log is above and in $dev/pg/server.log)"
    say "PostgreSQL: $what on port $port"
fi
echo "$port" >"$dev/pg.port"
if psql -qh 127.0.0.1 -p "$port" -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'auditgate'" | grep -q 1; then
    say "database auditgate: reused"
else
    psql -qh 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE auditgate"
    say "database auditgate: created"
fi
"$bin/auditgate" migrate --database-url "postgresql://postgres@127.0.0.1:$port/auditgate"

export AUDITGATE_DATABASE_URL="postgresql://auditgate_reader@127.0.0.1:$port/auditgate"

# A client key for trying it out, made once and kept in .auditgate-dev/ (only its SHA-256 is in the config).
if [ -s "$dev/client.key" ]; then
    say "client key: reused $dev/client.key"
else
    echo "agk_$(openssl rand -hex 32)" >"$dev/client.key"
    chmod 600 "$dev/client.key"
    say "client key: made a new one in $dev/client.key"
fi
key=$(cat "$dev/client.key")
key_sha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)

# Without provider keys, the provider stand-in answers for both APIs on loopback. A new one each run:
# one left by an earlier run is stopped, and its port file removed, so the config names the live port.
if [ -z "${ANTHROPIC_API_KEY:-}${OPENAI_API_KEY:-}" ]; then
    if pid=$(alive_as "$dev/standin.pid" "standin.py"); then
        kill "$pid" 2>/dev/null || true
        say "provider stand-in: stopped the one an earlier run left running (pid $pid)"
    fi
    rm -f "$dev/standin.port" "$dev/standin.pid"
    python3 tools/standin/standin.py --port 0 --port-file "$dev/standin.port" >"$dev/standin.log" 2>&1 &
    standin_pid=$!
    echo "$standin_pid" >"$dev/standin.pid"
    trap 'kill $standin_pid 2>/dev/null; rm -f "$dev/standin.port" "$dev/standin.pid"' EXIT
    for _ in $(seq 100); do
        [ -s "$dev/standin.port" ] && break
        kill -0 "$standin_pid" 2>/dev/null || fail "the provider stand-in exited at start: see $dev/standin.log"
        sleep 0.1
    done
    [ -s "$dev/standin.port" ] || fail "the provider stand-in did not start within 10 s: see $dev/standin.log"
    anthropic_url="http://127.0.0.1:$(cat "$dev/standin.port")" openai_url=$anthropic_url
    export ANTHROPIC_API_KEY=sk-ant-standin OPENAI_API_KEY=sk-openai-standin
    say "provider stand-in: started at $anthropic_url (pid $standin_pid), since no provider keys are in the environment"
else
    anthropic_url=https://api.anthropic.com openai_url=https://api.openai.com
    say "providers: the real ones, with the keys from the environment"
fi
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
Point a client at it: the table "Point your client at AuditGate" in README.md, e.g.
  ANTHROPIC_BASE_URL=http://127.0.0.1:$gateway_port ANTHROPIC_API_KEY=$key
  OPENAI_BASE_URL=http://127.0.0.1:$gateway_port/v1 OPENAI_API_KEY=$key
Real providers: export ANTHROPIC_API_KEY / OPENAI_API_KEY before running this script.
Stop: Ctrl-C (PostgreSQL keeps running for the next run: source scripts/postgres.sh && pg_stop $dev/pg)

MSG
# In the foreground (so Ctrl-C reaches it), with its pid kept so a later run can name it.
bash -c 'echo $$ >"$1"; shift; exec "$@"' gateway "$dev/gateway.pid" "$bin/auditgate" serve --config "$dev/auditgate.yaml"
