/* Retention passes: room_list pages (archived rooms included), one history_trim per room. The
 * memory store answers inline, so the pass runs as a loop (trampoline) rather than recursing
 * through callbacks. */
#include "cp_retention.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sb_log.h"
#include "sb_time.h"

#define ROOM_PAGE 100

struct pass {
    struct cp_ctx *c;
    int64_t cutoff; /* Unix ms: messages with an older timestamp go */
    char *after_id; /* room_list page token */
    bool more;      /* another page */
    char **rooms;
    size_t n_rooms, next;
    bool failed;
    int64_t removed;
    bool stepping, again;
};

static void free_rooms(struct pass *p)
{
    for (size_t i = 0; i < p->n_rooms; i++)
        free(p->rooms[i]);
    free(p->rooms);
    p->rooms = NULL;
    p->n_rooms = p->next = 0;
}

static void pass_end(struct pass *p)
{
    if (p->removed > 0)
        SB_LOG_INFO("cp", "retention: old messages removed", "count=%lld", (long long)p->removed);
    p->c->retention_busy = false;
    free_rooms(p);
    free(p->after_id);
    free(p);
}

static void step(struct pass *p);

static void trimmed(void *arg, const struct cp_status *st, int64_t n)
{
    struct pass *p = arg;
    if (st->code == SB_CODE_NONE) {
        p->removed += n;
    } else if (st->code != SB_CODE_ROOM_NOT_FOUND) { /* deleted since listed: fine */
        SB_LOG_WARN("cp", "retention: trim failed, pass ends", "room=%s code=%s msg=%s",
                    p->rooms[p->next - 1], sb_code_name(st->code), st->msg);
        p->failed = true;
    }
    step(p);
}

static void listed(void *arg, const struct cp_status *st, const struct cp_room *const *rooms,
                   size_t n, bool more)
{
    struct pass *p = arg;
    free_rooms(p);
    p->more = false;
    if (st->code != SB_CODE_NONE) {
        SB_LOG_WARN("cp", "retention: room list failed, pass ends", "code=%s msg=%s",
                    sb_code_name(st->code), st->msg);
        p->failed = true;
    } else if (n > 0) {
        p->rooms = calloc(n, sizeof(*p->rooms));
        char *after = strdup(rooms[n - 1]->id);
        for (size_t i = 0; p->rooms != NULL && i < n; i++) {
            p->rooms[i] = strdup(rooms[i]->id);
            p->n_rooms = i + 1;
            if (p->rooms[i] == NULL)
                break;
        }
        if (p->rooms == NULL || after == NULL || p->rooms[p->n_rooms - 1] == NULL) {
            free(after);
            p->failed = true;
        } else {
            free(p->after_id);
            p->after_id = after;
            p->more = more;
        }
    }
    step(p);
}

/* Starts the next operation; true when the pass is over (p freed). */
static bool advance(struct pass *p)
{
    struct cp_store *s = p->c->store;
    if (p->failed || p->c->stopping) {
        pass_end(p);
        return true;
    }
    if (p->next < p->n_rooms) {
        const char *room = p->rooms[p->next++];
        s->ops->history_trim(s, room, p->cutoff, trimmed, p);
    } else if (p->more) {
        struct cp_room_query q = {
            .after_id = p->after_id, .include_archived = true, .limit = ROOM_PAGE};
        s->ops->room_list(s, &q, listed, p);
    } else {
        pass_end(p);
        return true;
    }
    return false;
}

static void step(struct pass *p)
{
    if (p->stepping) {
        p->again = true;
        return;
    }
    p->stepping = true;
    for (;;) {
        p->again = false;
        if (advance(p))
            return;
        if (!p->again)
            break;
    }
    p->stepping = false;
}

void cp_retention_tick(struct cp_ctx *c, int64_t mono_ms)
{
    int64_t keep = c->set.message_retention_ms;
    int64_t every = c->set.retention_interval_ms;
    if (keep <= 0 || every <= 0 || c->store == NULL || c->store->ops->history_trim == NULL)
        return;
    if (c->retention_next == 0) {
        c->retention_next = mono_ms + every;
        return;
    }
    if (mono_ms < c->retention_next)
        return;
    c->retention_next = mono_ms + every;
    if (c->retention_busy || c->stopping)
        return;
    if (!cp_ctx_is_leader(c))
        return;
    struct pass *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->c = c;
    p->cutoff = sb_time_now_ms() - keep;
    p->more = true;
    c->retention_busy = true;
    step(p);
}

int64_t cp_retention_next_deadline(const struct cp_ctx *c)
{
    if (c->set.message_retention_ms <= 0 || c->set.retention_interval_ms <= 0)
        return 0;
    return c->retention_next;
}
