# Sourced by scripts/run.sh and scripts/test.sh: a throwaway PostgreSQL cluster on a free loopback port,
# owned by the `postgres` user (PostgreSQL refuses to run as root), trust authentication on loopback.

pg_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# as_postgres CMD...: run a command as the postgres user when we are root.
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR [PORT]: initdb DIR (if new) and start a server on PORT; sets PGPORT, PGDATA_DIR.
pg_start() {
    local dir=$1 port=${2:-$(free_port)} bin
    bin=$(pg_bindir)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        as_postgres "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    fi
    # The server must not inherit our stdout/stderr: a caller reading them to the end would wait forever.
    if ! as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start </dev/null >"$dir/pg_ctl.out" 2>&1; then
        cat "$dir/pg_ctl.out" "$dir/server.log" >&2 2>/dev/null
        return 1
    fi
    PGPORT=$port
    PGDATA_DIR=$dir
    export PGPORT PGDATA_DIR
}

pg_stop() {
    local dir=${1:-$PGDATA_DIR}
    [ -n "$dir" ] && [ -f "$dir/postmaster.pid" ] && as_postgres "$(pg_bindir)/pg_ctl" -D "$dir" -m fast -w stop </dev/null >/dev/null 2>&1 || true
}
