/* peer-internal.h: what the peer channel's two files share: peer.c (listeners, connections,
 * handshake, box-stream output with backpressure, incoming calls) and peer_client.c (outgoing
 * calls: dialling, requests, responses, notifications). Not for other modules. */
#ifndef P2P_RPC_PEER_INTERNAL_H
#define P2P_RPC_PEER_INTERNAL_H

#include <msgpack.h>
#include <uv.h>

#include "base/base.h"
#include "rpc/peer.h"
#include "rpc/rpc-internal.h"
#include "rpc/shs.h"

#ifndef RPC_PEER_READ_CHUNK
#define RPC_PEER_READ_CHUNK 65536 /* bytes read from a socket at once */
#endif

typedef struct pconn pconn_t;
typedef struct pcall pcall_t;

enum { ST_DIAL, ST_SHAKE, ST_OPEN };

struct rpc_peer {
    uv_loop_t *loop;
    uv_tcp_t listeners[2];
    int n_listeners;
    int port;
    uint8_t pk[32], sk[64], net_key[32];
    rpc_registry_t *reg;
    rpc_auth_config_t auth; /* points into the copies below */
    uint8_t *secret, *prev_secret;
    char *audience;
    pconn_t *conns;
    size_t n_conns;
    size_t closing; /* handles whose close_cb has not run yet (connections count once) */
    bool stopping;
    void (*done_cb)(void *arg);
    void *done_arg;
    rpc_peer_stats_t st;
    bool bulk; /* bulk mode is offered and accepted (config and CPU allow it) */
    uv_prepare_t prepare; /* writes what the loop iteration gathered, before it polls */
    bool prepare_open;
    size_t n_dirty; /* connections with gathered output */
    char rbuf[RPC_PEER_READ_CHUNK];
};

struct pcall {
    pcall_t *prev, *next;
    uint32_t msgid;
    uint64_t deadline;
    rpc_peer_reply_cb cb;
    rpc_peer_notify_cb on_notify;
    void *arg;
};

struct pconn {
    rpc_peer_t *p;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t creq;
    pconn_t *prev, *next;
    bool outbound;
    int state;
    int open; /* handles not yet closed */
    bool closed, reading, kill, draining;
    int kill_status; /* what pending calls get when kill closes the connection */
    uint8_t peer_pk[32];
    uint64_t hs_deadline, last_active;
    rpc_shs_t *shs;
    rpc_box_enc_t enc;
    rpc_box_dec_t *dec;
    size_t queued;       /* bytes held for the peer: gathered frames and writes in flight */
    p2p_buf_t out;       /* encrypted frames gathered in this loop iteration */
    bool dirty;          /* out holds bytes (counted in p->n_dirty) */
    p2p_buf_t early;     /* outbound: plaintext requests waiting for the handshake */
    rpc_session_t *sess; /* inbound */
    rpc_decoder_t rdec;  /* outbound: response frames */
    pcall_t *calls;
    size_t n_calls;
    uint32_t next_msgid;
};

typedef struct wreq {
    uv_write_t req;
    pconn_t *c;
    size_t len;     /* bytes it counts for backpressure */
    uint8_t *owned; /* a connection's whole output buffer handed over (freed with it), or NULL */
    uint8_t data[]; /* else the bytes themselves */
} wreq_t;

#ifndef RPC_HANDOVER_MIN
#define RPC_HANDOVER_MIN 65536 /* unwritten output past this is handed to the write, not copied */
#endif

static inline uint64_t now_ms(void)
{
    return p2p_mono_ms();
}

/* Connection life (peer.c). */
/* Re-arms c's timer for its next deadline (handshake, call deadlines, idleness). */
void peer_arm(pconn_t *c);
/* Closes c now; its pending calls are answered with status. */
void peer_conn_close(pconn_t *c, int status);
/* A new connection object (TCP handle and timer initialised), linked into p. NULL on no memory. */
pconn_t *peer_conn_new(rpc_peer_t *p, bool outbound);
/* Makes room under the connection cap by closing the longest-idle one; false when none is idle. */
bool peer_make_room(rpc_peer_t *p);
/* Encrypts a frame into c's output for this loop iteration. Returns 0 or a negative errno. */
int peer_send_plain(pconn_t *c, const uint8_t *buf, size_t len);
/* Puts c's sending direction in bulk mode after the switch frame. Returns 0 or a negative errno
 * (c is then being closed, except for -EALREADY). */
int peer_send_switch(pconn_t *c);
/* Queues raw bytes (a handshake message or already encrypted data; w may carry them). */
int peer_send_raw(pconn_t *c, const uint8_t *buf, size_t len, wreq_t *w);
/* Unlinks pending call k from c and frees it, handing back its callback and argument. */
void peer_call_take(pconn_t *c, pcall_t *k, rpc_peer_reply_cb *cb, void **arg);

/* Starts or stops reading from c (backpressure). */
void peer_set_reading(pconn_t *c, bool on);
/* Feeds decrypted bytes of an outgoing connection: answers its calls (peer_client.c). Returns
 * false when c was closed meanwhile. */
bool peer_client_input(pconn_t *c, const uint8_t *buf, size_t len);

#endif
