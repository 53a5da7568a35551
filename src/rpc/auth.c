/* auth.c: JWT minting and verification (RFC 8725 practice): HS256 only, with the algorithm pinned
 * by reading the header before libjwt verifies anything; exp required, nbf and aud checked with a
 * small leeway; role claim limited to viewer/operator/admin; a previous secret accepted during
 * rotation. Time comes in as a parameter. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <jwt.h>
#include <sodium.h>

#include "rpc/rpc-internal.h"

int rpc_jwt_mint(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                 const char *aud, uint64_t ttl_s, uint64_t now_s, char **out)
{
    jwt_t *jwt = NULL;
    uint8_t rnd[16];
    char jti[sizeof(rnd) * 2 + 1];
    int r = -EINVAL;

    *out = NULL;
    if (!secret || secret_len == 0 || secret_len > INT32_MAX || rpc_role_parse(role) < 0 || !sub ||
        strlen(sub) > RPC_MAX_SUB || !aud || ttl_s == 0 || now_s > INT64_MAX / 2 ||
        ttl_s > INT64_MAX / 2)
        return -EINVAL;
    if (jwt_new(&jwt) != 0) return -ENOMEM;
    randombytes_buf(rnd, sizeof(rnd));
    p2p_hex_encode(jti, rnd, sizeof(rnd));
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "role", role) ||
        jwt_add_grant(jwt, "aud", aud) || jwt_add_grant(jwt, "jti", jti) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) || jwt_add_grant_int(jwt, "nbf", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len))
        goto fail;
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
    snprintf(out->sub, sizeof(out->sub), "%s", sub ? json_string_value(sub) : "");
    out->role = (rpc_role_t)rl;
    out->exp = (uint64_t)json_integer_value(exp);
    r = 0;
done:
    json_decref(c);
    return r;
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
    if (r == 0) memcpy(out->token, token, len); /* len <= RPC_MAX_TOKEN; NUL from claims_ok */
done:
    jwt_free(jwt);
    free(t);
    return r;
}
