/* store.c: SQLite persistence of the routing table and DHT records (see store.h), and the schema
 * migrations of every table in node.db (the audit table is written by audit.c). */
#include "node/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NODE_STORE_BUSY_MS
#define NODE_STORE_BUSY_MS 2000 /* how long a write waits for a lock */
#endif

/* Migrations: entry i takes the schema from version i to i + 1. */
static const char *const migrations[] = {
    "CREATE TABLE contacts ("
    "  public_key BLOB PRIMARY KEY,"
    "  family INTEGER NOT NULL,"
    "  ip BLOB NOT NULL,"
    "  port INTEGER NOT NULL);"
    "CREATE TABLE records ("
    "  key BLOB NOT NULL,"
    "  publisher BLOB NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL,"
    "  value BLOB NOT NULL,"
    "  sig BLOB NOT NULL,"
    "  PRIMARY KEY (key, publisher));",
    /* 1 -> 2: the audit log (audit.c); id grows with every row, time is wall ms */
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  time INTEGER NOT NULL,"
    "  principal TEXT NOT NULL,"
    "  origin TEXT NOT NULL,"
    "  method TEXT NOT NULL,"
    "  params_hash TEXT NOT NULL,"
    "  code INTEGER NOT NULL,"
    "  duration_ms INTEGER NOT NULL);"
    "CREATE INDEX audit_time ON audit (time);",
    /* 2 -> 3: supervised programs (src/services/supervise*.c): the start parameters as a msgpack
     * map, whether the program should run, and the pid with its start time (field 22 of
     * /proc/PID/stat) so a restarted node re-adopts its programs instead of starting twice */
    "CREATE TABLE programs ("
    "  name TEXT PRIMARY KEY,"
    "  spec BLOB NOT NULL,"
    "  wanted INTEGER NOT NULL,"
    "  pid INTEGER NOT NULL DEFAULT 0,"
    "  pid_start INTEGER NOT NULL DEFAULT 0,"
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL);"
    /* monitor history (src/services/monitor_history.c): res is the step in seconds (1 or 60),
     * t the step's start in unix seconds */
    "CREATE TABLE samples ("
    "  res INTEGER NOT NULL,"
    "  metric TEXT NOT NULL,"
    "  t INTEGER NOT NULL,"
    "  value REAL NOT NULL,"
    "  PRIMARY KEY (res, metric, t)) WITHOUT ROWID;"
    /* alert rules (src/services/alert.c); firing_since is wall ms, 0 when not firing */
    "CREATE TABLE alert_rules ("
    "  name TEXT PRIMARY KEY,"
    "  metric TEXT NOT NULL,"
    "  op TEXT NOT NULL,"
    "  threshold REAL NOT NULL,"
    "  for_seconds INTEGER NOT NULL,"
    "  severity TEXT NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  firing_since INTEGER NOT NULL DEFAULT 0);",
    /* 3 -> 4: users and their sessions (src/http/users_db.c), replicated between nodes. bucket is
     * the anti-entropy bucket of the key. users: version orders changes (last writer wins), a
     * removed user stays as a tombstone (deleted = 1, hash ""), tokens minted before
     * tokens_after (wall s) are refused. refresh_families: one row per login session; the live
     * refresh token carries `counter` and hashes to token_hash; times in wall seconds.
     * revoked_tokens: access-token jtis logged out, kept until the token would expire. */
    "CREATE TABLE users ("
    "  name TEXT PRIMARY KEY,"
    "  role TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  tokens_after INTEGER NOT NULL DEFAULT 0,"
    "  disabled INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER NOT NULL DEFAULT 0,"
    "  bucket INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX users_bucket ON users (bucket);"
    "CREATE TABLE refresh_families ("
    "  family BLOB PRIMARY KEY,"
    "  username TEXT NOT NULL,"
    "  counter INTEGER NOT NULL,"
    "  token_hash BLOB NOT NULL,"
    "  created INTEGER NOT NULL,"
    "  expires INTEGER NOT NULL,"
    "  revoked INTEGER NOT NULL DEFAULT 0,"
    "  bucket INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX refresh_user ON refresh_families (username);"
    "CREATE INDEX refresh_expires ON refresh_families (expires);"
    "CREATE INDEX refresh_bucket ON refresh_families (bucket);"
    "CREATE TABLE revoked_tokens ("
    "  jti TEXT PRIMARY KEY,"
    "  expires INTEGER NOT NULL,"
    "  bucket INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX revoked_expires ON revoked_tokens (expires);"
    "CREATE INDEX revoked_bucket ON revoked_tokens (bucket);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_DEL_CONTACTS,
    S_DEL_RECORDS,
    S_ADD_CONTACT,
    S_ADD_RECORD,
    S_GET_CONTACTS,
    S_GET_RECORDS,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_DEL_CONTACTS] = "DELETE FROM contacts",
    [S_DEL_RECORDS] = "DELETE FROM records",
    [S_ADD_CONTACT] =
        "INSERT OR REPLACE INTO contacts (public_key, family, ip, port) VALUES (?,?,?,?)",
    [S_ADD_RECORD] = "INSERT OR REPLACE INTO records (key, publisher, seq, expires, value, sig) "
                     "VALUES (?,?,?,?,?,?)",
    [S_GET_CONTACTS] = "SELECT public_key, family, ip, port FROM contacts",
    [S_GET_RECORDS] = "SELECT key, publisher, seq, expires, value, sig FROM records",
};

struct node_store {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    int version;
};

static int step_done(node_store_t *s, int which)
{
    sqlite3_stmt *st = s->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = -EIO;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_step(st) != SQLITE_ROW) goto fail;
    *out = sqlite3_column_int(st, 0);
    rc = 0;
fail:
    sqlite3_finalize(st);
    return rc;
}

static int migrate(sqlite3 *db, int *version)
{
    int v;
    if (pragma_int(db, "PRAGMA user_version", &v) < 0) return -EIO;
    if (v > SCHEMA_VERSION) return -EPROTO;
    for (; v < SCHEMA_VERSION; v++) {
        char set[64];
        snprintf(set, sizeof(set), "PRAGMA user_version = %d", v + 1);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return -EIO;
        if (sqlite3_exec(db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, set, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return -EIO;
        }
    }
    *version = v;
    return 0;
}

int node_store_open(const char *path, node_store_t **out)
{
    node_store_t *s = calloc(1, sizeof(*s));
    int rc = -ENOMEM;
    if (!s) return rc;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600); /* SQLite's -wal/-shm copy this mode */
    if (fd >= 0) close(fd);
    rc = -EIO;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(s->db, NODE_STORE_BUSY_MS);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK)
        goto fail;
    if ((rc = migrate(s->db, &s->version)) < 0) goto fail;
    rc = -EIO;
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                               NULL) != SQLITE_OK)
            goto fail;
    *out = s;
    return 0;
fail:
    node_store_close(s);
    return rc;
}

void node_store_close(node_store_t *s)
{
    if (!s) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s);
}

sqlite3 *node_store_db(node_store_t *s)
{
    return s->db;
}

int node_store_version(node_store_t *s)
{
    return s->version;
}

int node_store_begin(node_store_t *s)
{
    if (step_done(s, S_BEGIN) < 0) return -EIO;
    if (step_done(s, S_DEL_CONTACTS) < 0 || step_done(s, S_DEL_RECORDS) < 0) {
        node_store_rollback(s);
        return -EIO;
    }
    return 0;
}

int node_store_commit(node_store_t *s)
{
    if (step_done(s, S_COMMIT) == 0) return 0;
    node_store_rollback(s);
    return -EIO;
}

void node_store_rollback(node_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db)) step_done(s, S_ROLLBACK);
}

int node_store_add_contact(node_store_t *s, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *addr)
{
    sqlite3_stmt *st = s->st[S_ADD_CONTACT];
    if (addr->family != 4 && addr->family != 6) return -EINVAL;
    sqlite3_bind_blob(st, 1, pk, DHT_PK_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, addr->family);
    sqlite3_bind_blob(st, 3, addr->ip, addr->family == 4 ? 4 : 16, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, addr->port);
    return step_done(s, S_ADD_CONTACT);
}

int node_store_add_record(node_store_t *s, const dht_record_t *rec)
{
    sqlite3_stmt *st = s->st[S_ADD_RECORD];
    if (rec->value_len > DHT_MAX_VALUE) return -EINVAL;
    sqlite3_bind_blob(st, 1, rec->key.b, DHT_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, rec->publisher, DHT_PK_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)rec->seq); /* stored as the same 64 bits */
    sqlite3_bind_int64(st, 4, (sqlite3_int64)rec->expires);
    sqlite3_bind_blob(st, 5, rec->value, rec->value_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, rec->sig, DHT_SIG_LEN, SQLITE_STATIC);
    return step_done(s, S_ADD_RECORD);
}

typedef struct save_ctx {
    node_store_t *s;
    int rc;
} save_ctx_t;

static void save_contact(void *arg, const dht_contact_info_t *c)
{
    save_ctx_t *x = arg;
    if (x->rc == 0 && node_store_add_contact(x->s, c->public_key, &c->addr) == -EIO) x->rc = -EIO;
}

static void save_record(void *arg, const dht_record_t *r)
{
    save_ctx_t *x = arg;
    if (x->rc == 0 && node_store_add_record(x->s, r) == -EIO) x->rc = -EIO;
}

int node_store_save_dht(node_store_t *s, const dht_t *dht)
{
    save_ctx_t x = {s, 0};
    if (node_store_begin(s) < 0) return -EIO;
    dht_foreach_contact(dht, save_contact, &x);
    dht_foreach_record(dht, save_record, &x);
    if (x.rc < 0) {
        node_store_rollback(s);
        return x.rc;
    }
    return node_store_commit(s);
}

static bool blob_is(sqlite3_stmt *st, int col, size_t len)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB &&
           (size_t)sqlite3_column_bytes(st, col) == len;
}

int node_store_load_contacts(node_store_t *s,
                             void (*cb)(void *arg, const uint8_t pk[DHT_PK_LEN],
                                        const dht_addr_t *a),
                             void *arg)
{
    sqlite3_stmt *st = s->st[S_GET_CONTACTS];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        dht_addr_t a;
        memset(&a, 0, sizeof(a));
        int fam = sqlite3_column_int(st, 1), port = sqlite3_column_int(st, 3);
        if (!blob_is(st, 0, DHT_PK_LEN) || (fam != 4 && fam != 6) ||
            !blob_is(st, 2, fam == 4 ? 4 : 16) || port < 1 || port > 65535)
            continue;
        a.family = (uint8_t)fam;
        memcpy(a.ip, sqlite3_column_blob(st, 2), fam == 4 ? 4 : 16);
        a.port = (uint16_t)port;
        cb(arg, sqlite3_column_blob(st, 0), &a);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int node_store_load_records(node_store_t *s, void (*cb)(void *arg, const dht_record_t *rec),
                            void *arg)
{
    sqlite3_stmt *st = s->st[S_GET_RECORDS];
    dht_record_t *rec = malloc(sizeof(*rec));
    int n = 0, rc;
    if (!rec) return -ENOMEM;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int vlen = sqlite3_column_bytes(st, 4);
        if (!blob_is(st, 0, DHT_ID_LEN) || !blob_is(st, 1, DHT_PK_LEN) ||
            !blob_is(st, 5, DHT_SIG_LEN) || vlen > DHT_MAX_VALUE)
            continue;
        memset(rec, 0, sizeof(*rec));
        memcpy(rec->key.b, sqlite3_column_blob(st, 0), DHT_ID_LEN);
        memcpy(rec->publisher, sqlite3_column_blob(st, 1), DHT_PK_LEN);
        rec->seq = (uint64_t)sqlite3_column_int64(st, 2);
        rec->expires = (uint64_t)sqlite3_column_int64(st, 3);
        if (vlen > 0) memcpy(rec->value, sqlite3_column_blob(st, 4), (size_t)vlen);
        rec->value_len = (uint16_t)vlen;
        memcpy(rec->sig, sqlite3_column_blob(st, 5), DHT_SIG_LEN);
        cb(arg, rec);
        n++;
    }
    sqlite3_reset(st);
    free(rec);
    return rc == SQLITE_DONE ? n : -EIO;
}
