/* The per-connection identity record: allocated at the upgrade (or a POST's headers) and freed
 * as soon as the session holds the ids, or at the latest in the closed callback. */
#include "dp_pss.h"

#include <stdlib.h>

struct dp_pss_ident *dp_pss_ident(struct dp_pss *pss)
{
    if (pss->id == NULL)
        pss->id = calloc(1, sizeof(*pss->id));
    return pss->id;
}

void dp_pss_ident_free(struct dp_pss *pss)
{
    if (pss != NULL) {
        free(pss->id);
        pss->id = NULL;
    }
}
