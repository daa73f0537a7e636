#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/install-deps.sh: SIPp,
# Kamailio, rtpengine, the wasm32-wasip2 target, Go >= 1.27.1, wasm-tools;
# only version checks when all is there), builds the plugins from
# guest-examples/, then runs the Rust workspace tests (unit, runtime, SIPp,
# Kamailio, API), the Go tests and the example policy repository's test cases.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"

scripts/install-deps.sh
scripts/build-guests.sh
# The black-box tests run the real binary; build it once with the same
# feature set as everything else (see host/testkit/src/paths.rs).
cargo build --workspace --bins
export STROWGER_BIN="${STROWGER_BIN:-$CARGO_TARGET_DIR/debug/strowger}"
cargo test --workspace --all-targets --no-fail-fast
# the benchmark policy's Rust twin is a workspace of its own
cargo test --manifest-path benches/plugins/bench-prefix-rust/Cargo.toml
if [ -x scripts/test-go.sh ]; then scripts/test-go.sh; fi
if [ -x scripts/test-policies.sh ]; then scripts/test-policies.sh; fi
