/* The etcd Store's operation driver: every Store operation but the publish queue runs here,
 * as one allocation (the operation and copies of its ids) that reads, may write one
 * compare-guarded txn built from what it read, reads again on a lost compare (at most
 * `retries` attempts, so a hot record answers "busy" instead of looping), waits for the
 * barrier and answers once. The compares guard what was read, so a concurrent change can only
 * make the write fail, never be overwritten. */
#include "cp_estore_int.h"

#include <stdlib.h>
#include <string.h>

void cp_eop_begin(struct cp_estore *s, struct cp_eop *proto, size_t size,
                  const struct cp_eop_class *c, const char **id0, const char **id1)
{
    const char **ids[2] = {id0, id1};
    size_t len = size;
    for (size_t i = 0; i < 2; i++)
        len += ids[i] != NULL && *ids[i] != NULL ? strlen(*ids[i]) + 1 : 0;
    proto->c = c;
    char *b = malloc(len);
    if (b == NULL) {
        c->end(s, proto, &cp_estore_nomem, false);
        return;
    }
    memcpy(b, proto, size);
    char *tail = b + size;
    for (size_t i = 0; i < 2; i++) {
        if (ids[i] == NULL || *ids[i] == NULL)
            continue;
        size_t n = strlen(*ids[i]) + 1;
        memcpy(tail, *ids[i], n);
        /* The same field in the copy. */
        const char **field = (const char **)(b + ((char *)ids[i] - (char *)proto));
        *field = tail;
        tail += n;
    }
    struct cp_eop *o = (struct cp_eop *)b;
    o->id = id0 != NULL ? *(const char **)(b + ((char *)id0 - (char *)proto)) : NULL;
    o->tries = 0;
    c->read(s, o);
}

static void end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st, bool synced)
{
    o->c->end(s, o, st, synced);
    free(o);
}

void cp_eop_end(struct cp_estore *s, struct cp_eop *o, const struct cp_status *st)
{
    end(s, o, st, false);
}

static void barrier_reached(struct cp_estore *s, void *ud, bool ok)
{
    struct cp_status st;
    cp_status_ok(&st);
    end(s, ud, &st, ok);
}

void cp_eop_sync(struct cp_estore *s, struct cp_eop *o, int64_t rev)
{
    o->rev = rev;
    cp_ecall_after(s, rev, barrier_reached, o);
}

static void reread(struct cp_estore *s, void *ud, bool ok)
{
    struct cp_eop *o = ud;
    o->c->read(s, o);
}

void cp_eop_lost(struct cp_estore *s, struct cp_eop *o, int64_t rev)
{
    const struct cp_eop_policy *p = o->c->policy;
    if (++o->tries >= p->retries) {
        struct cp_status st;
        cp_status_set(&st, p->lost, o->c->lost, o->id, p->retries);
        end(s, o, &st, false);
    } else if (p->flags & CP_EOP_SETTLE) {
        /* Look again once the cache has caught up with what beat us. */
        cp_ecall_after(s, rev, reread, o);
    } else {
        o->c->read(s, o);
    }
}

static void answer(struct cp_estore *s, void *ud, const struct cp_etxn_answer *a,
                   const struct cp_status *st)
{
    struct cp_eop *o = ud;
    o->rev = a->revision;
    if (a->outcome == CP_ETXN_LOST)
        cp_eop_lost(s, o, a->revision);
    else if (a->outcome == CP_ETXN_APPLIED && (o->c->policy->flags & CP_EOP_BARRIER))
        cp_eop_sync(s, o, a->revision);
    else
        end(s, o, st, false);
}

void cp_eop_write(struct cp_estore *s, struct cp_eop *o, struct cp_etxn *t)
{
    unsigned flags = o->c->policy->flags & (CP_ECALL_MARKER | CP_ECALL_REFUSED);
    cp_ecall_txn(s, t, flags, o->c->what, answer, o);
}
