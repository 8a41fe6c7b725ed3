/* A sorted singly linked list: writes are few per revision and the list is short (only writes
 * still in flight wait here). Callbacks run after the waiter is unlinked, so they may add new
 * waiters. */
#include "cp_barrier.h"

#include <stdlib.h>

struct cp_barrier_waiter {
    struct cp_barrier_waiter *next;
    int64_t rev;
    int64_t since;
    cp_barrier_fn *fn;
    void *arg;
};

void cp_barrier_init(struct cp_barrier *b)
{
    b->applied = 0;
    b->head = NULL;
    b->n = 0;
}

void cp_barrier_fini(struct cp_barrier *b)
{
    while (b->head != NULL) {
        struct cp_barrier_waiter *w = b->head;
        b->head = w->next;
        b->n--;
        w->fn(w->arg, false);
        free(w);
    }
}

enum sb_err cp_barrier_wait(struct cp_barrier *b, int64_t rev, int64_t mono_ms, cp_barrier_fn *fn,
                            void *arg)
{
    if (rev <= b->applied) {
        fn(arg, true);
        return SB_OK;
    }
    struct cp_barrier_waiter *w = malloc(sizeof(*w));
    if (w == NULL)
        return SB_ENOMEM;
    w->rev = rev;
    w->since = mono_ms;
    w->fn = fn;
    w->arg = arg;
    struct cp_barrier_waiter **pp = &b->head;
    while (*pp != NULL && (*pp)->rev <= rev)
        pp = &(*pp)->next;
    w->next = *pp;
    *pp = w;
    b->n++;
    return SB_OK;
}

static void run_due(struct cp_barrier *b)
{
    while (b->head != NULL && b->head->rev <= b->applied) {
        struct cp_barrier_waiter *w = b->head;
        b->head = w->next;
        b->n--;
        w->fn(w->arg, true);
        free(w);
    }
}

void cp_barrier_advance(struct cp_barrier *b, int64_t rev)
{
    if (rev > b->applied)
        b->applied = rev;
    run_due(b);
}

void cp_barrier_reset(struct cp_barrier *b, int64_t rev)
{
    b->applied = rev;
    run_due(b);
}

size_t cp_barrier_expire(struct cp_barrier *b, int64_t mono_ms, int64_t max_wait_ms)
{
    size_t n = 0;
    for (;;) {
        struct cp_barrier_waiter **pp = &b->head;
        while (*pp != NULL && mono_ms - (*pp)->since <= max_wait_ms)
            pp = &(*pp)->next;
        struct cp_barrier_waiter *w = *pp;
        if (w == NULL)
            return n;
        *pp = w->next;
        b->n--;
        w->fn(w->arg, false);
        free(w);
        n++;
    }
}
