/* rpc-limits.h: every size, count and time the RPC module accepts from a client, defined once. */
#ifndef P2P_RPC_LIMITS_H
#define P2P_RPC_LIMITS_H

#ifndef RPC_MAX_FRAME
#define RPC_MAX_FRAME (4u * 1024 * 1024) /* largest msgpack frame accepted on a stream */
#endif
#ifndef RPC_MAX_DEPTH
#define RPC_MAX_DEPTH 32 /* deepest container nesting in a frame (msgpack-c's own stack is 32) */
#endif
#ifndef RPC_MAX_OBJECTS
#define RPC_MAX_OBJECTS 65536 /* msgpack objects (containers + scalars) in one frame */
#endif
#ifndef RPC_MAX_PENDING
#define RPC_MAX_PENDING 64 /* unanswered calls per connection */
#endif
#ifndef RPC_MAX_CONNECTIONS
#define RPC_MAX_CONNECTIONS 64 /* local-socket clients at once */
#endif
#ifndef RPC_MAX_OUTPUT
#define RPC_MAX_OUTPUT                                                                             \
    (8u * 1024 * 1024) /* queued reply bytes before a connection stops being read */
#endif
#ifndef RPC_MAX_OUTPUT_HARD
#define RPC_MAX_OUTPUT_HARD (32u * 1024 * 1024) /* queued reply bytes that close the connection */
#endif
#ifndef RPC_MAX_METHODS
#define RPC_MAX_METHODS 256 /* methods in one registry */
#endif
#ifndef RPC_MAX_PARAMS
#define RPC_MAX_PARAMS 16 /* parameters in one method's schema */
#endif
#ifndef RPC_MAX_METHOD_NAME
#define RPC_MAX_METHOD_NAME 255 /* length of a method address */
#endif
#ifndef RPC_TOKEN_CACHE
#define RPC_TOKEN_CACHE 16 /* verified tokens remembered (forwarded calls carry one each) */
#endif
#ifndef RPC_MAX_TOKEN
#define RPC_MAX_TOKEN 8192 /* length of a JWT */
#endif
#ifndef RPC_MAX_SUB
#define RPC_MAX_SUB 128 /* length of a token's subject */
#endif
#ifndef RPC_DEFAULT_TIMEOUT_MS
#define RPC_DEFAULT_TIMEOUT_MS 5000 /* call deadline when the params carry no _timeout */
#endif
#ifndef RPC_MAX_TIMEOUT_S
#define RPC_MAX_TIMEOUT_S 3600 /* largest _timeout accepted */
#endif
#ifndef RPC_MAX_JTI
#define RPC_MAX_JTI 64 /* length of a token's `jti`; longer makes the token invalid */
#endif
#ifndef RPC_MAX_SESSION_PREFIX
#define RPC_MAX_SESSION_PREFIX 32 /* hex digits of a session id before the `.` of a session jti */
#endif
#ifndef RPC_JWT_LEEWAY_S
#define RPC_JWT_LEEWAY_S 30 /* clock skew tolerated on exp and nbf */
#endif

#ifndef RPC_MAX_ACL_PATTERNS
#define RPC_MAX_ACL_PATTERNS 16 /* patterns in a token's `targets` or `methods` claim */
#endif
#ifndef RPC_MAX_ACL_PATTERN
#define RPC_MAX_ACL_PATTERN 64 /* length of one such pattern */
#endif

#ifndef RPC_AUDIT_HASH_SPAN
#define RPC_AUDIT_HASH_SPAN 4096 /* bytes of a long string/binary argument the audit hash covers */
#endif

#ifndef RPC_REPLY_SPLIT
#define RPC_REPLY_SPLIT 16384 /* a result bigger than this is written after its header, uncopied */
#endif

#endif
