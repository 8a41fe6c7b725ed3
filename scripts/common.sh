# shellcheck shell=bash disable=SC2034
# Shared by scripts/run.sh and scripts/test.sh (sourced, not run): package installation on
# Debian 12, waiting for ports and URLs, and the package lists both scripts agree on.

# Debian packages needed to build both daemons.
SB_BUILD_PKGS=(build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
    libwebsockets-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev libyaml-dev grpc-proto curl
    ca-certificates)

# Extra Debian packages the test suite needs (node/npm are handled apart: see sb_ensure_node);
# etcd-server: the etcd client and store tests start a real etcd on loopback.
SB_TEST_PKGS=(clang-format chromium fonts-liberation etcd-server)

sb_log() {
    printf '\033[1m==> %s\033[0m\n' "$*" >&2
}

sb_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Prints the packages of "$@" that are not installed.
sb_missing_pkgs() {
    local p st
    for p in "$@"; do
        st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $st == "install ok installed" ]] || printf '%s\n' "$p"
    done
}

# Installs the Debian packages of "$@" that are missing; does nothing (and needs no network)
# when all are present. Runs `apt-get update` first, as a fresh machine needs.
sb_apt_ensure() {
    local missing
    mapfile -t missing < <(sb_missing_pkgs "$@")
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    if [[ $(id -u) != 0 ]]; then
        sb_die "missing Debian packages: ${missing[*]} (run as root, or install them first)"
    fi
    sb_log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Node.js >= 18 with npm: installed from Debian (nodejs, npm) only when `node` or `npm` is
# absent, so a Node.js that is already there (e.g. a newer one) is kept as it is.
sb_ensure_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        sb_apt_ensure nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 18)) || sb_die "Node.js >= 18 needed, found $(node --version)"
}

# Waits until a TCP connect to host:port succeeds, or the timeout (seconds) passes, or the
# process with pid $3 exits. Returns 0 when connectable.
sb_wait_tcp() {
    local host=${1%:*} port=${1##*:} pid=$2 timeout=${3:-30} i
    for ((i = 0; i < timeout * 10; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Waits until GET $1 answers 200, or the timeout (seconds) passes, or process $2 exits.
sb_wait_http() {
    local url=$1 pid=$2 timeout=${3:-30} i
    for ((i = 0; i < timeout * 10; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
