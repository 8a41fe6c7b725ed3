/* Glue between protobuf-c messages and gRPC core byte buffers, for both daemons. */
#ifndef SB_PB_H
#define SB_PB_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

#include "sb_err.h"

/* Packs `msg` into a new byte buffer (caller owns; grpc_byte_buffer_destroy). NULL on ENOMEM. */
grpc_byte_buffer *sb_pb_pack(const ProtobufCMessage *msg);

/* Unpacks `bb` (borrowed) as `desc` into *out (caller frees with protobuf_c_message_free_unpacked
 * and a NULL allocator). Returns SB_EPROTO if the bytes are not a valid `desc`, SB_EINVAL if `bb`
 * is NULL, SB_EFULL if it is larger than `max_bytes`. */
enum sb_err sb_pb_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                         size_t max_bytes, ProtobufCMessage **out);

#endif
