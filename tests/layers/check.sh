#!/usr/bin/env bash
# The include rules that keep the layers apart, checked on the sources (run by ctest):
#   common/ includes only common/ (and system or library headers);
#   dataplane/ and controlplane/ never include each other's headers;
#   each control-plane layer includes only itself and the layers below it:
#     app -> api, link -> flows -> fanout -> store -> core, and store/etcd -> store
#     (store/etcd is the etcd implementation of store's interfaces; only app picks it).
# Prints every offending #include with its file and line; exits 1 if there is one.
set -uo pipefail
ROOT=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$ROOT" || exit 2

# layer of a control-plane header or source, from its folder
declare -A LAYER ALLOWED
ALLOWED[core]="core"
ALLOWED[store]="store core"
ALLOWED[etcd]="etcd store core"
ALLOWED[fanout]="fanout store core"
ALLOWED[flows]="flows fanout store core"
ALLOWED[link]="link flows fanout store core"
ALLOWED[api]="api flows fanout store core"
ALLOWED[app]="app api link flows fanout store etcd core"

layer_of() { # path -> layer name
    case $1 in
    controlplane/store/etcd/*) echo etcd ;;
    controlplane/*/*) local d=${1#controlplane/}; echo "${d%%/*}" ;;
    controlplane/*) echo flat ;;
    esac
}

declare -A OWNER # header file name -> "plane layer"
while IFS= read -r h; do
    b=$(basename "$h")
    case $h in
    common/*) OWNER[$b]="common -" ;;
    dataplane/*) OWNER[$b]="dp -" ;;
    controlplane/*) OWNER[$b]="cp $(layer_of "$h")" ;;
    esac
done < <(find common dataplane controlplane -name '*.h' | sort)

bad=0
report() {
    echo "$1: includes \"$2\" ($3)"
    bad=1
}
while IFS= read -r f; do
    case $f in
    common/*) plane=common ;;
    dataplane/*) plane=dp ;;
    controlplane/*) plane=cp; me=$(layer_of "$f") ;;
    esac
    while IFS=: read -r line inc; do
        inc=${inc#*\"}
        inc=${inc%%\"*}
        own=${OWNER[$(basename "$inc")]:-}
        [[ -z $own ]] && continue # generated proto headers, system headers
        oplane=${own% *}
        olayer=${own#* }
        case $plane in
        common) [[ $oplane == common ]] || report "$f:$line" "$inc" "common/ depends on no plane" ;;
        dp) [[ $oplane == cp ]] && report "$f:$line" "$inc" "the data plane never includes the control plane" ;;
        cp)
            if [[ $oplane == dp ]]; then
                report "$f:$line" "$inc" "the control plane never includes the data plane"
            elif [[ $oplane == cp ]]; then
                if [[ $me == flat || $olayer == flat ]]; then
                    report "$f:$line" "$inc" "every control-plane file belongs to a layer folder"
                elif [[ " ${ALLOWED[$me]:-} " != *" $olayer "* ]]; then
                    report "$f:$line" "$inc" "$me may include only: ${ALLOWED[$me]:-nothing}"
                fi
            fi
            ;;
        esac
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done < <(find common dataplane controlplane -name '*.[ch]' | sort)
exit $bad
