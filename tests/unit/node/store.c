/* store.c: unit tests for src/node/store.c against a real SQLite file in a temp dir: schema
 * version, WAL, snapshot round trip of contacts and records, atomic replacement, rollback, newer
 * schema. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "node/store.h"
#include "testdir.h"

#define NREC 50

typedef struct got {
    int contacts, records;
    uint8_t pk[8][DHT_PK_LEN];
    dht_addr_t addr[8];
    dht_record_t rec[NREC];
} got_t;

static void on_contact(void *arg, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *a)
{
    got_t *g = arg;
    assert_true(g->contacts < 8);
    memcpy(g->pk[g->contacts], pk, DHT_PK_LEN);
    g->addr[g->contacts++] = *a;
}

static void on_record(void *arg, const dht_record_t *r)
{
    got_t *g = arg;
    assert_true(g->records < NREC);
    g->rec[g->records++] = *r;
}

static void make_record(dht_record_t *r, int i)
{
    memset(r, 0, sizeof(*r));
    memset(r->key.b, i, DHT_ID_LEN);
    memset(r->publisher, 100 + i, DHT_PK_LEN);
    r->seq = i == 0 ? UINT64_MAX : (uint64_t)i * 1000; /* the full 64 bits survive */
    r->expires = 2000000000u + (uint64_t)i;
    r->value_len =
        (uint16_t)(i == 1 ? DHT_MAX_VALUE : i); /* i == 2: a 2-byte value, i == 0: empty */
    for (int k = 0; k < r->value_len; k++)
        r->value[k] = (uint8_t)(k * 7 + i);
    memset(r->sig, 200 + i, DHT_SIG_LEN);
}

static void fill(node_store_t *s, int ncontacts, int nrecords)
{
    assert_int_equal(node_store_begin(s), 0);
    for (int i = 0; i < ncontacts; i++) {
        uint8_t pk[DHT_PK_LEN];
        dht_addr_t a;
        memset(pk, i + 1, sizeof(pk));
        memset(&a, 0, sizeof(a));
        if (i % 2 == 0) {
            assert_int_equal(dht_addr_parse(&a, "127.0.0.1:5678"), 0);
            a.port = (uint16_t)(5000 + i);
        } else {
            assert_int_equal(dht_addr_parse(&a, "[::1]:6000"), 0);
            a.port = (uint16_t)(6000 + i);
        }
        assert_int_equal(node_store_add_contact(s, pk, &a), 0);
    }
    for (int i = 0; i < nrecords; i++) {
        dht_record_t r;
        make_record(&r, i);
        assert_int_equal(node_store_add_record(s, &r), 0);
    }
    assert_int_equal(node_store_commit(s), 0);
}

static void round_trip(void **state)
{
    (void)state;
    char root[64], path[128];
    node_store_t *s = NULL;
    assert_non_null(testdir_make(root));
    snprintf(path, sizeof(path), "%s/node.db", root);
    assert_int_equal(node_store_open(path, &s), 0);
    assert_int_equal(node_store_version(s), 4);
    /* every migration ran: the services' tables are there */
    assert_int_equal(sqlite3_exec(node_store_db(s),
                                  "SELECT name, spec, wanted, pid, pid_start FROM programs;"
                                  "SELECT res, metric, t, value FROM samples;"
                                  "SELECT name, op, threshold, firing_since FROM alert_rules;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    fill(s, 4, NREC);
    node_store_close(s);

    /* reopened from the file */
    assert_int_equal(node_store_open(path, &s), 0);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(node_store_db(s), "PRAGMA journal_mode", -1, &st, NULL), 0);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    got_t *g = calloc(1, sizeof(*g));
    assert_int_equal(node_store_load_contacts(s, on_contact, g), 4);
    assert_int_equal(node_store_load_records(s, on_record, g), NREC);
    for (int i = 0; i < 4; i++) {
        /* rows come back in primary-key order: pk i+1 */
        uint8_t pk[DHT_PK_LEN];
        memset(pk, i + 1, sizeof(pk));
        assert_memory_equal(g->pk[i], pk, DHT_PK_LEN);
        assert_int_equal(g->addr[i].family, i % 2 == 0 ? 4 : 6);
        assert_int_equal(g->addr[i].port, i % 2 == 0 ? 5000 + i : 6000 + i);
        char txt[64];
        dht_addr_format(&g->addr[i], txt, sizeof(txt));
        assert_non_null(strstr(txt, i % 2 == 0 ? "127.0.0.1:" : "[::1]:"));
    }
    for (int i = 0; i < NREC; i++) {
        dht_record_t want;
        make_record(&want, i);
        int j = 0;
        while (j < NREC && memcmp(g->rec[j].key.b, want.key.b, DHT_ID_LEN) != 0)
            j++;
        assert_true(j < NREC);
        assert_memory_equal(g->rec[j].publisher, want.publisher, DHT_PK_LEN);
        assert_true(g->rec[j].seq == want.seq);
        assert_true(g->rec[j].expires == want.expires);
        assert_int_equal(g->rec[j].value_len, want.value_len);
        assert_memory_equal(g->rec[j].value, want.value, want.value_len);
        assert_memory_equal(g->rec[j].sig, want.sig, DHT_SIG_LEN);
    }

    /* a new snapshot replaces the old one entirely */
    fill(s, 1, 2);
    memset(g, 0, sizeof(*g));
    assert_int_equal(node_store_load_contacts(s, on_contact, g), 1);
    assert_int_equal(node_store_load_records(s, on_record, g), 2);

    /* a rolled-back snapshot leaves the previous one */
    assert_int_equal(node_store_begin(s), 0);
    node_store_rollback(s);
    memset(g, 0, sizeof(*g));
    assert_int_equal(node_store_load_contacts(s, on_contact, g), 1);
    assert_int_equal(node_store_load_records(s, on_record, g), 2);

    /* rows that do not fit are skipped, not trusted */
    assert_int_equal(
        sqlite3_exec(node_store_db(s),
                     "INSERT INTO contacts VALUES (x'01', 4, x'7f000001', 1);"
                     "INSERT INTO contacts VALUES (zeroblob(32), 5, x'7f000001', 1);"
                     "INSERT INTO records VALUES (x'00', zeroblob(32), 1, 1, x'', zeroblob(64));",
                     NULL, NULL, NULL),
        SQLITE_OK);
    memset(g, 0, sizeof(*g));
    assert_int_equal(node_store_load_contacts(s, on_contact, g), 1);
    assert_int_equal(node_store_load_records(s, on_record, g), 2);
    free(g);
    node_store_close(s);
    node_store_close(NULL);
    testdir_remove(root);
}

static void newer_schema_refused(void **state)
{
    (void)state;
    char root[64], path[128];
    node_store_t *s = NULL;
    assert_non_null(testdir_make(root));
    snprintf(path, sizeof(path), "%s/node.db", root);
    assert_int_equal(node_store_open(path, &s), 0);
    assert_int_equal(sqlite3_exec(node_store_db(s), "PRAGMA user_version = 99", NULL, NULL, NULL),
                     0);
    node_store_close(s);
    assert_int_equal(node_store_open(path, &s), -EPROTO);
    testdir_remove(root);
}

static void invalid_input_refused(void **state)
{
    (void)state;
    char root[64], path[128];
    node_store_t *s = NULL;
    assert_non_null(testdir_make(root));
    snprintf(path, sizeof(path), "%s/node.db", root);
    assert_int_equal(node_store_open(path, &s), 0);
    assert_int_equal(node_store_begin(s), 0);
    dht_addr_t unset;
    memset(&unset, 0, sizeof(unset));
    uint8_t pk[DHT_PK_LEN] = {0};
    assert_int_equal(node_store_add_contact(s, pk, &unset), -EINVAL);
    dht_record_t r;
    make_record(&r, 3);
    r.value_len = DHT_MAX_VALUE + 1;
    assert_int_equal(node_store_add_record(s, &r), -EINVAL);
    assert_int_equal(node_store_commit(s), 0);
    node_store_close(s);
    snprintf(path, sizeof(path), "%s/no/such/dir/node.db", root);
    assert_true(node_store_open(path, &s) < 0);
    testdir_remove(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(newer_schema_refused),
        cmocka_unit_test(invalid_input_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
