/* A mutex-protected singly linked FIFO with a condition variable for blocking waits and a wake
 * callback for event loops. */
#include "cp_handoff.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct item {
    struct item *next;
    cp_handoff_fn *fn;
    void *arg;
};

struct cp_handoff {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *head, *tail;
    cp_handoff_wake_fn *wake;
    void *wake_ud;
};

enum sb_err cp_handoff_create(cp_handoff_wake_fn *wake, void *wake_ud, struct cp_handoff **out)
{
    struct cp_handoff *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return SB_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cv, &ca);
    pthread_condattr_destroy(&ca);
    h->wake = wake;
    h->wake_ud = wake_ud;
    *out = h;
    return SB_OK;
}

void cp_handoff_destroy(struct cp_handoff *h)
{
    if (h == NULL)
        return;
    struct item *it = h->head;
    while (it != NULL) {
        struct item *next = it->next;
        free(it);
        it = next;
    }
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}

enum sb_err cp_handoff_post(struct cp_handoff *h, cp_handoff_fn *fn, void *arg)
{
    struct item *it = malloc(sizeof(*it));
    if (it == NULL)
        return SB_ENOMEM;
    it->next = NULL;
    it->fn = fn;
    it->arg = arg;
    pthread_mutex_lock(&h->mu);
    bool was_empty = h->head == NULL;
    if (h->tail != NULL)
        h->tail->next = it;
    else
        h->head = it;
    h->tail = it;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (was_empty && h->wake != NULL)
        h->wake(h->wake_ud);
    return SB_OK;
}

size_t cp_handoff_drain(struct cp_handoff *h)
{
    size_t n = 0;
    for (;;) {
        pthread_mutex_lock(&h->mu);
        struct item *it = h->head;
        h->head = NULL;
        h->tail = NULL;
        pthread_mutex_unlock(&h->mu);
        if (it == NULL)
            return n;
        while (it != NULL) {
            struct item *next = it->next;
            it->fn(it->arg);
            free(it);
            it = next;
            n++;
        }
    }
}

bool cp_handoff_wait(struct cp_handoff *h, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&h->mu);
    while (h->head == NULL) {
        if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) != 0)
            break;
    }
    bool ready = h->head != NULL;
    pthread_mutex_unlock(&h->mu);
    return ready;
}
