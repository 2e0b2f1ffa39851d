/*
 * The import's second thread: rows are parsed, cleaned and formatted as COPY
 * text on the job's thread (the producer) while a writer thread hands the
 * finished buffers to a sink (PQputCopyData on the data connection), so the
 * two overlap. Between them sit a fixed number of buffers of bounded size:
 * when the writer falls behind the producer waits, so memory stays bounded
 * whatever the file's size.
 *
 * The sink runs on the writer thread only, and never after copy_pipe_finish
 * returned: the caller may use what the sink uses (the PGconn) before
 * copy_pipe_start and after copy_pipe_finish, never in between.
 */
#ifndef CD_IMPORTER_COPY_PIPE_H
#define CD_IMPORTER_COPY_PIPE_H

#include "core/buf.h"
#include "core/common.h"

/* Writes len bytes; false when it cannot (the pipe then drops the rest). */
typedef bool (*copy_pipe_sink_fn)(void *arg, const char *data, size_t len);

typedef struct copy_pipe copy_pipe_t;

/* Starts the writer thread with nbufs (>= 2) buffers of at most buf_max bytes
 * each; a buffer is handed over once it holds flush_at bytes. NULL when out
 * of memory or no thread can be made. */
copy_pipe_t *copy_pipe_start(size_t nbufs, size_t flush_at, size_t buf_max, copy_pipe_sink_fn sink,
                             void *arg);
/* The buffer the producer appends to now. */
cd_buf_t *copy_pipe_buf(copy_pipe_t *p);
/* Hands the buffer over when it holds flush_at bytes (waiting for a free one
 * while every buffer is queued). False once the sink failed: stop producing. */
CD_MUSTCHECK bool copy_pipe_flush(copy_pipe_t *p);
/* Ends the pipe and frees it: with deliver, the bytes still buffered reach the
 * sink first; without, they are dropped (the producer gives up). Joins the
 * writer. True when every byte handed over reached the sink. p may be NULL. */
bool copy_pipe_finish(copy_pipe_t *p, bool deliver);
/* Bytes the sink has taken so far. */
size_t copy_pipe_bytes_written(copy_pipe_t *p);

#endif
