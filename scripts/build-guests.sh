#!/usr/bin/env bash
# Builds every plugin in guest-examples/ and benches/plugins/ (Rust and Go)
# into a component and copies it to $STROWGER_PLUGIN_DIR as <name>.wasm.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
mkdir -p "$STROWGER_PLUGIN_DIR"

pkgs=()
for d in guest-examples/rust/*/; do pkgs+=(-p "$(basename "$d")"); done
cargo build --release --target wasm32-wasip2 "${pkgs[@]}"
# The workspace release profile keeps line tables (DWARF): ~90% of a Rust
# component. Strip custom sections named .debug_* (the `name` section stays,
# for trap backtraces), as `strowger plugin build` does.
strip_debug() { # IN OUT
    if command -v wasm-tools >/dev/null; then
        wasm-tools strip -d '^\.debug_' "$1" -o "$2"
    else
        echo "build-guests: wasm-tools missing, $(basename "$2") keeps its debug info (scripts/install-go.sh installs it)" >&2
        cp "$1" "$2"
    fi
}
for d in guest-examples/rust/*/; do
    name="$(basename "$d")"
    in="$CARGO_TARGET_DIR/wasm32-wasip2/release/${name//-/_}.wasm"
    strip_debug "$in" "$STROWGER_PLUGIN_DIR/$name.wasm"
    echo "build-guests: $name.wasm $(stat -c %s "$STROWGER_PLUGIN_DIR/$name.wasm") bytes ($(stat -c %s "$in") before stripping)"
done

# Benchmark plugins (benches/plugins/): the Go routing policy and its Rust
# twin (its own Cargo workspace, outside the root one's members).
for d in benches/plugins/*/; do
    name="$(basename "$d")"
    if [ -f "$d/Cargo.toml" ]; then
        cargo build --release --target wasm32-wasip2 --manifest-path "$d/Cargo.toml"
        strip_debug "$CARGO_TARGET_DIR/wasm32-wasip2/release/${name//-/_}.wasm" "$STROWGER_PLUGIN_DIR/$name.wasm"
        echo "build-guests: $name.wasm $(stat -c %s "$STROWGER_PLUGIN_DIR/$name.wasm") bytes"
    elif [ -f "$d/go.mod" ]; then
        scripts/build-go-guest.sh "$d" "$STROWGER_PLUGIN_DIR/$name.wasm"
    fi
done

if compgen -G "guest-examples/go/*/go.mod" > /dev/null; then
    for d in guest-examples/go/*/; do
        [ -f "$d/go.mod" ] || continue
        scripts/build-go-guest.sh "$d" "$STROWGER_PLUGIN_DIR/$(basename "$d").wasm"
    done
fi
