#!/usr/bin/env bash
# Throwaway single-member etcd for tests: free loopback ports, a temporary data dir, the flags
# of NOTES.md ("etcd ... Tests"), ready when GET /health says {"health":"true"}.
#
#   eval "$(tests/support/etcd.sh start)"   # sets ETCD_ENDPOINT ETCD_PID ETCD_DIR
#   ...
#   tests/support/etcd.sh stop "$ETCD_PID" "$ETCD_DIR"
#
# Or source it and call etcd_start / etcd_stop (same variables). The etcd log is
# $ETCD_DIR/etcd.log. ETCD_BIN overrides /usr/bin/etcd; ETCD_PROGRESS_INTERVAL (default 2s)
# sets --experimental-watch-progress-notify-interval.
set -u

etcd_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts etcd; prints nothing, sets ETCD_ENDPOINT, ETCD_PID, ETCD_DIR. Returns 1 on failure.
etcd_start() {
    local bin=${ETCD_BIN:-/usr/bin/etcd}
    if [ ! -x "$bin" ]; then
        echo "etcd.sh: $bin not found (Debian package etcd-server)" >&2
        return 1
    fi
    local attempt
    for attempt in 1 2 3; do
        local cport pport dir
        cport=$(etcd_free_port) && pport=$(etcd_free_port) || return 1
        [ "$cport" != "$pport" ] || continue
        dir=$(mktemp -d /tmp/sb-etcd-XXXXXX) || return 1
        # Started from a subshell so it is not our job (no "Killed" notice, works the same
        # when this script runs standalone); output redirected and stdin closed so $(...)
        # callers do not wait on its pipes. Stopped by pid.
        local pid
        pid=$(
            "$bin" --name s1 --data-dir "$dir/d" \
                --listen-client-urls "http://127.0.0.1:$cport" \
                --advertise-client-urls "http://127.0.0.1:$cport" \
                --listen-peer-urls "http://127.0.0.1:$pport" \
                --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
                --initial-cluster "s1=http://127.0.0.1:$pport" \
                --unsafe-no-fsync --heartbeat-interval=10 --election-timeout=100 \
                --experimental-watch-progress-notify-interval="${ETCD_PROGRESS_INTERVAL:-2s}" \
                </dev/null >"$dir/etcd.log" 2>&1 &
            echo $!
        )
        local i
        for i in $(seq 1 200); do # 200 x 50 ms = 10 s
            if ! kill -0 "$pid" 2>/dev/null; then
                break # exited (port taken?): try other ports
            fi
            if curl -s -m 1 "http://127.0.0.1:$cport/health" 2>/dev/null | grep -q '"health":"true"'; then
                ETCD_ENDPOINT="http://127.0.0.1:$cport"
                ETCD_PID=$pid
                ETCD_DIR=$dir
                export ETCD_ENDPOINT ETCD_PID ETCD_DIR
                return 0
            fi
            sleep 0.05
        done
        echo "etcd.sh: etcd not healthy (attempt $attempt), log:" >&2
        tail -5 "$dir/etcd.log" >&2
        etcd_stop "$pid" "$dir"
    done
    return 1
}

# Kills etcd by pid (SIGKILL: a throwaway member), waits for it to exit, removes the dir.
etcd_stop() {
    local pid=${1:-${ETCD_PID:-}} dir=${2:-${ETCD_DIR:-}}
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        local i
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    case "$dir" in
    /tmp/sb-etcd-*) rm -rf -- "$dir" ;;
    "") ;;
    *) echo "etcd.sh: refusing to remove $dir (not /tmp/sb-etcd-*)" >&2 ;;
    esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
    start)
        etcd_start || exit 1
        printf 'ETCD_ENDPOINT=%s\nETCD_PID=%s\nETCD_DIR=%s\n' "$ETCD_ENDPOINT" "$ETCD_PID" "$ETCD_DIR"
        ;;
    stop)
        etcd_stop "${2:-}" "${3:-}"
        ;;
    *)
        echo "usage: $0 start | stop PID DIR" >&2
        exit 2
        ;;
    esac
fi
