/* Revision barrier: callbacks waiting until the watch has applied a given etcd revision, so a
 * writer is answered only once this replica's cache shows its write (docs/distributed.md).
 * Pure logic, no I/O. Thread: one owner thread (the completion-queue thread). */
#ifndef CP_BARRIER_H
#define CP_BARRIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sb_err.h"

/* ok is false when the wait was cut short (timeout, shutdown): the cache may not show the
 * revision yet. */
typedef void cp_barrier_fn(void *arg, bool ok);

struct cp_barrier_waiter;

struct cp_barrier {
    int64_t applied;                /* newest revision applied to the cache */
    struct cp_barrier_waiter *head; /* sorted by revision, then arrival */
    size_t n;
};

void cp_barrier_init(struct cp_barrier *b);

/* Fails (ok = false) every waiter, then frees them. */
void cp_barrier_fini(struct cp_barrier *b);

/* Runs fn(arg, true) at once when rev <= applied, else when the applied revision reaches it.
 * mono_ms is now (for timeouts). SB_ENOMEM: fn never runs. */
enum sb_err cp_barrier_wait(struct cp_barrier *b, int64_t rev, int64_t mono_ms, cp_barrier_fn *fn,
                            void *arg);

/* The cache reached `rev`: runs every waiter at or below it, in revision order. A lower rev
 * than already applied changes nothing. */
void cp_barrier_advance(struct cp_barrier *b, int64_t rev);

/* Sets applied to `rev` even when lower (after a full re-list), then runs the waiters due. */
void cp_barrier_reset(struct cp_barrier *b, int64_t rev);

/* Runs fn(arg, false) for waiters that waited longer than max_wait_ms. Returns how many. */
size_t cp_barrier_expire(struct cp_barrier *b, int64_t mono_ms, int64_t max_wait_ms);

#endif
