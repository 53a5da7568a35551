/* store.h: the node's SQLite database (DATA_DIR/node.db, WAL, schema version in PRAGMA
 * user_version): the routing-table contacts and the DHT records, saved as one snapshot per
 * transaction. */
#ifndef P2P_NODE_STORE_H
#define P2P_NODE_STORE_H

#include <sqlite3.h>

#include "dht/dht.h"

typedef struct node_store node_store_t;

/* Opens (creating when absent) the database at path, applies migrations, prepares statements.
 * Returns 0 and *out, -EPROTO when the file has a newer schema, or another negative errno. */
int node_store_open(const char *path, node_store_t **out);

/* Closes the database. Accepts NULL. */
void node_store_close(node_store_t *s);

/* The underlying handle (for modules that keep their own tables). */
sqlite3 *node_store_db(node_store_t *s);

/* Schema version in use. */
int node_store_version(node_store_t *s);

/* Starts a snapshot: a transaction that first empties the contact and record tables. */
int node_store_begin(node_store_t *s);

/* Adds one contact / record to the open snapshot. Returns 0 or -EIO. */
int node_store_add_contact(node_store_t *s, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *addr);
int node_store_add_record(node_store_t *s, const dht_record_t *rec);

/* Commits the snapshot (0 or -EIO) or rolls it back. */
int node_store_commit(node_store_t *s);
void node_store_rollback(node_store_t *s);

/* Saves every contact and record of dht in one transaction. Returns 0 or -EIO. */
int node_store_save_dht(node_store_t *s, const dht_t *dht);

/* Calls cb for every saved contact / record. Returns the count or -EIO. Rows that do not fit the
 * structs (wrong blob sizes) are skipped. */
int node_store_load_contacts(node_store_t *s,
                             void (*cb)(void *arg, const uint8_t pk[DHT_PK_LEN],
                                        const dht_addr_t *a),
                             void *arg);
int node_store_load_records(node_store_t *s, void (*cb)(void *arg, const dht_record_t *rec),
                            void *arg);

#endif
