/* The permissions matrix (docs/permissions.md): the lowest role allowed to do each action, and
 * the rule on targets: nobody acts on a member of equal or higher role, except the owner. */
#include "cp_perm.h"

struct rule {
    const char *name;
    enum cp_role min;  /* lowest role that may do it */
    bool owner_target; /* an owner may be the target (never through SetMemberRole) */
};

static const struct rule rules[CP_PERM_COUNT] = {
    [CP_PERM_INVITE] = {"invite", CP_ROLE_MODERATOR, true},
    [CP_PERM_KICK] = {"kick", CP_ROLE_MODERATOR, true},
    [CP_PERM_BAN] = {"ban", CP_ROLE_MODERATOR, true},
    [CP_PERM_SET_ROLE] = {"set_role", CP_ROLE_ADMIN, false},
    [CP_PERM_ARCHIVE] = {"archive", CP_ROLE_ADMIN, true},
    [CP_PERM_UPDATE_ROOM] = {"update_room", CP_ROLE_ADMIN, true},
    [CP_PERM_TRANSFER] = {"transfer", CP_ROLE_OWNER, true},
    [CP_PERM_DELETE_ROOM] = {"delete_room", CP_ROLE_OWNER, true},
    [CP_PERM_EDIT_OTHERS] = {"edit_others", CP_ROLE_ADMIN, true},
    [CP_PERM_DELETE_OTHERS] = {"delete_others", CP_ROLE_MODERATOR, true},
};

static bool role_valid(enum cp_role r)
{
    return r >= CP_ROLE_MEMBER && r <= CP_ROLE_OWNER;
}

bool cp_perm_allows(enum cp_role actor, enum cp_perm_action action, enum cp_role target)
{
    if ((unsigned)action >= CP_PERM_COUNT || !role_valid(actor) || !role_valid(target))
        return false;
    const struct rule *r = &rules[action];
    if (actor < r->min)
        return false;
    if (target == CP_ROLE_OWNER && !r->owner_target)
        return false;
    /* The owner acts on anyone; everyone else only on lower roles. */
    return actor == CP_ROLE_OWNER || target < actor;
}

const char *cp_perm_action_name(enum cp_perm_action action)
{
    if ((unsigned)action >= CP_PERM_COUNT)
        return "unknown";
    return rules[action].name;
}
