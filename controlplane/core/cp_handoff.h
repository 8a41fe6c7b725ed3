/* Hands work from other threads (the etcd thread) to the completion-queue thread: a locked FIFO
 * of (fn, arg) plus a wake function called when the FIFO goes from empty to non-empty, so the
 * owner notices at once instead of on its next tick.
 *
 * Threads: cp_handoff_post from any thread; cp_handoff_drain and cp_handoff_wait on the owner
 * thread only (the completion-queue thread, or a test's main thread). The wake function runs
 * on the posting thread and must not block. */
#ifndef CP_HANDOFF_H
#define CP_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_err.h"

struct cp_handoff;

typedef void cp_handoff_fn(void *arg);
/* Called (on the posting thread) when a post finds the FIFO empty. */
typedef void cp_handoff_wake_fn(void *ud);

/* New empty FIFO; wake may be NULL (the owner polls or uses cp_handoff_wait). SB_ENOMEM. */
enum sb_err cp_handoff_create(cp_handoff_wake_fn *wake, void *wake_ud, struct cp_handoff **out);

/* Frees the FIFO; items never drained are dropped (their fn does not run). Owner thread. */
void cp_handoff_destroy(struct cp_handoff *h);

/* Queues fn(arg) for the owner thread. SB_ENOMEM (fn then never runs: the caller frees arg).
 * Any thread. */
enum sb_err cp_handoff_post(struct cp_handoff *h, cp_handoff_fn *fn, void *arg);

/* Runs every queued item in order, including items posted while draining. Returns how many
 * ran. Owner thread. */
size_t cp_handoff_drain(struct cp_handoff *h);

/* Blocks up to timeout_ms for the FIFO to be non-empty; true when it is. Owner thread (tests
 * and start-up, never the completion-queue loop). */
bool cp_handoff_wait(struct cp_handoff *h, int timeout_ms);

#endif
