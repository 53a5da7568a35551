/* bridge.c: JSON-RPC 2.0 (POST /api/rpc, and the WebSocket's calls) into the one dispatch path.
 * Each payload gets its own rpc session (session.c, the code behind the local socket and the peer
 * channel) on the node's registry: every request of it becomes a msgpack-RPC request frame
 * [0, index, method, [{params..., "_token": bearer}]] (a notification [2, method, params]) fed to
 * the session, and the reply frames the session writes back are decoded and turned into JSON-RPC
 * responses. Authentication, role and ACL checks, schema validation, `_timeout` deadlines,
 * forwarding to other nodes (the registry's router), audit and metrics are therefore exactly
 * those of the socket. At most RPC_MAX_PENDING calls of a batch run at once; the rest are fed as
 * answers come back. The done callback always runs from the loop (a zero timer), never from
 * inside http_bridge_run or a session's call chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "base/base.h"
#include "http/api.h"
#include "http/json.h"
#include "rpc/rpc-internal.h"

/* One request of the payload. */
typedef struct slot {
    size_t off, len; /* its request frame in q->frames; len 0: nothing to send */
    bool answer;     /* a response element is expected (not a notification) */
    bool sent;       /* fed to the session (counted in q->awaiting until answered) */
    bool done;       /* its response is in text (or it needs none) */
    int code;        /* 0 or the error code answered */
    char *text;      /* the response object as JSON text (malloc'd), NULL when none */
    size_t text_len;
} slot_t;

struct http_bridge_req {
    http_api_t *api;
    node_t *node;
    rpc_auth_config_t auth; /* points into node; the session borrows it */
    rpc_session_t *sess;
    rpc_decoder_t dec; /* reply frames written by the session */
    uv_timer_t timer;  /* deadlines, feeding the rest of a batch, and the deferred done */
    http_bridge_req_t *prev, *next; /* api->bridge_reqs */
    http_jsonrpc_msg_t msg;         /* the decoded payload (ids point into it) */
    int body_rc;                    /* http_jsonrpc_parse's result */
    slot_t *slots;
    size_t n, fed, awaiting; /* requests; fed to the session; answers still expected */
    msgpack_sbuffer frames;  /* every request frame, built at once */
    size_t out_bytes;        /* JSON bytes of the responses so far */
    bool in_input;           /* inside rpc_session_input */
    bool finished, closing;
    int *status; /* the HTTP status is written here before done (http_bridge_rpc), or NULL */
    http_bridge_done_fn done;
    void *arg;
};

/* --- responses ------------------------------------------------------------------------------ */

static const char oom_text[] =
    "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":\"out of memory\"},\"id\":null}";

/* Stores the response j (reference taken) of slot i, within HTTP_MAX_RPC_RESPONSE in all. */
static void slot_set(http_bridge_req_t *q, size_t i, json_t *j, int code)
{
    slot_t *s = &q->slots[i];
    if (s->done) {
        json_decref(j);
        return;
    }
    s->done = true;
    s->code = code;
    if (s->sent && s->answer) q->awaiting--;
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    size_t len = text ? strlen(text) : 0;
    if (text && q->out_bytes + len > HTTP_MAX_RPC_RESPONSE) {
        free(text);
        s->code = RPC_ERR_RESOURCE_EXHAUSTED;
        j = http_jsonrpc_error(q->msg.reqs[i].id, s->code,
                               "response past the size limit (HTTP_MAX_RPC_RESPONSE)", NULL);
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        len = text ? strlen(text) : 0;
    }
    if (!text) {
        s->code = RPC_ERR_INTERNAL;
        text = strdup(oom_text);
        len = text ? sizeof(oom_text) - 1 : 0;
    }
    s->text = text;
    s->text_len = len;
    q->out_bytes += len;
}

/* Answers slot i with an error (nothing for a notification). */
static void slot_error(http_bridge_req_t *q, size_t i, int code, const char *msg, const char *param)
{
    slot_t *s = &q->slots[i];
    if (!s->answer) {
        s->done = true;
        return;
    }
    slot_set(q, i, http_jsonrpc_error(q->msg.reqs[i].id, code, msg, param), code);
}

/* The code of a msgpack error object (INTERNAL when malformed). */
static int error_code(const msgpack_object *err)
{
    for (uint32_t i = 0; err->type == MSGPACK_OBJECT_MAP && i < err->via.map.size; i++) {
        const msgpack_object_kv *kv = &err->via.map.ptr[i];
        if (rpc_str_eq(&kv->key, "code") && kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER &&
            kv->val.via.i64 >= INT32_MIN)
            return (int)kv->val.via.i64;
    }
    return RPC_ERR_INTERNAL;
}

/* Every request not answered yet gets code (the session is gone, or broke). */
static void fail_rest(http_bridge_req_t *q, int code, const char *msg)
{
    for (size_t i = 0; i < q->n; i++)
        if (!q->slots[i].done) slot_error(q, i, code, msg, NULL);
    q->fed = q->n;
    q->awaiting = 0;
}

/* One reply frame of the session: [1, msgid, error, result]; notifications (streamed partial
 * output) are dropped: the HTTP answer is the final result. */
static void take_frame(http_bridge_req_t *q, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 4) return;
    const msgpack_object *a = o->via.array.ptr;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[0].via.u64 != 1) return;
    if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) { /* no id: the session saw a bad frame */
        fail_rest(q, RPC_ERR_INTERNAL, "the RPC session refused the request stream");
        return;
    }
    if (a[1].via.u64 >= q->n) return;
    size_t i = (size_t)a[1].via.u64;
    const slot_t *s = &q->slots[i];
    if (s->done || !s->answer) return;
    bool err = a[2].type != MSGPACK_OBJECT_NIL;
    json_t *j = http_jsonrpc_from_msgpack(q->msg.reqs[i].id, &a[2], &a[3]);
    int code = err ? error_code(&a[2]) : 0;
    if (j && !err && json_object_get(j, "error")) /* a result JSON cannot hold */
        code = RPC_ERR_INTERNAL;
    slot_set(q, i, j, code);
}

/* The msgid of the reply frame at the start of buf ([1, msgid, ...]), or -1. */
static long peek_msgid(const uint8_t *b, size_t len)
{
    if (len < 3 || b[0] != 0x94 || b[1] != 0x01) return -1;
    if (b[2] < 0x80) return b[2];
    if (b[2] == 0xcc && len >= 4) return b[3];
    if (b[2] == 0xcd && len >= 5) return (long)b[3] << 8 | b[4];
    if (b[2] == 0xce && len >= 7)
        return (long)((uint32_t)b[3] << 24 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 8 | b[6]);
    return -1;
}

/* A reply the decoder refuses (past RPC_MAX_FRAME, too deep, too many objects): that call gets
 * RESOURCE_EXHAUSTED, and decoding starts afresh with the next reply (the session writes each
 * reply whole, in one or two consecutive writes). */
static void reply_refused(http_bridge_req_t *q)
{
    rpc_decoder_t *d = &q->dec;
    long id = peek_msgid(d->in.data + d->off, d->in.len - d->off);
    if (id >= 0 && (size_t)id < q->n)
        slot_error(q, (size_t)id, RPC_ERR_RESOURCE_EXHAUSTED,
                   "reply past the RPC frame limit (RPC_MAX_FRAME)", NULL);
    else
        fail_rest(q, RPC_ERR_INTERNAL, "undecodable reply");
    rpc_decoder_free(d);
    rpc_decoder_init(d);
}

static void timer_cb(uv_timer_t *t);

/* The session's output. */
static int sess_write(void *ctx, const uint8_t *buf, size_t len)
{
    http_bridge_req_t *q = ctx;
    if (q->finished || q->closing) return -EPIPE;
    int r = rpc_decoder_feed(&q->dec, buf, len);
    rpc_frame_t *f = NULL;
    while (r == 0 && (r = rpc_decoder_next(&q->dec, &f)) == 1) {
        take_frame(q, &f->unp.data);
        rpc_frame_free(f);
        r = 0;
    }
    if (r < 0) reply_refused(q);
    /* an answer given later, by a handler: the loop feeds the rest or finishes */
    if (!q->in_input) uv_timer_start(&q->timer, timer_cb, 0, 0);
    return 0;
}

/* --- requests --------------------------------------------------------------------------------- */

/* The schema that maps the call's JSON params: the local method, or for another node's address
 * (system.OTHER.DOMAIN.METHOD) this node's method of the same name, as every node runs the same
 * catalogue. NULL when unknown (params then map without a schema: no base64 decoding). */
static const rpc_method_t *schema_for(const rpc_registry_t *reg, const char *addr, size_t len)
{
    rpc_resolved_t r = rpc_registry_resolve(reg, addr, len);
    if (r.method || r.code != RPC_ERR_NOT_FOUND) return r.method;
    const char *dm = memchr(addr + 7, '.', len - 7); /* addr is system.NODE.DOMAIN.METHOD */
    if (!dm) return NULL;
    char local[RPC_MAX_METHOD_NAME + 16];
    int n = snprintf(local, sizeof(local), "system.local%.*s", (int)(addr + len - dm), dm);
    return rpc_registry_resolve(reg, local, (size_t)n).method;
}

/* The named-argument object of the params (an object, or [object]), NULL when positional or none.
 */
static json_t *named_params(const http_jsonrpc_req_t *r)
{
    const json_t *p = r->params;
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_object(json_array_get(p, 0)))
        p = json_array_get(p, 0);
    return json_is_object(p) ? (json_t *)p : NULL;
}

/* Builds the request frame of slot i into q->frames. Returns 0, or an error code with *msg and
 * *param for the slot's error answer. */
static int build_frame(http_bridge_req_t *q, size_t i, const char *token, size_t token_len,
                       const char **msg, const char **param)
{
    http_jsonrpc_req_t *r = &q->msg.reqs[i];
    json_t *named = named_params(r);
    *param = NULL;
    if (json_object_get(named, "_token")) {
        *msg = "the token goes in the Authorization header, not in params";
        *param = "_token";
        return RPC_ERR_INVALID_PARAMS;
    }
    if (json_object_get(named, "_origin")) {
        *msg = "_origin is for calls between nodes";
        *param = "_origin";
        return RPC_ERR_INVALID_PARAMS;
    }
    json_object_del(named, "_stream"); /* over JSON the answer is the final result only */
    const rpc_method_t *m = schema_for(q->node->reg, r->method, r->method_len);
    msgpack_sbuffer *sb = &q->frames;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    size_t start = sb->size;
    if (r->notification) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint8(&pk, 2);
    } else {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint32(&pk, (uint32_t)i);
    }
    msgpack_pack_str_with_body(&pk, r->method, r->method_len);
    int rc = http_jsonrpc_pack_params(r, m, token_len ? 1 : 0, &pk, msg, param);
    if (rc == 0 && token_len) {
        msgpack_pack_str_with_body(&pk, "_token", 6);
        msgpack_pack_str_with_body(&pk, token, token_len);
    }
    size_t flen = sb->size - start, scanned = 0;
    if (rc == 0 &&
        (!sb->data || rpc_frame_scan((const uint8_t *)sb->data + start, flen, &scanned) < 0 ||
         scanned != flen)) {
        *msg = flen > RPC_MAX_FRAME ? "request past the RPC frame limit (RPC_MAX_FRAME)"
                                    : "request past the RPC limits";
        rc = -E2BIG;
    }
    if (rc < 0) {
        sb->size = start; /* what was packed of it is dropped */
        if (rc == -ENOMEM) return *msg = "out of memory", RPC_ERR_INTERNAL;
        return rc == -E2BIG ? RPC_ERR_RESOURCE_EXHAUSTED : RPC_ERR_INVALID_PARAMS;
    }
    q->slots[i].off = start;
    q->slots[i].len = flen;
    return 0;
}

/* Decodes the payload and builds every frame; requests that cannot go out are answered now. */
static void prepare(http_bridge_req_t *q, const char *body, size_t len, bool lenient,
                    const char *token, size_t token_len)
{
    q->body_rc = http_jsonrpc_parse(body, len, lenient ? HTTP_JSONRPC_LENIENT : 0, &q->msg);
    if (q->body_rc < 0) {
        q->slots = calloc(1, sizeof(*q->slots));
        if (!q->slots) return;
        q->n = 1;
        q->slots[0].answer = true;
        slot_set(q, 0, http_jsonrpc_error(NULL, q->msg.code, q->msg.why, NULL), q->msg.code);
        return;
    }
    if (!(q->slots = calloc(q->msg.n, sizeof(*q->slots)))) return; /* n 0: out of memory */
    q->n = q->msg.n;
    for (size_t i = 0; i < q->n; i++) {
        http_jsonrpc_req_t *r = &q->msg.reqs[i];
        q->slots[i].answer = r->code != 0 || !r->notification;
        const char *msg = r->why, *param = NULL;
        int code = r->code;
        if (!code && token_len > RPC_MAX_TOKEN) code = RPC_ERR_UNAUTHENTICATED, msg = "bad token";
        if (!code) code = build_frame(q, i, token, token_len, &msg, &param);
        if (code) slot_error(q, i, code, msg, param);
    }
}

/* Feeds the frames not sent yet while the session has room for more calls in flight. */
static void pump(http_bridge_req_t *q)
{
    while (q->fed < q->n && !q->finished && !q->closing && !q->api->bridge_stopping &&
           rpc_session_pending(q->sess) < RPC_MAX_PENDING) {
        slot_t *s = &q->slots[q->fed++];
        if (!s->len || s->done) continue;
        s->sent = true;
        if (s->answer)
            q->awaiting++;
        else
            s->done = true;
        q->in_input = true;
        int r = rpc_session_input(q->sess, (const uint8_t *)q->frames.data + s->off, s->len,
                                  p2p_mono_ms(), p2p_wall_ms() / 1000);
        q->in_input = false;
        if (r < 0) fail_rest(q, RPC_ERR_INTERNAL, "the RPC session refused the request stream");
    }
}

static bool complete(const http_bridge_req_t *q)
{
    return q->fed >= q->n && q->awaiting == 0;
}

/* The response text into *out: the one object, or the array of every answered element in
 * request order; NULL when nothing is answered (notifications only). Returns 0 or -ENOMEM. */
static int assemble(http_bridge_req_t *q, char **out, size_t *len)
{
    size_t total = 2, count = 0;
    *out = NULL;
    *len = 0;
    if (q->n == 0) return -ENOMEM; /* the slots could not be allocated */
    for (size_t i = 0; i < q->n; i++)
        if (q->slots[i].text) total += q->slots[i].text_len + 1, count++;
    if (count == 0) return 0;
    if (q->body_rc < 0 || !q->msg.batch) { /* one object: the first (only) text, taken */
        for (size_t i = 0;; i++)
            if (q->slots[i].text) {
                *out = q->slots[i].text;
                *len = q->slots[i].text_len;
                q->slots[i].text = NULL;
                return 0;
            }
    }
    char *o = malloc(total + 1);
    if (!o) return -ENOMEM;
    size_t k = 0;
    o[k++] = '[';
    for (size_t i = 0; i < q->n; i++) {
        const slot_t *s = &q->slots[i];
        if (!s->text) continue;
        if (k > 1) o[k++] = ',';
        memcpy(o + k, s->text, s->text_len);
        k += s->text_len;
    }
    o[k++] = ']';
    o[k] = 0;
    *out = o;
    *len = k;
    return 0;
}

/* The HTTP status of the answer (http_bridge_rpc). */
static int http_status(const http_bridge_req_t *q, bool empty)
{
    if (q->body_rc == -EMSGSIZE) return 413; /* a batch past HTTP_MAX_JSONRPC_BATCH */
    if (q->body_rc < 0) return http_status_for_code(q->msg.code ? q->msg.code : RPC_ERR_INTERNAL);
    if (empty) return 204;
    if (q->msg.batch) return 200;
    return q->slots[0].code ? http_status_for_code(q->slots[0].code) : 200;
}

static void close_cb(uv_handle_t *h)
{
    http_bridge_req_t *q = h->data;
    http_api_t *api = q->api;
    rpc_session_free(q->sess);
    rpc_decoder_free(&q->dec);
    for (size_t i = 0; i < q->n; i++)
        free(q->slots[i].text);
    free(q->slots);
    msgpack_sbuffer_destroy(&q->frames);
    http_jsonrpc_msg_free(&q->msg);
    if (q->prev)
        q->prev->next = q->next;
    else
        api->bridge_reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    free(q);
    if (api->bridge_stopping && !api->bridge_reqs) {
        api->bridge_stopping = false;
        http_api_part_done(api); /* the count http_bridge_stop took */
    }
}

/* Answers: from the loop only (the timer), never inside a session's call chain. Requests still
 * unanswered (the API is stopping) get UNAVAILABLE. */
static void finish(http_bridge_req_t *q)
{
    fail_rest(q, RPC_ERR_UNAVAILABLE, "the node is stopping");
    q->finished = true;
    rpc_session_free(q->sess); /* calls still held by handlers are answered into the void */
    q->sess = NULL;
    char *out;
    size_t len;
    int status;
    if (assemble(q, &out, &len) < 0) {
        out = strdup(oom_text);
        len = out ? sizeof(oom_text) - 1 : 0;
        status = 500;
    } else {
        status = http_status(q, out == NULL);
    }
    if (q->status) *q->status = status;
    q->closing = true;
    uv_close((uv_handle_t *)&q->timer, close_cb);
    q->done(q->arg, out, len);
}

/* Answers TIMEOUT past deadlines, feeds more, finishes, or waits for the next deadline. */
static void step(http_bridge_req_t *q)
{
    uint64_t now = p2p_mono_ms();
    (void)rpc_session_periodic(q->sess, now); /* TIMEOUT to the calls past their deadline */
    pump(q);
    if (complete(q) || q->api->bridge_stopping) {
        finish(q);
        return;
    }
    uint64_t next = rpc_session_periodic(q->sess, now);
    if (!complete(q) && next == UINT64_MAX) /* nothing in flight, yet answers missing */
        fail_rest(q, RPC_ERR_INTERNAL, "no answer from the RPC session");
    if (complete(q)) {
        finish(q);
        return;
    }
    uv_timer_start(&q->timer, timer_cb, next > now ? next - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
    http_bridge_req_t *q = t->data;
    if (!q->finished && !q->closing) step(q);
}

/* http_bridge_run with the HTTP status written to *status before done (status may be NULL). */
static http_bridge_req_t *start(http_api_t *api, const char *token, size_t token_len,
                                const char *body, size_t len, bool lenient,
                                http_bridge_done_fn done, void *arg, int *status)
{
    http_bridge_req_t *q = calloc(1, sizeof(*q));
    if (!q) return NULL;
    q->api = api;
    q->node = api->node;
    q->done = done;
    q->arg = arg;
    q->status = status;
    node_auth_config(q->node, &q->auth);
    rpc_decoder_init(&q->dec);
    msgpack_sbuffer_init(&q->frames);
    if (!(q->sess = rpc_session_new(q->node->reg, &q->auth, sess_write, q))) {
        rpc_decoder_free(&q->dec);
        free(q);
        return NULL;
    }
    uv_timer_init(q->node->loop, &q->timer);
    q->timer.data = q;
    q->next = api->bridge_reqs;
    if (q->next) q->next->prev = q;
    api->bridge_reqs = q;
    prepare(q, body, len, lenient, token, token_len);
    pump(q);
    /* done never runs from here: the timer (0 when all is answered already) calls it */
    if (complete(q) || api->bridge_stopping) {
        uv_timer_start(&q->timer, timer_cb, 0, 0);
    } else {
        uint64_t now = p2p_mono_ms(), next = rpc_session_periodic(q->sess, now);
        uv_timer_start(&q->timer, timer_cb, next != UINT64_MAX && next > now ? next - now : 0, 0);
    }
    return q;
}

http_bridge_req_t *http_bridge_run(http_api_t *api, const char *token, size_t token_len,
                                   const char *body, size_t len, bool lenient,
                                   http_bridge_done_fn done, void *arg)
{
    return start(api, token, token ? token_len : 0, body, len, lenient, done, arg, NULL);
}

void http_bridge_abandon(http_bridge_req_t *req)
{
    if (!req || req->finished || req->closing) return;
    req->closing = true; /* the session goes in close_cb: this may run inside its call chain */
    uv_close((uv_handle_t *)&req->timer, close_cb);
}

void http_bridge_stop(http_api_t *api)
{
    if (!api->bridge_reqs || api->bridge_stopping) return;
    api->bridge_stopping = true;
    api->pending_stops++; /* given back once the last request is closed */
    for (http_bridge_req_t *q = api->bridge_reqs; q; q = q->next)
        if (!q->finished && !q->closing) uv_timer_start(&q->timer, timer_cb, 0, 0);
}

/* --- POST /api/rpc ---------------------------------------------------------------------------- */

typedef struct door {
    http_exchange_t *x;
    int status;
} door_t;

static void door_done(void *arg, char *json, size_t len)
{
    door_t *d = arg;
    if (!json) {
        http_respond(d->x, d->status ? d->status : 204, NULL, NULL, 0);
    } else {
        if (d->status == 401) http_add_header(d->x, "WWW-Authenticate", "Bearer");
        http_respond_take(d->x, d->status, "application/json", json, len);
    }
    free(d);
}

void http_bridge_rpc(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    const http_request_t *r = http_exchange_request(x);
    door_t *d = calloc(1, sizeof(*d));
    if (d) d->x = x;
    if (!d || !start(api, who->token, who->token ? who->token_len : 0, (const char *)r->body,
                     r->body_len, false, door_done, d, &d->status)) {
        free(d);
        http_api_error(x, RPC_ERR_INTERNAL, "out of memory", NULL);
    }
}
