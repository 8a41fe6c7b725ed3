#!/usr/bin/env bash
# Side-by-side benchmark (issue 5): Switchboard (control plane on the memory store + data plane,
# Release build), nats-server (Debian package, websocket listener) and a Node `ws` broadcast
# server, one after another, under the same load client (tests/bench/sb_load) and parameters.
# Each server runs pinned to core 1 (`taskset -c 1`), the client to core 0; loopback only.
#
#   tests/bench/compare.sh             N = 100, 1,000, 10,000; ~4 s per publish phase (< 10 min)
#   tests/bench/compare.sh --quick     N = 100, 1,000; 2 s phases (< 3 min)
# Options: --build-dir DIR (default build-bench; built unless --no-build), --no-build,
#          --conns "100 1000 10000", --duration S (each publish phase), --timeout S (each sb_load
#          wait: connect, join, settle, drain), --servers "switchboard nats ws", --sse-conns N
#          (SSE against WebSocket at N, default 1000; 0 = skip), --light-conns N (100 msg/s into
#          N members, default 1000; 0 = skip), --plot FILE (default docs/benchmarks-fanout.png
#          in full runs, none with --quick), --no-plot, --keep-logs, --repeat K (every run K
#          times, alternating servers; the table shows medians).
# Per server and N, one sb_load run: connect N+1 connections (Switchboard: `join` frames to an
# auto-created room; NATS: SUB + PING/PONG; ws: nothing), settle, read the server's RSS, publish
# flat out (paced by --max-lag 16: at most 16 messages not yet at every subscriber), then again at
# half the rate reached (--then-fraction 0.5) for the latency. Servers are restarted for every N.
# Prints one table with ratios Switchboard/nats and Switchboard/ws; exits 1 if a run was
# incomplete (lost, reordered or duplicated deliveries) or failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build-bench
DO_BUILD=1
QUICK=0
CONNS_LIST=""
DURATION=""
PHASE_TIMEOUT=""
SERVERS="switchboard nats ws"
SSE_N=1000
LIGHT_N=1000
PLOT=""
NO_PLOT=0
KEEP_LOGS=0
REPEAT=1

while [ $# -gt 0 ]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --build-dir) BUILD=$(cd "$2" 2>/dev/null && pwd || echo "$2"); shift ;;
    --no-build) DO_BUILD=0 ;;
    --conns) CONNS_LIST=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --timeout) PHASE_TIMEOUT=$2; shift ;;
    --servers) SERVERS=$2; shift ;;
    --sse-conns) SSE_N=$2; shift ;;
    --light-conns) LIGHT_N=$2; shift ;;
    --plot) PLOT=$2; shift ;;
    --no-plot) NO_PLOT=1 ;;
    --keep-logs) KEEP_LOGS=1 ;;
    --repeat) REPEAT=$2; shift ;;
    -h | --help) sed -n "2,21p" "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    : "${CONNS_LIST:=100 1000}" "${DURATION:=2}" "${PHASE_TIMEOUT:=30}"
else
    : "${CONNS_LIST:=100 1000 10000}" "${DURATION:=4}" "${PHASE_TIMEOUT:=150}"
    [ -n "$PLOT" ] || PLOT=$ROOT/docs/benchmarks-fanout.png
fi
[ "$NO_PLOT" = 1 ] && PLOT=""

log() { echo "compare.sh: $*" >&2; }
# shellcheck source=tests/bench/bench_lib.sh
. "$ROOT/tests/bench/bench_lib.sh"
T_START=$(date +%s)

# ---- tools: nats-server (Debian package), gnuplot for the plot ----
# shellcheck source=scripts/common.sh disable=SC1091
. "$ROOT/scripts/common.sh"
if [[ " $SERVERS " == *" nats "* ]] && ! command -v nats-server >/dev/null; then
    sb_apt_ensure nats-server
fi
if [ -n "$PLOT" ] && ! command -v gnuplot >/dev/null; then
    sb_apt_ensure gnuplot-nox || { log "no gnuplot: no plot"; PLOT=""; }
fi
if [[ " $SERVERS " == *" ws "* ]] && ! command -v node >/dev/null; then
    sb_ensure_node
fi
WS_MODULES=$ROOT/tests/integration/node_modules
if [[ " $SERVERS " == *" ws "* ]] && [ ! -d "$WS_MODULES/ws" ]; then
    log "installing the integration tests' node modules (the ws package)"
    (cd "$ROOT/tests/integration" && npm ci --no-audit --no-fund >/dev/null)
fi

# ---- build ----
if [ "$DO_BUILD" = 1 ]; then build_bench switchboard-controlplane switchboard-dataplane sb_load bench_floor; fi
CP_BIN=$(find_bin switchboard-controlplane)
DP_BIN=$(find_bin switchboard-dataplane)
LOAD_BIN=$(find_bin sb_load)
FLOOR_BIN=$(find_bin bench_floor)

# ---- machine ----
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    SRV_PIN=(taskset -c 1)
    CLI_PIN=(taskset -c 0)
    PINNING="servers on core 1, load client on core 0"
else
    SRV_PIN=()
    CLI_PIN=()
    PINNING="no pinning (1 core)"
fi

TMP=$(mktemp -d /tmp/sb-compare.XXXXXX)
SRV_PID=""
CP_PID=""

stop_servers() {
    stop_pids $SRV_PID $CP_PID
    SRV_PID=""
    CP_PID=""
}

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
    stop_servers
    if [ "$KEEP_LOGS" = 1 ]; then log "logs kept in $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# Starts one server; sets SRV_PID (the process whose RSS/CPU is measured), CP_PID (Switchboard's
# control plane), URL and PROTO.
start_server() { # server tag
    local s=$1 tag=$2 port
    port=$(free_port)
    case "$s" in
    switchboard)
        local cport
        cport=$(free_port)
        "${SRV_PIN[@]}" "$CP_BIN" --listen "127.0.0.1:$cport" --store memory --auto-create-rooms \
            --max-messages-per-second 0 --max-connections-per-user 0 --max-rooms-per-user 0 \
            >"$TMP/$tag.cp.log" 2>&1 &
        CP_PID=$!
        wait_tcp "$cport" "$CP_PID" 10 || { log "control plane did not start"; tail -n 20 "$TMP/$tag.cp.log" >&2; exit 3; }
        "${SRV_PIN[@]}" "$DP_BIN" --listen "127.0.0.1:$port" --controlplane "127.0.0.1:$cport" \
            --dev-mode >"$TMP/$tag.dp.log" 2>&1 &
        SRV_PID=$!
        wait_ready "$port" "$SRV_PID" 10 || { log "data plane not ready"; tail -n 20 "$TMP/$tag.dp.log" >&2; exit 3; }
        URL="ws://127.0.0.1:$port/ws"
        PROTO=switchboard
        ;;
    nats)
        local nport
        nport=$(free_port)
        cat >"$TMP/$tag.nats.conf" <<EOF
listen: "127.0.0.1:$nport"
websocket {
  listen: "127.0.0.1:$port"
  no_tls: true
}
EOF
        "${SRV_PIN[@]}" nats-server -c "$TMP/$tag.nats.conf" >"$TMP/$tag.srv.log" 2>&1 &
        SRV_PID=$!
        wait_tcp "$port" "$SRV_PID" 10 || { log "nats-server did not start"; tail -n 20 "$TMP/$tag.srv.log" >&2; exit 3; }
        URL="ws://127.0.0.1:$port/"
        PROTO=nats
        ;;
    ws)
        NODE_PATH=$WS_MODULES "${SRV_PIN[@]}" node "$ROOT/tests/bench/ws_broadcast.js" "$port" \
            >"$TMP/$tag.srv.log" 2>&1 &
        SRV_PID=$!
        wait_tcp "$port" "$SRV_PID" 10 || { log "ws_broadcast.js did not start"; tail -n 20 "$TMP/$tag.srv.log" >&2; exit 3; }
        URL="ws://127.0.0.1:$port/"
        PROTO=ws
        ;;
    *) log "unknown server $s"; exit 2 ;;
    esac
}

declare -A R # R[server,N,kind,rep] = RESULT line; kind: fan, light, sse
FAILED=0

run_load() { # server N kind rep label [sb_load args...]
    local s=$1 n=$2 kind=$3 r=$4 label=$5
    shift 5
    local tag="$s-$n-$kind-$r" rc=0 cp_rss0=0 cp_rss1=0
    start_server "$s" "$tag"
    [ -n "$CP_PID" ] && cp_rss0=$(rss_kib "$CP_PID")
    log "$label (pid $SRV_PID; loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
    local bound=$((${DURATION%.*} * 2 + 5 * ${PHASE_TIMEOUT%.*} + 30))
    timeout "$bound" "${CLI_PIN[@]}" "$LOAD_BIN" --proto "$PROTO" --url "$URL" --conns "$n" \
        --room "bench" --timeout "$PHASE_TIMEOUT" --dp-pid "$SRV_PID" \
        ${CP_PID:+--cp-pid "$CP_PID"} "$@" >"$TMP/$tag.out" 2>"$TMP/$tag.err" || rc=$?
    [ -n "$CP_PID" ] && cp_rss1=$(rss_kib "$CP_PID")
    if ! kill -0 "$SRV_PID" 2>/dev/null || { [ -n "$CP_PID" ] && ! kill -0 "$CP_PID" 2>/dev/null; }; then
        log "$label: the server died; logs in $TMP"
        KEEP_LOGS=1
        rc=4
    fi
    stop_servers
    local line
    line=$(grep '^RESULT ' "$TMP/$tag.out" || true)
    [ -n "$line" ] || line="RESULT complete=0"
    # the control plane's RSS growth over the whole run (connect, join, publish), per connection
    if [ "$cp_rss0" != 0 ] && [ "$cp_rss1" != 0 ]; then
        line="$line cp_rss_per_conn_kib=$(awk -v a="$cp_rss0" -v b="$cp_rss1" -v n="$n" 'BEGIN {printf "%.2f", (b - a) / (n + 1)}')"
    fi
    # server CPU time per delivery over the flat-out phase (Switchboard: data + control plane): the
    # figure that still compares the servers when the load client is the limit
    local fd fc fcp
    fd=$(field "$line" flat_deliveries_per_s)
    fc=$(field "$line" flat_dp_cpu_pct)
    fcp=$(field "$line" flat_cp_cpu_pct)
    if [ "$fd" != - ] && [ "$fc" != - ] && [ "$fc" != -1 ]; then
        [ "$fcp" = - ] || [ "$fcp" = -1 ] && fcp=0
        line="$line flat_srv_us_per_delivery=$(awk -v d="$fd" -v c="$fc" -v p="$fcp" 'BEGIN {
            if (d > 0) printf "%.3f", (c + p) / 100 * 1e6 / d; else print "-" }')"
    fi
    R[$s,$n,$kind,$r]=$line
    echo "$label: $(grep -E '^  (publish|deliveries|flat out|data plane RSS)' "$TMP/$tag.out" | tr -s ' ' | tr '\n' ';')" >&2
    if [ "$rc" != 0 ] || [ "$(field "$line" complete)" != 1 ]; then
        FAILED=1
        log "$label: sb_load exit status $rc; $(head -c 600 "$TMP/$tag.err" | tr '\n' ' ')"
        [ "$KEEP_LOGS" = 1 ] || cp "$TMP/$tag.out" "$TMP/$tag.err" /tmp/ 2>/dev/null || true
    fi
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); $PINNING; ulimit -n $NOFILE"
echo "versions: nats-server $(nats-server --version 2>/dev/null | awk '{print $NF}'), node $(node --version 2>/dev/null)," \
    "ws $(node -p "require('$WS_MODULES/ws/package.json').version" 2>/dev/null), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); loadavg $(cut -d' ' -f1-3 /proc/loadavg); conns: $CONNS_LIST; publish phases ${DURATION} s; payload 128 B"

for r in $(seq "$REPEAT"); do
    for n in $CONNS_LIST; do
        for s in $SERVERS; do
            run_load "$s" "$n" fan "$r" "$s N=$n #$r" --rate 0 --then-fraction 0.5 --duration "$DURATION"
        done
    done
    if [ "$LIGHT_N" != 0 ]; then
        for s in $SERVERS; do
            run_load "$s" "$LIGHT_N" light "$r" "$s N=$LIGHT_N 100 msg/s #$r" --rate 100 --duration "$DURATION"
        done
        # The same load with no server: one send() per connection from the servers' core, read
        # on the client's core. The least latency any server writing one send() per subscriber
        # can have on this machine (target 3).
        log "no server (bench_floor) N=$LIGHT_N 100 msg/s #$r"
        floor_args=(--conns "$LIGHT_N" --rate 100 --duration "$DURATION")
        [ ${#SRV_PIN[@]} = 0 ] && floor_args+=(--sender-cpu -1 --receiver-cpu -1)
        R[floor,$LIGHT_N,light,$r]=$("$FLOOR_BIN" "${floor_args[@]}" 2>&1 | tee -a "$TMP/floor.log" |
            grep '^FLOOR ' || echo "FLOOR complete=0")
    fi
    if [ "$SSE_N" != 0 ] && [[ " $SERVERS " == *" switchboard "* ]]; then
        run_load switchboard "$SSE_N" sse "$r" "switchboard SSE N=$SSE_N #$r" --transport sse --rate 0 --duration "$DURATION"
        [ -n "${R[switchboard,$SSE_N,fan,$r]:-}" ] ||
            run_load switchboard "$SSE_N" fan "$r" "switchboard N=$SSE_N #$r" --rate 0 --then-fraction 0.5 --duration "$DURATION"
    fi
done

# ---- the table ----
num() { # value -> number or empty
    case "$1" in '' | - | -1) echo "" ;; *) echo "$1" ;; esac
}
ratio() { # a b
    local a b
    a=$(num "$1")
    b=$(num "$2")
    if [ -z "$a" ] || [ -z "$b" ]; then echo "-"; return; fi
    awk -v a="$a" -v b="$b" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
}
fmt() { # value unit -> human
    local v
    v=$(num "$1")
    [ -n "$v" ] || { echo "-"; return; }
    case "$2" in
    int) awk -v v="$v" 'BEGIN { printf "%.0f", v }' ;;
    kib | us) awk -v v="$v" 'BEGIN { printf "%.2f", v }' ;;
    ms) awk -v v="$v" 'BEGIN { printf "%.2f", v / 1000 }' ;;
    pct) awk -v v="$v" 'BEGIN { printf "%.0f%%", v }' ;;
    *) echo "$v" ;;
    esac
}
HAS() { [[ " $SERVERS " == *" $1 "* ]]; }
# Median over the repeats of one figure of complete runs ('-' when none); `complete` gives the
# lowest (1 only if every repeat was complete).
med() { # server N kind key
    local s=$1 n=$2 kind=$3 key=$4 r line v vals=()
    for r in $(seq "$REPEAT"); do
        line=${R[$s,$n,$kind,$r]:-}
        [ -n "$line" ] || continue
        v=$(field "$line" "$key")
        if [ "$key" != complete ]; then
            [ "$(field "$line" complete)" = 1 ] || continue
            v=$(num "$v")
            [ -n "$v" ] || continue
        fi
        vals+=("$v")
    done
    if [ ${#vals[@]} = 0 ]; then echo "-"; return; fi
    if [ "$key" = complete ]; then
        printf '%s\n' "${vals[@]}" | sort -n | head -n1
        return
    fi
    printf '%s\n' "${vals[@]}" | sort -g | awk '{a[NR] = $1} END {
        if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
row() { # label unit kind N key
    local label=$1 unit=$2 kind=$3 n=$4 key=$5 s v vals=() raw=()
    for s in switchboard nats ws; do
        v="-"
        HAS "$s" && v=$(med "$s" "$n" "$kind" "$key")
        raw+=("$v")
        vals+=("$(fmt "$v" "$unit")")
    done
    printf '| %-46s | %11s | %11s | %11s | %7s | %7s |\n' "$label" "${vals[0]}" "${vals[1]}" \
        "${vals[2]}" "$(ratio "${raw[0]}" "${raw[1]}")" "$(ratio "${raw[0]}" "${raw[2]}")"
}

echo
printf '| %-46s | %11s | %11s | %11s | %7s | %7s |\n' figure switchboard nats ws "sb/nats" "sb/ws"
printf '| %-46s | %11s | %11s | %11s | %7s | %7s |\n' --- ---: ---: ---: ---: ---:
for n in $CONNS_LIST; do
    row "N=$n RSS per connection, KiB (server)" kib fan "$n" rss_per_conn_kib
    row "N=$n control-plane RSS growth per conn, KiB" kib fan "$n" cp_rss_per_conn_kib
    row "N=$n connects/s" int fan "$n" conn_per_s
    row "N=$n flat out: deliveries/s" int fan "$n" flat_deliveries_per_s
    row "N=$n flat out: p99 ms" ms fan "$n" flat_p99_us
    row "N=$n flat out: server CPU" pct fan "$n" flat_dp_cpu_pct
    row "N=$n flat out: client CPU" pct fan "$n" flat_client_cpu_pct
    row "N=$n flat out: server CPU us per delivery" us fan "$n" flat_srv_us_per_delivery
    row "N=$n half peak: msg/s" int fan "$n" msg_per_s
    row "N=$n half peak: p50 ms" ms fan "$n" p50_us
    row "N=$n half peak: p99 ms" ms fan "$n" p99_us
    row "N=$n complete (1 = every delivery, in order)" raw fan "$n" complete
done
if [ "$LIGHT_N" != 0 ]; then
    row "N=$LIGHT_N 100 msg/s: p50 ms" ms light "$LIGHT_N" p50_us
    row "N=$LIGHT_N 100 msg/s: p99 ms" ms light "$LIGHT_N" p99_us
    for q in p50 p99; do
        printf '| %-46s | %11s | %11s | %11s | %7s | %7s |\n' \
            "N=$LIGHT_N 100 msg/s: $q ms, no server (floor)" \
            "$(fmt "$(med floor "$LIGHT_N" light "${q}_us")" ms)" - - - -
    done
fi
if [ "$SSE_N" != 0 ] && HAS switchboard; then
    sse=$(med switchboard "$SSE_N" sse deliveries_per_s)
    wsr=$(med switchboard "$SSE_N" fan flat_deliveries_per_s)
    printf '| %-46s | %11s | %11s | %11s | %7s | %7s |\n' "N=$SSE_N SSE flat out: deliveries/s (last: /WS)" \
        "$(fmt "$sse" int)" - - - "$(ratio "$sse" "$wsr")"
fi
echo
echo "Ratios are switchboard / other (for RSS, latency and CPU per delivery lower is better, for rates"
echo "higher). Server CPU for Switchboard = data plane + control plane; with the client near 100% of"
echo "its core, deliveries/s is the client's limit and CPU per delivery compares the servers."
if [ "$LIGHT_N" != 0 ]; then echo "'no server (floor)': tests/bench/bench_floor, a bare loop of one send() per connection."; fi
echo "Medians of $REPEAT run(s); figures of incomplete runs are left out ('-' if none)." \
    "Elapsed: $(($(date +%s) - T_START)) s."

# ---- data for the plot: N, then deliveries/s and half-peak p99 (ms) per server ----
DAT=$TMP/fanout.dat
{
    echo "# N sb_deliv nats_deliv ws_deliv sb_p99_ms nats_p99_ms ws_p99_ms sb_us nats_us ws_us"
    for n in $CONNS_LIST; do
        line="$n"
        for key in flat_deliveries_per_s p99_us flat_srv_us_per_delivery; do
            for s in switchboard nats ws; do
                v=$(med "$s" "$n" fan "$key")
                [ "$key" = p99_us ] && [ "$v" != - ] && v=$(awk -v v="$v" 'BEGIN { printf "%.3f", v / 1000 }')
                line="$line $v"
            done
        done
        echo "$line"
    done
} >"$DAT"
if [ -n "$PLOT" ]; then
    if "$ROOT/tests/bench/plot.sh" "$DAT" "$PLOT"; then
        echo "plot: $PLOT"
    else
        log "plot failed"
    fi
fi
[ "$KEEP_LOGS" = 1 ] && cp "$DAT" "$TMP/" 2>/dev/null
exit "$FAILED"
