/* Client frame validation. jansson checks the whole text (syntax, UTF-8, duplicate keys); a
 * small scanner then locates the raw bytes of `data`, which are forwarded exactly as sent. */
#include "dp_frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_ident.h"
#include "sb_jwt.h"
#include "sb_time.h"

static const char *const type_names[] = {
    [DP_FRAME_JOIN] = "join",
    [DP_FRAME_LEAVE] = "leave",
    [DP_FRAME_MESSAGE] = "message",
    [DP_FRAME_SUBSCRIBE] = "subscribe",
    [DP_FRAME_UNSUBSCRIBE] = "unsubscribe",
    [DP_FRAME_PUBLISH] = "publish",
    [DP_FRAME_TYPING] = "typing",
    [DP_FRAME_PRESENCE] = "presence",
    [DP_FRAME_HISTORY] = "history",
    [DP_FRAME_PING] = "ping",
    [DP_FRAME_EDIT] = "edit",
    [DP_FRAME_DELETE] = "delete",
    [DP_FRAME_REACT] = "react",
    [DP_FRAME_REFRESH] = "refresh",
};

const char *dp_frame_type_name(enum dp_frame_type type)
{
    if ((int)type < DP_FRAME_JOIN || (int)type > DP_FRAME_LAST)
        return "unknown";
    return type_names[type];
}

static enum sb_err fail(struct dp_frame_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum sb_err fail(struct dp_frame_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->code = "invalid_message";
    return SB_EINVAL;
}

/* ---- raw member scanner (input already validated by jansson; still bounds-checked) ---- */

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* At s[i] == '"': returns the index just past the closing quote, or len. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] == '{' || s[i] == '[') {
        size_t depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, len, i);
                continue;
            }
            if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return len;
    }
    while (i < len && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\n' && s[i] != '\r')
        i++;
    return i;
}

static bool key_equals(const char *raw, size_t rlen, const char *key)
{
    /* raw includes the quotes. Escaped keys ("d\u0061ta") are decoded by jansson. */
    if (memchr(raw, '\\', rlen) == NULL) {
        size_t kl = strlen(key);
        return rlen == kl + 2 && memcmp(raw + 1, key, kl) == 0;
    }
    json_t *s = json_loadb(raw, rlen, JSON_DECODE_ANY, NULL);
    bool eq = s != NULL && json_is_string(s) && json_string_length(s) == strlen(key) &&
              strcmp(json_string_value(s), key) == 0;
    json_decref(s);
    return eq;
}

enum sb_err dp_frame_find_member(const char *text, size_t len, const char *key, size_t *off,
                                 size_t *vlen)
{
    size_t i = skip_ws(text, len, 0);
    if (i >= len || text[i] != '{')
        return SB_EINVAL;
    i = skip_ws(text, len, i + 1);
    if (i < len && text[i] == '}')
        return SB_ENOTFOUND;
    while (i < len) {
        if (text[i] != '"')
            return SB_EINVAL;
        size_t ks = i;
        i = skip_string(text, len, i);
        size_t klen = i - ks;
        i = skip_ws(text, len, i);
        if (i >= len || text[i] != ':')
            return SB_EINVAL;
        i = skip_ws(text, len, i + 1);
        size_t vs = i;
        i = skip_value(text, len, i);
        if (i == vs)
            return SB_EINVAL;
        if (key_equals(text + ks, klen, key)) {
            *off = vs;
            *vlen = i - vs;
            return SB_OK;
        }
        i = skip_ws(text, len, i);
        if (i >= len)
            return SB_EINVAL;
        if (text[i] == '}')
            return SB_ENOTFOUND;
        if (text[i] != ',')
            return SB_EINVAL;
        i = skip_ws(text, len, i + 1);
    }
    return SB_EINVAL;
}

/* ---- field helpers ---- */

enum kind { ID, CHANNEL_ID, TEXT };

/* Reads an optional (required = false) or required string field. */
static enum sb_err get_str(json_t *root, const char *name, bool required, enum kind kind,
                           size_t max, const char **out, struct dp_frame_error *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) {
        if (required)
            return fail(err, "missing field %s", name);
        *out = NULL;
        return SB_OK;
    }
    if (!json_is_string(v))
        return fail(err, "field %s must be a string", name);
    const char *s = json_string_value(v);
    bool ok = kind == ID           ? sb_ident_is_valid(s)
              : kind == CHANNEL_ID ? sb_ident_is_valid_channel(s)
                                   : json_string_length(v) <= max;
    if (!ok) {
        if (kind == TEXT)
            return fail(err, "field %s is longer than %zu bytes", name, max);
        if (kind == CHANNEL_ID)
            return fail(err,
                        "invalid %s: 1 to %d characters of A-Z a-z 0-9 . _ : @ -, "
                        "optionally ending in #<user_id>[,<user_id>...]",
                        name, SB_IDENT_MAX);
        return fail(err, "invalid %s: 1 to %d characters of A-Z a-z 0-9 . _ : @ -", name,
                    SB_IDENT_MAX);
    }
    *out = s;
    return SB_OK;
}

static enum sb_err get_int(json_t *root, const char *name, int64_t min, int64_t max, bool *has,
                           int64_t *out, struct dp_frame_error *err)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) {
        *has = false;
        return SB_OK;
    }
    if (!json_is_integer(v))
        return fail(err, "field %s must be an integer", name);
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return fail(err, "field %s must be between %lld and %lld", name, (long long)min,
                    (long long)max);
    *has = true;
    *out = (int64_t)n;
    return SB_OK;
}

static enum sb_err get_data(const char *text, size_t len, json_t *root, struct dp_frame *f,
                            struct dp_frame_error *err)
{
    if (json_object_get(root, "data") == NULL)
        return fail(err, "missing field data");
    size_t off, vlen;
    if (dp_frame_find_member(text, len, "data", &off, &vlen) != SB_OK)
        return fail(err, "field data could not be located");
    f->data = text + off;
    f->data_len = vlen;
    return SB_OK;
}

static enum sb_err get_metadata(json_t *root, struct dp_frame *f, struct dp_frame_error *err)
{
    json_t *m = json_object_get(root, "metadata");
    if (m == NULL)
        return SB_OK;
    if (!json_is_object(m))
        return fail(err, "field metadata must be an object of strings");
    size_t n = json_object_size(m);
    if (n > DP_FRAME_META_MAX)
        return fail(err, "field metadata has more than %d entries", DP_FRAME_META_MAX);
    if (n == 0)
        return SB_OK;
    struct dp_frame_kv *kv = calloc(n, sizeof(*kv));
    if (kv == NULL) {
        snprintf(err->message, sizeof(err->message), "out of memory");
        err->code = "internal";
        return SB_ENOMEM;
    }
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v)) {
            free(kv);
            return fail(err, "metadata values must be strings");
        }
        size_t kl = strlen(k);
        if (kl == 0 || kl > DP_FRAME_META_KEY_MAX) {
            free(kv);
            return fail(err, "metadata keys must be 1 to %d bytes", DP_FRAME_META_KEY_MAX);
        }
        if (json_string_length(v) > DP_FRAME_META_VAL_MAX) {
            free(kv);
            return fail(err, "metadata values must be at most %d bytes", DP_FRAME_META_VAL_MAX);
        }
        kv[i].key = k;
        kv[i].value = json_string_value(v);
        i++;
    }
    f->metadata = kv;
    f->n_metadata = i;
    return SB_OK;
}

static enum sb_err get_pair(json_t *root, const char *name, const char *a, const char *b,
                            const char **oa, const char **ob, struct dp_frame_error *err)
{
    json_t *o = json_object_get(root, name);
    if (o == NULL)
        return SB_OK;
    if (!json_is_object(o))
        return fail(err, "field %s must be an object", name);
    char full[48];
    json_t *va = json_object_get(o, a), *vb = json_object_get(o, b);
    if (va != NULL && (!json_is_string(va) || json_string_length(va) > DP_FRAME_TEXT_MAX)) {
        snprintf(full, sizeof(full), "%s.%s", name, a);
        return fail(err, "field %s must be a string of at most %d bytes", full, DP_FRAME_TEXT_MAX);
    }
    if (vb != NULL && (!json_is_string(vb) || json_string_length(vb) > DP_FRAME_TEXT_MAX)) {
        snprintf(full, sizeof(full), "%s.%s", name, b);
        return fail(err, "field %s must be a string of at most %d bytes", full, DP_FRAME_TEXT_MAX);
    }
    *oa = json_string_value(va);
    *ob = json_string_value(vb);
    return SB_OK;
}

static enum sb_err validate(const char *text, size_t len, json_t *root, struct dp_frame *f,
                            struct dp_frame_error *err)
{
    enum sb_err e;
    switch (f->type) {
    case DP_FRAME_JOIN: {
        if ((e = get_str(root, "room_id", true, ID, 0, &f->room_id, err)) != SB_OK)
            return e;
        return get_int(root, "since", 0, INT64_MAX, &f->has_since, &f->since, err);
    }
    case DP_FRAME_LEAVE:
        return get_str(root, "room_id", true, ID, 0, &f->room_id, err);
    case DP_FRAME_MESSAGE:
        if ((e = get_str(root, "room_id", true, ID, 0, &f->room_id, err)) != SB_OK ||
            (e = get_data(text, len, root, f, err)) != SB_OK ||
            (e = get_str(root, "thread_id", false, ID, 0, &f->thread_id, err)) != SB_OK)
            return e;
        return get_metadata(root, f, err);
    case DP_FRAME_SUBSCRIBE:
        if ((e = get_str(root, "channel_id", true, CHANNEL_ID, 0, &f->channel_id, err)) != SB_OK)
            return e;
        if ((e = get_str(root, "filter", false, TEXT, DP_FRAME_TEXT_MAX, &f->filter, err)) != SB_OK)
            return e;
        return get_str(root, "token", false, TEXT, SB_JWT_MAX_TOKEN, &f->token, err);
    case DP_FRAME_UNSUBSCRIBE:
        return get_str(root, "channel_id", true, CHANNEL_ID, 0, &f->channel_id, err);
    case DP_FRAME_PUBLISH:
        if ((e = get_str(root, "channel_id", true, CHANNEL_ID, 0, &f->channel_id, err)) != SB_OK ||
            (e = get_data(text, len, root, f, err)) != SB_OK)
            return e;
        return get_metadata(root, f, err);
    case DP_FRAME_TYPING: {
        if ((e = get_str(root, "room_id", true, ID, 0, &f->room_id, err)) != SB_OK)
            return e;
        json_t *t = json_object_get(root, "typing");
        if (t == NULL)
            return fail(err, "missing field typing");
        if (!json_is_boolean(t))
            return fail(err, "field typing must be a boolean");
        f->typing = json_is_true(t);
        return SB_OK;
    }
    case DP_FRAME_PRESENCE: {
        if ((e = get_str(root, "status", true, TEXT, 16, &f->status, err)) != SB_OK)
            return e;
        if (strcmp(f->status, "online") != 0 && strcmp(f->status, "away") != 0 &&
            strcmp(f->status, "busy") != 0 && strcmp(f->status, "offline") != 0)
            return fail(err, "field status must be one of online, away, busy, offline");
        if ((e = get_pair(root, "device", "type", "name", &f->device_type, &f->device_name, err)) !=
                SB_OK ||
            (e = get_pair(root, "activity", "type", "detail", &f->activity_type,
                          &f->activity_detail, err)) != SB_OK)
            return e;
        return get_str(root, "custom_status", false, TEXT, DP_FRAME_TEXT_MAX, &f->custom_status,
                       err);
    }
    case DP_FRAME_HISTORY: {
        if ((e = get_str(root, "room_id", true, ID, 0, &f->room_id, err)) != SB_OK)
            return e;
        bool has = false;
        int64_t limit = DP_FRAME_HISTORY_DEF;
        if ((e = get_int(root, "limit", 1, DP_FRAME_HISTORY_MAX, &has, &limit, err)) != SB_OK)
            return e;
        f->limit = (int)limit;
        if ((e = get_int(root, "before", 0, INT64_MAX, &f->has_before, &f->before, err)) != SB_OK)
            return e;
        return get_int(root, "after", 0, INT64_MAX, &f->has_after, &f->after, err);
    }
    case DP_FRAME_PING:
        return SB_OK;
    case DP_FRAME_EDIT:
    case DP_FRAME_DELETE:
    case DP_FRAME_REACT: {
        if ((e = get_str(root, "room_id", true, ID, 0, &f->room_id, err)) != SB_OK ||
            (e = get_str(root, "message_id", true, ID, 0, &f->message_id, err)) != SB_OK)
            return e;
        if (f->type == DP_FRAME_EDIT)
            return get_data(text, len, root, f, err);
        if (f->type == DP_FRAME_DELETE)
            return SB_OK;
        if ((e = get_str(root, "emoji", true, TEXT, 64, &f->emoji, err)) != SB_OK)
            return e;
        json_t *r = json_object_get(root, "remove");
        if (r != NULL && !json_is_boolean(r))
            return fail(err, "field remove must be a boolean");
        f->remove = json_is_true(r);
        return SB_OK;
    }
    case DP_FRAME_REFRESH:
        return get_str(root, "token", true, TEXT, SB_JWT_MAX_TOKEN, &f->token, err);
    }
    return fail(err, "unknown type");
}

enum sb_err dp_frame_parse(const char *text, size_t len, struct dp_frame *out,
                           struct dp_frame_error *err)
{
    memset(err, 0, sizeof(*err));
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(err, "malformed JSON at position %d: %s", jerr.position, jerr.text);
    enum sb_err e = SB_EINVAL;
    struct dp_frame f;
    memset(&f, 0, sizeof(f));
    if (!json_is_object(root)) {
        fail(err, "frame must be a JSON object");
        goto out;
    }
    json_t *ref = json_object_get(root, "ref");
    if (ref != NULL) {
        if (!json_is_string(ref)) {
            fail(err, "field ref must be a string");
            goto out;
        }
        if (json_string_length(ref) > DP_FRAME_REF_MAX ||
            strlen(json_string_value(ref)) != json_string_length(ref)) {
            fail(err, "field ref must be a string of at most %d bytes", DP_FRAME_REF_MAX);
            goto out;
        }
        f.ref = json_string_value(ref);
        strcpy(err->ref, f.ref);
        err->has_ref = true;
    }
    json_t *type = json_object_get(root, "type");
    if (type == NULL) {
        fail(err, "missing field type");
        goto out;
    }
    if (!json_is_string(type)) {
        fail(err, "field type must be a string");
        goto out;
    }
    const char *t = json_string_value(type);
    for (int i = DP_FRAME_JOIN; i <= DP_FRAME_LAST; i++) {
        if (strcmp(t, type_names[i]) == 0)
            f.type = (enum dp_frame_type)i;
    }
    if (f.type == 0) {
        char shown[40];
        size_t n = 0;
        for (; t[n] != '\0' && n < 32; n++)
            shown[n] = (t[n] >= 0x20 && t[n] < 0x7f && t[n] != '"') ? t[n] : '?';
        shown[n] = '\0';
        fail(err, "unknown type \"%s\"%s", shown, t[n] != '\0' ? "..." : "");
        goto out;
    }
    e = validate(text, len, root, &f, err);
    if (e != SB_OK) {
        free(f.metadata);
        goto out;
    }
    f.root = root;
    root = NULL;
    *out = f;
out:
    json_decref(root);
    return e;
}

void dp_frame_fini(struct dp_frame *f)
{
    free(f->metadata);
    json_decref(f->root);
    memset(f, 0, sizeof(*f));
}

/* ---- builders ---- */

static enum sb_err dump(json_t *o, char **out, size_t *out_len)
{
    if (o == NULL)
        return SB_ENOMEM;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL)
        return SB_ENOMEM;
    *out = s;
    *out_len = strlen(s);
    return SB_OK;
}

static json_t *head(const char *type, const char *ref)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "type", json_string(type)) != 0 ||
        (ref != NULL && json_object_set_new(o, "ref", json_string(ref)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return v == NULL ? 0 : json_object_set_new(o, k, json_string(v));
}

enum sb_err dp_frame_format_connected(const char *connection_id, const char *session_id,
                                      const char *user_id, const char *node_id, bool resumed,
                                      char **out, size_t *out_len)
{
    json_t *o = head("connected", NULL);
    if (o != NULL &&
        (set_str(o, "connection_id", connection_id) || set_str(o, "session_id", session_id) ||
         set_str(o, "user_id", user_id) || set_str(o, "node_id", node_id) ||
         (resumed && json_object_set_new(o, "resumed", json_true()) != 0))) {
        json_decref(o);
        o = NULL;
    }
    return dump(o, out, out_len);
}

enum sb_err dp_frame_format_ack(const char *ref, const char *room_id, const char *id, bool has_seq,
                                int64_t seq, char **out, size_t *out_len)
{
    json_t *o = head("ack", ref);
    if (o != NULL && (set_str(o, "room_id", room_id) || set_str(o, "id", id) ||
                      (has_seq && json_object_set_new(o, "seq", json_integer(seq)) != 0))) {
        json_decref(o);
        o = NULL;
    }
    return dump(o, out, out_len);
}

enum sb_err dp_frame_format_error(const char *ref, const char *code, const char *message,
                                  char **out, size_t *out_len)
{
    json_t *o = head("error", ref);
    /* json_string refuses invalid UTF-8: fall back to a plain sentence rather than fail. */
    json_t *m = json_string(message != NULL ? message : "");
    if (m == NULL)
        m = json_string("error");
    if (o != NULL && (set_str(o, "code", code) || json_object_set_new(o, "message", m) != 0)) {
        json_decref(o);
        o = NULL;
    } else if (o == NULL) {
        json_decref(m);
    }
    return dump(o, out, out_len);
}

enum sb_err dp_frame_format_pong(const char *ref, char **out, size_t *out_len)
{
    return dump(head("pong", ref), out, out_len);
}

static enum sb_err with_expiry(json_t *o, int64_t expires_at_ms, char **out, size_t *out_len)
{
    char at[SB_TIME_RFC3339_LEN];
    if (o != NULL && expires_at_ms > 0) {
        sb_time_format_rfc3339(expires_at_ms, at, sizeof(at));
        if (set_str(o, "expires_at", at) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return dump(o, out, out_len);
}

enum sb_err dp_frame_format_token_expiring(int64_t expires_at_ms, char **out, size_t *out_len)
{
    return with_expiry(head("token_expiring", NULL), expires_at_ms, out, out_len);
}

enum sb_err dp_frame_format_refreshed(const char *ref, int64_t expires_at_ms, char **out,
                                      size_t *out_len)
{
    return with_expiry(head("ack", ref), expires_at_ms, out, out_len);
}

enum sb_err dp_frame_format_kicked(const char *reason, char **out, size_t *out_len)
{
    json_t *o = head("kicked", NULL);
    json_t *r = json_string(reason != NULL ? reason : "");
    if (r == NULL)
        r = json_string("kicked");
    if (o != NULL && json_object_set_new(o, "reason", r) != 0) {
        json_decref(o);
        o = NULL;
    } else if (o == NULL) {
        json_decref(r);
    }
    return dump(o, out, out_len);
}

enum sb_err dp_frame_format_history(const char *ref, const char *room_id, const char *const *msgs,
                                    const size_t *lens, size_t n, char **out, size_t *out_len)
{
    json_t *o = head("history", ref);
    if (o != NULL && set_str(o, "room_id", room_id)) {
        json_decref(o);
        o = NULL;
    }
    char *h;
    size_t hl;
    enum sb_err e = dump(o, &h, &hl);
    if (e != SB_OK)
        return e;
    size_t total = hl + 16;
    for (size_t i = 0; i < n; i++)
        total += lens[i] + 1;
    char *s = malloc(total);
    if (s == NULL) {
        free(h);
        return SB_ENOMEM;
    }
    size_t p = hl - 1; /* drop the closing brace */
    memcpy(s, h, p);
    free(h);
    static const char mk[] = ",\"messages\":[";
    memcpy(s + p, mk, sizeof(mk) - 1);
    p += sizeof(mk) - 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            s[p++] = ',';
        memcpy(s + p, msgs[i], lens[i]);
        p += lens[i];
    }
    s[p++] = ']';
    s[p++] = '}';
    s[p] = '\0';
    *out = s;
    *out_len = p;
    return SB_OK;
}

enum sb_err dp_frame_peek_room_seq(const char *json, size_t len, char *room, size_t cap,
                                   int64_t *seq)
{
    json_t *root = json_loadb(json, len, 0, NULL);
    enum sb_err e = SB_ENOTFOUND;
    const char *r = json_string_value(json_object_get(root, "room_id"));
    json_t *s = json_object_get(root, "seq");
    if (r != NULL && json_is_integer(s) && json_integer_value(s) > 0 && strlen(r) < cap) {
        strcpy(room, r);
        *seq = (int64_t)json_integer_value(s);
        e = SB_OK;
    }
    json_decref(root);
    return e;
}
