/* http-limits.h: every size, count and time the HTTP/WebSocket layer accepts from a client,
 * defined once. */
#ifndef P2P_HTTP_LIMITS_H
#define P2P_HTTP_LIMITS_H

#ifndef HTTP_MAX_HEADER_BYTES
#define HTTP_MAX_HEADER_BYTES (16u * 1024) /* request line + headers; more is 431 */
#endif
#ifndef HTTP_MAX_HEADERS
#define HTTP_MAX_HEADERS 64 /* header lines in one request; more is 431 */
#endif
#ifndef HTTP_MAX_URL
#define HTTP_MAX_URL 4096 /* request target length; more is 414 */
#endif
#ifndef HTTP_MAX_BODY
#define HTTP_MAX_BODY (8u * 1024 * 1024) /* request body (after de-chunking); more is 413 */
#endif
#ifndef HTTP_MAX_CONNECTIONS
#define HTTP_MAX_CONNECTIONS 16384 /* open connections; at the cap the longest-idle one is closed */
#endif
#ifndef HTTP_HEADER_TIMEOUT_MS
#define HTTP_HEADER_TIMEOUT_MS 10000 /* from a request's first byte to its last header (slowloris) */
#endif
#ifndef HTTP_BODY_TIMEOUT_MS
#define HTTP_BODY_TIMEOUT_MS 30000 /* from the headers to the body's last byte */
#endif
#ifndef HTTP_IDLE_TIMEOUT_MS
#define HTTP_IDLE_TIMEOUT_MS 60000 /* keep-alive connection with no request in progress */
#endif
#ifndef HTTP_MAX_OUTPUT
#define HTTP_MAX_OUTPUT (16u * 1024 * 1024) /* queued response bytes before a client is cut off */
#endif
#ifndef HTTP_MAX_RATE_ENTRIES
#define HTTP_MAX_RATE_ENTRIES 4096 /* client addresses tracked by the rate limiter (LRU) */
#endif
#ifndef HTTP_RATE_WAYS
#define HTTP_RATE_WAYS 8 /* ways of one set of that table (divides HTTP_MAX_RATE_ENTRIES) */
#endif
#ifndef HTTP_DEFAULT_RATE
#define HTTP_DEFAULT_RATE 100 /* requests per second per client address (HTTP_RATE_LIMIT) */
#endif
#ifndef HTTP_DEFAULT_BURST
#define HTTP_DEFAULT_BURST 200 /* bucket size of that limit (HTTP_RATE_BURST) */
#endif
#ifndef HTTP_MAX_STATIC_FILE
#define HTTP_MAX_STATIC_FILE (8u * 1024 * 1024) /* a dashboard file served from admin-ui/ */
#endif
#ifndef HTTP_MAX_CORS_ORIGINS
#define HTTP_MAX_CORS_ORIGINS 16 /* entries of CORS_ORIGINS */
#endif

/* JSON and JSON-RPC 2.0 (json.c, jsonrpc.c) */
#ifndef HTTP_JSON_MAX_DEPTH
#define HTTP_JSON_MAX_DEPTH 32 /* nesting accepted in a JSON request (RPC_MAX_DEPTH's twin) */
#endif
#ifndef HTTP_JSON_MAX_VALUES
#define HTTP_JSON_MAX_VALUES 65000 /* values and keys in one JSON body (< RPC_MAX_OBJECTS) */
#endif
#ifndef HTTP_MAX_JSONRPC_BATCH
#define HTTP_MAX_JSONRPC_BATCH 100 /* requests in one JSON-RPC batch; more is one error */
#endif
#ifndef HTTP_MAX_RPC_RESPONSE
#define HTTP_MAX_RPC_RESPONSE (12u * 1024 * 1024) /* JSON of one payload's answers (< MAX_OUTPUT) */
#endif

/* Metrics (metrics_text.c, metrics.c) */
#ifndef HTTP_METRIC_MAX_NAME
#define HTTP_METRIC_MAX_NAME 128 /* length of a metric family name */
#endif
#ifndef HTTP_METRIC_MAX_LABELS
#define HTTP_METRIC_MAX_LABELS 8 /* labels on one sample (le of a bucket not counted) */
#endif
#ifndef HTTP_METRIC_MAX_BUCKETS
#define HTTP_METRIC_MAX_BUCKETS 32 /* finite bounds of one histogram */
#endif
#ifndef HTTP_METRIC_MAX_FAMILIES
#define HTTP_METRIC_MAX_FAMILIES 512 /* families in one exposition */
#endif
#ifndef HTTP_METRICS_MAX_OUTPUT
#define HTTP_METRICS_MAX_OUTPUT (8u * 1024 * 1024) /* bytes of one /metrics answer */
#endif
#ifndef HTTP_METRICS_PROC_FILE_MAX
#define HTTP_METRICS_PROC_FILE_MAX (1u * 1024 * 1024) /* bytes read of one /proc file */
#endif
#ifndef HTTP_METRICS_COLLECTOR_TIMEOUT_MS
#define HTTP_METRICS_COLLECTOR_TIMEOUT_MS 1000 /* a host collector not done by then is failed */
#endif
#ifndef HTTP_METRICS_MAX_RPC_SERIES
#define HTTP_METRICS_MAX_RPC_SERIES 1024 /* {domain,method,code} series; more go to "other" */
#endif

/* WebSocket (RFC 6455) */
#ifndef WS_MAX_MESSAGE
#define WS_MAX_MESSAGE (1u * 1024 * 1024) /* one message, all fragments together; more closes 1009 */
#endif
#ifndef WS_MAX_FRAGMENTS
#define WS_MAX_FRAGMENTS 1024 /* frames in one fragmented message */
#endif
#ifndef WS_KEEP_BUFFER
#define WS_KEEP_BUFFER (64u * 1024) /* message buffer kept between messages; a larger one is freed */
#endif
#ifndef WS_MAX_OUTPUT
#define WS_MAX_OUTPUT (4u * 1024 * 1024) /* queued bytes to a client before it is cut off (slow) */
#endif
#ifndef WS_MAX_CLIENTS
#define WS_MAX_CLIENTS 4096 /* WebSocket clients of one node */
#endif
#ifndef WS_AUTH_TIMEOUT_MS
#define WS_AUTH_TIMEOUT_MS 10000 /* a client without token must authenticate within this */
#endif
#ifndef WS_REVERIFY_MS
#define WS_REVERIFY_MS 30000 /* a session's token is checked again this often (expiry, logout) */
#endif
#ifndef WS_MAX_CALLS
#define WS_MAX_CALLS 64 /* JSON-RPC calls of one client in flight; more are RESOURCE_EXHAUSTED */
#endif
#ifndef WS_POLL_MS
#define WS_POLL_MS 1000 /* topic feeds poll the network this often (while someone subscribes) */
#endif
#ifndef WS_POLL_TIMEOUT_S
#define WS_POLL_TIMEOUT_S 2 /* deadline of one poll call (_timeout) */
#endif
#ifndef WS_PING_INTERVAL_MS
#define WS_PING_INTERVAL_MS 30000 /* server pings an idle client; no pong within one more closes */
#endif

/* Users, login and sessions (users*.c, login.c) */
#ifndef HTTP_MAX_USERNAME
#define HTTP_MAX_USERNAME 64 /* characters of a user name, [A-Za-z0-9._-] */
#endif
#ifndef HTTP_MIN_PASSWORD
#define HTTP_MIN_PASSWORD 8 /* bytes of a new password (p2p-node user add) */
#endif
#ifndef HTTP_MAX_PASSWORD
#define HTTP_MAX_PASSWORD 1024 /* bytes of a password, at login and when set */
#endif
#ifndef HTTP_MAX_USERS
#define HTTP_MAX_USERS 4096 /* user rows of one network, removed ones (tombstones) included */
#endif
#ifndef HTTP_PWHASH_OPSLIMIT
#define HTTP_PWHASH_OPSLIMIT 2 /* Argon2id passes (OWASP: t=2) */
#endif
#ifndef HTTP_PWHASH_MEMLIMIT
#define HTTP_PWHASH_MEMLIMIT (19u << 20) /* Argon2id memory floor (OWASP); INTERACTIVE if more */
#endif
#ifndef HTTP_REFRESH_TTL_S
#define HTTP_REFRESH_TTL_S (7u * 24 * 3600) /* a refresh token unused this long expires */
#endif
#ifndef HTTP_REFRESH_MAX_AGE_S
#define HTTP_REFRESH_MAX_AGE_S (30u * 24 * 3600) /* a login session ends this long after login */
#endif
#ifndef HTTP_MAX_FAMILIES
#define HTTP_MAX_FAMILIES 65536 /* login sessions (refresh-token families) of the network */
#endif
#ifndef HTTP_MAX_FAMILIES_PER_USER
#define HTTP_MAX_FAMILIES_PER_USER 64 /* sessions of one user; a new login revokes the oldest */
#endif
#ifndef HTTP_MAX_REVOKED
#define HTTP_MAX_REVOKED 65536 /* logged-out access tokens remembered until they expire */
#endif
#ifndef HTTP_LOGIN_MAX_FAILURES
#define HTTP_LOGIN_MAX_FAILURES 40 /* failed logins per client address or user name per window */
#endif
#ifndef HTTP_LOGIN_WINDOW_S
#define HTTP_LOGIN_WINDOW_S 300 /* the window of that limit (failures drain at MAX per WINDOW) */
#endif
#ifndef HTTP_LOGIN_TRACKED
#define HTTP_LOGIN_TRACKED 4096 /* addresses, and separately user names, the limiter tracks */
#endif
#ifndef HTTP_LOGIN_MAX_RUNNING
#define HTTP_LOGIN_MAX_RUNNING 2 /* password hashes computed at once on the thread pool */
#endif
#ifndef HTTP_LOGIN_MAX_QUEUED
#define HTTP_LOGIN_MAX_QUEUED 32 /* logins waiting for a hash slot; more is 503 */
#endif

#ifndef HTTP_AUTH_MAX_BODY
#define HTTP_AUTH_MAX_BODY (16u * 1024) /* body of a login, refresh or logout request; more: 413 */
#endif
#ifndef HTTP_SYNC_MAX_ROWS
#define HTTP_SYNC_MAX_ROWS 1024 /* user, session and revoked rows in one replication message */
#endif
#ifndef HTTP_SYNC_POLL_MS
#define HTTP_SYNC_POLL_MS 500 /* node.db is checked this often for `p2p-node user` changes */
#endif
#ifndef HTTP_SYNC_PUSH_DELAY_MS
#define HTTP_SYNC_PUSH_DELAY_MS 20 /* changes are gathered this long before they are pushed */
#endif
#ifndef HTTP_SYNC_PUSH_MAX
#define HTTP_SYNC_PUSH_MAX 64 /* live nodes a change made here is pushed to (random ones if more) */
#endif
#ifndef HTTP_SYNC_RELAY_FANOUT
#define HTTP_SYNC_RELAY_FANOUT 3 /* live nodes a change first heard from a peer is passed on to */
#endif
#ifndef HTTP_SYNC_INTERVAL_MS
#define HTTP_SYNC_INTERVAL_MS 3000 /* anti-entropy round (bucket digests) with one random node */
#endif
#ifndef HTTP_SYNC_MAX_INFLIGHT
#define HTTP_SYNC_MAX_INFLIGHT 128 /* replication calls of one node in flight; more wait a round */
#endif
#ifndef HTTP_SYNC_TIMEOUT_MS
#define HTTP_SYNC_TIMEOUT_MS 3000 /* deadline of one replication call */
#endif
#ifndef HTTP_USERS_PRUNE_MS
#define HTTP_USERS_PRUNE_MS 60000 /* ended sessions and expired revoked tokens are deleted this often */
#endif

#endif
