/* Names of internal errors, and the error table of the client protocol's codes: the single
 * place where PROTOCOL.md's code strings are spelt and mapped to gRPC and HTTP statuses. */
#include "sb_err.h"

#include <string.h>

#include <grpc/status.h>

/* Each protocol code once: its name (PROTOCOL.md), the gRPC status of API.md (not found ->
 * NOT_FOUND, already exists/member/subscribed -> ALREADY_EXISTS, full/limit/rate ->
 * RESOURCE_EXHAUSTED, banned/permission -> PERMISSION_DENIED, bad arguments ->
 * INVALID_ARGUMENT, archived/expired -> FAILED_PRECONDITION, store unreachable -> UNAVAILABLE)
 * and the HTTP status of an SSE POST answer (docs/protocol.md). */
static const struct sb_code_info table[SB_CODE_COUNT] = {
    /* clang-format off */
    [SB_CODE_NONE]                     = {"",                         GRPC_STATUS_OK,                 200},
    [SB_CODE_INVALID_MESSAGE]          = {"invalid_message",          GRPC_STATUS_INVALID_ARGUMENT,   400},
    [SB_CODE_MESSAGE_TOO_LARGE]        = {"message_too_large",        GRPC_STATUS_RESOURCE_EXHAUSTED, 413},
    [SB_CODE_RATE_LIMITED]             = {"rate_limited",             GRPC_STATUS_RESOURCE_EXHAUSTED, 429},
    [SB_CODE_UNAUTHORIZED]             = {"unauthorized",             GRPC_STATUS_UNAUTHENTICATED,    401},
    [SB_CODE_PERMISSION_DENIED]        = {"permission_denied",        GRPC_STATUS_PERMISSION_DENIED,  403},
    [SB_CODE_ROOM_NOT_FOUND]           = {"room_not_found",           GRPC_STATUS_NOT_FOUND,          404},
    [SB_CODE_ROOM_ALREADY_EXISTS]      = {"room_already_exists",      GRPC_STATUS_ALREADY_EXISTS,     409},
    [SB_CODE_ROOM_FULL]                = {"room_full",                GRPC_STATUS_RESOURCE_EXHAUSTED, 409},
    [SB_CODE_ROOM_ARCHIVED]            = {"room_archived",            GRPC_STATUS_FAILED_PRECONDITION, 409},
    [SB_CODE_NOT_ROOM_MEMBER]          = {"not_room_member",          GRPC_STATUS_NOT_FOUND,          403},
    [SB_CODE_ALREADY_ROOM_MEMBER]      = {"already_room_member",      GRPC_STATUS_ALREADY_EXISTS,     409},
    [SB_CODE_ROOM_LIMIT_REACHED]       = {"room_limit_reached",       GRPC_STATUS_RESOURCE_EXHAUSTED, 409},
    [SB_CODE_BANNED]                   = {"banned",                   GRPC_STATUS_PERMISSION_DENIED,  403},
    [SB_CODE_CHANNEL_NOT_FOUND]        = {"channel_not_found",        GRPC_STATUS_NOT_FOUND,          404},
    [SB_CODE_NOT_SUBSCRIBED]           = {"not_subscribed",           GRPC_STATUS_NOT_FOUND,          409},
    [SB_CODE_ALREADY_SUBSCRIBED]       = {"already_subscribed",       GRPC_STATUS_ALREADY_EXISTS,     409},
    [SB_CODE_CHANNEL_LIMIT_REACHED]    = {"channel_limit_reached",    GRPC_STATUS_RESOURCE_EXHAUSTED, 409},
    [SB_CODE_CONNECTION_LIMIT_REACHED] = {"connection_limit_reached", GRPC_STATUS_RESOURCE_EXHAUSTED, 429},
    [SB_CODE_INVITE_NOT_FOUND]         = {"invite_not_found",         GRPC_STATUS_NOT_FOUND,          404},
    [SB_CODE_INVITE_EXPIRED]           = {"invite_expired",           GRPC_STATUS_FAILED_PRECONDITION, 410},
    [SB_CODE_HISTORY_GAP]              = {"history_gap",              GRPC_STATUS_OUT_OF_RANGE,       410},
    [SB_CODE_UNAVAILABLE]              = {"unavailable",              GRPC_STATUS_UNAVAILABLE,        503},
    [SB_CODE_INTERNAL]                 = {"internal",                 GRPC_STATUS_INTERNAL,           500},
    [SB_CODE_MESSAGE_NOT_FOUND]        = {"message_not_found",        GRPC_STATUS_NOT_FOUND,          404},
    [SB_CODE_CHANNEL_ALREADY_EXISTS]   = {"channel_already_exists",   GRPC_STATUS_ALREADY_EXISTS,     409},
    [SB_CODE_CONNECTION_NOT_FOUND]     = {"connection_not_found",     GRPC_STATUS_NOT_FOUND,          404},
    [SB_CODE_CONFLICT]                 = {"conflict",                 GRPC_STATUS_ABORTED,            409},
    /* clang-format on */
};

const struct sb_code_info *sb_code_info(enum sb_code code)
{
    if ((int)code < 0 || code >= SB_CODE_COUNT)
        return &table[SB_CODE_INTERNAL];
    return &table[code];
}

const char *sb_code_name(enum sb_code code)
{
    return sb_code_info(code)->name;
}

enum sb_code sb_code_from_name(const char *name)
{
    if (name == NULL || name[0] == '\0')
        return SB_CODE_NONE;
    for (int i = 1; i < SB_CODE_COUNT; i++) {
        if (strcmp(table[i].name, name) == 0)
            return (enum sb_code)i;
    }
    return SB_CODE_NONE;
}

enum sb_code sb_code_from_status_message(const char *msg, const char **sentence)
{
    const char *colon = msg != NULL ? strstr(msg, ": ") : NULL;
    if (colon == NULL)
        return SB_CODE_NONE;
    size_t n = (size_t)(colon - msg);
    for (int i = 1; i < SB_CODE_COUNT; i++) {
        if (strlen(table[i].name) == n && memcmp(table[i].name, msg, n) == 0) {
            if (sentence != NULL)
                *sentence = colon + 2;
            return (enum sb_code)i;
        }
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
