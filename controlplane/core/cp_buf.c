/* Growable byte buffer: amortized doubling, sticky failure flag so builders check once.
 * Storage always keeps one spare byte for a terminating NUL. */
#include "cp_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cp_buf_init(struct cp_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = 0;
}

void cp_buf_fini(struct cp_buf *b)
{
    free(b->data);
    cp_buf_init(b);
}

void cp_buf_reset(struct cp_buf *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

static int reserve(struct cp_buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void cp_buf_append(struct cp_buf *b, const void *p, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void *cp_buf_extend(struct cp_buf *b, size_t n)
{
    if (reserve(b, n) != 0)
        return NULL;
    void *p = b->data + b->len;
    b->len += n;
    b->data[b->len] = '\0';
    return p;
}

void cp_buf_puts(struct cp_buf *b, const char *s)
{
    cp_buf_append(b, s, strlen(s));
}

void cp_buf_putc(struct cp_buf *b, char c)
{
    cp_buf_append(b, &c, 1);
}

void cp_buf_i64(struct cp_buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    cp_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void cp_buf_printf(struct cp_buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        cp_buf_append(b, small, (size_t)n);
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void cp_buf_json_str(struct cp_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    cp_buf_putc(b, '"');
    size_t run = 0; /* start of the pending run of bytes that need no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        cp_buf_append(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            cp_buf_puts(b, "\\\"");
            break;
        case '\\':
            cp_buf_puts(b, "\\\\");
            break;
        case '\n':
            cp_buf_puts(b, "\\n");
            break;
        case '\r':
            cp_buf_puts(b, "\\r");
            break;
        case '\t':
            cp_buf_puts(b, "\\t");
            break;
        case '\b':
            cp_buf_puts(b, "\\b");
            break;
        case '\f':
            cp_buf_puts(b, "\\f");
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            cp_buf_append(b, esc, sizeof(esc));
        }
        }
    }
    cp_buf_append(b, s + run, n - run);
    cp_buf_putc(b, '"');
}

char *cp_buf_take(struct cp_buf *b, size_t *len_out)
{
    if (b->failed) {
        cp_buf_fini(b);
        return NULL;
    }
    if (b->data == NULL && reserve(b, 0) != 0)
        return NULL;
    if (b->data == NULL)
        return NULL;
    char *p = b->data;
    *len_out = b->len;
    cp_buf_init(b);
    return p;
}
