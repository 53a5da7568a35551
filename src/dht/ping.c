/* ping.c: pings with a completion callback (dht_ping): a PING sent as a pending request whose PONG
 * or timeout completes a bounded slot; callbacks run from dht_input(), dht_periodic() and
 * dht_free() like the other operations'. No I/O and no clock: `now` comes in, the earliest
 * deadline goes out through dht_next_deadline(). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

int dht_ping(dht_t *dht, const dht_addr_t *addr, const uint8_t *pk, uint32_t timeout_ms,
             uint64_t now, dht_ping_cb cb, void *arg)
{
    if (!addr || (addr->family != 4 && addr->family != 6) || addr->port == 0 || !cb) return -EINVAL;
    if (pk && memcmp(pk, dht->cfg.public_key, DHT_PK_LEN) == 0) return -EINVAL;
    if (dht->npings >= DHT_MAX_PINGS) return -ENOBUFS;
    if (!dht->pings) {
        dht->pings = calloc(DHT_MAX_PINGS, sizeof(dht_ping_slot_t));
        if (!dht->pings) return -ENOMEM;
    }
    if (timeout_ms == 0) timeout_ms = 1;
    if (timeout_ms > DHT_PING_MAX_TIMEOUT_MS) timeout_ms = DHT_PING_MAX_TIMEOUT_MS;
    dht->now = now;
    dht_msg_t m = {.type = DHT_MSG_PING};
    int idx = dht_send_request(dht, &m, pk, addr, pk == NULL, DHT_REQ_PING, -1, -1, now);
    if (idx < 0) return idx;
    /* the pending request lives at least as long as the ping waits, so its txid stays unique */
    dht_pending_t *pd = &dht->pending[idx];
    uint64_t deadline = now + timeout_ms;
    if (pd->hard_deadline < deadline) pd->hard_deadline = deadline;
    int free_slot = 0; /* one exists: npings < DHT_MAX_PINGS */
    while (free_slot < DHT_MAX_PINGS - 1 && dht->pings[free_slot].used)
        free_slot++;
    dht_ping_slot_t *s = &dht->pings[free_slot];
    memset(s, 0, sizeof(*s));
    s->used = true;
    s->txid = pd->txid;
    s->deadline = deadline;
    s->cb = cb;
    s->arg = arg;
    dht->npings++;
    return 0;
}

static dht_ping_slot_t *waiting(dht_t *dht, uint32_t txid)
{
    for (int i = 0; dht->pings && i < DHT_MAX_PINGS; i++) {
        dht_ping_slot_t *s = &dht->pings[i];
        if (s->used && !s->done && s->txid == txid) return s;
    }
    return NULL;
}

void dht_pings_on_pong(dht_t *dht, uint32_t txid, uint64_t rtt)
{
    if (dht->npings == 0) return;
    dht_ping_slot_t *s = waiting(dht, txid);
    if (!s) return; /* a maintenance ping, or one whose caller already got its timeout */
    s->done = true;
    s->status = 0;
    s->rtt_ms = rtt > UINT32_MAX ? UINT32_MAX : (uint32_t)rtt;
    dht->npings_done++;
}

void dht_pings_expire(dht_t *dht, uint64_t now)
{
    for (int i = 0; dht->npings > dht->npings_done && i < DHT_MAX_PINGS; i++) {
        dht_ping_slot_t *s = &dht->pings[i];
        if (s->used && !s->done && now >= s->deadline) {
            s->done = true;
            s->status = -ETIMEDOUT;
            dht->npings_done++;
        }
    }
}

uint64_t dht_pings_deadline(const dht_t *dht)
{
    uint64_t next = UINT64_MAX;
    for (int i = 0; dht->npings > 0 && i < DHT_MAX_PINGS; i++) {
        const dht_ping_slot_t *s = &dht->pings[i];
        if (s->used && !s->done && s->deadline < next) next = s->deadline;
    }
    return next;
}

/* Frees slot s, then runs its callback (which may start another ping in the freed slot). */
static void finish_one(dht_t *dht, dht_ping_slot_t *s, int status)
{
    dht_ping_cb cb = s->cb;
    void *arg = s->arg;
    uint32_t rtt = s->rtt_ms;
    if (s->done) dht->npings_done--;
    memset(s, 0, sizeof(*s));
    dht->npings--;
    cb(arg, status, status == 0 ? rtt : 0);
}

void dht_pings_finish(dht_t *dht)
{
    for (int i = 0; dht->npings_done > 0 && i < DHT_MAX_PINGS; i++) {
        dht_ping_slot_t *s = &dht->pings[i];
        if (s->used && s->done) finish_one(dht, s, s->status);
    }
}

void dht_pings_cancel_all(dht_t *dht)
{
    for (int i = 0; dht->pings && i < DHT_MAX_PINGS; i++) {
        dht_ping_slot_t *s = &dht->pings[i];
        if (s->used) finish_one(dht, s, s->done ? s->status : -ECANCELED);
    }
    free(dht->pings);
    dht->pings = NULL;
}
