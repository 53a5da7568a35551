/* config.c: resolves node_config_t from flags, environment, a KEY=VALUE config file and defaults,
 * and validates every item (see config.h). */
#include "node/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/base.h"
#include "node/keys.h"
#include "node/log.h"

enum key {
    K_NAME,
    K_HOST,
    K_PORT,
    K_DHT_HOST,
    K_DHT_PORT,
    K_BOOTSTRAP,
    K_TAGS,
    K_DATA_DIR,
    K_CONFIG,
    K_NETKEY_FILE,
    K_NETKEY,
    K_AUTH_FILE,
    K_AUTH,
    K_AUTH_PREV,
    K_TOKEN_EXPIRE,
    K_MAX_PEERS,
    K_PEER_TIMEOUT,
    K_METRICS,
    K_PEER_BULK,
    K_LOG_LEVEL,
    K_LOG_FORMAT,
    K_FILE_ROOTS,
    K_CHECK_PORT_ALLOW,
    K_ALERT_WEBHOOK,
    K_TLS_CERT,
    K_TLS_KEY,
    K_CORS,
    K_HTTP_RATE,
    K_HTTP_BURST,
    K_UI_DIR,
    K_COUNT
};

/* Layers in increasing precedence. */
enum layer { L_DEFAULT = 0, L_FILE, L_ENV, L_FLAG };

static const struct setting {
    const char *flag; /* without "--"; NULL = no flag */
    const char *env;  /* environment and config-file name */
    const char *help;
} settings[K_COUNT] = {
    [K_NAME] = {"name", "NODE_NAME", "node name, a DNS label (default: host name)"},
    [K_HOST] = {"host", "NODE_HOST", "HTTP bind address (default 127.0.0.1)"},
    [K_PORT] = {"port", "NODE_PORT", "HTTP/WebSocket port (default 8000)"},
    [K_DHT_HOST] = {"dht-host", "DHT_HOST", "DHT bind address (default 0.0.0.0 and ::)"},
    [K_DHT_PORT] = {"dht-port", "DHT_PORT", "DHT UDP port (default 5678, 0 = any)"},
    [K_BOOTSTRAP] = {"bootstrap", "BOOTSTRAP_NODES", "H:P[,H:P...] contacts to join through"},
    [K_TAGS] = {"tags", "NODE_TAGS", "KEY=VALUE[,KEY=VALUE...] published in the node record"},
    [K_DATA_DIR] = {"data-dir", "DATA_DIR", "identity, database, socket (default ./data/NAME)"},
    [K_CONFIG] = {"config", "CONFIG_FILE", "KEY=VALUE config file"},
    [K_NETKEY_FILE] = {"network-key-file", "NETWORK_KEY_FILE",
                       "network key file (default DATA_DIR/network.key)"},
    [K_NETKEY] = {NULL, "NETWORK_KEY", "the network key itself, base64 of 32 bytes"},
    [K_AUTH_FILE] = {"auth-secret-file", "AUTH_SECRET_FILE",
                     "JWT secret file (default DATA_DIR/auth.secret)"},
    [K_AUTH] = {NULL, "AUTH_SECRET", "the JWT secret itself (>= 32 bytes)"},
    [K_AUTH_PREV] = {NULL, "AUTH_SECRET_PREVIOUS",
                     "the previous JWT secret, still accepted during a rotation"},
    [K_TOKEN_EXPIRE] = {"token-expire-minutes", "TOKEN_EXPIRE_MINUTES",
                        "access-token lifetime (default 60)"},
    [K_MAX_PEERS] = {"max-peers", "MAX_PEERS", "cap on tracked peers (default 4096)"},
    [K_PEER_TIMEOUT] = {"peer-timeout", "PEER_TIMEOUT",
                        "seconds before a silent peer is dead (120)"},
    [K_METRICS] = {"metrics-enabled", "METRICS_ENABLED", "serve /metrics (default true)"},
    [K_PEER_BULK] = {"peer-bulk", "PEER_BULK",
                     "AES-256-GCM bulk mode between nodes on the peer channel (default true)"},
    [K_LOG_LEVEL] = {"log-level", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR (default INFO)"},
    [K_LOG_FORMAT] = {"log-format", "LOG_FORMAT", "text or json (default text on a TTY)"},
    [K_FILE_ROOTS] = {"file-roots", "FILE_ROOTS",
                      "DIR[,DIR...] the file service may reach (default DATA_DIR/files)"},
    [K_CHECK_PORT_ALLOW] = {"check-port-allow", "CHECK_PORT_ALLOW",
                            "ADDR[/BITS][,...] network.check_port may probe, besides loopback "
                            "and the network's nodes"},
    [K_ALERT_WEBHOOK] = {"alert-webhook", "ALERT_WEBHOOK_URL",
                         "http(s) URL that receives alert events as JSON POSTs"},
    [K_TLS_CERT] = {"tls-cert", "TLS_CERT", "PEM certificate chain: serve HTTPS (with --tls-key)"},
    [K_TLS_KEY] = {"tls-key", "TLS_KEY", "PEM private key of --tls-cert"},
    [K_CORS] = {"cors-origins", "CORS_ORIGINS",
                "ORIGIN[,ORIGIN...] allowed cross-origin callers, or * (default none)"},
    [K_HTTP_RATE] = {"http-rate-limit", "HTTP_RATE_LIMIT",
                     "HTTP requests per second per client address, 0 = off (default 100)"},
    [K_HTTP_BURST] = {"http-rate-burst", "HTTP_RATE_BURST",
                      "burst allowed above that rate (default 200)"},
    [K_UI_DIR] = {"ui-dir", "UI_DIR",
                  "dashboard files served at / (default: admin-ui/ found "
                  "beside the program or in the working directory)"},
};

typedef struct source {
    const char *val[K_COUNT];
    int layer[K_COUNT];
    int line[K_COUNT]; /* config-file line */
    const char *file;
    char *err;
    size_t errlen;
} source_t;

static int fail(source_t *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, s->errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Writes where setting k came from ("flag --dht-port", "DHT_PORT in the environment"...). */
static void origin(const source_t *s, int k, char *out, size_t cap)
{
    switch (s->layer[k]) {
    case L_FLAG:
        snprintf(out, cap, "--%s", settings[k].flag);
        break;
    case L_ENV:
        snprintf(out, cap, "%s (environment)", settings[k].env);
        break;
    case L_FILE:
        snprintf(out, cap, "%s (config file %s line %d)", settings[k].env, s->file, s->line[k]);
        break;
    default:
        snprintf(out, cap, "%s (default)", settings[k].env);
        break;
    }
}

static int bad(source_t *s, int k, const char *why)
{
    char o[NODE_PATH_MAX + 96];
    origin(s, k, o, sizeof(o));
    return fail(s, "invalid %s: '%.200s' %s", o, s->val[k], why);
}

static void set(source_t *s, int k, const char *v, int layer, int line)
{
    if (layer < s->layer[k] && s->val[k]) return;
    s->val[k] = v;
    s->layer[k] = layer;
    s->line[k] = line;
}

static int key_by_env(const char *name, size_t n)
{
    for (int k = 0; k < K_COUNT; k++)
        if (strlen(settings[k].env) == n && memcmp(settings[k].env, name, n) == 0) return k;
    return -1;
}

static int key_by_flag(const char *name, size_t n)
{
    for (int k = 0; k < K_COUNT; k++)
        if (settings[k].flag && strlen(settings[k].flag) == n &&
            memcmp(settings[k].flag, name, n) == 0)
            return k;
    return -1;
}

static int read_flags(source_t *s, int argc, char *const *argv)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') return fail(s, "unexpected argument '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        int k = key_by_flag(name, n);
        if (k < 0) return fail(s, "unknown flag '--%.*s' (see --help)", (int)n, name);
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) return fail(s, "flag --%s needs a value", settings[k].flag);
            v = argv[++i];
        }
        set(s, k, v, L_FLAG, 0);
    }
    return 0;
}

static void read_env(source_t *s, char *const *env)
{
    for (size_t i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (!eq) continue;
        int k = key_by_env(env[i], (size_t)(eq - env[i]));
        if (k >= 0 && eq[1]) set(s, k, eq + 1, L_ENV, 0); /* empty = unset, as in .env files */
    }
}

static char *trim(char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    char *e = p + strlen(p);
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return p;
}

/* Parses the config file text in place. Unknown keys are ignored so that .env files of the Python
 * system, which hold other settings too, can be reused. */
static int parse_file(source_t *s, char *text)
{
    int lineno = 0;
    char *save = NULL;
    for (char *line = text; line; line = save) {
        lineno++;
        save = strchr(line, '\n');
        if (save) *save++ = '\0';
        char *p = trim(line);
        if (*p == '\0' || *p == '#') continue;
        if (strncmp(p, "export ", 7) == 0) p = trim(p + 7);
        char *eq = strchr(p, '=');
        if (!eq || eq == p)
            return fail(s, "config file %s line %d: expected KEY=VALUE", s->file, lineno);
        *eq = '\0';
        char *key = trim(p), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        int k = key_by_env(key, strlen(key));
        if (k >= 0 && k != K_CONFIG && *val) set(s, k, val, L_FILE, lineno);
    }
    return 0;
}

static int read_file(source_t *s, char **text)
{
    FILE *f = fopen(s->file, "r");
    if (!f) return fail(s, "cannot read config file %s: %s", s->file, strerror(errno));
    char *buf = malloc(NODE_CONFIG_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return fail(s, "out of memory reading config file %s", s->file);
    }
    size_t n = fread(buf, 1, NODE_CONFIG_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || n > NODE_CONFIG_FILE_MAX) {
        free(buf);
        return fail(s, "cannot read config file %s: %s", s->file,
                    rerr ? "read error" : "larger than 64 KiB");
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n)) {
        free(buf);
        return fail(s, "config file %s is not text", s->file);
    }
    *text = buf;
    return 0;
}

bool node_config_valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 63) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i < n - 1)) return false;
    }
    return true;
}

static bool valid_hostname(const char *h)
{
    if (!*h || strlen(h) > 253) return false;
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_') return false;
    return true;
}

static bool is_ip(const char *h)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

int node_config_split_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    const char *hs, *he, *ps;
    if (s[0] == '[') {
        hs = s + 1;
        he = strchr(hs, ']');
        if (!he || he[1] != ':') return -EINVAL;
        ps = he + 2;
    } else {
        hs = s;
        he = strrchr(s, ':');
        if (!he || memchr(s, ':', (size_t)(he - s))) return -EINVAL; /* bare v6 needs brackets */
        ps = he + 1;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= hostcap || !*ps || strlen(ps) > 5) return -EINVAL;
    for (const char *p = ps; *p; p++)
        if (!isdigit((unsigned char)*p)) return -EINVAL;
    long v = strtol(ps, NULL, 10);
    if (v < 1 || v > 65535) return -EINVAL;
    memcpy(host, hs, hl);
    host[hl] = '\0';
    if (s[0] == '[') {
        unsigned char tmp[16];
        if (inet_pton(AF_INET6, host, tmp) != 1) return -EINVAL;
    } else if (!valid_hostname(host)) {
        return -EINVAL;
    }
    *port = (int)v;
    return 0;
}

int node_config_parse_duration(const char *s, unsigned long long *out)
{
    if (!s || !isdigit((unsigned char)*s)) return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -EINVAL;
    unsigned long long mul = 1;
    if (*end) {
        if (end[1]) return -EINVAL;
        switch (*end) {
        case 's':
            mul = 1;
            break;
        case 'm':
            mul = 60;
            break;
        case 'h':
            mul = 3600;
            break;
        case 'd':
            mul = 86400;
            break;
        default:
            return -EINVAL;
        }
    }
    if (v == 0 || v > ULLONG_MAX / mul / 1000) return -EINVAL;
    *out = v * mul;
    return 0;
}

static int parse_int(source_t *s, int k, long lo, long hi, int *out)
{
    const char *v = s->val[k];
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) {
        char why[64];
        snprintf(why, sizeof(why), "is not a number in %ld..%ld", lo, hi);
        return bad(s, k, why);
    }
    *out = (int)n;
    return 0;
}

static int parse_bool(source_t *s, int k, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s->val[k], yes[i]) == 0) return *out = true, 0;
        if (strcasecmp(s->val[k], no[i]) == 0) return *out = false, 0;
    }
    return bad(s, k, "is not a boolean (true/false)");
}

static int copy(source_t *s, int k, char *dst, size_t cap)
{
    size_t n = strlen(s->val[k]);
    if (n >= cap) return bad(s, k, "is too long");
    memcpy(dst, s->val[k], n + 1);
    return 0;
}

static int parse_bootstrap(source_t *s, node_config_t *cfg)
{
    const char *p = s->val[K_BOOTSTRAP];
    cfg->bootstrap_count = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n) {
            char item[sizeof(cfg->bootstrap[0])], host[sizeof(item)];
            int port;
            if (n >= sizeof(item)) return bad(s, K_BOOTSTRAP, "has an entry that is too long");
            if (cfg->bootstrap_count >= NODE_MAX_BOOTSTRAP)
                return bad(s, K_BOOTSTRAP, "has more than 32 entries");
            memcpy(item, p, n);
            item[n] = '\0';
            if (node_config_split_hostport(item, host, sizeof(host), &port) < 0) {
                char why[160];
                snprintf(why, sizeof(why), "has a bad entry '%s' (want HOST:PORT or [IPV6]:PORT)",
                         item);
                return bad(s, K_BOOTSTRAP, why);
            }
            memcpy(cfg->bootstrap[cfg->bootstrap_count++], item, n + 1);
        }
        p += n;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == ',') p++;
    }
    return 0;
}

/* KEY=VALUE[,...]: keys [a-z0-9_.-], values printable without ',', at most NODE_MAX_TAGS. */
static int parse_tags(source_t *s, node_config_t *cfg)
{
    const char *p = s->val[K_TAGS];
    cfg->tag_count = 0;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n) {
            const char *eq = memchr(p, '=', n);
            if (n >= sizeof(cfg->tags[0]) || !eq || eq == p)
                return bad(s, K_TAGS, "needs KEY=VALUE entries of at most 63 characters");
            for (const char *k = p; k < eq; k++)
                if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' ||
                      *k == '-' || *k == '.'))
                    return bad(s, K_TAGS, "has a key outside [a-z0-9_.-]");
            for (const char *v = eq + 1; v < p + n; v++)
                if ((unsigned char)*v < 0x20 || *v == 0x7f)
                    return bad(s, K_TAGS, "has a control character");
            if (cfg->tag_count >= NODE_MAX_TAGS) return bad(s, K_TAGS, "has more than 16 entries");
            memcpy(cfg->tags[cfg->tag_count], p, n);
            cfg->tags[cfg->tag_count++][n] = '\0';
        }
        p += n;
        while (*p == ' ')
            p++;
        if (*p == ',') p++;
    }
    return 0;
}

/* DIR[,DIR...]: at most NODE_MAX_FILE_ROOTS non-empty paths; default DATA_DIR/files. */
static int parse_file_roots(source_t *s, node_config_t *cfg)
{
    const char *p = s->val[K_FILE_ROOTS];
    cfg->file_root_count = 0;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            if (n >= sizeof(cfg->file_roots[0])) return bad(s, K_FILE_ROOTS, "has a path too long");
            if (cfg->file_root_count >= NODE_MAX_FILE_ROOTS)
                return bad(s, K_FILE_ROOTS, "has more than 8 entries");
            memcpy(cfg->file_roots[cfg->file_root_count], p, n);
            cfg->file_roots[cfg->file_root_count++][n] = '\0';
        }
        p += n;
        if (*p == ',') p++;
    }
    if (cfg->file_root_count == 0) {
        int n = snprintf(cfg->file_roots[0], sizeof(cfg->file_roots[0]), "%s/files", cfg->data_dir);
        if (n < 0 || (size_t)n >= sizeof(cfg->file_roots[0]))
            return bad(s, K_DATA_DIR, "is too long");
        cfg->file_root_count = 1;
        cfg->file_roots_default = true;
    }
    return 0;
}

/* ADDR[/BITS][,...]: numeric IPv4 or IPv6 addresses with an optional prefix length. */
static int check_allowlist(source_t *s, const char *list)
{
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (n) {
            if (n >= sizeof(item)) return bad(s, K_CHECK_PORT_ALLOW, "has an entry too long");
            memcpy(item, p, n);
            item[n] = '\0';
            char *slash = strchr(item, '/');
            long bits = -1;
            if (slash) {
                char *end;
                *slash = '\0';
                bits = strtol(slash + 1, &end, 10);
                if (end == slash + 1 || *end || bits < 0)
                    return bad(s, K_CHECK_PORT_ALLOW, "has a bad prefix length");
            }
            unsigned char a[16];
            if (inet_pton(AF_INET, item, a) == 1) {
                if (bits > 32) return bad(s, K_CHECK_PORT_ALLOW, "has a prefix over 32");
            } else if (inet_pton(AF_INET6, item, a) == 1) {
                if (bits > 128) return bad(s, K_CHECK_PORT_ALLOW, "has a prefix over 128");
            } else {
                return bad(s, K_CHECK_PORT_ALLOW, "has an entry that is not a numeric address");
            }
        }
        p += n;
        if (*p == ',') p++;
    }
    return 0;
}

static void default_name(char *out, size_t cap)
{
    char h[256] = "";
    if (gethostname(h, sizeof(h) - 1) != 0) h[0] = '\0';
    h[sizeof(h) - 1] = '\0';
    char *dot = strchr(h, '.');
    if (dot) *dot = '\0';
    for (char *p = h; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    snprintf(out, cap, "%s", node_config_valid_name(h) ? h : "node");
}

/* The HTTP server's settings: TLS files, CORS origins, the per-address rate limit, the UI dir. */
static int resolve_http(source_t *s, node_config_t *cfg)
{
    int rc;
    if (s->val[K_TLS_CERT] && *s->val[K_TLS_CERT] &&
        (rc = copy(s, K_TLS_CERT, cfg->tls_cert, sizeof(cfg->tls_cert))) < 0)
        return rc;
    if (s->val[K_TLS_KEY] && *s->val[K_TLS_KEY] &&
        (rc = copy(s, K_TLS_KEY, cfg->tls_key, sizeof(cfg->tls_key))) < 0)
        return rc;
    if (!cfg->tls_cert[0] != !cfg->tls_key[0])
        return fail(s, "invalid %s: --tls-cert and --tls-key go together",
                    cfg->tls_cert[0] ? "--tls-cert" : "--tls-key");
    if (s->val[K_CORS] && *s->val[K_CORS]) {
        if ((rc = copy(s, K_CORS, cfg->cors_origins, sizeof(cfg->cors_origins))) < 0) return rc;
        int n = 0;
        for (char *p = cfg->cors_origins; *p;) {
            char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            size_t scheme = strncmp(p, "http://", 7) == 0    ? 7
                            : strncmp(p, "https://", 8) == 0 ? 8
                                                             : 0;
            bool ok = len == 1 ? *p == '*' : scheme > 0 && len > scheme;
            for (size_t i = scheme; ok && i < len; i++) /* a host and a port: no path */
                if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f || p[i] == '/') ok = false;
            if (!ok || ++n > NODE_MAX_CORS)
                return bad(s, K_CORS,
                           n > NODE_MAX_CORS ? "has too many origins"
                                             : "needs * or http(s)://HOST[:PORT] items");
            p = e ? e + 1 : p + len;
        }
    }
    cfg->http_rate = 100;
    if (s->val[K_HTTP_RATE] && (rc = parse_int(s, K_HTTP_RATE, 0, 1000000, &cfg->http_rate)) < 0)
        return rc;
    cfg->http_burst = 200;
    if (s->val[K_HTTP_BURST] && (rc = parse_int(s, K_HTTP_BURST, 1, 1000000, &cfg->http_burst)) < 0)
        return rc;
    if (s->val[K_UI_DIR] && *s->val[K_UI_DIR] &&
        (rc = copy(s, K_UI_DIR, cfg->ui_dir, sizeof(cfg->ui_dir))) < 0)
        return rc;
    return 0;
}

static int resolve(source_t *s, node_config_t *cfg, bool tty)
{
    int rc;
    memset(cfg, 0, sizeof(*cfg));
    if (s->val[K_NAME]) {
        if ((rc = copy(s, K_NAME, cfg->name, sizeof(cfg->name))) < 0) return rc;
        if (!node_config_valid_name(cfg->name))
            return bad(s, K_NAME, "is not a DNS label ([a-z0-9] and inner '-', at most 63)");
    } else {
        default_name(cfg->name, sizeof(cfg->name));
    }
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    if (s->val[K_HOST]) {
        if ((rc = copy(s, K_HOST, cfg->host, sizeof(cfg->host))) < 0) return rc;
        if (!is_ip(cfg->host) && !valid_hostname(cfg->host))
            return bad(s, K_HOST, "is not an address or host name");
    }
    cfg->port = 8000;
    if (s->val[K_PORT] && (rc = parse_int(s, K_PORT, 0, 65535, &cfg->port)) < 0) return rc;
    if (s->val[K_DHT_HOST] && *s->val[K_DHT_HOST]) {
        if ((rc = copy(s, K_DHT_HOST, cfg->dht_host, sizeof(cfg->dht_host))) < 0) return rc;
        if (!is_ip(cfg->dht_host))
            return bad(s, K_DHT_HOST, "is not a numeric IPv4 or IPv6 address");
    }
    cfg->dht_port = 5678;
    if (s->val[K_DHT_PORT] && (rc = parse_int(s, K_DHT_PORT, 0, 65535, &cfg->dht_port)) < 0)
        return rc;
    if (s->val[K_BOOTSTRAP] && (rc = parse_bootstrap(s, cfg)) < 0) return rc;
    if (s->val[K_TAGS] && (rc = parse_tags(s, cfg)) < 0) return rc;
    if (s->val[K_DATA_DIR]) {
        if (!*s->val[K_DATA_DIR]) return bad(s, K_DATA_DIR, "is empty");
        if ((rc = copy(s, K_DATA_DIR, cfg->data_dir, sizeof(cfg->data_dir))) < 0) return rc;
    } else {
        snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./data/%s", cfg->name);
    }
    if (s->file) snprintf(cfg->config_file, sizeof(cfg->config_file), "%s", s->file);
    /* The network key and the auth secret each come from a file or the value itself: whichever
     * was given at the higher precedence wins; the other is dropped. */
    if (s->val[K_NETKEY_FILE] &&
        (!s->val[K_NETKEY] || s->layer[K_NETKEY_FILE] >= s->layer[K_NETKEY])) {
        if (!*s->val[K_NETKEY_FILE]) return bad(s, K_NETKEY_FILE, "is empty");
        if ((rc = copy(s, K_NETKEY_FILE, cfg->network_key_file, sizeof(cfg->network_key_file))) < 0)
            return rc;
    } else if (s->val[K_NETKEY]) {
        uint8_t key[64];
        if ((rc = copy(s, K_NETKEY, cfg->network_key_b64, sizeof(cfg->network_key_b64))) < 0)
            return rc;
        if (p2p_b64_decode(key, sizeof(key), cfg->network_key_b64, strlen(cfg->network_key_b64)) !=
            DHT_NET_KEY_LEN)
            return fail(s, "invalid NETWORK_KEY: not standard base64 of exactly 32 bytes");
    }
    if (s->val[K_AUTH_FILE] && (!s->val[K_AUTH] || s->layer[K_AUTH_FILE] >= s->layer[K_AUTH])) {
        if (!*s->val[K_AUTH_FILE]) return bad(s, K_AUTH_FILE, "is empty");
        if ((rc = copy(s, K_AUTH_FILE, cfg->auth_secret_file, sizeof(cfg->auth_secret_file))) < 0)
            return rc;
    } else if (s->val[K_AUTH]) {
        if (strlen(s->val[K_AUTH]) >= sizeof(cfg->auth_secret_b64))
            return fail(s, "invalid AUTH_SECRET: longer than %zu characters",
                        sizeof(cfg->auth_secret_b64) - 1);
        if (strlen(s->val[K_AUTH]) < 32)
            return fail(s, "invalid AUTH_SECRET: shorter than 32 bytes");
        snprintf(cfg->auth_secret_b64, sizeof(cfg->auth_secret_b64), "%s", s->val[K_AUTH]);
    }
    if (s->val[K_AUTH_PREV] && *s->val[K_AUTH_PREV]) {
        if (strlen(s->val[K_AUTH_PREV]) >= sizeof(cfg->auth_secret_prev_b64))
            return fail(s, "invalid AUTH_SECRET_PREVIOUS: longer than %zu characters",
                        sizeof(cfg->auth_secret_prev_b64) - 1);
        if (strlen(s->val[K_AUTH_PREV]) < 32)
            return fail(s, "invalid AUTH_SECRET_PREVIOUS: shorter than 32 bytes");
        snprintf(cfg->auth_secret_prev_b64, sizeof(cfg->auth_secret_prev_b64), "%s",
                 s->val[K_AUTH_PREV]);
    }
    cfg->token_expire_minutes = 60;
    if (s->val[K_TOKEN_EXPIRE] &&
        (rc = parse_int(s, K_TOKEN_EXPIRE, 1, 525600, &cfg->token_expire_minutes)) < 0)
        return rc;
    cfg->max_peers = NODE_MAX_PEERS_DEFAULT;
    if (s->val[K_MAX_PEERS] && (rc = parse_int(s, K_MAX_PEERS, 1, 1000000, &cfg->max_peers)) < 0)
        return rc;
    cfg->peer_timeout_s = 120;
    if (s->val[K_PEER_TIMEOUT] &&
        (rc = parse_int(s, K_PEER_TIMEOUT, 1, 86400, &cfg->peer_timeout_s)) < 0)
        return rc;
    cfg->metrics_enabled = true;
    if (s->val[K_METRICS] && (rc = parse_bool(s, K_METRICS, &cfg->metrics_enabled)) < 0) return rc;
    cfg->peer_bulk = true;
    if (s->val[K_PEER_BULK] && (rc = parse_bool(s, K_PEER_BULK, &cfg->peer_bulk)) < 0) return rc;
    cfg->log_level = NODE_LOG_INFO;
    if (s->val[K_LOG_LEVEL]) {
        cfg->log_level = node_log_level_parse(s->val[K_LOG_LEVEL]);
        if (cfg->log_level < 0) return bad(s, K_LOG_LEVEL, "is not DEBUG, INFO, WARNING or ERROR");
    }
    if ((rc = parse_file_roots(s, cfg)) < 0) return rc;
    if (s->val[K_CHECK_PORT_ALLOW]) {
        if ((rc = copy(s, K_CHECK_PORT_ALLOW, cfg->check_port_allow,
                       sizeof(cfg->check_port_allow))) < 0)
            return rc;
        if ((rc = check_allowlist(s, cfg->check_port_allow)) < 0) return rc;
    }
    if (s->val[K_ALERT_WEBHOOK] && *s->val[K_ALERT_WEBHOOK]) {
        if ((rc = copy(s, K_ALERT_WEBHOOK, cfg->alert_webhook, sizeof(cfg->alert_webhook))) < 0)
            return rc;
        if (strncmp(cfg->alert_webhook, "http://", 7) != 0 &&
            strncmp(cfg->alert_webhook, "https://", 8) != 0)
            return bad(s, K_ALERT_WEBHOOK, "is not an http:// or https:// URL");
        for (const char *c = cfg->alert_webhook; *c; c++)
            if ((unsigned char)*c <= 0x20 || *c == 0x7f)
                return bad(s, K_ALERT_WEBHOOK, "has a space or control character");
    }
    if ((rc = resolve_http(s, cfg)) < 0) return rc;
    cfg->log_json = tty ? 0 : 1;
    if (s->val[K_LOG_FORMAT]) {
        if (strcasecmp(s->val[K_LOG_FORMAT], "json") == 0)
            cfg->log_json = 1;
        else if (strcasecmp(s->val[K_LOG_FORMAT], "text") == 0)
            cfg->log_json = 0;
        else
            return bad(s, K_LOG_FORMAT, "is not text or json");
    }
    return 0;
}

int node_config_parse(node_config_t *cfg, int argc, char *const *argv, char *const *env, bool tty,
                      char *err, size_t errlen)
{
    source_t s;
    memset(&s, 0, sizeof(s));
    s.err = err;
    s.errlen = errlen;
    if (errlen) err[0] = '\0';
    char *text = NULL;
    int rc = read_flags(&s, argc, argv);
    if (rc < 0) return rc;
    read_env(&s, env);
    if (s.val[K_CONFIG] && *s.val[K_CONFIG]) {
        s.file = s.val[K_CONFIG];
        if (strlen(s.file) >= NODE_PATH_MAX) return bad(&s, K_CONFIG, "is too long");
        if ((rc = read_file(&s, &text)) < 0) return rc;
        if ((rc = parse_file(&s, text)) < 0) goto done;
    }
    rc = resolve(&s, cfg, tty);
done:
    free(text);
    return rc;
}

void node_config_usage(FILE *out)
{
    for (int k = 0; k < K_COUNT; k++) {
        char flag[48] = "";
        if (settings[k].flag) snprintf(flag, sizeof(flag), "--%s", settings[k].flag);
        fprintf(out, "  %-24s %-22s %s\n", flag, settings[k].env, settings[k].help);
    }
}
