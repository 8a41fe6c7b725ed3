# shellcheck shell=bash
# Shell helpers shared by run.sh, compare.sh and tokens.sh (sourced, not run). The caller
# defines log(), ROOT and BUILD before calling build_bench or find_bin.

# Path of the executable `name` under $BUILD; exits 3 when it is not built.
find_bin() {
    local f
    f=$(find "$BUILD" -type f -name "$1" -perm -u+x 2>/dev/null | head -n1)
    [ -n "$f" ] || { log "no $1 under $BUILD (build it first)"; exit 3; }
    echo "$f"
}

# The Release build with -DSB_BENCH=ON into $BUILD (configured once), of the targets given;
# exits 3 with the build log's tail when it fails.
build_bench() {
    mkdir -p "$BUILD"
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DSB_BENCH=ON \
            >"$BUILD/bench-build.log" 2>&1 || { tail -n 30 "$BUILD/bench-build.log" >&2; exit 3; }
    fi
    cmake --build "$BUILD" -j"$(nproc)" --target "$@" \
        >"$BUILD/bench-build.log" 2>&1 || { tail -n 30 "$BUILD/bench-build.log" >&2; exit 3; }
}

# SIGTERM to every PID given, a bounded wait (5 s each), then SIGKILL; reaps them.
stop_pids() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
}

free_port() { # a port nobody listens on; the kernel picks it when python3 is there
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
        return
    fi
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 10000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    log "no free port found"; exit 3
}

wait_tcp() { # port pid seconds
    for _ in $(seq $(($3 * 20))); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

wait_ready() { # port pid seconds: the data plane is linked to the control plane
    for _ in $(seq $(($3 * 20))); do
        kill -0 "$2" 2>/dev/null || return 1
        curl -sf -o /dev/null "http://127.0.0.1:$1/readyz" && return 0
        sleep 0.05
    done
    return 1
}

field() { # "RESULT k=v ..." key
    local kv
    for kv in $1; do
        case "$kv" in "$2="*) echo "${kv#*=}"; return ;; esac
    done
    echo "-"
}
