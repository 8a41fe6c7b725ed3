/* Frame text builders. Field order follows PROTOCOL.md's examples so frames read the same
 * everywhere; optional fields are left out rather than sent as null. */
#include "cp_json.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "cp_msgext.h"
#include "sb_time.h"

static void key(struct cp_buf *b, const char *k)
{
    cp_buf_putc(b, ',');
    cp_buf_json_str(b, k, strlen(k));
    cp_buf_putc(b, ':');
}

static void str_field(struct cp_buf *b, const char *k, const char *v)
{
    key(b, k);
    cp_buf_json_str(b, v, strlen(v));
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* sb_time_format_rfc3339 without gmtime/printf per message: the text up to the seconds is
 * kept for the last second seen (every message of a second shares it). */
static void ts_field(struct cp_buf *b, int64_t ts)
{
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[SB_TIME_RFC3339_LEN];
    static _Thread_local size_t cached_len;
    int64_t sec = ts / 1000;
    int ms = (int)(ts % 1000);
    if (ms < 0) {
        ms += 1000;
        sec -= 1;
    }
    key(b, "timestamp");
    if (sec != cached_sec) {
        /* "YYYY-MM-DDTHH:MM:SS" + ".mmmZ": keep the part before the '.' */
        size_t n = sb_time_format_rfc3339(sec * 1000, cached, sizeof(cached));
        if (n < 5) {
            cached_sec = INT64_MIN;
            char t[SB_TIME_RFC3339_LEN];
            n = sb_time_format_rfc3339(ts, t, sizeof(t));
            cp_buf_json_str(b, t, n);
            return;
        }
        cached_len = n - 5;
        cached_sec = sec;
    }
    char *p = cp_buf_extend(b, cached_len + 7);
    if (p == NULL)
        return;
    *p++ = '"';
    memcpy(p, cached, cached_len);
    p += cached_len;
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    *p++ = 'Z';
    *p = '"';
}

static void time_field(struct cp_buf *b, const char *k, int64_t ms)
{
    char t[SB_TIME_RFC3339_LEN];
    size_t n = sb_time_format_rfc3339(ms, t, sizeof(t));
    key(b, k);
    cp_buf_json_str(b, t, n);
}

static void data_field(struct cp_buf *b, const char *data, size_t len)
{
    key(b, "data");
    cp_buf_append(b, data, len);
}

void cp_json_message(struct cp_buf *b, const struct cp_message *m)
{
    cp_buf_puts(b, "{\"type\":\"message\"");
    str_field(b, "id", m->id);
    key(b, "seq");
    cp_buf_i64(b, m->seq);
    str_field(b, "room_id", m->room_id);
    if (set(m->user_id))
        str_field(b, "user_id", m->user_id);
    /* A tombstone has no data (docs/history.md). */
    if (!m->deleted)
        data_field(b, m->data, m->data_len);
    if (set(m->thread_id))
        str_field(b, "thread_id", m->thread_id);
    if (m->n_metadata > 0) {
        key(b, "metadata");
        cp_buf_putc(b, '{');
        for (size_t i = 0; i < m->n_metadata; i++) {
            if (i > 0)
                cp_buf_putc(b, ',');
            cp_buf_json_str(b, m->metadata[i].key, strlen(m->metadata[i].key));
            cp_buf_putc(b, ':');
            cp_buf_json_str(b, m->metadata[i].value, strlen(m->metadata[i].value));
        }
        cp_buf_putc(b, '}');
    }
    ts_field(b, m->timestamp);
    if (m->deleted) {
        key(b, "deleted");
        cp_buf_puts(b, "true");
        time_field(b, "deleted_at", m->deleted_at);
    } else {
        if (m->edited_at != 0)
            time_field(b, "edited_at", m->edited_at);
        cp_msgext_render(b, m->ext);
    }
    cp_buf_putc(b, '}');
}

/* {"type":<type>,"room_id":..,"id":..,"seq":..: the head of the update frames. */
static void update_head(struct cp_buf *b, const char *type, const struct cp_message *m)
{
    cp_buf_puts(b, "{\"type\":");
    cp_buf_json_str(b, type, strlen(type));
    str_field(b, "room_id", m->room_id);
    str_field(b, "id", m->id);
    key(b, "seq");
    cp_buf_i64(b, m->seq);
}

void cp_json_message_edited(struct cp_buf *b, const struct cp_message *m, const char *editor_id)
{
    update_head(b, "message_edited", m);
    if (set(m->user_id))
        str_field(b, "user_id", m->user_id);
    if (set(editor_id))
        str_field(b, "editor_id", editor_id);
    data_field(b, m->data, m->data_len);
    time_field(b, "edited_at", m->edited_at);
    cp_buf_putc(b, '}');
}

void cp_json_message_deleted(struct cp_buf *b, const struct cp_message *m, const char *deleter_id)
{
    update_head(b, "message_deleted", m);
    if (set(deleter_id))
        str_field(b, "deleter_id", deleter_id);
    time_field(b, "deleted_at", m->deleted_at);
    cp_buf_putc(b, '}');
}

void cp_json_reaction(struct cp_buf *b, const struct cp_message *m, const char *emoji,
                      const char *user_id, bool added, int64_t ts)
{
    update_head(b, "reaction", m);
    str_field(b, "emoji", emoji);
    str_field(b, "user_id", user_id);
    key(b, "added");
    cp_buf_puts(b, added ? "true" : "false");
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_direct(struct cp_buf *b, const char *id, const char *sender, const char *data,
                    size_t data_len, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"message\"");
    str_field(b, "id", id);
    if (set(sender))
        str_field(b, "user_id", sender);
    data_field(b, data, data_len);
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_system(struct cp_buf *b, const char *data, size_t data_len, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"system\"");
    data_field(b, data, data_len);
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_membership(struct cp_buf *b, const char *type, const char *room_id,
                        const char *user_id, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":");
    cp_buf_json_str(b, type, strlen(type));
    str_field(b, "room_id", room_id);
    str_field(b, "user_id", user_id);
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_typing(struct cp_buf *b, const char *room_id, const char *user_id, bool typing)
{
    cp_buf_puts(b, "{\"type\":\"typing\"");
    str_field(b, "room_id", room_id);
    str_field(b, "user_id", user_id);
    key(b, "typing");
    cp_buf_puts(b, typing ? "true" : "false");
    cp_buf_putc(b, '}');
}

void cp_json_member_updated(struct cp_buf *b, const char *room_id, const char *user_id,
                            enum cp_role role, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"member_updated\"");
    str_field(b, "room_id", room_id);
    str_field(b, "user_id", user_id);
    str_field(b, "role", cp_role_name(role));
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_room_updated(struct cp_buf *b, const struct cp_room *r, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"room_updated\"");
    str_field(b, "room_id", r->id);
    str_field(b, "name", r->name);
    str_field(b, "owner_id", r->owner_id);
    key(b, "private");
    cp_buf_puts(b, r->is_private ? "true" : "false");
    key(b, "archived");
    cp_buf_puts(b, r->archived ? "true" : "false");
    key(b, "max_members");
    cp_buf_i64(b, r->max_members);
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

void cp_json_banned(struct cp_buf *b, const char *room_id, const char *reason, int64_t expires_at,
                    int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"banned\"");
    str_field(b, "room_id", room_id);
    if (set(reason))
        str_field(b, "reason", reason);
    if (expires_at > 0)
        time_field(b, "expires_at", expires_at);
    ts_field(b, ts);
    cp_buf_putc(b, '}');
}

static void pair_object(struct cp_buf *b, const char *name, const char *k1, const char *v1,
                        const char *k2, const char *v2)
{
    if (!set(v1) && !set(v2))
        return;
    key(b, name);
    cp_buf_putc(b, '{');
    const char *sep = "";
    if (set(v1)) {
        cp_buf_json_str(b, k1, strlen(k1));
        cp_buf_putc(b, ':');
        cp_buf_json_str(b, v1, strlen(v1));
        sep = ",";
    }
    if (set(v2)) {
        cp_buf_puts(b, sep);
        cp_buf_json_str(b, k2, strlen(k2));
        cp_buf_putc(b, ':');
        cp_buf_json_str(b, v2, strlen(v2));
    }
    cp_buf_putc(b, '}');
}

void cp_json_presence(struct cp_buf *b, const struct cp_presence_view *p)
{
    cp_buf_puts(b, "{\"type\":\"presence\"");
    str_field(b, "user_id", p->user_id);
    str_field(b, "status", p->status);
    if (set(p->custom_status))
        str_field(b, "custom_status", p->custom_status);
    pair_object(b, "device", "type", p->device_type, "name", p->device_name);
    pair_object(b, "activity", "type", p->activity_type, "detail", p->activity_detail);
    if (set(p->availability))
        str_field(b, "availability", p->availability);
    ts_field(b, p->timestamp);
    cp_buf_putc(b, '}');
}

void cp_json_channel_message(struct cp_buf *b, const char *id, const char *channel_id,
                             const char *user_id, const char *data, size_t data_len,
                             const struct cp_kv *metadata, size_t n_metadata, int64_t ts)
{
    cp_buf_puts(b, "{\"type\":\"message\",\"id\":");
    cp_buf_json_str(b, id, strlen(id));
    cp_buf_puts(b, ",\"channel_id\":");
    cp_buf_json_str(b, channel_id, strlen(channel_id));
    if (user_id != NULL && user_id[0] != '\0') {
        cp_buf_puts(b, ",\"user_id\":");
        cp_buf_json_str(b, user_id, strlen(user_id));
    }
    cp_buf_puts(b, ",\"data\":");
    cp_buf_append(b, data, data_len);
    if (n_metadata > 0) {
        cp_buf_puts(b, ",\"metadata\":{");
        for (size_t i = 0; i < n_metadata; i++) {
            if (i > 0)
                cp_buf_putc(b, ',');
            const char *v = metadata[i].value ? metadata[i].value : "";
            cp_buf_json_str(b, metadata[i].key, strlen(metadata[i].key));
            cp_buf_putc(b, ':');
            cp_buf_json_str(b, v, strlen(v));
        }
        cp_buf_putc(b, '}');
    }
    char t[SB_TIME_RFC3339_LEN];
    size_t tn = sb_time_format_rfc3339(ts, t, sizeof(t));
    cp_buf_puts(b, ",\"timestamp\":");
    cp_buf_json_str(b, t, tn);
    cp_buf_putc(b, '}');
}
