/* The etcd client against a real etcd (Debian's /usr/bin/etcd) started here on free loopback
 * ports with a temporary data dir: KV, txn, CAS, leases, keep-alive, expiry, watches (order,
 * resume across an etcd restart, compaction reset), locks, endpoint failover. Prints measured
 * figures. Exit 77 (ctest SKIP) when etcd is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cp_etcd.h"
#include "cp_etcd_json.h"
#include "cp_keys.h"
#include "sb_time.h"

#define ETCD_BIN "/usr/bin/etcd"

static char tmpdir[256];
static char datadir[300];
static int cport, pport;
static pid_t etcd_pid = -1;
static char endpoint[64];
static struct cp_etcd *E;

/* ---- etcd process ---- */

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &l) != 0) {
        if (s >= 0)
            close(s);
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

static bool healthy(int port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", port);
    CURL *h = curl_easy_init();
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 500L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    fclose(f);
    return rc == CURLE_OK && code == 200 && strstr(buf, "\"true\"") != NULL;
}

static pid_t etcd_start(void)
{
    char curl_[64], purl[64], cluster[96], log[320];
    snprintf(curl_, sizeof(curl_), "http://127.0.0.1:%d", cport);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof(cluster), "s1=%s", purl);
    snprintf(log, sizeof(log), "%s/etcd.log", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(ETCD_BIN, ETCD_BIN, "--name", "s1", "--data-dir", datadir, "--listen-client-urls",
              curl_, "--advertise-client-urls", curl_, "--listen-peer-urls", purl,
              "--initial-advertise-peer-urls", purl, "--initial-cluster", cluster,
              "--unsafe-no-fsync", "--heartbeat-interval=10", "--election-timeout=100",
              "--experimental-watch-progress-notify-interval=1s", (char *)NULL);
        _exit(127);
    }
    int64_t t0 = sb_time_mono_ms();
    while (sb_time_mono_ms() - t0 < 10000) {
        if (healthy(cport))
            return pid;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -1;
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void etcd_kill(void)
{
    if (etcd_pid > 0) {
        kill(etcd_pid, SIGKILL);
        waitpid(etcd_pid, NULL, 0);
        etcd_pid = -1;
    }
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sb-etcd-test-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(datadir, sizeof(datadir), "%s/d", tmpdir);
    cport = free_port();
    pport = free_port();
    while (pport == cport)
        pport = free_port();
    etcd_pid = etcd_start();
    if (etcd_pid < 0) {
        fprintf(stderr, "etcd did not become healthy (log: %s/etcd.log)\n", tmpdir);
        return -1;
    }
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", cport);
    struct cp_etcd_config cfg = {.endpoints = endpoint, .watch_idle_ms = 3000};
    if (cp_etcd_create(&cfg, &E) != SB_OK || cp_etcd_start(E) != SB_OK)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cp_etcd_destroy(E);
    etcd_kill();
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}

/* ---- synchronous helpers over the asynchronous API ---- */

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    enum sb_err st;
    long code;
    char *body;
    size_t len;
    int64_t id, ttl;
    char *key;
    int64_t crev;
    int64_t at_ms;
};

static void w_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void w_fini(struct waiter *w)
{
    free(w->body);
    free(w->key);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void w_signal(struct waiter *w)
{
    w->at_ms = sb_time_mono_ms();
    w->done++;
    pthread_cond_broadcast(&w->cv);
}

/* Waits until done >= n or timeout; returns whether it happened. */
static bool w_wait(struct waiter *w, int n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->mu);
    while (w->done < n)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
            break;
    bool ok = w->done >= n;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

static void on_call(void *ud, enum sb_err st, long code, const char *body, size_t len)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    w->code = code;
    free(w->body);
    w->body = strndup(body, len);
    w->len = len;
    w_signal(w);
    pthread_mutex_unlock(&w->mu);
}

static enum sb_err call_on(struct cp_etcd *e, const char *path, char *body, unsigned flags,
                           int timeout_ms, struct waiter *w)
{
    w_init(w);
    assert_non_null(body);
    assert_int_equal(cp_etcd_call(e, path, body, timeout_ms, flags, on_call, w), SB_OK);
    free(body);
    assert_true(w_wait(w, 1, timeout_ms + 5000));
    return w->st;
}

static enum sb_err call(const char *path, char *body, unsigned flags, struct waiter *w)
{
    return call_on(E, path, body, flags, 3000, w);
}

static int64_t put(const char *k, const char *v, int64_t lease)
{
    struct cp_etcd_put_req p = {
        .key = cp_etcd_json_str(k), .value = cp_etcd_json_str(v), .lease = lease};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_put(&p, &b), SB_OK);
    struct waiter w;
    assert_int_equal(call(CP_ETCD_PATH_PUT, b, CP_ETCD_RETRY, &w), SB_OK);
    int64_t rev = 0;
    assert_int_equal(cp_etcd_json_parse_revision(w.body, w.len, &rev), SB_OK);
    w_fini(&w);
    return rev;
}

/* Ranges one key: returns its kv count (0/1); *kv filled when found (caller fini). */
static size_t get(const char *k, struct cp_etcd_kv *kv, int64_t *rev)
{
    struct cp_etcd_range_req r = {.key = cp_etcd_json_str(k)};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_range(&r, &b), SB_OK);
    struct waiter w;
    assert_int_equal(call(CP_ETCD_PATH_RANGE, b, CP_ETCD_RETRY, &w), SB_OK);
    struct cp_etcd_result res;
    assert_int_equal(cp_etcd_json_parse_result(w.body, w.len, &res), SB_OK);
    w_fini(&w);
    size_t n = res.n_kvs;
    if (rev)
        *rev = res.revision;
    if (n == 1 && kv != NULL) {
        *kv = res.kvs[0];
        memset(&res.kvs[0], 0, sizeof(res.kvs[0]));
    }
    cp_etcd_json_result_fini(&res);
    return n;
}

static void on_lease(void *ud, enum sb_err st, int64_t id, int64_t ttl)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    w->id = id;
    w->ttl = ttl;
    w_signal(w);
    pthread_mutex_unlock(&w->mu);
}

static void on_done(void *ud, enum sb_err st)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    w_signal(w);
    pthread_mutex_unlock(&w->mu);
}

static int64_t grant(int64_t ttl)
{
    struct waiter w;
    w_init(&w);
    assert_int_equal(cp_etcd_lease_grant(E, ttl, 3000, on_lease, &w), SB_OK);
    assert_true(w_wait(&w, 1, 5000));
    assert_int_equal(w.st, SB_OK);
    assert_int_equal(w.ttl, ttl);
    int64_t id = w.id;
    w_fini(&w);
    return id;
}

static enum sb_err lease_revoke(int64_t id)
{
    struct waiter w;
    w_init(&w);
    assert_int_equal(cp_etcd_lease_revoke(E, id, 3000, on_done, &w), SB_OK);
    assert_true(w_wait(&w, 1, 5000));
    enum sb_err st = w.st;
    w_fini(&w);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- tests ---- */

static void test_live_put_range_delete(void **state)
{
    (void)state;
    int64_t r1 = put("t/kv/a", "one", 0);
    struct cp_etcd_kv kv;
    assert_int_equal(get("t/kv/a", &kv, NULL), 1);
    assert_string_equal(kv.value, "one");
    assert_int_equal(kv.mod_revision, r1);
    assert_int_equal(kv.create_revision, r1);
    cp_etcd_json_kv_fini(&kv);
    put("t/kv/b", "two", 0);
    put("t/kv/b0", "outside", 0);
    char end[16];
    size_t en;
    assert_int_equal(cp_keys_range_end("t/kv/", 5, end, sizeof(end), &en), SB_OK);
    struct cp_etcd_range_req rr = {.key = cp_etcd_json_str("t/kv/"), .range_end = {end, en}};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_range(&rr, &b), SB_OK);
    struct waiter w;
    assert_int_equal(call(CP_ETCD_PATH_RANGE, b, CP_ETCD_RETRY, &w), SB_OK);
    struct cp_etcd_result res;
    assert_int_equal(cp_etcd_json_parse_result(w.body, w.len, &res), SB_OK);
    assert_int_equal(res.n_kvs, 3);
    assert_string_equal(res.kvs[0].key, "t/kv/a");
    assert_string_equal(res.kvs[2].key, "t/kv/b0");
    cp_etcd_json_result_fini(&res);
    w_fini(&w);
    struct cp_etcd_delete_req d = {.key = cp_etcd_json_str("t/kv/"), .range_end = {end, en}};
    assert_int_equal(cp_etcd_json_delete(&d, &b), SB_OK);
    assert_int_equal(call(CP_ETCD_PATH_DELETE, b, CP_ETCD_RETRY, &w), SB_OK);
    assert_int_equal(cp_etcd_json_parse_result(w.body, w.len, &res), SB_OK);
    assert_int_equal(res.count, 3);
    cp_etcd_json_result_fini(&res);
    w_fini(&w);
    assert_int_equal(get("t/kv/a", NULL, NULL), 0);
    /* A 4xx answer is SB_EPROTO with etcd's error object. */
    assert_int_equal(call(CP_ETCD_PATH_PUT, strdup("{bad"), 0, &w), SB_EPROTO);
    assert_int_equal(w.code, 400);
    struct cp_etcd_error er;
    assert_int_equal(cp_etcd_json_parse_error(w.body, w.len, &er), SB_OK);
    assert_int_equal(er.grpc_code, 3);
    cp_etcd_json_error_fini(&er);
    w_fini(&w);
}

static enum sb_err txn(const struct cp_etcd_txn_req *t, struct cp_etcd_txn_result *out)
{
    char *b = NULL;
    assert_int_equal(cp_etcd_json_txn(t, &b), SB_OK);
    struct waiter w;
    enum sb_err st = call(CP_ETCD_PATH_TXN, b, CP_ETCD_RETRY, &w);
    if (st == SB_OK)
        assert_int_equal(cp_etcd_json_parse_txn(w.body, w.len, out), SB_OK);
    w_fini(&w);
    return st;
}

static void test_live_txn_create_if_absent_win_and_lose(void **state)
{
    (void)state;
    struct cp_etcd_cmp c = {.key = cp_etcd_json_str("t/txn/room"),
                            .target = CP_ETCD_CMP_CREATE,
                            .result = CP_ETCD_CMP_EQUAL,
                            .num = 0};
    struct cp_etcd_op s = {
        .type = CP_ETCD_OP_PUT,
        .u.put = {.key = cp_etcd_json_str("t/txn/room"), .value = cp_etcd_json_str("A")}};
    struct cp_etcd_op f = {.type = CP_ETCD_OP_RANGE,
                           .u.range = {.key = cp_etcd_json_str("t/txn/room")}};
    struct cp_etcd_txn_req t = {&c, 1, &s, 1, &f, 1};
    struct cp_etcd_txn_result r;
    assert_int_equal(txn(&t, &r), SB_OK);
    assert_true(r.succeeded);
    assert_int_equal(r.n_ops, 1);
    assert_int_equal(r.ops[0].type, CP_ETCD_OP_PUT);
    cp_etcd_json_txn_result_fini(&r);
    s.u.put.value = cp_etcd_json_str("B");
    assert_int_equal(txn(&t, &r), SB_OK);
    assert_false(r.succeeded);
    assert_int_equal(r.ops[0].type, CP_ETCD_OP_RANGE);
    assert_string_equal(r.ops[0].r.kvs[0].value, "A");
    cp_etcd_json_txn_result_fini(&r);
}

static void test_live_cas_on_mod_revision(void **state)
{
    (void)state;
    int64_t rev = put("t/cas/seq", "1", 0);
    put("t/cas/seq", "2", 0); /* someone else wrote meanwhile */
    struct cp_etcd_cmp c = {.key = cp_etcd_json_str("t/cas/seq"),
                            .target = CP_ETCD_CMP_MOD,
                            .result = CP_ETCD_CMP_EQUAL,
                            .num = rev};
    struct cp_etcd_op s = {
        .type = CP_ETCD_OP_PUT,
        .u.put = {.key = cp_etcd_json_str("t/cas/seq"), .value = cp_etcd_json_str("X")}};
    struct cp_etcd_txn_req t = {&c, 1, &s, 1, NULL, 0};
    struct cp_etcd_txn_result r;
    assert_int_equal(txn(&t, &r), SB_OK);
    assert_false(r.succeeded);
    cp_etcd_json_txn_result_fini(&r);
    struct cp_etcd_kv kv;
    assert_int_equal(get("t/cas/seq", &kv, NULL), 1);
    assert_string_equal(kv.value, "2");
    c.num = kv.mod_revision;
    cp_etcd_json_kv_fini(&kv);
    assert_int_equal(txn(&t, &r), SB_OK);
    assert_true(r.succeeded);
    cp_etcd_json_txn_result_fini(&r);
    assert_int_equal(get("t/cas/seq", &kv, NULL), 1);
    assert_string_equal(kv.value, "X");
    cp_etcd_json_kv_fini(&kv);
}

static void test_live_lease_attach_and_revoke(void **state)
{
    (void)state;
    int64_t id = grant(10);
    put("t/lease/conn", "x", id);
    struct cp_etcd_kv kv;
    assert_int_equal(get("t/lease/conn", &kv, NULL), 1);
    assert_true(kv.lease == id);
    cp_etcd_json_kv_fini(&kv);
    assert_int_equal(lease_revoke(id), SB_OK);
    assert_int_equal(get("t/lease/conn", NULL, NULL), 0);
    assert_int_equal(lease_revoke(id), SB_ENOTFOUND);
}

static void on_lost(void *ud, int64_t id)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->id = id;
    w_signal(w);
    pthread_mutex_unlock(&w->mu);
}

static void on_closed(void *ud)
{
    on_done(ud, SB_OK);
}

static void test_live_keepalive_and_expiry(void **state)
{
    (void)state;
    int64_t kept = grant(2), left = grant(2);
    put("t/ka/kept", "x", kept);
    put("t/ka/left", "x", left);
    int64_t t0 = sb_time_mono_ms();
    struct waiter lost, closed;
    w_init(&lost);
    w_init(&closed);
    struct cp_etcd_keepalive *k;
    assert_int_equal(cp_etcd_keepalive_start(E, kept, 2, on_lost, &lost, &k), SB_OK);
    /* The unkept lease expires at TTL + up to ~0.5 s. */
    int64_t gone_at = 0;
    while (sb_time_mono_ms() - t0 < 4000) {
        if (gone_at == 0 && get("t/ka/left", NULL, NULL) == 0)
            gone_at = sb_time_mono_ms();
        usleep(50000);
    }
    assert_true(gone_at > 0);
    printf("measured: lease TTL 2 s expiry deleted its key after %" PRId64 " ms\n", gone_at - t0);
    assert_true(gone_at - t0 >= 1900 && gone_at - t0 <= 3500);
    assert_int_equal(get("t/ka/kept", NULL, NULL), 1); /* 4 s > TTL: kept alive */
    assert_true(cp_etcd_keepalive_last_ok_ms(k) > t0);
    assert_int_equal(lost.done, 0);
    /* Revoked under the keeper: the next refresh reports the loss. */
    assert_int_equal(lease_revoke(kept), SB_OK);
    assert_true(w_wait(&lost, 1, 3000));
    assert_true(lost.id == kept);
    cp_etcd_keepalive_close(k, on_closed, &closed);
    assert_true(w_wait(&closed, 1, 3000));
    w_fini(&lost);
    w_fini(&closed);
}

/* Collects watch events as "P key=value@rev" / "D key@rev". */
struct watch_log {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **lines;
    size_t n, cap;
    int resets;
    int64_t compact_rev;
    int64_t last_event_ns;
};

static void wl_init(struct watch_log *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
}

static void wl_fini(struct watch_log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->lines[i]);
    free(l->lines);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
}

static void on_events(void *ud, const struct cp_etcd_event *ev, size_t n)
{
    struct watch_log *l = ud;
    pthread_mutex_lock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 64;
            l->lines = realloc(l->lines, l->cap * sizeof(*l->lines));
            assert_non_null(l->lines);
        }
        char *s = NULL;
        if (ev[i].type == CP_ETCD_EVENT_PUT)
            assert_true(asprintf(&s, "P %s=%s", ev[i].kv.key, ev[i].kv.value) > 0);
        else
            assert_true(asprintf(&s, "D %s", ev[i].kv.key) > 0);
        l->lines[l->n++] = s;
    }
    l->last_event_ns = sb_time_mono_ns();
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static void on_reset(void *ud, int64_t compact_rev)
{
    struct watch_log *l = ud;
    pthread_mutex_lock(&l->mu);
    l->resets++;
    l->compact_rev = compact_rev;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static bool wl_wait(struct watch_log *l, size_t n, int resets, int timeout_ms)
{
    int64_t end = sb_time_mono_ms() + timeout_ms;
    pthread_mutex_lock(&l->mu);
    while ((l->n < n || l->resets < resets) && sb_time_mono_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    bool ok = l->n >= n && l->resets >= resets;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static void close_watch(struct cp_etcd_watch *w)
{
    struct waiter c;
    w_init(&c);
    cp_etcd_watch_close(w, on_closed, &c);
    assert_true(w_wait(&c, 1, 3000));
    w_fini(&c);
}

static void test_live_watch_put_delete_in_order(void **state)
{
    (void)state;
    struct watch_log l;
    wl_init(&l);
    struct cp_etcd_watch *w;
    assert_int_equal(cp_etcd_watch_start(E, "t/w1/", "t/w10", 0, on_events, on_reset, &l, &w),
                     SB_OK);
    usleep(200000); /* from now: let the stream be created */
    put("t/w1/a", "1", 0);
    put("t/w1/b", "2", 0);
    put("t/w10", "outside", 0);
    struct cp_etcd_delete_req d = {.key = cp_etcd_json_str("t/w1/a")};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_delete(&d, &b), SB_OK);
    struct waiter cw;
    assert_int_equal(call(CP_ETCD_PATH_DELETE, b, CP_ETCD_RETRY, &cw), SB_OK);
    w_fini(&cw);
    assert_true(wl_wait(&l, 3, 0, 3000));
    usleep(100000);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.lines[0], "P t/w1/a=1");
    assert_string_equal(l.lines[1], "P t/w1/b=2");
    assert_string_equal(l.lines[2], "D t/w1/a");
    /* Watch latency: put -> event, median of 50. */
    int64_t lat[50];
    for (int i = 0; i < 50; i++) {
        size_t before = l.n;
        int64_t t0 = sb_time_mono_ns();
        put("t/w1/lat", "x", 0);
        assert_true(wl_wait(&l, before + 1, 0, 3000));
        lat[i] = l.last_event_ns - t0;
    }
    qsort(lat, 50, sizeof(lat[0]), cmp_i64);
    printf("measured: put -> watch event (incl. put round trip) median %.2f ms, max %.2f ms\n",
           lat[25] / 1e6, lat[49] / 1e6);
    close_watch(w);
    wl_fini(&l);
}

static void test_live_watch_resumes_across_etcd_restart(void **state)
{
    (void)state;
    struct watch_log l;
    wl_init(&l);
    struct cp_etcd_watch *w;
    int64_t rev0 = put("t/w2/start", "s", 0);
    assert_int_equal(
        cp_etcd_watch_start(E, "t/w2/", "t/w20", rev0 + 1, on_events, on_reset, &l, &w), SB_OK);
    char k[32], v[8];
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof(k), "t/w2/k%d", i);
        snprintf(v, sizeof(v), "%d", i);
        put(k, v, 0);
    }
    assert_true(wl_wait(&l, 5, 0, 3000));
    etcd_kill();
    /* While etcd is down: a call fails as unavailable within its deadline. */
    struct waiter dw;
    struct cp_etcd_range_req rr = {.key = cp_etcd_json_str("t/w2/k0")};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_range(&rr, &b), SB_OK);
    int64_t t0 = sb_time_mono_ms();
    enum sb_err st = call_on(E, CP_ETCD_PATH_RANGE, b, CP_ETCD_RETRY, 800, &dw);
    assert_true(st == SB_EUNAVAIL || st == SB_ETIMEDOUT);
    assert_true(sb_time_mono_ms() - t0 < 1500);
    w_fini(&dw);
    int64_t down = sb_time_mono_ms();
    etcd_pid = etcd_start();
    assert_true(etcd_pid > 0);
    printf("measured: etcd restart on the same data dir healthy after %" PRId64 " ms\n",
           sb_time_mono_ms() - down);
    for (int i = 5; i < 10; i++) {
        snprintf(k, sizeof(k), "t/w2/k%d", i);
        snprintf(v, sizeof(v), "%d", i);
        put(k, v, 0);
    }
    int64_t t1 = sb_time_mono_ms();
    assert_true(wl_wait(&l, 10, 0, 5000));
    printf("measured: watch caught up after the restart %" PRId64 " ms after the last put\n",
           sb_time_mono_ms() - t1);
    usleep(300000);
    assert_int_equal(l.n, 10); /* no duplicate */
    for (int i = 0; i < 10; i++) {
        char want[32];
        snprintf(want, sizeof(want), "P t/w2/k%d=%d", i, i);
        assert_string_equal(l.lines[i], want); /* no gap, in order */
    }
    close_watch(w);
    wl_fini(&l);
}

static void test_live_compaction_resets_watch(void **state)
{
    (void)state;
    int64_t first = put("t/w3/a", "1", 0);
    put("t/w3/a", "2", 0);
    int64_t last = put("t/w3/b", "3", 0);
    char *b = NULL;
    assert_int_equal(cp_etcd_json_compact(last, &b), SB_OK);
    struct waiter cw;
    assert_int_equal(call(CP_ETCD_PATH_COMPACT, b, CP_ETCD_RETRY, &cw), SB_OK);
    w_fini(&cw);
    struct watch_log l;
    wl_init(&l);
    struct cp_etcd_watch *w;
    assert_int_equal(cp_etcd_watch_start(E, "t/w3/", "t/w30", first, on_events, on_reset, &l, &w),
                     SB_OK);
    assert_true(wl_wait(&l, 0, 1, 3000));
    assert_int_equal(l.compact_rev, last);
    assert_int_equal(l.n, 0);
    /* The owner re-lists (header revision R) and restarts from R + 1. */
    int64_t R = 0;
    assert_int_equal(get("t/w3/b", NULL, &R), 1);
    cp_etcd_watch_restart(w, R + 1);
    usleep(100000);
    put("t/w3/c", "4", 0);
    assert_true(wl_wait(&l, 1, 1, 3000));
    assert_string_equal(l.lines[0], "P t/w3/c=4");
    assert_int_equal(l.resets, 1);
    close_watch(w);
    wl_fini(&l);
}

static void on_lock(void *ud, enum sb_err st, const char *key, size_t key_len, int64_t crev)
{
    struct waiter *w = ud;
    pthread_mutex_lock(&w->mu);
    w->st = st;
    free(w->key);
    w->key = key != NULL ? strndup(key, key_len) : NULL;
    w->crev = crev;
    w_signal(w);
    pthread_mutex_unlock(&w->mu);
}

static void test_live_lock_handover_on_revoke(void **state)
{
    (void)state;
    char name[CP_KEYS_MAX];
    assert_int_equal(cp_keys_lock_room("r-lock", name, sizeof(name)), SB_OK);
    int64_t l1 = grant(5), l2 = grant(5);
    struct waiter a, b2, c;
    w_init(&a);
    w_init(&b2);
    w_init(&c);
    assert_int_equal(cp_etcd_lock(E, name, l1, 3000, on_lock, &a, NULL), SB_OK);
    assert_true(w_wait(&a, 1, 5000));
    assert_int_equal(a.st, SB_OK);
    assert_non_null(strstr(a.key, "sb/locks/room/r-lock/"));
    uint64_t id2 = 0;
    assert_int_equal(cp_etcd_lock(E, name, l2, 0, on_lock, &b2, &id2), SB_OK);
    /* Meanwhile other requests flow (the waiter lives on the multi handle). */
    int64_t t0 = sb_time_mono_ms();
    put("t/lock/other", "x", 0);
    assert_true(sb_time_mono_ms() - t0 < 1000);
    assert_false(w_wait(&b2, 1, 300));
    int64_t t1 = sb_time_mono_ms();
    assert_int_equal(lease_revoke(l1), SB_OK);
    assert_true(w_wait(&b2, 1, 5000));
    printf("measured: lock handed to the waiter %" PRId64 " ms after the holder's revoke\n",
           b2.at_ms - t1);
    assert_int_equal(b2.st, SB_OK);
    assert_true(b2.crev > a.crev); /* fencing token rises */
    /* A third waiter is cancelled. */
    int64_t l3 = grant(5);
    uint64_t id3 = 0;
    assert_int_equal(cp_etcd_lock(E, name, l3, 0, on_lock, &c, &id3), SB_OK);
    usleep(100000);
    cp_etcd_cancel(E, id3);
    assert_true(w_wait(&c, 1, 3000));
    assert_int_equal(c.st, SB_EAGAIN);
    struct waiter u;
    w_init(&u);
    assert_int_equal(cp_etcd_unlock(E, b2.key, strlen(b2.key), 3000, on_done, &u), SB_OK);
    assert_true(w_wait(&u, 1, 5000));
    assert_int_equal(u.st, SB_OK);
    w_fini(&u);
    lease_revoke(l2);
    lease_revoke(l3);
    w_fini(&a);
    w_fini(&b2);
    w_fini(&c);
}

static void test_live_endpoint_failover(void **state)
{
    (void)state;
    int dead = free_port();
    char eps[160];
    snprintf(eps, sizeof(eps), "http://127.0.0.1:%d, %s/", dead, endpoint);
    struct cp_etcd *f;
    struct cp_etcd_config cfg = {.endpoints = eps};
    assert_int_equal(cp_etcd_create(&cfg, &f), SB_OK);
    assert_int_equal(cp_etcd_endpoint_count(f), 2);
    assert_int_equal(cp_etcd_start(f), SB_OK);
    struct cp_etcd_put_req p = {.key = cp_etcd_json_str("t/fo/a"), .value = cp_etcd_json_str("v")};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_put(&p, &b), SB_OK);
    struct waiter w;
    /* Not flagged RETRY: a refused connection never reached etcd, so it is retried anyway. */
    assert_int_equal(call_on(f, CP_ETCD_PATH_PUT, b, 0, 3000, &w), SB_OK);
    int64_t rev = 0;
    assert_int_equal(cp_etcd_json_parse_revision(w.body, w.len, &rev), SB_OK);
    w_fini(&w);
    assert_int_equal(cp_etcd_preferred_endpoint(f), 1);
    struct watch_log l;
    wl_init(&l);
    struct cp_etcd_watch *wt;
    assert_int_equal(cp_etcd_watch_start(f, "t/fo/", "t/fo0", rev, on_events, on_reset, &l, &wt),
                     SB_OK);
    assert_true(wl_wait(&l, 1, 0, 3000));
    assert_string_equal(l.lines[0], "P t/fo/a=v");
    close_watch(wt);
    wl_fini(&l);
    /* Only dead endpoints: unavailable at the deadline. */
    struct cp_etcd *g;
    char only[64];
    snprintf(only, sizeof(only), "127.0.0.1:%d", dead);
    struct cp_etcd_config gc = {.endpoints = only};
    assert_int_equal(cp_etcd_create(&gc, &g), SB_OK);
    assert_int_equal(cp_etcd_start(g), SB_OK);
    assert_int_equal(cp_etcd_json_put(&p, &b), SB_OK);
    assert_int_equal(call_on(g, CP_ETCD_PATH_PUT, b, CP_ETCD_RETRY, 500, &w), SB_EUNAVAIL);
    assert_int_equal(w.code, 0);
    w_fini(&w);
    /* Stop fails what is pending; later calls are refused. */
    uint64_t id = 0;
    struct waiter pend;
    w_init(&pend);
    assert_int_equal(cp_etcd_call_id(g, "/v3/kv/put", "{}", 0, CP_ETCD_RETRY, on_call, &pend, &id),
                     SB_OK);
    cp_etcd_stop(g);
    assert_true(w_wait(&pend, 1, 100));
    assert_int_equal(pend.st, SB_EUNAVAIL);
    w_fini(&pend);
    assert_int_equal(cp_etcd_call(g, "/v3/kv/put", "{}", 0, 0, on_call, &pend), SB_EUNAVAIL);
    cp_etcd_destroy(g);
    cp_etcd_destroy(f);
    struct cp_etcd *bad;
    struct cp_etcd_config bc = {.endpoints = "http://a:1,,http://b:2"};
    assert_int_equal(cp_etcd_create(&bc, &bad), SB_EINVAL);
    bc.endpoints = "";
    assert_int_equal(cp_etcd_create(&bc, &bad), SB_EINVAL);
    bc.endpoints = "unix://x";
    assert_int_equal(cp_etcd_create(&bc, &bad), SB_EINVAL);
}

static void test_live_put_latency_and_parallel_throughput(void **state)
{
    (void)state;
    int64_t lat[200];
    for (int i = 0; i < 200; i++) {
        int64_t t0 = sb_time_mono_ns();
        put("t/perf/k", "v", 0);
        lat[i] = sb_time_mono_ns() - t0;
    }
    qsort(lat, 200, sizeof(lat[0]), cmp_i64);
    printf("measured: sequential put latency p50 %.2f ms p99 %.2f ms\n", lat[100] / 1e6,
           lat[198] / 1e6);
    /* 500 puts, all submitted at once from this thread (cross-thread submission path). */
    struct waiter w;
    w_init(&w);
    struct cp_etcd_put_req p = {.key = cp_etcd_json_str("t/perf/p"),
                                .value = cp_etcd_json_str("v")};
    char *b = NULL;
    assert_int_equal(cp_etcd_json_put(&p, &b), SB_OK);
    int64_t t0 = sb_time_mono_ns();
    for (int i = 0; i < 500; i++)
        assert_int_equal(cp_etcd_call(E, CP_ETCD_PATH_PUT, b, 10000, 0, on_call, &w), SB_OK);
    free(b);
    assert_true(w_wait(&w, 500, 20000));
    double s = (sb_time_mono_ns() - t0) / 1e9;
    printf("measured: 500 puts submitted at once: %.0f puts/s\n", 500 / s);
    assert_int_equal(w.st, SB_OK);
    w_fini(&w);
}

int main(void)
{
    if (access(ETCD_BIN, X_OK) != 0) {
        printf("SKIP: %s not installed (Debian package etcd-server)\n", ETCD_BIN);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_put_range_delete),
        cmocka_unit_test(test_live_txn_create_if_absent_win_and_lose),
        cmocka_unit_test(test_live_cas_on_mod_revision),
        cmocka_unit_test(test_live_lease_attach_and_revoke),
        cmocka_unit_test(test_live_keepalive_and_expiry),
        cmocka_unit_test(test_live_watch_put_delete_in_order),
        cmocka_unit_test(test_live_compaction_resets_watch),
        cmocka_unit_test(test_live_lock_handover_on_revoke),
        cmocka_unit_test(test_live_endpoint_failover),
        cmocka_unit_test(test_live_put_latency_and_parallel_throughput),
        cmocka_unit_test(test_live_watch_resumes_across_etcd_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
