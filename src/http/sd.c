/* sd.c: GET /api/sd/prometheus, Prometheus's HTTP service discovery: one target group per live
 * member of the network, its metrics address taken from its signed node record. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/metrics-internal.h"

/* Splits "host:port", "[v6]:port" or a bare "v6:port" into host (brackets dropped) and port.
 * False when there is no port. */
static bool split_hostport(const char *s, char *host, size_t hcap, char *port, size_t pcap)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pcap) return false;
    const char *h = s;
    size_t n = (size_t)(colon - s);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
    if (n >= hcap) return false;
    memcpy(host, h, n);
    host[n] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    return true;
}

static bool unspecified(const char *host)
{
    return !host[0] || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/* The scrape target of member v ("host:port", IPv6 in brackets), or false when it has none. */
static bool target_of(const members_view_t *v, char *out, size_t cap)
{
    char host[MEMBERS_ADDR_MAX + 1], port[8];
    if (!split_hostport(v->rec.http, host, sizeof(host), port, sizeof(port))) return false;
    if (unspecified(host)) { /* bound to every address: reach it where its peers do */
        char phost[MEMBERS_ADDR_MAX + 1], pport[8];
        if (v->rec.naddrs == 0 ||
            !split_hostport(v->rec.addrs[0], phost, sizeof(phost), pport, sizeof(pport)) ||
            unspecified(phost))
            return false;
        snprintf(host, sizeof(host), "%s", phost);
    }
    int n = strchr(host, ':') ? snprintf(out, cap, "[%s]:%s", host, port)
                              : snprintf(out, cap, "%s:%s", host, port);
    return n > 0 && (size_t)n < cap;
}

/* Adds __meta_p2p_tag_KEY for a "key=value" tag; key characters outside [A-Za-z0-9_] become _. */
static void add_tag(json_t *labels, const char *tag)
{
    const char *eq = strchr(tag, '=');
    if (!eq || eq == tag) return;
    char name[32 + MEMBERS_TAG_MAX];
    int o = snprintf(name, sizeof(name), "__meta_p2p_tag_");
    for (const char *p = tag; p < eq && o < (int)sizeof(name) - 1; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        name[o++] = ok ? c : '_';
    }
    name[o] = '\0';
    json_object_set_new(labels, name, json_string(eq + 1));
}

typedef struct sd_ctx {
    json_t *groups;
    bool failed;
} sd_ctx_t;

static void member_cb(void *arg, const members_view_t *v)
{
    sd_ctx_t *c = arg;
    char target[MEMBERS_ADDR_MAX + 8], id[2 * DHT_ID_LEN + 1];
    if (!v->up || v->conflict || !target_of(v, target, sizeof(target))) return;
    p2p_hex_encode(id, v->id.b, DHT_ID_LEN);
    json_t *labels = json_pack("{s:s,s:s,s:s,s:s}", "__meta_p2p_node", v->rec.name,
                               "__meta_p2p_node_id", id, "__meta_p2p_version", v->rec.version,
                               "__meta_p2p_self", v->self ? "true" : "false");
    for (int i = 0; labels && i < v->rec.ntags; i++)
        add_tag(labels, v->rec.tags[i]);
    json_t *g = labels ? json_pack("{s:[s],s:o}", "targets", target, "labels", labels) : NULL;
    if (!g || json_array_append_new(c->groups, g) < 0) c->failed = true;
}

json_t *http_sd_document(const members_t *m, uint64_t now)
{
    sd_ctx_t c = {json_array(), false};
    if (!c.groups) return NULL;
    if (m && members_foreach(m, now, member_cb, &c) < 0) c.failed = true;
    if (c.failed) {
        json_decref(c.groups);
        return NULL;
    }
    return c.groups;
}

void http_sd_prometheus(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    json_t *doc = http_sd_document(api->node->members, uv_now(api->node->loop));
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    http_respond_take(x, 200, "application/json", text, strlen(text));
}
