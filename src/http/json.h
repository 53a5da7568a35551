/* json.h: JSON (jansson) <-> msgpack conversion for the HTTP and WebSocket doors (json.c), and
 * JSON-RPC 2.0 envelope decoding (jsonrpc.c). Pure functions: no I/O, no node context.
 *
 * Mapping: nil <-> null, bool, int (int64/uint64), float <-> real, str <-> string, array, map with
 * string keys <-> object. msgpack bin -> a JSON string of standard base64; a JSON string becomes
 * bin only where the method's schema wants bytes (http_json_to_params). Map keys that are not
 * strings become their JSON text. ext -> {"ext": type, "data": base64}.
 *
 * Edges of the mapping: a uint64 above INT64_MAX becomes a JSON real (JSON integers are int64 on
 * both sides); NaN and the infinities become null (JSON has no such numbers); a str that is not
 * valid UTF-8 becomes a string with U+FFFD in place of each invalid byte; of duplicate map keys
 * the last one wins. JSON numbers outside int64 and double are refused by the parser. */
#ifndef P2P_HTTP_JSON_H
#define P2P_HTTP_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "http/http-limits.h"
#include "rpc/rpc.h"

/* A new JSON value for o (reference owned by the caller), or NULL on no memory / depth past
 * HTTP_JSON_MAX_DEPTH. */
json_t *http_json_from_msgpack(const msgpack_object *o);

/* Packs j into pk. When m is not NULL and j is an object, it is the named-argument map of a call
 * to m: a string argument whose schema types include RPC_T_BYTES but not RPC_T_STRING is decoded
 * from base64 into bin. For any argument whose types include RPC_T_BYTES but not RPC_T_MAP, an
 * object of exactly one member {"base64": STRING} is decoded into bin too (so bytes reach a
 * parameter that takes bytes or a string, like file.write's data). Base64 is standard, padded or
 * not. Returns 0, -EINVAL with *bad naming the argument (bad base64; *bad NULL for other errors
 * such as depth) or -ENOMEM. On error pk holds a partial object: discard what it wrote. */
int http_json_to_params(const json_t *j, const rpc_method_t *m, msgpack_packer *pk,
                        const char **bad);

/* Packs the members of object obj as http_json_to_params() does, without the map header (the
 * caller packs one counting json_object_size(obj) pairs, plus any it adds). Same returns. */
int http_json_pack_members(const json_t *obj, const rpc_method_t *m, msgpack_packer *pk,
                           const char **bad);

/* The depth of j: 0 for a scalar, 1 + the deepest member for an array or object. Stops looking
 * once past limit: any result above limit means "too deep". */
int http_json_depth(const json_t *j, int limit);

/* --- JSON-RPC 2.0 envelopes (jsonrpc.c) ------------------------------------------------------- */

/* Flags of http_jsonrpc_parse. */
enum {
    HTTP_JSONRPC_LENIENT = 1u << 0, /* "jsonrpc" may be absent (WebSocket calls {"id","method"}) */
};

/* One element of a request body. Pointers go into the message's doc (valid until it is freed). */
typedef struct http_jsonrpc_req {
    int code;           /* 0: a valid request; else the error to answer (RPC_ERR_INVALID_REQUEST) */
    const char *why;    /* static message when code != 0 */
    bool notification;  /* a valid request without "id": nothing is answered */
    const json_t *id;   /* the id (string, integer, real or null), NULL when absent or unusable:
                           the answer then carries null */
    const char *method; /* NUL-terminated, 1..RPC_MAX_METHOD_NAME bytes without NUL */
    size_t method_len;
    const json_t *params; /* object or array, NULL when absent; nested at most
                             HTTP_JSON_MAX_DEPTH - 2 deep, so [0, id, method, [params]] fits
                             RPC_MAX_DEPTH */
} http_jsonrpc_req_t;

/* A decoded body: one request, or a batch of 1..HTTP_MAX_JSONRPC_BATCH. */
typedef struct http_jsonrpc_msg {
    json_t *doc;              /* the parsed body (owned) */
    bool batch;               /* the body was an array: answer an array, notifications left out,
                                 and nothing at all when every request was a notification */
    size_t n;                 /* requests in reqs */
    http_jsonrpc_req_t *reqs; /* n entries (owned) */
    int code;                 /* when parsing failed: the one error to answer, with id null */
    char why[200];            /* its message */
} http_jsonrpc_msg_t;

/* Decodes a request body of len bytes (need not be NUL-terminated) into *out, which the caller
 * frees with http_jsonrpc_msg_free() whatever the result. Returns 0 with out->n >= 1 (elements
 * that are not valid requests carry their own code), or a negative errno with out->code and
 * out->why set for the single error answer: -EBADMSG bad JSON (PARSE_ERROR), -ELOOP nested deeper
 * than HTTP_JSON_MAX_DEPTH or -E2BIG more than HTTP_JSON_MAX_VALUES values (PARSE_ERROR, refused
 * before a tree is built), -EINVAL not an object or a non-empty array, or a duplicate key
 * (INVALID_REQUEST), -EMSGSIZE a batch past HTTP_MAX_JSONRPC_BATCH (RESOURCE_EXHAUSTED), -ENOMEM
 * (INTERNAL). */
int http_jsonrpc_parse(const char *body, size_t len, unsigned flags, http_jsonrpc_msg_t *out);

/* Frees what http_jsonrpc_parse() filled and zeroes *m. NULL ok. */
void http_jsonrpc_msg_free(http_jsonrpc_msg_t *m);

/* Packs the msgpack-RPC params array of valid request r into pk: [] or [{named arguments}],
 * converted by http_json_to_params() with m's schema (m may be NULL: no bytes decoding). JSON
 * params may be an object, [] or [object] (the msgpack convention), or positional values that
 * take m's parameter names in schema order. With extra > 0 the map is always present and
 * declares that many more pairs, which the caller packs right after (reserved `_token`...).
 * Returns 0, or -EINVAL with *why (static) and *param (the argument, or NULL) set: bad base64,
 * positional values without a schema or more of them than it has. -ENOMEM. On error discard what
 * pk received. Depth and object count fit RPC_MAX_DEPTH and RPC_MAX_OBJECTS; the size may not
 * (a body may be bigger than RPC_MAX_FRAME): the caller checks it. */
int http_jsonrpc_pack_params(const http_jsonrpc_req_t *r, const rpc_method_t *m, size_t extra,
                             msgpack_packer *pk, const char **why, const char **param);

/* A response {"jsonrpc":"2.0","result":result,"id":id} (id copied; NULL means null). Takes the
 * reference to result (NULL means null). Returns a new object or NULL on no memory. */
json_t *http_jsonrpc_result(const json_t *id, json_t *result);

/* A response {"jsonrpc":"2.0","error":{"code","message"[,"data":{"param":param}]},"id":id} with
 * the CONTRACT error object. message NULL means the code's contract name. NULL on no memory. */
json_t *http_jsonrpc_error(const json_t *id, int code, const char *message, const char *param);

/* The JSON-RPC response for a msgpack-RPC answer: error (a map {code, message, data}) when it is
 * not NULL and not nil, else result. A malformed error object becomes INTERNAL; a result that
 * cannot be converted (depth) INTERNAL too. NULL on no memory. */
json_t *http_jsonrpc_from_msgpack(const json_t *id, const msgpack_object *error,
                                  const msgpack_object *result);

#endif
