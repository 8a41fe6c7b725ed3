/* Connections and user presence: which user has which connections on which node, the grace
 * period before a user with no connection left is announced offline, and the presence record
 * (the user-set part: status, custom status, device, activity, availability, last activity),
 * kept as the Store document presence/<user> so that every replica reads the same one
 * (docs/presence.md). Pure state and pure decisions (no I/O); the caller announces changes.
 * Thread: the completion-queue thread only. */
#ifndef CP_PRESENCE_H
#define CP_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_map.h"
#include "cp_node.h"
#include "sb_bucket.h"

struct cp_user;

struct cp_conn {
    char *id;
    char *session_id;
    char *transport;
    struct cp_user *user;
    struct cp_node *node; /* memory mode: the stream; NULL for connections from etcd */
    char *node_id;        /* the hosting node (etcd mode: resolved to a stream at fan-out) */
    uint64_t gen;         /* etcd re-list generation that last saw it */
    int64_t connected_at; /* Unix ms */
    /* Unix ms of the connection's last request handled by this replica; 0: none yet. */
    int64_t last_activity;
};

struct cp_user {
    char *id;
    struct cp_conn **conns;
    size_t n_conns, cap_conns;
    bool online;  /* announced online (stays true through the grace period) */
    char *status; /* "online", "away", "busy", "offline" */
    char *custom_status, *device_type, *device_name, *activity_type, *activity_detail;
    char *availability;
    int64_t last_seen;     /* Unix ms: last connect, disconnect or presence change */
    int64_t offline_since; /* Unix ms the user last went offline (0: never) */
    int64_t offline_at;    /* monotonic ms when the grace period ends; 0: not pending */
    /* Presence timeout (flows/cp_online.c). Unix ms. */
    int64_t last_activity;    /* newest activity seen here or read from the record */
    int64_t activity_written; /* when this replica last wrote activity into the record */
    int64_t idle_checked;     /* when the timeout check last read the record for this user */
    bool auto_away;           /* as last read: "away" set by the presence timeout */
    struct cp_user *grace_prev, *grace_next;
    struct sb_bucket rate; /* client message/publish rate limit (cp_limits.c) */
};

struct cp_presence {
    struct sb_map conns; /* id -> struct cp_conn */
    struct sb_map users; /* id -> struct cp_user (offline users keep a small record) */
    struct cp_user *grace_head, *grace_tail; /* ordered by offline_at (one fixed grace) */
    size_t n_conns;
    size_t n_online;
    /* Bumped whenever a connection appears, goes or changes node (and when a node stream is
     * freed): what the fan-out derived from connections stays valid while it is unchanged. */
    uint64_t conn_gen;
    int64_t idle_scan_at; /* monotonic ms of the next presence-timeout scan (flows/cp_online.c) */
};

void cp_presence_init(struct cp_presence *p);
void cp_presence_fini(struct cp_presence *p);

/* Looks up a user (NULL if never seen). */
struct cp_user *cp_presence_user(const struct cp_presence *p, const char *user_id);

/* Looks up a connection. */
struct cp_conn *cp_presence_conn(const struct cp_presence *p, const char *conn_id);

/* Records a connection of `user_id` on `node`. If the id exists already (a resync after a
 * link reconnect) the record moves to `node`. *came_online is set when the user was not
 * online before (announce it). SB_ENOMEM. */
enum sb_err cp_presence_open(struct cp_presence *p, const char *conn_id, const char *user_id,
                             const char *session_id, const char *transport, int64_t connected_at,
                             struct cp_node *node, int64_t now_ms, bool *came_online);

/* Same for a connection known from etcd (sb/conns/<node>/...): no stream pointer, only the
 * node id; `gen` marks the re-list generation that saw it. */
enum sb_err cp_presence_open_remote(struct cp_presence *p, const char *conn_id, const char *user_id,
                                    const char *session_id, const char *transport,
                                    int64_t connected_at, const char *node_id, uint64_t gen,
                                    int64_t now_ms, bool *came_online);

/* Removes a connection. *user_out gets its user (NULL if the id is unknown); *last is set when
 * it was the user's last connection: the user's offline announcement is then due after
 * `grace_ms` (0: now; *last and the caller calls cp_presence_set_offline). */
void cp_presence_close(struct cp_presence *p, const char *conn_id, int64_t now_ms, int64_t mono_ms,
                       int64_t grace_ms, struct cp_user **user_out, bool *last);

/* Marks `u` offline now (status "offline", leaves the grace list). */
void cp_presence_set_offline(struct cp_presence *p, struct cp_user *u, int64_t now_ms);

/* Sets the user's status fields (NULL leaves a field unchanged; "" clears it). SB_ENOMEM. */
enum sb_err cp_presence_update(struct cp_user *u, const char *status, const char *custom_status,
                               const char *device_type, const char *device_name,
                               const char *activity_type, const char *activity_detail,
                               int64_t now_ms);

/* The first user whose grace period ended at `mono_ms`, or NULL (then call
 * cp_presence_set_offline on it and ask again). */
struct cp_user *cp_presence_grace_due(const struct cp_presence *p, int64_t mono_ms);

/* Monotonic ms of the next grace end, or 0 when none is pending. */
int64_t cp_presence_next_deadline(const struct cp_presence *p);

/* True if `status` is one of online, away, busy, offline. */
bool cp_presence_status_valid(const char *status);

/* ---------------------------------------------------------------- the presence record */

/* The document presence/<user> (JSON, see cp_presence_record_format). Strings are heap-owned
 * and never NULL after parse/init ("" when unset). */
struct cp_presence_record {
    char *status;   /* "" while none is set: the user is "online" while connected */
    bool auto_away; /* status "away" was set by the presence timeout (activity undoes it) */
    char *custom_status;
    char *device_type, *device_name;
    char *activity_type, *activity_detail;
    char *availability;
    int64_t last_activity; /* Unix ms, 0: never */
    int64_t updated_at;    /* Unix ms of the last user-set change */
};

/* An empty record (all strings ""). SB_ENOMEM. */
enum sb_err cp_presence_record_init(struct cp_presence_record *r);
void cp_presence_record_fini(struct cp_presence_record *r);

/* Replaces *field with a copy of v (NULL: ""). SB_ENOMEM leaves it unchanged. */
enum sb_err cp_presence_record_set(char **field, const char *v);

/* Parses a record; unknown or wrong-typed fields are ignored (a record from a newer version
 * still reads). SB_EPROTO when the text is not a JSON object, SB_ENOMEM. On error `out` is
 * left as an empty record (initialized) unless SB_ENOMEM. */
enum sb_err cp_presence_record_parse(const char *json, size_t len, struct cp_presence_record *out);

/* {"status":..,"auto_away":..,"custom_status":..,"device":{"type","name"},
 *  "activity":{"type","detail"},"availability":..,"last_activity":..,"updated_at":..}
 * (empty strings and false/0 omitted). New string (free), NULL on ENOMEM. */
char *cp_presence_record_format(const struct cp_presence_record *r);

/* The status others see: "offline" when the user is not online (no connection, grace over),
 * else the record's status, "online" when none is set. */
const char *cp_presence_effective_status(bool online, const struct cp_presence_record *r);

/* True when an online user with this record is due to become away: no status other than
 * "online" is set (busy, away and offline stick), and no activity for `timeout_ms` by
 * max(record's last_activity, local_activity). `timeout_ms` <= 0 disables the timeout. */
bool cp_presence_is_idle(const struct cp_presence_record *r, int64_t local_activity, int64_t now_ms,
                         int64_t timeout_ms);

#endif
