#!/usr/bin/env bash
# THE command that (re)generates the Go bindings of the plugin contract:
# one package tree per hook world, from wit/strowger.wit, into
# sdk/go/internal/bindings/<world>/ (or OUT_DIR/<world>/ when given; lint-go.sh
# uses that to check the checked-in bindings are up to date).
#
#   sdk/go/generate.sh [OUT_DIR]
#
# Needs wit-bindgen-cli 0.63 (scripts/install-go.sh installs it). Never pass
# --generate-stubs: the export side (internal/bindings/<world>/exports/
# export_*) is hand-written glue into the SDK, and that flag would overwrite
# it with panicking stubs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
source "$here/tools/goenv.sh"
strowger_go_find || { echo "generate.sh: no Go >= $STROWGER_GO_MIN (run scripts/install-go.sh)" >&2; exit 1; }
command -v wit-bindgen >/dev/null || { echo "generate.sh: wit-bindgen missing (run scripts/install-go.sh)" >&2; exit 1; }
wit-bindgen --version | grep -q '^wit-bindgen-cli 0\.63\.' \
    || { echo "generate.sh: need wit-bindgen-cli 0.63, have $(wit-bindgen --version)" >&2; exit 1; }

out="${1:-$here/internal/bindings}"
mkdir -p "$out"
# The `types` and `host` interfaces are the same in every world: wit-bindgen
# go (no `with` mapping in 0.63) generates them per world, identical but for
# import paths. They are kept once, in shared/imports/, with the glue package
# (shared/glue/) that serves the SDK's host functions through them; each
# world's generated code is pointed there.
rm -rf "$out/shared"
mkdir -p "$out/shared/imports" "$out/shared/glue"
for world in route authorize portability rewrite; do
    # Generated parts: imports/ and exports/wit_exports/ (wit-bindgen) and
    # exports/export_strowger_plugin_lifecycle/ (template in tools/glue).
    # The hook's export package (exports/export_strowger_plugin_<hook>/) is
    # hand-written and kept.
    rm -rf "$out/$world/imports" "$out/$world/exports/wit_exports" \
        "$out/$world/glue" "$out/$world/exports/export_strowger_plugin_lifecycle"
    wit-bindgen go "$root/wit" --quiet --world "$world" \
        --pkg-name "strowger.dev/sdk/go/internal/bindings/$world" \
        --out-dir "$out/$world" >"$out/.wit-bindgen.log" 2>&1 \
        || { cat "$out/.wit-bindgen.log" >&2; exit 1; }
    rm -f "$out/.wit-bindgen.log"
    for iface in strowger_plugin_host strowger_plugin_types; do
        if [ "$world" = route ]; then
            mv "$out/$world/imports/$iface" "$out/shared/imports/$iface"
        else
            rm -rf "$out/$world/imports/$iface"
        fi
    done
    find "$out/$world" -name '*.go' -path "*/imports/*" -o -name '*.go' -path "*/wit_exports/*" |
        xargs sed -i "s#internal/bindings/$world/imports/strowger_plugin_\(host\|types\)\"#internal/bindings/shared/imports/strowger_plugin_\1\"#"
    mkdir -p "$out/$world/exports/export_strowger_plugin_lifecycle"
    sed "s/WORLD/$world/g" "$here/tools/glue/lifecycle.go.tmpl" \
        >"$out/$world/exports/export_strowger_plugin_lifecycle/lifecycle.go"
done
sed -i "s#internal/bindings/route/imports/strowger_plugin_types\"#internal/bindings/shared/imports/strowger_plugin_types\"#" \
    "$out/shared/imports/strowger_plugin_host/"*.go
cp "$here/tools/glue/glue.go.tmpl" "$out/shared/glue/glue.go"
