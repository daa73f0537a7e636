#!/usr/bin/env bash
# Runs the example policy repository's test cases offline in the real plugin
# runtime (`strowger policy test policies/`); exit status non-zero if one
# fails. Needs the standard plugins (scripts/build-guests.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
BIN="${STROWGER_BIN:-$CARGO_TARGET_DIR/debug/strowger}"
if [ ! -x "$BIN" ]; then
    cargo build --workspace --bins
    BIN="$CARGO_TARGET_DIR/debug/strowger"
fi
"$BIN" policy test policies/
