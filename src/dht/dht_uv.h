/* dht_uv.h: the libuv adapter for the DHT core: one UDP socket per address family, one timer, the
 * monotonic and wall clocks, and datagram I/O. It owns the dht_t it creates. */
#ifndef P2P_DHT_UV_H
#define P2P_DHT_UV_H

#include <uv.h>

#include "dht/dht.h"

typedef struct dht_uv dht_uv_t;

/* Binds UDP on host:port (host NULL = 0.0.0.0 and :: when available) and creates the core from cfg
 * (send/send_ctx are filled in by the adapter). Returns 0 and *out, or a negative UV_E* error. */
int dht_uv_start(uv_loop_t *loop, const dht_config_t *cfg, const char *host, int port,
                 dht_uv_t **out);

/* The core, for starting operations. After starting one, call dht_uv_kick(). */
dht_t *dht_uv_core(dht_uv_t *u);

/* Re-arms the timer to the core's next deadline. Cheap; call after any dht_* call made outside
 * the adapter's own callbacks. */
void dht_uv_kick(dht_uv_t *u);

/* The bound UDP port (useful with port 0). */
int dht_uv_port(const dht_uv_t *u);

/* Closes the sockets and timer; done_cb runs from the loop once every handle is closed, after which
 * the core has been freed (pending operation callbacks ran with -ECANCELED). */
void dht_uv_stop(dht_uv_t *u, void (*done_cb)(void *arg), void *arg);

#endif
