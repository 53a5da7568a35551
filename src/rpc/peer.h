/* peer.h: the peer channel: msgpack-RPC between nodes over TCP (on the DHT port number), secured
 * with the Secret Handshake (SHS v1; app key = the network key, identities = the nodes' Ed25519
 * keys) and box-stream framing, interoperable with the npm `secret-handshake` and
 * `pull-box-stream` packages. Incoming connections are served by the same session dispatcher as
 * the local socket; outgoing calls are multiplexed by msgid over one connection per peer key.
 *
 * Connections are one-way: on a connection we dialled we only send requests (and receive
 * responses and notifications); on one we accepted we only serve requests. Two nodes calling each
 * other therefore hold two connections. */
#ifndef P2P_RPC_PEER_H
#define P2P_RPC_PEER_H

#include <stdint.h>
#include <msgpack.h>
#include <uv.h>

#include "rpc/rpc.h"

#ifndef RPC_PEER_MAX_CONNECTIONS
#define RPC_PEER_MAX_CONNECTIONS 256 /* peer connections, in and out together */
#endif
#ifndef RPC_PEER_HANDSHAKE_MS
#define RPC_PEER_HANDSHAKE_MS 5000 /* TCP connect + handshake must finish within this */
#endif
#ifndef RPC_PEER_IDLE_MS
#define RPC_PEER_IDLE_MS 60000 /* an outgoing connection without calls is closed after this */
#endif
#ifndef RPC_PEER_IDLE_IN_MS
#define RPC_PEER_IDLE_IN_MS                                                                        \
    120000 /* an incoming connection without traffic is closed after this                          \
            */
#endif
#ifndef RPC_PEER_MAX_PENDING
#define RPC_PEER_MAX_PENDING 1024 /* unanswered outgoing calls on one connection */
#endif
#ifndef RPC_PEER_MAX_OUTPUT
#define RPC_PEER_MAX_OUTPUT                                                                        \
    (8u * 1024 * 1024) /* queued bytes before a connection stops reading                           \
                        */
#endif
#ifndef RPC_PEER_MAX_OUTPUT_HARD
#define RPC_PEER_MAX_OUTPUT_HARD (32u * 1024 * 1024) /* queued bytes that close a connection */
#endif

typedef struct rpc_peer rpc_peer_t;

typedef struct rpc_peer_config {
    const uint8_t *public_key;     /* 32 bytes, this node's Ed25519 key */
    const uint8_t *secret_key;     /* 64 bytes */
    const uint8_t *network_key;    /* 32 bytes, the SHS app key */
    rpc_registry_t *reg;           /* serves incoming calls; must outlive the peer object */
    const rpc_auth_config_t *auth; /* copied, secrets included */
    bool no_bulk; /* never offer or accept bulk mode (box-stream only; a diagnostic knob) */
} rpc_peer_config_t;

/* Counters since start (the *_open ones are current values). */
typedef struct rpc_peer_stats {
    uint64_t conns_in_open, conns_out_open;
    uint64_t accepted, dialed, rejected; /* rejected: over the connection cap */
    uint64_t handshakes_ok, handshakes_failed;
    uint64_t protocol_errors; /* bad MACs, oversized or undecodable frames after the handshake */
    uint64_t bytes_in, bytes_out;
    uint64_t calls_out, calls_ok, calls_timeout, calls_failed;
    uint64_t idle_closed, evicted;
    uint64_t bulk_switched; /* directions switched to bulk mode (AES-256-GCM), both ways counted */
} rpc_peer_stats_t;

/* Listens on TCP host:port (host NULL: 0.0.0.0 and ::, either may fail alone; port 0 picks one)
 * and prepares outgoing calls. Keys and auth are copied. Returns 0 and *out, or a negative UV_E*
 * / errno (nothing is left open). */
int rpc_peer_start(uv_loop_t *loop, const rpc_peer_config_t *cfg, const char *host, int port,
                   rpc_peer_t **out);

/* The port the listener is bound to (useful after port 0), or 0. */
int rpc_peer_port(const rpc_peer_t *p);

/* Copies the counters. */
void rpc_peer_stats(const rpc_peer_t *p, rpc_peer_stats_t *out);

/* Closes the listeners and every connection. Pending outgoing calls get -ECANCELED from inside
 * this call; calls served for peers are answered into the void. done_cb (may be NULL) runs from
 * the loop once every handle is closed and p is freed. NULL p: done_cb is not called. */
void rpc_peer_stop(rpc_peer_t *p, void (*done_cb)(void *arg), void *arg);

/* The answer to an outgoing call. status is 0 when a response arrived (then error is the error
 * map, or nil, and result the result), or -ETIMEDOUT (deadline passed), -ECONNREFUSED and other
 * connect errors, -ECONNRESET (the connection died), -EPROTO (handshake failed: wrong network key
 * or not the expected server), -ECANCELED (rpc_peer_stop); error and result are then NULL. The
 * objects are valid only during the callback. */
typedef void (*rpc_peer_reply_cb)(void *arg, int status, const msgpack_object *error,
                                  const msgpack_object *result);

/* A notification [2, method, params] for a pending call: delivered when params is an array whose
 * last element is a map holding "_msgid" equal to the msgid of the request it belongs to (the far
 * side streaming for request N appends {"_msgid": N}; rpc_call_notify does it on peer sessions).
 * The callback gets params without that last element. Objects valid during the callback only. */
typedef void (*rpc_peer_notify_cb)(void *arg, const msgpack_object *method,
                                   const msgpack_object *params);

/* Calls `method` with `params` (an ARRAY object, or NULL for []) on the node whose key is peer_pk,
 * reachable at addr (TCP; the DHT port number). Reuses the open connection to that key whatever
 * addr says, else dials addr and queues the call until the handshake completes. cb runs exactly
 * once, never from inside this function. Returns 0, or -EINVAL, -ENOBUFS (too many pending calls
 * or too much queued output on that connection, or the connection cap is reached with nothing
 * idle to close), -ESHUTDOWN (stopping), -ENOMEM, or a UV_E* dial error: then cb is never called.
 */
int rpc_peer_call(rpc_peer_t *p, const uint8_t peer_pk[32], const struct sockaddr *addr,
                  const char *method, const msgpack_object *params, uint64_t timeout_ms,
                  rpc_peer_reply_cb cb, void *arg);

/* rpc_peer_call with notifications (on_notify may be NULL; it runs before cb, never after). */
int rpc_peer_call_ex(rpc_peer_t *p, const uint8_t peer_pk[32], const struct sockaddr *addr,
                     const char *method, const msgpack_object *params, uint64_t timeout_ms,
                     rpc_peer_reply_cb cb, rpc_peer_notify_cb on_notify, void *arg);

#endif
