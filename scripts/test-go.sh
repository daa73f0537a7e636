#!/usr/bin/env bash
# Runs the Go unit tests (natively, no wasm host): the SDK and every Go
# plugin in guest-examples/go/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
source "$STROWGER_ROOT/sdk/go/tools/goenv.sh"
cd "$STROWGER_ROOT"
strowger_go_find || { echo "test-go: no Go >= $STROWGER_GO_MIN (run scripts/install-go.sh)" >&2; exit 1; }
echo "test-go: $(go version)"
"$STROWGER_ROOT/sdk/go/tools/gopkg.sh"
status=0
for m in sdk/go guest-examples/go/*/ benches/plugins/*/; do
    [ -f "$m/go.mod" ] || continue
    echo "== go test $m"
    (cd "$m" && go test -count=1 ./...) || status=1
done
exit "$status"
