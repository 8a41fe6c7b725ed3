/* Filter parsing by hand: a tokenizer and a loop over `cond (and cond)*`. The parsed form
 * owns one copy of the text with every word NUL-terminated in place, so a filter is two
 * allocations whatever its size. */
#include "cp_filter.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum op { OP_EQ, OP_NE, OP_IN, OP_NOT_IN };

struct cond {
    enum op op;
    const char *key;
    size_t first, n_values; /* into cp_filter.values */
};

struct cp_filter {
    char *text; /* words, NUL-terminated in place */
    struct cond conds[CP_FILTER_MAX_CONDS];
    size_t n_conds;
    const char *values[CP_FILTER_MAX_CONDS * CP_FILTER_MAX_VALUES];
    size_t n_values;
};

enum tk { T_END, T_WORD, T_STR, T_EQ, T_NE, T_LBRACK, T_RBRACK, T_COMMA, T_BAD };

struct lexer {
    char *p, *end;
    enum tk kind;
    char *word; /* T_WORD / T_STR: NUL-terminated in place once the next token is read */
    size_t wlen;
};

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '@' || c == '-' || c == '+' || c == '/';
}

static void next(struct lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r'))
        lx->p++;
    lx->word = NULL;
    lx->wlen = 0;
    if (lx->p >= lx->end) {
        lx->kind = T_END;
        return;
    }
    char c = *lx->p;
    if (c == '=' || c == '!') {
        if (lx->p + 1 < lx->end && lx->p[1] == '=') {
            lx->kind = c == '=' ? T_EQ : T_NE;
            lx->p += 2;
        } else {
            lx->kind = T_BAD;
        }
        return;
    }
    if (c == '[' || c == ']' || c == ',') {
        lx->kind = c == '[' ? T_LBRACK : c == ']' ? T_RBRACK : T_COMMA;
        lx->p++;
        return;
    }
    if (c == '"' || c == '\'') {
        char *q = memchr(lx->p + 1, c, (size_t)(lx->end - lx->p - 1));
        if (q == NULL) {
            lx->kind = T_BAD;
            return;
        }
        lx->kind = T_STR;
        lx->word = lx->p + 1;
        lx->wlen = (size_t)(q - lx->word);
        lx->p = q + 1;
        return;
    }
    if (word_char(c)) {
        lx->kind = T_WORD;
        lx->word = lx->p;
        while (lx->p < lx->end && word_char(*lx->p))
            lx->p++;
        lx->wlen = (size_t)(lx->p - lx->word);
        return;
    }
    lx->kind = T_BAD;
}

static bool is_kw(const struct lexer *lx, const char *kw)
{
    return lx->kind == T_WORD && lx->wlen == strlen(kw) && memcmp(lx->word, kw, lx->wlen) == 0;
}

static enum sb_err fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SB_EINVAL;
}

static bool blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return false;
    return true;
}

enum sb_err cp_filter_parse(const char *text, size_t len, struct cp_filter **out, char *err,
                            size_t errlen)
{
    if (text == NULL || blank(text, len)) {
        *out = NULL;
        return SB_OK;
    }
    if (len > CP_FILTER_MAX)
        return fail(err, errlen, "filter is longer than %d bytes", CP_FILTER_MAX);
    if (memchr(text, '\0', len) != NULL)
        return fail(err, errlen, "filter contains a NUL byte");
    struct cp_filter *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return SB_ENOMEM;
    f->text = malloc(len + 1);
    if (f->text == NULL) {
        free(f);
        return SB_ENOMEM;
    }
    memcpy(f->text, text, len);
    f->text[len] = '\0';
    /* A word is cut (NUL-terminated in place) only once the token after it has been read:
     * the byte overwritten is a delimiter or closing quote already consumed, or the end. */
    struct lexer lx = {.p = f->text, .end = f->text + len};
    enum sb_err e = SB_OK;
    next(&lx);
    for (;;) {
        if (f->n_conds == CP_FILTER_MAX_CONDS) {
            e = fail(err, errlen, "filter has more than %d conditions", CP_FILTER_MAX_CONDS);
            goto out;
        }
        struct cond *c = &f->conds[f->n_conds];
        if (lx.kind != T_WORD || is_kw(&lx, "and") || is_kw(&lx, "in") || is_kw(&lx, "not")) {
            e = fail(err, errlen, "filter: expected a metadata key");
            goto out;
        }
        char *key = lx.word;
        size_t klen = lx.wlen;
        next(&lx);
        key[klen] = '\0';
        c->key = key;
        if (lx.kind == T_EQ || lx.kind == T_NE) {
            c->op = lx.kind == T_EQ ? OP_EQ : OP_NE;
            next(&lx);
            if (lx.kind != T_WORD && lx.kind != T_STR) {
                e = fail(err, errlen, "filter: expected a value after %s",
                         c->op == OP_EQ ? "==" : "!=");
                goto out;
            }
            c->first = f->n_values;
            c->n_values = 1;
            char *w = lx.word;
            size_t wl = lx.wlen;
            next(&lx);
            w[wl] = '\0';
            f->values[f->n_values++] = w;
        } else if (is_kw(&lx, "in") || is_kw(&lx, "not")) {
            c->op = OP_IN;
            if (is_kw(&lx, "not")) {
                next(&lx);
                if (!is_kw(&lx, "in")) {
                    e = fail(err, errlen, "filter: expected `in` after `not`");
                    goto out;
                }
                c->op = OP_NOT_IN;
            }
            next(&lx);
            if (lx.kind != T_LBRACK) {
                e = fail(err, errlen, "filter: expected [ after in");
                goto out;
            }
            next(&lx);
            c->first = f->n_values;
            for (;;) {
                if (lx.kind != T_WORD && lx.kind != T_STR) {
                    e = fail(err, errlen, "filter: expected a value in the list");
                    goto out;
                }
                if (c->n_values == CP_FILTER_MAX_VALUES) {
                    e = fail(err, errlen, "filter: a list has more than %d values",
                             CP_FILTER_MAX_VALUES);
                    goto out;
                }
                char *w = lx.word;
                size_t wl = lx.wlen;
                next(&lx);
                w[wl] = '\0';
                f->values[f->n_values++] = w;
                c->n_values++;
                if (lx.kind == T_COMMA) {
                    next(&lx);
                    continue;
                }
                if (lx.kind == T_RBRACK) {
                    next(&lx);
                    break;
                }
                e = fail(err, errlen, "filter: expected , or ] in the list");
                goto out;
            }
        } else {
            e = fail(err, errlen, "filter: expected ==, !=, in or not in after %s", c->key);
            goto out;
        }
        f->n_conds++;
        if (lx.kind == T_END)
            break;
        if (!is_kw(&lx, "and")) {
            e = fail(err, errlen, "filter: expected `and` or the end");
            goto out;
        }
        next(&lx);
    }
out:
    if (e != SB_OK) {
        cp_filter_free(f);
        return e;
    }
    *out = f;
    return SB_OK;
}

static const char *lookup(const struct cp_kv *meta, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (meta[i].key != NULL && strcmp(meta[i].key, key) == 0)
            return meta[i].value != NULL ? meta[i].value : "";
    return NULL;
}

bool cp_filter_match(const struct cp_filter *f, const struct cp_kv *meta, size_t n)
{
    if (f == NULL)
        return true;
    for (size_t i = 0; i < f->n_conds; i++) {
        const struct cond *c = &f->conds[i];
        const char *v = lookup(meta, n, c->key);
        bool found = false;
        for (size_t k = 0; v != NULL && k < c->n_values && !found; k++)
            found = strcmp(v, f->values[c->first + k]) == 0;
        bool ok = (c->op == OP_EQ || c->op == OP_IN) ? found : !found;
        if (!ok)
            return false;
    }
    return true;
}

void cp_filter_free(struct cp_filter *f)
{
    if (f == NULL)
        return;
    free(f->text);
    free(f);
}
