/* audit.c: the audit log (see audit.h): a bounded in-memory queue filled by the dispatcher's hook,
 * written to the `audit` table in one transaction per batch (every NODE_AUDIT_FLUSH_MS, at once
 * when NODE_AUDIT_BATCH records wait, and at shutdown), the table trimmed to the newest rows in the
 * same transaction; and the method system.local.node.audit that reads it back. */
#include "node/audit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "base/base.h"
#include "node/log.h"

#ifndef NODE_AUDIT_BUSY_MS
#define NODE_AUDIT_BUSY_MS 200 /* how long a batch waits for the database lock */
#endif

typedef struct entry {
    uint64_t wall_ms, duration_ms;
    int code;
    uint8_t hash[16];
    char principal[RPC_MAX_SUB + 1];
    char origin[NODE_NAME_MAX + 1];
    char method[RPC_MAX_METHOD_NAME + 1];
} entry_t;

enum stmt { S_BEGIN, S_COMMIT, S_ROLLBACK, S_INSERT, S_TRIM, S_QUERY, S_COUNT };

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_INSERT] = "INSERT INTO audit (time, principal, origin, method, params_hash, code, "
                 "duration_ms) VALUES (?,?,?,?,?,?,?)",
    [S_TRIM] = "DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?",
    [S_QUERY] = "SELECT id, time, principal, origin, method, params_hash, code, duration_ms "
                "FROM audit WHERE time >= ? ORDER BY id DESC LIMIT ?",
};

struct node_audit {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    uint64_t max_rows;
    entry_t *q; /* queued records, oldest first */
    size_t n, cap;
    uint64_t dropped;
};

static int step_done(node_audit_t *a, int which)
{
    sqlite3_stmt *st = a->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int node_audit_open(const char *path, uint64_t max_rows, node_audit_t **out)
{
    node_audit_t *a = calloc(1, sizeof(*a));
    if (!a) return -ENOMEM;
    a->max_rows = max_rows ? max_rows : NODE_AUDIT_MAX_ROWS;
    if (a->max_rows > INT64_MAX) a->max_rows = INT64_MAX;
    if (sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout(a->db, NODE_AUDIT_BUSY_MS);
    if (sqlite3_exec(a->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v3(a->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &a->st[i],
                               NULL) != SQLITE_OK)
            goto fail;
    *out = a;
    return 0;
fail:
    node_audit_close(a);
    return -EIO;
}

void node_audit_close(node_audit_t *a)
{
    if (!a) return;
    if (a->n && a->st[S_QUERY]) node_audit_flush(a); /* all prepared */
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(a->st[i]);
    sqlite3_close(a->db);
    free(a->q);
    free(a);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
}

void node_audit_add(node_audit_t *a, const rpc_audit_entry_t *e, uint64_t wall_ms,
                    uint64_t duration_ms)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        if (cap > NODE_AUDIT_QUEUE_MAX) cap = NODE_AUDIT_QUEUE_MAX;
        entry_t *q = cap > a->cap ? realloc(a->q, cap * sizeof(*q)) : NULL;
        if (!q) {
            a->dropped++;
            return;
        }
        a->q = q, a->cap = cap;
    }
    entry_t *x = &a->q[a->n++];
    x->wall_ms = wall_ms;
    x->duration_ms = duration_ms;
    x->code = e->code;
    if (e->params_hash)
        memcpy(x->hash, e->params_hash, sizeof(x->hash));
    else
        memset(x->hash, 0, sizeof(x->hash));
    copy_str(x->principal, sizeof(x->principal), e->principal);
    copy_str(x->origin, sizeof(x->origin), e->origin);
    copy_str(x->method, sizeof(x->method), e->method);
    if (a->n >= NODE_AUDIT_BATCH) node_audit_flush(a);
}

static int insert(node_audit_t *a, const entry_t *x)
{
    sqlite3_stmt *st = a->st[S_INSERT];
    char hex[2 * sizeof(x->hash) + 1];
    p2p_hex_encode(hex, x->hash, sizeof(x->hash));
    sqlite3_bind_int64(st, 1, (sqlite3_int64)x->wall_ms);
    sqlite3_bind_text(st, 2, x->principal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, x->origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, x->method, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, hex, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 6, x->code);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)x->duration_ms);
    return step_done(a, S_INSERT);
}

int node_audit_flush(node_audit_t *a)
{
    if (a->n == 0) return 0;
    if (step_done(a, S_BEGIN) < 0) return -EIO;
    for (size_t i = 0; i < a->n; i++)
        if (insert(a, &a->q[i]) < 0) goto fail;
    sqlite3_bind_int64(a->st[S_TRIM], 1, (sqlite3_int64)a->max_rows);
    if (step_done(a, S_TRIM) < 0 || step_done(a, S_COMMIT) < 0) goto fail;
    int n = (int)a->n;
    a->n = 0;
    return n;
fail:
    if (!sqlite3_get_autocommit(a->db)) step_done(a, S_ROLLBACK);
    return -EIO;
}

size_t node_audit_pending(const node_audit_t *a)
{
    return a->n;
}

uint64_t node_audit_dropped(const node_audit_t *a)
{
    return a->dropped;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_col_text(msgpack_packer *pk, sqlite3_stmt *st, int col)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    pack_str(pk, s ? s : "");
}

int node_audit_query(node_audit_t *a, uint64_t since_ms, int limit, msgpack_packer *pk)
{
    sqlite3_stmt *st = a->st[S_QUERY];
    int rc, n = 0;
    msgpack_sbuffer sb;
    msgpack_packer rows;
    if (limit < 1) limit = 1;
    if (limit > NODE_AUDIT_QUERY_MAX) limit = NODE_AUDIT_QUERY_MAX;
    if (since_ms > INT64_MAX) since_ms = INT64_MAX;
    node_audit_flush(a); /* a failed write leaves the queue for the next tick */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&rows, &sb, msgpack_sbuffer_write);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ms);
    sqlite3_bind_int(st, 2, limit);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int code = sqlite3_column_int(st, 6);
        msgpack_pack_map(&rows, 9);
        pack_str(&rows, "id");
        msgpack_pack_int64(&rows, sqlite3_column_int64(st, 0));
        pack_str(&rows, "time");
        msgpack_pack_int64(&rows, sqlite3_column_int64(st, 1));
        pack_str(&rows, "principal");
        pack_col_text(&rows, st, 2);
        pack_str(&rows, "origin");
        pack_col_text(&rows, st, 3);
        pack_str(&rows, "method");
        pack_col_text(&rows, st, 4);
        pack_str(&rows, "params_hash");
        pack_col_text(&rows, st, 5);
        pack_str(&rows, "code");
        msgpack_pack_int(&rows, code);
        pack_str(&rows, "error");
        if (code)
            pack_str(&rows, rpc_error_name(code));
        else
            msgpack_pack_nil(&rows);
        pack_str(&rows, "duration_ms");
        msgpack_pack_int64(&rows, sqlite3_column_int64(st, 7));
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE) {
        msgpack_pack_array(pk, (size_t)n);
        if (sb.size) pk->callback(pk->data, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
    return rc == SQLITE_DONE ? n : -EIO;
}

/* --- the daemon's part ---------------------------------------------------------------------- */

typedef struct daemon_audit {
    node_t *node;
    node_audit_t *log;
    uv_timer_t timer;
    bool failing; /* the last write failed (logged once) */
    uint64_t dropped_logged;
} daemon_audit_t;

static void write_queue(daemon_audit_t *d)
{
    int r = node_audit_flush(d->log);
    if (r < 0 && !d->failing)
        node_log(d->node->log, NODE_LOG_ERROR, "audit log write failed", "err",
                 sqlite3_errmsg(d->log->db), NULL);
    else if (r >= 0 && d->failing)
        node_log(d->node->log, NODE_LOG_INFO, "audit log writes again", NULL);
    d->failing = r < 0;
    uint64_t dropped = node_audit_dropped(d->log);
    if (dropped != d->dropped_logged) {
        char n[24];
        snprintf(n, sizeof(n), "%llu", (unsigned long long)dropped);
        node_log(d->node->log, NODE_LOG_WARNING, "audit records dropped (queue full)", "#total", n,
                 NULL);
        d->dropped_logged = dropped;
    }
}

static void hook(void *ctx, const rpc_audit_entry_t *e)
{
    daemon_audit_t *d = ctx;
    uint64_t now = p2p_mono_ms(); /* the clock the dispatcher's start_ms comes from */
    node_audit_add(d->log, e, p2p_wall_ms(), now > e->start_ms ? now - e->start_ms : 0);
}

static void closed_cb(uv_handle_t *h)
{
    daemon_audit_t *d = h->data;
    node_audit_close(d->log);
    free(d);
}

static void tick_cb(uv_timer_t *t)
{
    daemon_audit_t *d = t->data;
    if (node_audit_pending(d->log)) write_queue(d);
    /* once the registry is gone no call can reach the hook any more */
    if (d->node->stopping && !d->node->reg) {
        write_queue(d);
        uv_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, closed_cb);
    }
}

static void audit_cb(rpc_call_t *call, void *ctx)
{
    daemon_audit_t *d = ctx;
    int64_t since = rpc_call_int(call, "since");
    int64_t limit = rpc_call_int(call, "limit");
    int r = node_audit_query(d->log, (uint64_t)since, (int)limit, rpc_call_packer(call));
    if (r < 0) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "cannot read the audit log: %s",
                       sqlite3_errmsg(d->log->db));
        return;
    }
    rpc_call_reply(call);
}

static const rpc_param_t audit_params[] = {
    {.name = "since",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 0,
     .range = true,
     .min = 0,
     .max = INT64_MAX,
     .description = "only records at or after this wall time, in milliseconds since the epoch"},
    {.name = "limit",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 100,
     .range = true,
     .min = 1,
     .max = NODE_AUDIT_QUERY_MAX,
     .description = "most records returned, newest first"},
};

int node_audit_start(node_t *node, rpc_registry_t *reg)
{
    char path[NODE_PATH_MAX + 16];
    daemon_audit_t *d = calloc(1, sizeof(*d));
    if (!d) return -ENOMEM;
    d->node = node;
    snprintf(path, sizeof(path), "%s/node.db", node->cfg.data_dir);
    int r = node_audit_open(path, 0, &d->log);
    if (r < 0) {
        free(d);
        return r;
    }
    const rpc_method_t m = {
        .name = "node.audit",
        .description = "Audit log: changing calls and refused calls on this node, newest first.",
        .role = RPC_ROLE_VIEWER,
        .params = audit_params,
        .n_params = P2P_ARRAY_LEN(audit_params),
        .handler = audit_cb,
        .ctx = d,
    };
    if ((r = rpc_registry_add(reg, &m)) < 0) {
        node_audit_close(d->log);
        free(d);
        return r;
    }
    rpc_registry_set_audit(reg, hook, d);
    uv_timer_init(node->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, tick_cb, NODE_AUDIT_FLUSH_MS, NODE_AUDIT_FLUSH_MS);
    return 0;
}
