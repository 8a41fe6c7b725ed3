/* Room roles and what they allow: the permissions matrix of docs/permissions.md, as pure
 * logic. owner > admin > moderator > member. Any thread. */
#ifndef CP_PERM_H
#define CP_PERM_H

#include <stdbool.h>

#include "cp_store.h"

enum cp_perm_action {
    CP_PERM_INVITE,        /* CreateInvite; admitting a user to a private room */
    CP_PERM_KICK,          /* removing another member */
    CP_PERM_BAN,           /* BanMember / UnbanMember */
    CP_PERM_SET_ROLE,      /* SetMemberRole (target: the member's current and new role) */
    CP_PERM_ARCHIVE,       /* ArchiveRoom / RestoreRoom */
    CP_PERM_UPDATE_ROOM,   /* UpdateRoom */
    CP_PERM_TRANSFER,      /* TransferRoomOwnership */
    CP_PERM_DELETE_ROOM,   /* DeleteRoom */
    CP_PERM_EDIT_OTHERS,   /* EditMessage of a message someone else sent */
    CP_PERM_DELETE_OTHERS, /* DeleteMessage of a message someone else sent */
    CP_PERM_COUNT
};

/* Whether a member with role `actor` may do `action` to a member with role `target` (for
 * actions without a target member, pass CP_ROLE_MEMBER). */
bool cp_perm_allows(enum cp_role actor, enum cp_perm_action action, enum cp_role target);

/* "invite", "kick", ... for messages and docs. */
const char *cp_perm_action_name(enum cp_perm_action action);

#endif
