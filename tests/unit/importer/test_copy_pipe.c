/* Unit tests for src/importer/copy_pipe.c: the bytes reach the sink in order
 * and complete; memory stays bounded (never more buffers in flight than
 * given, the producer waits for a slow sink); a failing sink stops the
 * producer; a dropped pipe writes nothing more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "importer/copy_pipe.h"

typedef struct sink {
    pthread_mutex_t mu;
    cd_buf_t got;
    size_t calls;
    size_t fail_after; /* calls that succeed before the sink fails (0: never fails) */
    int delay_us;
    pthread_t writer;
    bool writer_seen, other_thread;
} sink_t;

static bool sink_write(void *arg, const char *data, size_t len)
{
    sink_t *s = arg;
    pthread_mutex_lock(&s->mu);
    s->calls++;
    if (!s->writer_seen) {
        s->writer = pthread_self();
        s->writer_seen = true;
    } else if (!pthread_equal(s->writer, pthread_self())) {
        s->other_thread = true;
    }
    bool ok = s->fail_after == 0 || s->calls <= s->fail_after;
    if (ok)
        ok = cd_buf_add(&s->got, data, len);
    pthread_mutex_unlock(&s->mu);
    if (s->delay_us) {
        struct timespec ts = {0, (long)s->delay_us * 1000};
        nanosleep(&ts, NULL);
    }
    return ok;
}

static void sink_init(sink_t *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    cd_buf_init(&s->got, 64 * 1024 * 1024);
}

static void sink_free(sink_t *s)
{
    cd_buf_free(&s->got);
    pthread_mutex_destroy(&s->mu);
}

/* Appends rows "row <i>\n" for i in [from, to); false when the pipe failed. */
static bool produce(copy_pipe_t *p, int from, int to)
{
    for (int i = from; i < to; i++) {
        assert_true(cd_buf_printf(copy_pipe_buf(p), "row %d\n", i));
        if (!copy_pipe_flush(p))
            return false;
    }
    return true;
}

static void expect_rows(const sink_t *s, int n)
{
    cd_buf_t want;
    cd_buf_init(&want, 64 * 1024 * 1024);
    for (int i = 0; i < n; i++)
        assert_true(cd_buf_printf(&want, "row %d\n", i));
    assert_int_equal(s->got.len, want.len);
    assert_memory_equal(cd_buf_str(&s->got), cd_buf_str(&want), want.len);
    cd_buf_free(&want);
}

static void test_in_order_and_complete(void **state)
{
    (void)state;
    sink_t s;
    sink_init(&s);
    copy_pipe_t *p = copy_pipe_start(4, 100, 4096, sink_write, &s);
    assert_non_null(p);
    assert_true(produce(p, 0, 20000));
    size_t written_before = copy_pipe_bytes_written(p);
    assert_true(written_before <= 20000 * 10);
    assert_true(copy_pipe_finish(p, true)); /* the last, partial buffer too */
    expect_rows(&s, 20000);
    assert_true(s.calls > 100); /* handed over in pieces, not at the end */
    assert_false(s.other_thread);
    assert_false(pthread_equal(s.writer, pthread_self())); /* on its own thread */
    sink_free(&s);
}

/* A slow sink: the producer waits, so at most nbufs buffers exist and the
 * bytes not yet written stay under nbufs * (flush_at + one row). */
typedef struct slow {
    sink_t s;
    size_t produced;
    size_t max_backlog;
} slow_t;

static void test_bounded_with_a_slow_sink(void **state)
{
    (void)state;
    slow_t w;
    sink_init(&w.s);
    w.s.delay_us = 200;
    w.produced = 0;
    w.max_backlog = 0;
    copy_pipe_t *p = copy_pipe_start(3, 64, 1024, sink_write, &w.s);
    assert_non_null(p);
    for (int i = 0; i < 3000; i++) {
        size_t before = copy_pipe_buf(p)->len;
        assert_true(cd_buf_printf(copy_pipe_buf(p), "row %d\n", i));
        w.produced += copy_pipe_buf(p)->len - before;
        assert_true(copy_pipe_flush(p));
        size_t backlog = w.produced - copy_pipe_bytes_written(p);
        if (backlog > w.max_backlog)
            w.max_backlog = backlog;
    }
    assert_true(w.max_backlog <= 3 * (64 + 12));
    assert_true(copy_pipe_finish(p, true));
    expect_rows(&w.s, 3000);
    sink_free(&w.s);
}

static void test_sink_failure_stops_the_producer(void **state)
{
    (void)state;
    sink_t s;
    sink_init(&s);
    s.fail_after = 5;
    copy_pipe_t *p = copy_pipe_start(2, 50, 4096, sink_write, &s);
    assert_non_null(p);
    bool ok = produce(p, 0, 100000);
    assert_false(ok); /* told to stop long before the end */
    assert_true(s.got.len < 100000);
    assert_false(copy_pipe_finish(p, true));
    assert_true(s.calls <= 6); /* nothing more was written after the failure */
    sink_free(&s);
}

static void test_drop_writes_nothing_more(void **state)
{
    (void)state;
    sink_t s;
    sink_init(&s);
    copy_pipe_t *p = copy_pipe_start(4, 1000000, 2000000, sink_write, &s);
    assert_non_null(p);
    assert_true(produce(p, 0, 1000)); /* all of it in the producer's buffer */
    assert_false(copy_pipe_finish(p, false));
    assert_int_equal(s.got.len, 0);
    assert_int_equal(s.calls, 0);
    sink_free(&s);
}

static void test_empty_and_bad_arguments(void **state)
{
    (void)state;
    sink_t s;
    sink_init(&s);
    assert_null(copy_pipe_start(1, 10, 100, sink_write, &s));
    assert_null(copy_pipe_start(2, 0, 100, sink_write, &s));
    assert_null(copy_pipe_start(2, 200, 100, sink_write, &s));
    assert_null(copy_pipe_start(2, 10, 100, NULL, &s));
    assert_false(copy_pipe_finish(NULL, true));
    copy_pipe_t *p = copy_pipe_start(2, 10, 100, sink_write, &s);
    assert_non_null(p);
    assert_true(copy_pipe_finish(p, true)); /* nothing produced: nothing written */
    assert_int_equal(s.calls, 0);
    /* a row larger than the buffer's maximum is refused, not grown */
    p = copy_pipe_start(2, 10, 100, sink_write, &s);
    assert_non_null(p);
    char big[200];
    memset(big, 'x', sizeof(big));
    assert_false(cd_buf_add(copy_pipe_buf(p), big, sizeof(big)));
    assert_true(copy_pipe_finish(p, true));
    sink_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_and_complete),
        cmocka_unit_test(test_bounded_with_a_slow_sink),
        cmocka_unit_test(test_sink_failure_stops_the_producer),
        cmocka_unit_test(test_drop_writes_nothing_more),
        cmocka_unit_test(test_empty_and_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
