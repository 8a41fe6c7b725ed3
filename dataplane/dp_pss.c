/* The per-connection identity record: allocated at the upgrade (or a POST's headers) and freed
 * as soon as the session holds the ids, or at the latest in the closed callback. */
#include "dp_pss.h"

#include <stdlib.h>

#include "dp_auth.h"

struct dp_pss_ident *dp_pss_ident(struct dp_pss *pss)
{
    if (pss->id == NULL)
        pss->id = calloc(1, sizeof(*pss->id));
    return pss->id;
}

void dp_pss_ident_destroy(struct dp_pss_ident *id)
{
    if (id == NULL)
        return;
    dp_auth_claims_free(id->claims);
    free(id);
}

void dp_pss_ident_free(struct dp_pss *pss)
{
    if (pss != NULL) {
        dp_pss_ident_destroy(pss->id);
        pss->id = NULL;
    }
}
