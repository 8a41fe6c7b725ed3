/* Byte-buffer conversion: one slice per packed message, and readall on the way in
 * (gRPC may hand over a message split across several slices). */
#include "sb_pb.h"

#include <stdlib.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>

grpc_byte_buffer *sb_pb_pack(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

enum sb_err sb_pb_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *desc,
                         size_t max_bytes, ProtobufCMessage **out)
{
    if (bb == NULL)
        return SB_EINVAL;
    if (grpc_byte_buffer_length(bb) > max_bytes)
        return SB_EFULL;
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return SB_EPROTO;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *msg =
        protobuf_c_message_unpack(desc, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    if (msg == NULL)
        return SB_EPROTO;
    *out = msg;
    return SB_OK;
}
