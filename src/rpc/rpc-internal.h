/* rpc-internal.h: what the RPC module's files share and the tests reach: the bounded frame codec,
 * the per-connection protocol session (transport-agnostic, clock passed in), the registry
 * internals and JWT verification. Not for other modules. */
#ifndef P2P_RPC_INTERNAL_H
#define P2P_RPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#include "base/base.h"
#include "rpc/rpc.h"

/* --- codec.c: framing ------------------------------------------------------------------- */

/* Checks that buf starts with one msgpack object within the limits (RPC_MAX_FRAME bytes,
 * RPC_MAX_DEPTH nesting, RPC_MAX_OBJECTS objects) without allocating anything. Declared lengths
 * are checked against the limits before any data arrives. Returns 0 and *frame_len for a complete
 * object, -EAGAIN when more bytes are needed, -EBADMSG for an undecodable byte, -EMSGSIZE when the
 * object would pass RPC_MAX_FRAME, -ELOOP when too deep, -E2BIG when it holds too many objects. */
int rpc_frame_scan(const uint8_t *buf, size_t len, size_t *frame_len);

/* Packs the error object {"code","message"[,"data": {"param": param}]}. */
void rpc_pack_error(msgpack_packer *pk, int code, const char *message, const char *param);

/* Packs a str from a C string. */
void rpc_pack_cstr(msgpack_packer *pk, const char *s);

/* The audit fingerprint of a call's named arguments (NULL ok): BLAKE2b-128 over them without the
 * reserved `_` ones, a top-level string or binary over RPC_AUDIT_HASH_SPAN counted by its length and
 * its first and last SPAN/2 bytes (fingerprint.c). */
void rpc_params_fingerprint(const msgpack_object *named, uint8_t out[16]);

/* True when the msgpack str equals the C string. */
bool rpc_str_eq(const msgpack_object *o, const char *s);

/* --- registry.c ------------------------------------------------------------------------- */

#define RPC_NODE_NAME_MAX 63

struct rpc_registry {
    rpc_method_t methods[RPC_MAX_METHODS];
    bool root[RPC_MAX_METHODS]; /* name is a whole address (rpc.ping), not DOMAIN.METHOD */
    size_t n;
    char node_name[RPC_NODE_NAME_MAX + 1];
    rpc_handler_fn router; /* calls for other nodes */
    void *router_ctx;
    rpc_audit_fn audit;
    void *audit_ctx;
    rpc_observe_fn observe; /* metrics hook, NULL when none */
    void *observe_ctx;
    struct rpc_token_cache *tokens; /* tokens verified recently (session.c) */
};

/* Outcome of resolving a method address. */
typedef struct rpc_resolved {
    const rpc_method_t *method; /* NULL when not found */
    int code; /* 0, RPC_ERR_METHOD_NOT_FOUND or RPC_ERR_NOT_FOUND (unknown node) */
} rpc_resolved_t;

/* Resolves "rpc.ping" or "system.NODE.DOMAIN.METHOD" (NODE = local or this node's name). */
rpc_resolved_t rpc_registry_resolve(const rpc_registry_t *reg, const char *addr, size_t len);

/* Validates params (the named-argument map, or NULL for none) against m's schema, filling args
 * (indexed like m->params; NULL for absent). Reserved names starting with '_' are skipped. Returns
 * 0, or RPC_ERR_INVALID_PARAMS with *bad_param naming the argument and *why a static reason. */
int rpc_schema_validate(const rpc_method_t *m, const msgpack_object *params,
                        const msgpack_object *args[RPC_MAX_PARAMS], const char **bad_param,
                        char *why, size_t why_cap);

/* Adds a built-in method whose name is a whole address. */
int rpc_registry_add_root(rpc_registry_t *reg, const rpc_method_t *m);

/* --- auth.c ------------------------------------------------------------------------------ */

typedef struct rpc_principal {
    char sub[RPC_MAX_SUB + 1];
    char token[RPC_MAX_TOKEN + 1]; /* the JWT itself, forwarded with calls to other nodes */
    rpc_role_t role;               /* RPC_ROLE_NONE = not authenticated */
    uint64_t exp;                  /* wall seconds */
    uint64_t iat;                  /* wall seconds, 0 when the token has none */
    char jti[RPC_MAX_JTI + 1];     /* "" when the token has none */
    /* Optional ACL claims (Salt-style): when n_targets / n_methods > 0, a call is allowed only on a
     * node whose name matches one of targets and for a DOMAIN.METHOD matching one of methods. */
    uint8_t n_targets, n_methods;
    char targets[RPC_MAX_ACL_PATTERNS][RPC_MAX_ACL_PATTERN + 1];
    char methods[RPC_MAX_ACL_PATTERNS][RPC_MAX_ACL_PATTERN + 1];
} rpc_principal_t;

/* True when the glob pattern (`*` any run, `?` one character) matches the whole of s. */
bool rpc_glob_match(const char *pattern, const char *s);

/* The ACL check of a token's optional claims: true when p carries no targets claim or node matches
 * one, and no methods claim or method (DOMAIN.METHOD) matches one. */
bool rpc_principal_allows(const rpc_principal_t *p, const char *node, const char *method);

/* True when auth has a revocation callback and it says p's token is revoked (role NONE: false). */
bool rpc_principal_revoked(const rpc_auth_config_t *auth, const rpc_principal_t *p);

/* Verifies an HS256 JWT against auth (current then previous secret) at wall time now_s: alg pinned
 * to HS256 in the header, signature, exp required, nbf, aud, role, and the optional `targets` and
 * `methods` claims (arrays of 1..RPC_MAX_ACL_PATTERNS glob strings of 1..RPC_MAX_ACL_PATTERN
 * characters [A-Za-z0-9._*?-]; anything else makes the token invalid), `jti` (a string of at most
 * RPC_MAX_JTI characters when present), `iat` (an integer when present), and last the revocation
 * callback of auth. Returns 0 and *out, or -EACCES with *why a static reason. */
int rpc_jwt_verify(const rpc_auth_config_t *auth, const char *token, size_t len, uint64_t now_s,
                   rpc_principal_t *out, const char **why);

/* --- session.c: one connection's protocol state ------------------------------------------ */

typedef struct rpc_session rpc_session_t;

/* Queues bytes to the client. Returns 0, or a negative errno when the output is refused (the
 * session then stops producing output for that reply). */
typedef int (*rpc_write_fn)(void *ctx, const uint8_t *buf, size_t len);

/* Creates a session. reg and auth must outlive it. NULL on no memory. */
rpc_session_t *rpc_session_new(rpc_registry_t *reg, const rpc_auth_config_t *auth,
                               rpc_write_fn write, void *ctx);

/* Marks the session as a peer-channel connection (node to node): `network` methods need no token
 * on it. */
void rpc_session_set_peer(rpc_session_t *s);

/* Feeds received bytes: decodes frames, dispatches requests, writes replies (handlers may also
 * answer later, which writes from outside this call). now_ms is monotonic, wall_s the wall clock.
 * Returns 0, or -EPROTO when the stream is broken (the PARSE_ERROR reply is already written; the
 * caller closes the connection). */
int rpc_session_input(rpc_session_t *s, const uint8_t *buf, size_t len, uint64_t now_ms,
                      uint64_t wall_s);

/* Answers TIMEOUT to the calls whose deadline is <= now_ms. Returns the next deadline, or
 * UINT64_MAX when no call is pending. */
uint64_t rpc_session_periodic(rpc_session_t *s, uint64_t now_ms);

/* Unanswered calls. */
size_t rpc_session_pending(const rpc_session_t *s);

/* The bound principal (role NONE before rpc.auth). */
const rpc_principal_t *rpc_session_principal(const rpc_session_t *s);

/* Frees the session; calls still held by handlers are detached and their answers discarded. */
void rpc_session_free(rpc_session_t *s);

#endif
