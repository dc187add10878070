#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the tests.
#   scripts/pg-test-cluster.sh start DIR   -> prints a postgresql:// URL on stdout
#   scripts/pg-test-cluster.sh stop DIR
# The cluster runs as an unprivileged user (initdb refuses root): `postgres` when it exists,
# else a created `aegis-test` user. It listens on 127.0.0.1 on a free port, with its socket
# in DIR, and trusts local connections: it is for tests only.
set -euo pipefail

action=${1:?start|stop}
dir=${2:?directory}
bin=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb | tail -n 1)")")

as_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

pg_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then pg_user=postgres
    else
        id aegis-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin aegis-test
        pg_user=aegis-test
    fi
fi

case "$action" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown "$pg_user" "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    as_user "$bin/initdb" -D "$dir/data" -U aegis --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
    as_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=on" start >/dev/null
    echo "postgresql://aegis@127.0.0.1:$port/postgres"
    ;;
stop)
    [ -d "$dir/data" ] && as_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
