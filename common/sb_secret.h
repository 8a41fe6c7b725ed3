/* Shared secrets read from a file: the control plane's API keys (--api-key-file) and the
 * cluster secret of both daemons (--cluster-secret-file). One key a line (blank lines and
 * `#` comments ignored, whitespace trimmed), several for rotation; the file is re-read when
 * it changes. Only SHA-256 digests of the keys are kept (plus the first key, which is what a
 * daemon sends), and a presented credential is compared with every digest in constant time.
 * Nothing here ever logs or returns a key's text except sb_secret_first.
 * Thread: one object is used by one thread at a time (the caller's loop); no locks. */
#ifndef SB_SECRET_H
#define SB_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

#define SB_SECRET_MAX_FILE (1024 * 1024) /* bytes of a key file */
#define SB_SECRET_MAX_KEY  4096          /* bytes of one key */
#define SB_SECRET_MAX_KEYS 1024          /* keys in one file */
#define SB_SECRET_CHECK_MS 1000          /* sb_secret_refresh looks at the file this often */

struct sb_secret;

/* Parses key-file text (`len` bytes, need not be NUL-terminated) into a new set (*out). Every
 * key must have at least `min_len` bytes and only printable ASCII without spaces (it travels
 * in a header); at least one key is needed. SB_EINVAL with a sentence in why (cap bytes) that
 * names the line, never its content; SB_ENOMEM. Pure. */
enum sb_err sb_secret_parse(const char *text, size_t len, size_t min_len, struct sb_secret **out,
                            char *why, size_t cap);

/* Reads and parses `path` (a regular file of at most SB_SECRET_MAX_FILE bytes) into a new set
 * that remembers the file, for sb_secret_refresh. `option` ("api_key_file") names the set in
 * log lines. SB_EIO when the file cannot be read, SB_EINVAL for bad content, with a sentence
 * in why naming the file; SB_ENOMEM. Logs a warning when others may read the file. Blocks
 * (file I/O). */
enum sb_err sb_secret_load(const char *path, const char *option, size_t min_len,
                           struct sb_secret **out, char *why, size_t cap);

/* At most once per SB_SECRET_CHECK_MS of monotonic `mono_ms`: stat()s the file; when its
 * identity (device, inode, size, mtime, ctime) changed, re-reads it. A good file replaces the
 * keys (info log: the count); a bad or unreadable one keeps the last good keys and logs one
 * warning (no key text) until the file changes again. Returns 1 when the keys were replaced,
 * 0 when nothing changed, -1 when a re-read failed. A set from sb_secret_parse returns 0. */
int sb_secret_refresh(struct sb_secret *s, int64_t mono_ms);

/* True when `cred` (len bytes) is one of the keys. Constant time in the credential's content
 * (both sides are hashed, every digest is compared). NULL set: false. Pure. */
bool sb_secret_match(const struct sb_secret *s, const void *cred, size_t len);

/* Reads an `authorization` header value: the scheme "Bearer" (any case), one or more spaces,
 * the token (trailing whitespace dropped). True with *tok and *tok_len pointing into `value`;
 * false for another scheme or an empty token. Pure. */
bool sb_secret_bearer(const char *value, size_t len, const char **tok, size_t *tok_len);

/* The first key of the file (borrowed: valid until the next sb_secret_refresh or destroy) and
 * its length. What a daemon sends as its own credential. */
const char *sb_secret_first(const struct sb_secret *s, size_t *len);

/* Number of keys in the set. */
size_t sb_secret_count(const struct sb_secret *s);

/* Wipes and frees the set. NULL is ignored. */
void sb_secret_destroy(struct sb_secret *s);

#endif
