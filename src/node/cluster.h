/* cluster.h: the node in its network (cluster.c): peer channel, membership gossip, the node record
 * in the DHT, and the methods node.nodes, node.gossip, node.gossip_push. */
#ifndef P2P_NODE_CLUSTER_H
#define P2P_NODE_CLUSTER_H

#include <uv.h>

#include "node/node.h"
#include "rpc/rpc.h"

/* Registers node.nodes, node.gossip and node.gossip_push and installs the router in reg.
 * Returns 0 or a negative errno. */
int node_cluster_register(node_t *node, rpc_registry_t *reg);

/* Creates the membership view with our signed record, listens on the peer channel (TCP, the DHT's
 * port number) and starts gossiping. Needs the DHT and the registry. Returns 0, or a negative
 * errno with one line in err. */
int node_cluster_start(node_t *node, char *err, size_t errlen);

/* Starts closing the gossip timer (timer_closed runs for it, with the timer's data = node) and the
 * peer channel (part_done(node) runs when it is closed), adding to *parts for each. */
void node_cluster_stop(node_t *node, uv_close_cb timer_closed, void (*part_done)(void *arg),
                       int *parts);

/* Frees the membership view and tokens once everything is closed. */
void node_cluster_free(node_t *node);

#endif
