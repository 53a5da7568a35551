/* ws-internal.h: what the /ws session files share (ws_hub.c: connections, sessions, timers and
 * polling; ws_topics.c: client messages, event frames and the topic feeds' bookkeeping). The topic
 * feeds are fed by RPC (fan-out or per-node calls through the bridge), so they cover the whole
 * network; ws_topics.c turns each answer into events with per-node state kept in jansson objects,
 * so that it can be tested without a network. Not for other modules. */
#ifndef P2P_HTTP_WS_INTERNAL_H
#define P2P_HTTP_WS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/ws.h"
#include "node/members.h"

enum http_ws_topic {
    HTTP_WS_TOPIC_METRICS, /* each live node's monitor.status, every second */
    HTTP_WS_TOPIC_NODES,   /* members joining (up) and leaving (down, forgotten) */
    HTTP_WS_TOPIC_EVENTS,  /* alert events and supervised-process state changes */
    HTTP_WS_TOPIC_AUDIT,   /* audit records of every node */
    HTTP_WS_N_TOPICS,
};

/* The topic for a name ("metrics"...), or -EINVAL. */
int http_ws_topic_parse(const char *s, size_t len);

/* The name of a topic index ("metrics"...); "" out of range. */
const char *http_ws_topic_name(int topic);

/* --- client messages ---------------------------------------------------------------------- */

enum http_ws_cmsg_kind {
    HTTP_WS_CMSG_TOKEN,       /* {"token": JWT} */
    HTTP_WS_CMSG_SUBSCRIBE,   /* {"subscribe": TOPIC} */
    HTTP_WS_CMSG_UNSUBSCRIBE, /* {"unsubscribe": TOPIC} */
    HTTP_WS_CMSG_CALL,        /* {"id": N, "method": ADDR, "params": {...}} (JSON-RPC) */
};

typedef struct http_ws_cmsg {
    int kind;
    int topic;         /* SUBSCRIBE, UNSUBSCRIBE */
    const char *token; /* TOKEN: points into root */
    size_t token_len;
    json_t *id;   /* the message's "id" (borrowed from root), NULL when absent */
    json_t *root; /* the parsed message, owned: json_decref it (also after an error) */
} http_ws_cmsg_t;

/* Parses one client text message. Returns 0 with *out filled, or an RPC error code
 * (RPC_ERR_PARSE for bad JSON, RPC_ERR_INVALID_REQUEST for a message of no known shape,
 * RPC_ERR_INVALID_PARAMS for an unknown topic or a token that is not a string) with *why a
 * static message and *param the member at fault (or NULL); out->root and out->id are set even
 * then when the text was JSON. */
int http_ws_parse_cmsg(const char *text, size_t len, http_ws_cmsg_t *out, const char **why,
                       const char **param);

/* --- frames to send ----------------------------------------------------------------------- */

/* A whole unmasked text frame (header and payload) carrying len bytes of text: malloc'd, the
 * caller frees it. NULL on no memory. */
uint8_t *http_ws_text_frame(const char *text, size_t len, size_t *frame_len);

/* The text frame of j in compact JSON. NULL on no memory. */
uint8_t *http_ws_json_frame(const json_t *j, size_t *frame_len);

/* The frame of an event {"topic": TOPIC, "node": node, "data": data} (data borrowed). */
uint8_t *http_ws_event_frame(int topic, const char *node, json_t *data, size_t *frame_len);

/* The frame of {"id": id, "error": {"code", "message"[, "data": {"param": param}]}} (id borrowed;
 * NULL gives "id": null). */
uint8_t *http_ws_error_frame(json_t *id, int code, const char *message, const char *param,
                             size_t *frame_len);

/* --- topic feeds -------------------------------------------------------------------------- */

/* What the feeds give for each event: the node it is about and its data (borrowed). */
typedef void (*http_ws_emit_fn)(void *arg, const char *node, json_t *data);

/* Splits the JSON-RPC answer of a fan-out call (text) into its per-node results: cb runs for
 * each node that answered with a result, in the answer's order. Returns the number of nodes
 * listed (answered or not), or -EBADMSG when the text is not a fan-out result. */
int http_ws_fanout_each(const char *resp, size_t len, http_ws_emit_fn cb, void *arg);

/* The result of a single-call JSON-RPC answer (new reference), or NULL when it is an error or not
 * an answer. */
json_t *http_ws_rpc_result(const char *resp, size_t len);

/* Per-node polling state of the events and audit feeds: one object per node name in `states`
 * (a JSON object the hub owns). */

/* The params of the next monitor.events poll of a node ({"since_id": N}). New reference. */
json_t *http_ws_events_params(json_t *states, const char *node, uint64_t start_ms);

/* Feeds a node's monitor.events answer (an array, oldest first). The first answer of a node (or
 * the first after it restarted: start_ms changed) only sets the cursor, unless it restarted,
 * where every event is new. Emits the events newer than the cursor. Returns how many were
 * emitted, or -EINVAL when events is not an array. */
int http_ws_events_feed(json_t *states, const char *node, uint64_t start_ms, json_t *events,
                        http_ws_emit_fn emit, void *arg);

/* Feeds a node's process.managed answer (an array of program statuses): emits
 * {"type": "process.state", "name", "from", "to", "pid", "exit_code", "exit_signal"} for each
 * program whose state changed since the node's previous answer ("from" null for a new program)
 * and {"type": "process.removed", "name"} for one that is gone. The first answer of a node emits
 * nothing. Returns the number emitted or -EINVAL. */
int http_ws_processes_feed(json_t *states, const char *node, json_t *programs, http_ws_emit_fn emit,
                           void *arg);

/* The params of the next node.audit poll ({"since", "limit"}; the first poll of a node asks for
 * the newest row only). New reference. */
json_t *http_ws_audit_params(json_t *states, const char *node);

/* Feeds a node's node.audit answer (rows newest first, each with "id" and "time"): the first
 * answer only sets the cursor; later ones emit the rows with a larger id than seen, oldest
 * first. Returns the number emitted or -EINVAL. */
int http_ws_audit_feed(json_t *states, const char *node, json_t *rows, http_ws_emit_fn emit,
                       void *arg);

/* The nodes feed: the members seen up, by id, from one sweep of the membership view to the next.
 */
typedef struct http_ws_nodes {
    json_t *up;   /* id hex -> {"name", "gen"} */
    uint64_t gen; /* the sweep in progress */
    bool primed;  /* a first sweep completed (it emits nothing) */
} http_ws_nodes_t;

/* Initialises t. Returns 0 or -ENOMEM. http_ws_nodes_free releases it (t may be NULL). */
int http_ws_nodes_init(http_ws_nodes_t *t);
void http_ws_nodes_free(http_ws_nodes_t *t);

/* Starts a sweep of the membership view. */
void http_ws_nodes_begin(http_ws_nodes_t *t);

/* One member of the sweep (as members_foreach gives it): a member up and not a conflict loser
 * that was not up in the previous sweep emits {"event": "join", "id", "addresses", "http",
 * "version"} (not during the first sweep). Returns 1 when it emitted, else 0 (-ENOMEM). */
int http_ws_nodes_see(http_ws_nodes_t *t, const members_view_t *v, http_ws_emit_fn emit, void *arg);

/* Ends the sweep: every member up in the previous sweep and not seen up in this one emits
 * {"event": "leave", "id"}. Returns the number emitted. */
int http_ws_nodes_end(http_ws_nodes_t *t, http_ws_emit_fn emit, void *arg);

#endif
