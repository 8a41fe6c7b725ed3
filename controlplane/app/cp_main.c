/* switchboard-controlplane: options, signals, run, exit code. Everything else is in the cp
 * library (cp_server.c starts here). */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <grpc/grpc.h>

#include "cp_server.h"
#include "sb_addr.h"
#include "sb_config.h"
#include "sb_ident.h"
#include "sb_log.h"
#include "sb_secret.h"

static char *listen_addr;
static char *store_kind;
static char *log_level;
static int64_t max_history;
static int64_t typing_timeout;
static int64_t presence_grace;
static int64_t heartbeat_interval;
static int auto_create_rooms;
static int64_t shutdown_grace;
static int64_t node_queue_bytes;
static char *etcd_endpoints;
static char *cp_id;
static char *advertise;
static int64_t lease_ttl;
static int64_t max_conns_per_user, max_rooms_per_user, max_channels_per_user, max_message_size;
static int64_t max_msgs_per_sec, rate_burst, presence_timeout, max_typing_users;
static int64_t retention_ms, retention_interval, session_ttl, watch_queue_bytes;
static int auto_create_channels;
static char *api_key_file, *cluster_secret_file;
static char *authorizer;
static int64_t authorizer_timeout;
static int allow_insecure;

static const struct sb_config_opt opts[] = {
    {"listen", SB_CONFIG_STRING, &listen_addr, "127.0.0.1:50051",
     "HOST:PORT for the gRPC API and NodeLink", 0, 0, 0},
    {"store", SB_CONFIG_STRING, &store_kind, "memory", "state store: memory or etcd", 0, 0, 0},
    {"etcd_endpoints", SB_CONFIG_STRING, &etcd_endpoints, "http://127.0.0.1:2379",
     "etcd client URLs, comma separated (a YAML list in the file) (--store etcd)", 0, 0,
     SB_CONFIG_LIST},
    {"id", SB_CONFIG_STRING, &cp_id, "", "replica id (default cp-<random>)", 0, 0, 0},
    {"advertise", SB_CONFIG_STRING, &advertise, "",
     "HOST:PORT other replicas dial for Peer calls (default: --listen)", 0, 0, 0},
    {"lease_ttl_ms", SB_CONFIG_INT, &lease_ttl, "10000",
     "etcd lease TTL of this replica and of the data-plane nodes it keeps", 2000, 600000, 0},
    {"max_history_messages", SB_CONFIG_INT, &max_history, "1000",
     "messages kept per room (0: no history)", 0, 1000000, 0},
    {"typing_timeout_ms", SB_CONFIG_INT, &typing_timeout, "3000",
     "typing:true expires after this long", 100, 600000, 0},
    {"presence_grace_ms", SB_CONFIG_INT, &presence_grace, "5000",
     "delay before a user with no connection left is announced offline", 0, 3600000, 0},
    {"heartbeat_interval_ms", SB_CONFIG_INT, &heartbeat_interval, "5000",
     "NodeLink heartbeat interval asked of data planes", 100, 600000, 0},
    {"auto_create_rooms", SB_CONFIG_BOOL, &auto_create_rooms, "false",
     "a client join of a missing room creates it (public, the user as owner)", 0, 0, 0},
    {"shutdown_grace_ms", SB_CONFIG_INT, &shutdown_grace, "5000",
     "on SIGINT/SIGTERM, running calls get this long before they are cancelled", 0, 600000, 0},
    {"node_queue_bytes", SB_CONFIG_INT, &node_queue_bytes, "67108864",
     "bytes queued per data-plane stream before it is cut off", 65536, 4294967296LL, 0},
    {"max_connections_per_user", SB_CONFIG_INT, &max_conns_per_user, "5",
     "open connections per user (0: unlimited)", 0, 1000000, 0},
    {"max_rooms_per_user", SB_CONFIG_INT, &max_rooms_per_user, "50",
     "rooms a user may belong to (0: unlimited)", 0, 1000000, 0},
    {"max_channels_per_user", SB_CONFIG_INT, &max_channels_per_user, "100",
     "channels a user may subscribe to (0: unlimited)", 0, 1000000, 0},
    {"max_message_size", SB_CONFIG_INT, &max_message_size, "65536", "largest message data in bytes",
     16, 16777216, 0},
    {"max_messages_per_second", SB_CONFIG_INT, &max_msgs_per_sec, "100",
     "messages per second per user, token bucket refill (0: no limit)", 0, 1000000, 0},
    {"rate_limit_burst", SB_CONFIG_INT, &rate_burst, "200",
     "token bucket size: messages a user may send at once", 1, 1000000, 0},
    {"presence_timeout_ms", SB_CONFIG_INT, &presence_timeout, "300000",
     "no activity for this long makes an online user away", 1000, 86400000, 0},
    {"max_typing_users", SB_CONFIG_INT, &max_typing_users, "10", "typing users reported per room",
     1, 1000, 0},
    {"message_retention_ms", SB_CONFIG_INT, &retention_ms, "2592000000",
     "history older than this is removed (0: kept until max_history_messages)", 0, 315360000000LL,
     0},
    {"retention_interval_ms", SB_CONFIG_INT, &retention_interval, "60000",
     "how often the retention cleaner runs", 100, 86400000, 0},
    {"auto_create_channels", SB_CONFIG_BOOL, &auto_create_channels, "false",
     "a client subscribe to a missing channel creates it", 0, 0, 0},
    {"session_ttl_ms", SB_CONFIG_INT, &session_ttl, "120000",
     "a client reconnecting with its session_id within this long resumes it", 0, 86400000, 0},
    {"watch_queue_bytes", SB_CONFIG_INT, &watch_queue_bytes, "4194304",
     "bytes queued per WatchEvents stream before the watcher is cut off", 4096, 1073741824, 0},
    {"log_level", SB_CONFIG_STRING, &log_level, "info", "debug, info, warn or error", 0, 0, 0},
    /* the backend's Authorizer (docs/security.md) */
    {"authorizer", SB_CONFIG_STRING, &authorizer, "",
     "HOST:PORT of the backend's switchboard.v1.Authorizer, asked when a client needs a grant "
     "its token does not carry (errors and deadlines deny)",
     0, 0, 0},
    {"authorizer_timeout", SB_CONFIG_INT, &authorizer_timeout, "2s",
     "deadline of each Authorizer call", 10, 60000, SB_CONFIG_DURATION},
    /* credentials on the gRPC port (docs/security.md) */
    {"api_key_file", SB_CONFIG_STRING, &api_key_file, "",
     "API keys for switchboard.v1.* (one a line, >= 16 bytes; re-read when it changes): calls "
     "must carry authorization: Bearer KEY",
     0, 0, 0},
    {"cluster_secret_file", SB_CONFIG_STRING, &cluster_secret_file, "",
     "cluster secret for NodeLink and Peer calls, the same file on every daemon (>= 32 bytes; "
     "the first line is sent, every line accepted; re-read when it changes)",
     0, 0, 0},
    {"allow_insecure", SB_CONFIG_BOOL, &allow_insecure, "false",
     "start even when --listen is beyond loopback without --api-key-file or "
     "--cluster-secret-file (a loud warning instead of a refusal)",
     0, 0, 0},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* Each comma-separated item is an http:// or https:// URL with something after the scheme. */
static bool endpoints_valid(const char *list)
{
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t scheme = strncmp(p, "http://", 7) == 0 ? 7 : strncmp(p, "https://", 8) == 0 ? 8 : 0;
        if (scheme == 0 || len <= scheme)
            return false;
        if (end == NULL)
            return true;
        p = end + 1;
    }
}

#define API_KEY_MIN        16
#define CLUSTER_SECRET_MIN 32

/* Loads one key file option ("" : none, *out NULL). 0, or 2 with a message (no key text). */
static int load_keys(const char *path, const char *option, size_t min, struct sb_secret **out)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return 0;
    char why[512];
    if (sb_secret_load(path, option, min, out, why, sizeof(why)) != SB_OK) {
        fprintf(stderr, "switchboard-controlplane: --%s: %s\n", option, why);
        return 2;
    }
    return 0;
}

/* The refusal to start an open port beyond loopback (API.md, "Credentials on the gRPC
 * port"): 0 to go on, 2 after naming every missing option. --allow-insecure turns each
 * refusal into a warning. */
static int check_exposure(const struct sb_secret *keys, const struct sb_secret *secret)
{
    if (sb_addr_is_local(listen_addr))
        return 0;
    int rc = 0;
    const char *what[2] = {NULL, NULL};
    if (keys == NULL)
        what[0] = "the public API";
    if (secret == NULL)
        what[1] = "NodeLink and Peer";
    static const char *const accept[2] = {"calls from anyone", "any data plane or replica"};
    static const char *const opt[2] = {"--api-key-file", "--cluster-secret-file"};
    for (int i = 0; i < 2; i++) {
        if (what[i] == NULL)
            continue;
        if (allow_insecure) {
            SB_LOG_WARN("cp",
                        "INSECURE (--allow-insecure): the port is beyond loopback and accepts "
                        "unauthenticated calls",
                        "surface=\"%s\" addr=%s missing=%s", what[i], listen_addr, opt[i]);
            continue;
        }
        fprintf(stderr,
                "switchboard-controlplane: refusing to start: %s on %s would accept %s; give "
                "%s FILE or --allow-insecure\n",
                what[i], listen_addr, accept[i], opt[i]);
        rc = 2;
    }
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    struct sb_secret *api_keys = NULL, *cluster_secret = NULL;
    enum sb_config_result cr = sb_config_load(
        opts, N_OPTS, "switchboard-controlplane",
        "Switchboard control plane: gRPC API, NodeLink, rooms, presence, history", argc, argv);
    if (cr == SB_CONFIG_EXIT_OK)
        goto out;
    if (cr == SB_CONFIG_EXIT_ERR) {
        rc = 2;
        goto out;
    }
    enum sb_log_level level;
    if (sb_log_parse_level(log_level, &level) != 0) {
        fprintf(stderr, "switchboard-controlplane: --log-level must be debug, info, warn or "
                        "error\n");
        rc = 2;
        goto out;
    }
    sb_log_set_level(level);
    bool etcd = strcmp(store_kind, "etcd") == 0;
    if (etcd && (etcd_endpoints == NULL || etcd_endpoints[0] == '\0')) {
        fprintf(stderr, "switchboard-controlplane: --store etcd needs --etcd-endpoints\n");
        rc = 2;
        goto out;
    }
    if (cp_id != NULL && cp_id[0] != '\0' && !sb_ident_is_valid(cp_id)) {
        fprintf(stderr, "switchboard-controlplane: --id must be a valid id ([A-Za-z0-9._:@-])\n");
        rc = 2;
        goto out;
    }
    if (strchr(listen_addr, ':') == NULL) {
        fprintf(stderr, "switchboard-controlplane: --listen must be HOST:PORT, got \"%s\"\n",
                listen_addr);
        rc = 2;
        goto out;
    }
    if (etcd && !endpoints_valid(etcd_endpoints)) {
        fprintf(stderr,
                "switchboard-controlplane: --etcd-endpoints must be http(s)://HOST:PORT "
                "URLs, comma separated, got \"%s\"\n",
                etcd_endpoints);
        rc = 2;
        goto out;
    }
    if (!etcd && strcmp(store_kind, "memory") != 0) {
        fprintf(stderr, "switchboard-controlplane: --store must be memory or etcd\n");
        rc = 2;
        goto out;
    }
    if ((rc = load_keys(api_key_file, "api_key_file", API_KEY_MIN, &api_keys)) != 0 ||
        (rc = load_keys(cluster_secret_file, "cluster_secret_file", CLUSTER_SECRET_MIN,
                        &cluster_secret)) != 0)
        goto out;
    if (sb_config_check_only()) {
        if ((rc = check_exposure(api_keys, cluster_secret)) == 0)
            sb_config_print(opts, N_OPTS, stdout);
        goto out;
    }
    if ((rc = check_exposure(api_keys, cluster_secret)) != 0)
        goto out;
    sb_config_log(opts, N_OPTS, "cp");

    /* Block the stop signals before gRPC starts its threads, so only sigwait sees them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    struct cp_server_opts so = {
        .listen = listen_addr,
        .settings = {.max_history_messages = (int)max_history,
                     .typing_timeout_ms = typing_timeout,
                     .presence_grace_ms = presence_grace,
                     .heartbeat_interval_ms = heartbeat_interval,
                     .auto_create_rooms = auto_create_rooms != 0,
                     .node_queue_limit = (size_t)node_queue_bytes,
                     .max_connections_per_user = (int)max_conns_per_user,
                     .max_rooms_per_user = (int)max_rooms_per_user,
                     .max_channels_per_user = (int)max_channels_per_user,
                     .max_message_size = max_message_size,
                     .max_messages_per_second = (int)max_msgs_per_sec,
                     .rate_limit_burst = (int)rate_burst,
                     .presence_timeout_ms = presence_timeout,
                     .max_typing_users = (int)max_typing_users,
                     .message_retention_ms = retention_ms,
                     .retention_interval_ms = retention_interval,
                     .auto_create_channels = auto_create_channels != 0,
                     .session_ttl_ms = session_ttl,
                     .watch_queue_limit = (size_t)watch_queue_bytes},
        .shutdown_grace_ms = shutdown_grace,
        .etcd_endpoints = etcd ? etcd_endpoints : NULL,
        .id = cp_id,
        .advertise = advertise,
        .lease_ttl_ms = lease_ttl,
        .api_keys = api_keys,
        .cluster_secret = cluster_secret,
        .authorizer = authorizer,
        .authorizer_timeout_ms = authorizer_timeout,
    };
    struct cp_server *srv;
    if (cp_server_start(&so, &srv) != SB_OK) {
        grpc_shutdown_blocking();
        rc = 1;
        goto out;
    }
    int sig = 0;
    sigwait(&set, &sig);
    SB_LOG_INFO("cp", "signal received", "signal=%d", sig);
    cp_server_stop(srv);
    grpc_shutdown_blocking();
out:
    sb_secret_destroy(api_keys);
    sb_secret_destroy(cluster_secret);
    sb_config_fini(opts, N_OPTS);
    return rc;
}
