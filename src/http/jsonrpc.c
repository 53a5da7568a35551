/* jsonrpc.c: JSON-RPC 2.0 envelopes: a request body (one object or a batch) decoded into bounded
 * request structs, their params packed as msgpack-RPC params, and the response objects with the
 * CONTRACT error object. The body is pre-scanned for depth and value count before jansson builds
 * a tree, so a hostile body costs at most HTTP_JSON_MAX_VALUES nodes. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/json.h"

/* --- decoding --------------------------------------------------------------------------- */

/* Checks nesting and counts values without building anything. Every value or object key is the
 * body itself, the first one in its container, follows a comma or follows a colon (a member's
 * value), so 1 + opens + commas + colons bounds the count msgpack will have (keys are objects
 * there too); it is never short, only loose by one for an empty container. */
static int prescan(const char *s, size_t len)
{
    size_t depth = 0, values = 1;
    bool in_str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case '"':
            in_str = true;
            break;
        case '[':
        case '{':
            if (++depth > HTTP_JSON_MAX_DEPTH) return -ELOOP;
            values++;
            break;
        case ']':
        case '}':
            if (depth) depth--;
            break;
        case ',':
        case ':':
            values++;
            break;
        default:
            break;
        }
        if (values > HTTP_JSON_MAX_VALUES) return -E2BIG;
    }
    return 0;
}

static int fail(http_jsonrpc_msg_t *out, int err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(http_jsonrpc_msg_t *out, int err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->why, sizeof(out->why), fmt, ap);
    va_end(ap);
    out->code = code;
    return err;
}

static bool id_usable(const json_t *id)
{
    return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

/* Fills r from element e. */
static void decode_one(const json_t *e, unsigned flags, http_jsonrpc_req_t *r)
{
    memset(r, 0, sizeof(*r));
    r->code = RPC_ERR_INVALID_REQUEST;
    if (!json_is_object(e)) {
        r->why = "a request must be an object";
        return;
    }
    const json_t *id = json_object_get(e, "id");
    if (id && !id_usable(id)) {
        r->why = "id must be a string, a number or null";
        return;
    }
    r->id = id;
    const json_t *ver = json_object_get(e, "jsonrpc");
    if (!(ver == NULL && (flags & HTTP_JSONRPC_LENIENT)) &&
        !(json_is_string(ver) && strcmp(json_string_value(ver), "2.0") == 0 &&
          json_string_length(ver) == 3)) {
        r->why = "jsonrpc must be \"2.0\"";
        return;
    }
    const json_t *method = json_object_get(e, "method");
    if (!json_is_string(method)) {
        r->why = "method must be a string";
        return;
    }
    size_t mlen = json_string_length(method);
    if (mlen == 0 || mlen > RPC_MAX_METHOD_NAME || strlen(json_string_value(method)) != mlen) {
        r->why = "method must be 1 to 255 bytes without NUL";
        return;
    }
    const json_t *params = json_object_get(e, "params");
    if (params && !json_is_object(params) && !json_is_array(params)) {
        r->why = "params must be an object or an array";
        return;
    }
    /* [0, id, method, [params]]: two levels above the params */
    if (params && http_json_depth(params, HTTP_JSON_MAX_DEPTH - 2) > HTTP_JSON_MAX_DEPTH - 2) {
        r->why = "params nested too deep";
        return;
    }
    r->code = 0;
    r->why = NULL;
    r->notification = id == NULL;
    r->method = json_string_value(method);
    r->method_len = mlen;
    r->params = params;
}

int http_jsonrpc_parse(const char *body, size_t len, unsigned flags, http_jsonrpc_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    int r = prescan(body, len);
    if (r == -ELOOP)
        return fail(out, r, RPC_ERR_PARSE, "JSON nested deeper than %d levels",
                    HTTP_JSON_MAX_DEPTH);
    if (r == -E2BIG)
        return fail(out, r, RPC_ERR_PARSE, "more than %d JSON values", HTTP_JSON_MAX_VALUES);
    json_error_t err;
    out->doc =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!out->doc) {
        switch (json_error_code(&err)) {
        case json_error_out_of_memory:
            return fail(out, -ENOMEM, RPC_ERR_INTERNAL, "out of memory");
        case json_error_duplicate_key:
            return fail(out, -EINVAL, RPC_ERR_INVALID_REQUEST, "%s", err.text);
        default:
            return fail(out, -EBADMSG, RPC_ERR_PARSE, "bad JSON at line %d column %d: %s", err.line,
                        err.column, err.text);
        }
    }
    const json_t *d = out->doc;
    size_t n = 1;
    if (json_is_array(d)) {
        out->batch = true;
        n = json_array_size(d);
        if (n == 0) return fail(out, -EINVAL, RPC_ERR_INVALID_REQUEST, "empty batch");
        if (n > HTTP_MAX_JSONRPC_BATCH)
            return fail(out, -EMSGSIZE, RPC_ERR_RESOURCE_EXHAUSTED,
                        "batch of %zu requests; at most %d", n, HTTP_MAX_JSONRPC_BATCH);
    } else if (!json_is_object(d)) {
        return fail(out, -EINVAL, RPC_ERR_INVALID_REQUEST,
                    "a request must be an object or an array of them");
    }
    out->reqs = calloc(n, sizeof(*out->reqs));
    if (!out->reqs) return fail(out, -ENOMEM, RPC_ERR_INTERNAL, "out of memory");
    out->n = n;
    for (size_t i = 0; i < n; i++)
        decode_one(out->batch ? json_array_get(d, i) : d, flags, &out->reqs[i]);
    return 0;
}

void http_jsonrpc_msg_free(http_jsonrpc_msg_t *m)
{
    if (!m) return;
    json_decref(m->doc);
    free(m->reqs);
    memset(m, 0, sizeof(*m));
}

/* --- params ------------------------------------------------------------------------------ */

static int pack_map(const json_t *obj, const rpc_method_t *m, size_t extra, msgpack_packer *pk,
                    const char **why, const char **param)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, json_object_size(obj) + extra);
    int rc = http_json_pack_members(obj, m, pk, param);
    if (rc == -EINVAL) *why = *param ? "bad base64" : "params nested too deep";
    return rc;
}

int http_jsonrpc_pack_params(const http_jsonrpc_req_t *r, const rpc_method_t *m, size_t extra,
                             msgpack_packer *pk, const char **why, const char **param)
{
    *why = NULL;
    *param = NULL;
    const json_t *p = r->params;
    /* [] and [object] are the msgpack-RPC forms themselves */
    if (json_is_array(p) && json_array_size(p) == 0) p = NULL;
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_object(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    if (!p) {
        msgpack_pack_array(pk, extra ? 1 : 0);
        if (extra) msgpack_pack_map(pk, extra);
        return 0;
    }
    if (json_is_object(p)) return pack_map(p, m, extra, pk, why, param);
    /* positional: the values take the schema's names in order */
    size_t n = json_array_size(p);
    if (!m) {
        *why = "positional params need a method with a known schema; use an object";
        return -EINVAL;
    }
    if (n > m->n_params) {
        *why = "more positional params than the method has";
        return -EINVAL;
    }
    json_t *named = json_object();
    if (!named) return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (json_object_set(named, m->params[i].name, json_array_get(p, i)) < 0) {
            json_decref(named);
            return -ENOMEM;
        }
    int rc = pack_map(named, m, extra, pk, why, param);
    json_decref(named);
    return rc;
}

/* --- responses ----------------------------------------------------------------------------- */

static json_t *envelope(const json_t *id, const char *key, json_t *value)
{
    json_t *idc = id ? json_deep_copy(id) : json_null();
    if (!value || !idc) {
        json_decref(value);
        json_decref(idc);
        return NULL;
    }
    return json_pack("{s:s,s:o,s:o}", "jsonrpc", "2.0", key, value, "id", idc);
}

json_t *http_jsonrpc_result(const json_t *id, json_t *result)
{
    return envelope(id, "result", result ? result : json_null());
}

json_t *http_jsonrpc_error(const json_t *id, int code, const char *message, const char *param)
{
    json_t *e =
        json_pack("{s:i,s:s}", "code", code, "message", message ? message : rpc_error_name(code));
    if (e && param && json_object_set_new(e, "data", json_pack("{s:s}", "param", param)) < 0) {
        json_decref(e);
        e = NULL;
    }
    return envelope(id, "error", e);
}

/* The map value of key, or NULL. */
static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

json_t *http_jsonrpc_from_msgpack(const json_t *id, const msgpack_object *error,
                                  const msgpack_object *result)
{
    if (!error || error->type == MSGPACK_OBJECT_NIL) {
        json_t *res = result ? http_json_from_msgpack(result) : json_null();
        if (!res)
            return http_jsonrpc_error(id, RPC_ERR_INTERNAL, "result cannot be converted", NULL);
        return http_jsonrpc_result(id, res);
    }
    const msgpack_object *code = error->type == MSGPACK_OBJECT_MAP ? map_get(error, "code") : NULL;
    const msgpack_object *msg = code ? map_get(error, "message") : NULL;
    const msgpack_object *data = code ? map_get(error, "data") : NULL;
    bool ok = code && msg && msg->type == MSGPACK_OBJECT_STR &&
              ((code->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && code->via.i64 >= INT32_MIN) ||
               (code->type == MSGPACK_OBJECT_POSITIVE_INTEGER && code->via.u64 <= INT32_MAX));
    if (!ok) return http_jsonrpc_error(id, RPC_ERR_INTERNAL, "malformed error object", NULL);
    json_t *e = json_object();
    json_t *m = http_json_from_msgpack(msg);
    if (!e || !m || json_object_set_new(e, "code", json_integer((json_int_t)code->via.i64)) < 0 ||
        json_object_set_new(e, "message", m) < 0) {
        if (!e) json_decref(m);
        json_decref(e);
        return NULL;
    }
    if (data && data->type != MSGPACK_OBJECT_NIL) {
        json_t *dj = http_json_from_msgpack(data); /* dropped when too deep to convert */
        if (dj && json_object_set_new(e, "data", dj) < 0) {
            json_decref(e);
            return NULL;
        }
    }
    return envelope(id, "error", e);
}
