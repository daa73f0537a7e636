# Sourced by the other scripts: one place for paths shared by builds and tests.
STROWGER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STROWGER_ROOT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STROWGER_ROOT/target}"
# Built plugin components (.wasm), named after their package: route-table.wasm, ...
export STROWGER_PLUGIN_DIR="${STROWGER_PLUGIN_DIR:-$CARGO_TARGET_DIR/plugins}"
