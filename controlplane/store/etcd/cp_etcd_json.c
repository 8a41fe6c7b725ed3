/* etcd JSON gateway bodies: builders from constant field names, parsers that accept the
 * zero-value-omitted answers of etcd 3.4 and reject anything else with SB_EPROTO. */
#include "cp_etcd_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ---- base64 ---------------------------------------------------------------------------- */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

enum sb_err cp_etcd_json_b64_encode(const void *p, size_t n, char **out, size_t *out_len)
{
    const unsigned char *s = p;
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return SB_EINVAL;
    size_t len = (n + 2) / 3 * 4;
    char *o = malloc(len + 1);
    if (o == NULL)
        return SB_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        o[j++] = b64chars[(v >> 18) & 63];
        o[j++] = b64chars[(v >> 12) & 63];
        o[j++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        o[j++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    o[j] = '\0';
    *out = o;
    if (out_len != NULL)
        *out_len = j;
    return SB_OK;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

enum sb_err cp_etcd_json_b64_decode(const char *s, size_t n, char **out, size_t *out_len)
{
    if (n % 4 != 0)
        return SB_EPROTO;
    char *o = malloc(n / 4 * 3 + 1);
    if (o == NULL)
        return SB_ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad > 0 ? -1 : b64val(c);
            if (v[k] < 0) {
                free(o);
                return SB_EPROTO;
            }
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* Canonical padding: the unused low bits must be zero. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0)) {
            free(o);
            return SB_EPROTO;
        }
        o[j++] = (char)(w >> 16);
        if (pad < 2)
            o[j++] = (char)(w >> 8);
        if (pad < 1)
            o[j++] = (char)w;
    }
    o[j] = '\0';
    *out = o;
    *out_len = j;
    return SB_OK;
}

/* ---- builders -------------------------------------------------------------------------- */

struct cp_etcd_bytes cp_etcd_json_str(const char *s)
{
    struct cp_etcd_bytes b = {s, s != NULL ? strlen(s) : 0};
    return b;
}

/* Each setter returns -1 on failure (ENOMEM); builders check once. */
static int set_b64(json_t *o, const char *name, struct cp_etcd_bytes b)
{
    char *t;
    if (cp_etcd_json_b64_encode(b.p != NULL ? b.p : "", b.n, &t, NULL) != SB_OK)
        return -1;
    int rc = json_object_set_new(o, name, json_string(t));
    free(t);
    return rc;
}

static int set_i64(json_t *o, const char *name, int64_t v)
{
    char t[24];
    snprintf(t, sizeof(t), "%" PRId64, v);
    return json_object_set_new(o, name, json_string(t));
}

static int set_true(json_t *o, const char *name)
{
    return json_object_set_new(o, name, json_true());
}

static enum sb_err finish(json_t *o, int rc, char **out)
{
    if (o == NULL || rc != 0) {
        json_decref(o);
        return SB_ENOMEM;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return SB_ENOMEM;
    *out = s;
    return SB_OK;
}

static bool has_key(struct cp_etcd_bytes k)
{
    return k.p != NULL && k.n > 0;
}

static json_t *range_obj(const struct cp_etcd_range_req *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = set_b64(o, "key", r->key);
    if (r->range_end.p != NULL)
        rc |= set_b64(o, "range_end", r->range_end);
    if (r->limit > 0)
        rc |= set_i64(o, "limit", r->limit);
    if (r->revision > 0)
        rc |= set_i64(o, "revision", r->revision);
    if (r->keys_only)
        rc |= set_true(o, "keys_only");
    if (r->count_only)
        rc |= set_true(o, "count_only");
    if (r->descend) {
        rc |= json_object_set_new(o, "sort_order", json_string("DESCEND"));
        rc |= json_object_set_new(o, "sort_target", json_string("KEY"));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *put_obj(const struct cp_etcd_put_req *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = set_b64(o, "key", r->key);
    rc |= set_b64(o, "value", r->value);
    if (r->lease != 0)
        rc |= set_i64(o, "lease", r->lease);
    if (r->ignore_lease)
        rc |= set_true(o, "ignore_lease");
    if (r->prev_kv)
        rc |= set_true(o, "prev_kv");
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *delete_obj(const struct cp_etcd_delete_req *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = set_b64(o, "key", r->key);
    if (r->range_end.p != NULL)
        rc |= set_b64(o, "range_end", r->range_end);
    if (r->prev_kv)
        rc |= set_true(o, "prev_kv");
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static bool range_ok(const struct cp_etcd_range_req *r)
{
    return r != NULL && has_key(r->key) && r->limit >= 0 && r->revision >= 0;
}

static bool put_ok(const struct cp_etcd_put_req *r)
{
    return r != NULL && has_key(r->key) && (r->value.p != NULL || r->value.n == 0) &&
           !(r->ignore_lease && r->lease != 0);
}

static bool delete_ok(const struct cp_etcd_delete_req *r)
{
    return r != NULL && has_key(r->key);
}

enum sb_err cp_etcd_json_range(const struct cp_etcd_range_req *r, char **out)
{
    if (!range_ok(r) || out == NULL)
        return SB_EINVAL;
    return finish(range_obj(r), 0, out);
}

enum sb_err cp_etcd_json_put(const struct cp_etcd_put_req *r, char **out)
{
    if (!put_ok(r) || out == NULL)
        return SB_EINVAL;
    return finish(put_obj(r), 0, out);
}

enum sb_err cp_etcd_json_delete(const struct cp_etcd_delete_req *r, char **out)
{
    if (!delete_ok(r) || out == NULL)
        return SB_EINVAL;
    return finish(delete_obj(r), 0, out);
}

static const char *const target_names[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE"};
static const char *const result_names[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};
static const char *const target_fields[] = {"version", "create_revision", "mod_revision", "value",
                                            "lease"};

static json_t *ops_array(const struct cp_etcd_op *ops, size_t n, bool *bad)
{
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct cp_etcd_op *op = &ops[i];
        json_t *inner = NULL;
        const char *name = NULL;
        switch (op->type) {
        case CP_ETCD_OP_RANGE:
            if (!range_ok(&op->u.range))
                goto bad;
            inner = range_obj(&op->u.range);
            name = "request_range";
            break;
        case CP_ETCD_OP_PUT:
            if (!put_ok(&op->u.put))
                goto bad;
            inner = put_obj(&op->u.put);
            name = "request_put";
            break;
        case CP_ETCD_OP_DELETE:
            if (!delete_ok(&op->u.del))
                goto bad;
            inner = delete_obj(&op->u.del);
            name = "request_delete_range";
            break;
        default:
            goto bad;
        }
        json_t *w = json_object();
        if (inner == NULL || w == NULL || json_object_set_new(w, name, inner) != 0 ||
            json_array_append_new(a, w) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
bad:
    *bad = true;
    json_decref(a);
    return NULL;
}

enum sb_err cp_etcd_json_txn(const struct cp_etcd_txn_req *r, char **out)
{
    if (r == NULL || out == NULL || (r->n_compare > 0 && r->compare == NULL) ||
        (r->n_success > 0 && r->success == NULL) || (r->n_failure > 0 && r->failure == NULL))
        return SB_EINVAL;
    for (size_t i = 0; i < r->n_compare; i++) {
        const struct cp_etcd_cmp *c = &r->compare[i];
        if (!has_key(c->key) || (unsigned)c->target > CP_ETCD_CMP_LEASE ||
            (unsigned)c->result > CP_ETCD_CMP_NOT_EQUAL ||
            (c->target == CP_ETCD_CMP_VALUE && c->value.p == NULL && c->value.n > 0))
            return SB_EINVAL;
    }
    json_t *o = json_object(), *cmps = json_array();
    int rc = (o == NULL || cmps == NULL) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < r->n_compare; i++) {
        const struct cp_etcd_cmp *c = &r->compare[i];
        json_t *j = json_object();
        if (j == NULL) {
            rc = -1;
            break;
        }
        rc |= set_b64(j, "key", c->key);
        rc |= json_object_set_new(j, "target", json_string(target_names[c->target]));
        rc |= json_object_set_new(j, "result", json_string(result_names[c->result]));
        if (c->target == CP_ETCD_CMP_VALUE)
            rc |= set_b64(j, "value", c->value);
        else
            rc |= set_i64(j, target_fields[c->target], c->num);
        rc |= json_array_append_new(cmps, j);
    }
    bool bad = false;
    json_t *succ = ops_array(r->success, r->n_success, &bad);
    json_t *fail = bad ? NULL : ops_array(r->failure, r->n_failure, &bad);
    if (bad) {
        json_decref(o);
        json_decref(cmps);
        json_decref(succ);
        return SB_EINVAL;
    }
    if (o != NULL) {
        rc |= json_object_set(o, "compare", cmps != NULL ? cmps : json_null());
        rc |= json_object_set(o, "success", succ != NULL ? succ : json_null());
        rc |= json_object_set(o, "failure", fail != NULL ? fail : json_null());
    }
    rc |= (cmps == NULL || succ == NULL || fail == NULL) ? -1 : 0;
    json_decref(cmps);
    json_decref(succ);
    json_decref(fail);
    return finish(o, rc, out);
}

enum sb_err cp_etcd_json_compact(int64_t revision, char **out)
{
    if (revision <= 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    return finish(o, o == NULL ? -1 : set_i64(o, "revision", revision), out);
}

enum sb_err cp_etcd_json_lease_grant(int64_t ttl_s, int64_t id, char **out)
{
    if (ttl_s <= 0 || id < 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    int rc = o == NULL ? -1 : set_i64(o, "TTL", ttl_s);
    if (o != NULL && id != 0)
        rc |= set_i64(o, "ID", id);
    return finish(o, rc, out);
}

enum sb_err cp_etcd_json_lease_id(int64_t id, char **out)
{
    if (id == 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    return finish(o, o == NULL ? -1 : set_i64(o, "ID", id), out);
}

enum sb_err cp_etcd_json_lease_ttl(int64_t id, bool keys, char **out)
{
    if (id == 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    int rc = o == NULL ? -1 : set_i64(o, "ID", id);
    if (o != NULL && keys)
        rc |= set_true(o, "keys");
    return finish(o, rc, out);
}

enum sb_err cp_etcd_json_lock(struct cp_etcd_bytes name, int64_t lease, char **out)
{
    if (!has_key(name) || lease == 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    int rc = o == NULL ? -1 : set_b64(o, "name", name);
    if (o != NULL)
        rc |= set_i64(o, "lease", lease);
    return finish(o, rc, out);
}

enum sb_err cp_etcd_json_unlock(struct cp_etcd_bytes key, char **out)
{
    if (!has_key(key) || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object();
    return finish(o, o == NULL ? -1 : set_b64(o, "key", key), out);
}

enum sb_err cp_etcd_json_watch_create(struct cp_etcd_bytes key, struct cp_etcd_bytes range_end,
                                      int64_t start_revision, bool progress_notify, char **out)
{
    if (!has_key(key) || start_revision < 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object(), *c = json_object();
    int rc = (o == NULL || c == NULL) ? -1 : 0;
    if (rc == 0) {
        rc |= set_b64(c, "key", key);
        if (range_end.p != NULL)
            rc |= set_b64(c, "range_end", range_end);
        if (start_revision > 0)
            rc |= set_i64(c, "start_revision", start_revision);
        if (progress_notify)
            rc |= set_true(c, "progress_notify");
        rc |= json_object_set(o, "create_request", c);
    }
    json_decref(c);
    return finish(o, rc, out);
}

enum sb_err cp_etcd_json_watch_cancel(int64_t watch_id, char **out)
{
    if (watch_id < 0 || out == NULL)
        return SB_EINVAL;
    json_t *o = json_object(), *c = json_object();
    int rc = (o == NULL || c == NULL) ? -1 : 0;
    if (rc == 0) {
        rc |= set_i64(c, "watch_id", watch_id);
        rc |= json_object_set(o, "cancel_request", c);
    }
    json_decref(c);
    return finish(o, rc, out);
}

/* ---- parsers --------------------------------------------------------------------------- */

static json_t *load(const char *body, size_t len)
{
    if (body == NULL)
        return NULL;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* An int64 field: absent -> 0; a decimal string (what the gateway sends) or a JSON integer. */
static enum sb_err get_i64(json_t *o, const char *name, int64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return SB_OK;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return SB_OK;
    }
    if (!json_is_string(v))
        return SB_EPROTO;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 20 || strlen(s) != n)
        return SB_EPROTO;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
        return SB_EPROTO;
    *out = (int64_t)x;
    return SB_OK;
}

static enum sb_err get_bool(json_t *o, const char *name, bool *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v)) {
        *out = false;
        return SB_OK;
    }
    if (!json_is_boolean(v))
        return SB_EPROTO;
    *out = json_is_true(v);
    return SB_OK;
}

/* A base64 field decoded; absent -> "" (the zero value). */
static enum sb_err get_b64(json_t *o, const char *name, char **out, size_t *out_len)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v))
        return cp_etcd_json_b64_decode("", 0, out, out_len);
    if (!json_is_string(v))
        return SB_EPROTO;
    return cp_etcd_json_b64_decode(json_string_value(v), json_string_length(v), out, out_len);
}

/* A string field copied; absent -> NULL. */
static enum sb_err get_str(json_t *o, const char *name, char **out)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return SB_OK;
    if (!json_is_string(v))
        return SB_EPROTO;
    *out = strdup(json_string_value(v));
    return *out != NULL ? SB_OK : SB_ENOMEM;
}

static enum sb_err header_revision(json_t *o, int64_t *out)
{
    json_t *h = json_object_get(o, "header");
    if (h == NULL) {
        *out = 0;
        return SB_OK;
    }
    if (!json_is_object(h))
        return SB_EPROTO;
    return get_i64(h, "revision", out);
}

void cp_etcd_json_kv_fini(struct cp_etcd_kv *kv)
{
    if (kv == NULL)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

static enum sb_err parse_kv(json_t *o, struct cp_etcd_kv *out)
{
    struct cp_etcd_kv kv;
    memset(&kv, 0, sizeof(kv));
    if (!json_is_object(o))
        return SB_EPROTO;
    enum sb_err err = get_b64(o, "key", &kv.key, &kv.key_len);
    if (err == SB_OK)
        err = get_b64(o, "value", &kv.value, &kv.value_len);
    if (err == SB_OK)
        err = get_i64(o, "create_revision", &kv.create_revision);
    if (err == SB_OK)
        err = get_i64(o, "mod_revision", &kv.mod_revision);
    if (err == SB_OK)
        err = get_i64(o, "version", &kv.version);
    if (err == SB_OK)
        err = get_i64(o, "lease", &kv.lease);
    if (err != SB_OK) {
        cp_etcd_json_kv_fini(&kv);
        return err;
    }
    *out = kv;
    return SB_OK;
}

static void kvs_free(struct cp_etcd_kv *kvs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cp_etcd_json_kv_fini(&kvs[i]);
    free(kvs);
}

/* kvs from an array field, or from a single object field (put's prev_kv). */
static enum sb_err parse_kvs(json_t *o, const char *name, struct cp_etcd_kv **out, size_t *n_out)
{
    json_t *a = json_object_get(o, name);
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a))
        return SB_OK;
    size_t n = json_is_array(a) ? json_array_size(a) : json_is_object(a) ? 1 : 0;
    if (n == 0)
        return json_is_array(a) ? SB_OK : SB_EPROTO;
    struct cp_etcd_kv *kvs = calloc(n, sizeof(*kvs));
    if (kvs == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        enum sb_err err = parse_kv(json_is_array(a) ? json_array_get(a, i) : a, &kvs[i]);
        if (err != SB_OK) {
            kvs_free(kvs, i);
            return err;
        }
    }
    *out = kvs;
    *n_out = n;
    return SB_OK;
}

void cp_etcd_json_result_fini(struct cp_etcd_result *r)
{
    if (r == NULL)
        return;
    kvs_free(r->kvs, r->n_kvs);
    memset(r, 0, sizeof(*r));
}

static enum sb_err parse_result_obj(json_t *o, struct cp_etcd_result *out)
{
    struct cp_etcd_result r;
    memset(&r, 0, sizeof(r));
    int64_t deleted = 0;
    enum sb_err err = header_revision(o, &r.revision);
    if (err == SB_OK)
        err = get_i64(o, "count", &r.count);
    if (err == SB_OK)
        err = get_i64(o, "deleted", &deleted);
    if (err == SB_OK)
        err = get_bool(o, "more", &r.more);
    if (err == SB_OK)
        err = parse_kvs(o, "kvs", &r.kvs, &r.n_kvs);
    if (err == SB_OK && r.kvs == NULL)
        err = parse_kvs(o, "prev_kv", &r.kvs, &r.n_kvs);
    if (err == SB_OK && r.kvs == NULL)
        err = parse_kvs(o, "prev_kvs", &r.kvs, &r.n_kvs);
    if (err != SB_OK) {
        cp_etcd_json_result_fini(&r);
        return err;
    }
    if (deleted != 0)
        r.count = deleted;
    *out = r;
    return SB_OK;
}

/* Error objects are answers too: a parser of a success body refuses them. */
static bool is_error(json_t *o)
{
    return json_object_get(o, "error") != NULL;
}

enum sb_err cp_etcd_json_parse_revision(const char *body, size_t len, int64_t *out)
{
    json_t *o = load(body, len);
    if (o == NULL || is_error(o)) {
        json_decref(o);
        return SB_EPROTO;
    }
    int64_t rev;
    enum sb_err err = header_revision(o, &rev);
    json_decref(o);
    if (err == SB_OK)
        *out = rev;
    return err;
}

enum sb_err cp_etcd_json_parse_result(const char *body, size_t len, struct cp_etcd_result *out)
{
    json_t *o = load(body, len);
    if (o == NULL || is_error(o) || out == NULL) {
        json_decref(o);
        return SB_EPROTO;
    }
    enum sb_err err = parse_result_obj(o, out);
    json_decref(o);
    return err;
}

void cp_etcd_json_txn_result_fini(struct cp_etcd_txn_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_ops; i++)
        cp_etcd_json_result_fini(&r->ops[i].r);
    free(r->ops);
    memset(r, 0, sizeof(*r));
}

enum sb_err cp_etcd_json_parse_txn(const char *body, size_t len, struct cp_etcd_txn_result *out)
{
    json_t *o = load(body, len);
    struct cp_etcd_txn_result t;
    memset(&t, 0, sizeof(t));
    enum sb_err err = SB_EPROTO;
    if (o == NULL || is_error(o) || out == NULL)
        goto out;
    err = header_revision(o, &t.revision);
    if (err == SB_OK)
        err = get_bool(o, "succeeded", &t.succeeded);
    if (err != SB_OK)
        goto out;
    json_t *a = json_object_get(o, "responses");
    if (a != NULL && !json_is_array(a)) {
        err = SB_EPROTO;
        goto out;
    }
    size_t n = a != NULL ? json_array_size(a) : 0;
    if (n > 0) {
        t.ops = calloc(n, sizeof(*t.ops));
        if (t.ops == NULL) {
            err = SB_ENOMEM;
            goto out;
        }
    }
    static const char *const names[] = {"response_range", "response_put", "response_delete_range"};
    for (size_t i = 0; i < n; i++) {
        json_t *w = json_array_get(a, i);
        json_t *inner = NULL;
        int type = -1;
        for (int k = 0; k < 3 && json_is_object(w); k++) {
            json_t *v = json_object_get(w, names[k]);
            if (v != NULL) {
                if (inner != NULL || !json_is_object(v)) {
                    type = -1;
                    break;
                }
                inner = v;
                type = k;
            }
        }
        if (type < 0 || json_object_size(w) != 1) {
            err = SB_EPROTO;
            goto out;
        }
        t.ops[i].type = (enum cp_etcd_op_type)type;
        err = parse_result_obj(inner, &t.ops[i].r);
        if (err != SB_OK)
            goto out;
        t.n_ops = i + 1;
    }
    *out = t;
    memset(&t, 0, sizeof(t));
    err = SB_OK;
out:
    cp_etcd_json_txn_result_fini(&t);
    json_decref(o);
    return err;
}

void cp_etcd_json_lease_fini(struct cp_etcd_lease *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n_keys; i++)
        free(l->keys[i]);
    free(l->keys);
    free(l->key_lens);
    memset(l, 0, sizeof(*l));
}

enum sb_err cp_etcd_json_parse_lease(const char *body, size_t len, struct cp_etcd_lease *out)
{
    json_t *o = load(body, len);
    struct cp_etcd_lease l;
    memset(&l, 0, sizeof(l));
    enum sb_err err = SB_EPROTO;
    if (o == NULL || is_error(o) || out == NULL)
        goto out;
    json_t *r = json_object_get(o, "result");
    if (r != NULL && (!json_is_object(r) || is_error(r)))
        goto out;
    json_t *src = r != NULL ? r : o;
    err = header_revision(src, &l.revision);
    if (err == SB_OK)
        err = get_i64(src, "ID", &l.id);
    if (err == SB_OK)
        err = get_i64(src, "TTL", &l.ttl);
    if (err == SB_OK)
        err = get_i64(src, "grantedTTL", &l.granted_ttl);
    if (err != SB_OK)
        goto out;
    json_t *keys = json_object_get(src, "keys");
    if (keys != NULL && !json_is_array(keys)) {
        err = SB_EPROTO;
        goto out;
    }
    size_t n = keys != NULL ? json_array_size(keys) : 0;
    if (n > 0) {
        l.keys = calloc(n, sizeof(*l.keys));
        l.key_lens = calloc(n, sizeof(*l.key_lens));
        if (l.keys == NULL || l.key_lens == NULL) {
            err = SB_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *k = json_array_get(keys, i);
            err = json_is_string(k)
                      ? cp_etcd_json_b64_decode(json_string_value(k), json_string_length(k),
                                                &l.keys[i], &l.key_lens[i])
                      : SB_EPROTO;
            if (err != SB_OK)
                goto out;
            l.n_keys = i + 1;
        }
    }
    *out = l;
    memset(&l, 0, sizeof(l));
    err = SB_OK;
out:
    cp_etcd_json_lease_fini(&l);
    json_decref(o);
    return err;
}

enum sb_err cp_etcd_json_parse_lock(const char *body, size_t len, char **key, size_t *key_len,
                                    int64_t *revision)
{
    json_t *o = load(body, len);
    enum sb_err err = SB_EPROTO;
    char *k = NULL;
    size_t kn = 0;
    int64_t rev = 0;
    if (o == NULL || is_error(o) || key == NULL || key_len == NULL)
        goto out;
    if (!json_is_string(json_object_get(o, "key")))
        goto out;
    err = get_b64(o, "key", &k, &kn);
    if (err == SB_OK)
        err = header_revision(o, &rev);
    if (err == SB_OK && kn == 0)
        err = SB_EPROTO;
    if (err != SB_OK)
        goto out;
    *key = k;
    *key_len = kn;
    if (revision != NULL)
        *revision = rev;
    k = NULL;
out:
    free(k);
    json_decref(o);
    return err;
}

void cp_etcd_json_error_fini(struct cp_etcd_error *e)
{
    if (e == NULL)
        return;
    free(e->message);
    memset(e, 0, sizeof(*e));
}

/* Both error forms; o is the object holding "error". */
static enum sb_err parse_error_obj(json_t *o, int *code, char **message)
{
    json_t *e = json_object_get(o, "error");
    json_t *src = json_is_object(e) ? e : o;
    if (e == NULL || !(json_is_object(e) || json_is_string(e)))
        return SB_EPROTO;
    int64_t c = 0;
    if (get_i64(src, json_is_object(e) ? "grpc_code" : "code", &c) != SB_OK || c < 0 || c > 99)
        return SB_EPROTO;
    json_t *m = json_object_get(src, "message");
    const char *msg = json_is_string(m)   ? json_string_value(m)
                      : json_is_string(e) ? json_string_value(e)
                                          : "";
    char *dup = strdup(msg);
    if (dup == NULL)
        return SB_ENOMEM;
    *code = (int)c;
    *message = dup;
    return SB_OK;
}

enum sb_err cp_etcd_json_parse_error(const char *body, size_t len, struct cp_etcd_error *out)
{
    json_t *o = load(body, len);
    if (o == NULL || out == NULL) {
        json_decref(o);
        return SB_EPROTO;
    }
    struct cp_etcd_error e = {0, NULL};
    enum sb_err err = parse_error_obj(o, &e.grpc_code, &e.message);
    json_decref(o);
    if (err == SB_OK)
        *out = e;
    return err;
}

/* ---- watch ----------------------------------------------------------------------------- */

void cp_etcd_json_watch_msg_fini(struct cp_etcd_watch_msg *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n_events; i++)
        cp_etcd_json_kv_fini(&m->events[i].kv);
    free(m->events);
    free(m->cancel_reason);
    free(m->message);
    memset(m, 0, sizeof(*m));
}

enum sb_err cp_etcd_json_parse_watch(const char *line, size_t len, struct cp_etcd_watch_msg *out)
{
    json_t *o = load(line, len);
    struct cp_etcd_watch_msg m;
    memset(&m, 0, sizeof(m));
    enum sb_err err = SB_EPROTO;
    if (o == NULL || out == NULL)
        goto out;
    if (is_error(o)) {
        err = parse_error_obj(o, &m.grpc_code, &m.message);
        if (err != SB_OK)
            goto out;
        m.kind = CP_ETCD_WATCH_ERROR;
        goto done;
    }
    json_t *r = json_object_get(o, "result");
    if (!json_is_object(r))
        goto out;
    bool created, canceled;
    err = header_revision(r, &m.revision);
    if (err == SB_OK)
        err = get_i64(r, "watch_id", &m.watch_id);
    if (err == SB_OK)
        err = get_i64(r, "compact_revision", &m.compact_revision);
    if (err == SB_OK)
        err = get_bool(r, "created", &created);
    if (err == SB_OK)
        err = get_bool(r, "canceled", &canceled);
    if (err == SB_OK)
        err = get_str(r, "cancel_reason", &m.cancel_reason);
    if (err != SB_OK)
        goto out;
    json_t *evs = json_object_get(r, "events");
    if (evs != NULL && !json_is_array(evs)) {
        err = SB_EPROTO;
        goto out;
    }
    size_t n = evs != NULL ? json_array_size(evs) : 0;
    if (n > 0) {
        m.events = calloc(n, sizeof(*m.events));
        if (m.events == NULL) {
            err = SB_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *ev = json_array_get(evs, i);
        err = SB_EPROTO;
        if (!json_is_object(ev))
            goto out;
        json_t *type = json_object_get(ev, "type");
        enum cp_etcd_event_type t;
        if (type == NULL)
            t = CP_ETCD_EVENT_PUT;
        else if (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0)
            t = CP_ETCD_EVENT_PUT;
        else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
            t = CP_ETCD_EVENT_DELETE;
        else
            goto out;
        json_t *kv = json_object_get(ev, "kv");
        if (kv == NULL)
            goto out;
        err = parse_kv(kv, &m.events[i].kv);
        if (err != SB_OK)
            goto out;
        m.events[i].type = t;
        m.n_events = i + 1;
        if (m.events[i].kv.key_len == 0 || m.events[i].kv.mod_revision <= 0) {
            err = SB_EPROTO;
            goto out;
        }
    }
    if (canceled)
        m.kind = CP_ETCD_WATCH_CANCELED;
    else if (n > 0)
        m.kind = CP_ETCD_WATCH_EVENTS;
    else if (created)
        m.kind = CP_ETCD_WATCH_CREATED;
    else
        m.kind = CP_ETCD_WATCH_PROGRESS;
    if (n > 0 && (canceled || created)) {
        err = SB_EPROTO;
        goto out;
    }
done:
    *out = m;
    memset(&m, 0, sizeof(m));
    err = SB_OK;
out:
    cp_etcd_json_watch_msg_fini(&m);
    json_decref(o);
    return err;
}

/* ---- line splitter --------------------------------------------------------------------- */

void cp_etcd_json_lines_init(struct cp_etcd_lines *l, size_t max_line)
{
    memset(l, 0, sizeof(*l));
    l->max_line = max_line;
}

void cp_etcd_json_lines_fini(struct cp_etcd_lines *l)
{
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

void cp_etcd_json_lines_reset(struct cp_etcd_lines *l)
{
    l->len = 0;
}

static enum sb_err emit(const char *p, size_t n, cp_etcd_line_fn *fn, void *ud)
{
    if (n > 0 && p[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r'))
        i++;
    if (i == n)
        return SB_OK;
    return fn(ud, p, n);
}

static enum sb_err append(struct cp_etcd_lines *l, const char *p, size_t n)
{
    if (l->len + n > l->max_line)
        return SB_EFULL;
    if (l->len + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + n)
            cap *= 2;
        char *b = realloc(l->buf, cap);
        if (b == NULL)
            return SB_ENOMEM;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return SB_OK;
}

enum sb_err cp_etcd_json_lines_feed(struct cp_etcd_lines *l, const char *data, size_t n,
                                    cp_etcd_line_fn *fn, void *ud)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        if (nl == NULL)
            return append(l, data, n);
        size_t part = (size_t)(nl - data);
        enum sb_err err;
        if (l->len > 0) {
            /* Completes the carried partial line. */
            err = append(l, data, part);
            if (err != SB_OK)
                return err;
            size_t len = l->len;
            l->len = 0;
            err = emit(l->buf, len, fn, ud);
        } else {
            err = part > l->max_line ? SB_EFULL : emit(data, part, fn, ud);
        }
        if (err != SB_OK)
            return err;
        data = nl + 1;
        n -= part + 1;
    }
    return SB_OK;
}

enum sb_err cp_etcd_json_lines_finish(struct cp_etcd_lines *l, cp_etcd_line_fn *fn, void *ud)
{
    size_t n = l->len;
    l->len = 0;
    if (n == 0)
        return SB_OK;
    return emit(l->buf, n, fn, ud);
}
