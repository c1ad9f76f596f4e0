#!/usr/bin/env bash
# Runs the whole test suite: lint, unit tests, and conformance tests with real clients
# (litmus, cadaver, rclone, curl, aws-cli, boto3, s3cmd; pebble as the ACME CA) against a real server on 127.0.0.1,
# and mounted clients: rclone mount over FUSE (fuse3), GNOME's gio over gvfs under dbus-run-session,
# and the browser app in a headless Chromium (chromium, chromium-driver) driven by Selenium.
# Installs the Debian packages it needs; fails loudly if one cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=(litmus cadaver rclone curl sha256sum s3cmd openssl pebble pebble-challtestsrv fusermount3 gio dbus-run-session systemd-analyze chromium chromedriver)
packages=(litmus cadaver rclone curl coreutils s3cmd openssl pebble pebble fuse3 libglib2.0-bin dbus-daemon systemd chromium chromium-driver)
missing=()
for i in "${!tools[@]}"; do
  command -v "${tools[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
# gvfs's WebDAV backend and its daemons are not on PATH
gvfs_parts=(/usr/libexec/gvfsd-dav /usr/libexec/gvfsd)
gvfs_packages=(gvfs-backends gvfs-daemons)
for i in "${!gvfs_parts[@]}"; do
  [ -x "${gvfs_parts[$i]}" ] || missing+=("${gvfs_packages[$i]}")
done
# PostgreSQL for the scale-out tests (tests/conformance/postgres*.rs): Debian's server binaries
# (initdb and pg_ctl in /usr/lib/postgresql/<major>/bin, not on PATH) and psql. The package
# creates the `postgres` user the test clusters run as when the tests run as root.
pg_initdb() { ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1; }
{ [ -n "$(pg_initdb)" ] && command -v psql >/dev/null 2>&1; } || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# aws-cli and the newest boto3 with the CRT (CRC32C and CRC64NVME checksums) from PyPI; the
# Prometheus client's text parser for the metrics test
if ! command -v aws >/dev/null 2>&1 || ! python3 -c "import boto3, awscrt, openapi_spec_validator, prometheus_client, requests" >/dev/null 2>&1; then
  echo "test.sh: installing awscli, boto3[crt], openapi-spec-validator, prometheus-client and requests from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check awscli "boto3[crt]" openapi-spec-validator prometheus-client requests
fi
# a local SMTP server for the e-mail notification tests
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "test.sh: installing aiosmtpd from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check aiosmtpd
fi
python3 -c "import aiosmtpd" || { echo "test.sh: aiosmtpd could not be installed" >&2; exit 1; }
# Selenium drives the headless Chromium of the browser app's tests (tests/conformance/web_ui.rs)
if ! python3 -c "import selenium" >/dev/null 2>&1; then
  echo "test.sh: installing selenium from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check selenium
fi
python3 -c "import selenium" || { echo "test.sh: selenium could not be installed" >&2; exit 1; }
for t in "${tools[@]}" aws python3; do
  command -v "$t" >/dev/null 2>&1 || { echo "test.sh: required tool '$t' is missing and could not be installed" >&2; exit 1; }
done
for p in "${gvfs_parts[@]}"; do
  [ -x "$p" ] || { echo "test.sh: required gvfs part '$p' is missing and could not be installed" >&2; exit 1; }
done
[ -n "$(pg_initdb)" ] || { echo "test.sh: PostgreSQL's initdb is missing and could not be installed (package postgresql)" >&2; exit 1; }
command -v psql >/dev/null 2>&1 || { echo "test.sh: psql is missing and could not be installed (package postgresql)" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then
  id -u postgres >/dev/null 2>&1 || { echo "test.sh: the tests run as root and there is no 'postgres' user to run the test PostgreSQL as" >&2; exit 1; }
  command -v runuser >/dev/null 2>&1 || { echo "test.sh: runuser (util-linux) is required to run the test PostgreSQL as 'postgres'" >&2; exit 1; }
fi
[ -c /dev/fuse ] || { echo "test.sh: /dev/fuse is missing: the rclone mount tests need FUSE" >&2; exit 1; }
python3 -c "import boto3, awscrt, openapi_spec_validator, prometheus_client, requests" || { echo "test.sh: boto3 with awscrt, openapi-spec-validator, prometheus-client and requests are required" >&2; exit 1; }

# Peer suites (tests/conformance/peer_suites.rs), at the versions pinned there: s3s-e2e from
# crates.io into $CARGO_HOME/bin (compiled once, minutes), and the minio module from PyPI with
# the functional tests of its source distribution unpacked into target/peer-suites/.
pinned() { sed -n "s/^const $1: &str = \"\(.*\)\";/\1/p" tests/conformance/peer_suites.rs; }
s3s_e2e_version=$(pinned S3S_E2E_VERSION)
minio_version=$(pinned MINIO_PY_VERSION)
[ -n "$s3s_e2e_version" ] && [ -n "$minio_version" ] || { echo "test.sh: peer suite versions not found in peer_suites.rs" >&2; exit 1; }
if ! s3s-e2e --version 2>/dev/null | grep -qx "s3s-e2e $s3s_e2e_version"; then
  echo "test.sh: installing s3s-e2e $s3s_e2e_version with cargo install (compiles for minutes)"
  # --debug: the suite's speed does not matter, and unoptimised it compiles sooner
  nice cargo install --quiet --locked --debug s3s-e2e --version "$s3s_e2e_version"
fi
s3s-e2e --version | grep -qx "s3s-e2e $s3s_e2e_version" || { echo "test.sh: s3s-e2e $s3s_e2e_version is required and could not be installed" >&2; exit 1; }
if [ "$(python3 -c 'import minio; print(minio.__version__)' 2>/dev/null)" != "$minio_version" ]; then
  echo "test.sh: installing minio $minio_version from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check "minio==$minio_version"
fi
minio_tests="target/peer-suites/minio-$minio_version/tests/functional/tests.py"
if [ ! -f "$minio_tests" ]; then
  echo "test.sh: unpacking minio $minio_version's functional tests from its source distribution"
  mkdir -p target/peer-suites
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d target/peer-suites "minio==$minio_version"
  tar -xzf "target/peer-suites/minio-$minio_version.tar.gz" -C target/peer-suites "minio-$minio_version/tests/functional"
fi
[ -f "$minio_tests" ] || { echo "test.sh: $minio_tests is required and could not be unpacked" >&2; exit 1; }

# Garage, the object store of the scale-out tests (tests/conformance/garage.rs, object_store.rs and
# the PostgreSQL + Garage pass below): 2.5.0 from crates.io into $CARGO_HOME/bin (compiles for
# about 21 minutes on 2 cores, once)
garage_version=2.5.0
garage_bin=${KURA_TEST_GARAGE_BIN:-$(command -v garage || echo "${CARGO_HOME:-$HOME/.cargo}/bin/garage")}
if ! "$garage_bin" --version 2>/dev/null | grep -q "garage cargo:$garage_version "; then
  echo "test.sh: installing garage $garage_version with cargo install (compiles for about 21 minutes)"
  nice cargo install --quiet --locked garage --version "$garage_version"
  garage_bin="${CARGO_HOME:-$HOME/.cargo}/bin/garage"
fi
"$garage_bin" --version 2>/dev/null | grep -q "garage cargo:$garage_version " || { echo "test.sh: garage $garage_version is required and could not be installed" >&2; exit 1; }

cargo fmt --all -- --check
# import direction: no loop, no upward import between the layers of docs/architecture.md
python3 scripts/layers.py --self-test
python3 scripts/layers.py
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked -- --test-threads=3 --show-output
# the unit tests again with the store on PostgreSQL (a throw-away cluster; docs/scale-out.md)
./scripts/test-store-postgres.sh
# and the conformance tests issue #18 names with their servers' store on PostgreSQL (litmus
# and boto3 on PostgreSQL run above, in postgres_store.rs), then again with their bytes in a
# Garage bucket (litmus, boto3, aws-cli and rclone on PostgreSQL + Garage run above, in
# object_store.rs; the tests that read files under the data dir are skipped by name there)
./scripts/test-store-postgres.sh --conformance quotas:: locks permissions:: s3_clients:: users::
./scripts/test-store-postgres.sh --conformance --garage quotas:: locks permissions:: s3_clients:: users::

# The benchmark harness in quick mode (seconds, debug build, cheap peers): checks that it still
# runs against Kura and the peers without a failed request, not the timings (docs/performance.md).
./scripts/bench.sh --quick
