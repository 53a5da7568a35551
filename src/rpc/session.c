/* session.c: one connection's msgpack-RPC protocol state, independent of the transport: it decodes
 * frames, checks the envelope, resolves the address, authenticates, checks the role, validates the
 * params against the schema, runs the handler and writes the response. Calls carry a deadline
 * (monotonic `now` passed in) and two references, the handler's and the session's, so a late
 * answer after a timeout or a disconnect is discarded without touching freed memory. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rpc/rpc-internal.h"

struct rpc_call {
    int refs; /* the handler's hold + the session's while pending */
    rpc_session_t *session;
    rpc_call_t *prev, *next;
    bool answered; /* a response went out, or can no longer */
    bool notify;   /* notification: never answered on the wire */
    uint32_t msgid;
    uint64_t now, deadline;
    rpc_method_t m; /* a copy: the registry may go first */
    const msgpack_object *args[RPC_MAX_PARAMS];
    rpc_frame_t *frame;        /* owns what args point into */
    char sub[RPC_MAX_SUB + 1]; /* the caller: subject and role (the token itself only when the */
    rpc_role_t role;           /* call is forwarded: most calls never need it) */
    char *token;
    const char *address; /* the method address as called (points into frame) */
    size_t address_len;
    const msgpack_object *named; /* the params map as received (points into frame) */
    char origin[RPC_NODE_NAME_MAX + 1];
    bool stream;
    rpc_audit_fn audit; /* set when the answer must be recorded */
    void *audit_ctx;
    rpc_observe_fn observe; /* the registry's metrics hook at dispatch */
    void *observe_ctx;
    msgpack_sbuffer result;
    msgpack_packer pk;
};

struct rpc_session {
    rpc_registry_t *reg;
    const rpc_auth_config_t *auth;
    rpc_write_fn write;
    void *ctx;
    rpc_decoder_t dec;
    rpc_principal_t principal;
    rpc_call_t *pending;
    size_t n_pending;
    bool broken;
    bool peer; /* a peer-channel connection */
};

void rpc_session_set_peer(rpc_session_t *s)
{
    s->peer = true;
}

rpc_session_t *rpc_session_new(rpc_registry_t *reg, const rpc_auth_config_t *auth,
                               rpc_write_fn write, void *ctx)
{
    rpc_session_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->reg = reg, s->auth = auth, s->write = write, s->ctx = ctx;
    rpc_decoder_init(&s->dec);
    return s;
}

static void release(rpc_call_t *c)
{
    if (--c->refs > 0) return;
    rpc_frame_free(c->frame);
    msgpack_sbuffer_destroy(&c->result);
    free(c->token);
    free(c);
}

static void unlink_call(rpc_session_t *s, rpc_call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->pending = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->n_pending--;
}

void rpc_session_free(rpc_session_t *s)
{
    if (!s) return;
    while (s->pending) {
        rpc_call_t *c = s->pending;
        unlink_call(s, c);
        c->session = NULL;
        c->answered = true;
        release(c);
    }
    rpc_decoder_free(&s->dec);
    free(s);
}

size_t rpc_session_pending(const rpc_session_t *s)
{
    return s->n_pending;
}

const rpc_principal_t *rpc_session_principal(const rpc_session_t *s)
{
    return &s->principal;
}

/* Writes [1, msgid|nil, error, result]: an error when code != 0, else the packed result bytes
 * (nil when empty). */
static void respond_obj(rpc_session_t *s, bool has_id, uint32_t msgid, int code, const char *msg,
                        const char *param, const msgpack_object *err, const char *result,
                        size_t rlen)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    if (has_id)
        msgpack_pack_uint32(&pk, msgid);
    else
        msgpack_pack_nil(&pk);
    if (!err && !code && rlen > RPC_REPLY_SPLIT) { /* a big result goes out as is, not copied */
        msgpack_pack_nil(&pk);
        if (s->write(s->ctx, (const uint8_t *)sb.data, sb.size) == 0)
            (void)s->write(s->ctx, (const uint8_t *)result, rlen);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    if (err) {
        msgpack_pack_object(&pk, *err);
        msgpack_pack_nil(&pk);
    } else if (code) {
        rpc_pack_error(&pk, code, msg, param);
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_nil(&pk);
        if (rlen)
            msgpack_sbuffer_write(&sb, result, rlen);
        else
            msgpack_pack_nil(&pk);
    }
    if (sb.data) (void)s->write(s->ctx, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void respond(rpc_session_t *s, bool has_id, uint32_t msgid, int code, const char *msg,
                    const char *param, const char *result, size_t rlen)
{
    respond_obj(s, has_id, msgid, code, msg, param, NULL, result, rlen);
}

/* Hands one record to the audit hook. */
static void audit(rpc_audit_fn fn, void *ctx, const char *principal, const char *origin,
                  const char *address, size_t address_len, const msgpack_object *named, int code,
                  uint64_t start_ms)
{
    if (!fn) return;
    char method[RPC_MAX_METHOD_NAME + 1];
    size_t n = P2P_MIN(address_len, (size_t)RPC_MAX_METHOD_NAME);
    memcpy(method, address, n);
    method[n] = 0;
    uint8_t hash[16];
    rpc_params_fingerprint(named, hash);
    rpc_audit_entry_t e = {principal, origin, method, hash, code, start_ms};
    fn(ctx, &e);
}

/* Hands one call to the metrics hook (method NULL: routed to other nodes). */
static void observe(rpc_observe_fn fn, void *ctx, const char *method, const char *addr,
                    size_t addr_len, int code, uint64_t start_ms)
{
    rpc_observation_t o = {method, addr, addr_len, code, start_ms};
    if (fn) fn(ctx, &o);
}

/* Sends the call's answer if it can still go out, and drops the session's hold. */
static void answer_obj(rpc_call_t *c, int code, const char *msg, const char *param,
                       const msgpack_object *err)
{
    rpc_session_t *s = c->session;
    if (c->answered || !s) return;
    c->answered = true;
    if (c->audit)
        audit(c->audit, c->audit_ctx, c->sub, c->origin, c->address, c->address_len, c->named, code,
              c->now);
    /* the router's pseudo-method is the one without a handler */
    observe(c->observe, c->observe_ctx, c->m.handler ? c->m.name : NULL, c->address,
            c->address_len, code, c->now);
    if (!c->notify)
        respond_obj(s, true, c->msgid, code, msg, param, err, c->result.data, c->result.size);
    unlink_call(s, c);
    c->session = NULL;
    release(c);
}

static void answer(rpc_call_t *c, int code, const char *msg, const char *param)
{
    answer_obj(c, code, msg, param, NULL);
}

msgpack_packer *rpc_call_packer(rpc_call_t *call)
{
    return &call->pk;
}

void rpc_call_reply_sbuffer(rpc_call_t *call, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_destroy(&call->result);
    call->result = *sb;
    msgpack_sbuffer_init(sb);
    rpc_call_reply(call);
}

void rpc_call_reply(rpc_call_t *call)
{
    answer(call, 0, NULL, NULL);
    release(call);
}

static void verror(rpc_call_t *call, int code, const char *param, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    answer(call, code ? code : RPC_ERR_INTERNAL, msg, param);
    release(call);
}

void rpc_call_error(rpc_call_t *call, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(call, code, NULL, fmt, ap);
    va_end(ap);
}

void rpc_call_error_param(rpc_call_t *call, int code, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(call, code, param, fmt, ap);
    va_end(ap);
}

static int param_index(const rpc_call_t *c, const char *name)
{
    for (size_t i = 0; i < c->m.n_params; i++)
        if (strcmp(c->m.params[i].name, name) == 0) return (int)i;
    return -1;
}

const msgpack_object *rpc_call_arg(const rpc_call_t *call, const char *name)
{
    int i = param_index(call, name);
    return i < 0 ? NULL : call->args[i];
}

const char *rpc_call_str(const rpc_call_t *call, const char *name, size_t *len)
{
    int i = param_index(call, name);
    *len = 0;
    if (i < 0) return NULL;
    const msgpack_object *o = call->args[i];
    if (o && o->type == MSGPACK_OBJECT_STR) {
        *len = o->via.str.size;
        return o->via.str.ptr;
    }
    if (o && o->type == MSGPACK_OBJECT_BIN) {
        *len = o->via.bin.size;
        return o->via.bin.ptr;
    }
    const rpc_param_t *p = &call->m.params[i];
    if (!o && p->has_default && p->def_str) {
        *len = strlen(p->def_str);
        return p->def_str;
    }
    return NULL;
}

int64_t rpc_call_int(const rpc_call_t *call, const char *name)
{
    int i = param_index(call, name);
    if (i < 0) return 0;
    const msgpack_object *o = call->args[i];
    if (o &&
        (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        return o->via.i64;
    return call->m.params[i].has_default ? call->m.params[i].def_int : 0;
}

bool rpc_call_bool(const rpc_call_t *call, const char *name)
{
    int i = param_index(call, name);
    if (i < 0) return false;
    const msgpack_object *o = call->args[i];
    if (o && o->type == MSGPACK_OBJECT_BOOLEAN) return o->via.boolean;
    return call->m.params[i].has_default && call->m.params[i].def_bool;
}

const char *rpc_call_sub(const rpc_call_t *call)
{
    return call->sub;
}

rpc_role_t rpc_call_role(const rpc_call_t *call)
{
    return call->role;
}

uint64_t rpc_call_now(const rpc_call_t *call)
{
    return call->now;
}

uint64_t rpc_call_deadline(const rpc_call_t *call)
{
    return call->deadline;
}

bool rpc_call_cancelled(const rpc_call_t *call)
{
    return call->answered || !call->session;
}

const char *rpc_call_method(const rpc_call_t *call, size_t *len)
{
    *len = call->address_len;
    return call->address;
}

const msgpack_object *rpc_call_params(const rpc_call_t *call)
{
    return call->named;
}

const char *rpc_call_token(const rpc_call_t *call)
{
    return call->token ? call->token : "";
}

const char *rpc_call_origin(const rpc_call_t *call)
{
    return call->origin;
}

bool rpc_call_stream(const rpc_call_t *call)
{
    return call->stream;
}

int rpc_call_notify(rpc_call_t *call, const char *method, const void *params, size_t len)
{
    rpc_session_t *s = call->session;
    if (call->answered || !s) return -ENOTCONN;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    rpc_pack_cstr(&pk, method);
    if (s->peer) {
        /* node to node: the caller multiplexes calls on one connection, so the params array
         * gains a last element {"_msgid": N} naming the request this notification belongs to */
        const uint8_t *p = params;
        uint32_t n;
        size_t hdr;
        if (len >= 1 && p[0] >= 0x90 && p[0] <= 0x9f)
            n = p[0] & 0x0f, hdr = 1;
        else if (len >= 3 && p[0] == 0xdc)
            n = (uint32_t)p[1] << 8 | p[2], hdr = 3;
        else if (len >= 5 && p[0] == 0xdd)
            n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4], hdr = 5;
        else {
            msgpack_sbuffer_destroy(&sb);
            return -EINVAL;
        }
        msgpack_pack_array(&pk, (size_t)n + 1);
        msgpack_sbuffer_write(&sb, (const char *)p + hdr, len - hdr);
        msgpack_pack_map(&pk, 1);
        rpc_pack_cstr(&pk, "_msgid");
        msgpack_pack_uint32(&pk, call->msgid);
    } else {
        msgpack_sbuffer_write(&sb, params, len);
    }
    int r = s->write(s->ctx, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

void rpc_call_error_object(rpc_call_t *call, const msgpack_object *err)
{
    int code = RPC_ERR_INTERNAL;
    for (uint32_t i = 0; err->type == MSGPACK_OBJECT_MAP && i < err->via.map.size; i++) {
        const msgpack_object_kv *kv = &err->via.map.ptr[i];
        if (rpc_str_eq(&kv->key, "code") && kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            code = (int)kv->val.via.i64;
    }
    answer_obj(call, code, NULL, NULL, err);
    release(call);
}

uint64_t rpc_session_periodic(rpc_session_t *s, uint64_t now_ms)
{
    uint64_t next = UINT64_MAX;
    rpc_call_t *c = s->pending;
    while (c) {
        rpc_call_t *n = c->next;
        if (c->deadline <= now_ms)
            answer(c, RPC_ERR_TIMEOUT, "deadline passed", NULL);
        else if (c->deadline < next)
            next = c->deadline;
        c = n;
    }
    return next;
}

/* --- dispatch ------------------------------------------------------------------------- */

/* What a request frame says, once the envelope is checked. */
typedef struct request {
    bool notify;
    bool has_id;
    uint32_t msgid;
    const msgpack_object *method;
    const msgpack_object *named; /* the params map, NULL when params is [] */
    uint64_t timeout_ms;
    const msgpack_object *token;  /* _token: the caller's JWT for this call (forwarded calls) */
    const msgpack_object *origin; /* _origin: the node a forwarded call came from */
    bool stream;                  /* _stream: partial results as notifications */
    const rpc_method_t *m;        /* the local method resolved, NULL when none or routed */
} request_t;

/* Checks the envelope; returns 0 or an error code with msg and param set. */
static int parse_envelope(const msgpack_object *o, request_t *rq, const char **msg,
                          const char **param)
{
    memset(rq, 0, sizeof(*rq));
    rq->timeout_ms = RPC_DEFAULT_TIMEOUT_MS;
    *param = NULL;
    *msg = "request must be [0, msgid, method, params] or [2, method, params]";
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3) return RPC_ERR_INVALID_REQUEST;
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || (a[0].via.u64 != 0 && a[0].via.u64 != 2))
        return RPC_ERR_INVALID_REQUEST;
    rq->notify = a[0].via.u64 == 2;
    if (!rq->notify) {
        if (a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[1].via.u64 <= UINT32_MAX)
            rq->has_id = true, rq->msgid = (uint32_t)a[1].via.u64;
        if (o->via.array.size != 4 || !rq->has_id) return RPC_ERR_INVALID_REQUEST;
        a++;
    } else if (o->via.array.size != 3) {
        return RPC_ERR_INVALID_REQUEST;
    }
    if (a[1].type != MSGPACK_OBJECT_STR || a[2].type != MSGPACK_OBJECT_ARRAY)
        return RPC_ERR_INVALID_REQUEST;
    rq->method = &a[1];
    const msgpack_object *params = &a[2];
    if (params->via.array.size > 1 ||
        (params->via.array.size == 1 && params->via.array.ptr[0].type != MSGPACK_OBJECT_MAP)) {
        *msg = "params must be [] or [{name: value, ...}]";
        return RPC_ERR_INVALID_PARAMS;
    }
    rq->named = params->via.array.size ? &params->via.array.ptr[0] : NULL;
    for (uint32_t i = 0; rq->named && i < rq->named->via.map.size; i++) {
        const msgpack_object *k = &rq->named->via.map.ptr[i].key;
        const msgpack_object *v = &rq->named->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0 || k->via.str.ptr[0] != '_')
            continue;
        if (rpc_str_eq(k, "_token")) {
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
                v->via.str.size > RPC_MAX_TOKEN) {
                *msg = "_token must be a JWT string";
                *param = "_token";
                return RPC_ERR_INVALID_PARAMS;
            }
            rq->token = v;
            continue;
        }
        if (rpc_str_eq(k, "_origin")) {
            if (v->type != MSGPACK_OBJECT_STR || v->via.str.size == 0 ||
                v->via.str.size > RPC_NODE_NAME_MAX ||
                !rpc_utf8_valid(v->via.str.ptr, v->via.str.size)) {
                *msg = "_origin must be a node name";
                *param = "_origin";
                return RPC_ERR_INVALID_PARAMS;
            }
            rq->origin = v;
            continue;
        }
        if (rpc_str_eq(k, "_stream")) {
            if (v->type != MSGPACK_OBJECT_BOOLEAN) {
                *msg = "_stream must be true or false";
                *param = "_stream";
                return RPC_ERR_INVALID_PARAMS;
            }
            rq->stream = v->via.boolean;
            continue;
        }
        if (!rpc_str_eq(k, "_timeout")) {
            *msg = "unknown reserved argument";
            *param = "_";
            return RPC_ERR_INVALID_PARAMS;
        }
        double t = -1;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            t = v->via.u64 > RPC_MAX_TIMEOUT_S ? -1 : (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            t = v->via.f64;
        if (!(t > 0 && t <= RPC_MAX_TIMEOUT_S)) {
            *msg = "_timeout must be a number of seconds in (0, 3600]";
            *param = "_timeout";
            return RPC_ERR_INVALID_PARAMS;
        }
        rq->timeout_ms = (uint64_t)(t * 1000.0);
        if (rq->timeout_ms == 0) rq->timeout_ms = 1;
    }
    return 0;
}

static void reply_error(rpc_session_t *s, const request_t *rq, int code, const char *msg,
                        const char *param)
{
    if (!rq->notify) respond(s, rq->has_id, rq->msgid, code, msg, param, NULL, 0);
}

/* rpc.auth: verifies the token and binds its principal (a failure unbinds). */
static void do_auth(rpc_session_t *s, const request_t *rq, const msgpack_object *token,
                    uint64_t wall_s)
{
    const char *why = NULL;
    rpc_principal_t p;
    if (rpc_jwt_verify(s->auth, token->via.str.ptr, token->via.str.size, wall_s, &p, &why) < 0) {
        memset(&s->principal, 0, sizeof(s->principal));
        reply_error(s, rq, RPC_ERR_UNAUTHENTICATED, why, NULL);
        return;
    }
    s->principal = p;
    if (rq->notify) return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    rpc_pack_cstr(&pk, "sub");
    rpc_pack_cstr(&pk, p.sub);
    rpc_pack_cstr(&pk, "role");
    rpc_pack_cstr(&pk, rpc_role_name(p.role));
    rpc_pack_cstr(&pk, "expires");
    msgpack_pack_uint64(&pk, p.exp);
    respond(s, true, rq->msgid, 0, NULL, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Checks the caller may run m on this node (named node) now: token still valid, role, and the
 * token's ACL claims. Returns 0 or an error code with *msg. */
static int check_access(const rpc_auth_config_t *auth, rpc_principal_t *p, const rpc_method_t *m,
                        const char *node, uint64_t wall_s, const char **msg)
{
    if (p->role != RPC_ROLE_NONE && p->exp + RPC_JWT_LEEWAY_S < wall_s) {
        memset(p, 0, sizeof(*p));
        *msg = "token expired; call rpc.auth again";
        return RPC_ERR_UNAUTHENTICATED;
    }
    if (rpc_principal_revoked(auth, p)) { /* logged out since it was bound or cached */
        memset(p, 0, sizeof(*p));
        *msg = "token revoked";
        return RPC_ERR_UNAUTHENTICATED;
    }
    if (!m || m->role == RPC_ROLE_NONE) return 0;
    if (p->role == RPC_ROLE_NONE) {
        *msg = "call rpc.auth with a token first";
        return RPC_ERR_UNAUTHENTICATED;
    }
    if (p->role < m->role) {
        *msg = "role does not allow this method";
        return RPC_ERR_PERMISSION_DENIED;
    }
    if (!rpc_principal_allows(p, node, m->name)) {
        *msg = "token does not allow this method on this node";
        return RPC_ERR_PERMISSION_DENIED;
    }
    return 0;
}

/* Tokens verified recently, by a hash of the whole token (signature included): forwarded calls
 * carry the same token again and again, and verifying it costs more than the call. */
struct rpc_token_cache {
    struct {
        uint8_t hash[16];
        bool used;
        rpc_principal_t p;
    } e[RPC_TOKEN_CACHE];
    unsigned next;
};

static int verify_token(rpc_session_t *s, const char *tok, size_t len, uint64_t wall_s,
                        rpc_principal_t *out, const char **why)
{
    struct rpc_token_cache *tc = s->reg->tokens;
    if (!tc && (tc = s->reg->tokens = calloc(1, sizeof(*tc))) == NULL)
        return rpc_jwt_verify(s->auth, tok, len, wall_s, out, why);
    uint8_t h[16];
    crypto_generichash(h, sizeof(h), (const uint8_t *)tok, len, NULL, 0);
    for (unsigned i = 0; i < RPC_TOKEN_CACHE; i++) {
        if (!tc->e[i].used || sodium_memcmp(tc->e[i].hash, h, sizeof(h)) != 0) continue;
        if (tc->e[i].p.exp + RPC_JWT_LEEWAY_S < wall_s) { /* expired since: verify again */
            tc->e[i].used = false;
            break;
        }
        *out = tc->e[i].p;
        return 0;
    }
    int r = rpc_jwt_verify(s->auth, tok, len, wall_s, out, why);
    if (r == 0) {
        unsigned i = tc->next++ % RPC_TOKEN_CACHE;
        memcpy(tc->e[i].hash, h, sizeof(h));
        tc->e[i].p = *out;
        tc->e[i].used = true;
    }
    return r;
}

/* Makes the call object of a request that passed every check. */
static rpc_call_t *new_call(rpc_session_t *s, const request_t *rq, rpc_frame_t *f,
                            const rpc_method_t *m, const rpc_principal_t *p, bool keep_token,
                            uint64_t now_ms)
{
    rpc_call_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    if (keep_token && !(c->token = strdup(p->token))) {
        free(c);
        return NULL;
    }
    c->refs = 2;
    c->session = s;
    c->notify = rq->notify;
    c->msgid = rq->msgid;
    c->now = now_ms;
    c->deadline = now_ms + rq->timeout_ms;
    c->m = *m;
    c->frame = f;
    memcpy(c->sub, p->sub, sizeof(c->sub));
    c->role = p->role;
    c->address = rq->method->via.str.ptr;
    c->address_len = rq->method->via.str.size;
    c->named = rq->named;
    c->stream = rq->stream;
    if (rq->origin) memcpy(c->origin, rq->origin->via.str.ptr, rq->origin->via.str.size);
    if (m->changes) c->audit = s->reg->audit, c->audit_ctx = s->reg->audit_ctx;
    c->observe = s->reg->observe, c->observe_ctx = s->reg->observe_ctx;
    msgpack_sbuffer_init(&c->result);
    msgpack_packer_init(&c->pk, &c->result, msgpack_sbuffer_write);
    c->next = s->pending;
    if (s->pending) s->pending->prev = c;
    s->pending = c;
    s->n_pending++;
    return c;
}

/* Refuses a request, recording refusals of real methods in the audit log. */
static void refuse(rpc_session_t *s, const request_t *rq, const rpc_principal_t *p, int code,
                   const char *msg, const char *param, bool record, uint64_t now_ms)
{
    if (record) /* a real method (m) or a routed call (NULL) */
        observe(s->reg->observe, s->reg->observe_ctx, rq->m ? rq->m->name : NULL,
                rq->method->via.str.ptr, rq->method->via.str.size, code, now_ms);
    if (record && (code == RPC_ERR_UNAUTHENTICATED || code == RPC_ERR_PERMISSION_DENIED)) {
        char origin[RPC_NODE_NAME_MAX + 1] = "";
        if (rq->origin) memcpy(origin, rq->origin->via.str.ptr, rq->origin->via.str.size);
        audit(s->reg->audit, s->reg->audit_ctx, p->sub, origin, rq->method->via.str.ptr,
              rq->method->via.str.size, rq->named, code, now_ms);
    }
    reply_error(s, rq, code, msg, param);
}

/* Dispatches one decoded frame; takes ownership of f. */
static void handle_frame(rpc_session_t *s, rpc_frame_t *f, uint64_t now_ms, uint64_t wall_s)
{
    request_t rq;
    const char *msg = NULL, *param = NULL;
    char why[160];
    const msgpack_object *args[RPC_MAX_PARAMS];
    int code = parse_envelope(&f->unp.data, &rq, &msg, &param);
    if (code) {
        reply_error(s, &rq, code, msg, param);
        goto done;
    }
    rpc_resolved_t res = {NULL, RPC_ERR_METHOD_NOT_FOUND};
    if (rq.method->via.str.size <= RPC_MAX_METHOD_NAME)
        res = rpc_registry_resolve(s->reg, rq.method->via.str.ptr, rq.method->via.str.size);
    bool routed = !res.method && res.code == RPC_ERR_NOT_FOUND && s->reg->router;
    rq.m = res.method;
    /* who is calling: the call's own _token (forwarded calls), else the connection's */
    rpc_principal_t *p = &s->principal, own;
    if (rq.token) {
        if (verify_token(s, rq.token->via.str.ptr, rq.token->via.str.size, wall_s, &own, &msg) <
            0) {
            memset(&own, 0, sizeof(own));
            refuse(s, &rq, &own, RPC_ERR_UNAUTHENTICATED, msg, NULL, res.method || routed, now_ms);
            goto done;
        }
        p = &own;
    }
    /* node-to-node methods need no token over the peer channel: the handshake proved the key */
    rpc_method_t open_m;
    const rpc_method_t *checked = res.method;
    if (res.method && res.method->network && s->peer && !rq.token) {
        open_m = *res.method;
        open_m.role = RPC_ROLE_NONE;
        checked = &open_m;
    }
    code = check_access(s->auth, p, checked, s->reg->node_name, wall_s, &msg);
    if (!code && !res.method && p->role == RPC_ROLE_NONE)
        code = RPC_ERR_UNAUTHENTICATED, msg = "call rpc.auth with a token first";
    if (code) {
        refuse(s, &rq, p, code, msg, NULL, res.method || routed, now_ms);
        goto done;
    }
    if (routed) {
        static const rpc_method_t route = {.name = "route"};
        if (s->n_pending >= RPC_MAX_PENDING) {
            refuse(s, &rq, p, RPC_ERR_RESOURCE_EXHAUSTED, "too many calls in flight", NULL, true,
                   now_ms);
            goto done;
        }
        rpc_call_t *c = new_call(s, &rq, f, &route, p, true, now_ms);
        if (!c) {
            refuse(s, &rq, p, RPC_ERR_INTERNAL, "out of memory", NULL, true, now_ms);
            goto done;
        }
        s->reg->router(c, s->reg->router_ctx);
        return;
    }
    if (!res.method) {
        snprintf(why, sizeof(why),
                 res.code == RPC_ERR_NOT_FOUND ? "no such node" : "no such method");
        reply_error(s, &rq, res.code, why, NULL);
        goto done;
    }
    if ((code = rpc_schema_validate(res.method, rq.named, args, &param, why, sizeof(why)))) {
        char full[224];
        snprintf(full, sizeof(full), "invalid argument %s: %s", param, why);
        refuse(s, &rq, p, code, full, param, true, now_ms);
        goto done;
    }
    if (!res.method->handler) { /* rpc.auth */
        do_auth(s, &rq, args[0], wall_s);
        goto done;
    }
    if (s->n_pending >= RPC_MAX_PENDING) {
        refuse(s, &rq, p, RPC_ERR_RESOURCE_EXHAUSTED, "too many calls in flight", NULL, true,
               now_ms);
        goto done;
    }
    rpc_call_t *c = new_call(s, &rq, f, res.method, p, false, now_ms);
    if (!c) {
        refuse(s, &rq, p, RPC_ERR_INTERNAL, "out of memory", NULL, true, now_ms);
        goto done;
    }
    memcpy(c->args, args, sizeof(args));
    c->m.handler(c, c->m.ctx);
    return;
done:
    rpc_frame_free(f);
}

static const char *decode_reason(int r)
{
    switch (r) {
    case -EMSGSIZE:
        return "frame larger than the limit";
    case -ELOOP:
        return "msgpack nested too deep";
    case -E2BIG:
        return "too many msgpack objects in one frame";
    case -ENOMEM:
        return "out of memory";
    default:
        return "undecodable msgpack";
    }
}

int rpc_session_input(rpc_session_t *s, const uint8_t *buf, size_t len, uint64_t now_ms,
                      uint64_t wall_s)
{
    int r = 0;
    if (s->broken) return -EPROTO;
    while (len > 0 && r >= 0) {
        size_t room = RPC_MAX_FRAME - (s->dec.in.len - s->dec.off);
        size_t n = P2P_MIN(room, len);
        if (n == 0) {
            r = -EMSGSIZE;
            break;
        }
        if ((r = rpc_decoder_feed(&s->dec, buf, n)) < 0) break;
        buf += n, len -= n;
        rpc_frame_t *f;
        while (!s->broken && (r = rpc_decoder_next(&s->dec, &f)) == 1)
            handle_frame(s, f, now_ms, wall_s);
    }
    if (r >= 0) return 0;
    s->broken = true;
    respond(s, false, 0, RPC_ERR_PARSE, decode_reason(r), NULL, NULL, 0);
    return -EPROTO;
}
