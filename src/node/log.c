/* log.c: text and JSON-lines logging for the daemon (see log.h). */
#include "node/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef NODE_LOG_LINE_MAX
#define NODE_LOG_LINE_MAX 4096 /* longest log line; longer lines are cut */
#endif

struct node_log {
    FILE *out;
    int level;
    bool json;
};

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

node_log_t *node_log_new(FILE *out, int level, bool json)
{
    node_log_t *log = calloc(1, sizeof(*log));
    if (!log) return NULL;
    log->out = out;
    log->level = level;
    log->json = json;
    return log;
}

void node_log_free(node_log_t *log)
{
    free(log);
}

void node_log_set_level(node_log_t *log, int level)
{
    if (log) log->level = level;
}

bool node_log_enabled(const node_log_t *log, int level)
{
    return log && level >= log->level;
}

int node_log_level_parse(const char *s)
{
    if (!s) return -EINVAL;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "WARN") == 0) return NODE_LOG_WARNING;
    return -EINVAL;
}

const char *node_log_level_name(int level)
{
    if (level < NODE_LOG_DEBUG || level > NODE_LOG_ERROR) return "INFO";
    return level_names[level];
}

/* A bounded line being built; overflow silently truncates. */
typedef struct line {
    char buf[NODE_LOG_LINE_MAX];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 3 - l->len; /* keep space for "}\n\0" */
    if (n > room) n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Writes a JSON string; a value too long for the line is cut but its quotes stay balanced. */
static void put_json_str(line_t *l, const char *s)
{
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (l->len > sizeof(l->buf) - 16) break;
        char esc[8];
        switch (*p) {
        case '"':
            put(l, "\\\"", 2);
            break;
        case '\\':
            put(l, "\\\\", 2);
            break;
        case '\n':
            put(l, "\\n", 2);
            break;
        case '\r':
            put(l, "\\r", 2);
            break;
        case '\t':
            put(l, "\\t", 2);
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
                put(l, esc, 6);
            } else {
                put(l, (const char *)p, 1);
            }
        }
    }
    put(l, "\"", 1);
}

/* A text value is quoted when it is empty or holds spaces, quotes or '='. */
static void put_text_value(line_t *l, const char *s)
{
    if (*s && !strpbrk(s, " \t\"=\n")) {
        puts_(l, s);
        return;
    }
    put_json_str(l, s);
}

static void put_time(line_t *l)
{
    struct timespec ts;
    struct tm tm;
    char b[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b + n, sizeof(b) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    puts_(l, b);
}

void node_log(node_log_t *log, int level, const char *msg, ...)
{
    if (!node_log_enabled(log, level)) return;
    line_t l;
    l.len = 0;
    va_list ap;
    va_start(ap, msg);
    if (log->json) {
        puts_(&l, "{\"ts\":\"");
        put_time(&l);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, node_log_level_name(level));
        puts_(&l, "\",\"msg\":");
        put_json_str(&l, msg);
    } else {
        put_time(&l);
        put(&l, " ", 1);
        char lv[16];
        snprintf(lv, sizeof(lv), "%-7s ", node_log_level_name(level));
        puts_(&l, lv);
        puts_(&l, msg);
    }
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key || l.len > sizeof(l.buf) - 80) break; /* a full line drops the remaining fields */
        const char *val = va_arg(ap, const char *);
        bool raw = key[0] == '#';
        if (raw) key++;
        if (!val) val = "";
        if (log->json) {
            put(&l, ",", 1);
            put_json_str(&l, key);
            put(&l, ":", 1);
            if (raw && *val && strlen(val) < 32)
                puts_(&l, val);
            else
                put_json_str(&l, val);
        } else {
            put(&l, " ", 1);
            puts_(&l, key);
            put(&l, "=", 1);
            put_text_value(&l, val);
        }
    }
    va_end(ap);
    if (log->json) l.buf[l.len++] = '}';
    l.buf[l.len++] = '\n';
    fwrite(l.buf, 1, l.len, log->out);
    fflush(log->out);
}
