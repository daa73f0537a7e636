#!/usr/bin/env bash
# Installs what building needs when missing (scripts/install-deps.sh --build:
# the wasm32-wasip2 target, Go >= 1.27.1, wasm-tools), builds what the switch
# needs (plugins, release binary) and runs it.
# Without arguments: `strowger serve --demo` (127.0.0.1:5060 UDP+TCP, demo
# users 1001-1010 with password demo<ext>, route-table routing between them).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"
scripts/install-deps.sh --build
scripts/build-guests.sh >/dev/null
cargo build --release -p strowger
if [ "$#" -eq 0 ]; then set -- --demo; fi
exec "$CARGO_TARGET_DIR/release/strowger" serve "$@"
