/* Names of internal errors and of the client protocol's error codes.
 * The code table is the single place where PROTOCOL.md's code strings are spelt. */
#include "sb_err.h"

#include <string.h>

static const char *const code_names[SB_CODE_COUNT] = {
    [SB_CODE_NONE] = "",
    [SB_CODE_INVALID_MESSAGE] = "invalid_message",
    [SB_CODE_MESSAGE_TOO_LARGE] = "message_too_large",
    [SB_CODE_RATE_LIMITED] = "rate_limited",
    [SB_CODE_UNAUTHORIZED] = "unauthorized",
    [SB_CODE_PERMISSION_DENIED] = "permission_denied",
    [SB_CODE_ROOM_NOT_FOUND] = "room_not_found",
    [SB_CODE_ROOM_ALREADY_EXISTS] = "room_already_exists",
    [SB_CODE_ROOM_FULL] = "room_full",
    [SB_CODE_ROOM_ARCHIVED] = "room_archived",
    [SB_CODE_NOT_ROOM_MEMBER] = "not_room_member",
    [SB_CODE_ALREADY_ROOM_MEMBER] = "already_room_member",
    [SB_CODE_ROOM_LIMIT_REACHED] = "room_limit_reached",
    [SB_CODE_BANNED] = "banned",
    [SB_CODE_CHANNEL_NOT_FOUND] = "channel_not_found",
    [SB_CODE_NOT_SUBSCRIBED] = "not_subscribed",
    [SB_CODE_ALREADY_SUBSCRIBED] = "already_subscribed",
    [SB_CODE_CHANNEL_LIMIT_REACHED] = "channel_limit_reached",
    [SB_CODE_CONNECTION_LIMIT_REACHED] = "connection_limit_reached",
    [SB_CODE_INVITE_NOT_FOUND] = "invite_not_found",
    [SB_CODE_INVITE_EXPIRED] = "invite_expired",
    [SB_CODE_HISTORY_GAP] = "history_gap",
    [SB_CODE_UNAVAILABLE] = "unavailable",
    [SB_CODE_INTERNAL] = "internal",
    [SB_CODE_MESSAGE_NOT_FOUND] = "message_not_found",
    [SB_CODE_CHANNEL_ALREADY_EXISTS] = "channel_already_exists",
    [SB_CODE_CONNECTION_NOT_FOUND] = "connection_not_found",
    [SB_CODE_CONFLICT] = "conflict",
};

const char *sb_code_name(enum sb_code code)
{
    if ((int)code < 0 || code >= SB_CODE_COUNT)
        return "internal";
    return code_names[code];
}

enum sb_code sb_code_from_name(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return SB_CODE_NONE;
    for (int i = 1; i < SB_CODE_COUNT; i++) {
        if (strcmp(code_names[i], name) == 0)
            return (enum sb_code)i;
    }
    return SB_CODE_NONE;
}

const char *sb_err_str(enum sb_err err)
{
    switch (err) {
    case SB_OK:
        return "ok";
    case SB_ENOMEM:
        return "out of memory";
    case SB_EINVAL:
        return "invalid argument";
    case SB_EPROTO:
        return "protocol error";
    case SB_EAGAIN:
        return "try again";
    case SB_ETIMEDOUT:
        return "timed out";
    case SB_ENOTFOUND:
        return "not found";
    case SB_EEXIST:
        return "already exists";
    case SB_EFULL:
        return "full";
    case SB_EPERM:
        return "permission denied";
    case SB_EUNAVAIL:
        return "unavailable";
    case SB_EIO:
        return "i/o error";
    }
    return "unknown error";
}
