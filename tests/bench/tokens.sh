#!/usr/bin/env bash
# Connect rate with client tokens: for each algorithm, a fresh control plane (memory store) and a
# data plane without --dev-mode holding that algorithm's key, N+1 distinct tokens minted by
# mint_tokens.js (npm jose), and `sb_load --connect-only --no-join --token-file` (every connection
# verifies its token before the upgrade, then the control-plane round trip to `connected`).
# `dev` is the baseline: the same run with --dev-mode and ?user_id=. `ALG-again` is a second run
# of the same clients with the same tokens against the same data plane (a reconnect storm: the
# verified-token cache answers). Prints connects/s per run.
#
#   tests/bench/tokens.sh                      N = 5,000; dev HS256 ES256 RS256 (< 60 s here)
# Options: --build-dir DIR (default build-bench; built unless --no-build), --no-build,
#          --conns N, --algs "dev HS256 ES256 RS256 EdDSA", --timeout S (sb_load's bound for the
#          connect phase, default 30), --keep-logs.
# Loopback only; daemons killed by PID at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build-bench
DO_BUILD=1
CONNS=5000
ALGS="dev HS256 ES256 RS256"
PHASE_TIMEOUT=30
KEEP_LOGS=0

while [ $# -gt 0 ]; do
    case "$1" in
    --build-dir) BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2"); shift ;;
    --no-build) DO_BUILD=0 ;;
    --conns) CONNS=$2; shift ;;
    --algs) ALGS=$2; shift ;;
    --timeout) PHASE_TIMEOUT=$2; shift ;;
    --keep-logs) KEEP_LOGS=1 ;;
    -h | --help) sed -n "2,12p" "$0"; exit 0 ;;
    *) echo "tokens.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "tokens.sh: $*" >&2; }
# shellcheck source=tests/bench/bench_lib.sh
. "$ROOT/tests/bench/bench_lib.sh"

if [ "$DO_BUILD" = 1 ]; then build_bench switchboard-controlplane switchboard-dataplane sb_load; fi
CP_BIN=$(find_bin switchboard-controlplane)
DP_BIN=$(find_bin switchboard-dataplane)
LOAD_BIN=$(find_bin sb_load)

# jose comes with the integration tests' npm packages.
IT_DIR=$ROOT/tests/integration
if [ ! -d "$IT_DIR/node_modules/jose" ]; then
    log "installing the integration tests' npm packages (npm ci) for jose"
    (cd "$IT_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || exit 3
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_PIN=(taskset -c "0-$((NCPU - 2))")
    CLI_PIN=(taskset -c "$((NCPU - 1))")
else
    SRV_PIN=()
    CLI_PIN=()
fi

TMP=$(mktemp -d /tmp/sb-bench-tokens.XXXXXX)
CP_PID=""
DP_PID=""
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_pids $DP_PID $CP_PID
    if [ "$KEEP_LOGS" = 1 ]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LABELS=()
RESULTS=()
MINT_S=()
FAILED=0

run_alg() { # alg
    local alg=$1 dp_auth=() load_auth=() t0 mint_s=-
    if [ "$alg" = dev ]; then
        dp_auth=(--dev-mode)
    else
        t0=$(date +%s%N)
        mapfile -t dp_auth < <(node "$ROOT/tests/bench/mint_tokens.js" --dir "$TMP/$alg" --alg "$alg" \
            --count $((CONNS + 1))) || { log "$alg: minting failed"; FAILED=1; return; }
        mint_s=$(awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", ns / 1e9 }')
        load_auth=(--token-file "$TMP/$alg/$alg.tokens")
    fi
    local cp_port dp_port
    cp_port=$(free_port)
    dp_port=$(free_port)
    "${SRV_PIN[@]}" "$CP_BIN" --listen "127.0.0.1:$cp_port" --store memory \
        --max-connections-per-user 0 >"$TMP/$alg.cp.log" 2>&1 &
    CP_PID=$!
    wait_tcp "$cp_port" "$CP_PID" 10 || { log "$alg: control plane did not start"; tail -n 20 "$TMP/$alg.cp.log" >&2; exit 3; }
    "${SRV_PIN[@]}" "$DP_BIN" --listen "127.0.0.1:$dp_port" --controlplane "127.0.0.1:$cp_port" \
        "${dp_auth[@]}" >"$TMP/$alg.dp.log" 2>&1 &
    DP_PID=$!
    wait_ready "$dp_port" "$DP_PID" 10 || { log "$alg: data plane not ready"; tail -n 20 "$TMP/$alg.dp.log" >&2; exit 3; }
    log "$alg: $CONNS connections (+1), dp=$DP_PID cp=$CP_PID, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    local pass label
    for pass in first again; do
        label=$alg
        if [ "$pass" = again ]; then
            [ "$alg" = dev ] && continue
            label="$alg-again" # the same clients reconnecting with the same tokens (cache warm)
            sleep 1
        fi
        local rc=0
        timeout $((PHASE_TIMEOUT + 30)) "${CLI_PIN[@]}" "$LOAD_BIN" --url "ws://127.0.0.1:$dp_port/ws" \
            --conns "$CONNS" --connect-only --no-join --timeout "$PHASE_TIMEOUT" \
            --dp-pid "$DP_PID" --cp-pid "$CP_PID" "${load_auth[@]}" \
            >"$TMP/$label.out" 2>"$TMP/$label.err" || rc=$?
        if [ -s "$TMP/$label.err" ]; then sed 's/^/  stderr: /' "$TMP/$label.err" | head -n 8 >&2; fi
        local line
        line=$(grep '^RESULT ' "$TMP/$label.out" || true)
        LABELS+=("$label")
        RESULTS+=("${line:-RESULT complete=0}")
        MINT_S+=("$mint_s")
        if [ "$rc" != 0 ]; then FAILED=1; log "$label: sb_load exit status $rc"; fi
    done
    stop_pids "$DP_PID" "$CP_PID"
    DP_PID=""
    CP_PID=""
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //');" \
    "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
for alg in $ALGS; do run_alg "$alg"; done

printf '\n%-12s %7s %10s %10s %8s %8s %s\n' auth conns conn/s KiB/conn dp_cpu mint_s complete
for i in "${!RESULTS[@]}"; do
    r=${RESULTS[$i]}
    printf '%-12s %7s %10s %10s %8s %8s %s\n' "${LABELS[$i]}" "$(field "$r" conns)" \
        "$(field "$r" conn_per_s)" "$(field "$r" rss_per_conn_kib)" "$(field "$r" dp_cpu_pct)%" \
        "${MINT_S[$i]}" "$(field "$r" complete)"
done
exit "$FAILED"
