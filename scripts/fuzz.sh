#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz / libFuzzer) of the SIP parser and the
# transaction layer: host/sip/fuzz, targets `parse` and `transaction`.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 60, all)
#
# Installs what it needs (nightly toolchain, a pinned cargo-fuzz) unless
# present. Builds in $CARGO_TARGET_DIR/fuzz (outside the clone). The
# committed seeds (host/sip/fuzz/corpus/<target>) are only read: inputs the
# fuzzer finds go to a scratch corpus. Exits non-zero if a target crashes
# (panic, overflow, timeout, OOM); the input that did it is printed and
# kept under host/sip/fuzz/artifacts/<target>/ for
# `cargo +nightly fuzz run <target> <file>`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse transaction)
CARGO_FUZZ_VERSION=0.13.2

rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

fuzz_dir="$STROWGER_ROOT/host/sip/fuzz"
target_dir="$CARGO_TARGET_DIR/fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cd "$fuzz_dir"

# -a: debug assertions and overflow checks on (integer overflow is a bug).
# -s none: the crate forbids unsafe code, so AddressSanitizer finds nothing
# a panic would not; without it the targets run about twice as fast.
build_flags=(-a -s none --target-dir "$target_dir")
for t in "${targets[@]}"; do
    cargo +nightly fuzz build "${build_flags[@]}" "$t"
done

failed=()
for t in "${targets[@]}"; do
    echo "-- fuzz $t for ${secs}s"
    mkdir -p "$scratch/$t" "$scratch/art-$t"
    log="$scratch/$t.log"
    if cargo +nightly fuzz run "${build_flags[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$scratch/art-$t/" >"$log" 2>&1; then
        # last status line (execs, exec/s, coverage) and the run totals
        grep -E '^#[0-9]+' "$log" | tail -n 1 || true
        grep -E 'stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    else
        echo "!! fuzz target $t failed:"
        grep -vE '^#[0-9]+' "$log" | tail -n 60
        mkdir -p "artifacts/$t"
        for a in "$scratch/art-$t"/*; do
            [ -f "$a" ] || continue
            cp "$a" "artifacts/$t/"
            echo "-- artifact host/sip/fuzz/artifacts/$t/$(basename "$a") (base64):"
            base64 -w 0 "$a"
            echo
        done
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}"
    exit 1
fi
echo "fuzz: ${targets[*]} ran ${secs}s each without a crash"
