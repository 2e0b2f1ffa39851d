/*
 * The import's writer thread and the bounded queue of COPY buffers in front
 * of it (copy_pipe.h). Buffers are indexes into one array: the producer owns
 * one (cur), the others are queued for the writer (FIFO, so the rows reach
 * the sink in file order) or free. The writer keeps taking queued buffers
 * after a failure or a drop, only without writing them, so a producer waiting
 * for a free buffer always gets one.
 */
#include <pthread.h>
#include <stdlib.h>

#include "importer/copy_pipe.h"

struct copy_pipe {
    pthread_mutex_t mu;
    pthread_cond_t cv_free; /* a buffer came back: the producer may go on */
    pthread_cond_t cv_work; /* a buffer was queued, or the pipe ends */
    pthread_t thread;
    cd_buf_t *bufs;
    size_t nbufs, flush_at;
    size_t *queue, qhead, qlen; /* ring of queued buffers, oldest first */
    size_t *free_idx, nfree;
    size_t cur;  /* the producer's buffer */
    bool ending; /* no more buffers will be queued */
    bool drop;   /* queued buffers are thrown away */
    bool failed; /* the sink refused bytes */
    size_t written;
    copy_pipe_sink_fn sink;
    void *arg;
};

static void enqueue(copy_pipe_t *p, size_t i)
{
    p->queue[(p->qhead + p->qlen) % p->nbufs] = i;
    p->qlen++;
    pthread_cond_signal(&p->cv_work);
}

static void *writer_main(void *arg)
{
    copy_pipe_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->qlen == 0 && !p->ending)
            pthread_cond_wait(&p->cv_work, &p->mu);
        if (p->qlen == 0)
            break; /* ending, and everything queued was taken */
        size_t i = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->nbufs;
        p->qlen--;
        bool skip = p->failed || p->drop;
        pthread_mutex_unlock(&p->mu);
        cd_buf_t *b = &p->bufs[i];
        bool ok = skip || b->len == 0 || p->sink(p->arg, b->data, b->len);
        size_t len = b->len;
        cd_buf_reset(b);
        pthread_mutex_lock(&p->mu);
        if (!skip && ok)
            p->written += len;
        else if (!skip)
            p->failed = true;
        p->free_idx[p->nfree++] = i;
        pthread_cond_signal(&p->cv_free);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pipe_free(copy_pipe_t *p)
{
    for (size_t i = 0; p->bufs && i < p->nbufs; i++)
        cd_buf_free(&p->bufs[i]);
    free(p->bufs);
    free(p->queue);
    free(p->free_idx);
    free(p);
}

copy_pipe_t *copy_pipe_start(size_t nbufs, size_t flush_at, size_t buf_max, copy_pipe_sink_fn sink,
                             void *arg)
{
    if (nbufs < 2 || flush_at == 0 || flush_at > buf_max || !sink)
        return NULL;
    copy_pipe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->nbufs = nbufs;
    p->flush_at = flush_at;
    p->sink = sink;
    p->arg = arg;
    p->bufs = calloc(nbufs, sizeof(*p->bufs));
    p->queue = calloc(nbufs, sizeof(*p->queue));
    p->free_idx = calloc(nbufs, sizeof(*p->free_idx));
    if (!p->bufs || !p->queue || !p->free_idx) {
        pipe_free(p);
        return NULL;
    }
    for (size_t i = 0; i < nbufs; i++)
        cd_buf_init(&p->bufs[i], buf_max);
    p->cur = 0;
    for (size_t i = nbufs; i > 1; i--)
        p->free_idx[p->nfree++] = i - 1;
    bool mu = pthread_mutex_init(&p->mu, NULL) == 0;
    bool cf = mu && pthread_cond_init(&p->cv_free, NULL) == 0;
    bool cw = cf && pthread_cond_init(&p->cv_work, NULL) == 0;
    if (cw && pthread_create(&p->thread, NULL, writer_main, p) == 0)
        return p;
    if (cw)
        pthread_cond_destroy(&p->cv_work);
    if (cf)
        pthread_cond_destroy(&p->cv_free);
    if (mu)
        pthread_mutex_destroy(&p->mu);
    pipe_free(p);
    return NULL;
}

cd_buf_t *copy_pipe_buf(copy_pipe_t *p)
{
    return &p->bufs[p->cur];
}

bool copy_pipe_flush(copy_pipe_t *p)
{
    if (p->bufs[p->cur].len < p->flush_at)
        return true; /* the producer's own buffer: no lock needed */
    pthread_mutex_lock(&p->mu);
    enqueue(p, p->cur);
    while (p->nfree == 0)
        pthread_cond_wait(&p->cv_free, &p->mu);
    p->cur = p->free_idx[--p->nfree];
    bool ok = !p->failed;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

bool copy_pipe_finish(copy_pipe_t *p, bool deliver)
{
    if (!p)
        return false;
    pthread_mutex_lock(&p->mu);
    if (deliver && p->bufs[p->cur].len > 0)
        enqueue(p, p->cur);
    p->drop = !deliver;
    p->ending = true;
    pthread_cond_signal(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    bool ok = deliver && !p->failed;
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_free);
    pthread_mutex_destroy(&p->mu);
    pipe_free(p);
    return ok;
}

size_t copy_pipe_bytes_written(copy_pipe_t *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->written;
    pthread_mutex_unlock(&p->mu);
    return n;
}
