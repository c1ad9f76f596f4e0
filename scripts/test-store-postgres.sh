#!/usr/bin/env bash
# The store's and the core's unit tests on PostgreSQL (issue #18, docs/scale-out.md): starts a
# throw-away cluster as tests/conformance/postgres.rs does (Debian's binaries, initdb with a
# random SCRAM password, TCP on 127.0.0.1 only, fsync off, run as `postgres` when run as root),
# then runs `cargo test --bin kura` with KURA_TEST_DATABASE_URL set, so that every
# `Store::in_memory()` is a fresh database on it. Stops and removes the cluster on exit.
# Arguments are test filters (default: none, every unit test; e.g. `store:: vfs::`); with
# `--conformance` first, the conformance tests named instead, each server on a fresh database. Fails, never skips, when PostgreSQL
# is missing. The server's log is left in target/test-store-postgres.log.
# With `--conformance --garage`, a throw-away Garage node too (tests/conformance/garage.rs does
# the same in Rust: one node, replication factor 1, SQLite metadata, a random RPC secret, ports of
# 127.0.0.1, a layout, a key and a bucket), and every test server keeps its bytes there (the `s3`
# backend, a `root` of its own in the bucket: KURA_TEST_CONFORMANCE_S3_STORAGE, common.rs); the
# tests that read files under the data dir cannot apply and are skipped by name (GARAGE_SKIP
# below, printed). Garage's binary: KURA_TEST_GARAGE_BIN, PATH, ~/.cargo/bin (scripts/test.sh
# installs it); missing, the run fails.
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

# Tests that read the stored files or the upload folder under the data dir (files/, tmp/): on an
# object store there is no such folder, so they cannot apply. Each with what it reads (and
# one with a gap found, last).
GARAGE_SKIP=(
  # counts the files in <data_dir>/files/rbucket against the writers that got in
  quotas::thirty_two_writers_never_exceed_the_quota
  # removes and grows files in <data_dir>/files behind Kura's back, then runs fsck
  quotas::fsck_finds_and_repairs_changes_made_behind_kuras_back
  # waits for an upload's bytes to show in <data_dir>/tmp while it holds the lock
  locks::easyfs_concurrency_cases
  # lists <data_dir>/files/docs after the writes the lock refused
  locks::every_write_path_of_both_protocols_meets_the_lock
)

garage_pid=""
start_garage() {
  local bin=${KURA_TEST_GARAGE_BIN:-$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")}
  [ -x "$bin" ] || { echo "test-store-postgres.sh: no garage binary (KURA_TEST_GARAGE_BIN, PATH, ~/.cargo/bin); scripts/test.sh installs it" >&2; exit 1; }
  local g="$root/garage" s3_port rpc_port node="" out key_id secret
  mkdir -p "$g"
  s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rpc_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  cat >"$g/garage.toml" <<EOF
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
EOF
  RUST_LOG=garage=warn "$bin" -c "$g/garage.toml" server >"$g/garage.log" 2>&1 &
  garage_pid=$!
  for _ in $(seq 300); do
    node=$("$bin" -c "$g/garage.toml" node id -q 2>/dev/null) && break
    kill -0 "$garage_pid" 2>/dev/null || { cat "$g/garage.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$node" ] || { echo "test-store-postgres.sh: Garage did not answer" >&2; cat "$g/garage.log" >&2; exit 1; }
  "$bin" -c "$g/garage.toml" layout assign -z dc1 -c 10G "${node%%@*}" >/dev/null
  "$bin" -c "$g/garage.toml" layout apply --version 1 >/dev/null
  out=$("$bin" -c "$g/garage.toml" key create kura-conformance)
  key_id=$(sed -n 's/^Key ID: *//p' <<<"$out")
  secret=$(sed -n 's/^Secret key: *//p' <<<"$out")
  "$bin" -c "$g/garage.toml" bucket create kura-conformance >/dev/null
  "$bin" -c "$g/garage.toml" bucket allow --read --write --owner kura-conformance --key kura-conformance >/dev/null
  # the layout takes a moment to reach the S3 side: until the bucket lists
  for _ in $(seq 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      --aws-sigv4 aws:amz:garage:s3 --user "$key_id:$secret" "http://127.0.0.1:$s3_port/kura-conformance")" = 200 ] && break
    sleep 0.1
  done
  export KURA_TEST_CONFORMANCE_S3_STORAGE="bucket=kura-conformance endpoint=http://127.0.0.1:$s3_port region=garage access_key_id=$key_id secret_access_key=$secret disable_config_load=true disable_ec2_metadata=true"
  echo "test-store-postgres.sh: $("$bin" --version | head -n1) on 127.0.0.1:$s3_port"
}

if [ "${1:-}" = "--conformance" ]; then
  # conformance tests whose servers each get a fresh database on the cluster (common.rs)
  shift
  skip=()
  if [ "${1:-}" = "--garage" ]; then
    shift
    trap '[ -z "$garage_pid" ] || kill "$garage_pid" 2>/dev/null || true; stop' EXIT
    start_garage
    for t in "${GARAGE_SKIP[@]}"; do skip+=(--skip "$t"); done
    echo "test-store-postgres.sh: on Garage, skipped (GARAGE_SKIP says why): ${GARAGE_SKIP[*]}"
  fi
  echo "test-store-postgres.sh: PostgreSQL on 127.0.0.1:$port; cargo test --test conformance $*"
  KURA_TEST_CONFORMANCE_DATABASE_URL="$server" \
    nice -n 19 cargo test --test conformance -- --test-threads=2 "$@" "${skip[@]}" 2>&1 | tee "$root/conformance.log"
  # filters that name no test would pass silently: at least one test must have run
  grep -Eq "test result: ok\. [1-9][0-9]* passed" "$root/conformance.log" \
    || { echo "test-store-postgres.sh: no conformance test ran for: $*" >&2; exit 1; }
else
  echo "test-store-postgres.sh: PostgreSQL on 127.0.0.1:$port; cargo test --bin kura $*"
  KURA_TEST_DATABASE_URL="$server" nice -n 19 cargo test --bin kura -- "$@"
fi
