/* Claims tests (an entry without '*' must equal the id, one with '*' is a cp_glob pattern; the
 * first entry that matches decides) and the channel rules for client frames. Only the decision
 * lives here; the NodeLink handler and the publish flow feed it what they read. */
#include "cp_access.h"

#include <stdio.h>
#include <string.h>

#include "cp_glob.h"
#include "sb_ident.h"

static bool list_has(char *const *entries, size_t n, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *e = entries[i];
        if (e == NULL || e[0] == '\0')
            continue;
        if (strchr(e, '*') == NULL) {
            if (strcmp(e, id) == 0)
                return true;
        } else if (cp_glob_is_valid(e) && cp_glob_match(e, id)) {
            return true;
        }
    }
    return false;
}

bool cp_access_has_room(const struct cp_grants *g, const char *room_id)
{
    return g != NULL && list_has(g->rooms, g->n_rooms, room_id);
}

bool cp_access_has_channel(const struct cp_grants *g, const char *channel_id)
{
    return g != NULL && list_has(g->channels, g->n_channels, channel_id);
}

static bool has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

bool cp_access_needs_grant(const char *channel_id)
{
    return channel_id != NULL &&
           (has_prefix(channel_id, "private-") || has_prefix(channel_id, "presence-"));
}

bool cp_access_names_user(const char *channel_id, const char *user_id)
{
    const char *users = sb_ident_channel_users(channel_id);
    if (users == NULL)
        return true;
    if (user_id == NULL || user_id[0] == '\0')
        return false;
    size_t ul = strlen(user_id);
    for (const char *p = users;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == ul && memcmp(p, user_id, ul) == 0)
            return true;
        if (comma == NULL)
            return false;
        p = comma + 1;
    }
}

bool cp_access_subscribe(const struct cp_grants *g, const char *channel_id, const char *user_id,
                         bool token_grant, char *why, size_t cap)
{
    if (!cp_access_names_user(channel_id, user_id)) {
        snprintf(why, cap, "channel %s is for the users it names only", channel_id);
        return false;
    }
    if (cp_access_needs_grant(channel_id) && !token_grant &&
        !cp_access_has_channel(g, channel_id)) {
        snprintf(why, cap,
                 "channel %s needs a grant: the token's channels claim or a subscription token",
                 channel_id);
        return false;
    }
    return true;
}

bool cp_access_publish(const char *channel_id, const char *user_id, bool client_publish,
                       bool subscribed, char *why, size_t cap)
{
    if (!client_publish) {
        snprintf(why, cap, "channel %s does not take publishes from clients", channel_id);
        return false;
    }
    if (!cp_access_names_user(channel_id, user_id)) {
        snprintf(why, cap, "channel %s is for the users it names only", channel_id);
        return false;
    }
    if (cp_access_needs_grant(channel_id) && !subscribed) {
        snprintf(why, cap, "channel %s takes publishes from its subscribers only", channel_id);
        return false;
    }
    return true;
}
