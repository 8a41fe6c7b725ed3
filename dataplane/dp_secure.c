/* NodeLink's credential on the data plane: the cluster secret file, and the refusal to send
 * NodeLink unauthenticated beyond loopback, where anyone could stand in for the control plane
 * or the control plane could not tell this node from anyone. */
#include "dp_secure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_addr.h"
#include "sb_log.h"

#define CLUSTER_SECRET_MIN 32

bool dp_secure_endpoints_local(const char *endpoints)
{
    char *list = strdup(endpoints != NULL ? endpoints : "");
    if (list == NULL)
        return false;
    bool local = list[0] != '\0';
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t != NULL && local; t = strtok_r(NULL, ",", &save))
        local = sb_addr_is_local(t);
    free(list);
    return local;
}

enum sb_config_result dp_secure_check(struct dp_config *c)
{
    c->cluster_secret = NULL;
    if (c->cluster_secret_file != NULL && c->cluster_secret_file[0] != '\0') {
        char why[512];
        if (sb_secret_load(c->cluster_secret_file, "cluster_secret_file", CLUSTER_SECRET_MIN,
                           &c->cluster_secret, why, sizeof(why)) != SB_OK) {
            fprintf(stderr, "switchboard-dataplane: --cluster-secret-file: %s\n", why);
            return SB_CONFIG_EXIT_ERR;
        }
        return SB_CONFIG_RUN;
    }
    if (dp_secure_endpoints_local(c->controlplane))
        return SB_CONFIG_RUN;
    if (c->allow_insecure) {
        SB_LOG_WARN("dp",
                    "INSECURE (--allow-insecure): NodeLink goes beyond loopback without a "
                    "cluster secret",
                    "controlplane=\"%s\" missing=--cluster-secret-file", c->controlplane);
        return SB_CONFIG_RUN;
    }
    fprintf(stderr,
            "switchboard-dataplane: refusing to start: NodeLink to %s would carry no "
            "credential; give --cluster-secret-file FILE (the control plane's) or "
            "--allow-insecure\n",
            c->controlplane);
    return SB_CONFIG_EXIT_ERR;
}
