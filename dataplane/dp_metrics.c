/* Prometheus text format 0.0.4: HELP and TYPE lines, then one sample per metric. */
#include "dp_metrics.h"

#include <stdio.h>

struct dp_metrics dp_metrics;

size_t dp_metrics_format(const struct dp_metrics *m, char *out, size_t cap)
{
    struct row {
        const char *name, *type, *help;
        long long value;
    } rows[] = {
        {"switchboard_dp_connections", "gauge", "Open client connections by transport.", 0},
        {"switchboard_dp_connections_total", "counter", "Client connections accepted.",
         (long long)m->connections_total},
        {"switchboard_dp_token_refreshed_total", "counter", "Token refreshes accepted.",
         (long long)m->token_refreshed_total},
        {"switchboard_dp_token_refresh_refused_total", "counter",
         "Token refreshes refused (bad token, or another user).",
         (long long)m->token_refresh_refused_total},
        {"switchboard_dp_token_expired_closes_total", "counter",
         "Connections closed because their token expired (4001).",
         (long long)m->token_expired_closes_total},
        {"switchboard_dp_connections_rejected_total", "counter",
         "Connections refused (unauthorized, control plane unavailable or refusing).",
         (long long)m->connections_rejected_total},
        {"switchboard_dp_frames_in_total", "counter", "Client frames received.",
         (long long)m->frames_in_total},
        {"switchboard_dp_frames_invalid_total", "counter",
         "Client frames refused with invalid_message or message_too_large.",
         (long long)m->frames_invalid_total},
        {"switchboard_dp_frames_out_total", "counter", "Frames written to clients.",
         (long long)m->frames_out_total},
        {"switchboard_dp_bytes_out_total", "counter", "Bytes written to clients.",
         (long long)m->bytes_out_total},
        {"switchboard_dp_writes_out_total", "counter",
         "Socket writes to clients (several frames each when batched).",
         (long long)m->writes_out_total},
        {"switchboard_dp_deliveries_total", "counter",
         "Deliveries received from the control plane (each framed once).",
         (long long)m->deliveries_total},
        {"switchboard_dp_delivery_targets_total", "counter",
         "Frames queued to local connections by deliveries.", (long long)m->delivery_targets_total},
        {"switchboard_dp_outbox_dropped_total", "counter",
         "Frames dropped because an outbox was full (policy drop).",
         (long long)m->outbox_dropped_total},
        {"switchboard_dp_slow_consumer_closes_total", "counter",
         "Connections closed because their outbox was full (policy disconnect).",
         (long long)m->slow_consumer_closes_total},
        {"switchboard_dp_requests_total", "counter", "Requests forwarded to the control plane.",
         (long long)m->requests_total},
        {"switchboard_dp_requests_unavailable_total", "counter",
         "Requests answered unavailable (link down or congested).",
         (long long)m->requests_unavailable_total},
        {"switchboard_dp_link_up", "gauge", "1 while some NodeLink stream is welcomed.",
         (long long)m->link_up},
        {"switchboard_dp_link_reconnects_total", "counter", "Welcomed NodeLink streams that ended.",
         (long long)m->link_reconnects_total},
        {"switchboard_dp_link_streams_up", "gauge",
         "Welcomed NodeLink streams (one per control-plane replica).",
         (long long)m->link_streams_up},
        {"switchboard_dp_link_failovers_total", "counter",
         "Times the primary control plane was replaced by another replica.",
         (long long)m->link_failovers_total},
        {"switchboard_dp_deliveries_duplicate_total", "counter",
         "Room deliveries dropped because their seq was already delivered here.",
         (long long)m->deliveries_duplicate_total},
        {"switchboard_dp_memberships_stale_total", "counter",
         "Membership items ignored because a newer revision was already applied.",
         (long long)m->memberships_stale_total},
    };
    size_t o = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int n;
        if (i == 0)
            n = snprintf(out + o, cap - o,
                         "# HELP %s %s\n# TYPE %s %s\n%s{transport=\"websocket\"} %lld\n"
                         "%s{transport=\"sse\"} %lld\n",
                         rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                         (long long)m->connections_ws, rows[i].name, (long long)m->connections_sse);
        else
            n = snprintf(out + o, cap - o, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", rows[i].name,
                         rows[i].help, rows[i].name, rows[i].type, rows[i].name, rows[i].value);
        if (n < 0 || (size_t)n >= cap - o)
            return 0;
        o += (size_t)n;
    }
    return o;
}
