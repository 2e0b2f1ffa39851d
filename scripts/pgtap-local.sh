#!/usr/bin/env bash
# Runs the pgTAP suite against a throwaway PostgreSQL 15 cluster, without the server.
#
#   scripts/pgtap-local.sh                     # every tests/sql/*.sql
#   scripts/pgtap-local.sh tests/sql/lint.sql  # only the files named
#
# It creates a cluster in a fresh directory under /tmp that listens on a Unix socket
# in that directory only (no TCP), applies every migrations/*.sql in filename order
# (each once, in its own transaction, as the server does), loads
# tests/sql/support/helpers.sql, runs pg_prove, then stops the cluster and deletes
# the directory, also on failure or Ctrl-C. Set PGTAP_KEEP=1 to keep the cluster
# running for inspection (the script prints how to connect and how to remove it),
# and PGTAP_VERBOSE=1 to show every test line.
#
# Run as root, the PostgreSQL server runs as the `postgres` OS user; the clients
# (psql, pg_prove) run as the caller. Run as any other user, everything runs as
# that user. Exit status: 0 when every test passes.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
dbname=campaignd_test
# The socket lives in our private directory, so the port only names the socket
# file; it is still varied so that a stray System V key never collides.
port=$((20000 + $$ % 20000))

for tool in "$pgbin/initdb" "$pgbin/pg_ctl" "$pgbin/psql"; do
    [ -x "$tool" ] || { echo "pgtap-local: $tool not found (set PGBIN)" >&2; exit 2; }
done
command -v pg_prove >/dev/null || { echo "pgtap-local: pg_prove not found (Debian: libtap-parser-sourcehandler-pgtap-perl)" >&2; exit 2; }

if [ $# -gt 0 ]; then
    tests=("$@")
else
    tests=("$repo"/tests/sql/*.sql)
fi
migrations=("$repo"/migrations/*.sql)
[ -e "${migrations[0]}" ] || { echo "pgtap-local: no migrations in $repo/migrations" >&2; exit 2; }

# Run a server-side command as the cluster's OS user.
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { echo "pgtap-local: running as root needs a 'postgres' OS user" >&2; exit 2; }
    as_server() { (cd / && runuser -u postgres -- "$@"); }
else
    as_server() { (cd / && "$@"); }
fi

dir=$(mktemp -d /tmp/pgtap-local.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
chmod 700 "$dir"
started=0

cleanup() {
    local rc=$?
    trap '' INT TERM # finish cleaning up even if signalled again
    if [ "${PGTAP_KEEP:-0}" = 1 ] && [ "$started" = 1 ]; then
        echo "pgtap-local: cluster kept: psql -h $dir -p $port -U postgres $dbname"
        local as=""
        [ "$(id -u)" = 0 ] && as="runuser -u postgres -- "
        echo "pgtap-local: remove it with: ${as}$pgbin/pg_ctl -D $dir/data stop && rm -rf $dir"
        exit "$rc"
    fi
    if [ "$started" = 1 ]; then
        as_server "$pgbin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_server "$pgbin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }

started=1
as_server "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
    -o "-c listen_addresses='' -k $dir -p $port -c fsync=off -c full_page_writes=off" \
    >/dev/null || { cat "$dir/server.log" >&2; exit 1; }

export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=$dbname
unset PGPASSWORD PGSERVICE PGOPTIONS

psql_q() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

psql_q -d postgres -c "create database $dbname"

for m in "${migrations[@]}"; do
    echo "pgtap-local: applying $(basename "$m")"
    psql_q --single-transaction -f "$m"
done

echo "pgtap-local: loading tests/sql/support/helpers.sql"
psql_q --single-transaction -f "$repo/tests/sql/support/helpers.sql"

pg_prove ${PGTAP_VERBOSE:+--verbose} --failures -h "$dir" -p "$port" -U postgres -d "$dbname" "${tests[@]}"
