/* audit.c: unit tests for src/node/audit.c against a real SQLite file in a temp dir (schema made
 * by the store's migrations): queued records reach the table on flush, at NODE_AUDIT_BATCH and at
 * close; the row bound keeps the newest; since/limit and newest-first order of node_audit_query. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/audit.h"
#include "node/store.h"
#include "testdir.h"

typedef struct fx {
    char dir[64];
    char path[128];
    node_store_t *store;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(testdir_make(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/node.db", f->dir);
    assert_int_equal(node_store_open(f->path, &f->store), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    node_store_close(f->store);
    testdir_remove(f->dir);
    free(f);
    return 0;
}

static void add(node_audit_t *a, const char *method, int code, uint64_t wall_ms, uint8_t tag)
{
    uint8_t hash[16];
    memset(hash, tag, sizeof(hash));
    rpc_audit_entry_t e = {"alice", "n02", method, hash, code, 0};
    node_audit_add(a, &e, wall_ms, 7);
}

/* A query's answer: the packed bytes and the objects unpacked from them (they point into sb). */
typedef struct answer {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} answer_t;

/* Runs node_audit_query, checks it returned want rows; free with done(). */
static answer_t *query(node_audit_t *a, uint64_t since, int limit, int want)
{
    answer_t *r = calloc(1, sizeof(*r));
    msgpack_packer pk;
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&pk, &r->sb, msgpack_sbuffer_write);
    assert_int_equal(node_audit_query(a, since, limit, &pk), want);
    msgpack_unpacked_init(&r->u);
    assert_int_equal(msgpack_unpack_next(&r->u, r->sb.data, r->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(r->u.data.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(r->u.data.via.array.size, (uint32_t)want);
    return r;
}

static const msgpack_object *row(const answer_t *r, int i)
{
    return &r->u.data.via.array.ptr[i];
}

static void done(answer_t *r)
{
    msgpack_unpacked_destroy(&r->u);
    msgpack_sbuffer_destroy(&r->sb);
    free(r);
}

static const msgpack_object *field(const msgpack_object *m, const char *name)
{
    assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(name) &&
            memcmp(kv->key.via.str.ptr, name, kv->key.via.str.size) == 0)
            return &kv->val;
    }
    fail_msg("no field %s", name);
    return NULL;
}

static void assert_str(const msgpack_object *o, const char *want)
{
    assert_int_equal(o->type, MSGPACK_OBJECT_STR);
    assert_int_equal(o->via.str.size, strlen(want));
    assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static int64_t as_int(const msgpack_object *o)
{
    assert_true(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

static int count_rows(fx_t *f)
{
    sqlite3_stmt *st;
    assert_int_equal(
        sqlite3_prepare_v2(node_store_db(f->store), "SELECT COUNT(*) FROM audit", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_flush_and_fields(void **state)
{
    fx_t *f = *state;
    node_audit_t *a;
    assert_int_equal(node_audit_open(f->path, 0, &a), 0);
    add(a, "system.local.dht.put", 0, 1000, 0xab);
    add(a, "system.n01.dht.put", RPC_ERR_PERMISSION_DENIED, 2000, 0x01);
    assert_int_equal(node_audit_pending(a), 2);
    assert_int_equal(count_rows(f), 0); /* queued, not written yet */
    assert_int_equal(node_audit_flush(a), 2);
    assert_int_equal(node_audit_pending(a), 0);
    assert_int_equal(count_rows(f), 2);
    assert_int_equal(node_audit_flush(a), 0);

    answer_t *u = query(a, 0, 100, 2);
    const msgpack_object *r0 = row(u, 0), *r1 = row(u, 1);
    /* newest first */
    assert_str(field(r0, "method"), "system.n01.dht.put");
    assert_int_equal(as_int(field(r0, "code")), RPC_ERR_PERMISSION_DENIED);
    assert_str(field(r0, "error"), "PERMISSION_DENIED");
    assert_int_equal(as_int(field(r0, "time")), 2000);
    assert_str(field(r0, "principal"), "alice");
    assert_str(field(r0, "origin"), "n02");
    assert_str(field(r0, "params_hash"), "01010101010101010101010101010101");
    assert_int_equal(as_int(field(r0, "duration_ms")), 7);
    assert_str(field(r1, "method"), "system.local.dht.put");
    assert_int_equal(as_int(field(r1, "code")), 0);
    assert_int_equal(field(r1, "error")->type, MSGPACK_OBJECT_NIL);
    assert_str(field(r1, "params_hash"), "abababababababababababababababab");
    assert_true(as_int(field(r0, "id")) > as_int(field(r1, "id")));
    done(u);
    node_audit_close(a);
}

static void test_batch_and_close_write(void **state)
{
    fx_t *f = *state;
    node_audit_t *a;
    assert_int_equal(node_audit_open(f->path, 0, &a), 0);
    for (int i = 0; i < NODE_AUDIT_BATCH - 1; i++)
        add(a, "system.local.dht.put", 0, (uint64_t)i, 0);
    assert_int_equal(count_rows(f), 0);
    add(a, "system.local.dht.put", 0, 9999, 0); /* the batch is full: written at once */
    assert_int_equal(count_rows(f), NODE_AUDIT_BATCH);
    assert_int_equal(node_audit_pending(a), 0);
    add(a, "system.local.dht.put", 0, 10000, 0);
    add(a, "system.local.dht.put", 0, 10001, 0);
    node_audit_close(a); /* writes the last two */
    assert_int_equal(count_rows(f), NODE_AUDIT_BATCH + 2);
}

static void test_bound_keeps_newest(void **state)
{
    fx_t *f = *state;
    node_audit_t *a;
    assert_int_equal(node_audit_open(f->path, 50, &a), 0);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 30; i++)
            add(a, "system.local.dht.put", 0, (uint64_t)(round * 30 + i), 0);
        assert_int_equal(node_audit_flush(a), 30);
        assert_true(count_rows(f) <= 50);
    }
    assert_int_equal(count_rows(f), 50);
    answer_t *u = query(a, 0, 1000, 50);
    assert_int_equal(as_int(field(row(u, 0), "time")), 119);
    assert_int_equal(as_int(field(row(u, 49), "time")), 70);
    done(u);
    node_audit_close(a);
}

static void test_since_and_limit(void **state)
{
    fx_t *f = *state;
    node_audit_t *a;
    assert_int_equal(node_audit_open(f->path, 0, &a), 0);
    for (int i = 0; i < 20; i++)
        add(a, "system.local.dht.put", 0, 1000 + (uint64_t)i * 10, 0);
    /* query writes the queue first */
    answer_t *u = query(a, 1100, 100, 10);
    assert_int_equal(as_int(field(row(u, 0), "time")), 1190);
    assert_int_equal(as_int(field(row(u, 9), "time")), 1100);
    done(u);
    u = query(a, 0, 3, 3);
    assert_int_equal(as_int(field(row(u, 2), "time")), 1170);
    done(u);
    u = query(a, 5000, 100, 0);
    done(u);
    /* limit is clamped to 1..NODE_AUDIT_QUERY_MAX */
    u = query(a, 0, 0, 1);
    done(u);
    node_audit_close(a);
}

static void test_open_without_schema_fails(void **state)
{
    fx_t *f = *state;
    node_audit_t *a = NULL;
    char other[160];
    snprintf(other, sizeof(other), "%s/missing.db", f->dir);
    assert_int_equal(node_audit_open(other, 0, &a), -EIO); /* no such file: never created here */
    assert_null(a);
    node_audit_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flush_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_and_close_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bound_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_and_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_without_schema_fails, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
