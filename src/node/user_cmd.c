/* user_cmd.c: the `p2p-node user` subcommands (add, list, remove) on DATA_DIR/node.db. A running
 * node sees the change within its next sync round and spreads it to the network. */
#include "node/user_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "http/users.h"
#include "node/config.h"
#include "node/keys.h"
#include "node/store.h"

extern char **environ;

typedef struct user_args {
    const char *verb, *name, *role;
    bool replace;
} user_args_t;

/* Takes the verb, NAME, --role and --replace out of argv (in place); the rest are config flags,
 * each with its value (every config flag takes one: --flag VALUE or --flag=VALUE). Returns 0 or 2
 * after one line on stderr. */
static int take_args(int *argc, char **argv, user_args_t *a)
{
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--replace")) {
            a->replace = true;
        } else if (!strncmp(s, "--role=", 7)) {
            a->role = s + 7;
        } else if (s[0] == '-') {
            bool role = !strcmp(s, "--role");
            bool valued = !strchr(s, '=') && strcmp(s, "--help") != 0;
            if (valued && i + 1 >= *argc) {
                fprintf(stderr, "p2p-node: flag %s needs a value\n", s);
                return 2;
            }
            if (role) {
                a->role = argv[++i];
                continue;
            }
            argv[out++] = argv[i];
            if (valued) argv[out++] = argv[++i];
        } else if (!a->verb) {
            a->verb = s;
        } else if (!a->name) {
            a->name = s;
        } else {
            fprintf(stderr, "p2p-node: unexpected argument '%s'\n", s);
            return 2;
        }
    }
    *argc = out;
    return 0;
}

/* Reads one line of at most HTTP_MAX_PASSWORD bytes into buf (newline removed). On a terminal the
 * echo is off while typing. Returns the length or -1 after one line on stderr. */
static int read_line(const char *prompt, char *buf, size_t cap)
{
    struct termios old, quiet;
    bool tty = isatty(0) && tcgetattr(0, &old) == 0;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(0, TCSAFLUSH, &quiet);
    }
    char *r = fgets(buf, (int)cap, stdin);
    if (tty) {
        tcsetattr(0, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r) {
        fprintf(stderr, "p2p-node: no password on stdin (one line)\n");
        return -1;
    }
    size_t n = strlen(buf);
    bool whole = n > 0 && buf[n - 1] == '\n';
    if (whole) buf[--n] = 0;
    if (n > 0 && buf[n - 1] == '\r') buf[--n] = 0;
    if (!whole && !feof(stdin)) {
        fprintf(stderr, "p2p-node: password longer than %d bytes\n", HTTP_MAX_PASSWORD);
        return -1;
    }
    return (int)n;
}

/* The password of a new user from stdin (asked twice on a terminal). Returns 0 or 2. */
static int read_password(const char *name, char *pw, size_t cap)
{
    char prompt[HTTP_MAX_USERNAME + 32];
    snprintf(prompt, sizeof(prompt), "password for %s: ", name);
    int n = read_line(prompt, pw, cap);
    if (n < 0) return 2;
    if (n < HTTP_MIN_PASSWORD || memchr(pw, 0, (size_t)n)) {
        fprintf(stderr, "p2p-node: the password must be %d to %d bytes without NUL\n",
                HTTP_MIN_PASSWORD, HTTP_MAX_PASSWORD);
        return 2;
    }
    if (isatty(0)) {
        char again[HTTP_MAX_PASSWORD + 2];
        int m = read_line("again: ", again, sizeof(again));
        bool same = m == n && sodium_memcmp(again, pw, (size_t)n) == 0;
        sodium_memzero(again, sizeof(again));
        if (!same) {
            fprintf(stderr, "p2p-node: the passwords differ\n");
            return 2;
        }
    }
    return 0;
}

static void list_cb(void *arg, const http_user_t *u)
{
    (void)arg;
    char when[32] = "";
    time_t t = (time_t)(u->updated_ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%s\t%s\t%s%s\n", u->name, rpc_role_name(u->role), when,
           u->disabled ? "\tdisabled" : "");
}

static int run(const user_args_t *a, const node_config_t *cfg)
{
    char path[NODE_PATH_MAX + 16];
    char pw[HTTP_MAX_PASSWORD + 2], hash[HTTP_PWHASH_STRBYTES];
    node_store_t *store = NULL;
    http_users_db_t *db = NULL;
    http_user_t u;
    int rc = 1, r;
    bool add = !strcmp(a->verb, "add");
    if (add && (rc = read_password(a->name, pw, sizeof(pw)))) goto done;
    rc = 1;
    snprintf(path, sizeof(path), "%s/node.db", cfg->data_dir);
    if (!add && access(path, F_OK) != 0) {
        fprintf(stderr, "p2p-node: no database at %s (see --data-dir)\n", path);
        goto done;
    }
    if (add && node_data_dir_ensure(cfg->data_dir) < 0) {
        fprintf(stderr, "p2p-node: cannot create data dir %s\n", cfg->data_dir);
        goto done;
    }
    if ((r = node_store_open(path, &store)) < 0 ||
        (r = http_users_db_open(node_store_db(store), &db)) < 0) {
        fprintf(stderr, "p2p-node: cannot open %s: %s\n", path,
                r == -EPROTO ? "made by a newer p2p-node" : strerror(-r));
        goto done;
    }
    if (!strcmp(a->verb, "list")) {
        rc = http_user_foreach(db, false, -1, list_cb, NULL) < 0 ? 1 : 0;
        goto done;
    }
    r = http_user_get(db, a->name, &u);
    bool live = r == 0 && !u.deleted;
    if (!add) {
        if (!live) {
            fprintf(stderr, "p2p-node: no user '%s'\n", a->name);
            goto done;
        }
        if ((r = http_user_remove(db, a->name, p2p_wall_ms(), NULL)) < 0) goto fail;
        printf("removed user %s\n", a->name);
        rc = 0;
        goto done;
    }
    if (live && !a->replace) {
        fprintf(stderr, "p2p-node: user '%s' already exists (add --replace to change it)\n",
                a->name);
        goto done;
    }
    if ((r = http_password_hash(pw, strlen(pw), hash)) < 0) goto fail;
    r = http_user_set(db, a->name, (rpc_role_t)rpc_role_parse(a->role), hash, p2p_wall_ms(), NULL);
    if (r == -ENOSPC) {
        fprintf(stderr, "p2p-node: too many users (at most %d)\n", HTTP_MAX_USERS);
        goto done;
    }
    if (r < 0) goto fail;
    printf("%s user %s (%s)\n", live ? "replaced" : "added", a->name, a->role);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "p2p-node: cannot update %s: %s\n", path, strerror(-r));
done:
    sodium_memzero(pw, sizeof(pw));
    http_users_db_close(db);
    node_store_close(store);
    return rc;
}

int node_cmd_user(int argc, char **argv)
{
    user_args_t a = {0};
    int rc = take_args(&argc, argv, &a);
    if (rc) return rc;
    bool add = a.verb && !strcmp(a.verb, "add"), rm = a.verb && !strcmp(a.verb, "remove");
    bool list = a.verb && !strcmp(a.verb, "list");
    if (!add && !rm && !list) {
        fprintf(stderr, "p2p-node: user needs add, list or remove (see p2p-node --help)\n");
        return 2;
    }
    if ((add || rm) && !a.name) {
        fprintf(stderr, "p2p-node: user %s needs a NAME\n", a.verb);
        return 2;
    }
    if (list && a.name) {
        fprintf(stderr, "p2p-node: user list takes no NAME\n");
        return 2;
    }
    if (a.name && !http_username_valid(a.name, strlen(a.name))) {
        fprintf(stderr, "p2p-node: invalid user name '%s': 1 to %d characters [A-Za-z0-9._-]\n",
                a.name, HTTP_MAX_USERNAME);
        return 2;
    }
    if (add && !a.role) {
        fprintf(stderr, "p2p-node: user add needs --role viewer|operator|admin\n");
        return 2;
    }
    if (add && rpc_role_parse(a.role) <= 0) {
        fprintf(stderr, "p2p-node: invalid --role '%s': must be viewer, operator or admin\n",
                a.role);
        return 2;
    }
    if (!add && (a.role || a.replace)) {
        fprintf(stderr, "p2p-node: --role and --replace go with user add\n");
        return 2;
    }
    node_config_t cfg;
    char err[NODE_PATH_MAX + 256];
    if (node_config_parse(&cfg, argc, argv, environ, isatty(2), err, sizeof(err)) < 0) {
        fprintf(stderr, "p2p-node: %s\n", err);
        return 2;
    }
    return run(&a, &cfg);
}
