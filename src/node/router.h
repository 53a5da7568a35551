/* router.h: calls to other nodes (resolution, forwarding, fan-out; router.c) and the glue it needs
 * from the membership view, the DHT and the peer channel (cluster.c). */
#ifndef P2P_NODE_ROUTER_H
#define P2P_NODE_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <msgpack.h>

#include "node/node.h"
#include "rpc/rpc.h"

/* A node a call goes to. */
typedef struct router_target {
    char name[64];
    uint8_t pk[32];
    struct sockaddr_storage addr; /* its peer channel (TCP) */
    bool up;
} router_target_t;

/* The registry's router (rpc_registry_set_router with the node as ctx): resolves and forwards. */
void router_handle(rpc_call_t *call, void *ctx);

/* Forwards call to one resolved target and answers it with the target's answer. */
void router_forward_one(node_t *node, rpc_call_t *call, const router_target_t *t);

/* The node selector (name, @hexprefix, glob) against the membership view: returns how many
 * targets were written to a malloc'd *out (free it), 0 when none, -EINVAL for a bad selector or
 * -ENOTUNIQ for an ambiguous id prefix. Globs match every known node, up or down (down ones are
 * answered UNAVAILABLE). */
int router_resolve(node_t *node, const char *sel, size_t len, router_target_t **out);

/* For a name or id prefix the view does not know: looks for the node's record in the DHT and
 * forwards, else answers NOT_FOUND (within 2 s). */
void router_resolve_remote(node_t *node, rpc_call_t *call, const char *sel, size_t len);

/* Sends one call over the peer channel; cb runs once (also on errors, never from this call when
 * it returns an error). */
typedef void (*router_reply_cb)(void *arg, int status, const msgpack_object *err,
                                const msgpack_object *result);
/* A notification the far node streamed for the call (on_notify may be NULL; never after cb). */
typedef void (*router_notify_cb)(void *arg, const msgpack_object *method,
                                 const msgpack_object *params);
int router_transport_call(node_t *node, const router_target_t *t, const char *method,
                          const msgpack_object *params, uint64_t timeout_ms, router_reply_cb cb,
                          router_notify_cb on_notify, void *arg);

/* The monotonic clock calls' deadlines use (ms). */
uint64_t router_now(node_t *node);

#endif
