/* The `rooms` claim test: an entry without '*' must equal the id, one with '*' is a cp_glob
 * pattern; the first entry that matches decides. */
#include "cp_access.h"

#include <string.h>

#include "cp_glob.h"

bool cp_access_has_room(const struct cp_grants *g, const char *room_id)
{
    if (g == NULL || room_id == NULL || room_id[0] == '\0')
        return false;
    for (size_t i = 0; i < g->n_rooms; i++) {
        const char *e = g->rooms[i];
        if (e == NULL || e[0] == '\0')
            continue;
        if (strchr(e, '*') == NULL) {
            if (strcmp(e, room_id) == 0)
                return true;
        } else if (cp_glob_is_valid(e) && cp_glob_match(e, room_id)) {
            return true;
        }
    }
    return false;
}
