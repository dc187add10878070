#!/bin/sh
# Makes PostgreSQL usable by the aegis-storage tests on a fresh Debian machine (run as root).
# Idempotent: safe to run again.
#
# The tests start their own throwaway cluster (initdb + pg_ctl in a temporary directory, on a
# free port, socket in that directory) unless AEGIS_TEST_DATABASE_URL names a server. They
# need the server binaries, the client tools (psql, pg_dump, pg_restore), and, when run as
# root, an unprivileged user to run the cluster as (initdb refuses root): `postgres` if it
# exists, else `aegis-test`, else `nobody`; AEGIS_TEST_PG_USER overrides.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "postgres-setup: run as root (it may install packages and create a user)" >&2
    exit 1
fi

find_bin_dir() {
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if ! bin_dir=$(find_bin_dir) || ! command -v pg_dump >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    echo "postgres-setup: installing PostgreSQL server and client packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
    bin_dir=$(find_bin_dir)
fi

# The packaged cluster is not needed (the tests make their own); leave it alone if it runs.

# initdb and pg_ctl on PATH, as the tests and operators expect.
for tool in initdb pg_ctl postgres; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        ln -sf "$bin_dir/$tool" "/usr/local/bin/$tool"
    fi
done

# An unprivileged user for the throwaway clusters when the tests run as root.
if ! id -u postgres >/dev/null 2>&1 && ! id -u aegis-test >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin aegis-test
fi

# runuser (util-linux) switches to that user.
command -v runuser >/dev/null 2>&1 || apt-get install -y -qq util-linux >/dev/null

echo "postgres-setup: PostgreSQL binaries in $bin_dir; $("$bin_dir/postgres" --version)"
