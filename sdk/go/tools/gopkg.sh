#!/usr/bin/env bash
# Makes the Go module go.bytecodealliance.org/pkg (v0.4.0, the runtime
# package `wit-bindgen go` output imports) available at
# sdk/go/third_party/go-pkg, where the go.mod files `replace` it.
#
# Why: the Go module proxy reachable here answers 403 for that module, but
# the crates.io package wit-bindgen-go 0.63.0 (the generator of our
# bindings) ships the very same module in src/pkg. We take it from the
# cargo registry (unpacked by `cargo install wit-bindgen-cli`, or extracted
# from the downloaded .crate) and link it; nothing is committed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
link="$here/third_party/go-pkg"
ver=0.63.0
if [ -f "$link/go.mod" ]; then exit 0; fi
reg="${CARGO_HOME:-$HOME/.cargo}/registry"
src="$(ls -d "$reg"/src/*/"wit-bindgen-go-$ver" 2>/dev/null | head -n1 || true)"
if [ -z "$src" ]; then
    crate="$(ls "$reg"/cache/*/"wit-bindgen-go-$ver.crate" 2>/dev/null | head -n1 || true)"
    if [ -z "$crate" ]; then
        echo "gopkg.sh: wit-bindgen-go $ver not in the cargo registry; run scripts/install-go.sh" >&2
        exit 1
    fi
    dest="${CARGO_TARGET_DIR:-$HOME/.cache}/go-plugin/crates"
    mkdir -p "$dest"
    tar -xzf "$crate" -C "$dest"
    src="$dest/wit-bindgen-go-$ver"
fi
[ -f "$src/src/pkg/go.mod" ] && grep -q '^module go.bytecodealliance.org/pkg' "$src/src/pkg/go.mod" \
    || { echo "gopkg.sh: $src/src/pkg is not go.bytecodealliance.org/pkg" >&2; exit 1; }
mkdir -p "$(dirname "$link")"
ln -sfn "$src/src/pkg" "$link"
