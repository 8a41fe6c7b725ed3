/* Development-mode identity. Everything here is deliberately strict: a missing or invalid
 * user id is refused rather than defaulted. */
#include "dp_auth.h"

#include <stdio.h>
#include <string.h>

#include "sb_log.h"

bool dp_auth_check(bool dev_mode, const char *user_id_arg, char user[SB_IDENT_MAX + 1], char *why,
                   size_t cap)
{
    if (!dev_mode) {
        snprintf(why, cap,
                 "authentication required: tokens are not supported yet and this node "
                 "is not in development mode");
        return false;
    }
    if (user_id_arg == NULL || user_id_arg[0] == '\0') {
        snprintf(why, cap, "development mode: pass ?user_id=<id>");
        return false;
    }
    if (!sb_ident_is_valid(user_id_arg)) {
        snprintf(why, cap, "invalid user_id: 1 to %d characters of A-Z a-z 0-9 . _ : @ -",
                 SB_IDENT_MAX);
        return false;
    }
    strcpy(user, user_id_arg);
    return true;
}

void dp_auth_log_mode(bool dev_mode)
{
    if (dev_mode) {
        SB_LOG_WARN("dp_auth",
                    "DEVELOPMENT MODE: clients are NOT authenticated; anyone reaching this port "
                    "can act as any user with ?user_id=. Never run this in production.",
                    "dev_mode=true");
    } else {
        SB_LOG_WARN("dp_auth",
                    "no authentication method is configured yet (tokens come later): every client "
                    "is refused with unauthorized; use --dev-mode for development",
                    "dev_mode=false");
    }
}
