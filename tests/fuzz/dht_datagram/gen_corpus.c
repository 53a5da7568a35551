/* gen_corpus.c: writes the seed corpus of the datagram fuzz harness. Two real DHT cores with the
 * harness's fixed keys (fixture.h) talk over an in-memory network: hello PING, FIND_NODE, a put
 * (FIND_NODE + STORE with token) and a get (FIND_VALUE), each way. Every datagram is saved raw,
 * and its opened body is saved for the sealing, decoder and record modes; garbage and truncated
 * seeds are added. Exits non-zero when the exchange did not complete, so it also checks that two
 * cores interoperate. Usage: gen_corpus OUTDIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dht/dht-internal.h"
#include "fixture.h"

#ifndef GEN_MAX_DGRAMS
#define GEN_MAX_DGRAMS 256 /* datagrams queued or captured */
#endif
#ifndef GEN_MAX_SAVED
#define GEN_MAX_SAVED 48 /* captured datagrams written out */
#endif
#ifndef GEN_MAX_STEPS
#define GEN_MAX_STEPS 20000 /* 10 ms steps of the virtual clock per phase */
#endif

typedef struct dgram {
    int to; /* FIXTURE_TARGET or FIXTURE_PEER */
    size_t len;
    uint8_t buf[DHT_MAX_DATAGRAM];
} dgram_t;

typedef struct gen {
    dht_t *node[2];
    dht_addr_t addr[2];
    dgram_t queue[GEN_MAX_DGRAMS];
    int nqueue;
    dgram_t seen[GEN_MAX_DGRAMS];
    int nseen;
    uint64_t now;
    const char *dir;
    int files;
} gen_t;

static void send_cb(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    gen_t *g = ctx;
    int dst = dht_addr_equal(to, &g->addr[FIXTURE_TARGET]) ? FIXTURE_TARGET : FIXTURE_PEER;
    if (g->nqueue >= GEN_MAX_DGRAMS || len > DHT_MAX_DATAGRAM) return;
    dgram_t *d = &g->queue[g->nqueue++];
    d->to = dst;
    d->len = len;
    memcpy(d->buf, buf, len);
    if (g->nseen < GEN_MAX_DGRAMS) g->seen[g->nseen++] = *d;
}

static void pump(gen_t *g, const int *done)
{
    for (int step = 0; step < GEN_MAX_STEPS && !*done; step++) {
        for (int guard = 0; guard < 1000 && g->nqueue > 0; guard++) {
            dgram_t d = g->queue[0];
            memmove(&g->queue[0], &g->queue[1], (size_t)(g->nqueue - 1) * sizeof(dgram_t));
            g->nqueue--;
            int from = d.to == FIXTURE_TARGET ? FIXTURE_PEER : FIXTURE_TARGET;
            dht_input(g->node[d.to], d.buf, d.len, &g->addr[from], g->now);
        }
        g->now += 10;
        for (int i = 0; i < 2; i++)
            if (g->now >= dht_next_deadline(g->node[i])) dht_periodic(g->node[i], g->now);
    }
}

static int write_file(gen_t *g, const char *name, uint8_t mode, const uint8_t *p, size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", g->dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -errno;
    fputc(mode, f);
    if (len) fwrite(p, 1, len, f);
    if (fclose(f) != 0) return -EIO;
    g->files++;
    return 0;
}

static const char *type_name(int t)
{
    static const char *names[] = {"ping",       "pong",   "find_node", "nodes",
                                  "find_value", "values", "store",     "stored"};
    return t >= 0 && t < (int)(sizeof(names) / sizeof(names[0])) ? names[t] : "unknown";
}

/* Saves datagram i raw (when it goes to the target) and its body in the other modes. */
static int save(gen_t *g, int i)
{
    const dgram_t *d = &g->seen[i];
    int from = d->to == FIXTURE_TARGET ? FIXTURE_PEER : FIXTURE_TARGET;
    const dht_t *rx = g->node[d->to];
    uint8_t key[32], body[DHT_MAX_DATAGRAM];
    char name[128];
    bool hello = d->buf[0] == DHT_MAGIC_HELLO;
    if (hello)
        memcpy(key, rx->hello_key, 32);
    else if (dht_crypto_pair_key(rx, g->node[from]->cfg.public_key, key) < 0)
        return -EINVAL;
    int n = dht_crypto_open(rx, key, d->buf, d->len, body, sizeof(body));
    if (n < 0) return n;
    dht_msg_t m;
    memset(&m, 0, sizeof(m));
    if (dht_msg_decode(&m, body, (size_t)n) < 0) return -EBADMSG;
    const char *dir = d->to == FIXTURE_TARGET ? "p2t" : "t2p";
    int rc = 0;
    if (d->to == FIXTURE_TARGET) {
        snprintf(name, sizeof(name), "raw-%02d-%s-%s", i, dir, type_name(m.type));
        rc |= write_file(g, name, FIXTURE_RAW, d->buf, d->len);
    }
    snprintf(name, sizeof(name), "%s-%02d-%s-%s", hello ? "hello" : "box", i, dir,
             type_name(m.type));
    rc |= write_file(g, name, hello ? FIXTURE_HELLO : FIXTURE_BOX, body, (size_t)n);
    snprintf(name, sizeof(name), "dec-%02d-%s-%s", i, dir, type_name(m.type));
    rc |= write_file(g, name, FIXTURE_DECODE, body, (size_t)n);
    if (m.type == DHT_MSG_STORE && m.record_len > 0) {
        snprintf(name, sizeof(name), "rec-%02d-%s", i, dir);
        rc |= write_file(g, name, FIXTURE_RECORD, m.record, m.record_len);
    }
    for (int r = 0; r < m.nrecords && r < 2; r++) {
        snprintf(name, sizeof(name), "rec-%02d-%s-values-%d", i, dir, r);
        rc |= write_file(g, name, FIXTURE_RECORD, m.records[r], m.record_lens[r]);
    }
    return rc ? -EIO : 0;
}

static int save_garbage(gen_t *g)
{
    static const uint8_t junk[] = "not a datagram at all";
    uint8_t buf[1500];
    dht_rng_t rng;
    uint8_t seed[32] = {7};
    int rc = 0;
    dht_rng_init(&rng, seed);
    rc |= write_file(g, "garbage-empty", FIXTURE_RAW, NULL, 0);
    rc |= write_file(g, "garbage-text", FIXTURE_RAW, junk, sizeof(junk) - 1);
    dht_rng_bytes(&rng, buf, sizeof(buf));
    rc |= write_file(g, "garbage-random-100", FIXTURE_RAW, buf, 100);
    rc |= write_file(g, "garbage-oversized", FIXTURE_RAW, buf, sizeof(buf));
    buf[0] = DHT_MAGIC_BOX;
    rc |= write_file(g, "garbage-box-magic", FIXTURE_RAW, buf, 200);
    buf[0] = DHT_MAGIC_HELLO;
    rc |= write_file(g, "garbage-hello-magic", FIXTURE_RAW, buf, DHT_OVERHEAD - 1);
    /* msgpack oddities as bodies: deep nesting, huge declared lengths, wrong types. */
    memset(buf, 0x91, 64);
    buf[64] = 0xc0;
    rc |= write_file(g, "body-deep", FIXTURE_BOX, buf, 65);
    static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xdf, 0xff, 0xff, 0xff, 0xff};
    rc |= write_file(g, "body-huge-array", FIXTURE_BOX, huge, 5);
    rc |= write_file(g, "dec-huge-map", FIXTURE_DECODE, huge + 5, 5);
    static const uint8_t wrong[] = {0x83, 0xa1, 't',  0xa3, 'b', 'a', 'd',
                                    0xa1, 'x',  0xc3, 0xa1, 'y', 0xc0};
    rc |= write_file(g, "dec-wrong-types", FIXTURE_DECODE, wrong, sizeof(wrong));
    /* Truncations of the first captured datagram to the target. */
    for (int i = 0; i < g->nseen; i++) {
        if (g->seen[i].to != FIXTURE_TARGET) continue;
        size_t cuts[] = {1, 33, DHT_HDR_LEN, DHT_OVERHEAD, g->seen[i].len - 1};
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
            char name[64];
            if (cuts[c] >= g->seen[i].len) continue;
            snprintf(name, sizeof(name), "trunc-%zu", cuts[c]);
            rc |= write_file(g, name, FIXTURE_RAW, g->seen[i].buf, cuts[c]);
        }
        break;
    }
    return rc ? -EIO : 0;
}

static void lookup_cb(void *arg, int status, const dht_lookup_result_t *res)
{
    (void)res;
    *(int *)arg = status == 0 ? 1 : -1;
}

static void put_cb(void *arg, int status, size_t stored)
{
    *(int *)arg = status == 0 && stored > 0 ? 1 : -1;
}

static void get_cb(void *arg, int status, const dht_get_result_t *res)
{
    *(int *)arg = status == 0 && res->n > 0 ? 1 : -1;
}

static int exchange(gen_t *g, int from)
{
    dht_t *a = g->node[from];
    int other = from == FIXTURE_PEER ? FIXTURE_TARGET : FIXTURE_PEER;
    dht_id_t key, target;
    int done = 0;
    static const uint8_t value[] = "fuzz seed value";

    if (dht_contact_count(a) == 0) {
        if (dht_ping_addr(a, &g->addr[other], g->now) < 0) return -1;
        pump(g, &(int){0});
        if (dht_contact_count(a) == 0) {
            fprintf(stderr, "gen_corpus: hello ping got no answer\n");
            return -1;
        }
    }
    memset(&target, from == FIXTURE_PEER ? 0x5a : 0xa5, sizeof(target));
    if (dht_find_node(a, &target, g->now, lookup_cb, &done) < 0) return -1;
    pump(g, &done);
    if (done != 1) {
        fprintf(stderr, "gen_corpus: find_node failed (%d)\n", done);
        return -1;
    }
    dht_key_derive(&key, "fuzz", from == FIXTURE_PEER ? "p" : "t", 1);
    done = 0;
    if (dht_put(a, &key, value, sizeof(value) - 1, 3600, g->now, put_cb, &done) < 0) return -1;
    pump(g, &done);
    if (done != 1) {
        fprintf(stderr, "gen_corpus: put failed (%d)\n", done);
        return -1;
    }
    done = 0;
    if (dht_get(g->node[other], &key, g->now, get_cb, &done) < 0) return -1;
    pump(g, &done);
    if (done != 1) {
        fprintf(stderr, "gen_corpus: get failed (%d)\n", done);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static gen_t g;
    int rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
        return 2;
    }
    g.dir = argv[1];
    if (mkdir(g.dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: %s: %s\n", g.dir, strerror(errno));
        return 1;
    }
    g.now = FIXTURE_START_MS;
    for (int i = 0; i < 2; i++) {
        dht_config_t cfg;
        fixture_addr(&g.addr[i], i);
        if (fixture_config(&cfg, i, send_cb, &g) < 0) goto fail;
        g.node[i] = dht_new(&cfg, g.now);
        if (!g.node[i]) goto fail;
        dht_set_wall_clock(g.node[i], g.now, FIXTURE_WALL_MS);
    }
    if (exchange(&g, FIXTURE_PEER) < 0 || exchange(&g, FIXTURE_TARGET) < 0) goto fail;
    for (int i = 0; i < g.nseen && i < GEN_MAX_SAVED; i++) {
        int e = save(&g, i);
        if (e < 0) {
            fprintf(stderr, "gen_corpus: datagram %d: %s\n", i, strerror(-e));
            goto fail;
        }
    }
    if (save_garbage(&g) < 0) goto fail;
    printf("gen_corpus: %d datagrams, %d files in %s\n", g.nseen, g.files, g.dir);
    rc = 0;
fail:
    dht_free(g.node[0]);
    dht_free(g.node[1]);
    return rc;
}
