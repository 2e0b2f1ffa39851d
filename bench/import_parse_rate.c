/*
 * The importer's CPU half on its own: parse + clean + COPY text for a
 * contacts-like CSV of 5 columns with 3 cleaning rules each, on one core,
 * no database. The goal (issue 10) is >= 400,000 rows/s for the whole import,
 * so this part must be well above it. Prints rows/s for the plain rules and
 * for the same with normalize_phone (libphonenumber) on the phone column.
 *
 *   build/import_parse_rate [rows [plain]]   (default 1,000,000 rows; "plain"
 *   skips the slow normalize_phone run)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "importer/clean.h"
#include "importer/parse.h"

static const char *const firsts[] = {"anna", " JOHN", "Marie-Claire ", "li", "o'neil", "ZOË"};
static const char *const lasts[] = {"smith", "DUPONT ", " van  der berg", "nguyen", "MÜLLER"};

/* CPU time of this process: the machine is shared, wall time says little */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char plain_cfg[] =
    "{\"columns\":["
    "{\"source_name\":\"First Name\",\"target_name\":\"first_name\",\"cleaning_rules\":["
    "{\"type\":\"trim\"},{\"type\":\"collapse_whitespace\"},{\"type\":\"title_case\"}]},"
    "{\"source_name\":\"Last Name\",\"target_name\":\"last_name\",\"cleaning_rules\":["
    "{\"type\":\"trim\"},{\"type\":\"collapse_whitespace\"},{\"type\":\"title_case\"}]},"
    "{\"source_name\":\"Email\",\"target_name\":\"email\",\"cleaning_rules\":["
    "{\"type\":\"trim\"},{\"type\":\"lowercase\"},{\"type\":\"validate_email\"}]},"
    "{\"source_name\":\"Phone\",\"target_name\":\"phone\",\"cleaning_rules\":["
    "{\"type\":\"trim\"},{\"type\":\"replace\",\"find\":\"-\",\"replace\":\"\"},"
    "{\"type\":\"%s\"%s}]},"
    "{\"source_name\":\"Signed Up\",\"target_name\":\"signed_up\",\"type\":\"date\","
    "\"cleaning_rules\":[{\"type\":\"trim\"},{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY\"},"
    "{\"type\":\"default\",\"value\":\"2020-01-01\"}]}]}";

static int run(const char *path, const char *cfg_text, long long rows)
{
    json_error_t je;
    json_t *cfg = json_loads(cfg_text, 0, &je);
    imp_error_t err;
    double t0 = now();
    imp_reader_t *r = imp_reader_open(path, IMP_FORMAT_DETECT, NULL, &err);
    if (!cfg || !r) {
        fprintf(stderr, "open: %s\n", cfg ? err.message : je.text);
        return 1;
    }
    size_t nh;
    const imp_cell_t *h = imp_reader_header(r, &nh);
    imp_plan_t *plan = imp_plan_compile(cfg, h, nh, &err);
    if (!plan) {
        fprintf(stderr, "plan: %s\n", err.message);
        return 1;
    }
    cd_buf_t out;
    cd_buf_init(&out, 1 << 20);
    long long ok = 0, skipped = 0, bytes = 0;
    imp_row_t row;
    imp_result_t res;
    int rc;
    while ((rc = imp_reader_next(r, &row, &err)) == 1) {
        if (!imp_plan_apply(plan, &row, &res))
            return 1;
        if (res.outcome != IMP_ROW_OK) {
            skipped++;
            continue;
        }
        ok++;
        if (out.len > (1 << 20) - 4096) {
            bytes += (long long)out.len; /* where the COPY thread would send it */
            cd_buf_reset(&out);
        }
        if (!imp_copy_append_row(&out, &res))
            return 1;
    }
    double t = now() - t0;
    bytes += (long long)out.len;
    printf(
        "%lld rows (%lld ok, %lld skipped) in %.2f s of CPU: %.0f rows/s, %.1f MB of COPY text\n",
        rows, ok, skipped, t, (double)rows / t, (double)bytes / 1e6);
    cd_buf_free(&out);
    imp_plan_free(plan);
    imp_reader_close(r);
    json_decref(cfg);
    return rc < 0;
}

int main(int argc, char **argv)
{
    long long rows = argc > 1 ? strtoll(argv[1], NULL, 10) : 1000000;
    char path[] = "/tmp/import_parse_rate_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        return 1;
    fprintf(f, "First Name,Last Name,Email,Phone,Signed Up\n");
    for (long long i = 0; i < rows; i++) {
        fprintf(f, "%s,\"%s\", User.%lld@Example.COM ,+1 415-555-%04lld,%02lld/%02lld/20%02lld\n",
                firsts[i % 6], lasts[i % 5], i, i % 10000, i % 28 + 1, i % 12 + 1, i % 25);
    }
    fclose(f);
    char cfg[4096];
    snprintf(cfg, sizeof(cfg), plain_cfg, "max_length", ",\"length\":20");
    printf("parse + 15 rules + COPY text, one core:\n  ");
    int rc = run(path, cfg, rows);
    if (argc > 2 && strcmp(argv[2], "plain") == 0)
        return rc;
    snprintf(cfg, sizeof(cfg), plain_cfg, "normalize_phone", ",\"default_country\":\"US\"");
    printf("the same with normalize_phone (libphonenumber) instead of max_length:\n  ");
    rc |= run(path, cfg, rows);
    unlink(path);
    return rc;
}
