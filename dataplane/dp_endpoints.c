/* Control-plane endpoint list: parse once, resolve names on demand. Literal addresses are used
 * as given; names go through getaddrinfo (or the test seam). */
#include "dp_endpoints.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dp_config.h"

struct item {
    char host[256];
    int port;
    bool v6; /* literal IPv6 */
    bool literal;
    char **last; /* a name's addresses from the last successful lookup */
    size_t n_last;
};

struct dp_endpoints {
    struct item *items;
    size_t n;
    dp_endpoints_lookup_fn *lookup;
};

static enum sb_err gai_lookup(const char *host, char ***out, size_t *n)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return SB_EUNAVAIL;
    size_t cnt = 0;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next)
        cnt++;
    char **v = calloc(cnt + 1, sizeof(*v));
    size_t k = 0;
    enum sb_err rc = v == NULL ? SB_ENOMEM : SB_OK;
    for (struct addrinfo *a = res; a != NULL && rc == SB_OK; a = a->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        if (inet_ntop(a->ai_family, src, buf, sizeof(buf)) == NULL)
            continue;
        if ((v[k] = strdup(buf)) == NULL)
            rc = SB_ENOMEM;
        else
            k++;
    }
    freeaddrinfo(res);
    if (rc != SB_OK) {
        dp_endpoints_free_list(v, k);
        return rc;
    }
    *out = v;
    *n = k;
    return SB_OK;
}

struct dp_endpoints *dp_endpoints_parse(const char *list, dp_endpoints_lookup_fn *lookup,
                                        enum sb_err *err)
{
    *err = SB_ENOMEM;
    struct dp_endpoints *e = calloc(1, sizeof(*e));
    char *copy = strdup(list != NULL ? list : "");
    if (e == NULL || copy == NULL)
        goto fail;
    e->lookup = lookup != NULL ? lookup : gai_lookup;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        size_t tl = strlen(t);
        while (tl > 0 && t[tl - 1] == ' ')
            t[--tl] = '\0';
        if (*t == '\0')
            continue;
        struct item it;
        memset(&it, 0, sizeof(it));
        if (dp_config_split_hostport(t, it.host, sizeof(it.host), &it.port) != SB_OK ||
            it.port == 0) {
            *err = SB_EINVAL;
            goto fail;
        }
        unsigned char a[16];
        if (inet_pton(AF_INET, it.host, a) == 1) {
            it.literal = true;
        } else if (inet_pton(AF_INET6, it.host, a) == 1) {
            it.literal = true;
            it.v6 = true;
        }
        struct item *v = realloc(e->items, (e->n + 1) * sizeof(*v));
        if (v == NULL)
            goto fail;
        e->items = v;
        e->items[e->n++] = it;
    }
    if (e->n == 0) {
        *err = SB_EINVAL;
        goto fail;
    }
    free(copy);
    *err = SB_OK;
    return e;
fail:
    free(copy);
    dp_endpoints_destroy(e);
    return NULL;
}

bool dp_endpoints_has_names(const struct dp_endpoints *e)
{
    for (size_t i = 0; i < e->n; i++)
        if (!e->items[i].literal)
            return true;
    return false;
}

void dp_endpoints_free_list(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends "host:port" (brackets for v6) unless already present. */
static enum sb_err add(char ***v, size_t *n, size_t *cap, const char *host, bool v6, int port)
{
    char buf[300];
    snprintf(buf, sizeof(buf), v6 ? "[%s]:%d" : "%s:%d", host, port);
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*v)[i], buf) == 0)
            return SB_OK;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 4;
        char **nv = realloc(*v, c * sizeof(*nv));
        if (nv == NULL)
            return SB_ENOMEM;
        *v = nv;
        *cap = c;
    }
    if (((*v)[*n] = strdup(buf)) == NULL)
        return SB_ENOMEM;
    (*n)++;
    return SB_OK;
}

enum sb_err dp_endpoints_resolve(struct dp_endpoints *e, char ***out, size_t *n_out)
{
    char **v = NULL;
    size_t n = 0, cap = 0;
    enum sb_err rc = SB_OK;
    for (size_t i = 0; i < e->n && rc == SB_OK; i++) {
        struct item *it = &e->items[i];
        if (it->literal) {
            rc = add(&v, &n, &cap, it->host, it->v6, it->port);
            continue;
        }
        char **got = NULL;
        size_t ng = 0;
        if (e->lookup(it->host, &got, &ng) == SB_OK && ng > 0) {
            /* IPv4 only when there is any: a name with both families ("localhost") is almost
             * always one host, and two streams of one node to one replica would fight. */
            bool any4 = false;
            for (size_t k = 0; k < ng; k++)
                any4 = any4 || strchr(got[k], ':') == NULL;
            size_t keep = 0;
            for (size_t k = 0; k < ng; k++) {
                if (any4 && strchr(got[k], ':') != NULL)
                    free(got[k]);
                else
                    got[keep++] = got[k];
            }
            qsort(got, keep, sizeof(*got), cmp_str);
            dp_endpoints_free_list(it->last, it->n_last);
            it->last = got;
            it->n_last = keep;
        } else {
            dp_endpoints_free_list(got, ng);
        }
        for (size_t k = 0; k < it->n_last && rc == SB_OK; k++)
            rc = add(&v, &n, &cap, it->last[k], strchr(it->last[k], ':') != NULL, it->port);
    }
    if (rc != SB_OK) {
        dp_endpoints_free_list(v, n);
        return rc;
    }
    *out = v;
    *n_out = n;
    return SB_OK;
}

void dp_endpoints_destroy(struct dp_endpoints *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n; i++)
        dp_endpoints_free_list(e->items[i].last, e->items[i].n_last);
    free(e->items);
    free(e);
}
