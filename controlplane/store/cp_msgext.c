/* The edit trail and reactions of a message, kept as JSON text in cp_message.ext (format in
 * cp_msgext.h). Reads and writes go through jansson; objects keep their insertion order, so
 * the text written is stable. */
#include "cp_msgext.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sb_time.h"

bool cp_msgext_emoji_valid(const char *emoji)
{
    if (emoji == NULL || emoji[0] == '\0')
        return false;
    size_t n = strlen(emoji);
    if (n > CP_MSGEXT_MAX_EMOJI_BYTES)
        return false;
    const unsigned char *s = (const unsigned char *)emoji;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates, beyond U+10FFFF, and the C1 controls. */
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff || (cp >= 0x80 && cp <= 0x9f))
            return false;
        i += len;
    }
    return true;
}

/* The ext object, or a new empty one when absent or unreadable. NULL on ENOMEM. */
static json_t *load(const char *ext)
{
    json_t *root = NULL;
    if (ext != NULL && ext[0] != '\0')
        root = json_loads(ext, 0, NULL);
    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        root = NULL;
    }
    return root != NULL ? root : json_object();
}

/* root[name] as an array, created when missing or of another type. NULL on ENOMEM. */
static json_t *array_member(json_t *root, const char *name)
{
    json_t *a = json_object_get(root, name);
    if (json_is_array(a))
        return a;
    a = json_array();
    if (a == NULL || json_object_set_new(root, name, a) != 0)
        return NULL;
    return a;
}

/* *out: the text of root without empty members; NULL when nothing is left. SB_ENOMEM. */
static enum sb_err dump(json_t *root, char **out)
{
    *out = NULL;
    json_t *e = json_object_get(root, "edits");
    if (json_is_array(e) && json_array_size(e) == 0)
        json_object_del(root, "edits");
    json_t *r = json_object_get(root, "reactions");
    if (json_is_array(r) && json_array_size(r) == 0)
        json_object_del(root, "reactions");
    if (json_object_size(root) == 0)
        return SB_OK;
    char *s = json_dumps(root, JSON_COMPACT);
    if (s == NULL)
        return SB_ENOMEM;
    *out = s;
    return SB_OK;
}

static size_t edit_bytes(json_t *edit)
{
    return json_string_length(json_object_get(edit, "previous_data"));
}

enum sb_err cp_msgext_add_edit(const char *ext, const char *editor_id, const char *prev,
                               size_t prev_len, int64_t edited_at, char **out)
{
    *out = NULL;
    json_t *root = load(ext);
    if (root == NULL)
        return SB_ENOMEM;
    enum sb_err err = SB_ENOMEM;
    json_t *edits = array_member(root, "edits");
    json_t *e =
        json_pack("{s:s, s:s%, s:I}", "editor_id", editor_id ? editor_id : "", "previous_data",
                  prev ? prev : "", prev ? prev_len : 0, "edited_at", (json_int_t)edited_at);
    if (edits == NULL || e == NULL || json_array_append_new(edits, e) != 0)
        goto out;
    e = NULL;
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(edits); i++)
        total += edit_bytes(json_array_get(edits, i));
    while (json_array_size(edits) > 1 &&
           (json_array_size(edits) > CP_MSGEXT_MAX_EDITS || total > CP_MSGEXT_MAX_EDIT_BYTES)) {
        total -= edit_bytes(json_array_get(edits, 0));
        json_array_remove(edits, 0);
    }
    err = dump(root, out);
out:
    json_decref(e);
    json_decref(root);
    return err;
}

enum sb_err cp_msgext_react(const char *ext, const char *emoji, const char *user_id, bool add,
                            char **out, bool *changed)
{
    *out = NULL;
    *changed = false;
    json_t *root = load(ext);
    if (root == NULL)
        return SB_ENOMEM;
    enum sb_err err = SB_ENOMEM;
    json_t *reactions = array_member(root, "reactions");
    if (reactions == NULL)
        goto out;
    size_t at = json_array_size(reactions);
    json_t *users = NULL;
    for (size_t i = 0; i < json_array_size(reactions); i++) {
        json_t *r = json_array_get(reactions, i);
        const char *em = json_string_value(json_object_get(r, "emoji"));
        if (em != NULL && strcmp(em, emoji) == 0) {
            at = i;
            users = json_object_get(r, "user_ids");
            if (!json_is_array(users)) {
                users = json_array();
                if (users == NULL || json_object_set_new(r, "user_ids", users) != 0)
                    goto out;
            }
            break;
        }
    }
    size_t upos = SIZE_MAX;
    for (size_t i = 0; users != NULL && i < json_array_size(users); i++) {
        const char *u = json_string_value(json_array_get(users, i));
        if (u != NULL && strcmp(u, user_id) == 0) {
            upos = i;
            break;
        }
    }
    if (add) {
        if (upos != SIZE_MAX) {
            err = SB_OK;
            goto out;
        }
        if (users == NULL) {
            if (json_array_size(reactions) >= CP_MSGEXT_MAX_REACTIONS) {
                err = SB_EFULL;
                goto out;
            }
            json_t *r = json_pack("{s:s, s:[s]}", "emoji", emoji, "user_ids", user_id);
            if (r == NULL || json_array_append_new(reactions, r) != 0)
                goto out;
        } else if (json_array_append_new(users, json_string(user_id)) != 0) {
            goto out;
        }
    } else {
        if (upos == SIZE_MAX) {
            err = SB_OK;
            goto out;
        }
        json_array_remove(users, upos);
        if (json_array_size(users) == 0)
            json_array_remove(reactions, at);
    }
    *changed = true;
    err = dump(root, out);
    if (err != SB_OK)
        *changed = false;
out:
    json_decref(root);
    return err;
}

static char *dup_str(const char *s, size_t n, bool *failed)
{
    char *d = malloc(n + 1);
    if (d == NULL) {
        *failed = true;
        return NULL;
    }
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

enum sb_err cp_msgext_parse(const char *ext, struct cp_msgext *x)
{
    memset(x, 0, sizeof(*x));
    if (ext == NULL || ext[0] == '\0')
        return SB_OK;
    json_t *root = json_loads(ext, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return SB_OK;
    }
    bool failed = false;
    json_t *edits = json_object_get(root, "edits");
    size_t ne = json_is_array(edits) ? json_array_size(edits) : 0;
    if (ne > 0) {
        x->edits = calloc(ne, sizeof(*x->edits));
        failed |= x->edits == NULL;
    }
    for (size_t i = 0; !failed && i < ne; i++) {
        json_t *e = json_array_get(edits, i);
        json_t *prev = json_object_get(e, "previous_data");
        if (!json_is_string(prev))
            continue;
        struct cp_msgext_edit *d = &x->edits[x->n_edits++];
        const char *ed = json_string_value(json_object_get(e, "editor_id"));
        d->editor_id = dup_str(ed ? ed : "", ed ? strlen(ed) : 0, &failed);
        d->previous_len = json_string_length(prev);
        d->previous_data = dup_str(json_string_value(prev), d->previous_len, &failed);
        d->edited_at = json_integer_value(json_object_get(e, "edited_at"));
    }
    json_t *reactions = json_object_get(root, "reactions");
    size_t nr = json_is_array(reactions) ? json_array_size(reactions) : 0;
    if (!failed && nr > 0) {
        x->reactions = calloc(nr, sizeof(*x->reactions));
        failed |= x->reactions == NULL;
    }
    for (size_t i = 0; !failed && i < nr; i++) {
        json_t *r = json_array_get(reactions, i);
        const char *em = json_string_value(json_object_get(r, "emoji"));
        json_t *users = json_object_get(r, "user_ids");
        size_t nu = json_is_array(users) ? json_array_size(users) : 0;
        if (em == NULL || nu == 0)
            continue;
        struct cp_msgext_reaction *d = &x->reactions[x->n_reactions++];
        d->emoji = dup_str(em, strlen(em), &failed);
        d->user_ids = calloc(nu, sizeof(*d->user_ids));
        if (d->user_ids == NULL) {
            failed = true;
            break;
        }
        for (size_t k = 0; k < nu; k++) {
            const char *u = json_string_value(json_array_get(users, k));
            if (u != NULL)
                d->user_ids[d->n_users++] = dup_str(u, strlen(u), &failed);
        }
    }
    json_decref(root);
    if (failed) {
        cp_msgext_free(x);
        return SB_ENOMEM;
    }
    return SB_OK;
}

void cp_msgext_free(struct cp_msgext *x)
{
    for (size_t i = 0; i < x->n_edits; i++) {
        free(x->edits[i].editor_id);
        free(x->edits[i].previous_data);
    }
    free(x->edits);
    for (size_t i = 0; i < x->n_reactions; i++) {
        for (size_t k = 0; k < x->reactions[i].n_users; k++)
            free(x->reactions[i].user_ids[k]);
        free(x->reactions[i].user_ids);
        free(x->reactions[i].emoji);
    }
    free(x->reactions);
    memset(x, 0, sizeof(*x));
}

static void str(struct cp_buf *b, const char *s)
{
    cp_buf_json_str(b, s, strlen(s));
}

void cp_msgext_render(struct cp_buf *b, const char *ext)
{
    struct cp_msgext x;
    if (ext == NULL || ext[0] == '\0' || cp_msgext_parse(ext, &x) != SB_OK)
        return;
    if (x.n_edits > 0) {
        cp_buf_puts(b, ",\"edits\":[");
        for (size_t i = 0; i < x.n_edits; i++) {
            const struct cp_msgext_edit *e = &x.edits[i];
            cp_buf_puts(b, i > 0 ? ",{" : "{");
            if (e->editor_id[0] != '\0') {
                cp_buf_puts(b, "\"editor_id\":");
                str(b, e->editor_id);
                cp_buf_putc(b, ',');
            }
            cp_buf_puts(b, "\"previous_data\":");
            /* Stored from validated data; anything else would break the frame. */
            json_t *v = json_loadb(e->previous_data, e->previous_len, JSON_DECODE_ANY, NULL);
            if (v != NULL)
                cp_buf_append(b, e->previous_data, e->previous_len);
            else
                cp_buf_puts(b, "null");
            json_decref(v);
            char t[SB_TIME_RFC3339_LEN];
            size_t n = sb_time_format_rfc3339(e->edited_at, t, sizeof(t));
            cp_buf_puts(b, ",\"edited_at\":");
            cp_buf_json_str(b, t, n);
            cp_buf_putc(b, '}');
        }
        cp_buf_putc(b, ']');
    }
    if (x.n_reactions > 0) {
        cp_buf_puts(b, ",\"reactions\":[");
        for (size_t i = 0; i < x.n_reactions; i++) {
            const struct cp_msgext_reaction *r = &x.reactions[i];
            cp_buf_puts(b, i > 0 ? ",{\"emoji\":" : "{\"emoji\":");
            str(b, r->emoji);
            cp_buf_puts(b, ",\"user_ids\":[");
            for (size_t k = 0; k < r->n_users; k++) {
                if (k > 0)
                    cp_buf_putc(b, ',');
                str(b, r->user_ids[k]);
            }
            cp_buf_printf(b, "],\"count\":%zu}", r->n_users);
        }
        cp_buf_putc(b, ']');
    }
    cp_msgext_free(&x);
}
