/* grpc.health.v1.Health/Check: SERVING for the whole server ("") and each of our services;
 * NOT_FOUND for any other service name, as the health protocol asks. Health/Watch: the same
 * status (SERVICE_UNKNOWN for other names) as the first message of a stream that stays open
 * (cp_watch.c) until the client leaves or the server stops. */
#include "cp_rpc.h"

#include <stdio.h>
#include <string.h>

#include "cp_watch.h"
#include "grpc/health/v1/health.pb-c.h"

static const char *const services[] = {
    "",
    "switchboard.v1.Rooms",
    "switchboard.v1.Channels",
    "switchboard.v1.Messages",
    "switchboard.v1.Presence",
    "switchboard.v1.Connections",
    "switchboard.internal.v1.NodeLink",
    "grpc.health.v1.Health",
};

static bool known(const char *svc)
{
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
        if (strcmp(svc, services[i]) == 0)
            return true;
    return false;
}

void cp_rpc_health_watch(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)m;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = known(req->service ? req->service : "")
                      ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                      : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    cp_watch_health(c, call, &resp.base);
}

void cp_rpc_health_check(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *m)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)m;
    const char *svc = req->service ? req->service : "";
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
        if (strcmp(svc, services[i]) == 0) {
            Grpc__Health__V1__HealthCheckResponse resp =
                GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
            resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
            cp_call_reply(call, &resp.base);
            return;
        }
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "unknown service %.200s", svc);
    cp_call_status(call, GRPC_STATUS_NOT_FOUND, msg);
}
