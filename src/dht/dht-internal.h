/* dht-internal.h: data structures shared by the files of the DHT core (routing table, peer cache,
 * pending requests, lookups, records, codec, crypto). Nothing here does I/O. */
#ifndef P2P_DHT_INTERNAL_H
#define P2P_DHT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/dht.h"

#ifndef DHT_TOKEN_LEN
#define DHT_TOKEN_LEN 16 /* address token (as in BEP 5) */
#endif
#ifndef DHT_SHORTLIST
#define DHT_SHORTLIST 64 /* candidates a lookup keeps, closest first */
#endif
#ifndef DHT_MAX_FAILS
#define DHT_MAX_FAILS 3 /* consecutive unanswered requests before a contact is dropped */
#endif
#ifndef DHT_RTO_DEFAULT_MS
#define DHT_RTO_DEFAULT_MS 1000 /* request timeout for a peer with no RTT sample */
#endif
#ifndef DHT_RTO_MIN_MS
#define DHT_RTO_MIN_MS 50 /* lower bound of the adaptive timeout */
#endif
#ifndef DHT_RTO_MAX_MS
#define DHT_RTO_MAX_MS 2000 /* upper bound of the adaptive timeout */
#endif
#ifndef DHT_HARD_TIMEOUT_MS
#define DHT_HARD_TIMEOUT_MS 3000 /* a late answer is still accepted until this passes */
#endif
#ifndef DHT_REFRESH_MS
#define DHT_REFRESH_MS (15 * 60 * 1000) /* bucket refresh when untouched this long */
#endif
#ifndef DHT_PING_IDLE_MS
#define DHT_PING_IDLE_MS (5 * 60 * 1000) /* contacts silent this long are pinged */
#endif
#ifndef DHT_REPUBLISH_MS
#define DHT_REPUBLISH_MS (10 * 60 * 1000) /* publishers store their records again this often */
#endif
#ifndef DHT_TOKEN_ROTATE_MS
#define DHT_TOKEN_ROTATE_MS                                                                        \
    (5 * 60 * 1000) /* token secret rotation; the previous one stays valid */
#endif
#ifndef DHT_HELLO_PAD
#define DHT_HELLO_PAD 1200 /* requests to unverified peers are padded to this size */
#endif
#ifndef DHT_EXT_VOTES
#define DHT_EXT_VOTES 16 /* external-address candidates remembered */
#endif
#ifndef DHT_WIDE_BUCKET0
#define DHT_WIDE_BUCKET0                                                                           \
    128 /* contacts in the farthest bucket (then 64, 32, then k): fewer hops                       \
         */
#endif
#ifndef DHT_REPLAY_WINDOW
#define DHT_REPLAY_WINDOW 64 /* out-of-order datagrams tolerated per peer */
#endif

#define DHT_MAGIC_BOX    0xd1 /* pairwise-key datagram */
#define DHT_MAGIC_HELLO  0xd2 /* network-key-only datagram (PING to an unknown identity) */
#define DHT_NONCE_LEN    24
#define DHT_MAC_LEN      16
#define DHT_HDR_LEN      (1 + DHT_PK_LEN + DHT_NONCE_LEN)
#define DHT_OVERHEAD     (DHT_HDR_LEN + DHT_MAC_LEN)
#define DHT_MAX_PLAIN    (DHT_MAX_DATAGRAM - DHT_OVERHEAD)
#define DHT_COMPACT_V4   (1 + 4 + 2 + DHT_PK_LEN)
#define DHT_COMPACT_V6   (1 + 16 + 2 + DHT_PK_LEN)
#define DHT_RECORD_FIXED (DHT_ID_LEN + DHT_PK_LEN + 8 + 8 + 2 + DHT_SIG_LEN)

/* ---- ids and addresses (addr.c) ---- */

/* Returns <0, 0, >0 as a is closer to, as close as, farther from target than b. */
int dht_id_cmp_dist(const dht_id_t *target, const dht_id_t *a, const dht_id_t *b);
/* Number of leading bits a and b share (256 when equal). */
int dht_id_common_prefix(const dht_id_t *a, const dht_id_t *b);
/* Same /24 (IPv4) or /48 (IPv6). */
bool dht_addr_same_subnet(const dht_addr_t *a, const dht_addr_t *b);
/* Compact form: family byte, 4 or 16 address bytes, 2 port bytes. Returns bytes written/read or
 * -EINVAL. */
int dht_addr_pack(const dht_addr_t *a, uint8_t *out, size_t cap);
int dht_addr_unpack(dht_addr_t *a, const uint8_t *in, size_t len);

/* ---- deterministic random generator (ChaCha20 keystream) ---- */
typedef struct dht_rng {
    uint8_t key[32];
    uint64_t counter;
    uint8_t buf[64];
    size_t pos;
} dht_rng_t;
void dht_rng_init(dht_rng_t *r, const uint8_t seed[32]);
void dht_rng_bytes(dht_rng_t *r, void *out, size_t n);
uint32_t dht_rng_u32(dht_rng_t *r);

/* A replay window: the highest (epoch, counter) seen and a bitmap of the ones below it. */
typedef struct dht_replay {
    uint64_t epoch, max, bits;
} dht_replay_t;

/* ---- peer state: pairwise key, replay window, RTT, token (peers.c lives in routing.c) ---- */
typedef struct dht_peer {
    uint8_t pk[DHT_PK_LEN];
    dht_id_t id;
    uint8_t key[32]; /* pairwise AEAD key */
    dht_addr_t addr; /* last address an authenticated datagram came from */
    dht_replay_t rw; /* replay window of boxed datagrams */
    dht_replay_t hw; /* replay window of hellos (kept apart: a hello proves no identity) */
    uint8_t token[DHT_TOKEN_LEN]; /* token this peer gave us for our address */
    bool has_token;
    bool answered; /* answered a request of ours from `addr` */
    bool pinned;   /* in the routing table: never evicted from the cache */
    bool used;
    uint16_t srtt, rttvar; /* ms */
    uint64_t last_used;
} dht_peer_t;

typedef struct dht_peers {
    dht_peer_t *slots;
    size_t cap; /* power of two */
    size_t count;
    size_t max; /* unpinned entries allowed */
    size_t unpinned;
} dht_peers_t;

/* ---- routing table (routing.c) ---- */
typedef struct dht_contact {
    dht_id_t id;
    uint8_t pk[DHT_PK_LEN];
    dht_addr_t addr;
    uint32_t fails;
    uint64_t last_seen;
    uint64_t last_ping;
    bool answered;
} dht_contact_t;

typedef struct dht_bucket {
    dht_contact_t *nodes; /* capacity dht_bucket_cap() */
    int n;
    int cap;
    dht_contact_t *repl; /* DHT_REPLACEMENTS entries, allocated when the bucket first overflows */
    int nrepl;
    uint64_t last_touched;
    bool evicting; /* a ping-before-evict is under way */
} dht_bucket_t;

typedef struct dht_table {
    dht_id_t self;
    dht_bucket_t *buckets; /* bucket i < n-1 holds common prefix == i; the last one >= n-1 */
    int n;
    bool diversity;
} dht_table_t;

/* ---- pending requests ---- */
enum dht_req_purpose {
    DHT_REQ_NONE = 0,
    DHT_REQ_LOOKUP, /* belongs to lookup `op` candidate */
    DHT_REQ_PING,   /* liveness / evict check / import revalidation / bootstrap hello */
    DHT_REQ_STORE,  /* belongs to put `op` (or replication when op < 0) */
};

typedef struct dht_pending {
    uint32_t txid;
    uint8_t type; /* request message type */
    uint8_t purpose;
    bool hello;      /* sent as a hello datagram to an unknown identity */
    bool late;       /* soft timeout passed; slot freed in the lookup */
    int op;          /* lookup/put slot, -1 none */
    uint32_t op_gen; /* generation of that slot, so a reused slot is not confused */
    int cand;        /* candidate index inside the lookup */
    dht_addr_t to;
    uint8_t pk[DHT_PK_LEN]; /* zero for hello */
    uint64_t sent;
    uint64_t soft_deadline;
    uint64_t hard_deadline;
} dht_pending_t;

/* ---- lookups (lookup.c) ---- */
enum dht_cand_state { CAND_NEW = 0, CAND_INFLIGHT, CAND_LATE, CAND_ANSWERED, CAND_FAILED };

typedef struct dht_cand {
    dht_id_t id;
    uint8_t pk[DHT_PK_LEN];
    dht_addr_t addr;
    uint8_t state;
    uint8_t depth;
    bool has_token;
    uint8_t token[DHT_TOKEN_LEN];
} dht_cand_t;

enum dht_op_kind { DHT_OP_FIND_NODE = 1, DHT_OP_GET, DHT_OP_PUT, DHT_OP_REFRESH };

typedef struct dht_op {
    bool used;
    bool done; /* finished; the callback runs from dht_ops_finish() */
    int status;
    uint8_t kind;
    uint32_t gen;
    dht_id_t target;
    dht_cand_t *cand; /* DHT_SHORTLIST entries, allocated while the op runs */
    int ncand;
    int inflight; /* requests not yet soft-timed-out */
    uint32_t messages;
    uint64_t started;
    int hops; /* set when the answer was first in hand */
    uint64_t answer_ms;
    /* get: records found, one per publisher */
    dht_record_t *found;
    int nfound;
    /* put: the record to store, acks */
    dht_record_t *rec;
    int stores_pending;
    int stored;
    union {
        dht_lookup_cb lookup;
        dht_get_cb get;
        dht_put_cb put;
    } cb;
    void *arg;
} dht_op_t;

/* ---- record store (records.c) ---- */
typedef struct dht_recset {
    dht_id_t key;
    dht_record_t **recs;
    int n;
} dht_recset_t;

typedef struct dht_store {
    dht_recset_t **sets; /* open addressing by key */
    size_t cap;
    size_t nsets;
    size_t nrecords;
} dht_store_t;

typedef struct dht_pub {
    dht_record_t rec;
    uint64_t next_republish; /* monotonic */
} dht_pub_t;

/* ---- pings with a completion callback (ping.c) ---- */
typedef struct dht_ping_slot {
    bool used;
    bool done;       /* answered or timed out; the callback runs from dht_pings_finish() */
    int status;      /* 0, -ETIMEDOUT */
    uint32_t txid;   /* of the pending PING */
    uint32_t rtt_ms; /* when answered */
    uint64_t deadline;
    dht_ping_cb cb;
    void *arg;
} dht_ping_slot_t;

/* ---- the node ---- */
typedef struct dht_ratelimit {
    struct dht_rl_src {
        uint8_t ip[16];
        uint8_t family;
        double tokens;
        uint64_t last;
    } * src;
    size_t nsrc;
    double global_tokens;
    uint64_t global_last;
    double rate, burst, global_rate;
} dht_ratelimit_t;

struct dht {
    dht_config_t cfg;
    dht_id_t self;
    uint8_t x_sk[32]; /* X25519 form of our secret key */
    uint8_t hello_key[32];
    dht_rng_t rng;
    uint64_t counter;    /* nonce counter under cfg.epoch */
    int64_t wall_offset; /* wall_ms - now */
    struct {
        uint16_t srtt, rttvar; /* over every peer: the timeout prior for peers with no sample */
    } rtt;
    dht_table_t table;
    dht_peers_t peers;
    dht_pending_t *pending; /* grows to DHT_MAX_PENDING */
    size_t npending, pending_cap;
    dht_op_t *ops; /* grows to DHT_MAX_LOOKUPS slots */
    int ops_cap;
    int nops;  /* slots in use */
    int ndone; /* of which finished, awaiting dht_ops_finish() */
    dht_store_t store;
    dht_pub_t *pubs;
    int npubs;
    dht_ratelimit_t rl;
    uint8_t token_secret[2][32];
    uint64_t token_rotated;
    struct {
        dht_addr_t addr;
        uint8_t voter[8]; /* first bytes of the last voter's id, to count distinct voters */
        int votes;
    } ext[DHT_EXT_VOTES];
    int next_ext;
    uint64_t next_maintenance;
    uint64_t next_expiry;
    dht_stats_t stats;
    dht_ping_slot_t *pings; /* DHT_MAX_PINGS slots, allocated on the first dht_ping() */
    int npings;             /* slots in use */
    int npings_done;        /* of which finished, awaiting dht_pings_finish() */
    uint64_t now;           /* last `now` seen */
};

/* ---- crypto.c ---- */
/* Fills the hello key and our X25519 secret. Returns 0 or -EINVAL (bad key). */
int dht_crypto_init(dht_t *dht);
/* Derives the pairwise key with peer pk. Returns 0 or -EINVAL (pk not a valid point). */
int dht_crypto_pair_key(const dht_t *dht, const uint8_t pk[DHT_PK_LEN], uint8_t key[32]);
/* Seals plain into out (cap >= plen + DHT_OVERHEAD) with key; magic selects the datagram kind.
 * Returns the datagram length or -EMSGSIZE. */
int dht_crypto_seal(dht_t *dht, uint8_t magic, const uint8_t key[32], const uint8_t *plain,
                    size_t plen, uint8_t *out, size_t cap);
/* Opens a datagram in place: checks the header, decrypts into plain (cap >= len). Returns the
 * plaintext length or -EBADMSG. */
int dht_crypto_open(const dht_t *dht, const uint8_t key[32], const uint8_t *in, size_t len,
                    uint8_t *plain, size_t cap);
/* Checks and records the nonce's (epoch, counter) in window w. Returns 0 or -EALREADY. */
int dht_replay_check(dht_replay_t *w, const uint8_t nonce[DHT_NONCE_LEN]);
/* Address token for addr under secret. */
void dht_token_make(const uint8_t secret[32], const dht_addr_t *addr, uint8_t out[DHT_TOKEN_LEN]);

/* ---- codec.c: message bodies (msgpack) ---- */
typedef struct dht_msg {
    uint8_t type;
    uint32_t txid;
    /* requests */
    bool has_token;
    uint8_t token[DHT_TOKEN_LEN];
    dht_id_t target;       /* FIND_NODE, FIND_VALUE */
    const uint8_t *record; /* STORE: serialized record */
    size_t record_len;
    /* responses */
    dht_addr_t seen;      /* requester's address as seen by the responder */
    const uint8_t *nodes; /* compact contacts, concatenated */
    size_t nodes_len;
    const uint8_t *records[DHT_MAX_VALUES_PER_KEY]; /* VALUES */
    size_t record_lens[DHT_MAX_VALUES_PER_KEY];
    int nrecords;
    int status; /* STORED: 0 ok, else negative reason */
} dht_msg_t;

/* Encodes m into out; pad_to > 0 appends padding so the body reaches that size. Returns the length
 * or -EMSGSIZE. */
int dht_msg_encode(const dht_msg_t *m, size_t pad_to, uint8_t *out, size_t cap);
/* Decodes a body. Pointers in m point into buf. Returns 0 or -EBADMSG. */
int dht_msg_decode(dht_msg_t *m, const uint8_t *buf, size_t len);
/* Serializes a record (fixed fields then value). Returns the length or -EMSGSIZE. */
int dht_record_pack(const dht_record_t *r, uint8_t *out, size_t cap);
/* Parses a serialized record. Returns 0 or -EBADMSG. */
int dht_record_unpack(dht_record_t *r, const uint8_t *in, size_t len);
/* Signs r with sk (fills sig). */
void dht_record_sign(dht_record_t *r, const uint8_t sk[DHT_SK_LEN]);

/* ---- routing.c ---- */
int dht_table_init(dht_table_t *t, const dht_id_t *self, bool diversity);
void dht_table_free(dht_table_t *t);
/* Finds the bucket index for id. */
int dht_table_bucket_of(const dht_table_t *t, const dht_id_t *id);
dht_contact_t *dht_table_find(dht_table_t *t, const dht_id_t *id);
/* Result of offering a contact to the table. */
enum dht_insert_result {
    DHT_INS_UPDATED = 0, /* already present; refreshed */
    DHT_INS_ADDED,
    DHT_INS_REPLACEMENT, /* bucket full: kept in the replacement cache */
    DHT_INS_REJECTED,    /* self, or the IP-diversity cap */
};
/* Offers a contact seen at `now`; `answered` when it answered a request of ours. If the bucket is
 * full of good contacts, *evict_check is set to the stalest contact to ping (or NULL). */
int dht_table_insert(dht_table_t *t, const dht_id_t *id, const uint8_t pk[DHT_PK_LEN],
                     const dht_addr_t *addr, bool answered, uint64_t now,
                     dht_contact_t **evict_check);
/* Removes a contact and promotes the freshest replacement. Returns 1 if removed. */
int dht_table_remove(dht_table_t *t, const dht_id_t *id);
/* Copies up to n contacts closest to target into out (closest first). Returns the count. */
int dht_table_closest(const dht_table_t *t, const dht_id_t *target, dht_contact_t *out, int n);
size_t dht_table_count(const dht_table_t *t);

/* Peer cache. */
int dht_peers_init(dht_peers_t *ps, size_t max);
void dht_peers_free(dht_peers_t *ps);
dht_peer_t *dht_peers_find(dht_peers_t *ps, const uint8_t pk[DHT_PK_LEN]);
/* Finds or creates the peer (evicting an unpinned one when full). NULL on out of memory. */
dht_peer_t *dht_peers_get(dht_peers_t *ps, const uint8_t pk[DHT_PK_LEN], uint32_t rnd,
                          bool *created);

/* ---- records.c ---- */
int dht_store_init(dht_store_t *s);
void dht_store_free(dht_store_t *s);
/* Stores r if its signature is good, it has not expired at wall_s and it is not older than what is
 * held. Returns 0, -EBADMSG, -ETIME, -ESTALE (lower seq) or -ENOSPC. */
int dht_store_put(dht_store_t *s, const dht_record_t *r, uint64_t wall_s);
dht_recset_t *dht_store_find(dht_store_t *s, const dht_id_t *key);
/* Drops records expired at wall_s; returns how many. */
size_t dht_store_expire(dht_store_t *s, uint64_t wall_s);

/* ---- ratelimit.c ---- */
int dht_rl_init(dht_ratelimit_t *rl, double per_source, double burst, double global);
void dht_rl_free(dht_ratelimit_t *rl);
/* Takes one token for addr's IP at now; false when over the per-source or global limit. */
bool dht_rl_allow(dht_ratelimit_t *rl, const dht_addr_t *addr, uint64_t now);

/* ---- dht.c helpers used by lookup.c ---- */
/* Sends a request to (pk, addr). hello when the identity is unknown. Returns the pending slot
 * index or a negative errno. */
int dht_send_request(dht_t *dht, dht_msg_t *m, const uint8_t *pk, const dht_addr_t *to, bool hello,
                     int purpose, int op, int cand, uint64_t now);
uint64_t dht_wall_s(const dht_t *dht, uint64_t now);
uint32_t dht_rto(const dht_t *dht, const uint8_t *pk);

/* ---- publish.c ---- */
/* Stores a publication again (a put without a callback) and schedules the next time. */
void dht_republish(dht_t *dht, dht_pub_t *pub, uint64_t now);
/* Sends p (a contact that just answered for the first time) the records we are responsible for
 * and it is closer to than we are. */
void dht_replicate_to(dht_t *dht, const dht_peer_t *p, const dht_addr_t *addr, uint64_t now);

/* ---- lookup.c ---- */
int dht_op_start(dht_t *dht, int kind, const dht_id_t *target, uint64_t now);
void dht_op_on_reply(dht_t *dht, dht_pending_t *p, const dht_msg_t *m, uint64_t now);
void dht_op_on_timeout(dht_t *dht, dht_pending_t *p, bool hard, uint64_t now);
void dht_op_step(dht_t *dht, int op, uint64_t now);
void dht_op_cancel_all(dht_t *dht);
/* Frees a slot whose op never started (no callback). */
void dht_op_abort(dht_t *dht, int op);
/* Runs the callbacks of finished operations and frees their slots. */
void dht_ops_finish(dht_t *dht, uint64_t now);

/* ---- ping.c ---- */
/* A PONG answered the pending PING txid after rtt ms: completes the dht_ping() waiting for it. */
void dht_pings_on_pong(dht_t *dht, uint32_t txid, uint64_t rtt);
/* Marks pings past their deadline as timed out. */
void dht_pings_expire(dht_t *dht, uint64_t now);
/* The earliest deadline of a waiting ping (UINT64_MAX when none). */
uint64_t dht_pings_deadline(const dht_t *dht);
/* Runs the callbacks of finished pings and frees their slots. */
void dht_pings_finish(dht_t *dht);
/* dht_free(): every waiting ping gets -ECANCELED; frees the slots. */
void dht_pings_cancel_all(dht_t *dht);

#endif
