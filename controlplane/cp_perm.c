/* TEMPORARY STUB (branch i4-history only): helper "rooms" owns the real cp_perm.c. Drop this
 * file when merging main once theirs has landed. Only what the history feature calls. */
#include "cp_perm.h"

bool cp_perm_allows(enum cp_role actor, enum cp_perm_action action, enum cp_role target)
{
    if (actor == CP_ROLE_OWNER)
        return true;
    switch (action) {
    case CP_PERM_DELETE_OTHERS:
        return actor >= CP_ROLE_MODERATOR && actor > target;
    case CP_PERM_EDIT_OTHERS:
        return actor >= CP_ROLE_ADMIN && actor > target;
    default:
        return actor >= CP_ROLE_ADMIN && actor > target;
    }
}

const char *cp_perm_action_name(enum cp_perm_action action)
{
    static const char *const names[CP_PERM_COUNT] = {
        "invite",      "kick",     "ban",         "set_role",    "archive",
        "update_room", "transfer", "delete_room", "edit_others", "delete_others"};
    return (int)action >= 0 && action < CP_PERM_COUNT ? names[action] : "unknown";
}
