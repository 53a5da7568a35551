/* dht-limits.h: every size, count and rate the DHT accepts, defined once. */
#ifndef P2P_DHT_LIMITS_H
#define P2P_DHT_LIMITS_H

#ifndef DHT_K
#define DHT_K 20 /* bucket size and replication factor */
#endif
#ifndef DHT_ALPHA
#define DHT_ALPHA 3 /* requests in flight per lookup */
#endif
#ifndef DHT_MAX_DATAGRAM
#define DHT_MAX_DATAGRAM 1400 /* largest datagram sent or accepted */
#endif
#ifndef DHT_MAX_VALUE
#define DHT_MAX_VALUE 1000 /* largest value in a record */
#endif
#ifndef DHT_MAX_TTL_S
#define DHT_MAX_TTL_S (7 * 24 * 3600) /* longest record lifetime */
#endif
#ifndef DHT_MAX_RECORDS
#define DHT_MAX_RECORDS 65536 /* records a node stores for others */
#endif
#ifndef DHT_MAX_VALUES_PER_KEY
#define DHT_MAX_VALUES_PER_KEY 64 /* publishers per key */
#endif
#ifndef DHT_MAX_PUBLICATIONS
#define DHT_MAX_PUBLICATIONS 1024 /* records this node publishes itself */
#endif
#ifndef DHT_MAX_LOOKUPS
#define DHT_MAX_LOOKUPS 256 /* lookups, gets and puts running at once */
#endif
#ifndef DHT_MAX_PENDING
#define DHT_MAX_PENDING 4096 /* requests awaiting an answer */
#endif
#ifndef DHT_REPLACEMENTS
#define DHT_REPLACEMENTS 8 /* replacement-cache entries per bucket */
#endif
#ifndef DHT_MAX_BUCKETS
#define DHT_MAX_BUCKETS 160 /* routing-table buckets (splits stop here) */
#endif
#ifndef DHT_DIVERSITY_PER_SUBNET
#define DHT_DIVERSITY_PER_SUBNET                                                                   \
    2 /* contacts per /24 or /48 in a bucket when ip_diversity is on                               \
       */
#endif
#ifndef DHT_PEER_CACHE
#define DHT_PEER_CACHE 4096 /* pairwise keys and replay windows of peers outside the table */
#endif
#ifndef DHT_RATE_PER_SOURCE
#define DHT_RATE_PER_SOURCE 2000 /* requests per second accepted from one IP */
#endif
#ifndef DHT_RATE_BURST
#define DHT_RATE_BURST 4000 /* burst allowance per IP */
#endif
#ifndef DHT_RATE_GLOBAL
#define DHT_RATE_GLOBAL 200000 /* requests per second accepted in all */
#endif
#ifndef DHT_RATE_SOURCES
#define DHT_RATE_SOURCES 1024 /* IPs tracked by the per-source limiter */
#endif
#ifndef DHT_MSGPACK_DEPTH
#define DHT_MSGPACK_DEPTH 4 /* deepest nesting accepted in a datagram */
#endif

#ifndef DHT_MAX_PINGS
#define DHT_MAX_PINGS 64 /* dht_ping() calls awaiting their PONG at once */
#endif
#ifndef DHT_PING_MAX_TIMEOUT_MS
#define DHT_PING_MAX_TIMEOUT_MS 10000 /* longest wait dht_ping() accepts */
#endif

#endif
