/* json.c: msgpack <-> JSON conversion (the mapping is described in json.h). Both directions are
 * recursive and bounded by HTTP_JSON_MAX_DEPTH; base64 comes from libsodium. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http/json.h"

/* --- msgpack -> JSON ---------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when s does not start with one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, min = 0x10000;
    else
        return 0;
    if (len < n) return 0;
    unsigned cp = c & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

static bool utf8_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (!n) return false;
        i += n;
    }
    return true;
}

/* A copy of s[0..len) with U+FFFD for each byte that does not start a valid sequence. */
static char *utf8_sanitize(const char *s, size_t len, size_t *outlen)
{
    char *out = malloc(len * 3 + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq((const unsigned char *)s + i, len - i);
        if (n) {
            memcpy(out + o, s + i, n);
            o += n, i += n;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3, i++;
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static json_t *string_of(const char *s, size_t len)
{
    if (utf8_valid(s, len)) return json_stringn_nocheck(s, len);
    size_t n = 0;
    char *clean = utf8_sanitize(s, len, &n);
    if (!clean) return NULL;
    json_t *j = json_stringn_nocheck(clean, n);
    free(clean);
    return j;
}

static json_t *base64_of(const void *p, size_t len)
{
    if (sodium_init() < 0) return NULL;
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    if (!s) return NULL;
    sodium_bin2base64(s, cap, p, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_stringn_nocheck(s, cap - 1);
    free(s);
    return j;
}

/* Sets key k (any msgpack object) of obj to v (reference taken). */
static int set_member(json_t *obj, const msgpack_object *k, json_t *v, int depth);

static json_t *from_mp(const msgpack_object *o, int depth)
{
    json_t *j = NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) return json_null();
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return string_of(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return base64_of(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        return json_pack("{s:i,s:o}", "ext", (int)o->via.ext.type, "data",
                         base64_of(o->via.ext.ptr, o->via.ext.size));
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= HTTP_JSON_MAX_DEPTH) return NULL;
        j = json_array();
        for (uint32_t i = 0; j && i < o->via.array.size; i++) {
            json_t *v = from_mp(&o->via.array.ptr[i], depth + 1);
            if (!v || json_array_append_new(j, v) < 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    case MSGPACK_OBJECT_MAP:
        if (depth >= HTTP_JSON_MAX_DEPTH) return NULL;
        j = json_object();
        for (uint32_t i = 0; j && i < o->via.map.size; i++) {
            json_t *v = from_mp(&o->via.map.ptr[i].val, depth + 1);
            if (!v || set_member(j, &o->via.map.ptr[i].key, v, depth) < 0) {
                json_decref(j);
                return NULL;
            }
        }
        return j;
    }
    return NULL;
}

static int set_member(json_t *obj, const msgpack_object *k, json_t *v, int depth)
{
    if (k->type == MSGPACK_OBJECT_STR) {
        /* jansson drops v when it refuses the key: check the key first */
        if (utf8_valid(k->via.str.ptr, k->via.str.size))
            return json_object_setn_new_nocheck(obj, k->via.str.ptr, k->via.str.size, v);
        size_t n = 0;
        char *clean = utf8_sanitize(k->via.str.ptr, k->via.str.size, &n);
        int r = clean ? json_object_setn_new_nocheck(obj, clean, n, v) : (json_decref(v), -1);
        free(clean);
        return r;
    }
    /* a key that is not a string: its compact JSON text */
    json_t *kj = from_mp(k, depth + 1);
    char *text = kj ? json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(kj);
    int r = text ? json_object_set_new(obj, text, v) : (json_decref(v), -1);
    free(text);
    return r;
}

json_t *http_json_from_msgpack(const msgpack_object *o)
{
    return from_mp(o, 0);
}

/* --- JSON -> msgpack ---------------------------------------------------------------------- */

int http_json_depth(const json_t *j, int limit)
{
    int best = 0;
    size_t i;
    const char *k;
    json_t *v;
    if (!json_is_array(j) && !json_is_object(j)) return 0;
    if (limit <= 0) return 1; /* a container is already past a limit of 0 */
    if (json_is_array(j)) {
        json_array_foreach(j, i, v)
        {
            int d = http_json_depth(v, limit - 1);
            if (d > best) best = d;
            if (best > limit - 1) break;
        }
    } else {
        json_object_foreach((json_t *)j, k, v)
        {
            int d = http_json_depth(v, limit - 1);
            if (d > best) best = d;
            if (best > limit - 1) break;
        }
    }
    return best + 1;
}

static void pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static int pack_plain(const json_t *j, msgpack_packer *pk, int depth)
{
    size_t i, klen;
    const char *k;
    json_t *v;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        if (depth >= HTTP_JSON_MAX_DEPTH) return -EINVAL;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_keylen_foreach((json_t *)j, k, klen, v)
        {
            pack_strn(pk, k, klen);
            int r = pack_plain(v, pk, depth + 1);
            if (r < 0) return r;
        }
        return 0;
    case JSON_ARRAY:
        if (depth >= HTTP_JSON_MAX_DEPTH) return -EINVAL;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            int r = pack_plain(v, pk, depth + 1);
            if (r < 0) return r;
        }
        return 0;
    case JSON_STRING:
        pack_strn(pk, json_string_value(j), json_string_length(j));
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        return 0;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        return 0;
    }
    return -EINVAL;
}

/* Decodes standard base64 (padded or not, nothing else around it) and packs it as bin. */
static int pack_base64(const char *s, size_t n, msgpack_packer *pk)
{
    if (sodium_init() < 0) return -ENOMEM;
    size_t cap = n / 4 * 3 + 3, got = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) return -ENOMEM;
    const char *end = NULL;
    int variant = n > 0 && s[n - 1] == '=' ? sodium_base64_VARIANT_ORIGINAL
                                           : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    if (sodium_base642bin(buf, cap, s, n, NULL, &got, &end, variant) != 0 || end != s + n) {
        free(buf);
        return -EINVAL;
    }
    msgpack_pack_bin(pk, got);
    msgpack_pack_bin_body(pk, buf, got);
    free(buf);
    return 0;
}

static const rpc_param_t *schema_param(const rpc_method_t *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_params; i++)
        if (strlen(m->params[i].name) == len && memcmp(m->params[i].name, name, len) == 0)
            return &m->params[i];
    return NULL;
}

/* The base64 text of v when the schema wants it as bytes, else NULL. */
static const json_t *bytes_text(const json_t *v, const rpc_param_t *p)
{
    if (!p || !(p->types & RPC_T_BYTES)) return NULL;
    if (json_is_string(v) && !(p->types & RPC_T_STRING)) return v;
    if (json_is_object(v) && !(p->types & RPC_T_MAP) && json_object_size(v) == 1) {
        const json_t *b = json_object_get(v, "base64");
        if (json_is_string(b)) return b;
    }
    return NULL;
}

int http_json_pack_members(const json_t *obj, const rpc_method_t *m, msgpack_packer *pk,
                           const char **bad)
{
    size_t klen;
    const char *k;
    json_t *v;
    *bad = NULL;
    json_object_keylen_foreach((json_t *)obj, k, klen, v)
    {
        pack_strn(pk, k, klen);
        const rpc_param_t *p = m ? schema_param(m, k, klen) : NULL;
        const json_t *text = bytes_text(v, p);
        int r = text ? pack_base64(json_string_value(text), json_string_length(text), pk)
                     : pack_plain(v, pk, 1);
        if (r == -EINVAL && text) *bad = p->name;
        if (r < 0) return r;
    }
    return 0;
}

int http_json_to_params(const json_t *j, const rpc_method_t *m, msgpack_packer *pk,
                        const char **bad)
{
    *bad = NULL;
    if (!m || !json_is_object(j)) return pack_plain(j, pk, 0);
    msgpack_pack_map(pk, json_object_size(j));
    return http_json_pack_members(j, m, pk, bad);
}
