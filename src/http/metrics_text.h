/* metrics_text.h: a writer of the Prometheus text exposition format 0.0.4 (metrics_text.c) and a
 * fixed-bucket histogram. Pure: no I/O, no clock.
 *
 * A family is opened with http_mtext_family(), which writes its HELP and TYPE lines; the samples
 * that follow belong to it until the next family. Names are checked so that `promtool check
 * metrics` has nothing to say about them: [a-zA-Z_][a-zA-Z0-9_]* without a leading "__", counters
 * end in _total and nothing else does, _bucket/_count/_sum only on histograms, no type name
 * (_counter, _gauge, _histogram, _summary) and no abbreviated or non-base unit (_ms, _s, _kb,
 * _milliseconds...) as a word. Upper case stays allowed because node_exporter's memory names
 * (node_memory_MemAvailable_bytes) have it; promtool's camelCase warning for them is inherent to
 * those names. Label values are escaped (backslash, double quote, newline); a value that is not
 * valid UTF-8 has its bytes above 0x7f replaced by '?'. Errors are sticky: after the first one
 * every call returns it and writes nothing, so a collector can write without checking each call
 * and look once at the end. */
#ifndef P2P_HTTP_METRICS_TEXT_H
#define P2P_HTTP_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "http/http-limits.h"

/* The content type of the format. */
#define HTTP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum http_mtype {
    HTTP_MT_COUNTER,
    HTTP_MT_GAUGE,
    HTTP_MT_HISTOGRAM,
    HTTP_MT_UNTYPED,
} http_mtype_t;

/* One label: name and value, NUL-terminated. */
typedef struct http_label {
    const char *name;
    const char *value;
} http_label_t;

typedef struct http_mtext {
    p2p_buf_t out; /* the text so far */
    int err;       /* the first error, 0 when none */
    http_mtype_t type;
    bool open;                           /* a family is open */
    char name[HTTP_METRIC_MAX_NAME + 1]; /* the open family */
    char **seen;                         /* names of the families written (owned) */
    size_t n_seen;
} http_mtext_t;

/* Initialises an empty writer whose text may grow to limit bytes. */
void http_mtext_init(http_mtext_t *w, size_t limit);

/* Frees the text and the family list; w may be initialised again. NULL ok. */
void http_mtext_free(http_mtext_t *w);

/* Opens family `name` of `type`, writing "# HELP name help" (backslash and newline escaped) and
 * "# TYPE name type". Returns 0, -EINVAL for a bad name or help, -EEXIST when the family was
 * already written (a family's samples must be contiguous), -E2BIG past the output limit or
 * HTTP_METRIC_MAX_FAMILIES, -ENOMEM. */
int http_mtext_family(http_mtext_t *w, const char *name, http_mtype_t type, const char *help);

/* Writes one sample of the open counter, gauge or untyped family: name{labels} value. n labels
 * (0..HTTP_METRIC_MAX_LABELS; "le" and "quantile" are refused). NaN and the infinities are
 * written as Prometheus spells them. Returns 0, -EINVAL (no open family, a histogram, a bad label
 * name), -E2BIG or -ENOMEM. */
int http_mtext_sample(http_mtext_t *w, const http_label_t *labels, size_t n, double value);

/* Like http_mtext_sample() with an integer written exactly (counters past 2^53). */
int http_mtext_sample_u64(http_mtext_t *w, const http_label_t *labels, size_t n, uint64_t value);

/* Writes one series of the open histogram family: name_bucket{labels,le="B"} for each of the
 * n_bounds increasing finite bounds with the cumulative counts cum[i] (observations <= bounds[i]),
 * then le="+Inf" with count, name_sum and name_count. Returns 0, -EINVAL (not a histogram, bounds
 * not increasing, counts decreasing or above count, more than HTTP_METRIC_MAX_BUCKETS bounds, a
 * bad label), -E2BIG or -ENOMEM. */
int http_mtext_histogram(http_mtext_t *w, const http_label_t *labels, size_t n,
                         const double *bounds, const uint64_t *cum, size_t n_bounds, uint64_t count,
                         double sum);

/* The text written (not NUL-terminated) and its length, or NULL when an error happened; *err
 * (may be NULL) gets w->err. The text stays owned by w. */
const char *http_mtext_text(const http_mtext_t *w, size_t *len, int *err);

/* Takes the text out of w (malloc'd, NUL-terminated, the caller frees it; w is left empty) or
 * NULL on error or no memory. */
char *http_mtext_take(http_mtext_t *w, size_t *len);

/* True when name passes the checks above for a family of `type`. */
bool http_metric_name_ok(const char *name, http_mtype_t type);

/* --- a fixed-bucket histogram --------------------------------------------------------------- */

typedef struct http_histogram {
    const double *bounds;                  /* n increasing finite upper bounds (static data) */
    size_t n;                              /* at most HTTP_METRIC_MAX_BUCKETS */
    uint64_t cum[HTTP_METRIC_MAX_BUCKETS]; /* observations <= bounds[i] (cumulative) */
    uint64_t count;
    double sum;
} http_histogram_t;

/* Initialises an empty histogram over bounds (at most HTTP_METRIC_MAX_BUCKETS are used). */
void http_histogram_init(http_histogram_t *h, const double *bounds, size_t n);

/* Records one observation (NaN is ignored). */
void http_histogram_observe(http_histogram_t *h, double v);

/* Writes h as one series of the open histogram family (http_mtext_histogram). */
int http_mtext_histogram_of(http_mtext_t *w, const http_label_t *labels, size_t n,
                            const http_histogram_t *h);

#endif
