/* registry.c: the one method table: registration, address resolution, parameter validation
 * against each method's schema, introspection, and the names of roles and error codes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc-internal.h"

const char *rpc_error_name(int code)
{
    switch (code) {
    case RPC_ERR_PARSE:
        return "PARSE_ERROR";
    case RPC_ERR_INVALID_REQUEST:
        return "INVALID_REQUEST";
    case RPC_ERR_METHOD_NOT_FOUND:
        return "METHOD_NOT_FOUND";
    case RPC_ERR_INVALID_PARAMS:
        return "INVALID_PARAMS";
    case RPC_ERR_INTERNAL:
        return "INTERNAL";
    case RPC_ERR_UNAUTHENTICATED:
        return "UNAUTHENTICATED";
    case RPC_ERR_PERMISSION_DENIED:
        return "PERMISSION_DENIED";
    case RPC_ERR_NOT_FOUND:
        return "NOT_FOUND";
    case RPC_ERR_TIMEOUT:
        return "TIMEOUT";
    case RPC_ERR_UNAVAILABLE:
        return "UNAVAILABLE";
    case RPC_ERR_RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
    case RPC_ERR_CONFLICT:
        return "CONFLICT";
    case RPC_ERR_FAILED_PRECONDITION:
        return "FAILED_PRECONDITION";
    default:
        return "UNKNOWN";
    }
}

static const char *const role_names[] = {"none", "viewer", "operator", "admin"};

const char *rpc_role_name(rpc_role_t role)
{
    return (unsigned)role < P2P_ARRAY_LEN(role_names) ? role_names[role] : "none";
}

int rpc_role_parse(const char *s)
{
    for (int i = RPC_ROLE_VIEWER; i <= RPC_ROLE_ADMIN; i++)
        if (s && strcmp(s, role_names[i]) == 0) return i;
    return -EINVAL;
}

static void ping_cb(rpc_call_t *call, void *ctx)
{
    rpc_pack_cstr(rpc_call_packer(call), "pong");
    rpc_call_reply(call);
}

static void methods_cb(rpc_call_t *call, void *ctx)
{
    rpc_registry_pack_methods(ctx, "local", rpc_call_packer(call));
    rpc_call_reply(call);
}

static const rpc_param_t auth_params[] = {
    {.name = "token",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = RPC_MAX_TOKEN,
     .description = "a JWT (HS256) minted with the network's auth secret"},
};

rpc_registry_t *rpc_registry_new(void)
{
    rpc_registry_t *reg = calloc(1, sizeof(*reg));
    if (!reg) return NULL;
    rpc_method_t ping = {.name = "rpc.ping",
                         .description = "Answers \"pong\"; needs no token.",
                         .role = RPC_ROLE_NONE,
                         .handler = ping_cb};
    /* rpc.auth is served by the session itself (it binds the connection); the entry gives it
     * a schema and a place in introspection. */
    rpc_method_t auth = {.name = "rpc.auth",
                         .description =
                             "Binds the token's principal (sub, role) to the connection.",
                         .role = RPC_ROLE_NONE,
                         .params = auth_params,
                         .n_params = P2P_ARRAY_LEN(auth_params)};
    rpc_method_t methods = {.name = "node.methods",
                            .description = "Lists the methods with their parameters, roles and "
                                           "descriptions; needs no token.",
                            .role = RPC_ROLE_NONE,
                            .handler = methods_cb,
                            .ctx = reg};
    if (rpc_registry_add_root(reg, &ping) < 0 || rpc_registry_add_root(reg, &auth) < 0 ||
        rpc_registry_add(reg, &methods) < 0) {
        free(reg);
        return NULL;
    }
    return reg;
}

void rpc_registry_free(rpc_registry_t *reg)
{
    if (reg) free(reg->tokens);
    free(reg);
}

static bool ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || s[0] < 'a' || s[0] > 'z') return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* "a.b" with both parts identifiers. */
static bool pair_ok(const char *name)
{
    const char *dot = name ? strchr(name, '.') : NULL;
    return dot && ident_ok(name, (size_t)(dot - name)) && ident_ok(dot + 1, strlen(dot + 1));
}

static int add(rpc_registry_t *reg, const rpc_method_t *m, bool root)
{
    if (!m || !pair_ok(m->name) || m->n_params > RPC_MAX_PARAMS || (m->n_params && !m->params) ||
        m->role > RPC_ROLE_ADMIN)
        return -EINVAL;
    for (size_t i = 0; i < m->n_params; i++) {
        const rpc_param_t *p = &m->params[i];
        if (!p->name || !ident_ok(p->name, strlen(p->name)) || p->types == 0 ||
            (p->types & ~(unsigned)RPC_T_ANY) || (p->range && p->min > p->max))
            return -EINVAL;
    }
    for (size_t i = 0; i < reg->n; i++)
        if (reg->root[i] == root && strcmp(reg->methods[i].name, m->name) == 0) return -EEXIST;
    if (reg->n >= RPC_MAX_METHODS) return -ENOSPC;
    reg->methods[reg->n] = *m;
    reg->root[reg->n] = root;
    reg->n++;
    return 0;
}

int rpc_registry_add(rpc_registry_t *reg, const rpc_method_t *m)
{
    if (!m || !m->handler) return -EINVAL;
    return add(reg, m, false);
}

int rpc_registry_add_root(rpc_registry_t *reg, const rpc_method_t *m)
{
    return add(reg, m, true);
}

int rpc_registry_set_node_name(rpc_registry_t *reg, const char *name)
{
    if (!name || strlen(name) > RPC_NODE_NAME_MAX) return -EINVAL;
    strcpy(reg->node_name, name);
    return 0;
}

static const rpc_method_t *find(const rpc_registry_t *reg, bool root, const char *name, size_t n)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->root[i] == root && strlen(reg->methods[i].name) == n &&
            memcmp(reg->methods[i].name, name, n) == 0)
            return &reg->methods[i];
    return NULL;
}

rpc_resolved_t rpc_registry_resolve(const rpc_registry_t *reg, const char *addr, size_t len)
{
    rpc_resolved_t r = {NULL, RPC_ERR_METHOD_NOT_FOUND};
    const char *dots[3];
    size_t nd = 0;
    for (size_t i = 0; i < len; i++) {
        if (addr[i] != '.') continue;
        if (nd == 3) return r;
        dots[nd++] = addr + i;
    }
    if (nd == 1) {
        r.method = find(reg, true, addr, len);
    } else if (nd == 3) {
        const char *node = dots[0] + 1;
        size_t node_len = (size_t)(dots[1] - node);
        size_t nn = strlen(reg->node_name);
        if ((size_t)(dots[0] - addr) != 6 || memcmp(addr, "system", 6) != 0) return r;
        bool self = (node_len == 5 && memcmp(node, "local", 5) == 0) ||
                    (nn && node_len == nn && memcmp(node, reg->node_name, nn) == 0);
        if (!self) {
            r.code = RPC_ERR_NOT_FOUND;
            return r;
        }
        const char *dm = dots[1] + 1;
        r.method = find(reg, false, dm, (size_t)(addr + len - dm));
    }
    r.code = r.method ? 0 : RPC_ERR_METHOD_NOT_FOUND;
    return r;
}

static unsigned type_of(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return RPC_T_STRING;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return RPC_T_INT;
    case MSGPACK_OBJECT_BOOLEAN:
        return RPC_T_BOOL;
    case MSGPACK_OBJECT_BIN:
        return RPC_T_BYTES;
    case MSGPACK_OBJECT_MAP:
        return RPC_T_MAP;
    case MSGPACK_OBJECT_ARRAY:
        return RPC_T_ARRAY;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return RPC_T_FLOAT;
    default:
        return 0; /* ext */
    }
}

static void types_str(unsigned t, char *out, size_t cap)
{
    static const char *const names[] = {"string", "int", "bool", "bytes", "map", "array", "float"};
    size_t n = 0;
    out[0] = 0;
    if (t == RPC_T_ANY) {
        snprintf(out, cap, "any");
        return;
    }
    for (size_t i = 0; i < P2P_ARRAY_LEN(names); i++)
        if (t & (1u << i))
            n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "%s%s", n ? "|" : "", names[i]);
}

/* Checks one value against its parameter. Returns 0 or writes why. */
static int check_value(const rpc_param_t *p, const msgpack_object *v, char *why, size_t cap)
{
    unsigned t = type_of(v);
    char ts[64];
    if (!(t & p->types)) {
        types_str(p->types, ts, sizeof(ts));
        snprintf(why, cap, "must be %s", ts);
        return -1;
    }
    if (t == RPC_T_STRING && !rpc_utf8_valid(v->via.str.ptr, v->via.str.size)) {
        snprintf(why, cap, "must be valid UTF-8 without NUL");
        return -1;
    }
    if (t == RPC_T_INT && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > INT64_MAX) {
        snprintf(why, cap, "integer too large");
        return -1;
    }
    if (!p->range || t == RPC_T_BOOL || t == RPC_T_FLOAT) return 0;
    int64_t x;
    const char *what = "length";
    switch (t) {
    case RPC_T_INT:
        x = v->via.i64, what = "value";
        break;
    case RPC_T_STRING:
        x = (int64_t)v->via.str.size;
        break;
    case RPC_T_BYTES:
        x = (int64_t)v->via.bin.size;
        break;
    case RPC_T_ARRAY:
        x = (int64_t)v->via.array.size;
        break;
    case RPC_T_MAP:
        x = (int64_t)v->via.map.size;
        break;
    default:
        return 0;
    }
    if (x < p->min || x > p->max) {
        snprintf(why, cap, "%s must be between %lld and %lld", what, (long long)p->min,
                 (long long)p->max);
        return -1;
    }
    return 0;
}

int rpc_schema_validate(const rpc_method_t *m, const msgpack_object *params,
                        const msgpack_object *args[RPC_MAX_PARAMS], const char **bad_param,
                        char *why, size_t why_cap)
{
    static char unknown_name[] = "?";
    for (size_t i = 0; i < RPC_MAX_PARAMS; i++)
        args[i] = NULL;
    *bad_param = NULL;
    uint32_t n = params ? params->via.map.size : 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &params->via.map.ptr[i].key;
        const msgpack_object *v = &params->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0) {
            *bad_param = unknown_name;
            snprintf(why, why_cap, "argument names must be non-empty strings");
            return RPC_ERR_INVALID_PARAMS;
        }
        if (k->via.str.ptr[0] == '_') continue;
        size_t j;
        for (j = 0; j < m->n_params; j++)
            if (rpc_str_eq(k, m->params[j].name)) break;
        if (j == m->n_params) {
            *bad_param = unknown_name;
            snprintf(why, why_cap, "unknown argument '%.*s'", (int)P2P_MIN(k->via.str.size, 64u),
                     k->via.str.ptr);
            return RPC_ERR_INVALID_PARAMS;
        }
        if (args[j]) {
            *bad_param = m->params[j].name;
            snprintf(why, why_cap, "given twice");
            return RPC_ERR_INVALID_PARAMS;
        }
        if (v->type == MSGPACK_OBJECT_NIL) continue; /* nil = absent */
        if (check_value(&m->params[j], v, why, why_cap) < 0) {
            *bad_param = m->params[j].name;
            return RPC_ERR_INVALID_PARAMS;
        }
        args[j] = v;
    }
    for (size_t j = 0; j < m->n_params; j++) {
        if (m->params[j].required && !args[j]) {
            *bad_param = m->params[j].name;
            snprintf(why, why_cap, "missing");
            return RPC_ERR_INVALID_PARAMS;
        }
    }
    return 0;
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    rpc_pack_cstr(pk, k);
    rpc_pack_cstr(pk, v ? v : "");
}

static void pack_param(msgpack_packer *pk, const rpc_param_t *p)
{
    char ts[64];
    bool has_range = p->range;
    msgpack_pack_map(pk, 4 + (p->has_default ? 1 : 0) + (has_range ? 2 : 0));
    pack_kv_str(pk, "name", p->name);
    types_str(p->types, ts, sizeof(ts));
    pack_kv_str(pk, "type", ts);
    rpc_pack_cstr(pk, "required");
    if (p->required)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_kv_str(pk, "description", p->description);
    if (p->has_default) {
        rpc_pack_cstr(pk, "default");
        if (p->types & RPC_T_INT)
            msgpack_pack_int64(pk, p->def_int);
        else if (p->types & RPC_T_STRING)
            rpc_pack_cstr(pk, p->def_str ? p->def_str : "");
        else if (p->types & RPC_T_BOOL)
            p->def_bool ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        else
            msgpack_pack_nil(pk);
    }
    if (has_range) {
        rpc_pack_cstr(pk, "min");
        msgpack_pack_int64(pk, p->min);
        rpc_pack_cstr(pk, "max");
        msgpack_pack_int64(pk, p->max);
    }
}

void rpc_registry_pack_methods(const rpc_registry_t *reg, const char *node_label,
                               msgpack_packer *pk)
{
    char full[RPC_MAX_METHOD_NAME + 1];
    msgpack_pack_array(pk, reg->n);
    for (size_t i = 0; i < reg->n; i++) {
        const rpc_method_t *m = &reg->methods[i];
        if (reg->root[i])
            snprintf(full, sizeof(full), "%s", m->name);
        else
            snprintf(full, sizeof(full), "system.%s.%s", node_label, m->name);
        msgpack_pack_map(pk, 4);
        pack_kv_str(pk, "name", full);
        pack_kv_str(pk, "description", m->description);
        pack_kv_str(pk, "role", rpc_role_name(m->role));
        rpc_pack_cstr(pk, "params");
        msgpack_pack_array(pk, m->n_params);
        for (size_t j = 0; j < m->n_params; j++)
            pack_param(pk, &m->params[j]);
    }
}

void rpc_registry_set_router(rpc_registry_t *reg, rpc_handler_fn router, void *ctx)
{
    reg->router = router;
    reg->router_ctx = ctx;
}

void rpc_registry_set_audit(rpc_registry_t *reg, rpc_audit_fn fn, void *ctx)
{
    reg->audit = fn;
    reg->audit_ctx = ctx;
}

void rpc_registry_set_observer(rpc_registry_t *reg, rpc_observe_fn fn, void *ctx)
{
    reg->observe = fn;
    reg->observe_ctx = ctx;
}
