/* Room setup for the load client over the control plane's public gRPC API (switchboard.v1.Rooms):
 * creates the room and adds every benchmark user with BulkJoinRoom before any connection opens,
 * so N WebSocket joins do not fan out N*(N-1)/2 `join` events. Main thread; blocks up to the
 * given timeout per call. */
#ifndef BENCH_GRPC_H
#define BENCH_GRPC_H

#include <stddef.h>

/* Creates `room_id` (an existing room is fine) and joins users `prefix`0..`prefix`<n-1> and
 * `prefix`pub to it (existing members are fine), in BulkJoinRoom calls of `chunk` users (one
 * JoinRoom per user when the server answers BulkJoinRoom with UNIMPLEMENTED).
 * `target` is HOST:PORT. Returns 0, or -1 with a sentence in err. */
int bench_grpc_prepare_room(const char *target, const char *room_id, const char *prefix, int n,
                            int chunk, double timeout_s, char *err, size_t errcap);

#endif
