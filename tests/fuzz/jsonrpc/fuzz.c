/* fuzz.c: libFuzzer harness for JSON-RPC 2.0 decoding (src/http/jsonrpc.c, json.c): the body scan,
 * jansson's parse, envelope checks, params packed as msgpack-RPC params with a schema that wants
 * bytes, and the response objects. Input layout: byte 0 = flags (bit 0: lenient, as WebSocket
 * calls are; bit 1: the caller adds one pair, as the bridge adds `_token`; bit 2: no schema); the
 * rest is the request body. It aborts when an invariant breaks:
 *   - a decoded body has 1..HTTP_MAX_JSONRPC_BATCH requests, a refused one a code and a message;
 *   - a valid request packs into a frame [0, msgid, method, params] the RPC decoder accepts
 *     (depth and object count within its limits) unless the frame is past RPC_MAX_FRAME;
 *   - those params convert back to JSON;
 *   - every response object serialises, and the text parses again. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz.h"
#include "http/json.h"

static const rpc_param_t schema[] = {
    {.name = "path", .types = RPC_T_STRING},
    {.name = "data", .types = RPC_T_BYTES | RPC_T_STRING},
    {.name = "blob", .types = RPC_T_BYTES},
    {.name = "n", .types = RPC_T_INT},
    {.name = "opts", .types = RPC_T_MAP | RPC_T_BYTES},
};
static const rpc_method_t method = {
    .name = "test.fuzz", .params = schema, .n_params = sizeof(schema) / sizeof(schema[0])};

/* Serialises resp (taken), parses the text back, aborts when either fails. */
static void check_response(json_t *resp)
{
    if (!resp) return; /* no memory */
    char *text = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    if (!text) abort();
    json_t *back = json_loads(text, JSON_ALLOW_NUL, NULL);
    if (!back || !json_is_object(back) || !json_object_get(back, "id")) abort();
    json_decref(back);
    free(text);
}

/* Packs r as a frame and checks it as the RPC decoder and the JSON side see it. */
static void check_request(const http_jsonrpc_req_t *r, const rpc_method_t *m, size_t extra)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_str(&pk, r->method_len);
    msgpack_pack_str_body(&pk, r->method, r->method_len);
    const char *why = NULL, *param = NULL;
    int rc = http_jsonrpc_pack_params(r, m, extra, &pk, &why, &param);
    if (rc == 0) {
        for (size_t i = 0; i < extra; i++) {
            msgpack_pack_str_with_body(&pk, "_token", 6);
            msgpack_pack_str_with_body(&pk, "x", 1);
        }
        rpc_decoder_t d;
        rpc_frame_t *f = NULL;
        rpc_decoder_init(&d);
        int fr = rpc_decoder_feed(&d, (const uint8_t *)sb.data, sb.size);
        if (fr == 0) fr = rpc_decoder_next(&d, &f);
        if (sb.size <= RPC_MAX_FRAME && fr != 1) abort();
        if (f) {
            const msgpack_object *params = &f->unp.data.via.array.ptr[3];
            if (params->type != MSGPACK_OBJECT_ARRAY || params->via.array.size > 1) abort();
            json_t *back = http_json_from_msgpack(params);
            if (!back) abort();
            check_response(http_jsonrpc_from_msgpack(r->id, NULL, params));
            json_decref(back);
        }
        rpc_frame_free(f);
        rpc_decoder_free(&d);
    } else if (rc == -EINVAL && !why) {
        abort(); /* a refusal always says why */
    }
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) check_response(http_jsonrpc_error(r->id, RPC_ERR_INVALID_PARAMS, why, param));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    uint8_t flags = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    const rpc_method_t *m = flags & 4 ? NULL : &method;
    size_t extra = flags & 2 ? 1 : 0;
    http_jsonrpc_msg_t msg;
    int r = http_jsonrpc_parse(body, len, flags & 1 ? HTTP_JSONRPC_LENIENT : 0, &msg);
    if (r < 0) {
        if (msg.n != 0 || msg.code == 0 || msg.why[0] == '\0') abort();
        check_response(http_jsonrpc_error(NULL, msg.code, msg.why, NULL));
    } else {
        if (msg.n == 0 || msg.n > HTTP_MAX_JSONRPC_BATCH || (!msg.batch && msg.n != 1)) abort();
        for (size_t i = 0; i < msg.n; i++) {
            const http_jsonrpc_req_t *q = &msg.reqs[i];
            if (q->code) {
                if (!q->why) abort();
                check_response(http_jsonrpc_error(q->id, q->code, q->why, NULL));
            } else {
                if (!q->method || strlen(q->method) != q->method_len) abort();
                check_request(q, m, extra);
            }
        }
    }
    http_jsonrpc_msg_free(&msg);
    return 0;
}
