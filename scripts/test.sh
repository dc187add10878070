#!/usr/bin/env bash
# The whole test suite, on a fresh machine of the project's kind (run as root there, or as a
# user who already has fail2ban, openssl, PostgreSQL 15 binaries, prometheus/promtool,
# systemd-analyze, logrotate, chromium and PyNaCl):
#   1. installs what the tests need (scripts/install-test-deps.sh);
#   2. starts a throwaway PostgreSQL cluster, unless AEGIS_TEST_DATABASE_URL is already set;
#   3. checks formatting and lints, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

if [ -z "${AEGIS_TEST_DATABASE_URL:-}" ]; then
    pg_dir=$(mktemp -d /tmp/aegis-test-pg.XXXXXX)
    chmod 755 "$pg_dir"
    trap 'scripts/pg-test-cluster.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
    AEGIS_TEST_DATABASE_URL=$(scripts/pg-test-cluster.sh start "$pg_dir")
    export AEGIS_TEST_DATABASE_URL
    echo "PostgreSQL for tests: $AEGIS_TEST_DATABASE_URL"
fi

# A fresh clone gains nothing from incremental compilation and its cache is as big as the
# build (2 GB here); a developer's own setting wins.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
