/*
 * The per-request arena (see arena.h): blocks of ARENA_BLOCK_BYTES, or exactly what is needed
 * near the maximum, handed out in maximally aligned pieces.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_BYTES 16384u
#define ARENA_ALIGN       (alignof(max_align_t))

struct cd_arena_block {
    struct cd_arena_block *next;
    size_t size; /* usable bytes in data */
    size_t used;
    max_align_t data[];
};

void cd_arena_init(cd_arena_t *arena, size_t max)
{
    arena->head = NULL;
    arena->total = 0;
    arena->max = max;
}

void *cd_arena_alloc(cd_arena_t *arena, size_t n)
{
    struct cd_arena_block *b = arena->head;
    size_t need, size, bytes;
    void *mem;

    if (n == 0)
        n = 1;
    if (n > arena->max || arena->total > arena->max)
        return NULL;
    need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (b == NULL || b->size - b->used < need) {
        size = need > ARENA_BLOCK_BYTES ? need : ARENA_BLOCK_BYTES;
        bytes = sizeof(*b) + size;
        if (bytes > arena->max - arena->total) {
            /* Near the maximum: take exactly what is needed. */
            size = need;
            bytes = sizeof(*b) + size;
            if (bytes > arena->max - arena->total)
                return NULL;
        }
        b = malloc(bytes);
        if (b == NULL)
            return NULL;
        b->size = size;
        b->used = 0;
        b->next = arena->head;
        arena->head = b;
        arena->total += bytes;
        CD_ASSERT(arena->total <= arena->max);
    }
    mem = (char *)b->data + b->used;
    b->used += need;
    return mem;
}

void cd_arena_free(cd_arena_t *arena)
{
    struct cd_arena_block *b = arena->head;

    while (b != NULL) {
        struct cd_arena_block *next = b->next;
        free(b);
        b = next;
    }
    arena->head = NULL;
    arena->total = 0;
}

char *cd_arena_strndup(cd_arena_t *arena, const char *s, size_t max)
{
    size_t n = 0;
    while (n < max && s[n])
        n++;
    char *p = cd_arena_alloc(arena, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}
