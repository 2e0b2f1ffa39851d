/*
 * A small in-process request budget per client address: fixed five-minute
 * windows in an open-addressed table of bounded size. It caps sign-up,
 * sign-in and refresh traffic per address (GoTrue's per-IP limiter); the
 * per-account lock-out lives in the database (001_rate_limiting) so that it
 * holds across processes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"

#define LIMITER_WINDOW 300
#define LIMITER_PROBE  8

struct limiter_slot {
    char addr[64];
    time_t window_start;
    long count;
};

struct auth_limiter {
    pthread_mutex_t lock;
    size_t nslots;
    struct limiter_slot *slots;
};

struct auth_limiter *auth_limiter_new(size_t slots)
{
    CD_ASSERT(slots > 0); /* a compile-time constant of the caller */
    struct auth_limiter *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->slots = calloc(slots, sizeof(*l->slots));
    if (!l->slots) {
        free(l);
        return NULL;
    }
    l->nslots = slots;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void auth_limiter_free(struct auth_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l);
}

static size_t hash_addr(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

int auth_limiter_hit(struct auth_limiter *l, const char *addr, long limit)
{
    if (!l)
        return 0;
    time_t now = time(NULL);
    int wait = 0;
    pthread_mutex_lock(&l->lock);
    size_t h = hash_addr(addr);
    struct limiter_slot *slot = NULL, *oldest = NULL;
    CD_ASSERT(l->nslots > 0);
    for (size_t i = 0; i < LIMITER_PROBE; i++) {
        struct limiter_slot *s = &l->slots[(h + i) % l->nslots];
        if (strcmp(s->addr, addr) == 0) {
            slot = s;
            break;
        }
        if (!oldest || s->window_start < oldest->window_start)
            oldest = s;
    }
    if (!slot) {
        CD_ASSERT(oldest != NULL); /* LIMITER_PROBE > 0 and nslots > 0 */
        /* Take the stalest slot in the probe range: an expired window or,
         * under a flood of distinct addresses, the oldest one. */
        slot = oldest;
        strncpy(slot->addr, addr, sizeof(slot->addr) - 1);
        slot->addr[sizeof(slot->addr) - 1] = '\0';
        slot->window_start = now;
        slot->count = 0;
    }
    if (now - slot->window_start >= LIMITER_WINDOW) {
        slot->window_start = now;
        slot->count = 0;
    }
    if (slot->count >= limit) {
        wait = (int)(slot->window_start + LIMITER_WINDOW - now);
        if (wait < 1)
            wait = 1;
    } else {
        slot->count++;
    }
    pthread_mutex_unlock(&l->lock);
    return wait;
}
