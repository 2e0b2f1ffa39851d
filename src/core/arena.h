/*
 * Per-request arenas: a chain of malloc'd blocks with a hard maximum, freed in
 * one call when the request ends (h2o's h2o_mem_pool_t). Any module whose
 * request builds many small objects (a parse tree, a plan, copied strings)
 * allocates them here instead of pairing each malloc with a free.
 */
#ifndef CD_CORE_ARENA_H
#define CD_CORE_ARENA_H

#include "core/common.h"

struct cd_arena_block;

typedef struct cd_arena {
    struct cd_arena_block *head; /* newest block first; owned by the arena */
    size_t total;                /* bytes malloc'd so far, headers included */
    size_t max;                  /* hard maximum for total */
} cd_arena_t;

/* Prepares an empty arena that will never malloc more than max bytes in all. */
void cd_arena_init(cd_arena_t *arena, size_t max);
/* Returns n bytes (maximally aligned, uninitialised) that live until cd_arena_free(),
 * or NULL when the maximum would be passed or malloc fails. n == 0 is treated as 1. */
CD_MUSTCHECK void *cd_arena_alloc(cd_arena_t *arena, size_t n);
/* A NUL-terminated copy of at most max bytes of s (stopping at its NUL), living until
 * cd_arena_free(); NULL when the arena is full. */
CD_MUSTCHECK char *cd_arena_strndup(cd_arena_t *arena, const char *s, size_t max);
/* Frees every block; the arena is empty and reusable afterwards (same maximum). */
void cd_arena_free(cd_arena_t *arena);

#endif
