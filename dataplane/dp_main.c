/* switchboard-dataplane: arguments, signals, run, exit code. Everything else is in libdp. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "dp_auth.h"
#include "dp_config.h"
#include "dp_keys.h"
#include "dp_mint.h"
#include "dp_server.h"
#include "sb_log.h"

static struct dp_server *volatile server;

static void on_signal(int sig)
{
    (void)sig;
    if (server != NULL)
        dp_server_stop(server);
}

int main(int argc, char **argv)
{
    struct dp_config cfg;
    enum sb_config_result r = dp_config_load(&cfg, argc, argv);
    if (r != SB_CONFIG_RUN) {
        dp_config_fini(&cfg);
        return r == SB_CONFIG_EXIT_OK ? 0 : 2;
    }
    if (cfg.mint_token != NULL && cfg.mint_token[0] != '\0') {
        int mrc = dp_mint_run(&cfg, stdout);
        dp_config_fini(&cfg);
        return mrc;
    }
    char why[512];
    if (!dp_auth_config_ok(&cfg, why, sizeof(why))) {
        fprintf(stderr, "switchboard-dataplane: %s\n", why);
        dp_config_fini(&cfg);
        return 2;
    }
    if (sb_config_check_only()) {
        dp_config_print(&cfg, stdout);
        dp_config_fini(&cfg);
        return 0;
    }
    dp_config_log(&cfg);
    dp_auth_log_mode(&cfg);
    struct dp_keys *keys = NULL;
    if (dp_keys_create(&cfg, &keys, why, sizeof(why)) != SB_OK) {
        fprintf(stderr, "switchboard-dataplane: %s\n", why);
        dp_config_fini(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct dp_server *srv = dp_server_create(&cfg, keys);
    if (srv == NULL) {
        dp_keys_destroy(keys);
        dp_config_fini(&cfg);
        return 1;
    }
    server = srv;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = dp_server_run(srv);
    server = NULL;
    dp_server_destroy(srv);
    dp_keys_destroy(keys);
    sb_log(SB_LOG_INFO, "dp", "stopped", NULL);
    dp_config_fini(&cfg);
    return rc;
}
