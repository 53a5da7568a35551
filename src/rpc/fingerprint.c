/* fingerprint.c: the audit log's fingerprint of a call's named arguments (params_hash). */
#include <sodium.h>
#include <string.h>

#include "rpc/rpc-internal.h"

/* (Contract in rpc-internal.h.) BLAKE2b-128 of the named arguments without the reserved `_` ones. A
 * top-level string or binary longer than RPC_AUDIT_HASH_SPAN counts as [length, its first and last
 * SPAN/2 bytes]: a fingerprint to correlate calls, which must not cost a pass over every file chunk
 * written. */
void rpc_params_fingerprint(const msgpack_object *named, uint8_t out[16])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (uint32_t i = 0; named && i < named->via.map.size; i++) {
        const msgpack_object_kv *kv = &named->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size > 0 &&
            kv->key.via.str.ptr[0] == '_')
            continue;
        msgpack_pack_object(&pk, kv->key);
        const msgpack_object *v = &kv->val;
        uint32_t n = v->type == MSGPACK_OBJECT_STR   ? v->via.str.size
                     : v->type == MSGPACK_OBJECT_BIN ? v->via.bin.size
                                                     : 0;
        if (n > RPC_AUDIT_HASH_SPAN) {
            const char *b = v->type == MSGPACK_OBJECT_STR ? v->via.str.ptr : v->via.bin.ptr;
            msgpack_pack_array(&pk, 3);
            msgpack_pack_uint32(&pk, n);
            msgpack_pack_bin_with_body(&pk, b, RPC_AUDIT_HASH_SPAN / 2);
            msgpack_pack_bin_with_body(&pk, b + n - RPC_AUDIT_HASH_SPAN / 2,
                                       RPC_AUDIT_HASH_SPAN / 2);
        } else {
            msgpack_pack_object(&pk, *v);
        }
    }
    crypto_generichash_update(&st, (const uint8_t *)(sb.data ? sb.data : ""), sb.size);
    crypto_generichash_final(&st, out, 16);
    msgpack_sbuffer_destroy(&sb);
}
