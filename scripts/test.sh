#!/usr/bin/env bash
# The project's test command: `bash scripts/test.sh`.
#
# Needs the Rust toolchain, Node.js 20+ with npm, and Python 3.10+ (3.11 is what the lock
# was made with). Everything else it installs itself, and only when missing or stale:
#   - tests/e2e/node_modules   from tests/e2e/package-lock.json (npm ci)
#   - tests/e2e/.venv          from tests/e2e/requirements.lock (pip, no resolution)
#   - redis-server             from Debian's packages, only when a test needs Redis
#   - go                       from Debian's packages (golang-go), only when missing: the
#                              end-to-end tests build a small Go server (tests/e2e/servers/gojson)
#   - chromium                 from Debian's packages, only when missing: the web console's
#                              browser tests (tests/e2e/test_console.py)
# then builds the workspace, runs `cargo test --workspace` and the end-to-end tests
# (`pytest tests/e2e`) against the freshly built binary.
#
# Environment:
#   TOOLGATE_BIN             binary the end-to-end tests run (default: <target>/debug/toolgate)
#   TOOLGATE_TEST_REDIS=1    start Redis even if no test seems to ask for it
#   TOOLGATE_TEST_REDIS_URL  use this Redis instead of starting one
#   TOOLGATE_CHROMIUM        the browser the console tests drive (default: chromium on PATH)
#   PYTEST_ARGS              extra arguments for pytest (e.g. "-k rate_limit -x")
#
# Sourcing this file (`source scripts/test.sh`) defines its functions without running
# anything, so another script can call e.g. `ensure_redis` and then use
# TOOLGATE_TEST_REDIS_URL; the Redis it starts is stopped when that shell exits.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$ROOT/tests/e2e"

WORK=""
REDIS_PIDFILE=""

cleanup() {
    if [[ -n "$REDIS_PIDFILE" && -s "$REDIS_PIDFILE" ]]; then
        kill "$(cat "$REDIS_PIDFILE")" 2>/dev/null || true
    fi
    if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
}

# A scratch directory for logs, removed (with anything started) when the shell exits.
ensure_workdir() {
    [[ -n "$WORK" ]] && return
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/toolgate-test.XXXXXX")"
    trap cleanup EXIT
}

section() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"; }

# Runs a noisy command with its output in a log; shows the log's tail only if it fails.
# Returns the command's failure (which ends the script unless the caller handles it).
quietly() {
    ensure_workdir
    local name="$1"
    shift
    local log="$WORK/$name.log"
    if ! "$@" >"$log" 2>&1; then
        printf 'error: `%s` failed; the end of its output:\n' "$*" >&2
        tail -n 60 "$log" >&2
        return 1
    fi
}

# A digest of some files' contents plus extra words, for "is this install still current?".
digest() {
    local files=()
    local extra=()
    for arg in "$@"; do
        if [[ -f "$arg" ]]; then files+=("$arg"); else extra+=("$arg"); fi
    done
    { cat "${files[@]}"; printf '%s\n' "${extra[@]}"; } | sha256sum | cut -d' ' -f1
}

have_root() { [[ "$(id -u)" == 0 ]]; }

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo=()
    if ! have_root; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
        sudo=(sudo -n)
    fi
    if [[ $apt_updated == 0 ]]; then
        quietly apt-update "${sudo[@]}" apt-get update -q || return 1
        apt_updated=1
    fi
    # Keep Debian's maintainer scripts from starting the packaged service on install:
    # the tests start their own instance on a port of their own.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    local status=0
    quietly apt-install "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" || status=$?
    if [[ $added_policy == 1 ]]; then "${sudo[@]}" rm -f "$policy"; fi
    return $status
}

# --------------------------------------------------------------------------------------
# Node test peers
# --------------------------------------------------------------------------------------
ensure_node_modules() {
    need node "Node.js 20 or newer"
    need npm "npm (comes with Node.js)"
    local major
    major="$(node -p 'process.versions.node.split(".")[0]')"
    [[ "$major" -ge 20 ]] || die "Node.js 20 or newer is required (found $(node --version))"

    local stamp="$E2E/node_modules/.toolgate-installed"
    local want
    want="$(digest "$E2E/package.json" "$E2E/package-lock.json" "node-$major")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        note "tests/e2e/node_modules is up to date"
        return
    fi
    note "npm ci in tests/e2e"
    quietly npm-ci sh -c 'cd "$1" && npm ci --no-audit --no-fund --no-update-notifier --loglevel=error' sh "$E2E"
    echo "$want" >"$stamp"
    note "$(grep -m1 '^added' "$WORK/npm-ci.log" || echo 'installed')"
}

# --------------------------------------------------------------------------------------
# Python test peers
# --------------------------------------------------------------------------------------
pick_python() {
    local candidate
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    die "Python 3.10 or newer is required (3.11 recommended)"
}

ensure_venv() {
    local python venv="$E2E/.venv"
    python="$(pick_python)"
    local version
    version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    local stamp="$venv/.toolgate-installed"
    local want
    want="$(digest "$E2E/requirements.lock" "python-$version")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
        note "tests/e2e/.venv is up to date (Python $version)"
        return
    fi
    note "creating tests/e2e/.venv (Python $version) from requirements.lock"
    rm -rf "$venv"
    if ! "$python" -m venv "$venv" >"$WORK/venv.log" 2>&1; then
        # Debian splits venv support out of the interpreter package.
        local minor="${version%.*}"
        rm -rf "$venv"
        apt_install "python$minor-venv" || apt_install python3-venv ||
            die "could not create a virtualenv: $(tail -n 3 "$WORK/venv.log")"
        quietly venv "$python" -m venv "$venv"
    fi
    quietly pip-install "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        --no-deps -r "$E2E/requirements.lock"
    quietly pip-check "$venv/bin/python" -m pip check
    echo "$want" >"$stamp"
}

# --------------------------------------------------------------------------------------
# Redis, for the tests that need one
#
# A test that needs Redis reads TOOLGATE_TEST_REDIS_URL; that name appearing in a test
# is what makes this script provide one. When no Redis can be had the variable stays
# unset, and such a test must fail, not skip. The Rust tests start (and stop, pause,
# restart) redis-servers of their own through `redis_server.rs` (the toolgate-state
# tests' helper), so naming that helper also makes this script install redis-server
# (and the openssl and redis-cli those tests use to make certificates and a cluster).
# --------------------------------------------------------------------------------------
tests_need_redis() {
    [[ "${TOOLGATE_TEST_REDIS:-0}" == 1 ]] && return 0
    grep -rqs -e TOOLGATE_TEST_REDIS_URL -e redis_server:: \
        --include='*.rs' --include='*.py' \
        --exclude-dir=node_modules --exclude-dir=.venv --exclude-dir=target \
        "$ROOT/crates" "$E2E"
}

free_port() {
    "$(pick_python)" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ensure_redis() {
    # Installed even when TOOLGATE_TEST_REDIS_URL names a Redis: the Rust tests start their own.
    if ! command -v redis-server >/dev/null 2>&1; then
        note "redis-server is missing; installing it from Debian's packages"
        if ! apt_install redis-server; then
            note "could not install redis-server (no apt-get, or not root):"
            note "TOOLGATE_TEST_REDIS_URL stays unset, so the tests that need Redis will fail"
            return 1
        fi
    fi
    # The Redis TLS test makes its certificates with openssl; the cluster test forms its
    # cluster with redis-cli (Debian's redis-tools, which redis-server depends on).
    if ! command -v openssl >/dev/null 2>&1; then
        note "openssl is missing; installing it from Debian's packages"
        apt_install openssl || note "could not install openssl: the Redis TLS test will fail"
    fi
    if [[ -n "${TOOLGATE_TEST_REDIS_URL:-}" ]]; then
        note "using Redis at TOOLGATE_TEST_REDIS_URL"
        return 0
    fi
    ensure_workdir
    local port dir
    port="$(free_port)"
    dir="$WORK/redis"
    mkdir -p "$dir"
    REDIS_PIDFILE="$dir/redis.pid"
    redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
        --save '' --appendonly no --dir "$dir" \
        --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$dir/redis.log" >/dev/null
    local i
    for i in $(seq 50); do
        if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
            export TOOLGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/"
            note "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    tail -n 20 "$dir/redis.log" >&2 || true
    die "redis-server did not start"
}

# --------------------------------------------------------------------------------------
# Go, for the test server that decodes JSON the way Go servers do
# --------------------------------------------------------------------------------------
ensure_go() {
    if command -v go >/dev/null 2>&1; then
        note "$(go version)"
        return 0
    fi
    note "go is missing; installing golang-go from Debian's packages"
    apt_install golang-go || note "could not install golang-go: the Go server tests will fail"
}

# --------------------------------------------------------------------------------------
# Chromium, for the web console's browser tests (Playwright drives Debian's browser: it
# cannot download one of its own here)
# --------------------------------------------------------------------------------------
ensure_chromium() {
    if [[ -n "${TOOLGATE_CHROMIUM:-}" ]] || command -v chromium >/dev/null 2>&1; then
        note "$("${TOOLGATE_CHROMIUM:-chromium}" --version 2>/dev/null | head -n 1)"
        return 0
    fi
    note "chromium is missing; installing it from Debian's packages"
    apt_install chromium fonts-liberation || note "could not install chromium: the console's browser tests will fail"
}

# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
main() {
    cd "$ROOT"
    ensure_workdir
    need cargo "the Rust toolchain (rustup)"

    section "Test dependencies"
    ensure_node_modules
    ensure_venv
    ensure_go
    ensure_chromium
    if tests_need_redis; then
        ensure_redis || true
    fi

    section "cargo build --workspace --bins"
    cargo build --workspace --bins --quiet

    section "cargo test --workspace"
    cargo test --workspace --quiet

    local target_dir="${CARGO_TARGET_DIR:-$ROOT/target}"
    export TOOLGATE_BIN="${TOOLGATE_BIN:-$target_dir/debug/toolgate}"
    [[ -x "$TOOLGATE_BIN" ]] || die "no toolgate binary at $TOOLGATE_BIN after the build"

    section "pytest tests/e2e (TOOLGATE_BIN=${TOOLGATE_BIN#"$ROOT"/})"
    # shellcheck disable=SC2086 # PYTEST_ARGS is split on purpose
    "$E2E/.venv/bin/python" -m pytest tests/e2e -q ${PYTEST_ARGS:-}
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
