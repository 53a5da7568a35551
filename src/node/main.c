/* main.c: the p2p-node command line: the daemon and the keygen, token, user and version
 * subcommands. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "base/base.h"
#include "node/config.h"
#include "node/keys.h"
#include "node/log.h"
#include "node/node.h"
#include "node/user_cmd.h"
#include "rpc/rpc.h"

extern char **environ;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: p2p-node [flags]                 run the node in the foreground\n"
        "       p2p-node keygen                  print a new network key (base64)\n"
        "       p2p-node token --role ROLE [--sub NAME] [--ttl DURATION] [flags]\n"
        "                      [--targets GLOB[,GLOB]] [--methods GLOB[,GLOB]]\n"
        "                                        mint a JWT (roles: viewer, operator, admin;\n"
        "                                        DURATION: 30s, 15m, 1h, 7d or seconds;\n"
        "                                        --targets: node names it may call, e.g. web-*;\n"
        "                                        --methods: DOMAIN.METHOD globs, e.g. node.*)\n"
        "       p2p-node user add NAME --role ROLE [--replace] [flags]\n"
        "                                        add a user; the password is one line on stdin\n"
        "       p2p-node user list [flags]       list the users (name, role, last change)\n"
        "       p2p-node user remove NAME [flags]\n"
        "                                        remove a user and end its sessions\n"
        "       p2p-node version                 print the version\n"
        "       p2p-node --help                  this text\n\n"
        "flags (environment and config-file names in the second column;\n"
        "precedence: flag > environment > config file > default):\n");
    node_config_usage(out);
}

static int parse_config(node_config_t *cfg, int argc, char **argv)
{
    char err[NODE_PATH_MAX + 256];
    if (node_config_parse(cfg, argc, argv, environ, isatty(2), err, sizeof(err)) < 0) {
        fprintf(stderr, "p2p-node: %s\n", err);
        return 2;
    }
    return 0;
}

static int cmd_keygen(int argc)
{
    uint8_t key[DHT_NET_KEY_LEN];
    char b64[64];
    if (argc > 2) {
        fprintf(stderr, "p2p-node: keygen takes no arguments\n");
        return 2;
    }
    randombytes_buf(key, sizeof(key));
    p2p_b64_encode(b64, sizeof(b64), key, sizeof(key));
    sodium_memzero(key, sizeof(key));
    printf("%s\n", b64);
    return 0;
}

/* Takes --role, --sub, --ttl, --targets and --methods out of argv (in place); the rest are config
 * flags. */
static int take_token_flags(int *argc, char **argv, const char **role, const char **sub,
                            const char **ttl, const char **targets, const char **methods)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char **dst = NULL;
        const char *name = argv[i], *val = NULL;
        static const char *const names[5] = {"--role", "--sub", "--ttl", "--targets", "--methods"};
        const char **dsts[5] = {role, sub, ttl, targets, methods};
        for (int k = 0; k < 5; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(name, names[k], n) == 0 && (name[n] == '\0' || name[n] == '=')) {
                dst = dsts[k];
                val = name[n] == '=' ? name + n + 1 : NULL;
            }
        }
        if (!dst) {
            argv[out++] = argv[i];
            continue;
        }
        if (!val) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "p2p-node: flag %s needs a value\n", name);
                return 2;
            }
            val = argv[++i];
        }
        *dst = val;
    }
    *argc = out;
    return 0;
}

/* Splits a GLOB[,GLOB...] list of an ACL flag into pats (pointing into buf). Returns the count, or
 * -1 after one line on stderr. */
static int split_patterns(const char *flag, const char *list, char *buf, size_t cap,
                          const char *pats[RPC_MAX_ACL_PATTERNS])
{
    int n = 0;
    if (strlen(list) >= cap) goto bad;
    strcpy(buf, list);
    for (char *save = NULL, *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        if (n == RPC_MAX_ACL_PATTERNS) goto bad;
        pats[n++] = p;
    }
    if (n > 0) return n;
bad:
    fprintf(stderr,
            "p2p-node: invalid %s '%s': 1 to %d comma-separated patterns of up to %d characters "
            "[A-Za-z0-9._*?-]\n",
            flag, list, RPC_MAX_ACL_PATTERNS, RPC_MAX_ACL_PATTERN);
    return -1;
}

static int cmd_token(int argc, char **argv)
{
    const char *role = NULL, *sub = "cli", *ttl = NULL, *targets = NULL, *methods = NULL;
    const char *tpats[RPC_MAX_ACL_PATTERNS], *mpats[RPC_MAX_ACL_PATTERNS];
    char tbuf[RPC_MAX_ACL_PATTERNS * (RPC_MAX_ACL_PATTERN + 1)];
    char mbuf[RPC_MAX_ACL_PATTERNS * (RPC_MAX_ACL_PATTERN + 1)];
    int nt = 0, nm = 0;
    node_config_t cfg;
    char err[NODE_PATH_MAX + 256];
    int rc = take_token_flags(&argc, argv, &role, &sub, &ttl, &targets, &methods);
    if (rc) return rc;
    if (targets && (nt = split_patterns("--targets", targets, tbuf, sizeof(tbuf), tpats)) < 0)
        return 2;
    if (methods && (nm = split_patterns("--methods", methods, mbuf, sizeof(mbuf), mpats)) < 0)
        return 2;
    if (!role) {
        fprintf(stderr, "p2p-node: token needs --role viewer|operator|admin\n");
        return 2;
    }
    if (rpc_role_parse(role) <= 0) {
        fprintf(stderr, "p2p-node: invalid --role '%s': must be viewer, operator or admin\n", role);
        return 2;
    }
    if (!*sub || strlen(sub) > 256) {
        fprintf(stderr, "p2p-node: invalid --sub: must be 1..256 characters\n");
        return 2;
    }
    if ((rc = parse_config(&cfg, argc, argv))) return rc;
    unsigned long long ttl_s = (unsigned long long)cfg.token_expire_minutes * 60u;
    if (ttl && node_config_parse_duration(ttl, &ttl_s) < 0) {
        fprintf(stderr, "p2p-node: invalid --ttl '%s': want 30s, 15m, 1h, 7d or seconds\n", ttl);
        return 2;
    }
    node_t *node = calloc(1, sizeof(*node));
    if (!node) return 1;
    node->cfg = cfg;
    char *jwt = NULL;
    rc = 1;
    if (!cfg.auth_secret_b64[0] && !cfg.auth_secret_file[0] &&
        node_data_dir_ensure(cfg.data_dir) < 0) {
        fprintf(stderr, "p2p-node: cannot create data dir %s\n", cfg.data_dir);
        goto done;
    }
    int lr = node_auth_secret_load(node, err, sizeof(err));
    if (lr < 0) {
        fprintf(stderr, "p2p-node: %s\n", err);
        rc = lr == -EINVAL ? 2 : 1;
        goto done;
    }
    int mr =
        rpc_jwt_mint_ex(node->auth_secret, node->auth_secret_len, role, sub, "p2p-admin", ttl_s,
                        (uint64_t)time(NULL), tpats, (size_t)nt, mpats, (size_t)nm, &jwt);
    if (mr == -EINVAL && (nt || nm)) {
        fprintf(stderr,
                "p2p-node: invalid --targets/--methods: patterns are up to %d characters of "
                "[A-Za-z0-9._*?-]\n",
                RPC_MAX_ACL_PATTERN);
        rc = 2;
        goto done;
    }
    if (mr < 0) {
        fprintf(stderr, "p2p-node: cannot mint the token\n");
        goto done;
    }
    printf("%s\n", jwt);
    rc = 0;
done:
    free(jwt);
    sodium_memzero(node, sizeof(*node));
    free(node);
    return rc;
}

#ifndef NODE_MALLOC_MMAP_MIN
#define NODE_MALLOC_MMAP_MIN (16 * 1024 * 1024) /* smaller blocks come from the heap, reused */
#endif
#ifndef NODE_MALLOC_TRIM
#define NODE_MALLOC_TRIM (32 * 1024 * 1024) /* free heap top kept before returning it */
#endif

int main(int argc, char **argv)
{
    /* File chunks and frames are 1-4 MiB buffers made and freed at hundreds a second: glibc would
     * mmap each one and the kernel zero-fill it page by page (a fifth of a forwarding node's CPU).
     * Served from the heap they are reused; the heap returns its top beyond the trim size. */
    mallopt(M_MMAP_THRESHOLD, NODE_MALLOC_MMAP_MIN);
    mallopt(M_TRIM_THRESHOLD, NODE_MALLOC_TRIM);
    if (sodium_init() < 0) {
        fprintf(stderr, "p2p-node: libsodium failed to initialise\n");
        return 1;
    }
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("p2p-node %s\n", P2P_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "keygen")) return cmd_keygen(argc);
    if (!strcmp(cmd, "token")) return cmd_token(argc - 2, argv + 2);
    if (!strcmp(cmd, "user")) return node_cmd_user(argc - 2, argv + 2);
    if (argc > 1 && argv[1][0] != '-') {
        fprintf(stderr, "p2p-node: unknown command '%s' (see p2p-node --help)\n", argv[1]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    }
    node_config_t cfg;
    int rc = parse_config(&cfg, argc - 1, argv + 1);
    if (rc) return rc;
    node_log_t *log = node_log_new(stderr, cfg.log_level, cfg.log_json);
    if (!log) return 1;
    rc = node_run(&cfg, argc - 1, argv + 1, log);
    node_log_free(log);
    return rc;
}
