/* login.c: the brute-force limiter of logins (users.h): per client address and per user name, a
 * leaky bucket of failures in a fixed table. Pure: the time comes in as a parameter. */
#include "http/users.h"

#include <string.h>

void http_brute_init(http_brute_t *b, unsigned max_failures, unsigned window_s)
{
    memset(b, 0, sizeof(*b));
    if (max_failures == 0 || window_s == 0) {
        max_failures = HTTP_LOGIN_MAX_FAILURES;
        window_s = HTTP_LOGIN_WINDOW_S;
    }
    b->max_failures = max_failures;
    b->rate_per_ms = (double)max_failures / ((double)window_s * 1000.0);
}

static void key_hash(const char *key, size_t len, uint8_t out[16])
{
    crypto_generichash(out, 16, (const uint8_t *)key, len, NULL, 0);
}

/* The level of e at now (drained since it was computed; a clock going back drains nothing). */
static double level_at(const http_brute_t *b, const http_brute_entry_t *e, uint64_t now_ms)
{
    if (!e->used) return 0;
    double dt = now_ms > e->at_ms ? (double)(now_ms - e->at_ms) : 0;
    double l = e->level - dt * b->rate_per_ms;
    return l > 0 ? l : 0;
}

static http_brute_entry_t *find(const http_brute_t *b, const uint8_t h[16])
{
    for (size_t i = 0; i < HTTP_LOGIN_TRACKED; i++)
        if (b->e[i].used && memcmp(b->e[i].key, h, 16) == 0) return (http_brute_entry_t *)&b->e[i];
    return NULL;
}

unsigned http_brute_check(const http_brute_t *b, const char *key, size_t len, uint64_t now_ms)
{
    uint8_t h[16];
    key_hash(key, len, h);
    const http_brute_entry_t *e = find(b, h);
    double l = e ? level_at(b, e, now_ms) : 0;
    if (l + 1 <= b->max_failures) return 0;
    /* wait until one more failure fits: level drained to max - 1 */
    double wait_s = (l + 1 - b->max_failures) / b->rate_per_ms / 1000.0;
    if (wait_s > 86400) wait_s = 86400;
    unsigned s = (unsigned)wait_s;
    if ((double)s < wait_s) s++;
    return s ? s : 1;
}

void http_brute_fail(http_brute_t *b, const char *key, size_t len, uint64_t now_ms)
{
    uint8_t h[16];
    key_hash(key, len, h);
    http_brute_entry_t *e = find(b, h);
    if (!e) { /* a free slot, else the one with the lowest level now */
        double low = 0;
        for (size_t i = 0; i < HTTP_LOGIN_TRACKED; i++) {
            double l = level_at(b, &b->e[i], now_ms);
            if (!b->e[i].used) {
                e = &b->e[i];
                break;
            }
            if (!e || l < low) e = &b->e[i], low = l;
        }
        memset(e, 0, sizeof(*e));
        memcpy(e->key, h, 16);
        e->used = true;
        e->at_ms = now_ms;
    }
    e->level = level_at(b, e, now_ms) + 1;
    if (e->level > b->max_failures * 2) e->level = b->max_failures * 2; /* bounded wait */
    if (now_ms > e->at_ms) e->at_ms = now_ms;
}

void http_brute_refund(http_brute_t *b, const char *key, size_t len, uint64_t now_ms)
{
    uint8_t h[16];
    key_hash(key, len, h);
    http_brute_entry_t *e = find(b, h);
    if (!e) return;
    double l = level_at(b, e, now_ms) - 1;
    e->level = l > 0 ? l : 0;
    if (now_ms > e->at_ms) e->at_ms = now_ms;
}

void http_brute_reset(http_brute_t *b, const char *key, size_t len)
{
    uint8_t h[16];
    key_hash(key, len, h);
    http_brute_entry_t *e = find(b, h);
    if (e) memset(e, 0, sizeof(*e));
}
