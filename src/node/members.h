/* members.h: the brokerless membership view. Every node signs a NODE RECORD (name, key, addresses,
 * version, domains, tags, start time, sequence and heartbeat counter); nodes exchange digests and
 * records by push-pull anti-entropy gossip; each node derives liveness from when it last saw a
 * member's heartbeat grow. Names bind to keys by a rule every node applies identically.
 *
 * Pure module: no I/O, no clock reads, no logging. `now` is the caller's monotonic clock in
 * milliseconds; random choices use a caller-held generator state. See docs/discovery.md. */
#ifndef P2P_NODE_MEMBERS_H
#define P2P_NODE_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "dht/dht.h"

#ifndef MEMBERS_MAX
#define MEMBERS_MAX 4096 /* members one table holds (self included) */
#endif
#ifndef MEMBERS_RECORD_MAX
#define MEMBERS_RECORD_MAX 1000 /* bytes of one signed record; fits one DHT value */
#endif
#ifndef MEMBERS_MAX_ADDRS
#define MEMBERS_MAX_ADDRS 4 /* peer/DHT addresses in a record */
#endif
#ifndef MEMBERS_ADDR_MAX
#define MEMBERS_ADDR_MAX 79 /* characters of one address ("host:port", "[v6]:port") */
#endif
#ifndef MEMBERS_MAX_DOMAINS
#define MEMBERS_MAX_DOMAINS 16 /* domains served listed in a record */
#endif
#ifndef MEMBERS_DOMAIN_MAX
#define MEMBERS_DOMAIN_MAX 31 /* characters of one domain name */
#endif
#ifndef MEMBERS_MAX_TAGS
#define MEMBERS_MAX_TAGS 16 /* key=value tags in a record */
#endif
#ifndef MEMBERS_TAG_MAX
#define MEMBERS_TAG_MAX 63 /* characters of one tag */
#endif
#ifndef MEMBERS_VERSION_MAX
#define MEMBERS_VERSION_MAX 31 /* characters of the version string */
#endif
#ifndef MEMBERS_NAME_MAX
#define MEMBERS_NAME_MAX 63 /* characters of a node name (a DNS label) */
#endif
#ifndef MEMBERS_GOSSIP_MAX_BYTES
#define MEMBERS_GOSSIP_MAX_BYTES (256 * 1024) /* bytes of records in one gossip message */
#endif
#ifndef MEMBERS_MSG_MAX
#define MEMBERS_MSG_MAX (MEMBERS_GOSSIP_MAX_BYTES + MEMBERS_MAX * 32 + 64) /* one gossip body */
#endif
#ifndef MEMBERS_HEARTBEAT_MIN_MS
#define MEMBERS_HEARTBEAT_MIN_MS 1000 /* shortest default interval between heartbeat bumps */
#endif
#ifndef MEMBERS_HEARTBEAT_MAX_MS
#define MEMBERS_HEARTBEAT_MAX_MS 10000 /* longest default interval between heartbeat bumps */
#endif
#ifndef MEMBERS_GOSSIP_INTERVAL_MS
#define MEMBERS_GOSSIP_INTERVAL_MS 1000 /* interval between gossip rounds (the lead's timer) */
#endif
#ifndef MEMBERS_GOSSIP_FANOUT
#define MEMBERS_GOSSIP_FANOUT 2 /* partners per gossip round */
#endif
#ifndef MEMBERS_PEER_TIMEOUT_MS
#define MEMBERS_PEER_TIMEOUT_MS 120000 /* default PEER_TIMEOUT: no heartbeat growth -> down */
#endif
#ifndef MEMBERS_FORGET_MS
#define MEMBERS_FORGET_MS (24 * 3600 * 1000LL) /* default: a member down this long is forgotten */
#endif

#define MEMBERS_PREFIX_LEN   8  /* id bytes that name a member in digests and want lists */
#define MEMBERS_DIGEST_ENTRY 24 /* prefix(8) | seq(8, big-endian) | heartbeat(8, big-endian) */

typedef struct members members_t;

/* A node record, decoded. Strings are NUL-terminated; unused array slots are empty. */
typedef struct members_record {
    char name[MEMBERS_NAME_MAX + 1];
    uint8_t public_key[DHT_PK_LEN];
    char addrs[MEMBERS_MAX_ADDRS][MEMBERS_ADDR_MAX + 1]; /* DHT / peer-channel "host:port" */
    uint8_t naddrs;
    char http[MEMBERS_ADDR_MAX + 1]; /* HTTP "host:port", "" when none */
    char version[MEMBERS_VERSION_MAX + 1];
    char domains[MEMBERS_MAX_DOMAINS][MEMBERS_DOMAIN_MAX + 1];
    uint8_t ndomains;
    char tags[MEMBERS_MAX_TAGS][MEMBERS_TAG_MAX + 1]; /* "key=value" */
    uint8_t ntags;
    uint64_t start_ms;  /* wall clock when the node started */
    uint64_t seq;       /* grows on every change of the fields above */
    uint64_t heartbeat; /* grows while the node is alive */
    uint8_t sig[DHT_SIG_LEN];
} members_record_t;

typedef struct members_config {
    uint8_t public_key[DHT_PK_LEN];
    uint8_t secret_key[DHT_SK_LEN];
    uint64_t peer_timeout_ms; /* 0 = MEMBERS_PEER_TIMEOUT_MS */
    uint64_t heartbeat_ms;    /* 0 = peer_timeout_ms / 12 within [MIN, MAX]_MS above */
    uint64_t forget_ms;       /* 0 = MEMBERS_FORGET_MS */
    uint32_t max_members;     /* 0 or above MEMBERS_MAX = MEMBERS_MAX */
    bool skip_verify;         /* simulator only: trust received signatures; never set in p2p-node */
} members_config_t;

/* What iteration and lookups report about one member. */
typedef struct members_view {
    dht_id_t id;
    members_record_t rec;
    uint64_t last_seen_s; /* seconds since its heartbeat last grew (on our clock) */
    bool up;
    bool conflict; /* another key holds this name (this one lost the name) */
    bool self;
} members_view_t;

typedef struct members_stats {
    uint64_t members, up, down;
    uint64_t conflicts;       /* members currently flagged `conflict` */
    uint64_t conflicts_total; /* times a second key was seen claiming a held name */
    uint64_t merged;          /* records accepted (new member or newer version) */
    uint64_t stale;           /* records ignored: not newer than what we hold */
    uint64_t rejected;        /* malformed, bad signature, too old, or unverifiable */
    uint64_t refused_full;    /* new members refused because the table was full */
    uint64_t evicted;         /* down members dropped to make room */
    uint64_t forgotten;       /* down members forgotten after forget_ms */
} members_stats_t;

/* --- records (pure codec) --- */

/* Signs rec with sk (rec->public_key must be its key) and writes the signed record bytes to out.
 * Returns the length, -EINVAL for a field that breaks the record rules (name not a DNS label,
 * control characters, tag without '='), or -EMSGSIZE past MEMBERS_RECORD_MAX or cap. */
int members_record_sign(members_record_t *rec, const uint8_t sk[DHT_SK_LEN], uint8_t *out,
                        size_t cap);

/* Decodes signed record bytes into rec (checking structure before msgpack-c sees them) and, when
 * verify is true, the signature. Returns 0 or -EBADMSG. */
int members_record_decode(members_record_t *rec, const uint8_t *buf, size_t len, bool verify);

/* --- the table --- */

/* Creates a table. Returns NULL when out of memory. members_set_self() must run before gossip. */
members_t *members_new(const members_config_t *cfg);

/* Frees the table. Accepts NULL. */
void members_free(members_t *m);

/* Sets our own record from rec (name, addrs, http, version, domains, tags, start_ms; public_key
 * and signature are filled in). The first call takes rec->seq as the starting sequence (use the
 * wall clock in ms, which grows across restarts); later calls bump seq when the content changed.
 * Returns 1 when our record changed, 0 when identical, or an error of members_record_sign(). */
int members_set_self(members_t *m, const members_record_t *rec, uint64_t now);

/* Our signed record bytes (e.g. to publish in the DHT). Valid until the next call on m. */
const uint8_t *members_self_bytes(const members_t *m, size_t *len);

/* Call every MEMBERS_GOSSIP_INTERVAL_MS or so: bumps our heartbeat when heartbeat_ms has passed
 * (re-signing our record), marks members up/down, forgets members down longer than forget_ms.
 * Returns how many members changed state (came up, went down, were forgotten). */
int members_tick(members_t *m, uint64_t now);

/* Merges one signed record received with the sender's age hint (ms since the sender saw its
 * heartbeat grow; pass peer_timeout_ms for a record of unknown freshness, e.g. from the DHT).
 * Returns 1 when the view changed (new member, new content, or a down member came back up), 0
 * when it did not (a record not newer than ours, or a heartbeat of a live member), -EBADMSG
 * (malformed, bad signature, or age past forget_ms), -ENOSPC (table full and no down member to
 * evict), -EEXIST (another key with the same 8-byte id prefix is listed), -ENOMEM. */
int members_merge(members_t *m, const uint8_t *rec, size_t len, uint64_t age_ms, uint64_t now);

/* --- gossip messages (msgpack maps; see docs/discovery.md) --- */

/* Writes the request body {"digest": bin} (our digest) to out (appended). Returns 0 or -E2BIG. */
int members_gossip_request(members_t *m, p2p_buf_t *out);

/* Handles a peer's request: appends {"records": [[bin, age_ms]...], "want": [bin8...]} to out:
 * records the requester lacks or holds older (freshest first, within MEMBERS_GOSSIP_MAX_BYTES)
 * and the ids we want from it. Does not change the table. Returns 0, -EBADMSG or -E2BIG. */
int members_gossip_respond(members_t *m, const uint8_t *req, size_t len, uint64_t now,
                           p2p_buf_t *out);

/* Consumes the response to our request: merges its records, then appends the push body
 * {"records": [...]} answering its want list to push (nothing appended when it wants nothing).
 * Returns the number of members changed (>= 0) or -EBADMSG for a malformed body. */
int members_gossip_consume_response(members_t *m, const uint8_t *resp, size_t len, uint64_t now,
                                    p2p_buf_t *push);

/* Consumes a push body {"records": [...]}. Returns members changed (>= 0) or -EBADMSG. */
int members_gossip_consume_push(members_t *m, const uint8_t *body, size_t len, uint64_t now);

/* Digest only: appends n * MEMBERS_DIGEST_ENTRY bytes (every member). Returns n or -E2BIG. */
int members_digest(const members_t *m, p2p_buf_t *out);

/* --- lookups --- */

/* Chooses up to n gossip partners (never self) at random from the live members using the
 * generator state *rng (any seed), and now and then one down member more, to heal partitions
 * (probability down / (live + 1), at most 1/4). out must hold n + 1 ids. Returns the count. */
int members_pick(const members_t *m, uint64_t now, size_t n, uint64_t *rng, dht_id_t *out);

/* Finds the member that holds name (the conflict winner; it may be down). Returns 0 and fills out
 * (may be NULL), or -ENOENT. */
int members_find_name(const members_t *m, const char *name, uint64_t now, members_view_t *out);

/* Finds the member whose hex id starts with hex (at least 8 digits). Returns 0, -EINVAL (too
 * short or not hex), -ENOENT, or -ENOTUNIQ when several members match. */
int members_find_prefix(const members_t *m, const char *hex, uint64_t now, members_view_t *out);

/* Finds a member by id. Returns 0 or -ENOENT. */
int members_find_id(const members_t *m, const dht_id_t *id, uint64_t now, members_view_t *out);

/* Live members whose name matches pattern (`*` any run, `?` one character), conflict losers
 * excluded, sorted by name: writes up to cap ids to out and returns the total match count. */
int members_glob(const members_t *m, const char *pattern, uint64_t now, dht_id_t *out, size_t cap);

/* True when name matches the glob pattern (`*`, `?`). */
bool members_glob_match(const char *pattern, const char *name);

/* Calls cb for every member (up and down, self included) sorted by name then id. Returns the
 * number visited or -ENOMEM. */
int members_foreach(const members_t *m, uint64_t now,
                    void (*cb)(void *arg, const members_view_t *v), void *arg);

/* Counters and current totals. */
void members_get_stats(const members_t *m, uint64_t now, members_stats_t *out);

#endif
