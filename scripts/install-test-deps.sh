#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh Debian machine of
# the project's kind: fail2ban (its fail2ban-regex checks the shipped filter), openssl
# (s_client handshakes), curl and jq (the guide's commands), tmux (drives aegis devnet),
# PostgreSQL 15 server binaries (throwaway test clusters),
# promtool and prometheus (Debian's `prometheus` package: `promtool check metrics` on /metrics,
# the alert rules' checks and unit tests, and a real Prometheus scraping a test network),
# systemd-analyze (`verify` and `security` on the unit), nft (nftables: partition tests
# cut links between nodes), strace (the unit's system call filter against a traced node),
# logrotate (rotates a running node's log), yamllint (the guide's configuration check), Chromium and a
# font (the block explorer page in headless Chromium), PyNaCl (the Python example of docs/encoding.md) and openapi-spec-validator (validates
# /v1/openapi.json). Idempotent; skips what is present.
set -euo pipefail

need_apt=()
command -v fail2ban-regex >/dev/null 2>&1 || need_apt+=(fail2ban)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need_apt+=(postgresql postgresql-client)
fi
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
# promtool ships only in the server package (its -dev sibling is Go source, no binary).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# systemd-analyze is in the systemd package; nothing is started (policy-rc.d below, and a
# container has no systemd running).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v logrotate >/dev/null 2>&1 || need_apt+=(logrotate)
# nft: partition tests cut links between real nodes with nftables rules (as root).
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# strace: the unit's system call filter is checked against a traced running node.
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# yamllint: the guide checks configuration files with it; `aegis testnet` output must pass.
command -v yamllint >/dev/null 2>&1 || need_apt+=(yamllint)
# Headless Chromium drives the explorer page (--dump-dom, --screenshot and the DevTools
# protocol); without recommends it has no font, and the screenshot would show boxes.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || need_apt+=(fonts-liberation)

if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: missing ${need_apt[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "install-test-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Packages with services (prometheus would listen on 9090, a port the tests and the
    # devnet use) must not start them here: deny service starts during the install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! python3 -c 'import nacl' >/dev/null 2>&1; then
    echo "install-test-deps: pip install pynacl"
    python3 -m pip install -q pynacl 2>&1 | grep -v 'Running pip as the' || true
fi

if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
    echo "install-test-deps: pip install openapi-spec-validator"
    python3 -m pip install -q openapi-spec-validator 2>&1 | grep -v 'Running pip as the' || true
fi
