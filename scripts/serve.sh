#!/usr/bin/env bash
# Builds Kura (release) and starts it on its embedded defaults: ./kura-data, 0.0.0.0:8443,
# HTTPS with a self-signed certificate generated on first start. Extra arguments go to
# `kura serve` (e.g. --config config/kura.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -- serve "$@"
