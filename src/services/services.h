/* services.h: the node's local administration services, one per method domain of CONTRACT
 * section 3: process (process.c, procfs.c, spawn.c), supervised programs in the process domain
 * (supervise*.c), file (file*.c), network (network.c, netinfo.c) and monitor (monitor*.c, alert.c,
 * webhook.c). Each registers its methods in the node's one method table (node->reg) and owns a
 * context; daemon.c starts them after the store and the DHT and stops them before those close. */
#ifndef P2P_SERVICES_H
#define P2P_SERVICES_H

#include <stddef.h>

#include "node/node.h"

typedef struct svc_process svc_process_t;
typedef struct svc_supervise svc_supervise_t;
typedef struct svc_file svc_file_t;
typedef struct svc_network svc_network_t;
typedef struct svc_monitor svc_monitor_t;

/* Every svc_X_start: creates the service for node (reads node->cfg, node->db, node->loop, node->log),
 * registers its methods in node->reg with the context as handler ctx, and starts its timers and
 * children. Returns 0 and *out, or a negative errno after writing one line to err (nothing is left
 * open then).
 *
 * Every svc_X_stop: stops timers, answers calls still in progress (UNAVAILABLE), closes handles,
 * then runs done(arg) from the loop once everything is closed and the context freed. NULL svc:
 * done is not called. The methods stay in the table; they must not be called after stop (the
 * registry is freed right after every service has stopped). */
int svc_process_start(node_t *node, svc_process_t **out, char *err, size_t errlen);
void svc_process_stop(svc_process_t *svc, void (*done)(void *arg), void *arg);

int svc_supervise_start(node_t *node, svc_supervise_t **out, char *err, size_t errlen);
void svc_supervise_stop(svc_supervise_t *svc, void (*done)(void *arg), void *arg);

int svc_file_start(node_t *node, svc_file_t **out, char *err, size_t errlen);
void svc_file_stop(svc_file_t *svc, void (*done)(void *arg), void *arg);

int svc_network_start(node_t *node, svc_network_t **out, char *err, size_t errlen);
void svc_network_stop(svc_network_t *svc, void (*done)(void *arg), void *arg);

int svc_monitor_start(node_t *node, svc_monitor_t **out, char *err, size_t errlen);
void svc_monitor_stop(svc_monitor_t *svc, void (*done)(void *arg), void *arg);

#endif
