/* metrics_text.c: the Prometheus text exposition format 0.0.4: family headers, samples with
 * escaped labels, histograms as _bucket/_sum/_count, and the name checks listed in
 * metrics_text.h. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/metrics_text.h"
#include "rpc/rpc.h"

/* --- names ------------------------------------------------------------------------------- */

static bool ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Words that must not appear in a name (after the first word, between underscores). */
static const char *const banned_words[] = {
    /* metric types */
    "counter", "gauge", "histogram", "summary",
    /* abbreviated units */
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
    /* units that are not base units */
    "minutes", "hours", "days", "fahrenheit", "rankine", "inches", "yards", "miles", "bits",
    "calories", "pounds", "ounces"};

/* Prefixes that make a base unit a non-base one (milliseconds, kilobytes...). */
static const char *const unit_prefixes[] = {"pico", "nano",  "micro", "milli", "centi", "deci",
                                            "deca", "hecto", "kilo",  "kibi",  "mega",  "mibi",
                                            "giga", "gibi",  "tera",  "tebi",  "peta",  "pebi"};
static const char *const base_units[] = {"amperes", "bytes",  "candela", "grams",
                                         "celsius", "kelvin", "kelvins", "meters",
                                         "metres",  "moles",  "seconds", "joules"};

static bool word_eq(const char *w, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(w, s, n) == 0;
}

/* True when word w[0..n) (lower case) is a banned word or a prefixed base unit. */
static bool word_banned(const char *w, size_t n, bool first)
{
    if (!first)
        for (size_t i = 0; i < P2P_ARRAY_LEN(banned_words); i++)
            if (word_eq(w, n, banned_words[i])) return true;
    for (size_t p = 0; p < P2P_ARRAY_LEN(unit_prefixes); p++) {
        size_t k = strlen(unit_prefixes[p]);
        if (n <= k || memcmp(w, unit_prefixes[p], k) != 0) continue;
        for (size_t u = 0; u < P2P_ARRAY_LEN(base_units); u++)
            if (word_eq(w + k, n - k, base_units[u])) return true;
    }
    return false;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, 1..HTTP_METRIC_MAX_NAME, no leading "__". */
static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > HTTP_METRIC_MAX_NAME || (n >= 2 && s[0] == '_' && s[1] == '_')) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
    }
    return true;
}

bool http_metric_name_ok(const char *name, http_mtype_t type)
{
    size_t n = name ? strlen(name) : 0;
    if (!ident_ok(name, n)) return false;
    bool total = ends_with(name, n, "_total");
    if (type == HTTP_MT_COUNTER && !total) return false;
    if (type != HTTP_MT_COUNTER && type != HTTP_MT_UNTYPED && total) return false;
    if (type != HTTP_MT_UNTYPED && (ends_with(name, n, "_bucket") || ends_with(name, n, "_count") ||
                                    ends_with(name, n, "_sum")))
        return false;
    char lower[HTTP_METRIC_MAX_NAME + 1];
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (lower[i] != '_' && lower[i] != '\0') continue;
        if (i > start && word_banned(lower + start, i - start, start == 0)) return false;
        start = i + 1;
    }
    return true;
}

static bool label_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!ident_ok(s, n) || strcmp(s, "le") == 0 || strcmp(s, "quantile") == 0) return false;
    for (size_t i = 1; i < n; i++) /* camelCase label names draw a promtool warning */
        if (s[i - 1] >= 'a' && s[i - 1] <= 'z' && s[i] >= 'A' && s[i] <= 'Z') return false;
    return true;
}

/* --- output ------------------------------------------------------------------------------ */

void http_mtext_init(http_mtext_t *w, size_t limit)
{
    memset(w, 0, sizeof(*w));
    p2p_buf_init(&w->out, limit);
}

void http_mtext_free(http_mtext_t *w)
{
    if (!w) return;
    p2p_buf_free(&w->out);
    for (size_t i = 0; i < w->n_seen; i++)
        free(w->seen[i]);
    free(w->seen);
    w->seen = NULL;
    w->n_seen = 0;
}

static int put(http_mtext_t *w, const char *s, size_t n)
{
    if (w->err) return w->err;
    int r = p2p_buf_append(&w->out, s, n);
    if (r < 0) w->err = r;
    return r;
}

static int puts_(http_mtext_t *w, const char *s)
{
    return put(w, s, strlen(s));
}

static int set_err(http_mtext_t *w, int err)
{
    if (!w->err) w->err = err;
    return w->err;
}

/* Writes s with backslash and newline escaped, and double quotes too when quote. Text that is not
 * valid UTF-8 has its bytes above 0x7f written as '?'. */
static void put_escaped(http_mtext_t *w, const char *s, bool quote)
{
    size_t n = strlen(s);
    bool utf8 = rpc_utf8_valid(s, n);
    size_t run = 0; /* bytes of s[run_start..) that need no escape */
    const char *start = s;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        if (c == '\\')
            rep = "\\\\";
        else if (c == '\n')
            rep = "\\n";
        else if (c == '"' && quote)
            rep = "\\\"";
        else if (c >= 0x80 && !utf8)
            rep = "?";
        if (!rep) {
            run++;
            continue;
        }
        put(w, start, run);
        puts_(w, rep);
        start = s + i + 1;
        run = 0;
    }
    put(w, start, run);
}

/* A number the way Prometheus parses it: the shortest of %.15g / %.17g that reads back. */
static void fmt_double(char *buf, size_t cap, double v)
{
    if (isnan(v))
        snprintf(buf, cap, "NaN");
    else if (isinf(v))
        snprintf(buf, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(buf, cap, "%.0f", v);
    else {
        snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
    }
}

static void put_double(http_mtext_t *w, double v)
{
    char buf[40];
    fmt_double(buf, sizeof(buf), v);
    puts_(w, buf);
}

int http_mtext_family(http_mtext_t *w, const char *name, http_mtype_t type, const char *help)
{
    if (w->err) return w->err;
    w->open = false;
    if (!http_metric_name_ok(name, type) || !help || type > HTTP_MT_UNTYPED)
        return set_err(w, -EINVAL);
    for (size_t i = 0; i < w->n_seen; i++)
        if (strcmp(w->seen[i], name) == 0) return set_err(w, -EEXIST);
    if (w->n_seen >= HTTP_METRIC_MAX_FAMILIES) return set_err(w, -E2BIG);
    char **seen = realloc(w->seen, (w->n_seen + 1) * sizeof(*seen));
    if (!seen) return set_err(w, -ENOMEM);
    w->seen = seen;
    if (!(w->seen[w->n_seen] = strdup(name))) return set_err(w, -ENOMEM);
    w->n_seen++;
    static const char *const type_names[] = {"counter", "gauge", "histogram", "untyped"};
    puts_(w, "# HELP ");
    puts_(w, name);
    puts_(w, " ");
    put_escaped(w, help, false);
    puts_(w, "\n# TYPE ");
    puts_(w, name);
    puts_(w, " ");
    puts_(w, type_names[type]);
    puts_(w, "\n");
    if (w->err) return w->err;
    strcpy(w->name, name);
    w->type = type;
    w->open = true;
    return 0;
}

/* name+suffix{labels[,le="..."]} */
static int put_series(http_mtext_t *w, const char *suffix, const http_label_t *labels, size_t n,
                      const char *le)
{
    if (n > HTTP_METRIC_MAX_LABELS || (n && !labels)) return set_err(w, -EINVAL);
    for (size_t i = 0; i < n; i++) {
        if (!label_name_ok(labels[i].name) || !labels[i].value) return set_err(w, -EINVAL);
        for (size_t j = 0; j < i; j++)
            if (strcmp(labels[i].name, labels[j].name) == 0) return set_err(w, -EINVAL);
    }
    puts_(w, w->name);
    puts_(w, suffix);
    if (n || le) {
        puts_(w, "{");
        for (size_t i = 0; i < n; i++) {
            if (i) puts_(w, ",");
            puts_(w, labels[i].name);
            puts_(w, "=\"");
            put_escaped(w, labels[i].value, true);
            puts_(w, "\"");
        }
        if (le) {
            puts_(w, n ? ",le=\"" : "le=\"");
            puts_(w, le);
            puts_(w, "\"");
        }
        puts_(w, "}");
    }
    return puts_(w, " ");
}

static int sample_check(http_mtext_t *w)
{
    if (w->err) return w->err;
    if (!w->open || w->type == HTTP_MT_HISTOGRAM) return set_err(w, -EINVAL);
    return 0;
}

int http_mtext_sample(http_mtext_t *w, const http_label_t *labels, size_t n, double value)
{
    if (sample_check(w) || put_series(w, "", labels, n, NULL)) return w->err;
    put_double(w, value);
    return puts_(w, "\n");
}

int http_mtext_sample_u64(http_mtext_t *w, const http_label_t *labels, size_t n, uint64_t value)
{
    if (sample_check(w) || put_series(w, "", labels, n, NULL)) return w->err;
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64 "\n", value);
    return puts_(w, buf);
}

int http_mtext_histogram(http_mtext_t *w, const http_label_t *labels, size_t n,
                         const double *bounds, const uint64_t *cum, size_t n_bounds, uint64_t count,
                         double sum)
{
    if (w->err) return w->err;
    if (!w->open || w->type != HTTP_MT_HISTOGRAM || n_bounds > HTTP_METRIC_MAX_BUCKETS)
        return set_err(w, -EINVAL);
    for (size_t i = 0; i < n_bounds; i++)
        if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]) ||
            (i && cum[i] < cum[i - 1]) || cum[i] > count)
            return set_err(w, -EINVAL);
    char le[40], num[24];
    for (size_t i = 0; i < n_bounds; i++) {
        fmt_double(le, sizeof(le), bounds[i]);
        if (put_series(w, "_bucket", labels, n, le)) return w->err;
        snprintf(num, sizeof(num), "%" PRIu64 "\n", cum[i]);
        puts_(w, num);
    }
    if (put_series(w, "_bucket", labels, n, "+Inf")) return w->err;
    snprintf(num, sizeof(num), "%" PRIu64 "\n", count);
    puts_(w, num);
    put_series(w, "_sum", labels, n, NULL);
    put_double(w, sum);
    puts_(w, "\n");
    put_series(w, "_count", labels, n, NULL);
    return puts_(w, num);
}

const char *http_mtext_text(const http_mtext_t *w, size_t *len, int *err)
{
    if (err) *err = w->err;
    *len = w->err ? 0 : w->out.len;
    if (w->err) return NULL;
    return w->out.data ? (const char *)w->out.data : "";
}

char *http_mtext_take(http_mtext_t *w, size_t *len)
{
    *len = 0;
    if (w->err) return NULL;
    char *s = realloc(w->out.data, w->out.len + 1);
    if (!s) return NULL;
    s[w->out.len] = '\0';
    *len = w->out.len;
    size_t limit = w->out.limit;
    p2p_buf_init(&w->out, limit);
    return s;
}

/* --- histogram ------------------------------------------------------------------------------ */

void http_histogram_init(http_histogram_t *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->n = P2P_MIN(n, (size_t)HTTP_METRIC_MAX_BUCKETS);
}

void http_histogram_observe(http_histogram_t *h, double v)
{
    if (isnan(v)) return;
    for (size_t i = h->n; i > 0 && v <= h->bounds[i - 1]; i--)
        h->cum[i - 1]++;
    h->count++;
    h->sum += v;
}

int http_mtext_histogram_of(http_mtext_t *w, const http_label_t *labels, size_t n,
                            const http_histogram_t *h)
{
    return http_mtext_histogram(w, labels, n, h->bounds, h->cum, h->n, h->count, h->sum);
}
