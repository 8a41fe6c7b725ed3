/* The flows' trampoline (see cp_steps.h): a loop instead of recursion when answers come inline.
 */
#include "cp_steps.h"

void cp_steps_run(struct cp_steps *t, cp_steps_fn *advance, void *ud)
{
    if (t->running) {
        t->again = true;
        return;
    }
    t->running = true;
    do {
        t->again = false;
        if (advance(ud))
            return; /* over: t may be freed */
    } while (t->again);
    t->running = false;
}
