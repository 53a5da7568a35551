/* dht.h: the Kademlia DHT core. It does no I/O and reads no clock: callers pass datagrams in with
 * dht_input(), drive timers with dht_periodic() (which returns the next deadline), and receive the
 * datagrams to send through the send callback of dht_config_t. The same code runs under the libuv
 * adapter (dht_uv.h) and the simulator (src/sim).
 *
 * Times: `now` is a monotonic clock in milliseconds chosen by the caller. Record expiry is
 * wall-clock (seconds since the Unix epoch), derived from `now` plus the offset set with
 * dht_set_wall_clock().
 *
 * The send callback may run from any dht_* call. Operation callbacks (lookups, gets, puts) run only
 * from inside dht_input(), dht_periodic() or dht_free(), never from the call that started the
 * operation. After starting an operation outside dht_input/dht_periodic, the caller must call
 * dht_periodic() again by the deadline returned by dht_next_deadline(). If a function that takes a
 * callback returns an error, the callback is never called. */
#ifndef P2P_DHT_H
#define P2P_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/dht-limits.h"

#define DHT_ID_LEN      32
#define DHT_PK_LEN      32 /* Ed25519 public key */
#define DHT_SK_LEN      64 /* Ed25519 secret key (libsodium layout) */
#define DHT_SIG_LEN     64
#define DHT_NET_KEY_LEN 32

typedef struct dht dht_t;

typedef struct dht_id {
    uint8_t b[DHT_ID_LEN];
} dht_id_t;

/* A transport address in compact form: family 4 uses ip[0..3], family 6 uses all 16 bytes. */
typedef struct dht_addr {
    uint8_t family; /* 4 or 6; 0 = unset */
    uint8_t ip[16];
    uint16_t port; /* host byte order */
} dht_addr_t;

/* A signed value: one per (key, publisher); a lower seq never replaces a higher one. */
typedef struct dht_record {
    dht_id_t key;
    uint8_t publisher[DHT_PK_LEN];
    uint64_t seq;
    uint64_t expires; /* wall-clock seconds since the epoch */
    uint16_t value_len;
    uint8_t value[DHT_MAX_VALUE];
    uint8_t sig[DHT_SIG_LEN];
} dht_record_t;

/* What the core tells about a contact (routing table entry or lookup result). */
typedef struct dht_contact_info {
    dht_id_t id;
    uint8_t public_key[DHT_PK_LEN];
    dht_addr_t addr;
    uint32_t rtt_ms;    /* smoothed round-trip time, 0 when unknown */
    uint32_t fails;     /* consecutive unanswered requests */
    uint64_t last_seen; /* `now` of the last authenticated datagram from it, 0 = never */
    bool verified;      /* has answered one of our requests */
} dht_contact_info_t;

typedef void (*dht_send_fn)(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to);

typedef struct dht_config {
    uint8_t public_key[DHT_PK_LEN];
    uint8_t secret_key[DHT_SK_LEN];
    uint8_t network_key[DHT_NET_KEY_LEN];
    uint8_t seed[32]; /* seeds the core's deterministic random generator */
    uint64_t epoch;   /* must grow across restarts of one identity (e.g. wall-clock microseconds) */
    bool ip_diversity; /* cap contacts per /24 (IPv4) or /48 (IPv6) in a bucket; off on loopback */
    bool plaintext;    /* simulator only: skip the AEAD, keep the framing; never set in p2p-node */
    uint32_t
        peer_cache;   /* peers outside the table whose keys and replay windows are kept;
                         0 = DHT_PEER_CACHE (the simulator sets a smaller value to save memory) */
    dht_send_fn send; /* required */
    void *send_ctx;
} dht_config_t;

/* Message types, also the label values of the message metrics. */
enum dht_msg_type {
    DHT_MSG_PING = 0,
    DHT_MSG_PONG,
    DHT_MSG_FIND_NODE,
    DHT_MSG_NODES,
    DHT_MSG_FIND_VALUE,
    DHT_MSG_VALUES,
    DHT_MSG_STORE,
    DHT_MSG_STORED,
    DHT_MSG_TYPE_COUNT
};

/* Reasons a datagram is dropped, also the `reason` label of p2p_dht_messages_dropped_total. */
enum dht_drop_reason {
    DHT_DROP_MALFORMED = 0, /* garbage, truncated, bad msgpack, wrong field types */
    DHT_DROP_OVERSIZED,
    DHT_DROP_AUTH, /* AEAD failed: wrong network key, forged or altered */
    DHT_DROP_REPLAY,
    DHT_DROP_RATE_LIMIT,
    DHT_DROP_UNSOLICITED, /* response with unknown txid or from another address */
    DHT_DROP_BAD_TOKEN,
    DHT_DROP_BAD_RECORD, /* bad signature, expired, stale sequence */
    DHT_DROP_SELF,       /* our own id */
    DHT_DROP_REASON_COUNT
};

enum dht_lookup_result_label {
    DHT_LOOKUP_OK = 0,
    DHT_LOOKUP_NOT_FOUND,
    DHT_LOOKUP_FAILED,
    DHT_LOOKUP_LABEL_COUNT
};

#define DHT_LOOKUP_HIST_BUCKETS 10
typedef struct dht_stats {
    uint64_t received[DHT_MSG_TYPE_COUNT];
    uint64_t sent[DHT_MSG_TYPE_COUNT];
    uint64_t dropped[DHT_DROP_REASON_COUNT];
    uint64_t lookups[DHT_LOOKUP_LABEL_COUNT];
    /* lookup durations: cumulative counts for le = 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
     * 1, 2.5, 5 s */
    uint64_t lookup_hist[DHT_LOOKUP_HIST_BUCKETS];
    uint64_t lookup_count;
    double lookup_sum_s;
    uint64_t bytes_in, bytes_out;
} dht_stats_t;

/* Label values (for stats and metrics): message types, drop reasons, lookup results. */
extern const char *const dht_msg_type_names[DHT_MSG_TYPE_COUNT];
extern const char *const dht_drop_reason_names[DHT_DROP_REASON_COUNT];
extern const char *const dht_lookup_result_names[DHT_LOOKUP_LABEL_COUNT];

/* Upper bounds of the lookup-duration histogram buckets, in seconds. */
extern const double dht_lookup_hist_bounds[DHT_LOOKUP_HIST_BUCKETS];

typedef struct dht_lookup_result {
    const dht_contact_info_t *nodes; /* closest first, at most DHT_K */
    size_t n;
    int hops;          /* sequential request rounds until the answer was in hand */
    uint32_t messages; /* requests sent by this lookup */
    uint64_t duration_ms;
} dht_lookup_result_t;

typedef struct dht_get_result {
    const dht_record_t *records; /* one per publisher, newest seq */
    size_t n;
    int hops;
    uint32_t messages;
    uint64_t duration_ms;
} dht_get_result_t;

/* status: 0 = found (lookup: k closest answered; get: >= 1 record), -ENOENT nothing found,
 * -ETIMEDOUT/-EHOSTUNREACH nobody answered, -ECANCELED when dht_free() ran first. */
typedef void (*dht_lookup_cb)(void *arg, int status, const dht_lookup_result_t *res);
typedef void (*dht_get_cb)(void *arg, int status, const dht_get_result_t *res);
/* stored: how many nodes acknowledged the STORE. */
typedef void (*dht_put_cb)(void *arg, int status, size_t stored);

/* Creates a node. Copies cfg. Returns NULL on bad config or out of memory. */
dht_t *dht_new(const dht_config_t *cfg, uint64_t now);

/* Frees the node; pending lookups, gets, puts and pings get their callback with -ECANCELED first.
 * NULL ok. */
void dht_free(dht_t *dht);

/* Tells the core that monotonic `now` corresponds to wall-clock `wall_ms`. Call at start and
 * from time to time (the libuv adapter does it on every periodic). */
void dht_set_wall_clock(dht_t *dht, uint64_t now, uint64_t wall_ms);

/* Feeds one received datagram. Returns 0 when accepted, or -EBADMSG/-EACCES/-EAGAIN... when dropped
 * (the drop is counted in dht_stats by reason). May call the send callback and operation callbacks.
 */
int dht_input(dht_t *dht, const uint8_t *buf, size_t len, const dht_addr_t *from, uint64_t now);

/* Runs timers (timeouts, refresh, republish, expiry, pings). Returns the absolute `now` at which it
 * wants to be called again. */
uint64_t dht_periodic(dht_t *dht, uint64_t now);

/* The absolute `now` by which dht_periodic() must run next (cheap; no side effects). */
uint64_t dht_next_deadline(const dht_t *dht);

/* Sends a hello PING to an address whose identity is unknown (bootstrap). The contact is added
 * when it answers. Returns 0 or -EINVAL. */
int dht_ping_addr(dht_t *dht, const dht_addr_t *addr, uint64_t now);

/* A ping's outcome: status 0 with the round-trip time in ms (from sending the PING to receiving
 * its PONG), -ETIMEDOUT when no PONG came before the timeout, -ECANCELED when dht_free() ran
 * first. */
typedef void (*dht_ping_cb)(void *arg, int status, uint32_t rtt_ms);

/* Pings addr and reports the round trip to cb, exactly once, from dht_input(), dht_periodic() or
 * dht_free(). pk is the identity expected at addr: the PING is then boxed for it and only that node
 * can answer; NULL sends a hello PING that any member of the network at addr answers. timeout_ms is
 * clamped to 1..DHT_PING_MAX_TIMEOUT_MS. At most DHT_MAX_PINGS such pings run at once. Returns 0,
 * -EINVAL (bad address, pk is our own or not a valid key) or -ENOBUFS (too many pings or pending
 * requests); on an error cb is never called. */
int dht_ping(dht_t *dht, const dht_addr_t *addr, const uint8_t *pk, uint32_t timeout_ms,
             uint64_t now, dht_ping_cb cb, void *arg);

/* Iterative FIND_NODE for target. Returns 0 (cb will run) or -ENOBUFS when too many lookups run. */
int dht_find_node(dht_t *dht, const dht_id_t *target, uint64_t now, dht_lookup_cb cb, void *arg);

/* Iterative FIND_VALUE for key; collects records from every answering node. */
int dht_get(dht_t *dht, const dht_id_t *key, uint64_t now, dht_get_cb cb, void *arg);

/* Publishes value under key, signed by this node, stored on the k closest nodes. The node keeps the
 * publication and republishes it before it expires (with a higher seq when the value changes) until
 * ttl_s passes or dht_unpublish() is called. cb may be NULL. Returns 0, -EMSGSIZE (value too
 * large), -EINVAL (ttl 0 or above DHT_MAX_TTL_S) or -ENOBUFS. */
int dht_put(dht_t *dht, const dht_id_t *key, const uint8_t *value, size_t len, uint32_t ttl_s,
            uint64_t now, dht_put_cb cb, void *arg);

/* Stops republishing key (copies stored elsewhere expire on their own). Returns 0 or -ENOENT. */
int dht_unpublish(dht_t *dht, const dht_id_t *key);

/* key = BLAKE2b-256("p2p-admin/" ns "/" name). */
void dht_key_derive(dht_id_t *out, const char *ns, const char *name, size_t name_len);

/* node id = BLAKE2b-256(public key). */
void dht_id_from_pk(dht_id_t *out, const uint8_t pk[DHT_PK_LEN]);

/* Checks a record's signature; returns 0 or -EBADMSG. Does not check expiry. */
int dht_record_verify(const dht_record_t *rec);

const dht_id_t *dht_self_id(const dht_t *dht);
size_t dht_contact_count(const dht_t *dht);
size_t dht_record_count(const dht_t *dht);
void dht_get_stats(const dht_t *dht, dht_stats_t *out);

/* Calls cb for each routing-table contact (closest buckets last). */
void dht_foreach_contact(const dht_t *dht, void (*cb)(void *arg, const dht_contact_info_t *c),
                         void *arg);

/* Calls cb for each stored record (including our own publications) that has not expired. */
void dht_foreach_record(const dht_t *dht, void (*cb)(void *arg, const dht_record_t *r), void *arg);

/* The address peers most often report seeing us at; false until two peers agree. */
bool dht_external_addr(const dht_t *dht, dht_addr_t *out);

/* Restores a saved contact: it is pinged and enters the table only when it answers.
 * Returns 0 or -EINVAL. */
int dht_import_contact(dht_t *dht, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *addr,
                       uint64_t now);

/* Restores a saved record after checking signature and expiry. Returns 0, -EBADMSG, -ETIME
 * (expired) or -ENOSPC. Records published by this node's key come back as publications
 * (republished). */
int dht_import_record(dht_t *dht, const dht_record_t *rec, uint64_t now);

/* Address helpers (pure). dht_addr_format writes "1.2.3.4:5" or "[::1]:5" (cap >= 64). */
int dht_addr_format(const dht_addr_t *a, char *out, size_t cap);
/* Parses a numeric "ip:port" or "[ip6]:port". Returns 0 or -EINVAL. */
int dht_addr_parse(dht_addr_t *out, const char *s);
bool dht_addr_equal(const dht_addr_t *a, const dht_addr_t *b);
struct sockaddr;
/* Fills out from an AF_INET or AF_INET6 socket address (IPv4-mapped IPv6 becomes family 4);
 * any other family leaves out->family 0. */
void dht_addr_from_sockaddr(dht_addr_t *out, const struct sockaddr *sa);
bool dht_addr_is_loopback(const dht_addr_t *a);

#endif
