#!/usr/bin/env bash
# Installs kura on this machine: the binary (built with `cargo install --path . --locked`),
# its man pages and its bash, zsh and fish completions, all under one prefix.
#
#   ./scripts/install.sh                      # into ~/.local (bin/, share/man/, share/...)
#   ./scripts/install.sh --prefix /usr/local  # system-wide (run as root)
#   ./scripts/install.sh --binary target/release/kura   # install an already built binary
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${HOME}/.local"
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -n "$binary" ]; then
  install -D -m 0755 "$binary" "$prefix/bin/kura"
else
  cargo install --path . --locked --root "$prefix"
fi
kura="$prefix/bin/kura"
"$kura" man "$prefix/share/man/man1" >/dev/null
mkdir -p "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" \
  "$prefix/share/fish/vendor_completions.d"
"$kura" completions bash >"$prefix/share/bash-completion/completions/kura"
"$kura" completions zsh >"$prefix/share/zsh/site-functions/_kura"
"$kura" completions fish >"$prefix/share/fish/vendor_completions.d/kura.fish"

echo "installed $kura, its man pages ($prefix/share/man/man1) and completions"
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "note: $prefix/bin is not on your PATH; add it, e.g.: export PATH=\"$prefix/bin:\$PATH\"" ;;
esac
