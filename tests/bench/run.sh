#!/usr/bin/env bash
# First Switchboard benchmark: one control plane (memory store) + one data plane (--dev-mode) on
# loopback, N WebSocket members of one room, one publisher; prints a table of sb_load's figures.
#
#   tests/bench/run.sh                 full run: N=1,000 and N=10,000, fixed rate and flat out
#   tests/bench/run.sh --smoke         N=50 for ~3 s; asserts completeness only (exit 0 = complete)
# Options: --build-dir DIR (default build-bench), --no-build, --duration S (full runs, default 10),
#          --conns "1000 10000", --rates "auto 0" (per N; auto = 100,000/N msg/s, 0 = flat out,
#          idle = connect only, no room: connect rate and RSS per idle connection),
#          --timeout S (bound of each sb_load phase: connect, join, settle, drain; default 120),
#          --setup ws|prejoin (default ws: every connection sends a WebSocket
#          `join` to an auto-created room; prejoin: the room is created and all users added over
#          gRPC first, then the joins are acked without events), --keep-logs.
# Daemons are restarted for every run (so RSS per connection starts from a fresh process), run
# with `ulimit -n` raised, pinned with taskset to other cores than the load client when the
# machine has 2 or more, and killed by PID at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build-bench
MODE=full
DO_BUILD=1
DURATION=10
CONNS_LIST="1000 10000"
KEEP_LOGS=0
SETUP=ws
RATES="auto 0"
PHASE_TIMEOUT=120

while [ $# -gt 0 ]; do
    case "$1" in
    --smoke) MODE=smoke ;;
    --build-dir) BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2"); shift ;;
    --no-build) DO_BUILD=0 ;;
    --duration) DURATION=$2; shift ;;
    --conns) CONNS_LIST=$2; shift ;;
    --keep-logs) KEEP_LOGS=1 ;;
    --setup) SETUP=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --timeout) PHASE_TIMEOUT=$2; shift ;;
    -h | --help) sed -n "2,17p" "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

log() { echo "run.sh: $*" >&2; }
# shellcheck source=tests/bench/bench_lib.sh
. "$ROOT/tests/bench/bench_lib.sh"

if [ "$DO_BUILD" = 1 ]; then build_bench switchboard-controlplane switchboard-dataplane sb_load bench_floor; fi

CP_BIN=$(find_bin switchboard-controlplane)
DP_BIN=$(find_bin switchboard-dataplane)
LOAD_BIN=$(find_bin sb_load)
case "$SETUP" in ws | prejoin) ;; *) log "--setup must be ws or prejoin"; exit 2 ;; esac

# WebSocket joins need the room to exist: let the first join create it.
CP_EXTRA=()
if "$CP_BIN" --help 2>&1 | grep -q -- '--auto-create-rooms'; then
    CP_EXTRA+=(--auto-create-rooms)
elif [ "$SETUP" = ws ]; then
    log "control plane has no --auto-create-rooms: using --setup prejoin"
    SETUP=prejoin
fi
# The load is one publisher flat out and many receivers: no per-user rate or connection limit.
if "$CP_BIN" --help 2>&1 | grep -q -- '--max-messages-per-second'; then
    CP_EXTRA+=(--max-messages-per-second 0 --max-connections-per-user 0)
fi
SETUP_ARGS=()
[ "$SETUP" = prejoin ] && SETUP_ARGS+=(--prejoin)

# File descriptors: 10,000 connections need ~10,100 in the data plane and in the client.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

# Cores: the load client gets the last core, the daemons the others.
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_PIN=(taskset -c "0-$((NCPU - 2))")
    CLI_PIN=(taskset -c "$((NCPU - 1))")
    PINNING="daemons on cores 0-$((NCPU - 2)), load client on core $((NCPU - 1))"
else
    SRV_PIN=()
    CLI_PIN=()
    PINNING="no pinning (1 core)"
fi

TMP=$(mktemp -d /tmp/sb-bench.XXXXXX)
CP_PID=""
DP_PID=""

stop_daemons() {
    stop_pids $DP_PID $CP_PID
    DP_PID=""
    CP_PID=""
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_daemons
    if [ "$KEEP_LOGS" = 1 ]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_daemons() { # tag
    local tag=$1
    CP_PORT=$(free_port)
    DP_PORT=$(free_port)
    "${SRV_PIN[@]}" "$CP_BIN" --listen "127.0.0.1:$CP_PORT" --store memory "${CP_EXTRA[@]}" \
        >"$TMP/$tag.cp.log" 2>&1 &
    CP_PID=$!
    if ! wait_tcp "$CP_PORT" "$CP_PID" 10; then
        log "control plane did not start; log:"; tail -n 20 "$TMP/$tag.cp.log" >&2; exit 3
    fi
    "${SRV_PIN[@]}" "$DP_BIN" --listen "127.0.0.1:$DP_PORT" --controlplane "127.0.0.1:$CP_PORT" \
        --dev-mode >"$TMP/$tag.dp.log" 2>&1 &
    DP_PID=$!
    if ! wait_ready "$DP_PORT" "$DP_PID" 10; then
        log "data plane not ready; log:"; tail -n 20 "$TMP/$tag.dp.log" >&2; exit 3
    fi
}

RESULTS=()
LABELS=()
FAILED=0

run_one() { # label conns rate duration [extra sb_load args...]
    local label=$1 conns=$2 rate=$3 dur=$4
    shift 4
    local tag
    tag=$(echo "$label" | tr -c 'A-Za-z0-9\n' '-')
    start_daemons "$tag"
    local bound=$((${dur%.*} + 4 * ${PHASE_TIMEOUT%.*} + 60))
    log "$label: $conns connections, rate $rate, ${dur}s (daemons cp=$CP_PID dp=$DP_PID;" \
        "loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
    local rc=0
    timeout "$bound" "${CLI_PIN[@]}" "$LOAD_BIN" --url "ws://127.0.0.1:$DP_PORT/ws" \
        --conns "$conns" --room "bench-$tag" --rate "$rate" --duration "$dur" \
        --dp-pid "$DP_PID" --cp-pid "$CP_PID" --cp "127.0.0.1:$CP_PORT" "$@" \
        >"$TMP/$tag.out" 2>"$TMP/$tag.err" || rc=$?
    cat "$TMP/$tag.out"
    if [ -s "$TMP/$tag.err" ]; then sed 's/^/  stderr: /' "$TMP/$tag.err" | head -n 12; fi
    if ! kill -0 "$DP_PID" 2>/dev/null || ! kill -0 "$CP_PID" 2>/dev/null; then
        log "$label: a daemon died during the run; logs:"
        tail -n 20 "$TMP/$tag.cp.log" "$TMP/$tag.dp.log" >&2
        rc=4
    fi
    stop_daemons
    local line
    line=$(grep '^RESULT ' "$TMP/$tag.out" || true)
    LABELS+=("$label")
    RESULTS+=("${line:-RESULT complete=0}")
    if [ "$rc" != 0 ]; then
        FAILED=1
        log "$label: sb_load exit status $rc"
    fi
}

print_table() {
    printf '\n%-26s %6s %8s %9s %11s %8s %8s %8s %8s %9s %7s %7s %8s %s\n' \
        run conns msg/s conn/s deliv/s p50_us p90_us p99_us p999_us KiB/conn dp_cpu cp_cpu cli_cpu complete
    local i r
    for i in "${!RESULTS[@]}"; do
        r=${RESULTS[$i]}
        printf '%-26s %6s %8s %9s %11s %8s %8s %8s %8s %9s %7s %7s %8s %s\n' \
            "${LABELS[$i]}" "$(field "$r" conns)" "$(field "$r" msg_per_s)" \
            "$(field "$r" conn_per_s)" "$(field "$r" deliveries_per_s)" "$(field "$r" p50_us)" \
            "$(field "$r" p90_us)" "$(field "$r" p99_us)" "$(field "$r" p999_us)" \
            "$(field "$r" rss_per_conn_kib)" "$(field "$r" dp_cpu_pct)%" \
            "$(field "$r" cp_cpu_pct)%" "$(field "$r" client_cpu_pct)%" \
            "$(field "$r" complete)"
    done
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'),"\
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $PINNING; ulimit -n $NOFILE"
echo "setup: $SETUP; date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"

if [ "$MODE" = smoke ]; then
    # CI-friendly: 50 members, WebSocket joins, 100 msg/s for 2 s; no timing assertions.
    run_one "smoke" 50 100 2 --timeout 20 "${SETUP_ARGS[@]}"
    print_table
    # compare.sh's no-server floor (bench_floor) must keep working too
    floor_ok=1
    FLOOR_BIN=$(find_bin bench_floor)
    "$FLOOR_BIN" --conns 50 --rate 100 --duration 1 --timeout 10 | tee "$TMP/floor.out" | head -n1
    grep -q '^FLOOR complete=1 ' "$TMP/floor.out" || floor_ok=0
    if [ "$FAILED" = 0 ] && [ "$(field "${RESULTS[0]}" complete)" = 1 ] && [ "$floor_ok" = 1 ]; then
        echo "smoke: PASS (every delivery arrived, in order, gap-free; bench_floor complete)"
        exit 0
    fi
    echo "smoke: FAIL"
    exit 1
fi

for n in $CONNS_LIST; do
    for rate in $RATES; do
        # auto: a fixed rate worth ~100,000 deliveries/s; 0: flat out (ack window 64, lag 16)
        if [ "$rate" = auto ]; then
            rate=$((100000 / n))
            [ "$rate" -ge 1 ] || rate=1
        fi
        if [ "$rate" = idle ]; then
            run_one "N=$n idle (no room)" "$n" 0 "$DURATION" --timeout "$PHASE_TIMEOUT" --connect-only --no-join
            continue
        fi
        if [ "$rate" = 0 ]; then label="N=$n flat-out"; else label="N=$n rate=$rate/s"; fi
        run_one "$label" "$n" "$rate" "$DURATION" --timeout "$PHASE_TIMEOUT" "${SETUP_ARGS[@]}"
    done
done
print_table
exit "$FAILED"
