/* Completion-queue tags: every tag handed to gRPC is a struct cp_tag embedded in its owner,
 * and the completion-queue thread calls tag->fn(tag, ok) for each event. */
#ifndef CP_TAG_H
#define CP_TAG_H

#include <stdbool.h>
#include <stddef.h>

struct cp_tag {
    void (*fn)(struct cp_tag *t, bool ok);
};

#define CP_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
