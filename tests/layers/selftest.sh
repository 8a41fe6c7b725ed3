#!/usr/bin/env bash
# Proves that check.sh fails on what it must refuse: builds small trees in a temporary folder,
# one rule broken in each, and one tree that keeps every rule.
set -uo pipefail
CHECK="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

tree() { # tree NAME: a minimal tree where every include is allowed
    local r=$T/$1
    mkdir -p "$r"/common "$r"/dataplane "$r"/controlplane/{core,store,store/etcd,fanout,flows,link,api,app}
    echo '#include "sb_x.h"' >"$r/common/sb_x.c"
    : >"$r/common/sb_x.h"
    printf '#include "dp_x.h"\n#include "sb_x.h"\n' >"$r/dataplane/dp_x.c"
    : >"$r/dataplane/dp_x.h"
    for l in core store fanout flows link api app; do : >"$r/controlplane/$l/cp_$l.h"; done
    : >"$r/controlplane/store/etcd/cp_etcd.h"
    printf '#include "cp_core.h"\n#include "sb_x.h"\n' >"$r/controlplane/store/cp_store.c"
    printf '#include "cp_store.h"\n' >"$r/controlplane/store/etcd/cp_etcd.c"
    printf '#include "cp_store.h"\n' >"$r/controlplane/fanout/cp_fanout.c"
    printf '#include "cp_fanout.h"\n#include "cp_core.h"\n' >"$r/controlplane/flows/cp_flows.c"
    printf '#include "cp_flows.h"\n' >"$r/controlplane/link/cp_link.c"
    printf '#include "cp_flows.h"\n' >"$r/controlplane/api/cp_api.c"
    printf '#include "cp_api.h"\n#include "cp_link.h"\n#include "cp_etcd.h"\n' >"$r/controlplane/app/cp_app.c"
    echo "$r"
}
expect() { # expect STATUS NAME: runs the check on tree NAME
    local out rc
    out=$(bash "$CHECK" "$T/$2" 2>&1)
    rc=$?
    if [[ $rc != "$1" ]]; then
        echo "selftest $2: exit $rc, expected $1: $out"
        fails=1
    fi
}

tree good >/dev/null
expect 0 good
r=$(tree upward); echo '#include "cp_api.h"' >>"$r/controlplane/flows/cp_flows.c"
expect 1 upward
r=$(tree sibling); echo '#include "cp_link.h"' >>"$r/controlplane/api/cp_api.c"
expect 1 sibling
r=$(tree etcd); echo '#include "cp_etcd.h"' >>"$r/controlplane/flows/cp_flows.c"
expect 1 etcd
r=$(tree header); echo '#include "cp_app.h"' >"$r/controlplane/core/cp_core.h"
expect 1 header
r=$(tree planes); echo '#include "cp_core.h"' >>"$r/dataplane/dp_x.c"
expect 1 planes
r=$(tree common); echo '#include "dp_x.h"' >>"$r/common/sb_x.c"
expect 1 common
r=$(tree flat); : >"$r/controlplane/cp_flat.h"; echo '#include "cp_flat.h"' >>"$r/controlplane/app/cp_app.c"
expect 1 flat
((fails == 0)) && echo "layers selftest: 8 trees, all judged as expected"
exit $fails
