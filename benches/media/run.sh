#!/usr/bin/env bash
# Strowger's built-in media relay vs rtpengine's userspace relay, same machine,
# same load generator, same run.
#
#   benches/media/run.sh            # steps 250,500,1000,2000,3000 x 10 s each
#   benches/media/run.sh --smoke    # 20 streams x 2 s (CI): checks every stream flows
#   benches/media/run.sh --steps 500,1000 --duration 5
#   benches/media/run.sh --priority # run relays + generator at nice -10 (root), and raise
#                                   # this session's autogroup to nice -10 for the run (with
#                                   # sched_autogroup, plain nice does not act across sessions)
#                                   # so other work on a shared machine does not starve them
#
# Both relays are driven over rtpengine's ng protocol (bencode/UDP offer,
# answer, delete) by host/media/src/bin/rtp-load.rs: N bidirectional G.711
# streams (160-byte payload every 20 ms each way). Per step: packets sent and
# relayed back, loss, relay CPU (utime+stime from /proc/<pid>/stat over the
# sending window) and CPU per relayed packet. Results: benches/results/media-<date>.md/.json
# (smoke runs write to $CARGO_TARGET_DIR/media-smoke/ instead).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
source scripts/env.sh

STEPS=250,500,1000,2000,3000
DURATION=10
SMOKE=0
WORKERS=2
NICE=()
COALESCE_US=0
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; STEPS=20; DURATION=2 ;;
        --steps) STEPS="$2"; shift ;;
        --duration) DURATION="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        --priority) NICE=(nice -n -10) ;;
        --coalesce-us) COALESCE_US="$2"; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

cargo build --release -q -p strowger-media --bins
BIN="$CARGO_TARGET_DIR/release"
ulimit -n "$(ulimit -Hn)" || true

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

STAMP="$(date -u +%Y%m%d-%H%M%S)"
if [ "$SMOKE" = 1 ]; then
    OUTDIR="$CARGO_TARGET_DIR/media-smoke"
else
    OUTDIR="benches/results"
fi
mkdir -p "$OUTDIR"
WORK="$(mktemp -d)"
PIDS=()
AUTOGROUP_SET=0
if [ "${#NICE[@]}" -gt 0 ] && [ -w /proc/self/autogroup ]; then
    echo -10 > /proc/self/autogroup 2>/dev/null && AUTOGROUP_SET=1 || true
fi
cleanup() {
    if [ "$AUTOGROUP_SET" = 1 ]; then echo 0 > /proc/self/autogroup 2>/dev/null || true; fi
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

INPUTS=()
# --- Strowger ---
NG1="$(free_port)"
"${NICE[@]}" "$BIN/strowger-mediad" --ng "127.0.0.1:$NG1" --bind 127.0.0.1 --port-min 10000 --port-max 33999 \
    --workers "$WORKERS" --timeout-s 0 --coalesce-us "$COALESCE_US" 2>"$WORK/strowger.log" &
SPID=$!
PIDS+=("$SPID")
"${NICE[@]}" "$BIN/rtp-load" run --ng "127.0.0.1:$NG1" --pid "$SPID" --label strowger \
    --version "$(git rev-parse --short HEAD 2>/dev/null || echo dev)" \
    --steps "$STEPS" --duration "$DURATION" --out "$WORK/strowger.json"
kill "$SPID" 2>/dev/null || true
wait "$SPID" 2>/dev/null || true
INPUTS+=(--in "$WORK/strowger.json")

# --- rtpengine (userspace only: --table=-1) ---
if command -v rtpengine >/dev/null 2>&1; then
    NG2="$(free_port)"
    "${NICE[@]}" rtpengine --foreground --log-stderr --log-level=3 --table=-1 --interface=127.0.0.1 \
        --listen-ng="127.0.0.1:$NG2" --port-min 36000 --port-max 59999 --delete-delay=0 \
        --num-threads="$WORKERS" 2>"$WORK/rtpengine.log" &
    RPID=$!
    PIDS+=("$RPID")
    RVER="$(rtpengine --version 2>&1 | sed -n 's/^Version: //p' | head -1)"
    "${NICE[@]}" "$BIN/rtp-load" run --ng "127.0.0.1:$NG2" --pid "$RPID" --label rtpengine --version "$RVER" \
        --steps "$STEPS" --duration "$DURATION" --out "$WORK/rtpengine.json"
    kill "$RPID" 2>/dev/null || true
    wait "$RPID" 2>/dev/null || true
    INPUTS+=(--in "$WORK/rtpengine.json")
else
    echo "rtpengine not installed: Strowger only" >&2
fi

"$BIN/rtp-load" report "${INPUTS[@]}" --md "$OUTDIR/media-$STAMP.md" --json "$OUTDIR/media-$STAMP.json"
echo "results: $OUTDIR/media-$STAMP.md"

if [ "$SMOKE" = 1 ]; then
    # Smoke = functional: every stream of every relay carried packets.
    dead="$(jq '[.runs[].steps[].dead_directions] | add' "$OUTDIR/media-$STAMP.json")"
    if [ "$dead" != 0 ]; then
        echo "smoke: $dead stream directions carried nothing" >&2
        exit 1
    fi
fi
