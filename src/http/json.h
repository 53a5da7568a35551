/* json.h: JSON (jansson) <-> msgpack conversion for the HTTP and WebSocket doors (json.c), and
 * JSON-RPC 2.0 envelope decoding (jsonrpc.c). Pure functions: no I/O, no node context.
 *
 * Mapping: nil <-> null, bool, int (int64/uint64), float <-> real, str <-> string, array, map with
 * string keys <-> object. msgpack bin -> a JSON string of standard base64; a JSON string becomes
 * bin only where the method's schema wants bytes (http_json_to_params). Map keys that are not
 * strings become their JSON text. ext -> {"ext": type, "data": base64}. */
#ifndef P2P_HTTP_JSON_H
#define P2P_HTTP_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "rpc/rpc.h"

#ifndef HTTP_JSON_MAX_DEPTH
#define HTTP_JSON_MAX_DEPTH 32 /* nesting accepted in a JSON request (RPC_MAX_DEPTH's twin) */
#endif

/* A new JSON value for o (reference owned by the caller), or NULL on no memory / depth past
 * HTTP_JSON_MAX_DEPTH. */
json_t *http_json_from_msgpack(const msgpack_object *o);

/* Packs j into pk. When m is not NULL and j is an object, it is the named-argument map of a call
 * to m: a string argument whose schema types include RPC_T_BYTES but not RPC_T_STRING is decoded
 * from base64 into bin. Returns 0, -EINVAL with *bad naming the argument (bad base64; *bad NULL
 * for other errors such as depth) or -ENOMEM. */
int http_json_to_params(const json_t *j, const rpc_method_t *m, msgpack_packer *pk,
                        const char **bad);

#endif
