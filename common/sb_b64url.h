/* base64url without padding (RFC 4648 section 5), as JOSE uses it: strict decoding (no '=', no
 * whitespace, no other alphabet, zero trailing bits) and encoding. Pure; any thread. */
#ifndef SB_B64URL_H
#define SB_B64URL_H

#include <stddef.h>

#include "sb_err.h"

/* Bytes that decoding `n` characters can produce, at most. */
#define SB_B64URL_DECODED_MAX(n) ((n) / 4 * 3 + 2)
/* Characters that encoding `n` bytes produces (no NUL counted). */
#define SB_B64URL_ENCODED_LEN(n) (((n)*4 + 2) / 3)

/* Decodes `n` characters of `in` into `out` (cap bytes); on SB_OK *outlen is the length.
 * SB_EINVAL for a character outside the alphabet, padding, an impossible length (n % 4 == 1) or
 * non-zero trailing bits (a second spelling of the same bytes); SB_EFULL when cap is short. */
enum sb_err sb_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap,
                             size_t *outlen);

/* Encodes `n` bytes into `out`, which holds SB_B64URL_ENCODED_LEN(n) characters (not
 * NUL-terminated). Returns the number written. */
size_t sb_b64url_encode(const unsigned char *in, size_t n, char *out);

#endif
