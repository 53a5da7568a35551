/* convert.c: JSON <-> msgpack conversion and the text output of p2p-rpc. Depth is bounded by the
 * RPC nesting limit on both sides. */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cli/convert.h"
#include "rpc/rpc.h"

static void pack_json(const json_t *j, msgpack_packer *pk, int depth)
{
    if (depth > RPC_MAX_DEPTH) {
        msgpack_pack_nil(pk);
        return;
    }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v)
        {
            msgpack_pack_str(pk, strlen(k));
            msgpack_pack_str_body(pk, k, strlen(k));
            pack_json(v, pk, depth + 1);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack_json(v, pk, depth + 1);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    default:
        msgpack_pack_nil(pk);
        break;
    }
}

void cli_json_to_msgpack(const json_t *j, msgpack_packer *pk)
{
    pack_json(j, pk, 0);
}

static json_t *b64(const char *p, size_t n)
{
    size_t cap = (n + 2) / 3 * 4 + 1;
    char *s = malloc(cap);
    if (!s || p2p_b64_encode(s, cap, (const uint8_t *)p, n) < 0) {
        free(s);
        return json_null();
    }
    json_t *j = json_string(s);
    free(s);
    return j ? j : json_null();
}

static json_t *to_json(const msgpack_object *o, int depth)
{
    json_t *j = NULL;
    if (depth > RPC_MAX_DEPTH) return json_null();
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        j = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        j = o->via.u64 > INT64_MAX ? json_real((double)o->via.u64)
                                   : json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        j = json_integer(o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        j = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        j = json_stringn(o->via.str.ptr, o->via.str.size);
        if (!j) j = b64(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        j = b64(o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        j = json_array();
        for (uint32_t i = 0; j && i < o->via.array.size; i++)
            json_array_append_new(j, to_json(&o->via.array.ptr[i], depth + 1));
        break;
    case MSGPACK_OBJECT_MAP:
        j = json_object();
        for (uint32_t i = 0; j && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            json_t *v = to_json(&o->via.map.ptr[i].val, depth + 1);
            if (k->type == MSGPACK_OBJECT_STR) {
                char *ks = strndup(k->via.str.ptr, k->via.str.size);
                if (ks)
                    json_object_set_new(j, ks, v);
                else
                    json_decref(v);
                free(ks);
            } else {
                json_t *kj = to_json(k, depth + 1);
                char *ks = json_dumps(kj, JSON_ENCODE_ANY | JSON_COMPACT);
                if (ks)
                    json_object_set_new(j, ks, v);
                else
                    json_decref(v);
                free(ks);
                json_decref(kj);
            }
        }
        break;
    default:
        break;
    }
    return j ? j : json_null();
}

json_t *cli_msgpack_to_json(const msgpack_object *o)
{
    return to_json(o, 0);
}

/* A scalar string raw, anything else compact JSON. */
static void print_value(FILE *f, const json_t *v)
{
    if (json_is_string(v)) {
        fputs(json_string_value(v), f);
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    fputs(s ? s : "?", f);
    free(s);
}

static void print_map(FILE *f, const json_t *j)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        fprintf(f, "%s: ", k);
        print_value(f, v);
        fputc('\n', f);
    }
}

void cli_print_text(FILE *f, const json_t *j)
{
    if (json_is_object(j)) {
        print_map(f, j);
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (json_is_object(v)) {
                if (i) fputc('\n', f);
                print_map(f, v);
            } else {
                print_value(f, v);
                fputc('\n', f);
            }
        }
    } else {
        print_value(f, j);
        fputc('\n', f);
    }
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

void cli_print_methods(FILE *f, const json_t *j)
{
    size_t i, n;
    json_t *m, *p;
    if (!json_is_array(j)) {
        cli_print_text(f, j);
        return;
    }
    json_array_foreach(j, i, m)
    {
        fprintf(f, "%-32s %-8s %s\n", str_of(m, "name"), str_of(m, "role"),
                str_of(m, "description"));
        json_array_foreach(json_object_get(m, "params"), n, p)
        {
            fprintf(f, "    %s: %s", str_of(p, "name"), str_of(p, "type"));
            if (json_is_true(json_object_get(p, "required"))) fputs(" (required)", f);
            json_t *d = json_object_get(p, "default");
            if (d) {
                fputs(" default=", f);
                print_value(f, d);
            }
            json_t *lo = json_object_get(p, "min"), *hi = json_object_get(p, "max");
            if (json_is_integer(lo) && json_is_integer(hi))
                fprintf(f, " [%" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT "]",
                        json_integer_value(lo), json_integer_value(hi));
            if (*str_of(p, "description")) fprintf(f, "  %s", str_of(p, "description"));
            fputc('\n', f);
        }
    }
}
