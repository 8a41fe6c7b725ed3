/* A trampoline for flows that chain asynchronous calls: a callee that answers inline (the memory
 * store) would otherwise nest one stack frame per step. The flow embeds a struct cp_steps and
 * makes every step go through cp_steps_run. Thread: the flow's owner (completion-queue). */
#ifndef CP_STEPS_H
#define CP_STEPS_H

#include <stdbool.h>

struct cp_steps {
    bool running; /* inside cp_steps_run */
    bool again;   /* a step was asked for while running */
};

/* Returns true when the flow is over: `ud` (and the struct cp_steps in it) may then be gone. */
typedef bool cp_steps_fn(void *ud);

/* Runs `advance(ud)`, again as long as a nested cp_steps_run asked for another step while it
 * ran; nested, it only records that request. Zero-initialize `t` once. */
void cp_steps_run(struct cp_steps *t, cp_steps_fn *advance, void *ud);

#endif
