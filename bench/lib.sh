# Sourced by bench/gateway.sh, bench/streams.sh and bench/drills.sh: the pieces every load benchmark
# needs — a release build, a throwaway PostgreSQL, an nginx fixed-answer upstream, AuditGate
# instances, process CPU/RSS sampling and the completeness check against the audit store.
# Callers set `set -euo pipefail` and `cd` to the repository root before sourcing.

log() { echo "[$(date +%T)] $*" >&2; }
now() { date +%s.%N; }

# --- tools, build, scratch folder, PostgreSQL ----------------------------------------------------
bench_require() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v psql >/dev/null || missing+=(postgresql-client)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq >&2 # a new machine has no package lists yet
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
    # 2,000 streams need ~3 descriptors each in the gateway, 1 in the client and 1 in nginx.
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
}

# bench_build: release builds of both executables into .build-bench/; sets AUDITGATE and REPORT.
bench_build() {
    log "building auditgate and auditgate-report (release, --scratch-path .build-bench)"
    swift build -c release --product auditgate --scratch-path .build-bench >&2
    swift build -c release --product auditgate-report --scratch-path .build-bench >&2
    local bin
    bin="$(swift build -c release --scratch-path .build-bench --show-bin-path)"
    AUDITGATE="$bin/auditgate"
    REPORT="$bin/auditgate-report"
}

# baseline_build REV: a release build of auditgate at git revision REV, in a worktree of its own under
# .build-bench-baseline/ (so the working tree is untouched); sets AUDITGATE_BASE.
baseline_build() {
    local rev=$1 tree=.build-bench-baseline/tree
    log "building auditgate at $rev (release, worktree $tree)"
    git worktree remove --force "$tree" >/dev/null 2>&1 || true
    rm -rf "$tree"
    git worktree add --detach "$tree" "$rev" >&2
    swift build -c release --product auditgate --package-path "$tree" --scratch-path .build-bench-baseline/build >&2
    AUDITGATE_BASE="$(swift build -c release --package-path "$tree" --scratch-path .build-bench-baseline/build --show-bin-path)/auditgate"
}

# relay_build: the bare SwiftNIO relay of bench/nio-relay (release, its own scratch path, since it is a
# package of its own); sets RELAY.
relay_build() {
    log "building nio-relay (release, --scratch-path .build-bench-relay)"
    swift build -c release --package-path bench/nio-relay --scratch-path .build-bench-relay >&2
    RELAY="$(swift build -c release --package-path bench/nio-relay --scratch-path .build-bench-relay --show-bin-path)/nio-relay"
}

# bench_setup: scratch folder TMP (removed on exit with everything started in it) and a migrated
# database; sets TMP, PGPORT, SUPER_URL (superuser), WRITER_URL, READER_URL.
BENCH_PIDS=()
bench_setup() {
    TMP=$(mktemp -d /tmp/auditgate-bench.XXXXXX)
    chmod 755 "$TMP" # the postgres user must reach its data directory inside
    source scripts/postgres.sh
    trap bench_cleanup EXIT
    pg_start "$TMP/pg"
    SUPER_URL="postgresql://postgres@127.0.0.1:$PGPORT/bench"
    WRITER_URL="postgresql://auditgate_writer@127.0.0.1:$PGPORT/bench"
    READER_URL="postgresql://auditgate_reader@127.0.0.1:$PGPORT/bench"
    psql -qX "postgresql://postgres@127.0.0.1:$PGPORT/postgres" -c "CREATE DATABASE bench"
    "$AUDITGATE" migrate --database-url "$SUPER_URL" >/dev/null
    log "PostgreSQL 127.0.0.1:$PGPORT, scratch folder $TMP"
}

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    pg_stop "$TMP/pg" || true
    [ "${BENCH_KEEP:-0}" = 1 ] && { log "kept $TMP"; return; }
    rm -rf "$TMP"
}

sql() { psql -qXAt "$SUPER_URL" -v ON_ERROR_STOP=1 -c "$1"; }

# --- nginx ---------------------------------------------------------------------------------------
# The fixed answer of the upstream: a complete, non-streamed Anthropic Messages response with usage,
# so the gateway meters it like a real one.
FIXED_ANSWER='{"id":"msg_bench0001","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello from the fixed-answer upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":9}}'

# nginx_start NAME PORT HTTP_BLOCK: an nginx of its own (master + one worker per core) in
# $TMP/nginx-NAME, with HTTP_BLOCK inside `http { }`; sets NGINX_PID_<NAME>.
nginx_start() {
    local name=$1 port=$2 block=$3 dir="$TMP/nginx-$1"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
$block
}
CONF
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
    BENCH_PIDS+=($!)
    printf -v "NGINX_PID_$name" %s "$!"
    wait_port "$port" || { cat "$dir/error.log" >&2; return 1; }
}

# upstream_start PORT [SSE_RATE]: the fixed-answer upstream (what "direct" measures). A request with
# the header `x-bench-stream: 1` gets the Anthropic stream bench/sse/messages.sse instead, sent at
# SSE_RATE bytes/s (0: at once), which holds streams open for bench/streams.sh.
upstream_start() {
    local port=$1 rate=${2:-0}
    cp bench/sse/messages.sse "$TMP/messages.sse"
    nginx_start upstream "$port" "
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            if (\$http_x_bench_stream) { rewrite ^ /_stream last; }
            default_type application/json;
            add_header request-id req_bench0001 always;
            return 200 '$FIXED_ANSWER';
        }
        # A POST on a static file is 405: error_page redirects it to the same file as a GET.
        location = /_stream {
            internal;
            error_page 405 =200 \$uri;
            default_type text/event-stream;
            add_header request-id req_bench0002 always;
            limit_rate_after 0;
            limit_rate $rate;
            alias $TMP/messages.sse;
        }
    }"
}

# proxy_start PORT UPSTREAM_PORT: nginx as a plain reverse proxy with a keep-alive pool upstream.
proxy_start() {
    nginx_start proxy "$1" "
    upstream fixed { server 127.0.0.1:$2; keepalive 256; }
    server {
        listen 127.0.0.1:$1 backlog=4096;
        location / {
            proxy_pass http://fixed;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }
    }"
}

wait_port() {
    local i
    for i in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    log "nothing listens on 127.0.0.1:$1"
    return 1
}

# --- AuditGate ------------------------------------------------------------------------------------
# One client key for every instance; only its SHA-256 is in the configurations.
BENCH_KEY="agk_$(openssl rand -hex 32)"
BENCH_KEY_SHA=$(printf %s "$BENCH_KEY" | sha256sum | cut -d' ' -f1)

# gateway_config NAME PORT MODE UPSTREAM_PORT [EXTRA_AUDIT_LINES]: writes $TMP/gw-NAME/auditgate.yaml.
# Bodies are recorded redacted with the example configuration's patterns: the production default.
gateway_config() {
    local name=$1 port=$2 mode=$3 upstream=$4 extra=${5:-} dir="$TMP/gw-$1"
    mkdir -p "$dir/spool"
    cat >"$dir/auditgate.yaml" <<YAML
server:
  host: 127.0.0.1
  port: $port
database:
  url: "$WRITER_URL"
upstreams:
  anthropic:
    base_url: http://127.0.0.1:$upstream
    api_key: sk-ant-bench-provider-key
  openai:
    base_url: http://127.0.0.1:$upstream
    api_key: sk-openai-bench-provider-key
auth:
  mode: strict
  keys:
    - key_sha256: "$BENCH_KEY_SHA"
      user: bench
      team: load
audit:
  chain_id: bench-$name
  durability: $mode
  spool_dir: $dir/spool
  on_store_failure: reject
  bodies: redacted
$extra
redaction:
  patterns: [email, phone, card, kr_rrn, us_ssn, secret]
  custom:
    - name: employee_id
      regex: "EMP-[0-9]{6}"
YAML
}

# gateway_start NAME PORT: starts `auditgate serve` on the config above and waits for /healthz;
# sets GATEWAY_PID_<NAME> (dashes in NAME become underscores). Its log is $TMP/gw-NAME/gateway.log.
gateway_start() {
    local name=$1 port=$2 dir="$TMP/gw-$1" i
    env -u HTTPS_PROXY -u HTTP_PROXY -u https_proxy -u http_proxy \
        "$AUDITGATE" serve --config "$dir/auditgate.yaml" >>"$dir/gateway.log" 2>&1 &
    local pid=$!
    BENCH_PIDS+=($pid)
    printf -v "GATEWAY_PID_${name//-/_}" %s "$pid"
    for i in $(seq 600); do
        if curl -sf -o /dev/null -H "x-api-key: $BENCH_KEY" "http://127.0.0.1:$port/healthz"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    log "auditgate serve ($name) did not become healthy"
    tail -40 "$dir/gateway.log" >&2
    return 1
}

# --- process figures --------------------------------------------------------------------------------
# cpu_ticks PID...: user+system clock ticks of the processes and their threads (children excluded).
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")))
    done
    echo "$total"
}
# pg_ticks PID: CPU ticks of a PostgreSQL postmaster and its live children, plus the children that
# have exited (the postmaster's cutime and cstime): a connection that ends mid-measurement still counts.
pg_ticks() {
    local dead
    dead=$(awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$1/stat")
    echo $(($(cpu_ticks $(proc_tree "$1")) + dead))
}
# machine_ticks: clock ticks all cores spent busy since boot (user, nice, system, irq, softirq; not
# idle, not iowait, not steal), from the first line of /proc/stat.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
# proc_tree PID: the pid and its direct children (nginx master + workers).
proc_tree() { echo "$1" $(pgrep -P "$1" || true); }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# --- the audit store ------------------------------------------------------------------------------
# completeness IDS_FILE TIMEOUT: waits until every request id in IDS_FILE (one per line, the ids of
# the calls the load generator completed) is an exchange in audit.exchanges with its response record
# and status 200; prints "completed found percent seconds_waited".
completeness() {
    local ids=$1 timeout=$2 started total found=0 waited
    started=$(now)
    total=$(wc -l <"$ids")
    sql "CREATE TABLE IF NOT EXISTS public.bench_ids (request_id text PRIMARY KEY)" 2>/dev/null
    sql "TRUNCATE public.bench_ids"
    psql -qX "$SUPER_URL" -v ON_ERROR_STOP=1 -c "\\copy public.bench_ids FROM '$ids'"
    while :; do
        found=$(sql "SELECT count(*) FROM public.bench_ids i JOIN audit.exchanges e USING (request_id)
                     WHERE e.response_seq IS NOT NULL AND e.status_code = 200")
        [ "$found" -ge "$total" ] && break
        awk -v a="$started" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }' && break
        sleep 0.5
    done
    waited=$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
    awk -v t="$total" -v f="$found" -v w="$waited" 'BEGIN { printf "%d %d %.3f %s\n", t, f, t ? 100 * f / t : 100, w }'
}

# verify_store: `auditgate-report verify` of the whole store as the reader; prints its last line.
verify_store() {
    local out
    if out=$(AUDITGATE_DATABASE_URL="$READER_URL" "$REPORT" verify 2>&1); then
        echo "pass: $(tail -1 <<<"$out")"
    else
        echo "FAIL: $(tail -3 <<<"$out" | tr '\n' ' ')"
        return 1
    fi
}
