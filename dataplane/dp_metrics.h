/* The data plane's counters and their Prometheus text exposition. Updated and read on the lws
 * thread only, so plain integers suffice. */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct dp_metrics {
    int64_t connections_ws;  /* gauge: open WebSocket sessions */
    int64_t connections_sse; /* gauge: open SSE streams */
    uint64_t connections_total;
    uint64_t connections_rejected_total; /* unauthorized, unavailable, refused by the CP */
    uint64_t frames_in_total;            /* client frames received (WS messages + SSE POSTs) */
    uint64_t frames_invalid_total;       /* answered invalid_message / message_too_large */
    uint64_t frames_out_total;           /* frames written to client sockets */
    uint64_t bytes_out_total;
    uint64_t writes_out_total;            /* socket writes carrying them (frames are batched) */
    uint64_t deliveries_total;            /* Delivery items received from the control plane */
    uint64_t delivery_targets_total;      /* frames queued for sessions by those deliveries */
    uint64_t outbox_dropped_total;        /* frames dropped by the "drop" overflow policy */
    uint64_t slow_consumer_closes_total;  /* sessions closed by the "disconnect" policy */
    uint64_t requests_total;              /* requests forwarded to the control plane */
    uint64_t requests_unavailable_total;  /* requests answered `unavailable` */
    int64_t link_up;                      /* gauge: 1 while some NodeLink stream has a Welcome */
    uint64_t link_reconnects_total;       /* welcomed NodeLink streams that ended */
    int64_t link_streams_up;              /* gauge: welcomed streams (one per control plane) */
    uint64_t link_failovers_total;        /* primary control plane replaced by another */
    uint64_t deliveries_duplicate_total;  /* room deliveries dropped: seq already delivered */
    uint64_t memberships_stale_total;     /* Membership items ignored: older revision */
    uint64_t token_refreshed_total;       /* `refresh` frames accepted */
    uint64_t token_refresh_refused_total; /* `refresh` frames refused (unauthorized) */
    uint64_t token_expired_closes_total;  /* connections closed with 4001 token_expired */
};

extern struct dp_metrics dp_metrics;

/* Writes the Prometheus text format into `out` (cap bytes, NUL-terminated) and returns its
 * length, or 0 if `cap` is too small. lws thread. */
size_t dp_metrics_format(const struct dp_metrics *m, char *out, size_t cap);

#endif
