/* Field checks shared by every gRPC handler (the public API's and the Peer handler): each
 * returns true when the value is fine, else finishes the call with INVALID_ARGUMENT
 * "invalid_message: ..." (RESOURCE_EXHAUSTED "message_too_large: ..." for data over the limit)
 * and returns false. `what` names the field. Thread: the completion-queue thread. */
#ifndef CP_CHECK_H
#define CP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_call.h"

/* An id of PROTOCOL.md (required / empty allowed). */
bool cp_check_id(struct cp_call *call, const char *what, const char *value);
bool cp_check_optional_id(struct cp_call *call, const char *what, const char *value);

/* A channel id (sb_ident_is_valid_channel: an id, optionally with a "#user,..." suffix). */
bool cp_check_channel_id(struct cp_call *call, const char *what, const char *value);

/* NULL, or at most `max` bytes of valid UTF-8. */
bool cp_check_text(struct cp_call *call, const char *what, const char *s, size_t max);

/* Exactly one valid JSON value. */
bool cp_check_json(struct cp_call *call, const char *what, const ProtobufCBinaryData *data);

/* Message data of any method (BroadcastToRoom, SendToUser, Broadcast, BroadcastToChannel,
 * SaveMessage, EditMessage, Peer/Publish, ...): at most `max_size` bytes (0: no limit), then
 * valid JSON. */
bool cp_check_data(struct cp_call *call, const ProtobufCBinaryData *data, int64_t max_size);

#endif
