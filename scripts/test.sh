#!/usr/bin/env bash
# The whole test suite, as CI runs it (Debian 12, as root): installs build and test packages,
# checks formatting, builds with ASan+UBSan into build-san/, runs the unit tests and fuzz corpus
# replays (ctest), the integration tests against the real sanitizer-built daemons, and the
# browser test. Exits non-zero when anything fails, a sanitizer report included.
#
# Environment: SB_BUILD_DIR (build-san), SB_JOBS (nproc), SB_ONLY=stage[,stage] to run a subset
# of format,build,release,ctest,integration,browser,bench (build always runs when a later stage needs it).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"

BUILD_DIR=${SB_BUILD_DIR:-$ROOT/build-san}
JOBS=${SB_JOBS:-$(nproc)}
IT_DIR=$ROOT/tests/integration
LOG_DIR=$BUILD_DIR/test-logs
ONLY=${SB_ONLY:-format,build,release,ctest,integration,browser,bench}
START=$(date +%s)

# Any sanitizer report stops the process that made it and makes its exit status non-zero.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
SAN_RE='ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|WARNING: ThreadSanitizer|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer'

PASSED=()
FAILED=()
wants() { [[ ,$ONLY, == *,$1,* ]]; }
stage() { # stage NAME COMMAND...: runs it, records the result
    local name=$1 t0=$SECONDS
    shift
    sb_log "stage $name"
    if "$@"; then
        PASSED+=("$name")
        sb_log "stage $name passed ($((SECONDS - t0)) s)"
    else
        FAILED+=("$name")
        sb_log "stage $name FAILED ($((SECONDS - t0)) s)"
    fi
}

summary() {
    echo
    echo "test.sh: $(($(date +%s) - START)) s; passed: ${PASSED[*]:-none}; failed: ${FAILED[*]:-none}"
    echo "stages: ${#PASSED[@]} passed, ${#FAILED[@]} failed"
    ((${#FAILED[@]} == 0))
}

# ---- packages ------------------------------------------------------------------------------
set -e
sb_apt_ensure "${SB_BUILD_PKGS[@]}" "${SB_TEST_PKGS[@]}"
sb_ensure_node
set +e
sb_log "node $(node --version), npm $(npm --version), $(cmake --version | head -1), $(clang-format --version)"

# ---- format ----------------------------------------------------------------------------------
format_check() {
    local files
    mapfile -t files < <(find common controlplane dataplane tests -name '*.[ch]' \
        -not -path '*/node_modules/*' -not -path '*/corpus/*' | sort)
    ((${#files[@]} > 0)) || { echo "no C files found"; return 1; }
    echo "clang-format: ${#files[@]} files"
    clang-format --dry-run -Werror "${files[@]}"
}
wants format && stage format format_check

# ---- build -----------------------------------------------------------------------------------
build() {
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug -DSB_SANITIZE=ON -DSB_TESTS=ON \
        >"$BUILD_DIR.cmake.log" 2>&1 || { cat "$BUILD_DIR.cmake.log"; return 1; }
    cmake --build "$BUILD_DIR" -j"$JOBS"
}
if wants build || wants ctest || wants integration || wants browser || wants bench; then
    stage build build
fi
if [[ " ${FAILED[*]} " == *" build "* ]]; then
    summary
    exit 1
fi

# ---- the optimised build: -O2 finds warnings (-Werror) that the sanitizer build does not, and
# it is what scripts/run.sh builds ---------------------------------------------------------------
release_build() {
    cmake -S "$ROOT" -B "$ROOT/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
        cmake --build "$ROOT/build-rel" -j"$JOBS"
}
wants release && stage release release_build

# ---- unit tests and fuzz corpus replays ------------------------------------------------------
run_ctest() {
    ctest --test-dir "$BUILD_DIR" --output-on-failure --timeout 120 -j"$JOBS"
    local rc=$?
    # ctest without tests is not a pass.
    if ((rc == 0)) && [[ $(ctest --test-dir "$BUILD_DIR" -N | grep -c 'Test *#') == 0 ]]; then
        echo "ctest: no tests registered"
        return 1
    fi
    return $rc
}
wants ctest && stage ctest run_ctest

# ---- npm packages for the integration and browser tests --------------------------------------
npm_install() {
    local stamp=$IT_DIR/node_modules/.sb-lock-sha256 want
    want=$(sha256sum "$IT_DIR/package-lock.json" | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return 0
    fi
    (cd "$IT_DIR" && npm ci --no-audit --no-fund --loglevel=error) || return 1
    echo "$want" >"$stamp"
}
if wants integration || wants browser; then
    stage npm-ci npm_install
fi

node_test() { # node_test DIR: node's test runner over DIR's *.test.js, one file at a time
    local args=(--test)
    if node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=10)?0:1)'; then
        args+=(--test-concurrency=1)
    fi
    (cd "$IT_DIR" && SB_BUILD_DIR="$BUILD_DIR" SB_TEST_LOG_DIR="$LOG_DIR" node "${args[@]}" "$@")
}

node_test_etcd() { SB_IT_STORE=etcd node_test "$@"; }

# A daemon's report that a test missed still fails the run.
sanitizer_logs_clean() {
    local bad
    bad=$(grep -l -E "$SAN_RE" "$LOG_DIR"/*.log 2>/dev/null)
    if [[ -n $bad ]]; then
        echo "sanitizer reports in daemon logs:"
        for f in $bad; do
            echo "--- $f"
            grep -E -A30 "$SAN_RE" "$f" | head -60
        done
        return 1
    fi
    return 0
}

if [[ " ${FAILED[*]} " != *" npm-ci "* ]] && { wants integration || wants browser; }; then
    rm -rf "$LOG_DIR"
    mkdir -p "$LOG_DIR"
    wants integration && stage integration node_test "$IT_DIR"/test/*.test.js
    # The files marked `// stores: memory, etcd` run again against a real etcd.
    mapfile -t BOTH < <(grep -l '^// stores: memory, etcd' "$IT_DIR"/test/*.test.js)
    if wants integration && ((${#BOTH[@]})); then
        stage integration-etcd node_test_etcd "${BOTH[@]}"
    fi
    wants browser && stage browser node_test "$ROOT"/tests/browser/*.test.js
    if wants integration || wants browser; then
        stage sanitizer-logs sanitizer_logs_clean
    fi
fi

# ---- benchmark smoke: the load client against the sanitizer-built daemons, completeness only --
if wants bench; then
    stage bench-smoke "$ROOT"/tests/bench/run.sh --smoke --build-dir "$BUILD_DIR" --no-build
fi

summary
