#!/usr/bin/env bash
# The search benchmark of docs/search.md: fills N files (default 1,000,000) straight into a
# throwaway database through the store (SQL inserts in one transaction; the index triggers
# run on every row as they do for uploads), then times the first page (50) of several
# queries, as an administrator and as a user who may not read one folder in ten, and the
# move of a folder with and without the index.
# Usage: scripts/bench-search.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export KURA_BENCH_SEARCH_N="${1:-1000000}"
exec cargo test --bin kura vfs::search::tests::bench_search -- --ignored --nocapture
