/* The etcd key scheme (see cp_keys.h for the table): one builder joins a fixed prefix and
 * validated ids; one parser maps keys read back from etcd to their parts. */
#include "cp_keys.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Joins prefix + ids separated by '/', with a trailing '/' when `slash`. */
static enum sb_err join(char *out, size_t cap, const char *prefix, const char *const *ids, size_t n,
                        bool slash)
{
    for (size_t i = 0; i < n; i++)
        if (!sb_ident_is_valid(ids[i]))
            return SB_EINVAL;
    size_t need = strlen(prefix) + (slash ? 1 : 0) + 1;
    for (size_t i = 0; i < n; i++)
        need += strlen(ids[i]) + (i > 0 ? 1 : 0);
    if (out == NULL || need > cap)
        return SB_EFULL;
    size_t len = strlen(prefix);
    memcpy(out, prefix, len);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out[len++] = '/';
        size_t l = strlen(ids[i]);
        memcpy(out + len, ids[i], l);
        len += l;
    }
    if (slash)
        out[len++] = '/';
    out[len] = '\0';
    return SB_OK;
}

#define ONE(p, a)    join(out, cap, p, (const char *const[]){a}, 1, false)
#define TWO(p, a, b) join(out, cap, p, (const char *const[]){a, b}, 2, false)

enum sb_err cp_keys_node(const char *node_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_NODES, node_id);
}

enum sb_err cp_keys_cp(const char *cp_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_CP, cp_id);
}

enum sb_err cp_keys_room(const char *room_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_ROOMS, room_id);
}

enum sb_err cp_keys_member(const char *room_id, const char *user_id, char *out, size_t cap)
{
    return TWO(CP_KEYS_MEMBERS, room_id, user_id);
}

enum sb_err cp_keys_user_room(const char *user_id, const char *room_id, char *out, size_t cap)
{
    return TWO(CP_KEYS_USER_ROOMS, user_id, room_id);
}

enum sb_err cp_keys_conn(const char *node_id, const char *user_id, const char *conn_id, char *out,
                         size_t cap)
{
    return join(out, cap, CP_KEYS_CONNS, (const char *const[]){node_id, user_id, conn_id}, 3,
                false);
}

enum sb_err cp_keys_seq(const char *room_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_SEQ, room_id);
}

enum sb_err cp_keys_history(const char *room_id, int64_t seq, char *out, size_t cap)
{
    char tmp[CP_KEYS_MAX];
    if (seq < 0)
        return SB_EINVAL;
    enum sb_err err =
        join(tmp, sizeof(tmp), CP_KEYS_HISTORY, (const char *const[]){room_id}, 1, true);
    if (err != SB_OK)
        return err;
    size_t len = strlen(tmp);
    if (out == NULL || len + 20 + 1 > cap)
        return SB_EFULL;
    memcpy(out, tmp, len);
    snprintf(out + len, cap - len, "%020" PRId64, seq);
    return SB_OK;
}

enum sb_err cp_keys_lock_room(const char *room_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_LOCKS_ROOM, room_id);
}

enum sb_err cp_keys_presence(const char *user_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_PRESENCE, user_id);
}

enum sb_err cp_keys_sequencer(const char *room_id, char *out, size_t cap)
{
    return ONE(CP_KEYS_SEQUENCER, room_id);
}

enum sb_err cp_keys_leader(const char *role, char *out, size_t cap)
{
    return ONE(CP_KEYS_LEADER, role);
}

enum sb_err cp_keys_idem(const char *room_id, const char *key_hash, char *out, size_t cap)
{
    return TWO(CP_KEYS_IDEM, room_id, key_hash);
}

void cp_keys_idem_hash(const char *key, char out[17])
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016" PRIx64, h);
}

void cp_keys_idem_hash128(const char *key, char out[33])
{
    /* Two FNV-1a style lanes (the second offset and shifted), each through the splitmix64
     * finalizer. */
    uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h1 = (h1 ^ *p) * 0x100000001b3ULL;
        h2 = (h2 ^ (uint64_t)(*p + 0x9e)) * 0x100000001b3ULL;
        h2 ^= h2 >> 29;
    }
    uint64_t v[2] = {h1, h2 ^ h1};
    for (int i = 0; i < 2; i++) {
        uint64_t z = v[i] + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        v[i] = z ^ (z >> 31);
    }
    snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, v[0], v[1]);
}

enum sb_err cp_keys_txn(const char *cp_id, uint64_t n, char *out, size_t cap)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, n);
    return TWO(CP_KEYS_TXN, cp_id, hex);
}

/* A byte allowed in a document key segment (not '/'). */
static bool doc_byte(unsigned char c)
{
    return (c >= 0x21 && c <= 0x7e && c != '/') || c >= 0x80;
}

/* n bytes of a document key (see cp_keys.h). */
static bool doc_key_valid(const char *k, size_t n)
{
    if (n == 0 || n > CP_KEYS_DOC_KEY_MAX)
        return false;
    size_t i = 0;
    while (i < n && ((k[i] >= 'a' && k[i] <= 'z') || k[i] == '_'))
        i++;
    if (i == 0 || i == n || k[i] != '/')
        return false;
    size_t seg = 0; /* bytes in the current segment */
    for (i++; i < n; i++) {
        if (k[i] == '/') {
            if (seg == 0)
                return false;
            seg = 0;
        } else if (doc_byte((unsigned char)k[i])) {
            seg++;
        } else {
            return false;
        }
    }
    return seg > 0;
}

static enum sb_err doc_join(const char *s, size_t n, char *out, size_t cap)
{
    size_t l = strlen(CP_KEYS_DOC);
    if (out == NULL || l + n + 1 > cap)
        return SB_EFULL;
    memcpy(out, CP_KEYS_DOC, l);
    memcpy(out + l, s, n);
    out[l + n] = '\0';
    return SB_OK;
}

enum sb_err cp_keys_doc(const char *doc_key, char *out, size_t cap)
{
    if (doc_key == NULL || !doc_key_valid(doc_key, strlen(doc_key)))
        return SB_EINVAL;
    return doc_join(doc_key, strlen(doc_key), out, cap);
}

enum sb_err cp_keys_doc_prefix(const char *prefix, char *out, size_t cap)
{
    if (prefix == NULL)
        return SB_EINVAL;
    size_t n = strlen(prefix);
    if (n > CP_KEYS_DOC_KEY_MAX || (n > 0 && prefix[0] == '/'))
        return SB_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (prefix[i] == '/' ? prefix[i - 1] == '/' : !doc_byte((unsigned char)prefix[i]))
            return SB_EINVAL;
    }
    return doc_join(prefix, n, out, cap);
}

enum sb_err cp_keys_idem_of(const char *room_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_IDEM, (const char *const[]){room_id}, 1, true);
}

enum sb_err cp_keys_members_of(const char *room_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_MEMBERS, (const char *const[]){room_id}, 1, true);
}

enum sb_err cp_keys_rooms_of_user(const char *user_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_USER_ROOMS, (const char *const[]){user_id}, 1, true);
}

enum sb_err cp_keys_conns_of_node(const char *node_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_CONNS, (const char *const[]){node_id}, 1, true);
}

enum sb_err cp_keys_conns_of_user(const char *node_id, const char *user_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_CONNS, (const char *const[]){node_id, user_id}, 2, true);
}

enum sb_err cp_keys_history_of(const char *room_id, char *out, size_t cap)
{
    return join(out, cap, CP_KEYS_HISTORY, (const char *const[]){room_id}, 1, true);
}

enum sb_err cp_keys_range_end(const char *prefix, size_t n, char *out, size_t cap, size_t *out_len)
{
    if (out == NULL || out_len == NULL || (prefix == NULL && n > 0))
        return SB_EINVAL;
    size_t i = n;
    while (i > 0 && (unsigned char)prefix[i - 1] == 0xff)
        i--;
    if (i == 0) {
        if (cap < 2)
            return SB_EFULL;
        out[0] = '\0';
        out[1] = '\0';
        *out_len = 1;
        return SB_OK;
    }
    if (cap < i + 1)
        return SB_EFULL;
    memcpy(out, prefix, i);
    out[i - 1] = (char)((unsigned char)prefix[i - 1] + 1);
    out[i] = '\0';
    *out_len = i;
    return SB_OK;
}

/* Copies the next '/'-separated part of [*p, end) into dst when it is a valid id. `last`: the
 * part must run to the end. */
static bool take_id(const char **p, const char *end, char dst[SB_IDENT_MAX + 1], bool last)
{
    const char *s = *p;
    const char *slash = memchr(s, '/', (size_t)(end - s));
    const char *stop = slash != NULL ? slash : end;
    if (last && slash != NULL)
        return false;
    if (!last && slash == NULL)
        return false;
    size_t len = (size_t)(stop - s);
    if (len == 0 || len > SB_IDENT_MAX)
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    if (!sb_ident_is_valid(dst))
        return false;
    *p = slash != NULL ? slash + 1 : end;
    return true;
}

static bool starts(const char *key, size_t n, const char *prefix, const char **rest)
{
    size_t l = strlen(prefix);
    if (n < l || memcmp(key, prefix, l) != 0)
        return false;
    *rest = key + l;
    return true;
}

static const struct {
    const char *prefix;
    enum cp_keys_kind kind;
    int ids;
} kinds[] = {
    {CP_KEYS_NODES, CP_KEYS_KIND_NODE, 1},
    {CP_KEYS_CP, CP_KEYS_KIND_CP, 1},
    {CP_KEYS_ROOMS, CP_KEYS_KIND_ROOM, 1},
    {CP_KEYS_MEMBERS, CP_KEYS_KIND_MEMBER, 2},
    {CP_KEYS_USER_ROOMS, CP_KEYS_KIND_USER_ROOM, 2},
    {CP_KEYS_CONNS, CP_KEYS_KIND_CONN, 3},
    {CP_KEYS_SEQ, CP_KEYS_KIND_SEQ, 1},
    {CP_KEYS_HISTORY, CP_KEYS_KIND_HISTORY, 1}, /* + seq */
    {CP_KEYS_LOCKS_ROOM, CP_KEYS_KIND_LOCK_ROOM, 1},
    {CP_KEYS_PRESENCE, CP_KEYS_KIND_PRESENCE, 1},
    {CP_KEYS_SEQUENCER, CP_KEYS_KIND_SEQUENCER, 1},
    {CP_KEYS_LEADER, CP_KEYS_KIND_LEADER, 1},
    {CP_KEYS_IDEM, CP_KEYS_KIND_IDEM, 2},
};

enum sb_err cp_keys_parse(const char *key, size_t n, struct cp_keys_parts *out)
{
    if (key == NULL || out == NULL)
        return SB_EINVAL;
    struct cp_keys_parts p;
    memset(&p, 0, sizeof(p));
    const char *rest;
    if (starts(key, n, CP_KEYS_DOC, &rest)) {
        size_t rn = n - (size_t)(rest - key);
        if (!doc_key_valid(rest, rn))
            return SB_EINVAL;
        p.kind = CP_KEYS_KIND_DOC;
        p.doc = rest;
        p.doc_len = rn;
        *out = p;
        return SB_OK;
    }
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const char *s;
        if (!starts(key, n, kinds[k].prefix, &s))
            continue;
        const char *end = key + n;
        char *dst[3] = {p.a, p.b, p.c};
        enum cp_keys_kind kind = kinds[k].kind;
        /* History and lock keys have one more part after the ids. */
        bool more = kind == CP_KEYS_KIND_HISTORY;
        for (int i = 0; i < kinds[k].ids; i++) {
            bool last = i == kinds[k].ids - 1 && !more;
            if (kind == CP_KEYS_KIND_LOCK_ROOM) {
                const char *slash = memchr(s, '/', (size_t)(end - s));
                last = slash == NULL;
            }
            if (!take_id(&s, end, dst[i], last))
                return SB_EINVAL;
        }
        if (kind == CP_KEYS_KIND_HISTORY) {
            if (end - s != 20)
                return SB_EINVAL;
            int64_t v = 0;
            for (int i = 0; i < 20; i++) {
                if (s[i] < '0' || s[i] > '9')
                    return SB_EINVAL;
                if (v > (INT64_MAX - (s[i] - '0')) / 10)
                    return SB_EINVAL;
                v = v * 10 + (s[i] - '0');
            }
            p.seq = v;
        } else if (kind == CP_KEYS_KIND_LOCK_ROOM) {
            /* An optional "/<lease hex>" written by etcd's lock service. */
            if (key[n - 1] == '/')
                return SB_EINVAL;
            for (const char *q = s; q < end; q++)
                if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
                    return SB_EINVAL;
        }
        p.kind = kind;
        *out = p;
        return SB_OK;
    }
    return SB_EINVAL;
}

/* ---------------------------------------------------------------- Store documents */

/* "<kind>/<a>/<b>"; "<kind>/<a>/" for b NULL with `two` segments; "<kind>/<a>" for one;
 * "<kind>/" when `a` is NULL or empty. */
static void doc_key(char out[CP_KEYS_DOC_KEY_MAX], const char *kind, bool two, const char *a,
                    const char *b)
{
    if (a == NULL || a[0] == '\0')
        snprintf(out, CP_KEYS_DOC_KEY_MAX, "%s/", kind);
    else if (!two)
        snprintf(out, CP_KEYS_DOC_KEY_MAX, "%s/%s", kind, a);
    else if (b == NULL)
        snprintf(out, CP_KEYS_DOC_KEY_MAX, "%s/%s/", kind, a);
    else
        snprintf(out, CP_KEYS_DOC_KEY_MAX, "%s/%s/%s", kind, a, b);
}

void cp_keys_doc_channel(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id)
{
    doc_key(out, "channels", false, channel_id, NULL);
}

void cp_keys_doc_sub(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id, const char *user_id)
{
    doc_key(out, "subs", true, channel_id, user_id);
}

void cp_keys_doc_user_sub(char out[CP_KEYS_DOC_KEY_MAX], const char *user_id,
                          const char *channel_id)
{
    doc_key(out, "user_subs", true, user_id, channel_id);
}

void cp_keys_doc_channel_idem(char out[CP_KEYS_DOC_KEY_MAX], const char *channel_id,
                              const char *key_hash)
{
    doc_key(out, "idem_ch", true, channel_id, key_hash);
}

void cp_keys_doc_idem(char out[CP_KEYS_DOC_KEY_MAX], const char *scope, const char *key_hash)
{
    doc_key(out, "idem", true, scope, key_hash);
}

void cp_keys_doc_ban(char out[CP_KEYS_DOC_KEY_MAX], const char *room_id, const char *user_id)
{
    doc_key(out, "bans", true, room_id, user_id);
}

void cp_keys_doc_invite(char out[CP_KEYS_DOC_KEY_MAX], const char *invite_id)
{
    doc_key(out, "invites", false, invite_id, NULL);
}

void cp_keys_doc_presence(char out[CP_KEYS_DOC_KEY_MAX], const char *user_id)
{
    doc_key(out, "presence", false, user_id, NULL);
}

void cp_keys_doc_session(char out[CP_KEYS_DOC_KEY_MAX], const char *session_id)
{
    doc_key(out, "sessions", false, session_id, NULL);
}

void cp_keys_doc_typing(char out[CP_KEYS_DOC_KEY_MAX], const char *room_id, const char *user_id)
{
    doc_key(out, "typing", true, room_id, user_id);
}
