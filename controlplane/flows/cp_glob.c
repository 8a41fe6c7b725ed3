/* Glob matching by dynamic programming over (pattern position, text position): one row per
 * pattern token, computed from the end, so patterns full of stars stay linear in the text. */
#include "cp_glob.h"

#include <string.h>

#include "sb_ident.h"

enum tok { LIT, STAR, DSTAR };

static bool id_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == ':' || ch == '@' || ch == '-';
}

bool cp_glob_is_valid(const char *pattern)
{
    if (pattern == NULL)
        return false;
    size_t n = strlen(pattern);
    if (n > CP_GLOB_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (pattern[i] != '*' && !id_char(pattern[i]))
            return false;
    return true;
}

bool cp_glob_match(const char *pattern, const char *text)
{
    if (pattern == NULL || text == NULL)
        return false;
    if (pattern[0] == '\0' || strcmp(pattern, "**") == 0)
        return true;
    size_t plen = strlen(pattern), tlen = strlen(text);
    if (plen > CP_GLOB_MAX || tlen > SB_IDENT_MAX)
        return false;
    /* Tokens: a run of two or more stars is one DSTAR. */
    enum tok kind[CP_GLOB_MAX];
    char lit[CP_GLOB_MAX];
    size_t nt = 0;
    for (size_t i = 0; i < plen;) {
        if (pattern[i] == '*') {
            size_t j = i;
            while (j < plen && pattern[j] == '*')
                j++;
            kind[nt] = j - i >= 2 ? DSTAR : STAR;
            lit[nt++] = 0;
            i = j;
        } else {
            kind[nt] = LIT;
            lit[nt++] = pattern[i++];
        }
    }
    /* next[j]: tokens k+1.. match text[j..]; cur[j]: tokens k.. match text[j..]. */
    bool next[SB_IDENT_MAX + 1], cur[SB_IDENT_MAX + 1];
    for (size_t j = 0; j <= tlen; j++)
        next[j] = j == tlen;
    for (size_t k = nt; k-- > 0;) {
        cur[tlen] = kind[k] != LIT && next[tlen];
        for (size_t j = tlen; j-- > 0;) {
            switch (kind[k]) {
            case LIT:
                cur[j] = text[j] == lit[k] && next[j + 1];
                break;
            case STAR: /* empty, or eat one non-dot character and stay */
                cur[j] = next[j] || (text[j] != '.' && cur[j + 1]);
                break;
            case DSTAR:
                cur[j] = next[j] || cur[j + 1];
                break;
            }
        }
        memcpy(next, cur, (tlen + 1) * sizeof(bool));
    }
    return next[0];
}
