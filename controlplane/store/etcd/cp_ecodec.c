/* The etcd Store's record values (cp_ecodec.h): JSON built and read with jansson; fields added
 * later are left out at their zero value, so records of older versions read the same. */
#include "cp_ecodec.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

char *cp_ecodec_dup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        if (n > 0)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static char *text(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static json_t *parse(const char *v, size_t n)
{
    if (v == NULL || n == 0)
        return NULL;
    return json_loadb(v, n, 0, NULL);
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

/* Metadata as a JSON object of strings. */
static json_t *meta_json(const struct cp_kv *kvs, size_t n)
{
    json_t *meta = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(meta, nz(kvs[i].key), json_string(nz(kvs[i].value)));
    return meta;
}

/* The pairs of metadata object `meta`, borrowed from it, in *out (new array; NULL when none).
 * False on ENOMEM. */
static bool meta_read(json_t *meta, struct cp_kv **out, size_t *n_out)
{
    size_t nm = json_is_object(meta) ? json_object_size(meta) : 0;
    *out = NULL;
    *n_out = 0;
    if (nm == 0)
        return true;
    struct cp_kv *kvs = calloc(nm, sizeof(*kvs));
    if (kvs == NULL)
        return false;
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(meta, k, v)
    {
        kvs[i].key = (char *)k;
        kvs[i].value = (char *)nz(json_string_value(v));
        i++;
    }
    *out = kvs;
    *n_out = nm;
    return true;
}

char *cp_ecodec_room_json(const struct cp_room *r)
{
    return text(json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:I, s:o}", "name", nz(r->name),
                          "description", nz(r->description), "owner_id", nz(r->owner_id), "private",
                          r->is_private, "archived", r->archived, "max_members",
                          (json_int_t)r->max_members, "created_at", (json_int_t)r->created_at,
                          "updated_at", (json_int_t)r->updated_at, "metadata",
                          meta_json(r->metadata, r->n_metadata)));
}

struct cp_room *cp_ecodec_room_parse(const char *id, const char *v, size_t n)
{
    json_t *j = parse(v, n);
    if (j == NULL)
        return NULL;
    struct cp_room nr = {0};
    nr.id = (char *)id;
    nr.name = (char *)str(j, "name");
    nr.description = (char *)str(j, "description");
    nr.owner_id = (char *)str(j, "owner_id");
    nr.is_private = json_is_true(json_object_get(j, "private"));
    nr.archived = json_is_true(json_object_get(j, "archived"));
    nr.max_members = (int32_t)num(j, "max_members");
    nr.created_at = num(j, "created_at");
    nr.updated_at = num(j, "updated_at");
    struct cp_room *d = NULL;
    if (meta_read(json_object_get(j, "metadata"), &nr.metadata, &nr.n_metadata))
        d = cp_room_dup(&nr);
    free(nr.metadata);
    json_decref(j);
    return d;
}

char *cp_ecodec_member_json(enum cp_role role, int64_t joined_at)
{
    return text(
        json_pack("{s:s, s:I}", "role", cp_role_name(role), "joined_at", (json_int_t)joined_at));
}

void cp_ecodec_member_parse(const char *v, size_t n, enum cp_role *role, int64_t *joined_at)
{
    json_t *j = parse(v, n);
    *role = CP_ROLE_MEMBER;
    if (j != NULL && cp_role_parse(str(j, "role"), role) != SB_OK)
        *role = CP_ROLE_MEMBER;
    *joined_at = j ? num(j, "joined_at") : 0;
    json_decref(j);
}

char *cp_ecodec_message_json(const struct cp_message *m, bool transient)
{
    json_t *j = json_pack("{s:s, s:I, s:s, s:I, s:s%, s:o}", "id", m->id, "seq", (json_int_t)m->seq,
                          "room_id", m->room_id, "timestamp", (json_int_t)m->timestamp, "data",
                          m->data != NULL ? m->data : "", m->data != NULL ? m->data_len : 0,
                          "metadata", meta_json(m->metadata, m->n_metadata));
    if (j == NULL)
        return NULL;
    int rc = 0;
    if (m->user_id != NULL)
        rc |= json_object_set_new(j, "user_id", json_string(m->user_id));
    if (m->thread_id != NULL)
        rc |= json_object_set_new(j, "thread_id", json_string(m->thread_id));
    /* Left out at their zero value: older records read the same. */
    if (m->deleted)
        rc |= json_object_set_new(j, "deleted", json_true());
    if (m->deleted_at != 0)
        rc |= json_object_set_new(j, "deleted_at", json_integer((json_int_t)m->deleted_at));
    if (m->edited_at != 0)
        rc |= json_object_set_new(j, "edited_at", json_integer((json_int_t)m->edited_at));
    if (m->ext != NULL)
        rc |= json_object_set_new(j, "ext", json_string(m->ext));
    if (transient)
        rc |= json_object_set_new(j, "transient", json_true());
    if (rc != 0) {
        json_decref(j);
        return NULL;
    }
    return text(j);
}

/* A string field, NULL when absent or not a string. */
static char *opt_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? (char *)json_string_value(v) : NULL;
}

struct cp_message *cp_ecodec_message_parse(const char *v, size_t n, bool *transient)
{
    json_t *j = parse(v, n);
    if (j == NULL)
        return NULL;
    if (transient != NULL)
        *transient = json_is_true(json_object_get(j, "transient"));
    struct cp_message m = {0};
    m.id = (char *)str(j, "id");
    m.seq = num(j, "seq");
    m.room_id = (char *)str(j, "room_id");
    m.user_id = opt_str(j, "user_id");
    m.thread_id = opt_str(j, "thread_id");
    m.timestamp = num(j, "timestamp");
    json_t *d = json_object_get(j, "data");
    m.data = (char *)(json_is_string(d) ? json_string_value(d) : "null");
    m.data_len = json_is_string(d) ? json_string_length(d) : 4;
    m.deleted = json_is_true(json_object_get(j, "deleted"));
    m.deleted_at = num(j, "deleted_at");
    m.edited_at = num(j, "edited_at");
    m.ext = opt_str(j, "ext");
    /* Out of memory for the metadata: the message without it. */
    if (!meta_read(json_object_get(j, "metadata"), &m.metadata, &m.n_metadata))
        m.n_metadata = 0;
    struct cp_message *out = m.id[0] != '\0' ? cp_message_dup(&m) : NULL;
    free(m.metadata);
    json_decref(j);
    return out;
}

bool cp_ecodec_message_peek(const char *v, size_t n, int64_t *timestamp, bool *transient)
{
    json_t *j = parse(v, n);
    *timestamp = j != NULL ? num(j, "timestamp") : 0;
    *transient = j != NULL && json_is_true(json_object_get(j, "transient"));
    json_decref(j);
    return j != NULL;
}

char *cp_ecodec_node_json(const char *address, int64_t last_heartbeat, int64_t connections)
{
    return text(json_pack("{s:s, s:I, s:I}", "address", nz(address), "last_heartbeat",
                          (json_int_t)last_heartbeat, "connections", (json_int_t)connections));
}

char *cp_ecodec_node_parse(const char *v, size_t n, int64_t *last_heartbeat, int64_t *connections)
{
    json_t *j = parse(v, n);
    char *address = strdup(j ? str(j, "address") : "");
    *last_heartbeat = j ? num(j, "last_heartbeat") : 0;
    *connections = j ? num(j, "connections") : 0;
    json_decref(j);
    return address;
}

char *cp_ecodec_conn_json(const char *session_id, const char *transport, int64_t connected_at)
{
    return text(json_pack("{s:s, s:s, s:I}", "session_id", nz(session_id), "transport",
                          nz(transport), "connected_at", (json_int_t)connected_at));
}

char *cp_ecodec_idem_json(const char *key, const char *message_id, int64_t seq)
{
    return text(json_pack("{s:s, s:s, s:I}", "k", key, "id", message_id, "seq", (json_int_t)seq));
}

enum sb_err cp_ecodec_idem_parse(const char *v, size_t n, struct cp_ecodec_idem *out)
{
    json_t *j = parse(v, n);
    if (j == NULL)
        return SB_EPROTO;
    struct cp_ecodec_idem x = {strdup(str(j, "k")), strdup(str(j, "id")), num(j, "seq")};
    json_decref(j);
    if (x.key == NULL || x.message_id == NULL) {
        cp_ecodec_idem_fini(&x);
        return SB_ENOMEM;
    }
    *out = x;
    return SB_OK;
}

void cp_ecodec_idem_fini(struct cp_ecodec_idem *x)
{
    free(x->key);
    free(x->message_id);
    x->key = x->message_id = NULL;
}

int64_t cp_ecodec_seq_parse(const char *v, size_t n)
{
    if (v == NULL || n == 0 || n > 20)
        return 0;
    char buf[24];
    memcpy(buf, v, n);
    buf[n] = '\0';
    return strtoll(buf, NULL, 10);
}
