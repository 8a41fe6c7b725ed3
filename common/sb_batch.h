/* The framing of a NodeLink batch (NodeBatch and ControlBatch are both `repeated Item items =
 * 1`): each item already encoded is appended behind its own field header (tag 0x0a, varint
 * length), so a queue of items is a valid serialized batch that goes out without re-encoding.
 * Pure; any thread. */
#ifndef SB_BATCH_H
#define SB_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* Most bytes an item's header takes (tag + a 64-bit varint). */
#define SB_BATCH_HEADER_MAX 11

/* Bytes of the header of an item of `len` bytes. */
size_t sb_batch_header_len(size_t len);

/* Writes the header of an item of `len` bytes at `dst` (SB_BATCH_HEADER_MAX bytes of room);
 * returns its length. */
size_t sb_batch_header_put(uint8_t *dst, size_t len);

/* Reads the item header at `p` (`avail` bytes): returns the header's length and sets *len, or 0
 * when it is not a complete items-field header. */
size_t sb_batch_header_get(const uint8_t *p, size_t avail, uint64_t *len);

/* Length of the longest prefix of `p` (`total` bytes of whole items) that is at most `max`
 * bytes, but at least one item even when that item alone is larger; 0 when empty. Malformed
 * input (never written by sb_batch_header_put) gives `total`. */
size_t sb_batch_prefix_len(const uint8_t *p, size_t total, size_t max);

#endif
