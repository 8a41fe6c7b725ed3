/* Fuzz target: subscription filters (cp_filter_parse) and channel patterns (cp_glob). An
 * accepted filter is evaluated against metadata cut from the same input; the input is also
 * matched as a pattern against a fixed channel id and as an id against fixed patterns. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_filter.h"
#include "cp_glob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cp_filter *f = NULL;
    char err[128];
    if (cp_filter_parse((const char *)data, size, &f, err, sizeof(err)) == SB_OK) {
        struct cp_kv kv[2] = {{"priority", "high"}, {"region", "eu"}};
        (void)cp_filter_match(f, kv, 2);
        (void)cp_filter_match(f, NULL, 0);
        cp_filter_free(f);
    }
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (cp_glob_is_valid(s))
        (void)cp_glob_match(s, "user.alice.notifications");
    (void)cp_glob_match("user.*.notifications", s);
    (void)cp_glob_match("**.x*", s);
    free(s);
    return 0;
}
