/* Growable byte buffer for building JSON text and NodeLink batches.
 * Not thread-safe: one owner at a time. */
#ifndef CP_BUF_H
#define CP_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

struct cp_buf {
    char *data; /* NUL-terminated while len < cap; owned */
    size_t len;
    size_t cap;
    int failed; /* an append ran out of memory; later appends are ignored */
};

/* Initializes an empty buffer (no allocation). */
void cp_buf_init(struct cp_buf *b);

/* Frees the storage and leaves an empty buffer. */
void cp_buf_fini(struct cp_buf *b);

/* Empties the buffer, keeping its storage and clearing `failed`. */
void cp_buf_reset(struct cp_buf *b);

/* Appends; on ENOMEM sets b->failed and later appends do nothing (check once at the end). */
void cp_buf_append(struct cp_buf *b, const void *p, size_t n);
void cp_buf_puts(struct cp_buf *b, const char *s);
void cp_buf_putc(struct cp_buf *b, char c);
void cp_buf_i64(struct cp_buf *b, int64_t v); /* decimal, as "%lld" without printf */
void cp_buf_printf(struct cp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends `s` (n bytes) as a quoted JSON string with escapes. Bytes >= 0x80 are copied as is
 * (inputs are UTF-8 validated upstream or identifiers). */
void cp_buf_json_str(struct cp_buf *b, const char *s, size_t n);

/* Grows the buffer by `n` bytes and returns where they start (contents unset), or NULL on
 * ENOMEM (b->failed set). */
void *cp_buf_extend(struct cp_buf *b, size_t n);

/* Takes the storage (caller frees with free()); the buffer is left empty. Returns NULL and
 * empties the buffer if an append failed. *len_out gets the length. */
char *cp_buf_take(struct cp_buf *b, size_t *len_out);

#endif
