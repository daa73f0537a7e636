#!/usr/bin/env bash
# Thin wrapper: the side-by-side benchmarks (see benches/README.md).
#   scripts/bench.sh [--smoke] [--only calls,registrations,concurrent,media,decisions]
exec "$(dirname "${BASH_SOURCE[0]}")/../benches/run.sh" "$@"
