#!/usr/bin/env bash
# The store's and the core's unit tests on PostgreSQL (issue #18, docs/scale-out.md): starts a
# throw-away cluster as tests/conformance/postgres.rs does (Debian's binaries, initdb with a
# random SCRAM password, TCP on 127.0.0.1 only, fsync off, run as `postgres` when run as root),
# then runs `cargo test --bin kura` with KURA_TEST_DATABASE_URL set, so that every
# `Store::in_memory()` is a fresh database on it. Stops and removes the cluster on exit.
# Arguments are test filters (default: none, every unit test; e.g. `store:: vfs::`); with
# `--conformance` first, the conformance tests named instead, each server on a fresh database. Fails, never skips, when PostgreSQL
# is missing. The server's log is left in target/test-store-postgres.log.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${KURA_TEST_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
[ -x "$bin/initdb" ] || { echo "test-store-postgres.sh: PostgreSQL's initdb not found (package postgresql, or KURA_TEST_PG_BIN)" >&2; exit 1; }
run=()
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 || { echo "test-store-postgres.sh: running as root and there is no 'postgres' user to run PostgreSQL as" >&2; exit 1; }
  run=(runuser -u postgres --)
fi

root=$(mktemp -d /tmp/kura-pg-units.XXXXXX)
password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
echo "$password" >"$root/pwfile"
[ ${#run[@]} -eq 0 ] || chown -R postgres: "$root"
stop() {
  # the server's log names every statement that failed: kept for the failures' diagnosis
  mkdir -p target && cp "$root/postgres.log" target/test-store-postgres.log 2>/dev/null || true
  "${run[@]}" "$bin/pg_ctl" -D "$root/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  rm -rf "$root"
}
trap stop EXIT
(cd "$root" && "${run[@]}" "$bin/initdb" -D "$root/data" -U kura -A scram-sha-256 -E UTF8 \
  --pwfile "$root/pwfile" --locale=C --locale-provider=icu --icu-locale=en-US --no-sync >"$root/initdb.log" 2>&1) \
  || { cat "$root/initdb.log" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$root" && "${run[@]}" "$bin/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$root -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
  start >/dev/null) || { cat "$root/postgres.log" >&2; exit 1; }

server="postgres://kura:$password@127.0.0.1:$port/postgres"
if [ "${1:-}" = "--conformance" ]; then
  # conformance tests whose servers each get a fresh database on the cluster (common.rs)
  shift
  echo "test-store-postgres.sh: PostgreSQL on 127.0.0.1:$port; cargo test --test conformance $*"
  KURA_TEST_CONFORMANCE_DATABASE_URL="$server" \
    nice -n 19 cargo test --test conformance -- --test-threads=2 "$@" 2>&1 | tee "$root/conformance.log"
  # filters that name no test would pass silently: at least one test must have run
  grep -Eq "test result: ok\. [1-9][0-9]* passed" "$root/conformance.log" \
    || { echo "test-store-postgres.sh: no conformance test ran for: $*" >&2; exit 1; }
else
  echo "test-store-postgres.sh: PostgreSQL on 127.0.0.1:$port; cargo test --bin kura $*"
  KURA_TEST_DATABASE_URL="$server" nice -n 19 cargo test --bin kura -- "$@"
fi
