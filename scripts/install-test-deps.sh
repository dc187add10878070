#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh Debian machine of
# the project's kind: fail2ban (its fail2ban-regex checks the shipped filter), openssl
# (s_client handshakes), curl, PostgreSQL 15 server binaries (throwaway test clusters) and
# PyNaCl (the Python example of docs/encoding.md). Idempotent; skips what is present.
set -euo pipefail

need_apt=()
command -v fail2ban-regex >/dev/null 2>&1 || need_apt+=(fail2ban)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need_apt+=(postgresql postgresql-client)
fi
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)

if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: missing ${need_apt[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "install-test-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import nacl' >/dev/null 2>&1; then
    echo "install-test-deps: pip install pynacl"
    python3 -m pip install -q pynacl 2>&1 | grep -v 'Running pip as the' || true
fi
