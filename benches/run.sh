#!/usr/bin/env bash
# Side-by-side benchmarks: SIPp direct, Kamailio (native cfg, KEMI Lua),
# rtpengine and Strowger on this machine, in one run, on 127.0.0.x only.
#
#   benches/run.sh [--smoke] [--only calls,registrations,concurrent,media,decisions]
#                  [--no-build] [--profile] [other options of benches/harness/bench.py]
#   benches/run.sh --soak [--smoke] [--no-build] [options of benches/soak/soak.py]
#
# Installs what is missing (Debian sip-tester, kamailio, kamailio-lua-modules,
# rtpengine-daemon), builds the release binary and the plugins, then writes
# benches/results/<timestamp>.{md,json} and latest.md (latest-smoke.md for
# --smoke). See benches/README.md.
#
# --soak instead runs the 10-minute attack soak (benches/soak/soak.py; 20 s
# with --smoke): it only builds the release binary and needs no package.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
cd "$STROWGER_ROOT"

build=1
soak=0
args=()
for a in "$@"; do
    case "$a" in
        --no-build) build=0 ;;
        --soak) soak=1 ;;
        -h|--help) exec python3 benches/harness/bench.py --help ;;
        *) args+=("$a") ;;
    esac
done

if [ "$soak" -eq 1 ]; then
    if [ "$build" -eq 1 ]; then
        echo "== building strowger (release)"
        cargo build --release -p strowger
    fi
    exec python3 benches/soak/soak.py \
        --strowger-bin "$CARGO_TARGET_DIR/release/strowger" \
        "${args[@]}"
fi

# --- packages (idempotent: apt only runs when something is missing) -------
need_apt=()
command -v sipp >/dev/null || need_apt+=(sip-tester)
command -v kamailio >/dev/null || need_apt+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so ] \
    || compgen -G "/usr/lib/*/kamailio/modules/app_lua.so" >/dev/null \
    || need_apt+=(kamailio-lua-modules)
command -v rtpengine >/dev/null || need_apt+=(rtpengine-daemon)
command -v python3 >/dev/null || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "== installing ${need_apt[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -q
    "${sudo_cmd[@]}" apt-get install -y -q "${need_apt[@]}"
fi

# --- build -----------------------------------------------------------------
if [ "$build" -eq 1 ]; then
    echo "== building plugins and strowger (release)"
    if ! scripts/build-guests.sh >/dev/null; then
        echo "warning: plugin build failed; the Strowger columns will say so" >&2
    fi
    # the Go twin of the routing policy (needs the Go toolchain of scripts/install-go.sh)
    for d in benches/plugins/*/; do
        [ -f "$d/go.mod" ] || continue
        if ! scripts/build-go-guest.sh "$d" "$STROWGER_PLUGIN_DIR/$(basename "$d").wasm"; then
            echo "warning: Go plugin $d did not build; the Strowger + Go column will say so" >&2
        fi
    done
    if ! cargo build --release -p strowger; then
        echo "warning: strowger release build failed; the Strowger columns will say so" >&2
    fi
fi

exec python3 benches/harness/bench.py \
    --strowger-bin "$CARGO_TARGET_DIR/release/strowger" \
    --plugin-dir "$STROWGER_PLUGIN_DIR" \
    "${args[@]}"
