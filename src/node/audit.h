/* audit.h: the node's audit log: every call that changed something and every refused call, kept in
 * the `audit` table of DATA_DIR/node.db (created by the store's migrations). Records are queued in
 * memory by the dispatcher's hook and written in batches, one transaction each, so the event loop
 * never waits on the disk for more than one batch. The table keeps the newest rows only. */
#ifndef P2P_NODE_AUDIT_H
#define P2P_NODE_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "node/node.h"
#include "rpc/rpc.h"

#ifndef NODE_AUDIT_MAX_ROWS
#define NODE_AUDIT_MAX_ROWS 100000 /* rows kept on disk; older ones are deleted */
#endif
#ifndef NODE_AUDIT_BATCH
#define NODE_AUDIT_BATCH 256 /* queued records that trigger a write at once */
#endif
#ifndef NODE_AUDIT_QUEUE_MAX
#define NODE_AUDIT_QUEUE_MAX 4096 /* queued records while the disk refuses; more are dropped */
#endif
#ifndef NODE_AUDIT_FLUSH_MS
#define NODE_AUDIT_FLUSH_MS 200 /* longest a record waits in memory */
#endif
#ifndef NODE_AUDIT_QUERY_MAX
#define NODE_AUDIT_QUERY_MAX 1000 /* rows one node.audit call returns at most */
#endif

typedef struct node_audit node_audit_t;

/* Opens its own connection to the database at path (whose schema the store has migrated) and
 * keeps at most max_rows rows (0 = NODE_AUDIT_MAX_ROWS). Returns 0 and *out, -ENOMEM, or -EIO
 * when the database or its audit table cannot be used. */
int node_audit_open(const char *path, uint64_t max_rows, node_audit_t **out);

/* Writes what is queued and closes the connection. NULL ok. */
void node_audit_close(node_audit_t *a);

/* Queues one record: e as the dispatcher gives it, the wall time (ms since the epoch) and the
 * duration (ms). Writes the queue when NODE_AUDIT_BATCH records wait. Never fails: when the queue
 * is full the record is counted in node_audit_dropped(). */
void node_audit_add(node_audit_t *a, const rpc_audit_entry_t *e, uint64_t wall_ms,
                    uint64_t duration_ms);

/* Writes every queued record and trims the table in one transaction. Returns the number written,
 * or -EIO (the records stay queued). */
int node_audit_flush(node_audit_t *a);

/* Records waiting in memory / records lost to a full queue. */
size_t node_audit_pending(const node_audit_t *a);
uint64_t node_audit_dropped(const node_audit_t *a);

/* Packs into pk an array of at most limit rows (1..NODE_AUDIT_QUERY_MAX) whose time is >= since_ms,
 * newest first, each a map {id, time, principal, origin, method, params_hash, code, error,
 * duration_ms}. Queued records are written first. Returns the row count or -EIO (nothing packed).
 */
int node_audit_query(node_audit_t *a, uint64_t since_ms, int limit, msgpack_packer *pk);

/* The daemon's part (called by node_methods_register()): opens the log on DATA_DIR/node.db,
 * installs the dispatcher's audit hook in reg (node->reg), registers system.local.node.audit
 * {since, limit} (role viewer) and starts the flush timer on node->loop. The log closes itself
 * (after a last write) once node_stop() has released the registry. Returns 0 or a negative errno.
 */
int node_audit_start(node_t *node, rpc_registry_t *reg);

#endif
