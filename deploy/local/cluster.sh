#!/usr/bin/env bash
# A local Switchboard cluster on loopback for a person to try: one etcd (Debian's etcd-server,
# data in a temporary directory), two control planes on the etcd store (cp-1, cp-2) and two data
# planes in development mode (dp-1, dp-2), each linked to both control planes. The development
# defaults are those of scripts/run.sh: clients say who they are with ?user_id= (--dev-mode) and
# the first join of a room creates it (--auto-create-rooms), so the printed page works as is.
# The gRPC port is authenticated as in production (docs/security.md): a cluster secret and an
# API key are generated into the state directory (mode 0600) at the first start and given to
# every daemon; backends send the key as `authorization: Bearer <key>`.
#
#   deploy/local/cluster.sh start    # starts everything, waits until ready, prints the URLs
#   deploy/local/cluster.sh status   # which processes run, readiness of each data plane
#   deploy/local/cluster.sh stop     # stops everything by PID (SIGTERM, then SIGKILL after 10 s)
#
# Environment: SB_BUILD_DIR (build directory, default <repo>/build), SB_CLUSTER_DIR (state:
# pids, logs, etcd data; default /tmp/switchboard-cluster), SB_LEASE_TTL_MS (default 10000),
# ports SB_ETCD_PORT (23790; peer port +1), SB_CP_PORTS (50051,50052), SB_DP_PORTS (8080,8081),
# ETCD_BIN (/usr/bin/etcd).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${SB_BUILD_DIR:-$ROOT/build}
case $BUILD_DIR in /*) ;; *) BUILD_DIR=$ROOT/$BUILD_DIR ;; esac
STATE=${SB_CLUSTER_DIR:-/tmp/switchboard-cluster}
TTL_MS=${SB_LEASE_TTL_MS:-10000}
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCD_PORT=${SB_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
IFS=, read -r -a CP_PORTS <<<"${SB_CP_PORTS:-50051,50052}"
IFS=, read -r -a DP_PORTS <<<"${SB_DP_PORTS:-8080,8081}"
CP_BIN=$BUILD_DIR/controlplane/switchboard-controlplane
DP_BIN=$BUILD_DIR/dataplane/switchboard-dataplane
ETCD_URL=http://127.0.0.1:$ETCD_PORT

say() { printf '%s\n' "$*" >&2; }
die() {
    say "cluster.sh: $*"
    exit 1
}

# Names of the processes, in start order (stop goes the other way).
names() {
    echo etcd
    local i
    for i in "${!CP_PORTS[@]}"; do echo "cp-$((i + 1))"; done
    for i in "${!DP_PORTS[@]}"; do echo "dp-$((i + 1))"; done
}

pid_of() { cat "$STATE/$1.pid" 2>/dev/null || true; }
alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until NAME SECONDS COMMAND...: polls COMMAND every 0.1 s while NAME's process lives.
wait_until() {
    local name=$1 secs=$2 i
    shift 2
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        alive "$(pid_of "$name")" || die "$name exited during start; see $STATE/logs/$name.log"
        sleep 0.1
    done
    die "$name not ready after ${secs}s; see $STATE/logs/$name.log"
}

# launch NAME BIN ARGS...: runs in the background, output to its log, PID to its pid file.
launch() {
    local name=$1
    shift
    "$@" </dev/null >"$STATE/logs/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# secret_file FILE: 32 random bytes as hex, mode 0600, unless FILE already holds one (kept
# across restarts, so backends keep their key).
secret_file() {
    [[ -s $1 ]] && return 0
    command -v openssl >/dev/null || die "openssl not found: apt-get install openssl"
    (umask 077 && openssl rand -hex 32 >"$1.tmp") && mv "$1.tmp" "$1"
}

start() {
    local n p
    for n in $(names); do
        alive "$(pid_of "$n")" && die "already running ($n, pid $(pid_of "$n")); stop it first"
    done
    [[ -x $ETCD_BIN ]] || die "$ETCD_BIN not found: apt-get install etcd-server"
    [[ -x $CP_BIN && -x $DP_BIN ]] ||
        die "daemons not built in $BUILD_DIR: cmake -S . -B build && cmake --build build -j (or set SB_BUILD_DIR)"
    for p in "$ETCD_PORT" "$ETCD_PEER_PORT" "${CP_PORTS[@]}" "${DP_PORTS[@]}"; do
        port_free "$p" || die "port $p is in use (change SB_ETCD_PORT / SB_CP_PORTS / SB_DP_PORTS)"
    done
    mkdir -p "$STATE/logs"
    rm -rf "$STATE/etcd-data"
    secret_file "$STATE/cluster-secret"
    secret_file "$STATE/api-key"
    # Stop what was started if anything below fails.
    trap 'say "start failed: stopping what was started"; stop >/dev/null 2>&1 || true' ERR EXIT

    launch etcd "$ETCD_BIN" --name local --data-dir "$STATE/etcd-data" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "local=http://127.0.0.1:$ETCD_PEER_PORT" \
        --auto-compaction-retention 1h --log-level warn
    wait_until etcd 20 sh -c "curl -fsS -m 1 '$ETCD_URL/health' | grep -q '\"health\":\"true\"'"

    local cps=()
    for i in "${!CP_PORTS[@]}"; do
        n=cp-$((i + 1))
        launch "$n" "$CP_BIN" --listen "127.0.0.1:${CP_PORTS[$i]}" --store etcd \
            --etcd-endpoints "$ETCD_URL" --id "$n" --lease-ttl-ms "$TTL_MS" --auto-create-rooms \
            --api-key-file "$STATE/api-key" --cluster-secret-file "$STATE/cluster-secret"
        cps+=("127.0.0.1:${CP_PORTS[$i]}")
    done
    for i in "${!CP_PORTS[@]}"; do wait_until "cp-$((i + 1))" 30 tcp_open "${CP_PORTS[$i]}"; done

    local list
    list=$(IFS=,; echo "${cps[*]}")
    for i in "${!DP_PORTS[@]}"; do
        n=dp-$((i + 1))
        launch "$n" "$DP_BIN" --listen "127.0.0.1:${DP_PORTS[$i]}" --controlplane "$list" \
            --node-id "$n" --dev-mode --cluster-secret-file "$STATE/cluster-secret"
    done
    for i in "${!DP_PORTS[@]}"; do
        wait_until "dp-$((i + 1))" 30 curl -fsS -m 1 "http://127.0.0.1:${DP_PORTS[$i]}/readyz"
    done
    trap - ERR EXIT

    echo "Switchboard local cluster is up (state, pids and logs in $STATE):"
    echo "  etcd            $ETCD_URL"
    for i in "${!CP_PORTS[@]}"; do
        echo "  cp-$((i + 1)) gRPC      127.0.0.1:${CP_PORTS[$i]}   (switchboard.v1.*, e.g. buf curl)"
    done
    for i in "${!DP_PORTS[@]}"; do
        echo "  dp-$((i + 1)) page      http://127.0.0.1:${DP_PORTS[$i]}/"
        echo "       WebSocket ws://127.0.0.1:${DP_PORTS[$i]}/ws?user_id=alice"
        echo "       SSE       http://127.0.0.1:${DP_PORTS[$i]}/sse?user_id=alice&rooms=lobby"
    done
    echo "Open a page on dp-1 and another on dp-2, pick two names and one room: they chat across"
    echo "the data planes. Rooms are created by their first join (development default,"
    echo "--auto-create-rooms); or create one over gRPC (the API key is $STATE/api-key), from"
    echo "the repository root:"
    echo "  npx --yes @bufbuild/buf curl --protocol grpc --http2-prior-knowledge --schema proto \\"
    echo "    -H \"authorization: Bearer \$(cat $STATE/api-key)\" \\"
    echo "    -d '{\"id\":\"lobby\"}' http://127.0.0.1:${CP_PORTS[0]}/switchboard.v1.Rooms/CreateRoom"
    echo "Stop with: $0 stop"
}

stop() {
    local order=() n pid i
    mapfile -t order < <(names | tac)
    for n in "${order[@]}"; do
        pid=$(pid_of "$n")
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do
                alive "$pid" || break
                sleep 0.1
            done
            if alive "$pid"; then
                say "$n (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
            fi
            echo "stopped $n (pid $pid)"
        fi
        rm -f "$STATE/$n.pid"
    done
    rm -rf "$STATE/etcd-data"
}

status() {
    local n pid any=1 line
    for n in $(names); do
        pid=$(pid_of "$n")
        if alive "$pid"; then
            any=0
            line="$n running (pid $pid)"
            if [[ $n == dp-* ]]; then
                local port=${DP_PORTS[$((${n#dp-} - 1))]}
                if curl -fsS -m 1 "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
                    line+=", ready on http://127.0.0.1:$port/"
                else
                    line+=", NOT ready"
                fi
            fi
            echo "$line"
        else
            echo "$n not running"
        fi
    done
    return $any
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*)
    say "usage: $0 start|stop|status"
    exit 2
    ;;
esac
