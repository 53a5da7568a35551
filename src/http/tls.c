/* tls.c: the HTTP server's TLS (OpenSSL, server side) through memory BIOs: the connection layer
 * hands received ciphertext in and gets plaintext and the ciphertext to send back in p2p_buf_t
 * buffers; no socket is touched here. TLS 1.2 minimum (forward-secret AEAD suites only for 1.2),
 * no renegotiation, no compression, ALPN http/1.1 when offered, stateless session tickets. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "http/server-internal.h"

/* Plaintext handled per SSL_read/SSL_write call: one TLS record's worth, so the write BIO holds
 * at most a record or so between drains. */
#define TLS_CHUNK 16384

struct http_tls_ctx {
    SSL_CTX *ssl;
};

struct http_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool failed;      /* a fatal error happened: every later call fails */
};

/* --- the context ------------------------------------------------------------------------- */

/* The first (most specific) reason in OpenSSL's error queue, which is then cleared; sets
 * *mismatch when a key was found not to match its certificate. */
static void ssl_reason(char *buf, size_t len, bool *mismatch)
{
    unsigned long e, first = 0;
    *mismatch = false;
    while ((e = ERR_get_error()) != 0) {
        if (!first) first = e;
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            *mismatch = true;
    }
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    /* OpenSSL 3's key decoders say only "unsupported" for a file without a key they can read */
    if (first && ERR_GET_LIB(first) == ERR_LIB_OSSL_DECODER &&
        ERR_GET_REASON(first) == ERR_R_UNSUPPORTED)
        r = "no readable private key in it";
    if (r)
        snprintf(buf, len, "%s", r);
    else if (first)
        ERR_error_string_n(first, buf, len);
    else
        snprintf(buf, len, "unknown error");
}

/* Writes "what: reason" to err (the reason from OpenSSL's error queue, then cleared). */
static void ssl_err(char *err, size_t errlen, const char *fmt, ...)
{
    char what[512], reason[256];
    bool mismatch;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    ssl_reason(reason, sizeof(reason), &mismatch);
    if (err && errlen) snprintf(err, errlen, "%s: %s", what, reason);
}

/* Checks that path can be opened and is no directory, for a clearer message than OpenSSL's. */
static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (err && errlen) snprintf(err, errlen, "%s %s is a directory", what, path);
        return -EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (err && errlen)
            snprintf(err, errlen, "cannot open %s %s: %s", what, path, strerror(errno));
        return -EINVAL;
    }
    fclose(f);
    return 0;
}

/* An encrypted key would make OpenSSL prompt on the terminal: refuse instead (and note it). */
static int no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    if (u) *(bool *)u = true;
    return -1;
}

/* Selects http/1.1 when the client offers it; otherwise no ALPN answer. */
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel;
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto(&sel, outlen, ours, sizeof(ours) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

int http_tls_ctx_new(const char *cert_file, const char *key_file, http_tls_ctx_t **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (!cert_file || !key_file) {
        if (err && errlen) snprintf(err, errlen, "TLS needs both a certificate and a key file");
        return -EINVAL;
    }
    if (check_readable("TLS certificate file", cert_file, err, errlen) < 0 ||
        check_readable("TLS key file", key_file, err, errlen) < 0)
        return -EINVAL;
    ERR_clear_error();
    http_tls_ctx_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->ssl = SSL_CTX_new(TLS_server_method()))) {
        free(c);
        ERR_clear_error();
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    SSL_CTX *s = c->ssl;
    bool asked = false;
    SSL_CTX_set_default_passwd_cb(s, no_passphrase_cb);
    SSL_CTX_set_default_passwd_cb_userdata(s, &asked);
    if (SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(s, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
        ssl_err(err, errlen, "cannot configure TLS");
        goto fail;
    }
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    /* resumption through stateless tickets only: no per-session server memory */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(s, alpn_cb, NULL);
    if (SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        ssl_err(err, errlen, "cannot load TLS certificate chain %s (PEM)", cert_file);
        goto fail;
    }
    /* the key is checked against the certificate while it is loaded, and once more after */
    if (SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s) != 1) {
        char reason[256];
        bool mismatch;
        ssl_reason(reason, sizeof(reason), &mismatch);
        if (err && errlen && asked)
            snprintf(err, errlen,
                     "TLS private key %s is encrypted (a key without passphrase is needed)",
                     key_file);
        else if (err && errlen && mismatch)
            snprintf(err, errlen, "TLS private key %s does not match the certificate %s", key_file,
                     cert_file);
        else if (err && errlen)
            snprintf(err, errlen, "cannot load TLS private key %s (PEM, unencrypted): %s", key_file,
                     reason);
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb_userdata(s, NULL); /* `asked` goes out of scope */
    *out = c;
    return 0;
fail:
    SSL_CTX_free(s);
    free(c);
    return -EINVAL;
}

void http_tls_ctx_free(http_tls_ctx_t *ctx)
{
    if (!ctx) return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

/* --- sessions ------------------------------------------------------------------------------ */

http_tls_t *http_tls_new(http_tls_ctx_t *ctx)
{
    http_tls_t *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_mem_eof_return(t->rbio, -1); /* empty = "want more", not end of stream */
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    return t;
}

void http_tls_free(http_tls_t *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees both BIOs */
    free(t);
}

/* Moves what OpenSSL wrote into the write BIO to out. Returns 0, -E2BIG or -ENOMEM. */
static int drain(http_tls_t *t, p2p_buf_t *out)
{
    size_t n;
    while ((n = BIO_ctrl_pending(t->wbio)) > 0) {
        if (n > INT_MAX) n = INT_MAX;
        int r = p2p_buf_reserve(out, n);
        if (r < 0) return r;
        int got = BIO_read(t->wbio, out->data + out->len, (int)n);
        if (got <= 0) return -ENOMEM; /* cannot happen with pending bytes */
        out->len += (size_t)got;
    }
    return 0;
}

/* A fatal TLS error: the alert OpenSSL queued goes to out; the session is dead. */
static int fail(http_tls_t *t, p2p_buf_t *out)
{
    t->failed = true;
    ERR_clear_error();
    drain(t, out);
    return -EPROTO;
}

/* Reads the plaintext OpenSSL can produce from the input so far into plain. Returns 0 when it
 * wants more input (or the peer closed), -E2BIG when plain is full, -ENOMEM or -EPROTO. */
static int read_plain(http_tls_t *t, p2p_buf_t *plain, p2p_buf_t *out)
{
    for (;;) {
        size_t room = plain->limit > plain->len ? plain->limit - plain->len : 0;
        size_t want = room < TLS_CHUNK ? room : TLS_CHUNK, got = 0;
        uint8_t probe, *dst = &probe;
        if (want > 0) {
            int r = p2p_buf_reserve(plain, want);
            if (r < 0) return r;
            dst = plain->data + plain->len;
        } else {
            want = 1; /* full: is there more plaintext? */
        }
        if (SSL_read_ex(t->ssl, dst, want, &got) == 1) {
            if (dst == &probe) return -E2BIG;
            plain->len += got;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_READ) return 0;
        /* close_notify: nothing more comes; what arrived before it is still delivered, the TCP
         * end follows */
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        return fail(t, out);
    }
}

int http_tls_feed(http_tls_t *t, const uint8_t *in, size_t len, p2p_buf_t *plain, p2p_buf_t *out)
{
    if (t->failed) return -EPROTO;
    ERR_clear_error();
    while (len > 0) {
        int n = len > INT_MAX ? INT_MAX : (int)len;
        int w = BIO_write(t->rbio, in, n);
        if (w <= 0) {
            ERR_clear_error();
            return -ENOMEM;
        }
        in += w;
        len -= (size_t)w;
    }
    if (!SSL_is_init_finished(t->ssl)) {
        int r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) return fail(t, out);
            return drain(t, out);
        }
    }
    int r = read_plain(t, plain, out);
    if (r == -EPROTO) return r; /* drained by fail() */
    int d = drain(t, out);
    return r < 0 ? r : d;
}

int http_tls_write(http_tls_t *t, const void *buf, size_t len, p2p_buf_t *out)
{
    if (t->failed || !SSL_is_init_finished(t->ssl)) return -EPROTO;
    ERR_clear_error();
    const uint8_t *p = buf;
    while (len > 0) {
        size_t n = len < TLS_CHUNK ? len : TLS_CHUNK, written = 0;
        if (SSL_write_ex(t->ssl, p, n, &written) != 1 || written != n) return fail(t, out);
        p += n;
        len -= n;
        int r = drain(t, out);
        if (r < 0) {
            /* records were made that the peer will not get: later ones could not be read */
            t->failed = true;
            return r;
        }
    }
    return 0;
}
