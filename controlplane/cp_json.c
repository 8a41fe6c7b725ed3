/* Frame text builders. Field order follows PROTOCOL.md's examples so frames read the same
 * everywhere; optional fields are left out rather than sent as null. */
#include "cp_json.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "cp_msgext.h"
#include "sb_time.h"

/* ---------------------------------------------------------------- validation
 *
 * A scanner that accepts exactly what json_loadb(JSON_DECODE_ANY) accepts, without building
 * anything: RFC 8259 grammar, UTF-8 checked as jansson does (no overlongs, no surrogates, at
 * most U+10FFFF), no control characters in strings, \u escapes with paired surrogates and no
 * \u0000. Where jansson's answer depends on more than the grammar (integers that may not fit
 * 64 bits, reals that may overflow, deep nesting) the scanner says "unsure" and jansson
 * decides. */

enum scan { SCAN_OK, SCAN_BAD, SCAN_UNSURE };

struct scanner {
    const unsigned char *p, *end;
    int depth;
    bool too_deep; /* nesting past SCAN_MAX_DEPTH: jansson decides */
};

#define SCAN_MAX_DEPTH 64

static void skip_ws(struct scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const unsigned char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* One UTF-8 sequence starting at s->p (first byte >= 0x80). */
static bool scan_utf8(struct scanner *s)
{
    unsigned c = *s->p;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return false;
    }
    if ((size_t)(s->end - s->p) < n)
        return false;
    for (size_t i = 1; i < n; i++) {
        unsigned b = s->p[i];
        if ((b & 0xc0) != 0x80)
            return false;
        cp = (cp << 6) | (b & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return false;
    s->p += n;
    return true;
}

static enum scan scan_string(struct scanner *s)
{
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned c = *s->p;
        if (c == '"') {
            s->p++;
            return SCAN_OK;
        }
        if (c < 0x20)
            return SCAN_BAD;
        if (c >= 0x80) {
            if (!scan_utf8(s))
                return SCAN_BAD;
            continue;
        }
        if (c != '\\') {
            s->p++;
            continue;
        }
        if (s->end - s->p < 2)
            return SCAN_BAD;
        c = s->p[1];
        if (c != 'u') {
            if (strchr("\"\\/bfnrt", (int)c) == NULL || c == '\0')
                return SCAN_BAD;
            s->p += 2;
            continue;
        }
        if (s->end - s->p < 6)
            return SCAN_BAD;
        int v = hex4(s->p + 2);
        if (v <= 0) /* invalid hex, or \u0000 */
            return SCAN_BAD;
        s->p += 6;
        if (v >= 0xdc00 && v <= 0xdfff)
            return SCAN_BAD; /* a low surrogate alone */
        if (v >= 0xd800 && v <= 0xdbff) {
            if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u')
                return SCAN_BAD;
            int lo = hex4(s->p + 2);
            if (lo < 0xdc00 || lo > 0xdfff)
                return SCAN_BAD;
            s->p += 6;
        }
    }
    return SCAN_BAD;
}

static bool is_digit(const struct scanner *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

static enum scan scan_number(struct scanner *s)
{
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return SCAN_BAD;
    const unsigned char *int_start = s->p;
    if (*s->p == '0') {
        s->p++;
        if (is_digit(s))
            return SCAN_BAD;
    } else {
        while (is_digit(s))
            s->p++;
    }
    size_t int_digits = (size_t)(s->p - int_start);
    bool real = false;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return SCAN_BAD;
        while (is_digit(s))
            s->p++;
        real = true;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return SCAN_BAD;
        while (is_digit(s))
            s->p++;
        return SCAN_UNSURE; /* may overflow a double */
    }
    /* An integer of up to 18 digits fits int64; a real without exponent overflows only past
     * ~308 integer digits. */
    if (real ? int_digits > 300 : int_digits > 18)
        return SCAN_UNSURE;
    return SCAN_OK;
}

static enum scan scan_value(struct scanner *s);

static enum scan scan_container(struct scanner *s, unsigned char close)
{
    if (++s->depth > SCAN_MAX_DEPTH) {
        s->too_deep = true;
        return SCAN_BAD; /* stops the scan; cp_json_is_valid asks jansson */
    }
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return SCAN_OK;
    }
    enum scan worst = SCAN_OK;
    for (;;) {
        enum scan r;
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"')
                return SCAN_BAD;
            if ((r = scan_string(s)) != SCAN_OK)
                return r;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return SCAN_BAD;
            s->p++;
            skip_ws(s);
        }
        r = scan_value(s);
        if (r == SCAN_BAD)
            return r;
        if (r == SCAN_UNSURE)
            worst = SCAN_UNSURE;
        skip_ws(s);
        if (s->p >= s->end)
            return SCAN_BAD;
        if (*s->p == close) {
            s->p++;
            s->depth--;
            return worst;
        }
        if (*s->p != ',')
            return SCAN_BAD;
        s->p++;
        skip_ws(s);
    }
}

static bool literal(struct scanner *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return false;
    s->p += n;
    return true;
}

static enum scan scan_value(struct scanner *s)
{
    if (s->p >= s->end)
        return SCAN_BAD;
    switch (*s->p) {
    case '{':
        return scan_container(s, '}');
    case '[':
        return scan_container(s, ']');
    case '"':
        return scan_string(s);
    case 't':
        return literal(s, "true", 4) ? SCAN_OK : SCAN_BAD;
    case 'f':
        return literal(s, "false", 5) ? SCAN_OK : SCAN_BAD;
    case 'n':
        return literal(s, "null", 4) ? SCAN_OK : SCAN_BAD;
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        return SCAN_BAD;
    }
}

static bool jansson_accepts(const char *data, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(data, len, JSON_DECODE_ANY, &err);
    if (v == NULL)
        return false;
    json_decref(v);
    return true;
}

bool cp_json_is_valid_jansson(const char *data, size_t len)
{
    return data != NULL && len > 0 && jansson_accepts(data, len);
}

bool cp_json_is_valid(const char *data, size_t len)
{
    if (data == NULL || len == 0)
        return false;
    /* jansson treats a NUL byte as the end of its input in places: it alone says what then. */
    if (memchr(data, '\0', len) != NULL)
        return jansson_accepts(data, len);
    struct scanner s = {(const unsigned char *)data, (const unsigned char *)data + len, 0, false};
    skip_ws(&s);
    enum scan r = scan_value(&s);
    if (s.too_deep)
        return jansson_accepts(data, len);
    if (r == SCAN_OK) {
        skip_ws(&s);
        if (s.p != s.end)
            return false;
    }
    if (r == SCAN_UNSURE)
        return jansson_accepts(data, len);
    return r == SCAN_OK;
}

bool cp_json_is_utf8(const char *s)
{
    json_t *v = json_string(s);
    if (v == NULL)
        return false;
    json_decref(v);
    return true;
}

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
