/* Error values shared by both daemons, and the client protocol's error codes.
 * Protocol codes are the strings of PROTOCOL.md; enum sb_code indexes them. */
#ifndef SB_ERR_H
#define SB_ERR_H

enum sb_err {
    SB_OK = 0,
    SB_ENOMEM,
    SB_EINVAL,
    SB_EPROTO,
    SB_EAGAIN,
    SB_ETIMEDOUT,
    SB_ENOTFOUND,
    SB_EEXIST,
    SB_EFULL,
    SB_EPERM,
    SB_EUNAVAIL,
    SB_EIO,
};

/* The client protocol's error codes (PROTOCOL.md, "Errors"), in that order. */
enum sb_code {
    SB_CODE_NONE = 0,
    SB_CODE_INVALID_MESSAGE,
    SB_CODE_MESSAGE_TOO_LARGE,
    SB_CODE_RATE_LIMITED,
    SB_CODE_UNAUTHORIZED,
    SB_CODE_PERMISSION_DENIED,
    SB_CODE_ROOM_NOT_FOUND,
    SB_CODE_ROOM_ALREADY_EXISTS,
    SB_CODE_ROOM_FULL,
    SB_CODE_ROOM_ARCHIVED,
    SB_CODE_NOT_ROOM_MEMBER,
    SB_CODE_ALREADY_ROOM_MEMBER,
    SB_CODE_ROOM_LIMIT_REACHED,
    SB_CODE_BANNED,
    SB_CODE_CHANNEL_NOT_FOUND,
    SB_CODE_NOT_SUBSCRIBED,
    SB_CODE_ALREADY_SUBSCRIBED,
    SB_CODE_CHANNEL_LIMIT_REACHED,
    SB_CODE_CONNECTION_LIMIT_REACHED,
    SB_CODE_INVITE_NOT_FOUND,
    SB_CODE_INVITE_EXPIRED,
    SB_CODE_HISTORY_GAP,
    SB_CODE_UNAVAILABLE,
    SB_CODE_INTERNAL,
    /* Extensions (PROTOCOL.md welcomes added codes; docs/protocol.md lists them). */
    SB_CODE_MESSAGE_NOT_FOUND,
    SB_CODE_CHANNEL_ALREADY_EXISTS,
    SB_CODE_CONNECTION_NOT_FOUND,
    /* Internal: a compare-and-swap lost to a concurrent write (retry); never sent to clients. */
    SB_CODE_CONFLICT,
    SB_CODE_COUNT
};

/* One row of the error table: what both daemons and the Peer path read for a code. */
struct sb_code_info {
    const char *name; /* PROTOCOL.md's string: "room_full"; "" for SB_CODE_NONE */
    int grpc_status;  /* grpc_status_code of API.md (0, OK, for SB_CODE_NONE) */
    int http_status;  /* an SSE POST answer's HTTP status (200 for SB_CODE_NONE) */
};

/* Returns the code's row (static); the row of SB_CODE_INTERNAL if out of range. */
const struct sb_code_info *sb_code_info(enum sb_code code);

/* Returns a static string such as "room_full"; "" for SB_CODE_NONE, "internal" if out of range. */
const char *sb_code_name(enum sb_code code);

/* Returns the code whose name is `name`, or SB_CODE_NONE if `name` is NULL, empty or unknown. */
enum sb_code sb_code_from_name(const char *name);

/* Reads the code back from a gRPC status message "code: sentence" (as the control plane writes
 * them): the code, and in *sentence (may be NULL) the text after ": ". SB_CODE_NONE when the
 * message does not start with a known code. */
enum sb_code sb_code_from_status_message(const char *msg, const char **sentence);

/* Returns a static lower-case description of `err`, for logs. */
const char *sb_err_str(enum sb_err err);

#endif
