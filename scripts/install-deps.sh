#!/usr/bin/env bash
# Installs what builds and tests need on a fresh machine; cheap when already there.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

need_apt=()
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v kamailio >/dev/null || need_apt+=(kamailio kamailio-lua-modules)
command -v rtpengine >/dev/null || need_apt+=(rtpengine-daemon)
if [ "${#need_apt[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${need_apt[@]}"
fi

rustup target list --installed | grep -q '^wasm32-wasip2$' || rustup target add wasm32-wasip2
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
if [ -x "$STROWGER_ROOT/scripts/install-go.sh" ]; then "$STROWGER_ROOT/scripts/install-go.sh"; fi
