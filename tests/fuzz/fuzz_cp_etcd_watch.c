/* Fuzz target: the etcd watch stream (cp_etcd_lines + cp_etcd_json_parse_watch) and the other
 * answer parsers of cp_etcd_json. The first byte picks the chunk size, so partial lines are
 * exercised; every parsed event must carry a key and a positive revision. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_etcd_json.h"

static enum sb_err on_line(void *ud, const char *line, size_t len)
{
    (void)ud;
    struct cp_etcd_watch_msg m;
    if (cp_etcd_json_parse_watch(line, len, &m) == SB_OK) {
        if (m.kind == CP_ETCD_WATCH_EVENTS && m.n_events == 0)
            abort();
        for (size_t i = 0; i < m.n_events; i++)
            if (m.events[i].kv.key_len == 0 || m.events[i].kv.mod_revision <= 0 ||
                m.events[i].kv.key[m.events[i].kv.key_len] != '\0')
                abort();
        cp_etcd_json_watch_msg_fini(&m);
    }
    return SB_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct cp_etcd_lines l;
    cp_etcd_json_lines_init(&l, 4096);
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        if (cp_etcd_json_lines_feed(&l, s + i, k, on_line, NULL) != SB_OK) {
            cp_etcd_json_lines_reset(&l);
            break;
        }
    }
    cp_etcd_json_lines_finish(&l, on_line, NULL);
    cp_etcd_json_lines_fini(&l);

    struct cp_etcd_result r;
    if (cp_etcd_json_parse_result(s, n, &r) == SB_OK)
        cp_etcd_json_result_fini(&r);
    struct cp_etcd_txn_result t;
    if (cp_etcd_json_parse_txn(s, n, &t) == SB_OK)
        cp_etcd_json_txn_result_fini(&t);
    struct cp_etcd_lease le;
    if (cp_etcd_json_parse_lease(s, n, &le) == SB_OK)
        cp_etcd_json_lease_fini(&le);
    struct cp_etcd_error er;
    if (cp_etcd_json_parse_error(s, n, &er) == SB_OK)
        cp_etcd_json_error_fini(&er);
    char *k = NULL;
    size_t kn;
    if (cp_etcd_json_parse_lock(s, n, &k, &kn, NULL) == SB_OK)
        free(k);
    /* base64: whatever decodes must encode back to the same text. */
    char *d, *e;
    size_t dn, en;
    if (cp_etcd_json_b64_decode(s, n, &d, &dn) == SB_OK) {
        if (cp_etcd_json_b64_encode(d, dn, &e, &en) != SB_OK || en != n || memcmp(e, s, n) != 0)
            abort();
        free(e);
        free(d);
    }
    return 0;
}
