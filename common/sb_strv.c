/* String arrays: all or nothing, so a failed copy leaves nothing to free. */
#include "sb_strv.h"

#include <stdlib.h>
#include <string.h>

void sb_strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

enum sb_err sb_strv_dup(char *const *in, size_t n, char ***out)
{
    *out = NULL;
    if (n == 0)
        return SB_OK;
    char **v = calloc(n, sizeof(*v));
    if (v == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((v[i] = strdup(in[i])) == NULL) {
            sb_strv_free(v, i);
            return SB_ENOMEM;
        }
    }
    *out = v;
    return SB_OK;
}
