/*
 * The schema cache of /rest/v1: which tables, views, columns, keys, foreign keys, functions
 * and types of the `public` schema the data API may use. It is read from the catalog in one
 * query (a JSON document built by PostgreSQL), turned into an immutable structure in one
 * arena, and swapped in atomically under a reference count, so a request always sees one
 * complete cache. A background thread with its own connection LISTENs on channel `pgrst` and
 * reloads on `NOTIFY pgrst, 'reload schema'` (sent by the DDL event trigger), and a request
 * that names an unknown table or function checks the catalog once, so that a table created a
 * moment ago is usable at once.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/text.h"
#include "rest/rest.h"
#include "rest/rest_internal.h"

/* ==========================================================================================
 * The catalog query. One row, one column: everything the cache needs as one JSON document.
 */
static const char CATALOG_SQL[] =
    "with\n"
    "tabs as (\n"
    "  select c.oid, c.relname, c.relkind,\n"
    "         pg_catalog.obj_description(c.oid, 'pg_class') as descr,\n"
    "         case when c.relkind in ('r', 'p') then true\n"
    "              else (pg_catalog.pg_relation_is_updatable(c.oid::regclass, true) & 8) = 8 end "
    "as ins,\n"
    "         case when c.relkind in ('r', 'p') then true\n"
    "              else (pg_catalog.pg_relation_is_updatable(c.oid::regclass, true) & 4) = 4 end "
    "as upd,\n"
    "         case when c.relkind in ('r', 'p') then true\n"
    "              else (pg_catalog.pg_relation_is_updatable(c.oid::regclass, true) & 16) = 16 end "
    "as del\n"
    "  from pg_catalog.pg_class c\n"
    "  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')\n"
    "),\n"
    "cols as (\n"
    "  select a.attrelid, a.attnum, a.attname,\n"
    "         pg_catalog.format_type(a.atttypid, a.atttypmod) as type,\n"
    "         coalesce(bt.typname, t.typname) as base_type,\n"
    "         coalesce(bt.typcategory, t.typcategory) as category,\n"
    "         coalesce(bt.oid, t.oid) as base_oid,\n"
    "         not a.attnotnull as nullable,\n"
    "         case when a.attidentity <> '' then\n"
    "                pg_catalog.format('nextval(%L::regclass)',\n"
    "                  pg_catalog.pg_get_serial_sequence(c.oid::regclass::text, a.attname))\n"
    "              when a.attgenerated = '' then pg_catalog.pg_get_expr(d.adbin, d.adrelid) end as "
    "def,\n"
    "         (a.attidentity = 'a' or a.attgenerated <> '') as generated,\n"
    "         pg_catalog.col_description(a.attrelid, a.attnum) as descr,\n"
    "         case when a.atttypmod > 4 and coalesce(bt.typname, t.typname) in ('varchar', "
    "'bpchar')\n"
    "              then a.atttypmod - 4 else 0 end as max_len\n"
    "  from pg_catalog.pg_attribute a\n"
    "  join pg_catalog.pg_class c on c.oid = a.attrelid\n"
    "  join pg_catalog.pg_type t on t.oid = a.atttypid\n"
    "  left join pg_catalog.pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype\n"
    "  left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum\n"
    "  where a.attnum > 0 and not a.attisdropped\n"
    "    and (a.attrelid in (select oid from tabs)\n"
    "         or a.attrelid in (select rt.typrelid from pg_catalog.pg_proc p\n"
    "                           join pg_catalog.pg_type rt on rt.oid = p.prorettype\n"
    "                           where p.pronamespace = 'public'::regnamespace and rt.typrelid <> "
    "0))\n"
    "),\n"
    "colj as (\n"
    "  select x.attrelid, pg_catalog.json_build_object(\n"
    "    'name', x.attname, 'type', x.type, 'base', x.base_type, 'cat', x.category,\n"
    "    'null', x.nullable, 'def', x.def, 'gen', x.generated, 'desc', x.descr, 'maxlen', "
    "x.max_len,\n"
    "    'enum', (select pg_catalog.json_agg(e.enumlabel order by e.enumsortorder)\n"
    "             from pg_catalog.pg_enum e where e.enumtypid = x.base_oid)) as j, x.attnum\n"
    "  from cols x\n"
    ")\n"
    "select pg_catalog.json_build_object(\n"
    "  'tables', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\n"
    "      'name', t.relname, 'kind', t.relkind, 'desc', t.descr,\n"
    "      'ins', t.ins, 'upd', t.upd, 'del', t.del,\n"
    "      'cols', (select coalesce(pg_catalog.json_agg(cj.j order by cj.attnum), '[]')\n"
    "               from colj cj where cj.attrelid = t.oid),\n"
    "      'pk', (select pg_catalog.json_agg(a.attname order by k.n)\n"
    "             from pg_catalog.pg_constraint pc, unnest(pc.conkey) with ordinality k(num, n),\n"
    "                  pg_catalog.pg_attribute a\n"
    "             where pc.conrelid = t.oid and pc.contype = 'p'\n"
    "               and a.attrelid = t.oid and a.attnum = k.num),\n"
    "      'uniq', (select pg_catalog.json_agg(u.cols)\n"
    "               from (select (select pg_catalog.json_agg(a.attname order by k.n)\n"
    "                             from unnest(pc.conkey) with ordinality k(num, n)\n"
    "                             join pg_catalog.pg_attribute a on a.attrelid = t.oid and "
    "a.attnum = k.num) as cols\n"
    "                     from pg_catalog.pg_constraint pc\n"
    "                     where pc.conrelid = t.oid and pc.contype in ('p', 'u')) u)\n"
    "    ) order by t.relname), '[]') from tabs t),\n"
    "  'fks', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\n"
    "      'name', pc.conname, 'from', c1.relname, 'to', c2.relname,\n"
    "      'from_cols', (select pg_catalog.json_agg(a.attname order by k.n)\n"
    "                    from unnest(pc.conkey) with ordinality k(num, n)\n"
    "                    join pg_catalog.pg_attribute a on a.attrelid = pc.conrelid and a.attnum = "
    "k.num),\n"
    "      'to_cols', (select pg_catalog.json_agg(a.attname order by k.n)\n"
    "                  from unnest(pc.confkey) with ordinality k(num, n)\n"
    "                  join pg_catalog.pg_attribute a on a.attrelid = pc.confrelid and a.attnum = "
    "k.num)\n"
    "    ) order by pc.conname), '[]')\n"
    "    from pg_catalog.pg_constraint pc\n"
    "    join tabs c1 on c1.oid = pc.conrelid\n"
    "    join tabs c2 on c2.oid = pc.confrelid\n"
    "    where pc.contype = 'f'),\n"
    "  'funcs', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\n"
    "      'name', p.proname, 'desc', pg_catalog.obj_description(p.oid, 'pg_proc'),\n"
    "      'set', p.proretset, 'vol', p.provolatile,\n"
    "      'rettype', pg_catalog.format_type(p.prorettype, null), 'rettyp', rt.typtype,\n"
    "      'rettable', (select rc.relname from pg_catalog.pg_class rc\n"
    "                   where rc.oid = rt.typrelid and rc.relnamespace = 'public'::regnamespace\n"
    "                     and rc.relkind in ('r', 'p', 'v', 'm', 'f')),\n"
    "      'ndef', p.pronargdefaults,\n"
    "      'args', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\n"
    "                  'name', coalesce(a.name, ''), 'type', pg_catalog.format_type(a.typ, null),\n"
    "                  'mode', coalesce(a.mode, 'i'),\n"
    "                  'json', a.typ in ('json'::regtype, 'jsonb'::regtype)) order by a.n), '[]')\n"
    "               from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames, "
    "p.proargmodes)\n"
    "                    with ordinality a(typ, name, mode, n)),\n"
    "      'retcols', case when rt.typtype = 'c' then\n"
    "                   (select pg_catalog.json_agg(cj.j order by cj.attnum) from colj cj where "
    "cj.attrelid = rt.typrelid)\n"
    "                 end\n"
    "    ) order by p.proname, p.oid), '[]')\n"
    "    from pg_catalog.pg_proc p\n"
    "    join pg_catalog.pg_type rt on rt.oid = p.prorettype\n"
    "    where p.pronamespace = 'public'::regnamespace and p.prokind = 'f'\n"
    "      and rt.typname not in ('trigger', 'event_trigger', 'internal', 'language_handler', "
    "'fdw_handler',\n"
    "                             'index_am_handler', 'tsm_handler', 'table_am_handler')),\n"
    "  'viewcols', (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_object(\n"
    "      'view', v.relname, 'col', m.m[1], 'table', bc.relname, 'base', ba.attname)), '[]')\n"
    "    from pg_catalog.pg_class v\n"
    "    join pg_catalog.pg_rewrite r on r.ev_class = v.oid\n"
    "    cross join lateral pg_catalog.regexp_matches(r.ev_action::text,\n"
    "      ':resname (\\S+) :ressortgroupref \\d+ :resorigtbl (\\d+) :resorigcol (\\d+)', 'g') "
    "m(m)\n"
    "    join pg_catalog.pg_class bc on bc.oid = m.m[2]::oid and bc.relnamespace = "
    "'public'::regnamespace\n"
    "    join pg_catalog.pg_attribute ba on ba.attrelid = bc.oid and ba.attnum = m.m[3]::int2\n"
    "    where v.relnamespace = 'public'::regnamespace and v.relkind in ('v', 'm')),\n"
    "  'types', (select pg_catalog.json_agg(distinct t.typname)\n"
    "            from pg_catalog.pg_type t\n"
    "            where t.typnamespace in ('pg_catalog'::regnamespace, 'public'::regnamespace)\n"
    "              and t.typtype <> 'p' and t.typname !~ '^(_|pg_)' and t.typisdefined\n"
    "              and (t.typrelid = 0 or t.typnamespace = 'public'::regnamespace))\n"
    ")::text\n";

const char *rest__schema_catalog_sql(void)
{
    return CATALOG_SQL;
}

/* ==========================================================================================
 * Errors
 */

bool rest__fail(rest__err_t *err, int status, const char *code, const char *message,
                const char *details, const char *hint)
{
    err->status = status;
    snprintf(err->code, sizeof(err->code), "%s", code);
    snprintf(err->message, sizeof(err->message), "%s", message ? message : "");
    snprintf(err->details, sizeof(err->details), "%s", details ? details : "");
    snprintf(err->hint, sizeof(err->hint), "%s", hint ? hint : "");
    err->details_json = false;
    return false;
}

/* ==========================================================================================
 * Building a schema from the catalog document
 */

struct loader {
    rest_schema_t *s;
    char *why;
    size_t whylen;
};

static bool load_fail(struct loader *l, const char *what)
{
    snprintf(l->why, l->whylen, "%s", what);
    return false;
}

static void *l_alloc(struct loader *l, size_t n)
{
    void *p = cd_arena_alloc(&l->s->arena, n);
    if (!p)
        load_fail(l, "the schema cache is larger than its memory limit");
    return p;
}

/* A copy of a JSON string member in the arena; NULL when absent or null. *ok turns false
 * when memory runs out. */
static const char *l_str(struct loader *l, json_t *obj, const char *key, bool *ok)
{
    const char *v = json_string_value(json_object_get(obj, key));
    if (!v)
        return NULL;
    size_t n = strlen(v);
    char *p = l_alloc(l, n + 1);
    if (!p) {
        *ok = false;
        return NULL;
    }
    memcpy(p, v, n + 1);
    return p;
}

static bool l_bool(json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

static bool load_columns(struct loader *l, json_t *arr, rest_col_t **out, size_t *n_out)
{
    size_t n = json_array_size(arr);
    bool ok = true;
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return true;
    rest_col_t *cols = l_alloc(l, n * sizeof(*cols));
    if (!cols)
        return false;
    memset(cols, 0, n * sizeof(*cols));
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(arr, i);
        rest_col_t *col = &cols[i];
        col->name = l_str(l, c, "name", &ok);
        col->type = l_str(l, c, "type", &ok);
        col->base_type = l_str(l, c, "base", &ok);
        col->default_expr = l_str(l, c, "def", &ok);
        col->description = l_str(l, c, "desc", &ok);
        const char *cat = json_string_value(json_object_get(c, "cat"));
        col->category = cat && *cat ? *cat : 'X';
        col->nullable = l_bool(c, "null");
        col->generated = l_bool(c, "gen");
        json_int_t ml = json_integer_value(json_object_get(c, "maxlen"));
        col->max_len = ml > 0 && ml < 100000000 ? (int)ml : 0;
        if (!ok || !col->name || !col->type || !col->base_type)
            return load_fail(l, "a column without name or type in the catalog document");
        col->is_json = strcmp(col->base_type, "json") == 0 || strcmp(col->base_type, "jsonb") == 0;
        col->is_tsvector = strcmp(col->base_type, "tsvector") == 0;
        json_t *en = json_object_get(c, "enum");
        size_t ne = json_array_size(en);
        if (ne) {
            col->enum_values = l_alloc(l, ne * sizeof(char *));
            if (!col->enum_values)
                return false;
            for (size_t k = 0; k < ne; k++) {
                const char *v = json_string_value(json_array_get(en, k));
                size_t vl = v ? strlen(v) : 0;
                char *p = l_alloc(l, vl + 1);
                if (!p)
                    return false;
                if (v)
                    memcpy(p, v, vl);
                p[vl] = '\0';
                col->enum_values[k] = p;
            }
            col->n_enum = ne;
        }
    }
    *out = cols;
    *n_out = n;
    return true;
}

ptrdiff_t rest__table_col_index(const rest_table_t *t, const char *name)
{
    for (size_t i = 0; i < t->n_cols; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

const rest_col_t *rest__table_col(const rest_table_t *t, const char *name)
{
    ptrdiff_t i = rest__table_col_index(t, name);
    return i < 0 ? NULL : &t->cols[i];
}

/* Column names (a JSON array) to indexes into t's columns. */
static bool load_colset(struct loader *l, const rest_table_t *t, json_t *names, rest_colset_t *out)
{
    size_t n = json_array_size(names);
    out->n = 0;
    out->cols = NULL;
    if (n == 0)
        return true;
    out->cols = l_alloc(l, n * sizeof(size_t));
    if (!out->cols)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(names, i));
        ptrdiff_t k = name ? rest__table_col_index(t, name) : -1;
        if (k < 0)
            return load_fail(l, "a key names a column that the catalog document does not list");
        out->cols[i] = (size_t)k;
    }
    out->n = n;
    return true;
}

static int cmp_table(const void *a, const void *b)
{
    return strcmp(((const rest_table_t *)a)->name, ((const rest_table_t *)b)->name);
}

static bool load_tables(struct loader *l, json_t *arr)
{
    rest_schema_t *s = l->s;
    size_t n = json_array_size(arr);
    bool ok = true;
    if (n == 0)
        return true;
    s->tables = l_alloc(l, n * sizeof(rest_table_t));
    if (!s->tables)
        return false;
    memset(s->tables, 0, n * sizeof(rest_table_t));
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_array_get(arr, i);
        rest_table_t *t = &s->tables[i];
        t->name = l_str(l, j, "name", &ok);
        t->description = l_str(l, j, "desc", &ok);
        const char *kind = json_string_value(json_object_get(j, "kind"));
        if (!ok || !t->name || !kind)
            return load_fail(l, "a table without a name in the catalog document");
        t->kind = *kind;
        t->is_view = t->kind == 'v' || t->kind == 'm' || t->kind == 'f';
        t->insertable = l_bool(j, "ins");
        t->updatable = l_bool(j, "upd");
        t->deletable = l_bool(j, "del");
        if (!load_columns(l, json_object_get(j, "cols"), &t->cols, &t->n_cols))
            return false;
        if (!load_colset(l, t, json_object_get(j, "pk"), &t->pk))
            return false;
        for (size_t k = 0; k < t->pk.n; k++)
            t->cols[t->pk.cols[k]].is_pk = true;
        json_t *uq = json_object_get(j, "uniq");
        size_t nu = json_array_size(uq);
        if (nu) {
            t->uniques = l_alloc(l, nu * sizeof(rest_colset_t));
            if (!t->uniques)
                return false;
            for (size_t k = 0; k < nu; k++)
                if (!load_colset(l, t, json_array_get(uq, k), &t->uniques[k]))
                    return false;
            t->n_uniques = nu;
        }
    }
    s->n_tables = n;
    qsort(s->tables, n, sizeof(rest_table_t), cmp_table);
    return true;
}

const rest_table_t *rest__schema_table(const rest_schema_t *s, const char *name)
{
    size_t lo = 0, hi = s->n_tables;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, s->tables[mid].name);
        if (c == 0)
            return &s->tables[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* A view column that shows a base table column unchanged (from the view's query tree). */
struct view_col {
    size_t view, view_col, table, table_col;
};

struct fk_list {
    rest_fk_t *v;
    size_t n, cap;
};

static bool fk_push(struct loader *l, struct fk_list *fl, const rest_fk_t *fk)
{
    if (fl->n == fl->cap) {
        size_t ncap = fl->cap ? fl->cap * 2 : 16;
        rest_fk_t *nv = realloc(fl->v, ncap * sizeof(*nv));
        if (!nv)
            return load_fail(l, "out of memory");
        fl->v = nv;
        fl->cap = ncap;
    }
    fl->v[fl->n++] = *fk;
    return true;
}

/* Reads the view-column map; a view column with two different origins is left out. */
static bool load_view_cols(struct loader *l, json_t *arr, struct view_col **out, size_t *n_out)
{
    size_t n = json_array_size(arr), w = 0;
    struct view_col *v = n ? calloc(n, sizeof(*v)) : NULL;
    *out = NULL;
    *n_out = 0;
    if (n && !v)
        return load_fail(l, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *vn, *vc, *tn, *tc;
        cd_json_strings(json_array_get(arr, i), "view", &vn, "col", &vc, "table", &tn, "base", &tc,
                        NULL);
        const rest_table_t *vt = vn ? rest__schema_table(l->s, vn) : NULL;
        const rest_table_t *bt = tn ? rest__schema_table(l->s, tn) : NULL;
        if (!vt || !bt || !vc || !tc)
            continue;
        ptrdiff_t vci = rest__table_col_index(vt, vc), tci = rest__table_col_index(bt, tc);
        if (vci < 0 || tci < 0)
            continue;
        struct view_col m = {(size_t)(vt - l->s->tables), (size_t)vci, (size_t)(bt - l->s->tables),
                             (size_t)tci};
        bool clash = false;
        for (size_t k = 0; k < w; k++) {
            if (v[k].view == m.view && v[k].view_col == m.view_col) {
                if (v[k].table != m.table || v[k].table_col != m.table_col)
                    v[k].view = SIZE_MAX; /* ambiguous: drop it */
                clash = true;
            }
        }
        if (!clash)
            v[w++] = m;
    }
    *out = v;
    *n_out = w;
    return true;
}

/* The columns of view `view` showing table columns cols[0..n) of `table`, into out (arena);
 * false when the view does not show all of them. */
static bool view_covers(struct loader *l, const struct view_col *vc, size_t n_vc, size_t view,
                        size_t table, const size_t *cols, size_t n, size_t **out)
{
    size_t *res = NULL;
    for (size_t i = 0; i < n; i++) {
        ptrdiff_t found = -1;
        for (size_t k = 0; k < n_vc && found < 0; k++)
            if (vc[k].view == view && vc[k].table == table && vc[k].table_col == cols[i])
                found = (ptrdiff_t)vc[k].view_col;
        if (found < 0)
            return false;
        if (!res) {
            res = l_alloc(l, n * sizeof(size_t));
            if (!res)
                return false;
        }
        res[i] = (size_t)found;
    }
    *out = res;
    return res != NULL;
}

/* Foreign keys, plus those views inherit from their base tables (PostgREST does the same):
 * a view showing every column of a foreign key is on that end of the relationship too. */
static bool load_fks(struct loader *l, json_t *arr, json_t *viewcols)
{
    rest_schema_t *s = l->s;
    size_t n = json_array_size(arr);
    bool ok = true;
    struct fk_list fl = {NULL, 0, 0};
    struct view_col *vc = NULL;
    size_t n_vc = 0;
    for (size_t i = 0; i < n && ok; i++) {
        json_t *j = json_array_get(arr, i);
        rest_fk_t fk;
        memset(&fk, 0, sizeof(fk));
        fk.name = l_str(l, j, "name", &ok);
        const char *from = json_string_value(json_object_get(j, "from"));
        const char *to = json_string_value(json_object_get(j, "to"));
        if (!ok || !fk.name || !from || !to) {
            ok = load_fail(l, "a foreign key without a name in the catalog document");
            break;
        }
        const rest_table_t *tf = rest__schema_table(s, from), *tt = rest__schema_table(s, to);
        if (!tf || !tt)
            continue;
        fk.from = (size_t)(tf - s->tables);
        fk.to = (size_t)(tt - s->tables);
        rest_colset_t fc, tc;
        if (!load_colset(l, tf, json_object_get(j, "from_cols"), &fc) ||
            !load_colset(l, tt, json_object_get(j, "to_cols"), &tc)) {
            ok = false;
            break;
        }
        if (fc.n != tc.n || fc.n == 0) {
            ok = load_fail(l, "a foreign key whose column lists differ in length");
            break;
        }
        fk.from_cols = fc.cols;
        fk.to_cols = tc.cols;
        fk.n_cols = fc.n;
        ok = fk_push(l, &fl, &fk);
    }
    if (ok)
        ok = load_view_cols(l, viewcols, &vc, &n_vc);
    size_t n_base = fl.n;
    for (size_t i = 0; ok && i < n_base; i++) {
        rest_fk_t base = fl.v[i];
        for (size_t v = 0; ok && v < s->n_tables; v++) {
            if (!s->tables[v].is_view)
                continue;
            size_t *vcols;
            if (view_covers(l, vc, n_vc, v, base.from, base.from_cols, base.n_cols, &vcols)) {
                rest_fk_t d = base;
                d.from = v;
                d.from_cols = vcols;
                ok = fk_push(l, &fl, &d);
                for (size_t w = 0; ok && w < s->n_tables; w++) {
                    size_t *wcols;
                    if (s->tables[w].is_view &&
                        view_covers(l, vc, n_vc, w, base.to, base.to_cols, base.n_cols, &wcols)) {
                        rest_fk_t e = d;
                        e.to = w;
                        e.to_cols = wcols;
                        ok = fk_push(l, &fl, &e);
                    }
                }
            }
            if (ok && view_covers(l, vc, n_vc, v, base.to, base.to_cols, base.n_cols, &vcols)) {
                rest_fk_t d = base;
                d.to = v;
                d.to_cols = vcols;
                ok = fk_push(l, &fl, &d);
            }
        }
    }
    free(vc);
    if (ok && fl.n) {
        s->fks = l_alloc(l, fl.n * sizeof(rest_fk_t));
        if (s->fks) {
            memcpy(s->fks, fl.v, fl.n * sizeof(rest_fk_t));
            s->n_fks = fl.n;
        } else {
            ok = false;
        }
    }
    free(fl.v);
    return ok;
}

struct func_sort {
    rest_func_t f;
    size_t order;
};

static int cmp_func(const void *a, const void *b)
{
    const struct func_sort *x = a, *y = b;
    int c = strcmp(x->f.name, y->f.name);
    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool load_func(struct loader *l, json_t *j, rest_func_t *f)
{
    bool ok = true;
    memset(f, 0, sizeof(*f));
    f->name = l_str(l, j, "name", &ok);
    f->description = l_str(l, j, "desc", &ok);
    f->ret_type = l_str(l, j, "rettype", &ok);
    const char *vol = json_string_value(json_object_get(j, "vol"));
    const char *rettyp = json_string_value(json_object_get(j, "rettyp"));
    if (!ok || !f->name || !f->ret_type || !vol || !rettyp)
        return load_fail(l, "a function without a name in the catalog document");
    f->volatility = *vol;
    f->returns_set = l_bool(j, "set");
    f->ret_table = -1;
    const char *rettable = json_string_value(json_object_get(j, "rettable"));
    if (rettable) {
        const rest_table_t *t = rest__schema_table(l->s, rettable);
        if (t)
            f->ret_table = t - l->s->tables;
    }
    json_t *args = json_object_get(j, "args");
    size_t na = json_array_size(args), n_in = 0, n_out = 0;
    for (size_t i = 0; i < na; i++) {
        const char *m = json_string_value(json_object_get(json_array_get(args, i), "mode"));
        if (!m || *m == 'i' || *m == 'b' || *m == 'v')
            n_in++;
        if (m && (*m == 'o' || *m == 'b' || *m == 't'))
            n_out++;
    }
    if (n_in) {
        f->args = l_alloc(l, n_in * sizeof(rest_arg_t));
        if (!f->args)
            return false;
    }
    rest_col_t *outs = NULL;
    if (n_out) {
        outs = l_alloc(l, n_out * sizeof(rest_col_t));
        if (!outs)
            return false;
        memset(outs, 0, n_out * sizeof(rest_col_t));
    }
    size_t ki = 0, ko = 0;
    for (size_t i = 0; i < na; i++) {
        json_t *a = json_array_get(args, i);
        const char *m = json_string_value(json_object_get(a, "mode"));
        const char *name = l_str(l, a, "name", &ok);
        const char *type = l_str(l, a, "type", &ok);
        if (!ok || !name || !type)
            return load_fail(l, "a function argument without a type in the catalog document");
        if (!m || *m == 'i' || *m == 'b' || *m == 'v') {
            rest_arg_t *arg = &f->args[ki++];
            arg->name = name;
            arg->type = type;
            arg->variadic = m && *m == 'v';
            arg->is_json = l_bool(a, "json");
            arg->has_default = false;
        }
        if (m && (*m == 'o' || *m == 'b' || *m == 't')) {
            rest_col_t *c = &outs[ko++];
            c->name = name;
            c->type = type;
            c->base_type = type;
            c->nullable = true;
            c->category = 'X';
            c->is_json = strcmp(type, "json") == 0 || strcmp(type, "jsonb") == 0;
            c->is_tsvector = strcmp(type, "tsvector") == 0;
        }
    }
    f->n_args = n_in;
    json_int_t ndef = json_integer_value(json_object_get(j, "ndef"));
    if (ndef < 0 || (size_t)ndef > n_in)
        ndef = 0;
    for (size_t i = n_in - (size_t)ndef; i < n_in; i++)
        f->args[i].has_default = true;
    f->n_required = n_in - (size_t)ndef;

    if (strcmp(f->ret_type, "void") == 0) {
        f->ret_kind = REST_RET_VOID;
    } else if (*rettyp == 'c') {
        f->ret_kind = REST_RET_COMPOSITE;
        if (!load_columns(l, json_object_get(j, "retcols"), &f->ret_cols, &f->n_ret_cols))
            return false;
    } else if (strcmp(f->ret_type, "record") == 0 && n_out) {
        f->ret_kind = REST_RET_COMPOSITE;
        f->ret_cols = outs;
        f->n_ret_cols = n_out;
    } else {
        f->ret_kind = REST_RET_SCALAR;
    }
    return true;
}

static bool load_funcs(struct loader *l, json_t *arr)
{
    rest_schema_t *s = l->s;
    size_t n = json_array_size(arr);
    if (n == 0)
        return true;
    struct func_sort *tmp = malloc(n * sizeof(*tmp));
    if (!tmp)
        return load_fail(l, "out of memory");
    for (size_t i = 0; i < n; i++) {
        tmp[i].order = i;
        if (!load_func(l, json_array_get(arr, i), &tmp[i].f)) {
            free(tmp);
            return false;
        }
    }
    qsort(tmp, n, sizeof(*tmp), cmp_func);
    s->funcs = l_alloc(l, n * sizeof(rest_func_t));
    if (!s->funcs) {
        free(tmp);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        s->funcs[i] = tmp[i].f;
    s->n_funcs = n;
    free(tmp);
    return true;
}

const rest_func_t *rest__schema_funcs(const rest_schema_t *s, const char *name, size_t *n)
{
    size_t lo = 0, hi = s->n_funcs;
    *n = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(s->funcs[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t k = lo;
    while (k < s->n_funcs && strcmp(s->funcs[k].name, name) == 0)
        k++;
    *n = k - lo;
    return *n ? &s->funcs[lo] : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool load_types(struct loader *l, json_t *arr)
{
    rest_schema_t *s = l->s;
    size_t n = json_array_size(arr);
    if (n == 0)
        return true;
    s->types = l_alloc(l, n * sizeof(char *));
    if (!s->types)
        return false;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v))
            continue;
        char *p = l_alloc(l, json_string_length(v) + 1);
        if (!p)
            return false;
        memcpy(p, json_string_value(v), json_string_length(v) + 1);
        s->types[w++] = p;
    }
    s->n_types = w;
    qsort(s->types, w, sizeof(char *), cmp_str);
    return true;
}

/* SQL spellings that are not pg_type names but name the same types. */
static const char *const TYPE_ALIASES[] = {
    "bigint",
    "bigserial",
    "boolean",
    "char",
    "character",
    "character varying",
    "decimal",
    "double precision",
    "float",
    "int",
    "integer",
    "real",
    "smallint",
    "timestamp with time zone",
    "timestamp without time zone",
    "timestamptz",
    "time with time zone",
    "time without time zone",
    "varchar",
};

bool rest__schema_has_type(const rest_schema_t *s, const char *name)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(TYPE_ALIASES); i++)
        if (strcmp(TYPE_ALIASES[i], name) == 0)
            return true;
    return bsearch(&name, s->types, s->n_types, sizeof(char *), cmp_str) != NULL;
}

rest_schema_t *rest__schema_from_json(const char *json, size_t len, char *why, size_t whylen)
{
    json_error_t je;
    if (len > REST_SCHEMA_JSON_MAX) {
        snprintf(why, whylen, "the catalog document is larger than %u bytes", REST_SCHEMA_JSON_MAX);
        return NULL;
    }
    json_t *doc = json_loadb(json, len, 0, &je);
    if (!doc || !json_is_object(doc)) {
        snprintf(why, whylen, "the catalog document is not a JSON object: %s", je.text);
        json_decref(doc);
        return NULL;
    }
    rest_schema_t *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(doc);
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    atomic_init(&s->refs, 1);
    cd_arena_init(&s->arena, REST_SCHEMA_ARENA_MAX);
    struct loader l = {s, why, whylen};
    bool ok = load_tables(&l, json_object_get(doc, "tables")) &&
              load_fks(&l, json_object_get(doc, "fks"), json_object_get(doc, "viewcols")) &&
              load_funcs(&l, json_object_get(doc, "funcs")) &&
              load_types(&l, json_object_get(doc, "types"));
    json_decref(doc);
    if (!ok) {
        cd_arena_free(&s->arena);
        free(s);
        return NULL;
    }
    return s;
}

/* ==========================================================================================
 * Names: similarity for "Perhaps you meant ..." hints
 */

double rest__similarity(const char *a, const char *b)
{
    enum { MAXN = 128 };
    size_t n = strlen(a), m = strlen(b);
    if (n > MAXN || m > MAXN)
        return 0.0;
    if (n == 0 && m == 0)
        return 1.0;
    unsigned prev[MAXN + 1], cur[MAXN + 1];
    for (size_t j = 0; j <= m; j++)
        prev[j] = (unsigned)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= m; j++) {
            unsigned sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            unsigned del = prev[j] + 1, ins = cur[j - 1] + 1;
            unsigned best = sub < del ? sub : del;
            cur[j] = best < ins ? best : ins;
        }
        memcpy(prev, cur, (m + 1) * sizeof(unsigned));
    }
    size_t longer = n > m ? n : m;
    return 1.0 - (double)prev[m] / (double)longer;
}

void rest__table_hint(const rest_schema_t *s, const char *name, char *out, size_t outlen)
{
    double best = 0.0;
    const char *pick = NULL;
    for (size_t i = 0; i < s->n_tables; i++) {
        double d = rest__similarity(name, s->tables[i].name);
        if (d > best) {
            best = d;
            pick = s->tables[i].name;
        }
    }
    if (pick && best >= 0.6)
        snprintf(out, outlen, "Perhaps you meant the table 'public.%s'", pick);
    else if (outlen)
        out[0] = '\0';
}

/* ==========================================================================================
 * Relationships (PostgREST's Relationship + findRel)
 */

bool rest__rel_to_one(const rest_rel_t *r)
{
    return r->card == REST_M2O || r->card == REST_O2O;
}

/* Do the columns `cols` of table t form its primary key or a unique constraint? */
static bool cols_unique(const rest_table_t *t, const size_t *cols, size_t n)
{
    for (size_t u = 0; u < t->n_uniques; u++) {
        const rest_colset_t *cs = &t->uniques[u];
        if (cs->n != n)
            continue;
        bool all = true;
        for (size_t i = 0; i < n && all; i++) {
            bool found = false;
            for (size_t k = 0; k < n && !found; k++)
                found = cs->cols[k] == cols[i];
            all = found;
        }
        if (all)
            return true;
    }
    return false;
}

static bool cols_in_pk(const rest_table_t *t, const size_t *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < t->pk.n && !found; k++)
            found = t->pk.cols[k] == cols[i];
        if (!found)
            return false;
    }
    return true;
}

/* The column pair of a single-column relationship, seen from the origin: (origin column,
 * target column); NULLs otherwise. */
static void single_cols(const rest_schema_t *s, const rest_rel_t *r, const char **oc,
                        const char **tc)
{
    *oc = *tc = NULL;
    if (r->card == REST_M2M || r->fk->n_cols != 1)
        return;
    const rest_table_t *from = &s->tables[r->fk->from], *to = &s->tables[r->fk->to];
    const char *fcol = from->cols[r->fk->from_cols[0]].name;
    const char *tcol = to->cols[r->fk->to_cols[0]].name;
    if (r->fk_from_origin) {
        *oc = fcol;
        *tc = tcol;
    } else {
        *oc = tcol;
        *tc = fcol;
    }
}

/* Every relationship of origin, into out (at most max); returns how many exist. */
static size_t origin_rels(const rest_schema_t *s, size_t origin, rest_rel_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_fks; i++) {
        const rest_fk_t *fk = &s->fks[i];
        if (fk->from == origin) {
            rest_rel_t r = {.origin = origin, .target = fk->to, .fk = fk, .fk_from_origin = true};
            r.card =
                cols_unique(&s->tables[fk->from], fk->from_cols, fk->n_cols) ? REST_O2O : REST_M2O;
            if (n < max)
                out[n] = r;
            n++;
        }
        if (fk->to == origin) {
            rest_rel_t r = {.origin = origin, .target = fk->from, .fk = fk};
            r.card =
                cols_unique(&s->tables[fk->from], fk->from_cols, fk->n_cols) ? REST_O2O : REST_O2M;
            if (n < max)
                out[n] = r;
            n++;
        }
    }
    /* Many-to-many: a junction table with a foreign key to origin and another one to the
     * target, both inside the junction's primary key. */
    for (size_t i = 0; i < s->n_fks; i++) {
        const rest_fk_t *a = &s->fks[i];
        if (a->to != origin)
            continue;
        const rest_table_t *j = &s->tables[a->from];
        if (!j->pk.n || !cols_in_pk(j, a->from_cols, a->n_cols))
            continue;
        for (size_t k = 0; k < s->n_fks; k++) {
            const rest_fk_t *b = &s->fks[k];
            if (k == i || b->from != a->from || !cols_in_pk(j, b->from_cols, b->n_cols))
                continue;
            rest_rel_t r = {.card = REST_M2M,
                            .origin = origin,
                            .target = b->to,
                            .fk = a,
                            .fk2 = b,
                            .junction = a->from};
            if (n < max)
                out[n] = r;
            n++;
        }
    }
    return n;
}

static bool rel_matches(const rest_schema_t *s, const rest_rel_t *r, const char *target,
                        const char *hint)
{
    const char *tname = s->tables[r->target].name;
    const char *oc, *tc;
    single_cols(s, r, &oc, &tc);
    bool is_view = s->tables[r->target].is_view;
    const char *cons = r->card == REST_M2M ? NULL : r->fk->name;
    bool self = r->card != REST_M2M && r->fk->from == r->fk->to;
    if (self) {
        if (!hint)
            return (strcmp(target, tname) == 0 && r->card == REST_O2M) ||
                   (oc && strcmp(target, oc) == 0 && r->card == REST_M2O);
        return strcmp(target, tname) == 0 && r->card == REST_O2M && tc && strcmp(hint, tc) == 0;
    }
    if (!hint)
        return strcmp(target, tname) == 0 || (cons && strcmp(target, cons) == 0 && !is_view) ||
               (oc && strcmp(target, oc) == 0 && !is_view);
    if (strcmp(target, tname) != 0)
        return false;
    if (cons && strcmp(hint, cons) == 0)
        return true;
    if (oc && (strcmp(hint, oc) == 0 || strcmp(hint, tc) == 0))
        return true;
    return r->card == REST_M2M && strcmp(hint, s->tables[r->junction].name) == 0;
}

static const char *card_name(enum rest_card c)
{
    switch (c) {
    case REST_M2O:
        return "many-to-one";
    case REST_O2M:
        return "one-to-many";
    case REST_O2O:
        return "one-to-one";
    case REST_M2M:
        return "many-to-many";
    }
    return "?";
}

/* "(a, b)" for columns of table t into b. */
static void cols_text(const rest_table_t *t, const size_t *cols, size_t n, char *out, size_t len)
{
    size_t w = 0;
    if (len < 3)
        return;
    out[w++] = '(';
    for (size_t i = 0; i < n && w + 4 < len; i++) {
        int k = snprintf(out + w, len - w - 2, "%s%s", i ? ", " : "", t->cols[cols[i]].name);
        if (k < 0 || (size_t)k >= len - w - 2)
            break;
        w += (size_t)k;
    }
    out[w++] = ')';
    out[w] = '\0';
}

static json_t *rel_json(const rest_schema_t *s, const rest_rel_t *r)
{
    char emb[300], rel[1200], c1[400], c2[400];
    const rest_table_t *o = &s->tables[r->origin], *t = &s->tables[r->target];
    snprintf(emb, sizeof(emb), "%s with %s", o->name, t->name);
    if (r->card == REST_M2M) {
        const rest_table_t *j = &s->tables[r->junction];
        cols_text(j, r->fk->from_cols, r->fk->n_cols, c1, sizeof(c1));
        cols_text(j, r->fk2->from_cols, r->fk2->n_cols, c2, sizeof(c2));
        snprintf(rel, sizeof(rel), "%s using %s%s and %s%s", j->name, r->fk->name, c1, r->fk2->name,
                 c2);
    } else {
        const rest_table_t *from = &s->tables[r->fk->from], *to = &s->tables[r->fk->to];
        if (r->fk_from_origin) {
            cols_text(from, r->fk->from_cols, r->fk->n_cols, c1, sizeof(c1));
            cols_text(to, r->fk->to_cols, r->fk->n_cols, c2, sizeof(c2));
        } else {
            cols_text(to, r->fk->to_cols, r->fk->n_cols, c1, sizeof(c1));
            cols_text(from, r->fk->from_cols, r->fk->n_cols, c2, sizeof(c2));
        }
        snprintf(rel, sizeof(rel), "%s using %s%s and %s%s", r->fk->name, o->name, c1, t->name, c2);
    }
    return json_pack("{s:s, s:s, s:s}", "cardinality", card_name(r->card), "embedding", emb,
                     "relationship", rel);
}

bool rest__find_rel(const rest_schema_t *s, size_t origin, const char *target, const char *hint,
                    rest_rel_t *out, rest__err_t *err)
{
    enum { MAXR = 256 };
    rest_rel_t all[MAXR];
    size_t n = origin_rels(s, origin, all, MAXR);
    if (n > MAXR)
        n = MAXR;
    rest_rel_t found[REST_MAX_RELS_FOUND];
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rel_matches(s, &all[i], target, hint))
            continue;
        if (nf < REST_MAX_RELS_FOUND)
            found[nf] = all[i];
        nf++;
    }
    const char *oname = s->tables[origin].name;
    char msg[REST_ERROR_MESSAGE_MAX];
    if (nf == 1) {
        *out = found[0];
        return true;
    }
    if (nf == 0) {
        char det[REST_ERR_DETAILS_MAX], hnt[REST_ERR_HINT_MAX] = "";
        snprintf(msg, sizeof(msg),
                 "Could not find a relationship between '%s' and '%s' in the schema cache", oname,
                 target);
        snprintf(det, sizeof(det),
                 "Searched for a foreign key relationship between '%s' and '%s'%s%s%s in the "
                 "schema 'public', but no matches were found.",
                 oname, target, hint ? " using the hint '" : "", hint ? hint : "", hint ? "'" : "");
        double best = 0.0;
        const char *pick = NULL;
        for (size_t i = 0; i < n; i++) {
            const char *tn = s->tables[all[i].target].name;
            double d = rest__similarity(target, tn);
            if (d > best && d < 1.0) {
                best = d;
                pick = tn;
            }
        }
        if (pick && best >= 0.5)
            snprintf(hnt, sizeof(hnt), "Perhaps you meant '%s' instead of '%s'.", pick, target);
        return rest__fail(err, 400, "PGRST200", msg, det, *hnt ? hnt : NULL);
    }
    snprintf(msg, sizeof(msg),
             "Could not embed because more than one relationship was found for '%s' and '%s'",
             oname, target);
    json_t *arr = json_array();
    char hnt[REST_ERR_HINT_MAX];
    size_t w =
        (size_t)snprintf(hnt, sizeof(hnt), "Try changing '%s' to one of the following: ", target);
    size_t shown = nf < REST_MAX_RELS_FOUND ? nf : REST_MAX_RELS_FOUND;
    for (size_t i = 0; i < shown; i++) {
        json_array_append_new(arr, rel_json(s, &found[i]));
        const char *h =
            found[i].card == REST_M2M ? s->tables[found[i].junction].name : found[i].fk->name;
        if (w < sizeof(hnt)) {
            int k = snprintf(hnt + w, sizeof(hnt) - w, "%s'%s!%s'", i ? ", " : "",
                             s->tables[found[i].target].name, h);
            if (k > 0)
                w += (size_t)k;
        }
    }
    if (w < sizeof(hnt))
        snprintf(hnt + w, sizeof(hnt) - w, ". Find the desired relationship in the 'details' key.");
    rest__fail(err, 300, "PGRST201", msg, NULL, hnt);
    char *det = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (det && strlen(det) < sizeof(err->details)) {
        snprintf(err->details, sizeof(err->details), "%s", det);
        err->details_json = true;
    }
    free(det);
    return false;
}

/* ==========================================================================================
 * The current cache, reference counting, loading
 */

static struct {
    pthread_mutex_t mu;        /* guards current */
    pthread_mutex_t reload_mu; /* one load at a time, installed in load order */
    rest_schema_t *current;
    uint64_t generation;
    /* the reload thread */
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int wake[2];
    char conninfo[2048];
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .reload_mu = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}};

void rest__schema_release(rest_schema_t *s)
{
    if (!s)
        return;
    if (atomic_fetch_sub(&s->refs, 1) == 1) {
        cd_arena_free(&s->arena);
        free(s);
    }
}

rest_schema_t *rest__schema_acquire(void)
{
    pthread_mutex_lock(&g.mu);
    rest_schema_t *s = g.current;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&g.mu);
    return s;
}

void rest__schema_install(rest_schema_t *s)
{
    pthread_mutex_lock(&g.mu);
    rest_schema_t *old = g.current;
    if (s)
        s->generation = ++g.generation;
    g.current = s;
    pthread_mutex_unlock(&g.mu);
    rest__schema_release(old);
}

rest_schema_t *rest__schema_load(PGconn *pg)
{
    PGresult *r = PQexec(pg, CATALOG_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char why[256];
        snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
        why[strcspn(why, "\n")] = '\0';
        log_warn("rest: cannot read the catalog for the schema cache: %s", why);
        PQclear(r);
        return NULL;
    }
    char why[256];
    rest_schema_t *s =
        rest__schema_from_json(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), why, sizeof(why));
    PQclear(r);
    if (!s)
        log_warn("rest: cannot build the schema cache: %s", why);
    return s;
}

/* Loads over pg and installs, serialised with every other load. */
static bool reload_with(PGconn *pg, const char *reason)
{
    pthread_mutex_lock(&g.reload_mu);
    rest_schema_t *s = rest__schema_load(pg);
    if (s) {
        size_t nt = s->n_tables, nf = s->n_funcs;
        rest__schema_install(s);
        log_info("rest: schema cache loaded (%zu tables and views, %zu functions; %s)", nt, nf,
                 reason);
    }
    pthread_mutex_unlock(&g.reload_mu);
    return s != NULL;
}

static const char TABLE_EXISTS_SQL[] =
    "select 1 from pg_catalog.pg_class where relnamespace = 'public'::regnamespace "
    "and relname = $1 and relkind in ('r', 'p', 'v', 'm', 'f')";

int rest__schema_table_exists(PGconn *pg, const char *name)
{
    if (!pg || PQtransactionStatus(pg) != PQTRANS_IDLE)
        return -1;
    const char *p[1] = {name};
    PGresult *r = PQexecParams(pg, TABLE_EXISTS_SQL, 1, NULL, p, NULL, NULL, 0);
    int ret = PQresultStatus(r) != PGRES_TUPLES_OK ? -1 : PQntuples(r) > 0;
    PQclear(r);
    return ret;
}

rest_schema_t *rest__schema_reload_now(PGconn *pg, const rest_schema_t *seen)
{
    /* when the last reload on demand started (monotonic ms; 0: never) */
    static _Atomic long long last_ms;
    if (!pg || PQtransactionStatus(pg) != PQTRANS_IDLE)
        return NULL;
    rest_schema_t *now = rest__schema_acquire();
    if (now && seen && now->generation != seen->generation)
        return now;
    rest__schema_release(now);
    /* At most one reload on demand per second, whatever the request rate: a
     * reload reads the whole catalogue. Requests in between answer from what
     * they checked themselves. */
    long long t = cd_mono_ms(), prev = atomic_load(&last_ms);
    if ((prev && t - prev < REST_SCHEMA_RELOAD_MIN_MS) ||
        !atomic_compare_exchange_strong(&last_ms, &prev, t))
        return NULL;
    if (!reload_with(pg, "the database no longer has an object the cache lists"))
        return NULL;
    return rest__schema_acquire();
}

rest_schema_t *rest__schema_refresh_for(PGconn *pg, const rest_schema_t *seen, const char *name,
                                        bool is_function)
{
    static const char FUNC_SQL[] =
        "select 1 from pg_catalog.pg_proc where pronamespace = 'public'::regnamespace "
        "and proname = $1";
    if (!pg || PQtransactionStatus(pg) != PQTRANS_IDLE)
        return NULL;
    const char *p[1] = {name};
    PGresult *r =
        PQexecParams(pg, is_function ? FUNC_SQL : TABLE_EXISTS_SQL, 1, NULL, p, NULL, NULL, 0);
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    PQclear(r);
    if (!exists)
        return NULL;
    /* Someone may have reloaded since this request took its reference. */
    rest_schema_t *now = rest__schema_acquire();
    if (now && seen && now->generation != seen->generation)
        return now;
    rest__schema_release(now);
    if (!reload_with(pg, "a request named a new object"))
        return NULL;
    return rest__schema_acquire();
}

/* ==========================================================================================
 * The reload thread: LISTEN pgrst; reload on 'reload schema' (or an empty payload, as
 * PostgREST does), and after every reconnection (notifications may have been missed).
 */

/* Waits up to ms for the socket fd (or -1) or a stop request. Returns true when fd is
 * readable. */
static bool wait_readable(int fd, int ms)
{
    struct pollfd p[2] = {{g.wake[0], POLLIN, 0}, {fd, POLLIN, 0}};
    int n = poll(p, fd >= 0 ? 2 : 1, ms);
    if (n > 0 && (p[0].revents & POLLIN)) {
        char buf[16];
        if (read(g.wake[0], buf, sizeof(buf)) < 0 && errno != EAGAIN) {
            /* nothing to do: the stop flag is what matters */
        }
    }
    return n > 0 && fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR));
}

static void *reload_thread(void *arg)
{
    (void)arg;
    int backoff_ms = 250;
    while (!atomic_load(&g.stop)) {
        PGconn *pg = PQconnectdb(g.conninfo);
        if (PQstatus(pg) != CONNECTION_OK) {
            char why[256];
            snprintf(why, sizeof(why), "%s", PQerrorMessage(pg));
            why[strcspn(why, "\n")] = '\0';
            PQfinish(pg);
            log_warn("rest: schema listener cannot connect (%s); retrying in %d ms", why,
                     backoff_ms);
            wait_readable(-1, backoff_ms);
            backoff_ms = backoff_ms < 8000 ? backoff_ms * 2 : 8000;
            continue;
        }
        backoff_ms = 250;
        PGresult *r = PQexec(pg, "LISTEN pgrst");
        bool listening = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!listening || !reload_with(pg, "listener connected")) {
            PQfinish(pg);
            wait_readable(-1, 1000);
            continue;
        }
        while (!atomic_load(&g.stop) && PQstatus(pg) == CONNECTION_OK) {
            /* What libpq holds already first: a notification that came while a
             * reload's query ran was read with its results, and the socket then
             * has nothing more to say. Waiting for the socket first left it
             * unseen until the next one came, and that reload's snapshot may
             * have been taken before the change it announced. */
            bool reload = false;
            PGnotify *n;
            while ((n = PQnotifies(pg)) != NULL) {
                if (n->extra == NULL || n->extra[0] == '\0' ||
                    strcmp(n->extra, "reload schema") == 0)
                    reload = true;
                PQfreemem(n);
            }
            if (reload) {
                if (!reload_with(pg, "NOTIFY pgrst"))
                    break;
                continue;
            }
            if (wait_readable(PQsocket(pg), 5000) && !PQconsumeInput(pg))
                break;
        }
        PQfinish(pg);
    }
    return NULL;
}

bool rest_schema_start(app_t *app)
{
    if (g.running)
        return true;
    snprintf(g.conninfo, sizeof(g.conninfo), "%s", app->worker_conninfo);
    atomic_store(&g.stop, false);
    if (pipe(g.wake) != 0) {
        log_error("rest: cannot create a pipe: %s", strerror(errno));
        return false;
    }
    /* A first load now, so the first requests find a cache; the thread keeps it fresh. */
    PGconn *pg = PQconnectdb(g.conninfo);
    if (PQstatus(pg) == CONNECTION_OK)
        (void)reload_with(pg, "start");
    else
        log_warn("rest: cannot load the schema cache yet; it will load when the database "
                 "answers");
    PQfinish(pg);
    if (pthread_create(&g.thread, NULL, reload_thread, NULL) != 0) {
        log_error("rest: cannot start the schema reload thread");
        close(g.wake[0]);
        close(g.wake[1]);
        g.wake[0] = g.wake[1] = -1;
        return false;
    }
    g.running = true;
    return true;
}

void rest_schema_stop(void)
{
    if (g.running) {
        atomic_store(&g.stop, true);
        if (write(g.wake[1], "x", 1) < 0) {
            /* the thread still wakes within its poll timeout */
        }
        pthread_join(g.thread, NULL);
        g.running = false;
        close(g.wake[0]);
        close(g.wake[1]);
        g.wake[0] = g.wake[1] = -1;
    }
    rest__schema_install(NULL);
}
