/* Channels: creation, deletion, listing by pattern, per-user subscriptions with optional
 * metadata filters, and publishing to subscribers. Kept in Store documents, so the same code
 * serves the memory and the etcd store (docs/channels.md):
 *   channels/<channel>            {"created_at":ms,"metadata":{...},"client_publish":bool}
 *   subs/<channel>/<user>         {"filter":"...","subscribed_at":ms}
 *   user_subs/<user>/<channel>    {"subscribed_at":ms}  (written with subs/, in one doc_write)
 *   idem_ch/<channel>/<hash>      {"key":..,"message_id":..,"expires_at":ms} (2 minutes)
 * Callbacks fire exactly once, possibly before the call returns; everything they are given is
 * borrowed for the callback only. Inputs are copied. Thread: the completion-queue thread. */
#ifndef CP_CHANNELS_H
#define CP_CHANNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_ctx.h"

struct cp_channel_info {
    const char *id;
    const struct cp_kv *metadata;
    size_t n_metadata;
    int64_t created_at; /* Unix ms */
    int32_t subscriber_count;
    bool client_publish; /* clients may publish (docs/channels.md) */
};

typedef void cp_channels_done_fn(void *arg, const struct cp_status *st);
typedef void cp_channels_one_fn(void *arg, const struct cp_status *st,
                                const struct cp_channel_info *ch);
typedef void cp_channels_list_fn(void *arg, const struct cp_status *st,
                                 const struct cp_channel_info *chs, size_t n);
typedef void cp_channels_ids_fn(void *arg, const struct cp_status *st, const char *const *ids,
                                size_t n);
typedef void cp_channels_publish_fn(void *arg, const struct cp_status *st, const char *message_id);
typedef void cp_channels_count_fn(void *arg, const struct cp_status *st, int64_t n);

/* Creates a channel (ids and metadata validated by the caller); `client_publish`: clients may
 * send `publish` frames to it. CHANNEL_ALREADY_EXISTS. */
void cp_channels_create(struct cp_ctx *c, const char *channel_id, const struct cp_kv *metadata,
                        size_t n_metadata, bool client_publish, cp_channels_one_fn *cb, void *arg);

/* Deletes the channel, its subscriptions and idempotency records; subscribers' nodes get
 * Membership(removed). CHANNEL_NOT_FOUND. */
void cp_channels_delete(struct cp_ctx *c, const char *channel_id, cp_channels_done_fn *cb,
                        void *arg);

/* Channels whose id matches `pattern` (cp_glob; NULL or "" for all), by id, with their
 * subscriber counts. INVALID_MESSAGE for a bad pattern. */
void cp_channels_list(struct cp_ctx *c, const char *pattern, cp_channels_list_fn *cb, void *arg);

struct cp_subscribe {
    const char *channel_id;
    const char *user_id;
    const char *filter; /* NULL or blank: every message */
    /* A client frame: a missing channel is created when auto_create_channels is on, and a
     * subscription that exists already is acked (its filter replaced) instead of refused. */
    bool client;
};

/* Subscribes the user. INVALID_MESSAGE (bad filter), CHANNEL_NOT_FOUND, ALREADY_SUBSCRIBED
 * (not for client frames), CHANNEL_LIMIT_REACHED (max_channels_per_user). The user's nodes
 * get Membership(added) before cb runs. */
void cp_channels_subscribe(struct cp_ctx *c, const struct cp_subscribe *req,
                           cp_channels_done_fn *cb, void *arg);

/* Unsubscribes the user. CHANNEL_NOT_FOUND, NOT_SUBSCRIBED. */
void cp_channels_unsubscribe(struct cp_ctx *c, const char *channel_id, const char *user_id,
                             cp_channels_done_fn *cb, void *arg);

/* The channel's subscribers by user id. CHANNEL_NOT_FOUND. */
void cp_channels_subscribers(struct cp_ctx *c, const char *channel_id, cp_channels_ids_fn *cb,
                             void *arg);

/* The channels the user is subscribed to, by id (none is not an error): for ConnOpened. */
void cp_channels_of_user(struct cp_ctx *c, const char *user_id, cp_channels_ids_fn *cb, void *arg);

struct cp_channel_publish {
    const char *channel_id;
    const char *user_id; /* sender; NULL or "" for none */
    const char *data;    /* valid JSON text */
    size_t data_len;
    const struct cp_kv *metadata;
    size_t n_metadata;
    const char *idem_key; /* NULL or "": none */
    /* A client `publish` frame: refused (PERMISSION_DENIED) unless the channel has
     * client_publish and the user may publish there (cp_access_publish). */
    bool client;
};

/* Gives the message an id and sends the channel `message` frame to every subscriber whose
 * filter matches its metadata (every connection of those users), then answers the id. A
 * repeated idem_key within two minutes answers the first id and delivers nothing.
 * CHANNEL_NOT_FOUND, PERMISSION_DENIED (client publishes only). */
void cp_channels_publish(struct cp_ctx *c, const struct cp_channel_publish *p,
                         cp_channels_publish_fn *cb, void *arg);

/* Number of channels (GetStats). */
void cp_channels_count(struct cp_ctx *c, cp_channels_count_fn *cb, void *arg);

#endif
