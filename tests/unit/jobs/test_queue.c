/* Unit tests for the job queue's registry and start-up rules (src/jobs/queue.c,
 * src/jobs/retention.c). The queue's SQL is tested by tests/sql/020_job_queue.sql
 * and the running queue by tests/integration/jobs.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"
#include "jobs/jobs.h"
#include "jobs/queue.h"

static job_result_t noop(job_ctx_t *ctx, const job_t *job)
{
    (void)ctx;
    (void)job;
    return JOB_DONE;
}

static int reset(void **state)
{
    (void)state;
    jobs__reset_registry();
    return 0;
}

static void test_register_valid_kinds(void **state)
{
    (void)state;
    assert_true(jobs_register("import.sync", noop));
    assert_true(jobs_register("retention", noop));
    assert_true(jobs_register("a", noop));
    assert_true(jobs_register("send_2.batch", noop));
}

static void test_register_refuses_bad_names(void **state)
{
    (void)state;
    assert_false(jobs_register("", noop));
    assert_false(jobs_register("Import.sync", noop)); /* upper case */
    assert_false(jobs_register("1retention", noop));  /* starts with a digit */
    assert_false(jobs_register("import sync", noop)); /* blank */
    assert_false(jobs_register("import\"x", noop));   /* would break the text[] literal */
    assert_false(jobs_register("import,x", noop));    /* likewise */
    assert_false(jobs_register("import-sync", noop));
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_false(jobs_register(long_name, noop)); /* more than 63 characters */
    long_name[63] = '\0';
    assert_true(jobs_register(long_name, noop)); /* exactly 63 */
    assert_false(jobs_register(NULL, noop));
    assert_false(jobs_register("ok", NULL));
}

static void test_register_twice_is_refused(void **state)
{
    (void)state;
    assert_true(jobs_register("retention", noop));
    assert_false(jobs_register("retention", noop));
    assert_false(jobs_register_recurring("retention", noop, 60));
}

static void test_register_at_most_32_kinds(void **state)
{
    (void)state;
    char name[16];
    for (int i = 0; i < 32; i++) {
        snprintf(name, sizeof(name), "kind%d", i);
        assert_true(jobs_register(name, noop));
    }
    assert_false(jobs_register("one.too.many", noop));
}

static void test_recurring_needs_an_interval(void **state)
{
    (void)state;
    assert_false(jobs_register_recurring("retention", noop, 0));
    assert_false(jobs_register_recurring("retention", noop, -5));
    assert_true(jobs_register_recurring("retention", noop, 3600));
}

static void test_retention_disabled_registers_nothing(void **state)
{
    (void)state;
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg.retention_interval = 0;
    assert_true(jobs_retention_register(&app));
    /* Nothing registered: the kind is still free. */
    assert_true(jobs_register(JOBS_RETENTION_KIND, noop));
}

static void test_retention_registers_the_recurring_kind(void **state)
{
    (void)state;
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg.retention_interval = 60;
    assert_true(jobs_retention_register(&app));
    assert_false(jobs_register(JOBS_RETENTION_KIND, noop)); /* taken */
}

static void test_start_disabled_starts_nothing(void **state)
{
    (void)state;
    assert_true(jobs_register("retention", noop));
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg.jobs_enabled = false;
    jobs_t *j = (jobs_t *)&app; /* must be overwritten */
    assert_true(jobs_start(&app, &j));
    assert_null(j);
}

static void test_start_without_kinds_starts_nothing(void **state)
{
    (void)state;
    app_t app;
    memset(&app, 0, sizeof(app));
    app.cfg.jobs_enabled = true;
    jobs_t *j = (jobs_t *)&app; /* must be overwritten */
    assert_true(jobs_start(&app, &j));
    assert_null(j);
    jobs_stop(NULL); /* a no-op */
}

/* A begin step is an expression of its kind only, in the claim's SELECT; a
 * process without one claims with the plain statement. */
static void test_claim_with_begin_steps(void **state)
{
    (void)state;
    assert_true(jobs_register("retention", noop));
    assert_null(jobs__claim_begin_sql());
    assert_false(jobs_register_begin("import.sync", noop, ""));
    assert_false(jobs_register_begin("import.sync", noop, NULL));
    assert_false(jobs_register_begin("Bad", noop, "1"));
    assert_true(jobs_register_begin("import.sync", noop, "f(c.id)"));
    assert_false(jobs_register_begin("import.sync", noop, "g(c.id)")); /* twice */
    assert_true(jobs_register_begin("b.k", noop, "c.attempts"));
    char *sql = jobs__claim_begin_sql();
    assert_non_null(sql);
    assert_non_null(strstr(sql, "case c.kind when 'import.sync' then (f(c.id))::text "
                                "when 'b.k' then (c.attempts)::text end from jobs.claim_next("));
    assert_null(strstr(sql, "retention"));
    free(sql);
}

int main(void)
{
    log_set_level(LOG_LEVEL_ERROR); /* the refusals log errors by design */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_register_valid_kinds, reset),
        cmocka_unit_test_setup(test_register_refuses_bad_names, reset),
        cmocka_unit_test_setup(test_register_twice_is_refused, reset),
        cmocka_unit_test_setup(test_register_at_most_32_kinds, reset),
        cmocka_unit_test_setup(test_recurring_needs_an_interval, reset),
        cmocka_unit_test_setup(test_retention_disabled_registers_nothing, reset),
        cmocka_unit_test_setup(test_retention_registers_the_recurring_kind, reset),
        cmocka_unit_test_setup(test_start_disabled_starts_nothing, reset),
        cmocka_unit_test_setup(test_start_without_kinds_starts_nothing, reset),
        cmocka_unit_test_setup(test_claim_with_begin_steps, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
