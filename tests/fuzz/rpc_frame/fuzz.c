/* fuzz.c: libFuzzer harness for the local-socket frame path: the bounded decoder, the envelope
 * checks, authentication, address resolution, schema validation and dispatch of one RPC session,
 * without I/O. Input layout: byte 0 = flags (bit 0: authenticate first with a valid admin token;
 * bits 1-3: chunk size for delivery, 1 << n bytes); the rest is the byte stream a client sends.
 * Every reply the session writes must decode as one [1, msgid|nil, error, result] frame. Calls held
 * by the asynchronous test method are answered after the input, some after the session is gone. */
#include <stdlib.h>
#include <string.h>

#include "../fuzz.h"
#include "rpc/rpc-internal.h"

#define FUZZ_WALL 1800000000ull /* wall clock seconds given to the session */

static struct harness {
    rpc_registry_t *reg;
    rpc_auth_config_t auth;
    uint8_t secret[32];
    char *token;
    rpc_call_t *held[RPC_MAX_PENDING];
    int nheld;
    rpc_decoder_t out;
} h;

static int check_cb(void *ctx, const uint8_t *buf, size_t len)
{
    rpc_frame_t *f = NULL;
    rpc_decoder_init(&h.out);
    if (rpc_decoder_feed(&h.out, buf, len) < 0 || rpc_decoder_next(&h.out, &f) != 1) abort();
    const msgpack_object *o = &f->unp.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4 || h.out.in.len != 0) abort();
    rpc_frame_free(f);
    rpc_decoder_free(&h.out);
    return 0;
}

static void echo_cb(rpc_call_t *call, void *ctx)
{
    size_t n = 0;
    const char *s = rpc_call_str(call, "s", &n);
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 3);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "s", 1);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, s ? s : "", n);
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "n", 1);
    msgpack_pack_int64(pk, rpc_call_int(call, "n"));
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, "b", 1);
    rpc_call_bool(call, "b") ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    rpc_call_reply(call);
}

static void later_cb(rpc_call_t *call, void *ctx)
{
    if (h.nheld < RPC_MAX_PENDING)
        h.held[h.nheld++] = call;
    else
        rpc_call_error(call, RPC_ERR_INTERNAL, "full");
}

static const rpc_param_t echo_params[] = {
    {.name = "s",
     .types = RPC_T_STRING | RPC_T_BYTES,
     .required = true,
     .range = true,
     .min = 0,
     .max = 64},
    {.name = "n",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 3,
     .range = true,
     .min = -5,
     .max = 5},
    {.name = "b", .types = RPC_T_BOOL},
    {.name = "any", .types = RPC_T_ANY},
};

static void init(void)
{
    h.reg = rpc_registry_new();
    if (!h.reg) abort();
    rpc_method_t echo = {.name = "test.echo",
                         .role = RPC_ROLE_VIEWER,
                         .params = echo_params,
                         .n_params = P2P_ARRAY_LEN(echo_params),
                         .handler = echo_cb};
    rpc_method_t later = {.name = "test.later", .role = RPC_ROLE_NONE, .handler = later_cb};
    rpc_method_t adm = {.name = "test.admin",
                        .role = RPC_ROLE_ADMIN,
                        .handler = echo_cb,
                        .params = echo_params,
                        .n_params = 1};
    if (rpc_registry_add(h.reg, &echo) || rpc_registry_add(h.reg, &later) ||
        rpc_registry_add(h.reg, &adm) || rpc_registry_set_node_name(h.reg, "fuzz"))
        abort();
    memset(h.secret, 0x5a, sizeof(h.secret));
    h.auth = (rpc_auth_config_t){
        .secret = h.secret, .secret_len = sizeof(h.secret), .audience = "p2p-admin"};
    if (rpc_jwt_mint(h.secret, sizeof(h.secret), "admin", "fuzz", "p2p-admin", 3600, FUZZ_WALL,
                     &h.token) < 0)
        abort();
}

static void send_auth(rpc_session_t *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 0);
    rpc_pack_cstr(&pk, "rpc.auth");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    rpc_pack_cstr(&pk, "token");
    rpc_pack_cstr(&pk, h.token);
    if (rpc_session_input(s, (const uint8_t *)sb.data, sb.size, 0, FUZZ_WALL) < 0) abort();
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!h.reg) init();
    if (size == 0) return 0;
    uint8_t flags = data[0];
    data++, size--;
    rpc_session_t *s = rpc_session_new(h.reg, &h.auth, check_cb, NULL);
    if (!s) return 0;
    if (flags & 1) send_auth(s);
    size_t chunk = (size_t)1 << ((flags >> 1) & 7);
    uint64_t now = 0;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (rpc_session_input(s, data + off, n, now, FUZZ_WALL) < 0) break;
        now += 1000;
        rpc_session_periodic(s, now);
    }
    /* half the held calls are answered while the session lives, the rest after it is gone */
    int half = h.nheld / 2;
    for (int i = 0; i < half; i++)
        rpc_call_reply(h.held[i]);
    rpc_session_periodic(s, now + 3600 * 1000);
    rpc_session_free(s);
    for (int i = half; i < h.nheld; i++)
        rpc_call_error(h.held[i], RPC_ERR_UNAVAILABLE, "gone");
    h.nheld = 0;
    return 0;
}
