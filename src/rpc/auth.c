/* auth.c: JWT minting and verification (RFC 8725 practice): HS256 only, with the algorithm pinned
 * by reading the header before libjwt verifies anything; exp required, nbf and aud checked with a
 * small leeway; role claim limited to viewer/operator/admin; a previous secret accepted during
 * rotation; optional Salt-style ACL claims `targets` and `methods` (glob lists) parsed and checked;
 * `jti` and `iat` kept for the revocation callback of the config. Time comes in as a parameter. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>

#include "rpc/rpc-internal.h"

/* A pattern of an ACL claim: 1..RPC_MAX_ACL_PATTERN characters of [A-Za-z0-9._*?-]. */
static bool pattern_ok(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > RPC_MAX_ACL_PATTERN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '*' || c == '?'))
            return false;
    }
    return true;
}

/* Adds the claim `name` as an array of patterns. Returns 0 or -EINVAL / -ENOMEM. */
static int add_patterns(jwt_t *jwt, const char *name, const char *const *v, size_t n)
{
    if (n == 0) return 0;
    if (!v || n > RPC_MAX_ACL_PATTERNS) return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!pattern_ok(v[i])) return -EINVAL;
    json_t *o = json_object(), *a = json_array();
    int r = -ENOMEM;
    if (!o || !a) goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(v[i])) != 0) goto fail;
    if (json_object_set(o, name, a) != 0) goto fail;
    char *js = json_dumps(o, JSON_COMPACT);
    if (!js) goto fail;
    r = jwt_add_grants_json(jwt, js) == 0 ? 0 : -ENOMEM;
    free(js);
fail:
    json_decref(a);
    json_decref(o);
    return r;
}

/* The minting of both entry points; session: NULL, or the hex prefix of the jti. */
static int mint(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                const char *aud, uint64_t ttl_s, uint64_t now_s, const char *const *targets,
                size_t n_targets, const char *const *methods, size_t n_methods, const char *session,
                char **out)
{
    jwt_t *jwt = NULL;
    uint8_t rnd[16];
    char jti[RPC_MAX_JTI + 1];
    int r = -EINVAL;

    *out = NULL;
    size_t sl = session ? strlen(session) : 0;
    if (session &&
        (sl == 0 || sl > RPC_MAX_SESSION_PREFIX || strspn(session, "0123456789abcdef") != sl))
        return -EINVAL;
    if (!secret || secret_len == 0 || secret_len > INT32_MAX || rpc_role_parse(role) < 0 || !sub ||
        strlen(sub) > RPC_MAX_SUB || !aud || ttl_s == 0 || now_s > INT64_MAX / 2 ||
        ttl_s > INT64_MAX / 2 || n_targets > RPC_MAX_ACL_PATTERNS ||
        n_methods > RPC_MAX_ACL_PATTERNS)
        return -EINVAL;
    if (jwt_new(&jwt) != 0) return -ENOMEM;
    randombytes_buf(rnd, sizeof(rnd));
    if (session) { /* SESSION.RANDOM: RPC_MAX_SESSION_PREFIX + 1 + 24 <= RPC_MAX_JTI */
        memcpy(jti, session, sl);
        jti[sl] = '.';
        p2p_hex_encode(jti + sl + 1, rnd, 12);
    } else {
        p2p_hex_encode(jti, rnd, sizeof(rnd));
    }
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "role", role) ||
        jwt_add_grant(jwt, "aud", aud) || jwt_add_grant(jwt, "jti", jti) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) || jwt_add_grant_int(jwt, "nbf", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)))
        goto fail;
    if ((r = add_patterns(jwt, "targets", targets, n_targets)) < 0 ||
        (r = add_patterns(jwt, "methods", methods, n_methods)) < 0)
        goto fail;
    r = -EINVAL;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len)) goto fail;
    char *s = jwt_encode_str(jwt);
    if (!s) {
        r = -ENOMEM;
        goto fail;
    }
    *out = strdup(s);
    free(s);
    r = *out ? 0 : -ENOMEM;
fail:
    jwt_free(jwt);
    return r;
}

_Static_assert(RPC_MAX_SESSION_PREFIX + 1 + 24 <= RPC_MAX_JTI, "a session jti fits RPC_MAX_JTI");

int rpc_jwt_mint_ex(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                    const char *aud, uint64_t ttl_s, uint64_t now_s, const char *const *targets,
                    size_t n_targets, const char *const *methods, size_t n_methods, char **out)
{
    return mint(secret, secret_len, role, sub, aud, ttl_s, now_s, targets, n_targets, methods,
                n_methods, NULL, out);
}

int rpc_jwt_mint(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                 const char *aud, uint64_t ttl_s, uint64_t now_s, char **out)
{
    return mint(secret, secret_len, role, sub, aud, ttl_s, now_s, NULL, 0, NULL, 0, NULL, out);
}

int rpc_jwt_mint_session(const uint8_t *secret, size_t secret_len, const char *role,
                         const char *sub, const char *aud, uint64_t ttl_s, uint64_t now_s,
                         const char *session, char **out)
{
    if (!session) return -EINVAL;
    return mint(secret, secret_len, role, sub, aud, ttl_s, now_s, NULL, 0, NULL, 0, session, out);
}

bool rpc_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s) { /* each step advances s or resume: at most O(len(p) * len(s)) */
        if (*p == '?' || (*p && *p != '*' && *p == *s)) {
            p++, s++;
        } else if (*p == '*') {
            star = p++;
            resume = s;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

static bool any_match(const char (*pats)[RPC_MAX_ACL_PATTERN + 1], size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (rpc_glob_match(pats[i], s)) return true;
    return false;
}

bool rpc_principal_allows(const rpc_principal_t *p, const char *node, const char *method)
{
    if (p->n_targets && !any_match(p->targets, p->n_targets, node)) return false;
    if (p->n_methods && !any_match(p->methods, p->n_methods, method)) return false;
    return true;
}

/* Decodes one base64url segment (no padding) into a NUL-terminated malloc'd string. */
static char *segment(const char *s, size_t n)
{
    size_t cap = n * 3 / 4 + 4, out_len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    if (sodium_base642bin((unsigned char *)buf, cap - 1, s, n, NULL, &out_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
        free(buf);
        return NULL;
    }
    buf[out_len] = 0;
    return buf;
}

/* The header must say alg HS256 (and typ JWT when present), nothing else is tried. */
static int header_ok(const char *token, size_t len)
{
    const char *dot = memchr(token, '.', len);
    if (!dot) return -1;
    char *h = segment(token, (size_t)(dot - token));
    if (!h) return -1;
    json_t *j = json_loads(h, JSON_REJECT_DUPLICATES, NULL);
    free(h);
    int ok = -1;
    if (json_is_object(j)) {
        json_t *alg = json_object_get(j, "alg"), *typ = json_object_get(j, "typ");
        if (json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 &&
            (!typ || (json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0)) &&
            !json_object_get(j, "crit"))
            ok = 0;
    }
    json_decref(j);
    return ok;
}

static bool aud_ok(json_t *aud, const char *want)
{
    if (json_is_string(aud)) return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), want) == 0) return true;
        }
    }
    return false;
}

/* Reads an optional ACL claim (absent: *n = 0). Returns 0, or -EINVAL when it is not an array of
 * 1..RPC_MAX_ACL_PATTERNS valid patterns. */
static int read_patterns(json_t *v, char (*out)[RPC_MAX_ACL_PATTERN + 1], uint8_t *n)
{
    *n = 0;
    if (!v) return 0;
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > RPC_MAX_ACL_PATTERNS)
        return -EINVAL;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e) || !pattern_ok(json_string_value(e))) return -EINVAL;
        snprintf(out[i], RPC_MAX_ACL_PATTERN + 1, "%s", json_string_value(e));
    }
    *n = (uint8_t)json_array_size(v);
    return 0;
}

/* Checks the claims of a verified token. Returns 0 or sets *why. */
static int claims_ok(jwt_t *jwt, const rpc_auth_config_t *auth, uint64_t now_s,
                     rpc_principal_t *out, const char **why)
{
    char *js = jwt_get_grants_json(jwt, NULL);
    json_t *c = js ? json_loads(js, JSON_REJECT_DUPLICATES, NULL) : NULL;
    int r = -EACCES;
    free(js);
    if (!json_is_object(c)) {
        *why = "unreadable claims";
        goto done;
    }
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    json_t *sub = json_object_get(c, "sub"), *role = json_object_get(c, "role");
    if (!json_is_integer(exp) || json_integer_value(exp) < 0) {
        *why = "token has no exp";
        goto done;
    }
    if ((uint64_t)json_integer_value(exp) + RPC_JWT_LEEWAY_S < now_s) {
        *why = "token expired";
        goto done;
    }
    if (nbf &&
        (!json_is_integer(nbf) || (json_integer_value(nbf) > 0 &&
                                   (uint64_t)json_integer_value(nbf) > now_s + RPC_JWT_LEEWAY_S))) {
        *why = "token not valid yet";
        goto done;
    }
    if (auth->audience && !aud_ok(json_object_get(c, "aud"), auth->audience)) {
        *why = "token audience mismatch";
        goto done;
    }
    int rl = json_is_string(role) ? rpc_role_parse(json_string_value(role)) : -EINVAL;
    if (rl < 0) {
        *why = "token role must be viewer, operator or admin";
        goto done;
    }
    if (sub && (!json_is_string(sub) || strlen(json_string_value(sub)) > RPC_MAX_SUB)) {
        *why = "token sub must be a short string";
        goto done;
    }
    memset(out, 0, sizeof(*out));
    if (read_patterns(json_object_get(c, "targets"), out->targets, &out->n_targets) < 0) {
        *why = "token targets claim must be 1..16 node-name patterns";
        goto done;
    }
    if (read_patterns(json_object_get(c, "methods"), out->methods, &out->n_methods) < 0) {
        *why = "token methods claim must be 1..16 DOMAIN.METHOD patterns";
        goto done;
    }
    json_t *jti = json_object_get(c, "jti"), *iat = json_object_get(c, "iat");
    if (jti && (!json_is_string(jti) || strlen(json_string_value(jti)) > RPC_MAX_JTI)) {
        *why = "token jti must be a short string";
        goto done;
    }
    if (iat && !json_is_integer(iat)) {
        *why = "token iat must be an integer";
        goto done;
    }
    snprintf(out->jti, sizeof(out->jti), "%s", jti ? json_string_value(jti) : "");
    out->iat = iat && json_integer_value(iat) > 0 ? (uint64_t)json_integer_value(iat) : 0;
    snprintf(out->sub, sizeof(out->sub), "%s", sub ? json_string_value(sub) : "");
    out->role = (rpc_role_t)rl;
    out->exp = (uint64_t)json_integer_value(exp);
    r = 0;
done:
    json_decref(c);
    return r;
}

bool rpc_principal_revoked(const rpc_auth_config_t *auth, const rpc_principal_t *p)
{
    return auth && auth->is_revoked && p->role != RPC_ROLE_NONE &&
           auth->is_revoked(auth->revoked_ctx, p->jti, p->sub, p->iat) != 0;
}

int rpc_jwt_verify(const rpc_auth_config_t *auth, const char *token, size_t len, uint64_t now_s,
                   rpc_principal_t *out, const char **why)
{
    char *t = NULL;
    jwt_t *jwt = NULL;
    int r = -EACCES;

    *why = "bad token";
    if (!auth || !auth->secret || auth->secret_len == 0 || auth->secret_len > INT32_MAX ||
        len == 0 || len > RPC_MAX_TOKEN || memchr(token, 0, len)) {
        *why = auth && auth->secret ? "bad token" : "authentication not configured";
        return -EACCES;
    }
    if (header_ok(token, len) < 0) {
        *why = "token algorithm must be HS256";
        return -EACCES;
    }
    t = strndup(token, len);
    if (!t) return -ENOMEM;
    if (jwt_decode(&jwt, t, auth->secret, (int)auth->secret_len) != 0) {
        jwt = NULL;
        if (!auth->prev_secret || auth->prev_secret_len == 0 || auth->prev_secret_len > INT32_MAX ||
            jwt_decode(&jwt, t, auth->prev_secret, (int)auth->prev_secret_len) != 0) {
            jwt = NULL;
            *why = "bad token signature";
            goto done;
        }
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        *why = "token algorithm must be HS256";
        goto done;
    }
    r = claims_ok(jwt, auth, now_s, out, why);
    if (r == 0 && rpc_principal_revoked(auth, out)) {
        memset(out, 0, sizeof(*out));
        *why = "token revoked";
        r = -EACCES;
    }
    if (r == 0) memcpy(out->token, token, len); /* len <= RPC_MAX_TOKEN; NUL from claims_ok */
done:
    jwt_free(jwt);
    free(t);
    return r;
}
