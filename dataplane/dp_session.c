/* Session bookkeeping. The outbox holds references to shared dp_buf frames; its byte bound
 * counts each frame's WebSocket length, which is what the session would have to write. */
#include "dp_session.h"

#include "sb_jwt.h"
#include "sb_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t dp_session_heap_rings;
size_t dp_session_rings_released;
int64_t dp_session_clock_ms;

/* The stall clock: the server's coarse clock when it runs one, else the real one. */
static int64_t clock_ms(void)
{
    return dp_session_clock_ms != 0 ? dp_session_clock_ms : sb_time_mono_ms();
}

static const char empty[] = "";

static size_t inline_cap(size_t max_frames)
{
    return max_frames < DP_SESSION_INLINE ? max_frames : DP_SESSION_INLINE;
}

static enum sb_err set_str(char **dst, const char *v)
{
    char *n = v[0] != '\0' ? strdup(v) : (char *)empty;
    if (n == NULL)
        return SB_ENOMEM;
    if (*dst != empty)
        free(*dst);
    *dst = n;
    return SB_OK;
}

enum sb_err dp_session_set_ids(struct dp_session *s, const char *session_id, const char *resume)
{
    if (session_id != NULL && session_id[0] != '\0' && set_str(&s->session_id, session_id) != SB_OK)
        return SB_ENOMEM;
    if (resume != NULL && set_str(&s->resume_session_id, resume) != SB_OK)
        return SB_ENOMEM;
    return SB_OK;
}

struct dp_session *dp_session_create(enum dp_transport transport, const char *user_id,
                                     const struct dp_session_ops *ops, size_t max_frames,
                                     size_t max_bytes, enum dp_overflow policy)
{
    if (!sb_ident_is_valid(user_id) || max_frames == 0)
        return NULL;
    struct dp_session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->ring = s->inl;
    s->cap = inline_cap(max_frames);
    s->resume_session_id = (char *)empty;
    char sid[SB_ID_LEN];
    sb_id_new("c", s->connection_id);
    sb_id_new("s", sid);
    s->session_id = strdup(sid);
    s->user_id = strdup(user_id);
    if (s->session_id == NULL || s->user_id == NULL) {
        free(s->session_id);
        free(s->user_id);
        free(s);
        return NULL;
    }
    s->transport = transport;
    s->ops = ops;
    s->max_frames = max_frames;
    s->max_bytes = max_bytes;
    s->policy = policy;
    return s;
}

void dp_session_destroy(struct dp_session *s)
{
    if (s == NULL)
        return;
    while (s->count > 0)
        dp_session_pop(s);
    if (s->ring != s->inl) {
        free(s->ring);
        dp_session_heap_rings--;
        dp_session_rings_released++;
    }
    free(s->session_id);
    free(s->user_id);
    if (s->resume_session_id != empty)
        free(s->resume_session_id);
    struct dp_pending *p;
    while ((p = dp_session_pending_take_first(s)) != NULL)
        dp_session_pending_free(p);
    dp_sse_fmt_pos_fini(&s->pos);
    if (s->auth != NULL) {
        sb_jwt_claims_fini(s->auth);
        free(s->auth);
    }
    free(s);
}

static bool grow(struct dp_session *s)
{
    size_t cap = s->cap * 2 > s->max_frames ? s->max_frames : s->cap * 2;
    struct dp_buf **r = malloc(cap * sizeof(*r));
    if (r == NULL)
        return false;
    for (size_t i = 0; i < s->count; i++)
        r[i] = s->ring[(s->head + i) % s->cap];
    if (s->ring != s->inl)
        free(s->ring);
    else
        dp_session_heap_rings++;
    s->ring = r;
    s->head = 0;
    s->cap = cap;
    return true;
}

static enum sb_err admit(struct dp_session *s, struct dp_buf *b)
{
    if (s->state == DP_SESSION_CLOSING || s->overflowed)
        return SB_EPERM;
    /* A frame is always admitted into an empty outbox, so one frame larger than the byte
     * bound (a long history answer) can still be delivered. */
    bool full = s->count >= s->max_frames || (s->count > 0 && s->bytes + b->ws_len > s->max_bytes);
    if (!full && s->count == s->cap && !grow(s))
        full = true;
    if (!full)
        return SB_OK;
    if (s->policy == DP_OVERFLOW_DROP) {
        s->dropped++;
    } else {
        s->overflowed = true;
        if (s->ops != NULL && s->ops->abort != NULL)
            s->ops->abort(s);
    }
    return SB_EFULL;
}

enum sb_err dp_session_push(struct dp_session *s, struct dp_buf *b)
{
    enum sb_err e = admit(s, b);
    if (e != SB_OK)
        return e;
    s->ring[(s->head + s->count) % s->cap] = dp_buf_ref(b);
    s->count++;
    s->bytes += b->ws_len;
    if (s->count == 1) {
        s->stall_since_ms = clock_ms();
        if (s->ops != NULL && s->ops->want_write != NULL)
            s->ops->want_write(s);
    }
    return SB_OK;
}

enum sb_err dp_session_push_front(struct dp_session *s, struct dp_buf *b)
{
    if (s->write_off > 0) /* the head is half written: cannot go before it */
        return dp_session_push(s, b);
    enum sb_err e = admit(s, b);
    if (e != SB_OK)
        return e;
    s->head = (s->head + s->cap - 1) % s->cap;
    s->ring[s->head] = dp_buf_ref(b);
    s->count++;
    s->bytes += b->ws_len;
    if (s->count == 1)
        s->stall_since_ms = clock_ms();
    if (s->ops != NULL && s->ops->want_write != NULL)
        s->ops->want_write(s);
    return SB_OK;
}

struct dp_buf *dp_session_peek(const struct dp_session *s, size_t i)
{
    if (i >= s->count)
        return NULL;
    return s->ring[(s->head + i) % s->cap];
}

void dp_session_pop(struct dp_session *s)
{
    if (s->count == 0)
        return;
    struct dp_buf *b = s->ring[s->head];
    s->ring[s->head] = NULL;
    s->head = (s->head + 1) % s->cap;
    s->count--;
    s->bytes -= b->ws_len;
    s->write_off = 0;
    s->stall_since_ms = s->count > 0 ? clock_ms() : 0;
    if (s->count == 0 && s->ring != s->inl) { /* drained: back to the inline slots */
        free(s->ring);
        s->ring = s->inl;
        s->cap = inline_cap(s->max_frames);
        s->head = 0;
        dp_session_heap_rings--;
        dp_session_rings_released++;
    }
    dp_buf_unref(b);
}

size_t dp_session_queued(const struct dp_session *s)
{
    return s->count;
}

void dp_session_close_after_drain(struct dp_session *s, int code, const char *reason)
{
    if (s->close_pending)
        return;
    s->close_pending = true;
    s->close_code = code;
    snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason != NULL ? reason : "");
    s->state = DP_SESSION_CLOSING;
    if (s->ops != NULL && s->ops->want_write != NULL)
        s->ops->want_write(s);
}

enum sb_err dp_session_pending_add(struct dp_session *s, struct dp_pending *p, size_t max)
{
    if (s->n_pending >= max)
        return SB_EFULL;
    p->next = NULL;
    if (s->pending_tail != NULL)
        s->pending_tail->next = p;
    else
        s->pending_head = p;
    s->pending_tail = p;
    s->n_pending++;
    return SB_OK;
}

struct dp_pending *dp_session_pending_take(struct dp_session *s, uint64_t request_id)
{
    struct dp_pending **pp = &s->pending_head, *prev = NULL;
    while (*pp != NULL && (*pp)->request_id != request_id) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    struct dp_pending *p = *pp;
    if (p == NULL)
        return NULL;
    *pp = p->next;
    if (s->pending_tail == p)
        s->pending_tail = prev;
    s->n_pending--;
    p->next = NULL;
    return p;
}

struct dp_pending *dp_session_pending_take_first(struct dp_session *s)
{
    return s->pending_head != NULL ? dp_session_pending_take(s, s->pending_head->request_id) : NULL;
}

void dp_session_pending_free(struct dp_pending *p)
{
    if (p == NULL)
        return;
    free(p->item);
    free(p);
}
