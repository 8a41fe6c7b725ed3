/* test_cp_store.c built for the etcd store (CP_TEST_ETCD): a real etcd started once for the
 * group by tests/support/etcd.sh, a fresh store per case on a wiped sb/ prefix, and S(expr)
 * draining the store's handoff until every callback started by expr has fired. */
#ifndef CP_STORE_ETCD_TEST_H
#define CP_STORE_ETCD_TEST_H

#include <curl/curl.h>
#include <unistd.h>

#include "cp_etcd_json.h"
#include "cp_handoff.h"
#include "cp_store_etcd.h"
#include "sb_time.h"

static int outstanding;
static struct cp_handoff *H;
static char endpoint[128];
static char etcd_pid[32];
static char etcd_dir[256];
static struct cp_store *extra; /* a second replica some cases open */

static void pump(int64_t ms)
{
    int64_t end = sb_time_mono_ms() + ms;
    while (sb_time_mono_ms() < end) {
        cp_handoff_wait(H, 20);
        cp_handoff_drain(H);
    }
}

static void settle(struct cp_store *s)
{
    int64_t end = sb_time_mono_ms() + 10000;
    while (outstanding > 0 && sb_time_mono_ms() < end) {
        cp_handoff_wait(H, 20);
        cp_handoff_drain(H);
        cp_store_etcd_tick(s, sb_time_mono_ms());
    }
}

#define S(expr)                                                                                    \
    do {                                                                                           \
        outstanding++;                                                                             \
        expr;                                                                                      \
        settle(s);                                                                                 \
        assert_int_equal(outstanding, 0);                                                          \
    } while (0)

static size_t sink(void *p, size_t sz, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return sz * n;
}

/* Deletes every key under sb/ (blocking libcurl call: test only). */
static int wipe(void)
{
    struct cp_etcd_delete_req d = {.key = cp_etcd_json_str("sb/"),
                                   .range_end = cp_etcd_json_str("sb0")};
    char *json = NULL;
    if (cp_etcd_json_delete(&d, &json) != SB_OK)
        return -1;
    char url[192];
    snprintf(url, sizeof(url), "%s/v3/kv/deleterange", endpoint);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    free(json);
    return rc == CURLE_OK ? 0 : -1;
}

static struct cp_store *open_store(const char *id)
{
    struct cp_store_etcd_config cfg = {
        .endpoints = endpoint, .cp_id = id, .advertise = "127.0.0.1:1", .lease_ttl_ms = 2000};
    struct cp_store *s = NULL;
    if (cp_store_etcd_open(&cfg, H, &s) != SB_OK)
        return NULL;
    return s;
}

static int setup(void **state)
{
    if (wipe() != 0)
        return -1;
    *state = open_store("cp-test-a");
    return *state == NULL;
}

static int teardown(void **state)
{
    struct cp_store *s = *state;
    if (s != NULL)
        s->ops->destroy(s);
    if (extra != NULL)
        extra->ops->destroy(extra);
    extra = NULL;
    return 0;
}

/* Copies `src` into `dst` (cap bytes), cutting it short if it does not fit. */
static void copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (access("/usr/bin/etcd", X_OK) != 0) {
        fprintf(stderr, "etcd not installed: skipping\n");
        exit(77);
    }
    FILE *f = popen(SB_SOURCE_DIR "/tests/support/etcd.sh start", "r");
    if (f == NULL)
        return -1;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "ETCD_ENDPOINT=", 14) == 0)
            copy_field(endpoint, sizeof(endpoint), line + 14);
        else if (strncmp(line, "ETCD_PID=", 9) == 0)
            copy_field(etcd_pid, sizeof(etcd_pid), line + 9);
        else if (strncmp(line, "ETCD_DIR=", 9) == 0)
            copy_field(etcd_dir, sizeof(etcd_dir), line + 9);
    }
    if (pclose(f) != 0 || endpoint[0] == '\0')
        return -1;
    return cp_handoff_create(NULL, NULL, &H) == SB_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cp_handoff_destroy(H);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), SB_SOURCE_DIR "/tests/support/etcd.sh stop '%s' '%s'", etcd_pid,
             etcd_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "etcd stop failed\n");
    curl_global_cleanup();
    return 0;
}

#define GROUP_SETUP    group_setup
#define GROUP_TEARDOWN group_teardown

#endif
