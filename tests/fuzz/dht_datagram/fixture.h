/* fixture.h: the fixed identities, network key, addresses and clocks shared by the datagram fuzz
 * harness and its corpus generator, so that generated datagrams open on the harness's node. */
#ifndef P2P_FUZZ_DHT_FIXTURE_H
#define P2P_FUZZ_DHT_FIXTURE_H

#include <stdint.h>

#include "dht/dht.h"

/* The node under test and the peer that sends to it. */
enum fixture_who { FIXTURE_TARGET = 0, FIXTURE_PEER = 1 };

/* Input modes: the first byte of a harness input chooses how the rest reaches the core. */
enum fixture_mode {
    FIXTURE_RAW = 0,    /* rest is a whole datagram, fed to dht_input as is */
    FIXTURE_BOX = 1,    /* rest is a message body, sealed by the peer with the pairwise key */
    FIXTURE_HELLO = 2,  /* rest is a message body, sealed as a hello (network key only) */
    FIXTURE_DECODE = 3, /* rest goes to the body decoder alone */
    FIXTURE_RECORD = 4, /* rest goes to the record parser alone */
    FIXTURE_MODES
};

#define FIXTURE_START_MS 1000u            /* monotonic `now` at creation */
#define FIXTURE_WALL_MS  1700000000000ull /* wall clock at FIXTURE_START_MS */

/* Fills cfg for who with fixed keys (derived from fixed seeds), the fixed network key and the
 * given send callback. Returns 0 or -EINVAL. */
int fixture_config(dht_config_t *cfg, int who, dht_send_fn send, void *ctx);

/* The fixed address of who (127.0.0.1:5678 for the target, 127.0.0.2:4000 for the peer). */
void fixture_addr(dht_addr_t *out, int who);

#endif
