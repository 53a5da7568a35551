/* fuzz.c: libFuzzer harness for the DHT datagram path. One target node and one peer node are
 * created once with fixed keys; each input is fed to the target according to its first byte
 * (fixture.h): as a raw datagram, as a message body the peer seals (so mutations reach the
 * decoder behind the AEAD), as a hello, or straight to the body decoder or the record parser.
 * The send callbacks discard. `now` advances 1 ms per input, so the rate limiter refills and the
 * timers run (dht_periodic) when their deadline comes. */
#include <string.h>

#include "../fuzz.h"
#include "dht/dht-internal.h"
#include "fixture.h"

#ifndef FUZZ_MAX_INPUT
#define FUZZ_MAX_INPUT 4096 /* inputs longer than this are cut (datagrams are <= 1400 bytes) */
#endif

/* The harness state lives for the process, as libFuzzer calls the entry point repeatedly. */
static struct harness {
    dht_t *target;
    dht_t *peer;
    uint8_t pair_key[32];
    dht_addr_t peer_addr;
    uint64_t now;
    int ready;
} h;

static void discard_cb(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    (void)ctx;
    (void)buf;
    (void)len;
    (void)to;
}

static int setup(void)
{
    dht_config_t tc, pc;
    if (fixture_config(&tc, FIXTURE_TARGET, discard_cb, NULL) < 0) return -1;
    if (fixture_config(&pc, FIXTURE_PEER, discard_cb, NULL) < 0) return -1;
    h.now = FIXTURE_START_MS;
    h.target = dht_new(&tc, h.now);
    h.peer = dht_new(&pc, h.now);
    if (!h.target || !h.peer) return -1;
    dht_set_wall_clock(h.target, h.now, FIXTURE_WALL_MS);
    dht_set_wall_clock(h.peer, h.now, FIXTURE_WALL_MS);
    if (dht_crypto_pair_key(h.peer, tc.public_key, h.pair_key) < 0) return -1;
    fixture_addr(&h.peer_addr, FIXTURE_PEER);
    h.ready = 1;
    return 0;
}

static void feed(const uint8_t *buf, size_t len)
{
    dht_input(h.target, buf, len, &h.peer_addr, h.now);
}

static void sealed(uint8_t magic, const uint8_t *key, const uint8_t *body, size_t len)
{
    uint8_t out[DHT_MAX_DATAGRAM];
    int n = dht_crypto_seal(h.peer, magic, key, body, len, out, sizeof(out));
    if (n > 0) feed(out, (size_t)n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!h.ready && setup() < 0) __builtin_trap();
    if (size < 1) return 0;
    if (size > FUZZ_MAX_INPUT) size = FUZZ_MAX_INPUT;
    h.now += 1;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    switch (data[0] % FIXTURE_MODES) {
    case FIXTURE_RAW:
        feed(rest, n);
        break;
    case FIXTURE_BOX:
        sealed(DHT_MAGIC_BOX, h.pair_key, rest, n);
        break;
    case FIXTURE_HELLO:
        sealed(DHT_MAGIC_HELLO, h.peer->hello_key, rest, n);
        break;
    case FIXTURE_DECODE: {
        dht_msg_t m;
        memset(&m, 0, sizeof(m));
        dht_msg_decode(&m, rest, n);
        break;
    }
    case FIXTURE_RECORD: {
        dht_record_t r;
        if (dht_record_unpack(&r, rest, n) == 0) dht_record_verify(&r);
        break;
    }
    }
    if (h.now >= dht_next_deadline(h.target)) dht_periodic(h.target, h.now);
    return 0;
}
