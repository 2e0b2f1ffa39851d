/*
 * The OpenAPI 2.0 (Swagger) description served at GET /rest/v1/ to the service role: one
 * path per table or view and per function of the schema cache, one definition per table,
 * shaped like PostgREST's (Response/OpenAPI.hs) so tools written for it keep working.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "rest/rest_internal.h"

/* PostgREST's toSwaggerType: NULL means "no type" (json, jsonb). */
static const char *swagger_type(const char *t)
{
    size_t n = strlen(t);
    if (n > 2 && strcmp(t + n - 2, "[]") == 0)
        return "array";
    if (strncmp(t, "character varying", 17) == 0 || strncmp(t, "character", 9) == 0 ||
        strcmp(t, "text") == 0)
        return "string";
    if (strcmp(t, "boolean") == 0)
        return "boolean";
    if (strcmp(t, "smallint") == 0 || strcmp(t, "integer") == 0 || strcmp(t, "bigint") == 0)
        return "integer";
    if (strncmp(t, "numeric", 7) == 0 || strcmp(t, "real") == 0 ||
        strcmp(t, "double precision") == 0)
        return "number";
    if (strcmp(t, "json") == 0 || strcmp(t, "jsonb") == 0)
        return NULL;
    return "string";
}

/* The foreign key a column starts, if it is a single-column one. */
static const rest_fk_t *column_fk(const rest_schema_t *s, size_t table, size_t col)
{
    for (size_t i = 0; i < s->n_fks; i++) {
        const rest_fk_t *fk = &s->fks[i];
        if (fk->from == table && fk->n_cols == 1 && fk->from_cols[0] == col)
            return fk;
    }
    return NULL;
}

static json_t *column_schema(const rest_schema_t *s, size_t ti, size_t ci)
{
    const rest_table_t *t = &s->tables[ti];
    const rest_col_t *c = &t->cols[ci];
    json_t *p = json_object();
    const char *type = swagger_type(c->type);
    if (type)
        json_object_set_new(p, "type", json_string(type));
    json_object_set_new(p, "format", json_string(c->type));
    if (type && strcmp(type, "array") == 0) {
        char inner[256];
        snprintf(inner, sizeof(inner), "%.*s", (int)(strlen(c->type) - 2), c->type);
        const char *it = swagger_type(inner);
        json_object_set_new(p, "items", it ? json_pack("{s:s}", "type", it) : json_object());
    }
    if (c->max_len > 0)
        json_object_set_new(p, "maxLength", json_integer(c->max_len));
    if (c->n_enum) {
        json_t *e = json_array();
        for (size_t i = 0; i < c->n_enum; i++)
            json_array_append_new(e, json_string(c->enum_values[i]));
        json_object_set_new(p, "enum", e);
    }
    char note[1024] = "";
    const rest_fk_t *fk = column_fk(s, ti, ci);
    if (c->is_pk || fk) {
        size_t w =
            (size_t)snprintf(note, sizeof(note), "%s%sNote:", c->description ? c->description : "",
                             c->description ? "\n\n" : "");
        if (c->is_pk && w < sizeof(note))
            w += (size_t)snprintf(note + w, sizeof(note) - w, "\nThis is a Primary Key.<pk/>");
        if (fk && w < sizeof(note)) {
            const rest_table_t *to = &s->tables[fk->to];
            const char *tc = to->cols[fk->to_cols[0]].name;
            snprintf(note + w, sizeof(note) - w,
                     "\nThis is a Foreign Key to `%s.%s`.<fk table='%s' column='%s'/>", to->name,
                     tc, to->name, tc);
        }
        json_object_set_new(p, "description", json_string(note));
    } else if (c->description) {
        json_object_set_new(p, "description", json_string(c->description));
    }
    return p;
}

static json_t *table_definition(const rest_schema_t *s, size_t ti)
{
    const rest_table_t *t = &s->tables[ti];
    json_t *props = json_object(), *req = json_array();
    for (size_t i = 0; i < t->n_cols; i++) {
        json_object_set_new(props, t->cols[i].name, column_schema(s, ti, i));
        if (!t->cols[i].nullable)
            json_array_append_new(req, json_string(t->cols[i].name));
    }
    json_t *d = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (json_array_size(req))
        json_object_set_new(d, "required", req);
    else
        json_decref(req);
    if (t->description)
        json_object_set_new(d, "description", json_string(t->description));
    return d;
}

static json_t *refs(const char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char r[300];
        snprintf(r, sizeof(r), "#/parameters/%s", names[i]);
        json_array_append_new(a, json_pack("{s:s}", "$ref", r));
    }
    return a;
}

static json_t *table_path(const rest_table_t *t)
{
    json_t *rows = json_array();
    for (size_t i = 0; i < t->n_cols; i++) {
        char r[300];
        snprintf(r, sizeof(r), "#/parameters/rowFilter.%s.%s", t->name, t->cols[i].name);
        json_array_append_new(rows, json_pack("{s:s}", "$ref", r));
    }
    char body[300], def[300];
    snprintf(body, sizeof(body), "#/parameters/body.%s", t->name);
    snprintf(def, sizeof(def), "#/definitions/%s", t->name);
    static const char *const get_params[] = {"select", "order", "range",      "rangeUnit",
                                             "offset", "limit", "preferCount"};
    json_t *get_p = json_copy(rows);
    json_t *get_refs = refs(get_params, CD_ARRAY_LEN(get_params));
    json_array_extend(get_p, get_refs);
    json_decref(get_refs);
    json_t *path = json_object();
    json_object_set_new(path, "get",
                        json_pack("{s:[s], s:o, s:{s:{s:s, s:{s:s, s:{s:s}}}, s:{s:s}}}", "tags",
                                  t->name, "parameters", get_p, "responses", "200", "description",
                                  "OK", "schema", "type", "array", "items", "$ref", def, "206",
                                  "description", "Partial Content"));
    if (t->insertable || t->updatable || t->deletable) {
        static const char *const post_params[] = {"select", "preferPost"};
        json_t *post_p = json_pack("[{s:s}]", "$ref", body);
        json_t *post_refs = refs(post_params, CD_ARRAY_LEN(post_params));
        json_array_extend(post_p, post_refs);
        json_decref(post_refs);
        json_object_set_new(path, "post",
                            json_pack("{s:[s], s:o, s:{s:{s:s}}}", "tags", t->name, "parameters",
                                      post_p, "responses", "201", "description", "Created"));
        json_t *patch_p = json_copy(rows);
        json_array_append_new(patch_p, json_pack("{s:s}", "$ref", body));
        json_array_append_new(patch_p, json_pack("{s:s}", "$ref", "#/parameters/preferReturn"));
        json_object_set_new(path, "patch",
                            json_pack("{s:[s], s:o, s:{s:{s:s}}}", "tags", t->name, "parameters",
                                      patch_p, "responses", "204", "description", "No Content"));
        json_t *del_p = json_copy(rows);
        json_array_append_new(del_p, json_pack("{s:s}", "$ref", "#/parameters/preferReturn"));
        json_object_set_new(path, "delete",
                            json_pack("{s:[s], s:o, s:{s:{s:s}}}", "tags", t->name, "parameters",
                                      del_p, "responses", "204", "description", "No Content"));
    }
    json_decref(rows);
    return path;
}

static json_t *func_path(const rest_func_t *f)
{
    char tag[300];
    snprintf(tag, sizeof(tag), "(rpc) %s", f->name);
    json_t *props = json_object(), *req = json_array(), *get_p = json_array();
    for (size_t i = 0; i < f->n_args; i++) {
        const rest_arg_t *a = &f->args[i];
        const char *type = swagger_type(a->type);
        json_t *p = json_pack("{s:s}", "format", a->type);
        if (type)
            json_object_set_new(p, "type", json_string(type));
        json_object_set_new(props, a->name, p);
        if (!a->has_default)
            json_array_append_new(req, json_string(a->name));
        json_array_append_new(get_p, json_pack("{s:s, s:s, s:b, s:s, s:s}", "name", a->name, "in",
                                               "query", "required", !a->has_default, "type",
                                               type && strcmp(type, "array") != 0 ? type : "string",
                                               "format", a->type));
    }
    json_t *schema =
        json_pack("{s:s, s:o, s:o}", "type", "object", "properties", props, "required", req);
    if (f->description)
        json_object_set_new(schema, "description", json_string(f->description));
    json_t *post =
        json_pack("{s:[s], s:[{s:s, s:s, s:b, s:o}, {s:s}], s:{s:{s:s}}}", "tags", tag,
                  "parameters", "name", "args", "in", "body", "required", 1, "schema", schema,
                  "$ref", "#/parameters/preferParams", "responses", "200", "description", "OK");
    json_t *path = json_pack("{s:o}", "post", post);
    if (f->volatility != 'v')
        json_object_set_new(path, "get",
                            json_pack("{s:[s], s:o, s:{s:{s:s}}}", "tags", tag, "parameters", get_p,
                                      "responses", "200", "description", "OK"));
    else
        json_decref(get_p);
    return path;
}

static json_t *query_param(const char *name, const char *desc)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:s}", "name", name, "description", desc, "required", 0,
                     "in", "query", "type", "string");
}

static json_t *prefer_param(const char *const *values, size_t n)
{
    json_t *e = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(e, json_string(values[i]));
    return json_pack("{s:s, s:s, s:b, s:s, s:s, s:o}", "name", "Prefer", "description",
                     "Preference", "required", 0, "in", "header", "type", "string", "enum", e);
}

static json_t *parameters(const rest_schema_t *s)
{
    static const char *const p_params[] = {"params=single-object"};
    static const char *const p_return[] = {"return=representation", "return=minimal",
                                           "return=none"};
    static const char *const p_count[] = {"count=none"};
    static const char *const p_post[] = {"return=representation", "return=minimal", "return=none",
                                         "resolution=ignore-duplicates",
                                         "resolution=merge-duplicates"};
    json_t *p = json_object();
    json_object_set_new(p, "preferParams", prefer_param(p_params, CD_ARRAY_LEN(p_params)));
    json_object_set_new(p, "preferReturn", prefer_param(p_return, CD_ARRAY_LEN(p_return)));
    json_object_set_new(p, "preferCount", prefer_param(p_count, CD_ARRAY_LEN(p_count)));
    json_object_set_new(p, "preferPost", prefer_param(p_post, CD_ARRAY_LEN(p_post)));
    json_object_set_new(p, "select", query_param("select", "Filtering Columns"));
    json_object_set_new(p, "on_conflict", query_param("on_conflict", "On Conflict"));
    json_object_set_new(p, "order", query_param("order", "Ordering"));
    json_object_set_new(p, "range",
                        json_pack("{s:s, s:s, s:b, s:s, s:s}", "name", "Range", "description",
                                  "Limiting and Pagination", "required", 0, "in", "header", "type",
                                  "string"));
    json_object_set_new(p, "rangeUnit",
                        json_pack("{s:s, s:s, s:b, s:s, s:s, s:s}", "name", "Range-Unit",
                                  "description", "Limiting and Pagination", "required", 0, "in",
                                  "header", "type", "string", "default", "items"));
    json_object_set_new(p, "offset", query_param("offset", "Limiting and Pagination"));
    json_object_set_new(p, "limit", query_param("limit", "Limiting and Pagination"));
    for (size_t ti = 0; ti < s->n_tables; ti++) {
        const rest_table_t *t = &s->tables[ti];
        char key[300], def[300];
        snprintf(key, sizeof(key), "body.%s", t->name);
        snprintf(def, sizeof(def), "#/definitions/%s", t->name);
        json_object_set_new(p, key,
                            json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", t->name,
                                      "description", t->name, "required", 0, "in", "body", "schema",
                                      "$ref", def));
        for (size_t ci = 0; ci < t->n_cols; ci++) {
            snprintf(key, sizeof(key), "rowFilter.%s.%s", t->name, t->cols[ci].name);
            json_t *q =
                query_param(t->cols[ci].name,
                            t->cols[ci].description ? t->cols[ci].description : t->cols[ci].name);
            json_object_set_new(p, key, q);
        }
    }
    return p;
}

char *rest__openapi(const rest_schema_t *s, const char *external_url)
{
    const char *scheme = strncmp(external_url, "https://", 8) == 0 ? "https" : "http";
    const char *host = strstr(external_url, "://");
    host = host ? host + 3 : external_url;
    char hostbuf[512];
    snprintf(hostbuf, sizeof(hostbuf), "%s", host);
    hostbuf[strcspn(hostbuf, "/")] = '\0';

    json_t *paths = json_object();
    json_object_set_new(paths, "/",
                        json_pack("{s:{s:[s], s:s, s:[s, s], s:{s:{s:s}}}}", "get", "tags",
                                  "Introspection", "summary", "OpenAPI description (this document)",
                                  "produces", "application/openapi+json", "application/json",
                                  "responses", "200", "description", "OK"));
    json_t *defs = json_object();
    for (size_t i = 0; i < s->n_tables; i++) {
        char key[300];
        snprintf(key, sizeof(key), "/%s", s->tables[i].name);
        json_object_set_new(paths, key, table_path(&s->tables[i]));
        json_object_set_new(defs, s->tables[i].name, table_definition(s, i));
    }
    for (size_t i = 0; i < s->n_funcs; i++) {
        char key[300];
        snprintf(key, sizeof(key), "/rpc/%s", s->funcs[i].name);
        if (!json_object_get(paths, key)) /* overloads share one path, like PostgREST */
            json_object_set_new(paths, key, func_path(&s->funcs[i]));
    }
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:s, s:s, s:[s], s:[s, s, s], s:[s, s, s, s], s:o, s:o, s:o}",
        "swagger", "2.0", "info", "title", "campaignd data API", "description",
        "A PostgREST-compatible API over the public schema of campaignd.", "version",
        CAMPAIGND_VERSION, "host", hostbuf, "basePath", "/rest/v1", "schemes", scheme, "consumes",
        "application/json", "application/vnd.pgrst.object+json", "text/csv", "produces",
        "application/json", "application/vnd.pgrst.object+json", "text/csv",
        "application/openapi+json", "paths", paths, "definitions", defs, "parameters",
        parameters(s));
    if (!doc)
        return NULL;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
