#!/usr/bin/env bash
# Installs what Switchboard needs (Debian 12, as root), builds it (Release, into build/), and runs
# the control plane (embedded memory store) and one data plane in development mode with the demo
# page, in the foreground. Ctrl-C stops both.
#
# Environment: SB_CP_LISTEN (127.0.0.1:50051), SB_DP_LISTEN (127.0.0.1:8080), SB_BUILD_DIR (build),
# SB_SKIP_BUILD=1 to run what is already built.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/common.sh
. "$ROOT/scripts/common.sh"

CP_LISTEN=${SB_CP_LISTEN:-127.0.0.1:${SB_CP_PORT:-50051}}
DP_LISTEN=${SB_DP_LISTEN:-127.0.0.1:${SB_DP_PORT:-8080}}
BUILD_DIR=${SB_BUILD_DIR:-$ROOT/build}
CP_BIN=$BUILD_DIR/controlplane/switchboard-controlplane
DP_BIN=$BUILD_DIR/dataplane/switchboard-dataplane

sb_apt_ensure "${SB_BUILD_PKGS[@]}"

if [[ ${SB_SKIP_BUILD:-0} != 1 ]]; then
    sb_log "building (Release) into $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DSB_TESTS=OFF -DSB_BENCH=OFF \
        -DSB_SANITIZE=OFF >/dev/null
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target switchboard-controlplane switchboard-dataplane
fi
[[ -x $CP_BIN && -x $DP_BIN ]] || sb_die "daemons not built ($CP_BIN, $DP_BIN)"

CP_PID=
DP_PID=
# shellcheck disable=SC2317 # invoked from the traps
stop() {
    trap - INT TERM EXIT
    local pid
    # The data plane first (it closes its clients with 1001), then the control plane; each gets
    # 10 s to exit cleanly before it is killed.
    for pid in $DP_PID $CP_PID; do
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

sb_log "starting switchboard-controlplane on $CP_LISTEN (memory store, auto-create rooms)"
"$CP_BIN" --listen "$CP_LISTEN" --store memory --auto-create-rooms &
CP_PID=$!
sb_wait_tcp "$CP_LISTEN" "$CP_PID" 30 || sb_die "control plane did not start on $CP_LISTEN"

sb_log "starting switchboard-dataplane on $DP_LISTEN (development mode: ?user_id= accepted)"
"$DP_BIN" --listen "$DP_LISTEN" --controlplane "$CP_LISTEN" --dev-mode \
    --web-root "$ROOT/dataplane/web" &
DP_PID=$!
sb_wait_http "http://$DP_LISTEN/readyz" "$DP_PID" 30 || sb_die "data plane not ready on $DP_LISTEN"

cat <<EOF

  Switchboard is running.
    demo page:      http://$DP_LISTEN/
    WebSocket:      ws://$DP_LISTEN/ws?user_id=alice     (development mode)
    gRPC API:       $CP_LISTEN   (switchboard.v1.*, see README.md)
  Press Ctrl-C to stop both daemons.

EOF

# Stay in the foreground until Ctrl-C or until one daemon exits on its own.
set +e
wait -n "$CP_PID" "$DP_PID"
rc=$?
set -e
sb_log "a daemon exited (status $rc); stopping the other"
exit "$rc"
