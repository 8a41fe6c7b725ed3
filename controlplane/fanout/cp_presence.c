/* Connection and presence bookkeeping. A user's connections are a small array (users rarely
 * have more than a few); the grace list is FIFO because every entry gets the same grace. */
#include "cp_presence.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

void cp_presence_init(struct cp_presence *p)
{
    memset(p, 0, sizeof(*p));
    sb_map_init(&p->conns);
    sb_map_init(&p->users);
}

static void conn_free(struct cp_conn *c)
{
    free(c->id);
    free(c->session_id);
    free(c->transport);
    free(c->node_id);
    free(c);
}

static void user_free(struct cp_user *u)
{
    free(u->id);
    free(u->conns);
    free(u->status);
    free(u->custom_status);
    free(u->device_type);
    free(u->device_name);
    free(u->activity_type);
    free(u->activity_detail);
    free(u->availability);
    free(u);
}

void cp_presence_fini(struct cp_presence *p)
{
    struct sb_map_iter it;
    struct sb_map_entry *e;
    sb_map_iter_init(&p->conns, &it);
    while ((e = sb_map_iter_next(&p->conns, &it)) != NULL)
        conn_free(e->value);
    sb_map_iter_init(&p->users, &it);
    while ((e = sb_map_iter_next(&p->users, &it)) != NULL)
        user_free(e->value);
    sb_map_fini(&p->conns);
    sb_map_fini(&p->users);
    memset(p, 0, sizeof(*p));
}

struct cp_user *cp_presence_user(const struct cp_presence *p, const char *user_id)
{
    return sb_map_get(&p->users, user_id);
}

struct cp_conn *cp_presence_conn(const struct cp_presence *p, const char *conn_id)
{
    return sb_map_get(&p->conns, conn_id);
}

static int replace(char **field, const char *v)
{
    if (v == NULL)
        return 0;
    char *d = strdup(v);
    if (d == NULL)
        return -1;
    free(*field);
    *field = d;
    return 0;
}

static void grace_unlink(struct cp_presence *p, struct cp_user *u)
{
    if (u->offline_at == 0)
        return;
    if (u->grace_prev)
        u->grace_prev->grace_next = u->grace_next;
    else
        p->grace_head = u->grace_next;
    if (u->grace_next)
        u->grace_next->grace_prev = u->grace_prev;
    else
        p->grace_tail = u->grace_prev;
    u->grace_prev = u->grace_next = NULL;
    u->offline_at = 0;
}

static struct cp_user *user_get_or_add(struct cp_presence *p, const char *user_id)
{
    struct cp_user *u = sb_map_get(&p->users, user_id);
    if (u != NULL)
        return u;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->id = strdup(user_id);
    u->status = strdup("offline");
    if (u->id == NULL || u->status == NULL || sb_map_put(&p->users, user_id, u) != SB_OK) {
        user_free(u);
        return NULL;
    }
    return u;
}

static void user_detach(struct cp_user *u, struct cp_conn *c)
{
    for (size_t i = 0; i < u->n_conns; i++) {
        if (u->conns[i] == c) {
            u->conns[i] = u->conns[--u->n_conns];
            return;
        }
    }
}

static enum sb_err open_impl(struct cp_presence *p, const char *conn_id, const char *user_id,
                             const char *session_id, const char *transport, int64_t connected_at,
                             struct cp_node *node, const char *node_id, uint64_t gen,
                             int64_t now_ms, bool *came_online)
{
    struct cp_conn *c = sb_map_get(&p->conns, conn_id);
    if (c != NULL && strcmp(c->user->id, user_id) == 0 &&
        (node != NULL || strcmp(c->node_id ? c->node_id : "", node_id ? node_id : "") == 0)) {
        /* Resync: the same connection now reaches us through `node`. */
        if (c->node != node) {
            p->conn_gen++;
            if (c->node != NULL)
                c->node->n_conns--;
            c->node = node;
            if (node != NULL)
                node->n_conns++;
        }
        c->gen = gen;
        *came_online = false;
        return SB_OK;
    }
    if (c != NULL) {
        /* Same id, another user: the old record is stale. */
        struct cp_user *old;
        bool last;
        cp_presence_close(p, conn_id, now_ms, 0, 0, &old, &last);
        if (last && old != NULL)
            cp_presence_set_offline(p, old, now_ms);
    }
    struct cp_user *u = user_get_or_add(p, user_id);
    if (u == NULL)
        return SB_ENOMEM;
    if (u->n_conns == u->cap_conns) {
        size_t cap = u->cap_conns ? u->cap_conns * 2 : 2;
        struct cp_conn **arr = realloc(u->conns, cap * sizeof(*arr));
        if (arr == NULL)
            return SB_ENOMEM;
        u->conns = arr;
        u->cap_conns = cap;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return SB_ENOMEM;
    c->id = strdup(conn_id);
    c->session_id = strdup(session_id ? session_id : "");
    c->transport = strdup(transport ? transport : "");
    c->node_id = strdup(node_id ? node_id : "");
    c->gen = gen;
    if (c->id == NULL || c->session_id == NULL || c->transport == NULL || c->node_id == NULL ||
        sb_map_put(&p->conns, conn_id, c) != SB_OK) {
        conn_free(c);
        return SB_ENOMEM;
    }
    c->user = u;
    c->node = node;
    c->connected_at = connected_at;
    if (node != NULL)
        node->n_conns++;
    u->conns[u->n_conns++] = c;
    p->n_conns++;
    p->conn_gen++;
    grace_unlink(p, u);
    u->last_seen = now_ms;
    if (u->last_activity < now_ms)
        u->last_activity = now_ms; /* connecting is activity */
    *came_online = !u->online;
    if (!u->online) {
        u->online = true;
        p->n_online++;
        replace(&u->status, "online");
    }
    return SB_OK;
}

enum sb_err cp_presence_open(struct cp_presence *p, const char *conn_id, const char *user_id,
                             const char *session_id, const char *transport, int64_t connected_at,
                             struct cp_node *node, int64_t now_ms, bool *came_online)
{
    return open_impl(p, conn_id, user_id, session_id, transport, connected_at, node, node->id, 0,
                     now_ms, came_online);
}

enum sb_err cp_presence_open_remote(struct cp_presence *p, const char *conn_id, const char *user_id,
                                    const char *session_id, const char *transport,
                                    int64_t connected_at, const char *node_id, uint64_t gen,
                                    int64_t now_ms, bool *came_online)
{
    return open_impl(p, conn_id, user_id, session_id, transport, connected_at, NULL, node_id, gen,
                     now_ms, came_online);
}

void cp_presence_close(struct cp_presence *p, const char *conn_id, int64_t now_ms, int64_t mono_ms,
                       int64_t grace_ms, struct cp_user **user_out, bool *last)
{
    struct cp_conn *c = sb_map_remove(&p->conns, conn_id);
    *user_out = NULL;
    *last = false;
    if (c == NULL)
        return;
    struct cp_user *u = c->user;
    user_detach(u, c);
    if (c->node != NULL)
        c->node->n_conns--;
    p->n_conns--;
    p->conn_gen++;
    conn_free(c);
    u->last_seen = now_ms;
    *user_out = u;
    if (u->n_conns > 0 || !u->online)
        return;
    if (grace_ms <= 0) {
        *last = true;
        return;
    }
    /* Announce later, unless the user comes back first. */
    grace_unlink(p, u);
    u->offline_at = mono_ms + grace_ms;
    u->grace_prev = p->grace_tail;
    u->grace_next = NULL;
    if (p->grace_tail)
        p->grace_tail->grace_next = u;
    else
        p->grace_head = u;
    p->grace_tail = u;
}

void cp_presence_set_offline(struct cp_presence *p, struct cp_user *u, int64_t now_ms)
{
    grace_unlink(p, u);
    if (u->online) {
        u->online = false;
        p->n_online--;
    }
    replace(&u->status, "offline");
    u->last_seen = now_ms;
    u->offline_since = now_ms;
}

enum sb_err cp_presence_update(struct cp_user *u, const char *status, const char *custom_status,
                               const char *device_type, const char *device_name,
                               const char *activity_type, const char *activity_detail,
                               int64_t now_ms)
{
    if (replace(&u->status, status) != 0 || replace(&u->custom_status, custom_status) != 0 ||
        replace(&u->device_type, device_type) != 0 || replace(&u->device_name, device_name) != 0 ||
        replace(&u->activity_type, activity_type) != 0 ||
        replace(&u->activity_detail, activity_detail) != 0)
        return SB_ENOMEM;
    u->last_seen = now_ms;
    return SB_OK;
}

struct cp_user *cp_presence_grace_due(const struct cp_presence *p, int64_t mono_ms)
{
    struct cp_user *u = p->grace_head;
    return (u != NULL && u->offline_at <= mono_ms) ? u : NULL;
}

int64_t cp_presence_next_deadline(const struct cp_presence *p)
{
    return p->grace_head ? p->grace_head->offline_at : 0;
}

bool cp_presence_status_valid(const char *status)
{
    static const char *const ok[] = {"online", "away", "busy", "offline"};
    for (size_t i = 0; status != NULL && i < 4; i++) {
        if (strcmp(status, ok[i]) == 0)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- the presence record */

enum sb_err cp_presence_record_init(struct cp_presence_record *r)
{
    memset(r, 0, sizeof(*r));
    char **f[] = {&r->status,        &r->custom_status,   &r->device_type, &r->device_name,
                  &r->activity_type, &r->activity_detail, &r->availability};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        *f[i] = strdup("");
        if (*f[i] == NULL) {
            cp_presence_record_fini(r);
            return SB_ENOMEM;
        }
    }
    return SB_OK;
}

void cp_presence_record_fini(struct cp_presence_record *r)
{
    free(r->status);
    free(r->custom_status);
    free(r->device_type);
    free(r->device_name);
    free(r->activity_type);
    free(r->activity_detail);
    free(r->availability);
    memset(r, 0, sizeof(*r));
}

enum sb_err cp_presence_record_set(char **field, const char *v)
{
    char *d = strdup(v != NULL ? v : "");
    if (d == NULL)
        return SB_ENOMEM;
    free(*field);
    *field = d;
    return SB_OK;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

static int64_t jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

enum sb_err cp_presence_record_parse(const char *json, size_t len, struct cp_presence_record *out)
{
    if (cp_presence_record_init(out) != SB_OK)
        return SB_ENOMEM;
    json_t *j = json_loadb(json, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return SB_EPROTO;
    }
    json_t *dev = json_object_get(j, "device");
    json_t *act = json_object_get(j, "activity");
    const char *status = jstr(j, "status");
    enum sb_err e = SB_OK;
    if (status[0] != '\0' && !cp_presence_status_valid(status))
        status = "";
    if (cp_presence_record_set(&out->status, status) != SB_OK ||
        cp_presence_record_set(&out->custom_status, jstr(j, "custom_status")) != SB_OK ||
        cp_presence_record_set(&out->device_type, jstr(dev, "type")) != SB_OK ||
        cp_presence_record_set(&out->device_name, jstr(dev, "name")) != SB_OK ||
        cp_presence_record_set(&out->activity_type, jstr(act, "type")) != SB_OK ||
        cp_presence_record_set(&out->activity_detail, jstr(act, "detail")) != SB_OK ||
        cp_presence_record_set(&out->availability, jstr(j, "availability")) != SB_OK)
        e = SB_ENOMEM;
    out->auto_away = json_is_true(json_object_get(j, "auto_away"));
    out->last_activity = jint(j, "last_activity");
    out->updated_at = jint(j, "updated_at");
    json_decref(j);
    return e;
}

static int put_str(json_t *o, const char *k, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return 0;
    return json_object_set_new(o, k, json_string(v));
}

static int put_pair(json_t *o, const char *k, const char *k1, const char *v1, const char *k2,
                    const char *v2)
{
    if ((v1 == NULL || v1[0] == '\0') && (v2 == NULL || v2[0] == '\0'))
        return 0;
    json_t *p = json_object();
    if (p == NULL || put_str(p, k1, v1) != 0 || put_str(p, k2, v2) != 0) {
        json_decref(p);
        return -1;
    }
    return json_object_set_new(o, k, p);
}

char *cp_presence_record_format(const struct cp_presence_record *r)
{
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    int bad = put_str(j, "status", r->status);
    if (r->auto_away)
        bad |= json_object_set_new(j, "auto_away", json_true());
    bad |= put_str(j, "custom_status", r->custom_status);
    bad |= put_pair(j, "device", "type", r->device_type, "name", r->device_name);
    bad |= put_pair(j, "activity", "type", r->activity_type, "detail", r->activity_detail);
    bad |= put_str(j, "availability", r->availability);
    if (r->last_activity > 0)
        bad |= json_object_set_new(j, "last_activity", json_integer(r->last_activity));
    if (r->updated_at > 0)
        bad |= json_object_set_new(j, "updated_at", json_integer(r->updated_at));
    char *out = bad ? NULL : json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return out;
}

const char *cp_presence_effective_status(bool online, const struct cp_presence_record *r)
{
    if (!online)
        return "offline";
    if (r != NULL && r->status != NULL && r->status[0] != '\0')
        return r->status;
    return "online";
}

bool cp_presence_is_idle(const struct cp_presence_record *r, int64_t local_activity, int64_t now_ms,
                         int64_t timeout_ms)
{
    if (timeout_ms <= 0)
        return false;
    if (r->status[0] != '\0' && strcmp(r->status, "online") != 0)
        return false; /* busy, away (either kind) and offline stay as they are */
    int64_t last = r->last_activity > local_activity ? r->last_activity : local_activity;
    return now_ms - last >= timeout_ms;
}
