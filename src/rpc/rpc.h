/* rpc.h: the public API of the RPC module: the method table (registry) with parameter schemas and
 * roles, the call object handlers answer through, JWT minting, and the local unix-socket server
 * that carries the msgpack-RPC envelope of CONTRACT section 4.
 *
 * A handler receives a call whose parameters the dispatcher has already validated against the
 * method's schema. It must answer exactly once, now or later, with rpc_call_reply() or
 * rpc_call_error(). Answering after the deadline passed or after the client left is safe: the
 * answer is discarded. */
#ifndef P2P_RPC_H
#define P2P_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <uv.h>

#include "base/base.h"
#include "rpc/rpc-limits.h"

typedef struct rpc_registry rpc_registry_t;
typedef struct rpc_local rpc_local_t;
typedef struct rpc_call rpc_call_t;

/* Error codes of CONTRACT section 4. */
enum rpc_error_code {
    RPC_ERR_PARSE = -32700,
    RPC_ERR_INVALID_REQUEST = -32600,
    RPC_ERR_METHOD_NOT_FOUND = -32601,
    RPC_ERR_INVALID_PARAMS = -32602,
    RPC_ERR_INTERNAL = -32603,
    RPC_ERR_UNAUTHENTICATED = -32001,
    RPC_ERR_PERMISSION_DENIED = -32002,
    RPC_ERR_NOT_FOUND = -32003,
    RPC_ERR_TIMEOUT = -32004,
    RPC_ERR_UNAVAILABLE = -32005,
    RPC_ERR_RESOURCE_EXHAUSTED = -32006,
    RPC_ERR_CONFLICT = -32007,
    RPC_ERR_FAILED_PRECONDITION = -32008,
};

/* The contract name of an error code ("INVALID_PARAMS"), or "UNKNOWN". */
const char *rpc_error_name(int code);

/* Roles of CONTRACT section 5, ordered: a role allows everything a lower one does. NONE marks
 * methods callable before rpc.auth. */
typedef enum rpc_role {
    RPC_ROLE_NONE = 0,
    RPC_ROLE_VIEWER,
    RPC_ROLE_OPERATOR,
    RPC_ROLE_ADMIN,
} rpc_role_t;

/* "viewer"... ; rpc_role_parse returns the role or -EINVAL (NONE is not a token role). */
const char *rpc_role_name(rpc_role_t role);
int rpc_role_parse(const char *s);

/* Parameter types, a bit mask: a parameter may accept several. */
enum rpc_type {
    RPC_T_STRING = 1u << 0, /* valid UTF-8 without NUL */
    RPC_T_INT = 1u << 1,
    RPC_T_BOOL = 1u << 2,
    RPC_T_BYTES = 1u << 3,
    RPC_T_MAP = 1u << 4,
    RPC_T_ARRAY = 1u << 5,
    RPC_T_FLOAT = 1u << 6,
    RPC_T_ANY = 0x7f,
};

/* One parameter of a method's schema. With `range`, min/max bound an int's value, or the length
 * of a string, bytes, array or map. The default applies to an absent optional parameter and is
 * read from def_int / def_str / def_bool according to the first type bit (INT, STRING, BOOL). */
typedef struct rpc_param {
    const char *name; /* lower snake case, never starting with '_' */
    unsigned types;
    bool required;
    bool has_default;
    int64_t def_int;
    const char *def_str;
    bool def_bool;
    bool range;
    int64_t min, max;
    const char *description;
} rpc_param_t;

/* The handler: it runs from the dispatcher and must answer the call exactly once, now or later. */
typedef void (*rpc_handler_fn)(rpc_call_t *call, void *ctx);

/* One method. `name` is DOMAIN.METHOD ("node.info"), served as system.NODE.DOMAIN.METHOD. */
typedef struct rpc_method {
    const char *name;
    const char *description;
    rpc_role_t role;
    const rpc_param_t *params;
    size_t n_params; /* at most RPC_MAX_PARAMS */
    rpc_handler_fn handler;
    void *ctx;
    bool changes; /* modifies state: every call is recorded in the audit log */
    bool network; /* node-to-node: over the peer channel the network key is the credential (no
                     token needed); elsewhere it needs `role` like any method */
} rpc_method_t;

/* Calls whose NODE part is not this node (another name, @idprefix, a glob) go to the router, which
 * forwards them (rpc_call_method/params/token/origin tell it what to forward) and answers like any
 * handler. Without a router such calls are NOT_FOUND. The caller must be authenticated; the far
 * node checks the role itself. */
void rpc_registry_set_router(rpc_registry_t *reg, rpc_handler_fn router, void *ctx);

/* One audit record: a call that changed something, or a refused one, on this node. */
typedef struct rpc_audit_entry {
    const char *principal;      /* token subject, "" when none */
    const char *origin;         /* node the call came from (_origin), "" when it came in here */
    const char *method;         /* the address as called */
    const uint8_t *params_hash; /* BLAKE2b-128 of the named arguments (reserved ones excluded) */
    int code;                   /* 0 or the error code */
    uint64_t start_ms; /* monotonic `now` at dispatch (duration = now at the hook - this) */
} rpc_audit_entry_t;
typedef void (*rpc_audit_fn)(void *ctx, const rpc_audit_entry_t *e);

/* Installs the audit hook: it runs when a `changes` method is answered, and for every call refused
 * with UNAUTHENTICATED or PERMISSION_DENIED. */
void rpc_registry_set_audit(rpc_registry_t *reg, rpc_audit_fn fn, void *ctx);

/* One answered or refused call, for metrics. */
typedef struct rpc_observation {
    const char *method;  /* DOMAIN.METHOD of the local method ("node.info", "rpc.ping"), or NULL
                            for a call routed to other nodes (see address) */
    const char *address; /* the address as called (not NUL-terminated) */
    size_t address_len;
    int code;          /* 0 or the error code answered */
    uint64_t start_ms; /* monotonic `now` at dispatch (duration = now at the hook - this) */
} rpc_observation_t;
typedef void (*rpc_observe_fn)(void *ctx, const rpc_observation_t *o);

/* Installs the metrics hook: it runs once for every call that reached a method or the router,
 * when it is answered (timeouts included; not when its client left first), and for every call to
 * one refused by the access, schema or in-flight checks. NULL fn removes it. */
void rpc_registry_set_observer(rpc_registry_t *reg, rpc_observe_fn fn, void *ctx);

/* Creates a method table holding the built-ins rpc.ping, rpc.auth and node.methods (served as
 * system.local.node.methods). NULL on no memory. */
rpc_registry_t *rpc_registry_new(void);

/* Frees the table. Calls still running keep working (they do not point into it). NULL ok. */
void rpc_registry_free(rpc_registry_t *reg);

/* Adds a method. Copies the struct but not what it points to: params and strings must outlive
 * the table (static data). Returns 0, -EINVAL on a bad name or schema, -EEXIST, or -ENOSPC. */
int rpc_registry_add(rpc_registry_t *reg, const rpc_method_t *m);

/* Sets this node's name so that system.NAME.… addresses it like system.local.…. Returns 0 or
 * -EINVAL when the name is too long. */
int rpc_registry_set_node_name(rpc_registry_t *reg, const char *name);

/* Packs the introspection list (an array of maps: name, description, role, params) into pk.
 * node_label is the NODE part shown in names ("local"). */
void rpc_registry_pack_methods(const rpc_registry_t *reg, const char *node_label,
                               msgpack_packer *pk);

/* True when s[0..len) is valid UTF-8 without NUL bytes (what RPC_T_STRING accepts). */
bool rpc_utf8_valid(const char *s, size_t len);

/* --- calls (for handlers) --------------------------------------------------------------- */

/* The validated argument `name`: NULL when it is absent (defaults are not objects). Valid until the
 * call is answered. */
const msgpack_object *rpc_call_arg(const rpc_call_t *call, const char *name);

/* A string or bytes argument, or its default; NULL (and *len 0) when absent without default. The
 * bytes are not NUL-terminated. */
const char *rpc_call_str(const rpc_call_t *call, const char *name, size_t *len);

/* An int argument or its default (0 when absent without default). */
int64_t rpc_call_int(const rpc_call_t *call, const char *name);

/* A bool argument or its default (false when absent without default). */
bool rpc_call_bool(const rpc_call_t *call, const char *name);

/* The caller's principal ("" and RPC_ROLE_NONE before rpc.auth). */
const char *rpc_call_sub(const rpc_call_t *call);
rpc_role_t rpc_call_role(const rpc_call_t *call);

/* The address as the caller wrote it (not NUL-terminated). */
const char *rpc_call_method(const rpc_call_t *call, size_t *len);

/* The named-argument map as received, reserved `_` keys included (NULL for no params). */
const msgpack_object *rpc_call_params(const rpc_call_t *call);

/* The caller's JWT (per-call `_token`, else the one given to rpc.auth), "" when none. */
const char *rpc_call_token(const rpc_call_t *call);

/* The `_origin` node name of a forwarded call, "" when the call came in here. */
const char *rpc_call_origin(const rpc_call_t *call);

/* True when the caller asked for streamed partial results (`_stream: true`). */
bool rpc_call_stream(const rpc_call_t *call);

/* Sends the notification [2, method, params] to the caller now (params: one packed msgpack array).
 * Returns 0, or -ENOTCONN when the caller is gone or the call already answered. */
int rpc_call_notify(rpc_call_t *call, const char *method, const void *params, size_t len);

/* Answers with an error object received from elsewhere (a far node), passed through as is. */
void rpc_call_error_object(rpc_call_t *call, const msgpack_object *err);

/* The monotonic `now` (ms) at dispatch and the call's absolute deadline on the same clock. */
uint64_t rpc_call_now(const rpc_call_t *call);
uint64_t rpc_call_deadline(const rpc_call_t *call);

/* True once an answer can no longer be delivered (deadline passed, client gone). */
bool rpc_call_cancelled(const rpc_call_t *call);

/* The packer of the result: pack exactly one object, then call rpc_call_reply(). */
msgpack_packer *rpc_call_packer(rpc_call_t *call);

/* Answers with what was packed (nil when nothing was). Releases the handler's hold on the call:
 * it must not be used afterwards. */
void rpc_call_reply(rpc_call_t *call);

/* Answers with the one object packed in sb, taking its storage without a copy (sb is left empty
 * and may be destroyed or reused). What rpc_call_packer() held is dropped. For big results packed
 * away from the call (a worker thread). Releases the call like rpc_call_reply(). */
void rpc_call_reply_sbuffer(rpc_call_t *call, msgpack_sbuffer *sb);

/* Answers with an error; message is printf-style. Releases the call like rpc_call_reply(). */
void rpc_call_error(rpc_call_t *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like rpc_call_error() with data = {"param": param}. */
void rpc_call_error_param(rpc_call_t *call, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- authentication ---------------------------------------------------------------------- */

typedef struct rpc_auth_config {
    const uint8_t *secret; /* HS256 key (the decoded auth secret) */
    size_t secret_len;
    const uint8_t *prev_secret; /* previous key still accepted during rotation, NULL if none */
    size_t prev_secret_len;
    const char *audience; /* required `aud`, e.g. "p2p-admin" */
    /* Revocation (NULL = none): returns nonzero when a token that passed every other check is
     * revoked: its `jti` ("" when absent) was logged out, or its subject `sub` was removed or
     * changed after `iat` (wall seconds, 0 when absent). Called on the loop thread for every call
     * a bound or cached token makes, so it must be a cheap in-memory lookup. */
    int (*is_revoked)(void *ctx, const char *jti, const char *sub, uint64_t iat);
    void *revoked_ctx;
} rpc_auth_config_t;

/* Mints an HS256 JWT with claims sub, role, aud, iat = nbf = now_s, exp = now_s + ttl_s and a
 * random jti. role must be viewer, operator or admin. Returns 0 and a malloc'd *out, or -EINVAL /
 * -ENOMEM. */
int rpc_jwt_mint(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                 const char *aud, uint64_t ttl_s, uint64_t now_s, char **out);

/* rpc_jwt_mint with the optional ACL claims: targets (node-name globs) and methods (DOMAIN.METHOD
 * globs), n_* patterns each (0 = claim absent), at most RPC_MAX_ACL_PATTERNS of 1..
 * RPC_MAX_ACL_PATTERN characters [A-Za-z0-9._*?-]. Returns 0 and *out, or -EINVAL / -ENOMEM. */
int rpc_jwt_mint_ex(const uint8_t *secret, size_t secret_len, const char *role, const char *sub,
                    const char *aud, uint64_t ttl_s, uint64_t now_s, const char *const *targets,
                    size_t n_targets, const char *const *methods, size_t n_methods, char **out);

/* rpc_jwt_mint for a login session: the jti is "SESSION.RANDOM" (session: 1..
 * RPC_MAX_SESSION_PREFIX lowercase hex digits), so a revocation callback can end every access
 * token of a session at once. Returns 0 and *out, or -EINVAL / -ENOMEM. */
int rpc_jwt_mint_session(const uint8_t *secret, size_t secret_len, const char *role,
                         const char *sub, const char *aud, uint64_t ttl_s, uint64_t now_s,
                         const char *session, char **out);

/* An upper bound of the bytes msgpack_pack_object(o) writes (o already validated: bounded depth). */
size_t rpc_packed_size_bound(const msgpack_object *o);

/* Initialises sb with room for n bytes at once, so packing a big object (a file chunk) does not
 * grow it by doubling, copying as it goes. On no memory sb is simply empty (it grows as usual). */
void rpc_sbuffer_init_for(msgpack_sbuffer *sb, size_t n);

/* --- streaming frame decoder (bounded; for servers and clients) ---------------------------- */

/* One decoded frame: its own copy of the bytes (the objects point into it) and the object tree. */
typedef struct rpc_frame {
    uint8_t *bytes;
    size_t len;
    msgpack_unpacked unp;
} rpc_frame_t;

/* Frees a frame and its storage. NULL ok. */
void rpc_frame_free(rpc_frame_t *f);

/* A streaming decoder: bytes in, whole frames out. */
typedef struct rpc_decoder {
    p2p_buf_t in;
    size_t off; /* bytes of `in` already taken as frames (dropped at the next feed) */
} rpc_decoder_t;

void rpc_decoder_init(rpc_decoder_t *d);
void rpc_decoder_free(rpc_decoder_t *d);

/* Appends bytes. Returns 0, or -EMSGSIZE when the buffered bytes would pass the frame limit. */
int rpc_decoder_feed(rpc_decoder_t *d, const uint8_t *buf, size_t len);

/* Takes the next whole frame out of the buffer. Returns 1 and a malloc'd *out (free with
 * rpc_frame_free()), 0 when more bytes are needed, or -EBADMSG (undecodable), -EMSGSIZE
 * (past RPC_MAX_FRAME), -ELOOP (past RPC_MAX_DEPTH), -E2BIG (past RPC_MAX_OBJECTS) or -ENOMEM.
 * After an error the stream cannot be resynchronised. */
int rpc_decoder_next(rpc_decoder_t *d, rpc_frame_t **out);

/* --- the local socket server ------------------------------------------------------------- */

/* Listens on the unix socket `path` (an existing socket file is replaced; mode 0600) and serves
 * calls from reg. auth is copied (the secrets are copied too). Returns 0 and *out, or a negative
 * UV_E* / errno. reg must outlive the server. */
int rpc_local_start(uv_loop_t *loop, const char *path, rpc_registry_t *reg,
                    const rpc_auth_config_t *auth, rpc_local_t **out);

/* Closes the listener and every connection and removes the socket file; done_cb (may be NULL) runs
 * from the loop once every handle is closed and s is freed. Calls still in a handler's hands are
 * answered into the void. NULL s: done_cb is not called. */
void rpc_local_stop(rpc_local_t *s, void (*done_cb)(void *arg), void *arg);

#endif
