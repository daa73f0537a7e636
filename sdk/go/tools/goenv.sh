# Sourced by scripts/install-go.sh, build-go-guest.sh, test-go.sh and
# lint-go.sh: finds the Go toolchain that Go plugins need and puts it first in
# PATH. The generated bindings import go.bytecodealliance.org/pkg v0.4.0,
# which needs Go >= 1.27.1; the machine may have an older one, so the newer
# toolchain comes from the Go module proxy (`GOTOOLCHAIN=go1.27.1 go ...`
# stores it in GOMODCACHE/golang.org/toolchain@v0.0.1-go1.27.1.<os>-<arch>).
#
# After sourcing: STROWGER_GO is the go binary, PATH starts with its directory,
# GOTOOLCHAIN=local (never switch toolchains behind our back).
# `strowger_go_find` returns non-zero when no suitable Go is present (then run
# scripts/install-go.sh).

STROWGER_GO_MIN="${STROWGER_GO_MIN:-1.27.1}"
STROWGER_GO_TOOLCHAIN="${STROWGER_GO_TOOLCHAIN:-go1.27.1}"

_strowger_go_ok() { # $1 = go binary; true when its version >= STROWGER_GO_MIN
    local v
    v="$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null)" || return 1
    v="${v#go}"
    v="${v%%[-+ ]*}"
    [ -n "$v" ] || return 1
    [ "$(printf '%s\n%s\n' "$STROWGER_GO_MIN" "$v" | sort -V | head -n1)" = "$STROWGER_GO_MIN" ]
}

strowger_go_find() {
    local cand modcache base
    for cand in "${STROWGER_GO:-}" "$(command -v go 2>/dev/null || true)"; do
        if [ -n "$cand" ] && [ -x "$cand" ] && _strowger_go_ok "$cand"; then
            STROWGER_GO="$cand"
            break
        fi
        cand=""
    done
    if [ -z "$cand" ]; then
        base="$(command -v go 2>/dev/null || true)"
        modcache="$( [ -n "$base" ] && GOTOOLCHAIN=local "$base" env GOMODCACHE 2>/dev/null || echo "${GOMODCACHE:-$HOME/go/pkg/mod}")"
        for cand in "$modcache"/golang.org/toolchain@v0.0.1-"$STROWGER_GO_TOOLCHAIN".*/bin/go \
            "$HOME/.local/share/strowger/go/bin/go"; do
            if [ -x "$cand" ] && _strowger_go_ok "$cand"; then
                STROWGER_GO="$cand"
                break
            fi
            cand=""
        done
    fi
    [ -n "$cand" ] || return 1
    export STROWGER_GO
    export PATH="$(dirname "$STROWGER_GO"):$PATH"
    export GOTOOLCHAIN=local
    return 0
}
