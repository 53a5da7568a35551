/* tls.c: unit tests for the server-side TLS of src/http/tls.c. At start a root CA, an
 * intermediate CA and a leaf certificate (EC P-256) are made with the OpenSSL API into a temp
 * directory; a real OpenSSL client over memory BIOs talks to the server session: handshakes
 * (TLS 1.3 and 1.2, the chain verified against the root only, ALPN), data both ways including
 * 1 MB, byte-at-a-time feeding, garbage and corrupted input (-EPROTO), the plaintext limit
 * (-E2BIG), close_notify, bad certificate/key files and a mismatched key (-EINVAL with a message),
 * TLS 1.0- and 1.1-only clients refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/server-internal.h"

/* --- certificates ------------------------------------------------------------------------ */

static char dir[64];
static char chain_pem[128], leaf_pem[128], key_pem[128], other_key_pem[128], enc_key_pem[128],
    garbage_pem[128], missing_pem[128];
static X509 *root_cert;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       long serial)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *n = X509_get_subject_name(x);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
    const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE"},
        {NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature"},
        {NID_subject_key_identifier, "hash"},
        {ca ? NID_undef : NID_subject_alt_name, "DNS:localhost"},
    };
    for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        if (exts[i].nid == NID_undef) continue;
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        assert_non_null(e);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static void write_pem(const char *path, X509 *const *certs, size_t n, EVP_PKEY *key,
                      const char *pass)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(PEM_write_X509(f, certs[i]), 1);
    if (key)
        assert_int_equal(PEM_write_PrivateKey(f, key, pass ? EVP_aes_128_cbc() : NULL,
                                              (unsigned char *)pass, pass ? (int)strlen(pass) : 0,
                                              NULL, NULL),
                         1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/p2p-tls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(chain_pem, sizeof(chain_pem), "%s/chain.pem", dir);
    snprintf(leaf_pem, sizeof(leaf_pem), "%s/leaf.pem", dir);
    snprintf(key_pem, sizeof(key_pem), "%s/key.pem", dir);
    snprintf(other_key_pem, sizeof(other_key_pem), "%s/other-key.pem", dir);
    snprintf(enc_key_pem, sizeof(enc_key_pem), "%s/enc-key.pem", dir);
    snprintf(garbage_pem, sizeof(garbage_pem), "%s/garbage.pem", dir);
    snprintf(missing_pem, sizeof(missing_pem), "%s/missing.pem", dir);
    EVP_PKEY *root_key = EVP_EC_gen("P-256"), *mid_key = EVP_EC_gen("P-256"),
             *leaf_key = EVP_EC_gen("P-256"), *other_key = EVP_EC_gen("P-256");
    if (!root_key || !mid_key || !leaf_key || !other_key) return -1;
    root_cert = make_cert("p2p test root", root_key, NULL, NULL, true, 1);
    X509 *mid = make_cert("p2p test intermediate", mid_key, root_cert, root_key, true, 2);
    X509 *leaf = make_cert("localhost", leaf_key, mid, mid_key, false, 3);
    X509 *chain[] = {leaf, mid};
    write_pem(chain_pem, chain, 2, NULL, NULL);
    write_pem(leaf_pem, chain, 1, NULL, NULL);
    write_pem(key_pem, NULL, 0, leaf_key, NULL);
    write_pem(other_key_pem, NULL, 0, other_key, NULL);
    write_pem(enc_key_pem, NULL, 0, leaf_key, "secret");
    FILE *f = fopen(garbage_pem, "w");
    if (!f) return -1;
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all !!\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    X509_free(leaf);
    X509_free(mid);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(mid_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *files[] = {chain_pem, leaf_pem, key_pem, other_key_pem, enc_key_pem, garbage_pem};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
    X509_free(root_cert);
    return 0;
}

/* --- a client over memory BIOs ------------------------------------------------------------ */

typedef struct client {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio; /* rbio: what the server sent; wbio: what the client sends */
} client_t;

/* A client allowing versions min..max; verify checks the chain against the root and the name. */
static void client_init(client_t *c, int min, int max, bool verify)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(c->ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(c->ctx, min), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(c->ctx, max), 1);
    if (max < TLS1_2_VERSION) { /* old versions need the lowest security level to be offered */
        SSL_CTX_set_security_level(c->ctx, 0);
        assert_int_equal(SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0"), 1);
    }
    if (verify) {
        assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(c->ctx), root_cert), 1);
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    }
    c->ssl = SSL_new(c->ctx);
    assert_non_null(c->ssl);
    if (verify) assert_int_equal(SSL_set1_host(c->ssl, "localhost"), 1);
    assert_int_equal(SSL_set_tlsext_host_name(c->ssl, "localhost"), 1);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    assert_int_equal(SSL_set_alpn_protos(c->ssl, alpn, sizeof(alpn) - 1), 0);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
}

static void client_free(client_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
}

/* Everything the client wrote so far (malloc'd, *n bytes). */
static uint8_t *client_output(client_t *c, size_t *n)
{
    *n = BIO_ctrl_pending(c->wbio);
    uint8_t *p = malloc(*n ? *n : 1);
    assert_non_null(p);
    if (*n) assert_int_equal(BIO_read(c->wbio, p, (int)*n), (int)*n);
    return p;
}

static void to_client(client_t *c, const p2p_buf_t *out)
{
    if (out->len) assert_int_equal(BIO_write(c->rbio, out->data, (int)out->len), (int)out->len);
}

/* Moves the client's output to the server in pieces of step bytes (0: at once), and the server's
 * output back. Returns the first error of http_tls_feed, else 0. */
static int pump(client_t *c, http_tls_t *t, p2p_buf_t *plain, size_t step)
{
    size_t n;
    uint8_t *p = client_output(c, &n);
    int r = 0;
    p2p_buf_t out;
    p2p_buf_init(&out, HTTP_MAX_OUTPUT);
    for (size_t off = 0; off < n && r == 0;) {
        size_t k = step && n - off > step ? step : n - off;
        r = http_tls_feed(t, p + off, k, plain, &out);
        off += k;
    }
    to_client(c, &out);
    p2p_buf_free(&out);
    free(p);
    return r;
}

/* Runs the handshake to its end on both sides. */
static void handshake(client_t *c, http_tls_t *t, size_t step)
{
    p2p_buf_t plain;
    p2p_buf_init(&plain, 1024);
    for (int i = 0; i < 10 && SSL_is_init_finished(c->ssl) != 1; i++) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) assert_int_equal(SSL_get_error(c->ssl, r), SSL_ERROR_WANT_READ);
        assert_int_equal(pump(c, t, &plain, step), 0);
    }
    assert_int_equal(SSL_is_init_finished(c->ssl), 1);
    assert_int_equal(pump(c, t, &plain, step), 0); /* nothing left in flight */
    assert_int_equal(plain.len, 0);
    p2p_buf_free(&plain);
}

/* Reads what the client can decrypt now, appending to b. */
static void client_read(client_t *c, p2p_buf_t *b)
{
    uint8_t tmp[16384];
    size_t got;
    while (SSL_read_ex(c->ssl, tmp, sizeof(tmp), &got) == 1)
        assert_int_equal(p2p_buf_append(b, tmp, got), 0);
    int e = SSL_get_error(c->ssl, 0);
    assert_true(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_ZERO_RETURN);
}

static http_tls_ctx_t *server_ctx(const char *cert, const char *key)
{
    http_tls_ctx_t *ctx = NULL;
    char err[512] = "";
    int r = http_tls_ctx_new(cert, key, &ctx, err, sizeof(err));
    if (r != 0) print_error("http_tls_ctx_new: %s\n", err);
    assert_int_equal(r, 0);
    assert_non_null(ctx);
    return ctx;
}

/* --- tests ----------------------------------------------------------------------------------- */

/* A handshake at max version `max` with feeding step, then a request and an answer. */
static void exchange(int max, size_t step)
{
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    assert_non_null(t);
    client_t c;
    client_init(&c, TLS1_VERSION, max, true);
    handshake(&c, t, step);
    assert_int_equal(SSL_version(c.ssl), max);
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_OK); /* the chain came with the leaf */
    const unsigned char *proto;
    unsigned plen;
    SSL_get0_alpn_selected(c.ssl, &proto, &plen);
    assert_int_equal(plen, 8);
    assert_memory_equal(proto, "http/1.1", 8);

    const char req[] = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    size_t w;
    assert_int_equal(SSL_write_ex(c.ssl, req, strlen(req), &w), 1);
    p2p_buf_t plain;
    p2p_buf_init(&plain, 1u << 20);
    assert_int_equal(pump(&c, t, &plain, step), 0);
    assert_int_equal(plain.len, strlen(req));
    assert_memory_equal(plain.data, req, strlen(req));

    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    p2p_buf_t out, got;
    p2p_buf_init(&out, HTTP_MAX_OUTPUT);
    p2p_buf_init(&got, 1u << 20);
    assert_int_equal(http_tls_write(t, resp, strlen(resp), &out), 0);
    assert_true(out.len > strlen(resp));
    assert_null(memmem(out.data, out.len, "200 OK", 6)); /* encrypted */
    to_client(&c, &out);
    client_read(&c, &got);
    assert_int_equal(got.len, strlen(resp));
    assert_memory_equal(got.data, resp, strlen(resp));
    assert_int_equal(http_tls_write(t, "", 0, &out), 0);

    p2p_buf_free(&plain);
    p2p_buf_free(&out);
    p2p_buf_free(&got);
    client_free(&c);
    http_tls_free(t);
    http_tls_ctx_free(ctx);
}

static void test_handshake_tls13(void **state)
{
    (void)state;
    exchange(TLS1_3_VERSION, 0);
}

static void test_handshake_tls12(void **state)
{
    (void)state;
    exchange(TLS1_2_VERSION, 0);
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    exchange(TLS1_3_VERSION, 1);
    exchange(TLS1_2_VERSION, 1);
    exchange(TLS1_3_VERSION, 7);
}

/* 1 MB each way, fed in the server's 64 KB reads. */
static void test_megabyte(void **state)
{
    (void)state;
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    http_tls_ctx_free(ctx); /* the session keeps what it needs */
    client_t c;
    client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION, true);
    handshake(&c, t, 0);
    size_t n = 1u << 20;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    size_t w;
    assert_int_equal(SSL_write_ex(c.ssl, data, n, &w), 1);
    p2p_buf_t plain;
    p2p_buf_init(&plain, 2 * n);
    assert_int_equal(pump(&c, t, &plain, 65536), 0);
    assert_int_equal(plain.len, n);
    assert_memory_equal(plain.data, data, n);

    p2p_buf_t out, got;
    p2p_buf_init(&out, HTTP_MAX_OUTPUT);
    p2p_buf_init(&got, 2 * n);
    for (size_t off = 0; off < n; off += 300000) /* uneven pieces */
        assert_int_equal(http_tls_write(t, data + off, n - off < 300000 ? n - off : 300000, &out),
                         0);
    to_client(&c, &out);
    client_read(&c, &got);
    assert_int_equal(got.len, n);
    assert_memory_equal(got.data, data, n);

    /* out at its limit: -E2BIG, and the session is dead */
    p2p_buf_t small;
    p2p_buf_init(&small, 1000);
    assert_int_equal(http_tls_write(t, data, 4096, &small), -E2BIG);
    assert_true(small.len <= 1000);
    assert_int_equal(http_tls_write(t, "x", 1, &out), -EPROTO);

    free(data);
    p2p_buf_free(&plain);
    p2p_buf_free(&out);
    p2p_buf_free(&got);
    p2p_buf_free(&small);
    client_free(&c);
    http_tls_free(t);
}

/* More plaintext than plain may hold: -E2BIG, plain at most its limit. */
static void test_plain_limit(void **state)
{
    (void)state;
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION, true);
    handshake(&c, t, 0);
    uint8_t data[1000];
    memset(data, 'a', sizeof(data));
    size_t w;
    assert_int_equal(SSL_write_ex(c.ssl, data, 100, &w), 1);
    p2p_buf_t plain;
    p2p_buf_init(&plain, 100);
    assert_int_equal(pump(&c, t, &plain, 0), 0); /* exactly the limit is fine */
    assert_int_equal(plain.len, 100);
    plain.len = 0;
    assert_int_equal(SSL_write_ex(c.ssl, data, sizeof(data), &w), 1);
    assert_int_equal(pump(&c, t, &plain, 0), -E2BIG);
    assert_int_equal(plain.len, 100);
    assert_memory_equal(plain.data, data, 100);
    p2p_buf_free(&plain);
    client_free(&c);
    http_tls_free(t);
    http_tls_ctx_free(ctx);
}

/* A request followed by close_notify: the request is delivered, the answer still goes out. */
static void test_close_notify(void **state)
{
    (void)state;
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION, true);
    handshake(&c, t, 0);
    size_t w;
    assert_int_equal(SSL_write_ex(c.ssl, "bye", 3, &w), 1);
    assert_true(SSL_shutdown(c.ssl) >= 0);
    p2p_buf_t plain, out, got;
    p2p_buf_init(&plain, 1000);
    p2p_buf_init(&out, 100000);
    p2p_buf_init(&got, 1000);
    assert_int_equal(pump(&c, t, &plain, 0), 0);
    assert_int_equal(plain.len, 3);
    assert_memory_equal(plain.data, "bye", 3);
    assert_int_equal(http_tls_write(t, "ok", 2, &out), 0);
    to_client(&c, &out);
    client_read(&c, &got);
    assert_int_equal(got.len, 2);
    assert_memory_equal(got.data, "ok", 2);
    p2p_buf_free(&plain);
    p2p_buf_free(&out);
    p2p_buf_free(&got);
    client_free(&c);
    http_tls_free(t);
    http_tls_ctx_free(ctx);
}

/* Input that is not TLS, or a broken record: -EPROTO, then every call fails. */
static void test_garbage(void **state)
{
    (void)state;
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    p2p_buf_t plain, out;
    p2p_buf_init(&plain, 1000);
    p2p_buf_init(&out, 100000);

    /* plain HTTP on the TLS port */
    http_tls_t *t = http_tls_new(ctx);
    const char *http = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    assert_int_equal(http_tls_feed(t, (const uint8_t *)http, strlen(http), &plain, &out), -EPROTO);
    assert_int_equal(http_tls_feed(t, (const uint8_t *)"\x16", 1, &plain, &out), -EPROTO);
    assert_int_equal(http_tls_write(t, "x", 1, &out), -EPROTO);
    assert_int_equal(plain.len, 0);
    http_tls_free(t);

    /* a handshake record holding a message of unknown type: an alert comes back */
    t = http_tls_new(ctx);
    out.len = 0;
    const uint8_t bad[] = {0x16, 0x03, 0x01, 0x00, 0x08, 0xfe, 0x00, 0x00, 0x04, 1, 2, 3, 4};
    int r = 0;
    for (size_t i = 0; i < sizeof(bad) && r == 0; i++) /* byte by byte: the error at the end */
        r = http_tls_feed(t, bad + i, 1, &plain, &out);
    assert_int_equal(r, -EPROTO);
    assert_true(out.len >= 7);
    assert_int_equal(out.data[0], 0x15); /* alert record */
    assert_int_equal(out.data[5], 2);    /* fatal */
    http_tls_free(t);

    /* a record altered after the handshake */
    t = http_tls_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION, true);
    handshake(&c, t, 0);
    size_t w, n;
    assert_int_equal(SSL_write_ex(c.ssl, "hello", 5, &w), 1);
    uint8_t *rec = client_output(&c, &n);
    rec[n - 1] ^= 1;
    out.len = 0;
    assert_int_equal(http_tls_feed(t, rec, n, &plain, &out), -EPROTO);
    assert_int_equal(plain.len, 0);
    assert_int_equal(http_tls_write(t, "x", 1, &out), -EPROTO);
    free(rec);
    client_free(&c);
    http_tls_free(t);

    /* writing before the handshake is refused */
    t = http_tls_new(ctx);
    assert_int_equal(http_tls_write(t, "x", 1, &out), -EPROTO);
    http_tls_free(t);

    p2p_buf_free(&plain);
    p2p_buf_free(&out);
    http_tls_ctx_free(ctx);
}

/* A client that speaks only TLS 1.0 (or 1.1) is refused with a protocol_version alert. */
static void old_client_refused(int version)
{
    http_tls_ctx_t *ctx = server_ctx(chain_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    client_t c;
    client_init(&c, version, version, false);
    int r = SSL_do_handshake(c.ssl);
    assert_int_equal(SSL_get_error(c.ssl, r), SSL_ERROR_WANT_READ);
    size_t n;
    uint8_t *hello = client_output(&c, &n);
    /* it is a ClientHello whose highest version is `version` */
    assert_true(n > 11);
    assert_int_equal(hello[0], 0x16);
    assert_int_equal(hello[5], 1);
    assert_int_equal(hello[9] << 8 | hello[10], version);
    p2p_buf_t plain, out;
    p2p_buf_init(&plain, 1000);
    p2p_buf_init(&out, 100000);
    assert_int_equal(http_tls_feed(t, hello, n, &plain, &out), -EPROTO);
    assert_true(out.len >= 7);
    assert_int_equal(out.data[0], 0x15);
    assert_int_equal(out.data[6], SSL_AD_PROTOCOL_VERSION);
    to_client(&c, &out);
    r = SSL_do_handshake(c.ssl);
    assert_int_not_equal(r, 1);
    assert_int_equal(SSL_get_error(c.ssl, r), SSL_ERROR_SSL);
    ERR_clear_error();
    free(hello);
    p2p_buf_free(&plain);
    p2p_buf_free(&out);
    client_free(&c);
    http_tls_free(t);
    http_tls_ctx_free(ctx);
}

static void test_old_versions_refused(void **state)
{
    (void)state;
    old_client_refused(TLS1_VERSION);
    old_client_refused(TLS1_1_VERSION);
}

/* Only the leaf in the certificate file: the server works but a client cannot build the chain
 * (which shows the chain test above needs the intermediate from the file). */
static void test_leaf_only(void **state)
{
    (void)state;
    http_tls_ctx_t *ctx = server_ctx(leaf_pem, key_pem);
    http_tls_t *t = http_tls_new(ctx);
    client_t c;
    client_init(&c, TLS1_2_VERSION, TLS1_3_VERSION, false);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c.ctx), root_cert);
    handshake(&c, t, 0);
    assert_int_equal(SSL_get_verify_result(c.ssl), X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    client_free(&c);
    http_tls_free(t);
    http_tls_ctx_free(ctx);
}

/* Fails with -EINVAL, *out NULL and a message holding each of the words. */
static void bad_files(const char *cert, const char *key, const char *w1, const char *w2)
{
    http_tls_ctx_t *ctx = (http_tls_ctx_t *)1;
    char err[512] = "";
    assert_int_equal(http_tls_ctx_new(cert, key, &ctx, err, sizeof(err)), -EINVAL);
    assert_null(ctx);
    print_message("    %s\n", err);
    assert_non_null(strstr(err, w1));
    if (w2) assert_non_null(strstr(err, w2));
    assert_null(strchr(err, '\n'));
    assert_int_equal(ERR_peek_error(), 0); /* the error queue left clean */
}

static void test_bad_files(void **state)
{
    (void)state;
    bad_files(missing_pem, key_pem, missing_pem, "No such file");
    bad_files(chain_pem, missing_pem, missing_pem, "No such file");
    bad_files(garbage_pem, key_pem, garbage_pem, "certificate");
    bad_files(chain_pem, garbage_pem, garbage_pem, "private key");
    bad_files(key_pem, key_pem, key_pem, "certificate"); /* a key where the chain should be */
    bad_files(chain_pem, chain_pem, chain_pem,
              "private key"); /* a certificate where the key should be */
    bad_files(chain_pem, other_key_pem, other_key_pem, "does not match");
    bad_files(chain_pem, enc_key_pem, enc_key_pem, "encrypted"); /* encrypted: refused, no prompt */
    bad_files(dir, key_pem, dir, "directory");                   /* a directory */
    http_tls_ctx_t *ctx = NULL;
    char err[64] = "";
    assert_int_equal(http_tls_ctx_new(NULL, key_pem, &ctx, err, sizeof(err)), -EINVAL);
    assert_true(err[0] != 0);
    /* a short err buffer is not overrun */
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    assert_int_equal(http_tls_ctx_new(chain_pem, other_key_pem, &ctx, tiny, 4), -EINVAL);
    assert_int_equal(tiny[3], 0);
    assert_int_equal(tiny[4], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13), cmocka_unit_test(test_handshake_tls12),
        cmocka_unit_test(test_byte_at_a_time),  cmocka_unit_test(test_megabyte),
        cmocka_unit_test(test_plain_limit),     cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_garbage),         cmocka_unit_test(test_old_versions_refused),
        cmocka_unit_test(test_leaf_only),       cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
