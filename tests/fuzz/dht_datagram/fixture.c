/* fixture.c: fixed keys and addresses for the datagram fuzz harness and its corpus generator. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "fixture.h"

int fixture_config(dht_config_t *cfg, int who, dht_send_fn send, void *ctx)
{
    uint8_t seed[32];
    if (sodium_init() < 0) return -EINVAL;
    memset(cfg, 0, sizeof(*cfg));
    memset(seed, who == FIXTURE_TARGET ? 0x11 : 0x22, sizeof(seed));
    crypto_sign_seed_keypair(cfg->public_key, cfg->secret_key, seed);
    memset(cfg->network_key, 0x42, sizeof(cfg->network_key));
    memset(cfg->seed, who == FIXTURE_TARGET ? 0x33 : 0x44, sizeof(cfg->seed));
    cfg->epoch = who == FIXTURE_TARGET ? 1 : 2;
    cfg->send = send;
    cfg->send_ctx = ctx;
    return 0;
}

void fixture_addr(dht_addr_t *out, int who)
{
    memset(out, 0, sizeof(*out));
    out->family = 4;
    out->ip[0] = 127;
    out->ip[3] = who == FIXTURE_TARGET ? 1 : 2;
    out->port = who == FIXTURE_TARGET ? 5678 : 4000;
}
