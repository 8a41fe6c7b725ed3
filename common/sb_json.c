/* JSON validity without building a document (see sb_json.h). */
#include "sb_json.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

/* A scanner that accepts exactly what json_loadb(JSON_DECODE_ANY) accepts, without building
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
        return SCAN_BAD; /* stops the scan; sb_json_is_valid asks jansson */
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

bool sb_json_is_valid_jansson(const char *data, size_t len)
{
    return data != NULL && len > 0 && jansson_accepts(data, len);
}

bool sb_json_is_valid(const char *data, size_t len)
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

bool sb_json_is_utf8(const char *s)
{
    json_t *v = json_string(s);
    if (v == NULL)
        return false;
    json_decref(v);
    return true;
}
