#!/usr/bin/env bash
# Installs what builds and tests need on a fresh machine. When everything is
# there it only runs a few `command -v` / version checks (well under a second).
#
#   scripts/install-deps.sh          everything: --build, plus SIPp, Kamailio
#                                    (with its Lua modules), rtpengine, openssl,
#                                    promtool (Debian `prometheus`), python3
#                                    (scripts/test.sh, .ci/run) and the rustfmt
#                                    and clippy components (.ci/run)
#   scripts/install-deps.sh --build  what building the switch and its plugins
#                                    needs (scripts/serve.sh): the Rust target
#                                    wasm32-wasip2, Go >= 1.27.1, wasm-tools, the
#                                    Go SDK's runtime package (scripts/install-go.sh)
#
# Debian packages come from apt-get (with sudo when not root), and only when
# one is missing: `apt-get update` first then.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$STROWGER_ROOT"

mode=all
case "${1:-}" in
    "") ;;
    --build) mode=build ;;
    *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

need_apt=()
need_apt_norec=()
if [ "$mode" = all ]; then
    have sipp || need_apt+=(sip-tester)
    have kamailio || need_apt+=(kamailio)
    # app_lua.so (the benchmark's KEMI Lua config) is a package of its own
    compgen -G "/usr/lib/*/kamailio/modules/app_lua.so" >/dev/null \
        || compgen -G "/usr/lib/kamailio/modules/app_lua.so" >/dev/null \
        || compgen -G "/usr/local/lib*/kamailio/modules/app_lua.so" >/dev/null \
        || need_apt+=(kamailio-lua-modules)
    have rtpengine || need_apt+=(rtpengine-daemon)
    have openssl || need_apt+=(openssl) # test certificates (host/testkit)
    # `promtool check metrics` checks /metrics (host/switch/tests/blackbox_observability.rs);
    # only promtool is used: the package is installed without its recommends
    # (node exporter), and its server is not needed
    have promtool || need_apt_norec+=(prometheus)
    # applies the fail2ban filter's regex with fail2ban's engine (same test)
    have python3 || need_apt+=(python3)
fi
if [ "$((${#need_apt[@]} + ${#need_apt_norec[@]}))" -gt 0 ]; then
    echo "install-deps: installing ${need_apt[*]} ${need_apt_norec[*]} with apt-get"
    command -v apt-get >/dev/null || {
        echo "install-deps: no apt-get; install these yourself: ${need_apt[*]} ${need_apt_norec[*]}" >&2
        exit 1
    }
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    if [ "${#need_apt[@]}" -gt 0 ]; then
        "${sudo[@]}" apt-get install -y -q "${need_apt[@]}"
    fi
    if [ "${#need_apt_norec[@]}" -gt 0 ]; then
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${need_apt_norec[@]}"
    fi
fi

# The plugins' Rust target. The sysroot check is cheaper than asking rustup.
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-wasip2/lib" ]; then
    command -v rustup >/dev/null || {
        echo "install-deps: the wasm32-wasip2 Rust target is missing and there is no rustup to add it (https://rustup.rs)" >&2
        exit 1
    }
    rustup target add wasm32-wasip2
fi
if [ "$mode" = all ]; then
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
    scripts/install-go.sh
else
    scripts/install-go.sh --build
fi
