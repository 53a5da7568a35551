/* p2p-rpc.c: the command-line client (CONTRACT section 2): one msgpack-RPC call over a node's local
 * unix socket, params from key=value pairs or --json, the answer printed as JSON or text; `nodes`
 * and `methods [NODE]`; fan-out calls (a NODE part with * or ?) printed per node with a summary
 * line on stderr; --stream prints the rpc.partial notifications as they arrive; push and pull of
 * files (transfer.c).
 * Exit codes: 0 ok, 1 call error, 2 usage, 3 some nodes of a fan-out failed or did not answer. */
#include <errno.h>
#include <glob.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <jansson.h>

#include "cli/convert.h"
#include "cli/transfer.h"
#include "rpc/rpc.h"

#define EXIT_CALL    1
#define EXIT_USAGE   2
#define EXIT_PARTIAL 3

#define SUMMARY_NAMES 10 /* failed nodes named in the fan-out summary line */

typedef struct opts {
    const char *socket;
    const char *http;
    const char *token_arg;
    double timeout_s;
    int out_json; /* 1 json, 0 text */
    bool stream;
    const char *method;
    json_t *params;      /* object */
    bool listing;        /* `methods`: text output as a method list */
    bool node_table;     /* `nodes`: text output as a table */
    bool fanout;         /* the NODE part of the address is a glob */
    bool streamed;       /* at least one rpc.partial was printed */
    const char *xfer[3]; /* push LOCAL NODE:PATH | pull NODE:PATH LOCAL (transfer.c) */
    bool sync;           /* --sync of push/pull */
} opts_t;

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: p2p-rpc [options] METHOD [key=value ...]\n"
        "       p2p-rpc [options] METHOD --json '{\"key\": ...}'\n"
        "       p2p-rpc [options] methods [NODE]   list methods with their parameters\n"
        "       p2p-rpc [options] nodes            list the live nodes of the network\n"
        "METHOD is an address SERVICE.NODE.DOMAIN.METHOD (system.local.node.info) or rpc.ping;\n"
        "NODE may be a glob (system.*.node.info, system.web-0?.node.info): a fan-out, answered\n"
        "per node, with a summary line on stderr.\n"
        "key=value values parse as JSON when they are valid JSON, else as strings.\n"
        "options:\n"
        "  --socket PATH     local socket (env P2P_SOCKET; default ./data/*/rpc.sock if only one)\n"
        "  --http URL        a node's HTTP API (env P2P_HTTP; not supported yet)\n"
        "  --token T         JWT (env P2P_TOKEN; else file $P2P_TOKEN_FILE or\n"
        "                    ~/.config/p2p-admin/token)\n"
        "  -t, --timeout S   deadline in seconds (default 5)\n"
        "  --out json|text   output format (default: text on a terminal, else json)\n"
        "  --stream          print streamed output (notifications, fan-out results per node)\n"
        "                    as it arrives\n"
        "  -h, --help        this help\n"
        "exit codes: 0 ok (every node of a fan-out answered without error), 1 call error (code\n"
        "and message on stderr), 2 usage, 3 some nodes of a fan-out failed or did not answer\n");
    cli_transfer_usage(f);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "p2p-rpc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see p2p-rpc --help)\n");
    return EXIT_USAGE;
}

/* Reads the first line of a file into a malloc'd string without surrounding whitespace. */
static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    char buf[RPC_MAX_TOKEN + 2];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strcspn(s, " \t\r\n");
    s[len] = 0;
    return len ? strdup(s) : NULL;
}

static char *find_token(const opts_t *o)
{
    if (o->token_arg) return strdup(o->token_arg);
    const char *env = getenv("P2P_TOKEN");
    if (env && *env) return strdup(env);
    env = getenv("P2P_TOKEN_FILE");
    if (env && *env) return read_token_file(env);
    const char *home = getenv("HOME");
    if (!home) return NULL;
    char path[4096];
    snprintf(path, sizeof(path), "%s/.config/p2p-admin/token", home);
    return read_token_file(path);
}

/* Picks the socket: --socket, P2P_SOCKET, else the only ./data/ * /rpc.sock. */
static int find_socket(opts_t *o, char *out, size_t cap)
{
    const char *p = o->socket ? o->socket : getenv("P2P_SOCKET");
    if (p && *p) {
        snprintf(out, cap, "%s", p);
        return 0;
    }
    glob_t g;
    int r = glob("./data/*/rpc.sock", 0, NULL, &g);
    if (r != 0 || g.gl_pathc != 1) {
        if (r == 0)
            fprintf(stderr,
                    "p2p-rpc: %zu sockets match ./data/*/rpc.sock; choose one with --socket\n",
                    g.gl_pathc);
        else
            fprintf(stderr,
                    "p2p-rpc: no ./data/*/rpc.sock here; give --socket PATH or P2P_SOCKET\n");
        if (r == 0) globfree(&g);
        return -1;
    }
    snprintf(out, cap, "%s", g.gl_pathv[0]);
    globfree(&g);
    return 0;
}

/* True when the address is SERVICE.NODE.DOMAIN.METHOD with * or ? in NODE. */
static bool is_fanout(const char *addr)
{
    const char *a = strchr(addr, '.');
    if (!a) return false;
    const char *b = strchr(++a, '.');
    if (!b || !strchr(b + 1, '.')) return false;
    for (; a < b; a++)
        if (*a == '*' || *a == '?') return true;
    return false;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    const char *json_arg = NULL;
    int npos = 0;
    const char *pos[3];
    o->timeout_s = 5;
    o->out_json = isatty(STDOUT_FILENO) ? 0 : 1;
    o->params = json_object();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--socket")) {
            o->socket = val;
        } else if (!strcmp(a, "--http")) {
            o->http = val;
        } else if (!strcmp(a, "--token")) {
            o->token_arg = val;
        } else if (!strcmp(a, "--json")) {
            json_arg = val;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--timeout")) {
            char *end = NULL;
            o->timeout_s = val ? strtod(val, &end) : 0;
            if (!val || *end || !(o->timeout_s > 0 && o->timeout_s <= RPC_MAX_TIMEOUT_S))
                return usage_error("bad --timeout '%s' (seconds, up to 3600)", val ? val : "");
        } else if (!strcmp(a, "--out")) {
            if (!val || (strcmp(val, "json") && strcmp(val, "text")))
                return usage_error("bad --out '%s' (json or text)", val ? val : "");
            o->out_json = !strcmp(val, "json");
        } else if (!strcmp(a, "--stream")) {
            o->stream = true, takes = false;
        } else if (!strcmp(a, "--sync")) {
            o->sync = true, takes = false;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option %s", a);
        } else if (!o->method && npos < 3) {
            pos[npos++] = a, takes = false;
            if (npos == 1 && strcmp(a, "methods") && strcmp(a, "nodes") && strcmp(a, "push") &&
                strcmp(a, "pull"))
                o->method = a;
            continue;
        } else {
            takes = false;
            const char *eq = strchr(a, '=');
            if (!eq || eq == a) return usage_error("argument '%s' is not key=value", a);
            json_error_t je;
            json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
            if (!v) v = json_string(eq + 1);
            if (!v) return usage_error("value of '%s' is not valid UTF-8", a);
            char key[256];
            snprintf(key, sizeof(key), "%.*s", (int)P2P_MIN((size_t)(eq - a), sizeof(key) - 1), a);
            json_object_set_new(o->params, key, v);
        }
        if (takes) {
            if (!val) return usage_error("option %s needs a value", a);
            i++;
        }
    }
    if (npos == 0) return usage_error("%s", "missing METHOD");
    if (!o->method && (!strcmp(pos[0], "push") || !strcmp(pos[0], "pull"))) {
        if (npos != 3)
            return usage_error(!strcmp(pos[0], "push") ? "%s needs LOCAL NODE:PATH"
                                                       : "%s needs NODE:PATH LOCAL",
                               pos[0]);
        if (json_object_size(o->params) || json_arg)
            return usage_error("%s takes no key=value or --json", pos[0]);
        memcpy(o->xfer, pos, sizeof(o->xfer));
        return 0;
    }
    if (!o->method) { /* methods [NODE] or nodes */
        static char buf[RPC_MAX_METHOD_NAME + 1];
        if (!strcmp(pos[0], "methods")) {
            if (npos > 2) return usage_error("%s", "methods takes at most one NODE");
            snprintf(buf, sizeof(buf), "system.%s.node.methods", npos == 2 ? pos[1] : "local");
            o->listing = true;
        } else {
            if (npos > 1) return usage_error("%s", "nodes takes no argument");
            snprintf(buf, sizeof(buf), "system.local.node.nodes");
            o->node_table = true;
        }
        o->method = buf;
    }
    o->fanout = is_fanout(o->method);
    if (json_arg) {
        json_error_t je;
        json_t *j = json_loads(json_arg, 0, &je);
        if (!json_is_object(j)) {
            json_decref(j);
            return usage_error("--json needs a JSON object: %s", je.text);
        }
        json_object_update(o->params, j);
        json_decref(j);
    }
    return 0;
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

static void pack_request(msgpack_sbuffer *sb, uint32_t id, const char *method, json_t *params)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, id);
    msgpack_pack_str(&pk, strlen(method));
    msgpack_pack_str_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, 1);
    cli_json_to_msgpack(params, &pk);
}

static void print_json(json_t *j, bool pretty)
{
    char *s = json_dumps(j, JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT));
    if (s) puts(s);
    free(s);
}

/* Writes "error CODE NAME: message [data]" (no newline) for a JSON error object. */
static void fprint_error_json(FILE *f, const json_t *j)
{
    json_t *code = json_object_get(j, "code"), *msg = json_object_get(j, "message");
    json_t *data = json_object_get(j, "data");
    int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;
    fprintf(f, "error %d %s: %s", c, rpc_error_name(c),
            json_is_string(msg) ? json_string_value(msg) : "(no message)");
    if (data) {
        char *d = json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
        fprintf(f, " %s", d ? d : "");
        free(d);
    }
}

static int print_error(const msgpack_object *err)
{
    json_t *j = cli_msgpack_to_json(err);
    fprint_error_json(stderr, j);
    fputc('\n', stderr);
    json_decref(j);
    return EXIT_CALL;
}

/* Text output of one node's outcome {"result": …} or {"error": {…}} of a fan-out. */
static void print_node_text(FILE *f, const char *name, const json_t *entry)
{
    json_t *err = json_object_get(entry, "error");
    if (err) {
        fprintf(f, "%s: ", name);
        fprint_error_json(f, err);
        fputc('\n', f);
        return;
    }
    json_t *res = json_object_get(entry, "result");
    if (json_is_object(res) || json_is_array(res)) {
        fprintf(f, "== %s ==\n", name);
        cli_print_text(f, res);
    } else {
        fprintf(f, "%s: ", name);
        cli_print_text(f, res ? res : json_null());
    }
}

/* Prints one notification: rpc.partial per node (text: that node's outcome; json: the map as
 * one line), anything else as one JSON line. */
static void print_notification(opts_t *o, const msgpack_object *a)
{
    json_t *j = cli_msgpack_to_json(a);
    json_t *params = json_array_get(j, 2), *m = json_array_get(params, 0);
    json_t *node = json_object_get(m, "node");
    if (json_is_string(json_array_get(j, 1)) &&
        !strcmp(json_string_value(json_array_get(j, 1)), "rpc.partial") && json_is_string(node)) {
        if (o->out_json)
            print_json(m, false);
        else
            print_node_text(stdout, json_string_value(node), m);
        o->streamed = true;
    } else {
        print_json(j, false);
    }
    fflush(stdout);
    json_decref(j);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Prints a fan-out answer {node: {"result"|"error"}} and the summary line on stderr. Returns 0
 * when every node answered without error, else EXIT_PARTIAL. */
static int print_fanout(const opts_t *o, const json_t *map)
{
    size_t n = json_object_size(map), ok = 0, k = 0;
    const char **names = calloc(n ? n : 1, sizeof(*names));
    const char *key;
    json_t *v;
    if (!names) {
        fprintf(stderr, "p2p-rpc: out of memory\n");
        return EXIT_CALL;
    }
    json_object_foreach((json_t *)map, key, v) names[k++] = key;
    qsort(names, n, sizeof(*names), cmp_str);
    if (o->out_json && o->stream)
        print_json((json_t *)map, false); /* JSON lines after the streamed ones */
    else if (o->out_json)
        print_json((json_t *)map, true);
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_object_get(map, names[i]);
        bool good =
            json_is_object(e) && !json_object_get(e, "error") && json_object_get(e, "result");
        ok += good;
        if (!o->out_json && !o->stream) print_node_text(stdout, names[i], e);
    }
    fflush(stdout);
    fprintf(stderr, "%zu node%s: %zu ok, %zu failed", n, n == 1 ? "" : "s", ok, n - ok);
    size_t shown = 0;
    for (size_t i = 0; i < n && ok < n; i++) {
        json_t *e = json_object_get(map, names[i]);
        json_t *err = json_object_get(e, "error");
        if (json_is_object(e) && !err && json_object_get(e, "result")) continue;
        if (shown == SUMMARY_NAMES) {
            fprintf(stderr, ", ...");
            break;
        }
        json_t *code = json_object_get(err, "code");
        int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;
        fprintf(stderr, "%s%s: %s", shown ? ", " : " (", names[i],
                err ? rpc_error_name(c) : "bad answer");
        shown++;
    }
    fprintf(stderr, "%s\n", shown ? ")" : "");
    free(names);
    return ok == n ? 0 : EXIT_PARTIAL;
}

static const char *str_or(const json_t *j, const char *dflt)
{
    return json_is_string(j) ? json_string_value(j) : dflt;
}

/* Text table of a node.nodes answer: NAME UP LAST_SEEN ID ADDRESSES. Falls back to the generic
 * text output when the answer is not a list of maps. */
static void print_nodes(const json_t *j)
{
    json_t *list = json_is_array(j) ? (json_t *)j : json_object_get(j, "nodes");
    size_t i;
    json_t *v;
    int wname = 4;
    if (!json_is_array(list)) {
        cli_print_text(stdout, j);
        return;
    }
    json_array_foreach(list, i, v)
    {
        if (!json_is_object(v)) {
            cli_print_text(stdout, j);
            return;
        }
        int l = (int)strlen(str_or(json_object_get(v, "name"), "?"));
        if (l > wname) wname = l;
    }
    printf("%-*s  %-4s  %-10s  %-16s  %s\n", wname, "NAME", "UP", "LAST_SEEN", "ID", "ADDRESSES");
    json_array_foreach(list, i, v)
    {
        json_t *up = json_object_get(v, "up"), *seen = json_object_get(v, "last_seen");
        char seen_s[32] = "-", id[17];
        if (json_is_integer(seen))
            snprintf(seen_s, sizeof(seen_s), "%" JSON_INTEGER_FORMAT, json_integer_value(seen));
        else if (json_is_real(seen))
            snprintf(seen_s, sizeof(seen_s), "%.1f", json_real_value(seen));
        snprintf(id, sizeof(id), "%s", str_or(json_object_get(v, "id"), "-"));
        char *addr = json_dumps(json_object_get(v, "addresses"), JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-*s  %-4s  %-10s  %-16s  %s\n", wname, str_or(json_object_get(v, "name"), "?"),
               json_is_true(up)    ? "up"
               : json_is_false(up) ? "down"
                                   : "?",
               seen_s, id, addr ? addr : "-");
        free(addr);
    }
}

/* Waits for the response to msgid; prints notifications when streaming. Returns the frame (caller
 * frees) or NULL after printing why. */
static rpc_frame_t *await(int fd, rpc_decoder_t *dec, uint32_t msgid, opts_t *o, uint64_t deadline)
{
    char buf[65536];
    for (;;) {
        rpc_frame_t *f = NULL;
        int r = rpc_decoder_next(dec, &f);
        if (r < 0) {
            fprintf(stderr, "error %d PARSE_ERROR: bad frame from the node (%s)\n", RPC_ERR_PARSE,
                    strerror(-r));
            return NULL;
        }
        if (r == 1) {
            const msgpack_object *a = &f->unp.data;
            if (a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4 &&
                a->via.array.ptr[0].via.u64 == 1 &&
                a->via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                a->via.array.ptr[1].via.u64 == msgid)
                return f;
            if (a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4 &&
                a->via.array.ptr[1].type == MSGPACK_OBJECT_NIL &&
                a->via.array.ptr[2].type == MSGPACK_OBJECT_MAP)
                return f; /* an error about the stream itself */
            if (o->stream && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 3)
                print_notification(o, a);
            rpc_frame_free(f);
            continue;
        }
        uint64_t now = p2p_mono_ms();
        if (now >= deadline) {
            fprintf(stderr, "error %d TIMEOUT: no answer from the node in time\n", RPC_ERR_TIMEOUT);
            return NULL;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, (int)P2P_MIN(deadline - now, (uint64_t)60000));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fprintf(stderr, "error %d UNAVAILABLE: the node closed the connection\n",
                    RPC_ERR_UNAVAILABLE);
            return NULL;
        }
        if (rpc_decoder_feed(dec, (const uint8_t *)buf, (size_t)n) < 0) {
            fprintf(stderr, "error %d PARSE_ERROR: answer too large\n", RPC_ERR_PARSE);
            return NULL;
        }
    }
}

/* Prints the result of a successful call. Returns the exit code (3 for a fan-out where some node
 * failed). */
static int print_result(const opts_t *o, const msgpack_object *res)
{
    json_t *j = cli_msgpack_to_json(res);
    int rc = 0;
    if (o->fanout && json_is_object(j))
        rc = print_fanout(o, j);
    else if (o->out_json)
        print_json(j, true);
    else if (o->listing)
        cli_print_methods(stdout, j);
    else if (o->node_table)
        print_nodes(j);
    else
        cli_print_text(stdout, j);
    json_decref(j);
    return rc;
}

int main(int argc, char **argv)
{
    opts_t o = {0};
    char path[4096];
    int rc = parse_args(argc, argv, &o);
    if (rc) goto out;
    const char *http =
        o.http ? o.http : (o.socket || getenv("P2P_SOCKET") ? NULL : getenv("P2P_HTTP"));
    if (http && *http) {
        fprintf(stderr,
                "p2p-rpc: --http (%s) is not supported yet: the HTTP API comes in a later "
                "release; use --socket with a node's local socket\n",
                http);
        rc = EXIT_USAGE;
        goto out;
    }
    if (find_socket(&o, path, sizeof(path)) < 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (o.xfer[0]) {
        char *tok = find_token(&o);
        cli_transfer_opts_t t = {.socket_path = path,
                                 .token = tok,
                                 .timeout_s = o.timeout_s,
                                 .out_json = o.out_json,
                                 .sync = o.sync};
        rc = cli_transfer_run(!strcmp(o.xfer[0], "push"), o.xfer[1], o.xfer[2], &t);
        free(tok);
        goto out;
    }
    json_object_set_new(o.params, "_timeout", json_real(o.timeout_s));
    if (o.stream) json_object_set_new(o.params, "_stream", json_true());
    int fd = connect_unix(path);
    if (fd < 0) {
        fprintf(stderr, "error %d UNAVAILABLE: cannot connect to %s: %s\n", RPC_ERR_UNAVAILABLE,
                path, strerror(errno));
        rc = EXIT_CALL;
        goto out;
    }
    char *token = find_token(&o);
    bool have_token = token != NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (token) {
        json_t *ap = json_pack("{s:s}", "token", token);
        pack_request(&sb, 1, "rpc.auth", ap);
        json_decref(ap);
        free(token);
    }
    pack_request(&sb, 2, o.method, o.params);
    rpc_decoder_t dec;
    rpc_decoder_init(&dec);
    uint64_t deadline = p2p_mono_ms() + (uint64_t)(o.timeout_s * 1000) + 1000;
    rc = EXIT_CALL;
    if (send_all(fd, sb.data, sb.size) < 0) {
        fprintf(stderr, "error %d UNAVAILABLE: cannot send to %s: %s\n", RPC_ERR_UNAVAILABLE, path,
                strerror(errno));
        goto done;
    }
    int result_rc = 0;
    for (uint32_t id = have_token ? 1 : 2; id <= 2; id++) {
        rpc_frame_t *f = await(fd, &dec, id, &o, deadline);
        if (!f) goto done;
        const msgpack_object *a = f->unp.data.via.array.ptr;
        if (a[2].type != MSGPACK_OBJECT_NIL) {
            print_error(&a[2]);
            rpc_frame_free(f);
            goto done;
        }
        if (id == 2) result_rc = print_result(&o, &a[3]);
        rpc_frame_free(f);
    }
    rc = result_rc;
done:
    rpc_decoder_free(&dec);
    msgpack_sbuffer_destroy(&sb);
    close(fd);
out:
    json_decref(o.params);
    return rc;
}
