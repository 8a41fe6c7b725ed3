/* A unary gRPC call from its request to its final batch, and how a handler finishes it: a
 * handler gets the unpacked request (borrowed until the call is finished) and must finish the
 * call exactly once, now or later (after an asynchronous Store answer), with cp_call_reply or
 * cp_call_fail. The server (app/cp_server.c) posts calls and dispatches them; the API's
 * handlers and the Peer handler finish them. Thread: the completion-queue thread. */
#ifndef CP_CALL_H
#define CP_CALL_H

#include <stdbool.h>

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "cp_status.h"
#include "cp_tag.h"

struct cp_ctx;
struct cp_method; /* the server's method table entry (opaque here) */

struct cp_call {
    struct cp_tag tag;
    void *owner;              /* the server */
    struct cp_method *method; /* NULL: the generic request for unknown methods */
    bool generic;             /* details were requested (the generic request) */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_call_details details;
    grpc_byte_buffer *payload;
    grpc_byte_buffer *resp;
    ProtobufCMessage *req;
    int cancelled;
    grpc_slice status_details;
    int finishing;
};

/* A handler of a method: `req` is the unpacked request, borrowed until the call is finished. */
typedef void cp_rpc_fn(struct cp_ctx *c, struct cp_call *call, const ProtobufCMessage *req);

/* Frees the call and everything it holds (after its final batch completed, or when it never
 * started). */
void cp_call_free(struct cp_call *call);

/* Finishes the call with OK and `resp` (borrowed; packed before returning). */
void cp_call_reply(struct cp_call *call, const ProtobufCMessage *resp);

/* A flow's cp_ctx_done_fn-style answer for methods whose response is an empty message (every
 * empty protobuf message packs to zero bytes): `call` is the struct cp_call; OK with the empty
 * message, or cp_call_fail with `st`. */
void cp_call_done_empty(void *call, const struct cp_status *st);

/* Finishes the call with the gRPC status mapped from st->code and "code: sentence". */
void cp_call_fail(struct cp_call *call, const struct cp_status *st);

/* Same with a code and a printf sentence. */
void cp_call_failf(struct cp_call *call, enum sb_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Finishes the call with a raw gRPC status (for statuses with no protocol code, such as the
 * health protocol's NOT_FOUND or UNIMPLEMENTED). */
void cp_call_status(struct cp_call *call, grpc_status_code code, const char *msg);

/* STREAM methods: takes the gRPC call out of `call` (the caller now owns it and answers it
 * itself) and frees `call` with its request. */
grpc_call *cp_call_detach(struct cp_call *call);

#endif
