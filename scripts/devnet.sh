#!/usr/bin/env bash
# A live local devnet on this machine, on the embedded SQLite store: builds the release
# binary, then runs `aegis devnet`, which generates ./devnet when absent (four validators),
# starts each validator as its own process on loopback, sends a light steady workload and
# shows progress (height, committed tx/s, commit latency, peers per node) until Ctrl-C, then
# stops the nodes cleanly. Arguments go to `aegis devnet` (see `aegis devnet --help`), e.g.
#   scripts/devnet.sh --validators 7 --dir /tmp/devnet7 --base-port 18000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p aegis
exec target/release/aegis devnet "$@"
