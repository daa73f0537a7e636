#!/usr/bin/env bash
# Builds every plugin in guest-examples/ (Rust and Go) into a component and
# copies it to $STROWGER_PLUGIN_DIR as <name>.wasm.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
mkdir -p "$STROWGER_PLUGIN_DIR"

pkgs=()
for d in guest-examples/rust/*/; do pkgs+=(-p "$(basename "$d")"); done
cargo build --release --target wasm32-wasip2 "${pkgs[@]}"
for d in guest-examples/rust/*/; do
    name="$(basename "$d")"
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/${name//-/_}.wasm" "$STROWGER_PLUGIN_DIR/$name.wasm"
done

if compgen -G "guest-examples/go/*/go.mod" > /dev/null; then
    for d in guest-examples/go/*/; do
        [ -f "$d/go.mod" ] || continue
        scripts/build-go-guest.sh "$d" "$STROWGER_PLUGIN_DIR/$(basename "$d").wasm"
    done
fi
ls -l "$STROWGER_PLUGIN_DIR"
