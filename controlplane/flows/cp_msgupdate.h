/* Changes to a stored message, shared by the gRPC API (cp_rpc_history.c) and client frames
 * (cp_nodelink.c): edit, delete (tombstone), add or remove a reaction (docs/history.md).
 *
 * Each is: the room (room_not_found; archived rooms refuse all but deletion), the members
 * (a non-empty actor must be one: not_room_member; roles for the permission check), one Store
 * message_update whose edit callback checks the permission against the stored message
 * (permission_denied) and applies the change, then the live frame to every member's nodes
 * (message_edited, message_deleted, reaction), then the answer. A change that changes nothing
 * (deleting a tombstone, a second identical reaction, removing a missing one) answers success
 * with the unchanged message and sends no frame.
 * Thread: the completion-queue thread. */
#ifndef CP_MSGUPDATE_H
#define CP_MSGUPDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "cp_ctx.h"

enum cp_msgupdate_kind { CP_MSG_EDIT, CP_MSG_DELETE, CP_MSG_REACT_ADD, CP_MSG_REACT_REMOVE };

/* Validated by the caller (ids, JSON data and its size, emoji). Borrowed during the call. */
struct cp_msgupdate {
    enum cp_msgupdate_kind kind;
    const char *room_id;
    const char *message_id;
    /* Editor, deleter or reacting user. NULL or "": the backend (edit and delete only; any
     * message, no membership needed). */
    const char *actor;
    const char *data; /* edit: the new data, valid JSON */
    size_t data_len;
    const char *emoji; /* reactions */
};

/* `m`: the message's state after the change (borrowed, during the callback; NULL on error, or
 * if it could not be copied after a successful change). Called exactly once. */
typedef void cp_msgupdate_fn(void *arg, const struct cp_status *st, const struct cp_message *m);

void cp_msgupdate_apply(struct cp_ctx *c, const struct cp_msgupdate *u, cp_msgupdate_fn *cb,
                        void *arg);

/* The client frames edit, delete and react (NodeLink ClientRequest edit_message,
 * delete_message, react) by `user`: validates the request and starts cp_msgupdate_apply. Returns
 * false with *st set (invalid_message, message_too_large) when it did not start; cb is then
 * not called. */
struct Switchboard__Internal__V1__ClientRequest;
bool cp_msgupdate_client(struct cp_ctx *c,
                         const struct Switchboard__Internal__V1__ClientRequest *req,
                         const char *user, cp_msgupdate_fn *cb, void *arg, struct cp_status *st);

#endif
