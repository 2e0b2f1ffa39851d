/* libFuzzer target for the provider webhook parsers: Twilio's form bodies
 * (src/providers/twilio.c), inbound keywords and segment counting, and
 * SendGrid's event batches (src/providers/sendgrid.c). Properties: a parsed
 * form has at most the allowed number of parameters, each with a non-empty
 * name and valid UTF-8 without NUL; the signature of what was parsed verifies
 * against itself; an accepted event batch holds 1..SENDGRID_MAX_EVENTS
 * objects, each with a string sg_event_id of 1 to 100 characters; a segment
 * count is at least 1 and covers the units it reports. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "providers/sendgrid.h"
#include "providers/twilio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_form(const char *raw)
{
    char *body = strdup(raw);
    twilio_param_t p[TWILIO_MAX_FORM_PARAMS];
    size_t n = 0;
    if (!body)
        return;
    if (twilio_form_parse(body, p, TWILIO_MAX_FORM_PARAMS, &n)) {
        if (n > TWILIO_MAX_FORM_PARAMS)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!*p[i].name ||
                !cd_utf8_valid((const unsigned char *)p[i].name, strlen(p[i].name)) ||
                !cd_utf8_valid((const unsigned char *)p[i].value, strlen(p[i].value)))
                abort();
        char sig[TWILIO_SIGNATURE_LEN + 1];
        if (!twilio_signature("token", "https://x.test/w", p, n, sig) ||
            !twilio_signature_ok("token", "https://x.test/w", p, n, sig))
            abort();
        const char *b = twilio_form_get(p, n, "Body");
        if (b)
            (void)twilio_classify_keyword(b);
    }
    free(body);
}

static void check_events(const uint8_t *data, size_t size)
{
    char err[256];
    json_t *a = sendgrid_events_parse((const char *)data, size, err, sizeof(err));
    if (!a)
        return;
    size_t n = json_array_size(a);
    if (n == 0 || n > SENDGRID_MAX_EVENTS)
        abort();
    for (size_t i = 0; i < n; i++) {
        json_t *id = json_object_get(json_array_get(a, i), "sg_event_id");
        if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 100)
            abort();
    }
    json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = malloc(size + 1);
    if (!raw)
        return 0;
    memcpy(raw, data, size);
    raw[size] = '\0';
    check_form(raw);
    check_events(data, size);
    twilio_segments_t s;
    if (twilio_count_segments(raw, &s)) {
        size_t per = s.ucs2 ? 67 : 153;
        if (s.segments < 1 || (s.segments > 1 && s.units > s.segments * per))
            abort();
    }
    (void)twilio_classify_keyword(raw);
    free(raw);
    return 0;
}
