#!/usr/bin/env bash
# Prints the path of the WASI preview1 *reactor* adapter that turns a Go
# wasip1 core module into a component (`wasm-tools component new --adapt`).
# The bytes come from the crates.io package
# wasi-preview1-component-adapter-provider, at the version the workspace pins
# (it must match the host's wasmtime); they are copied once to
# $CARGO_TARGET_DIR/go-plugin/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../../scripts/env.sh"
crate=wasi-preview1-component-adapter-provider
ver="$(sed -n "s/^$crate = \"=\{0,1\}\([0-9.]*\)\".*/\1/p" "$STROWGER_ROOT/Cargo.toml" | head -n1)"
[ -n "$ver" ] || { echo "adapter.sh: $crate not pinned in Cargo.toml" >&2; exit 1; }
out="$CARGO_TARGET_DIR/go-plugin/wasi_snapshot_preview1.reactor-$ver.wasm"
if [ ! -s "$out" ]; then
    src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$ver" 2>/dev/null | head -n1 || true)"
    if [ -z "$src" ]; then
        # Not unpacked yet: let cargo fetch the workspace's dependencies.
        cargo fetch --manifest-path "$STROWGER_ROOT/Cargo.toml" >&2
        src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$ver" 2>/dev/null | head -n1 || true)"
    fi
    [ -n "$src" ] && [ -f "$src/artefacts/wasi_snapshot_preview1.reactor.wasm" ] \
        || { echo "adapter.sh: $crate-$ver not found in the cargo registry" >&2; exit 1; }
    mkdir -p "$(dirname "$out")"
    cp "$src/artefacts/wasi_snapshot_preview1.reactor.wasm" "$out.tmp"
    mv "$out.tmp" "$out"
fi
echo "$out"
