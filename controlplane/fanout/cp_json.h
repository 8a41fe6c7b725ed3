/* The JSON text of server -> client frames (PROTOCOL.md), built once by the control plane.
 * `data` payloads are spliced as raw JSON text, exactly as given; strings are escaped.
 * Pure; any thread. Builders append to `b` (check b->failed once at the end). */
#ifndef CP_JSON_H
#define CP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_buf.h"
#include "cp_store.h"

/* {"type":"message","id":..,"seq":..,"room_id":..,"user_id":..,"data":..,"thread_id":..,
 *  "metadata":{..},"timestamp":".."}; user_id/thread_id/metadata only when set. Then, for a
 * tombstone: no "data", and "deleted":true,"deleted_at":..; else "edited_at" when edited and
 * the "edits"/"reactions" of m->ext when there are some (cp_msgext_render). */
void cp_json_message(struct cp_buf *b, const struct cp_message *m);

/* Live updates to room members (docs/history.md):
 * {"type":"message_edited","room_id","id","seq",["user_id"],["editor_id"],"data","edited_at"}
 * {"type":"message_deleted","room_id","id","seq",["deleter_id"],"deleted_at"}
 * {"type":"reaction","room_id","id","seq","emoji","user_id","added":true|false,"timestamp"}
 * m is the message's new state; an empty editor/deleter (the backend) is left out. */
void cp_json_message_edited(struct cp_buf *b, const struct cp_message *m, const char *editor_id);
void cp_json_message_deleted(struct cp_buf *b, const struct cp_message *m, const char *deleter_id);
void cp_json_reaction(struct cp_buf *b, const struct cp_message *m, const char *emoji,
                      const char *user_id, bool added, int64_t ts);

/* Direct message: {"type":"message","id":..,"user_id":<sender, if any>,"data":..,"timestamp"}. */
void cp_json_direct(struct cp_buf *b, const char *id, const char *sender, const char *data,
                    size_t data_len, int64_t ts);

/* {"type":"system","data":..,"timestamp":..}. */
void cp_json_system(struct cp_buf *b, const char *data, size_t data_len, int64_t ts);

/* {"type":"join"|"leave","room_id":..,"user_id":..,"timestamp":..}; `type` is "join"/"leave". */
void cp_json_membership(struct cp_buf *b, const char *type, const char *room_id,
                        const char *user_id, int64_t ts);

/* {"type":"typing","room_id":..,"user_id":..,"typing":true|false}. */
void cp_json_typing(struct cp_buf *b, const char *room_id, const char *user_id, bool typing);

/* Room administration notices (docs/rooms.md), to the room's members or the banned user:
 * {"type":"member_updated","room_id":..,"user_id":..,"role":..,"timestamp":..}
 * {"type":"room_updated","room_id":..,"name":..,"owner_id":..,"private":..,"archived":..,
 *  "max_members":..,"timestamp":..}
 * {"type":"banned","room_id":..,["reason":..],["expires_at":..],"timestamp":..}: reason when
 * non-empty, expires_at (Unix ms, sent as RFC 3339) when > 0. */
void cp_json_member_updated(struct cp_buf *b, const char *room_id, const char *user_id,
                            enum cp_role role, int64_t ts);
void cp_json_room_updated(struct cp_buf *b, const struct cp_room *r, int64_t ts);
void cp_json_banned(struct cp_buf *b, const char *room_id, const char *reason, int64_t expires_at,
                    int64_t ts);

struct cp_presence_view {
    const char *user_id;
    const char *status;
    const char *custom_status; /* NULL/"": omitted, as are empty device/activity fields */
    const char *device_type;
    const char *device_name;
    const char *activity_type;
    const char *activity_detail;
    const char *availability; /* NULL/"": omitted */
    int64_t timestamp;
};

/* {"type":"presence","user_id":..,"status":..,["custom_status"],["device":{..}],
 *  ["activity":{..}],["availability"],"timestamp":..}. */
void cp_json_presence(struct cp_buf *b, const struct cp_presence_view *p);

/* The channel message frame: {"type":"message","id":..,"channel_id":..,"user_id":..,
 * "data":..,"metadata":{..},"timestamp":".."}; user_id and metadata only when set. */
void cp_json_channel_message(struct cp_buf *b, const char *id, const char *channel_id,
                             const char *user_id, const char *data, size_t data_len,
                             const struct cp_kv *metadata, size_t n_metadata, int64_t ts);

#endif
