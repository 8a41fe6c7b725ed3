/* Who is this client? For now only development mode exists: the client names itself with
 * ?user_id=. Tokens (JWT) are not implemented yet; until they are, without --dev-mode every
 * client is refused. Pure. */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "sb_ident.h"

/* Decides on the credentials of one request: `user_id_arg` is the ?user_id= value or NULL.
 * On success copies the user id into `user` (SB_IDENT_MAX + 1 bytes) and returns true; else
 * writes a sentence for the `unauthorized` error into `why` (cap bytes) and returns false. */
bool dp_auth_check(bool dev_mode, const char *user_id_arg, char user[SB_IDENT_MAX + 1], char *why,
                   size_t cap);

/* Logs the loud start-up warning of development mode (or the note that all clients are
 * refused). Main thread. */
void dp_auth_log_mode(bool dev_mode);

#endif
