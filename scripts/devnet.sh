#!/usr/bin/env bash
# A local devnet of four validators on this machine, on the embedded SQLite store.
#   scripts/devnet.sh          build, generate ./devnet if absent, start the nodes, wait for
#                              the full mesh, print each node's status (nodes keep running)
#   scripts/devnet.sh status   print each node's peers and height
#   scripts/devnet.sh stop     stop the nodes
# Environment: DEVNET_DIR (default ./devnet), DEVNET_VALIDATORS (4), DEVNET_BASE_PORT (8000),
# DEVNET_WAIT_SECONDS (60).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=${DEVNET_DIR:-devnet}
n=${DEVNET_VALIDATORS:-4}
base=${DEVNET_BASE_PORT:-8000}
wait_s=${DEVNET_WAIT_SECONDS:-60}
bin=target/release/aegis

metrics_port() { echo $((base + 1090 + $1)); }
api_port() { echo $((base + 80 + $1)); }

metric() { # metric NODE NAME -> value or empty
    curl -s -m 2 "http://127.0.0.1:$(metrics_port "$1")/metrics" 2>/dev/null \
        | awk -v name="$2" '$1 == name { print $2; exit }'
}

status() {
    printf '%-6s %-7s %-6s %-6s %s\n' node pid peers height health
    for i in $(seq 0 $((n - 1))); do
        pid=$(cat "$dir/node$i/aegis.pid" 2>/dev/null || echo -)
        alive=-; [ "$pid" != - ] && kill -0 "$pid" 2>/dev/null && alive=$pid
        peers=$(metric "$i" aegis_p2p_peers); height=$(curl -s -m 2 "http://127.0.0.1:$(metrics_port "$i")/status" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("block_height","-"))' 2>/dev/null || echo -)
        health=$(curl -s -o /dev/null -w '%{http_code}' -m 2 "http://127.0.0.1:$(api_port "$i")/health" 2>/dev/null || true)
        printf '%-6s %-7s %-6s %-6s %s\n' "node$i" "$alive" "${peers:--}" "${height:--}" "${health:--}"
    done
}

stop() {
    for pidfile in "$dir"/node*/aegis.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null && echo "stopped $(basename "$(dirname "$pidfile")") (pid $pid)"
        rm -f "$pidfile"
    done
}

case "${1:-start}" in
status) status; exit 0 ;;
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac

cargo build --release --locked -p aegis
if [ ! -f "$dir/genesis.json" ]; then
    "$bin" testnet --validators "$n" --base-port "$base" --out "$dir"
fi
for i in $(seq 0 $((n - 1))); do
    home="$dir/node$i"
    if [ -f "$home/aegis.pid" ] && kill -0 "$(cat "$home/aegis.pid")" 2>/dev/null; then
        echo "node$i already running (pid $(cat "$home/aegis.pid"))"
        continue
    fi
    "$bin" config check --config "$home/config/production.yaml"
    nohup "$bin" run --config "$home/config/production.yaml" >"$home/logs/console.log" 2>&1 &
    echo $! >"$home/aegis.pid"
    echo "started node$i (pid $!), log $home/logs/aegis.log"
done

echo "waiting up to ${wait_s}s for the full mesh ($((n - 1)) peers each)..."
deadline=$((SECONDS + wait_s))
while :; do
    ready=0
    for i in $(seq 0 $((n - 1))); do
        [ "$(metric "$i" aegis_p2p_peers)" = "$((n - 1))" ] && ready=$((ready + 1))
    done
    [ "$ready" -eq "$n" ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        status
        echo "devnet: the mesh did not form within ${wait_s}s; see $dir/node*/logs/" >&2
        exit 1
    fi
    sleep 1
done
status
echo "devnet is up: $n validators in $dir. Stop it with: scripts/devnet.sh stop"
