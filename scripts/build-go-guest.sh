#!/usr/bin/env bash
# Builds one Go plugin (a main package using strowger.dev/sdk/go) into a
# validated WebAssembly component.
#
#   scripts/build-go-guest.sh DIR OUT.wasm
#
# Steps (the same as `strowger plugin build DIR`):
#  1. the world is the SDK world package the plugin imports
#     (strowger.dev/sdk/go/route, .../authorize, .../portability, .../rewrite);
#  2. GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
#     -ldflags=-checklinkname=0 (both mandatory) -> a wasip1 reactor module;
#  3. wasm-tools component embed wit/ --world WORLD (component type metadata);
#  4. wasm-tools component new --adapt with the WASI preview1 reactor adapter;
#  5. wasm-tools strip -d '^\.debug_' (DWARF), wasm-tools validate.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$STROWGER_ROOT/sdk/go/tools/goenv.sh"
[ "$#" -eq 2 ] || { echo "usage: $0 DIR OUT.wasm" >&2; exit 2; }
dir="$(cd "$1" && pwd)"
out="$2"
strowger_go_find || { echo "build-go-guest: no Go >= $STROWGER_GO_MIN (run scripts/install-go.sh)" >&2; exit 1; }
command -v wasm-tools >/dev/null || { echo "build-go-guest: wasm-tools missing (run scripts/install-go.sh)" >&2; exit 1; }
adapter="$("$STROWGER_ROOT/sdk/go/tools/adapter.sh")"
"$STROWGER_ROOT/sdk/go/tools/gopkg.sh"

export GOOS=wasip1 GOARCH=wasm
worlds="$(cd "$dir" && go list -deps . | sed -n 's#^strowger\.dev/sdk/go/\(route\|authorize\|portability\|rewrite\)$#\1#p')"
case "$(printf '%s\n' "$worlds" | grep -c .)" in
    1) world="$worlds" ;;
    0) echo "build-go-guest: $dir imports none of strowger.dev/sdk/go/{route,authorize,portability,rewrite}" >&2; exit 1 ;;
    *) echo "build-go-guest: $dir imports several worlds:" $worlds "(one plugin = one world)" >&2; exit 1 ;;
esac

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$dir" && go build -trimpath -buildmode=c-shared -ldflags=-checklinkname=0 -o "$tmp/core.wasm" .)
wasm-tools component embed "$STROWGER_ROOT/wit" --world "$world" "$tmp/core.wasm" -o "$tmp/embedded.wasm"
wasm-tools component new "$tmp/embedded.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$tmp/component.wasm"
# Go's linker writes no DWARF for wasm worth speaking of (~10 KB), but strip
# as for Rust plugins.
wasm-tools strip -d '^\.debug_' "$tmp/component.wasm" -o "$tmp/stripped.wasm"
wasm-tools validate "$tmp/stripped.wasm"
mkdir -p "$(dirname "$out")"
mv "$tmp/stripped.wasm" "$out"
echo "build-go-guest: $out ($(stat -c %s "$out") bytes, world $world)"
