#!/usr/bin/env bash
# Go lints for CI: gofmt, go vet (natively and for wasip1; -unsafeptr is off
# because the generated bindings convert uintptr from the canonical ABI), go.mod/go.sum
# tidy, and the checked-in bindings in sdk/go/internal/bindings must be what
# sdk/go/generate.sh produces from wit/ today.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$STROWGER_ROOT/sdk/go/tools/goenv.sh"
cd "$STROWGER_ROOT"
strowger_go_find || { echo "lint-go: no Go >= $STROWGER_GO_MIN (run scripts/install-go.sh)" >&2; exit 1; }
echo "== go lint ($(go version))"
"$STROWGER_ROOT/sdk/go/tools/gopkg.sh"
status=0

unformatted="$(gofmt -l sdk/go guest-examples/go benches/plugins)"
if [ -n "$unformatted" ]; then
    echo "lint-go: not gofmt'ed:" >&2; echo "$unformatted" >&2; status=1
fi

for m in sdk/go guest-examples/go/*/ benches/plugins/*/; do
    [ -f "$m/go.mod" ] || continue
    (cd "$m" && go vet -unsafeptr=false ./... && GOOS=wasip1 GOARCH=wasm go vet -unsafeptr=false ./...) || { echo "lint-go: go vet failed in $m" >&2; status=1; }
    (cd "$m" && go mod tidy -diff >/dev/null) || { echo "lint-go: go.mod/go.sum of $m not tidy (run go mod tidy)" >&2; status=1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sdk/go/generate.sh "$tmp"
parts=(shared)
for world in route authorize portability rewrite; do
    parts+=("$world/imports" "$world/exports/wit_exports" "$world/exports/export_strowger_plugin_lifecycle")
done
for part in "${parts[@]}"; do
    if ! diff -r "$tmp/$part" "sdk/go/internal/bindings/$part" >"$tmp/diff" 2>&1; then
        echo "lint-go: sdk/go/internal/bindings/$part is stale; run sdk/go/generate.sh" >&2
        head -n 40 "$tmp/diff" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "lint-go: ok"
exit "$status"
