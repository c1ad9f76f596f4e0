#!/usr/bin/env bash
# Runs the whole test suite: lint, unit tests, and conformance tests with real clients
# (litmus, cadaver, rclone, curl) against a real server on 127.0.0.1.
# Installs the Debian packages it needs; fails loudly if one cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=(litmus cadaver rclone curl sha256sum)
packages=(litmus cadaver rclone curl coreutils)
missing=()
for i in "${!tools[@]}"; do
  command -v "${tools[$i]}" >/dev/null 2>&1 || missing+=("${packages[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || { echo "test.sh: required tool '$t' is missing and could not be installed" >&2; exit 1; }
done

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked -- --test-threads=3 --show-output
