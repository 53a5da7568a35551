/* spawn.c: validated commands (argv, clean environment, working directory) for uv_spawn, process
 * group kills and signal names. See spawn.h. */
#include "services/spawn.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},    {"QUIT", SIGQUIT},   {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT},  {"BUS", SIGBUS},     {"FPE", SIGFPE},
    {"KILL", SIGKILL},     {"USR1", SIGUSR1},  {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE},     {"ALRM", SIGALRM},  {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
    {"CONT", SIGCONT},     {"STOP", SIGSTOP},  {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
    {"TTOU", SIGTTOU},     {"URG", SIGURG},    {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
    {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},  {"WINCH", SIGWINCH}, {"IO", SIGIO},
    {"SYS", SIGSYS},       {"ABORT", SIGABRT}, {"IOT", SIGABRT},    {"POLL", SIGIO},
#ifdef SIGPWR
    {"PWR", SIGPWR},
#endif
#ifdef SIGSTKFLT
    {"STKFLT", SIGSTKFLT},
#endif
};

void svc_cmd_free(svc_cmd_t *c)
{
    if (!c) return;
    if (c->argv) {
        for (char **p = c->argv; *p; p++)
            free(*p);
        free(c->argv);
    }
    if (c->env) {
        for (char **p = c->env; *p; p++)
            free(*p);
        free(c->env);
    }
    free(c->cwd);
    memset(c, 0, sizeof(*c));
}

static bool env_key_valid(const char *k, size_t len)
{
    if (len == 0 || len > SVC_MAX_ENV_KEY) return false;
    if (!(isalpha((unsigned char)k[0]) || k[0] == '_')) return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '_')) return false;
    return true;
}

/* Sets KEY=VALUE in c->env (n entries, room for SVC_MAX_ENV + 3 + NULL): replaces an entry with
 * the same key, else appends. Returns 0 or -ENOMEM. */
static int env_set(svc_cmd_t *c, size_t *n, const char *k, size_t klen, const char *v, size_t vlen)
{
    char *e = malloc(klen + 1 + vlen + 1);
    if (!e) return -ENOMEM;
    memcpy(e, k, klen);
    e[klen] = '=';
    memcpy(e + klen + 1, v, vlen);
    e[klen + 1 + vlen] = '\0';
    for (size_t i = 0; i < *n; i++) {
        if (strncmp(c->env[i], e, klen + 1) == 0) {
            free(c->env[i]);
            c->env[i] = e;
            return 0;
        }
    }
    c->env[(*n)++] = e;
    c->env[*n] = NULL;
    return 0;
}

static int env_base(svc_cmd_t *c, size_t *n)
{
    c->env = calloc(SVC_MAX_ENV + 4, sizeof(char *));
    if (!c->env) return -ENOMEM;
    *n = 0;
    static const char *const base[][2] = {
        {"PATH", SVC_BASE_PATH}, {"LANG", SVC_BASE_LANG}, {"HOME", SVC_BASE_HOME}};
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        int rc = env_set(c, n, base[i][0], strlen(base[i][0]), base[i][1], strlen(base[i][1]));
        if (rc < 0) return rc;
    }
    return 0;
}

static int cwd_set(svc_cmd_t *c, const char *cwd, size_t len)
{
    if (len == 0 || len > SVC_MAX_CWD || cwd[0] != '/' || memchr(cwd, '\0', len)) return -EINVAL;
    c->cwd = malloc(len + 1);
    if (!c->cwd) return -ENOMEM;
    memcpy(c->cwd, cwd, len);
    c->cwd[len] = '\0';
    struct stat st;
    if (stat(c->cwd, &st) != 0 || !S_ISDIR(st.st_mode)) return -EINVAL;
    return 0;
}

static int arg_valid(const char *s, size_t len, size_t index)
{
    if (len > SVC_MAX_ARG || (len && memchr(s, '\0', len))) return -EINVAL;
    if (index == 0 && len == 0) return -EINVAL;
    return 0;
}

int svc_cmd_init(svc_cmd_t *c, const msgpack_object *argv, const msgpack_object *env,
                 const char *cwd, size_t cwd_len, const char **bad)
{
    int rc = -EINVAL;
    size_t n = 0;
    memset(c, 0, sizeof(*c));
    *bad = "argv";
    if (!argv || argv->type != MSGPACK_OBJECT_ARRAY || argv->via.array.size == 0 ||
        argv->via.array.size > SVC_MAX_ARGV)
        goto fail;
    for (uint32_t i = 0; i < argv->via.array.size; i++) {
        const msgpack_object *a = &argv->via.array.ptr[i];
        if (a->type != MSGPACK_OBJECT_STR || arg_valid(a->via.str.ptr, a->via.str.size, i) < 0)
            goto fail;
    }
    *bad = "env";
    if (env && env->type != MSGPACK_OBJECT_NIL) {
        if (env->type != MSGPACK_OBJECT_MAP || env->via.map.size > SVC_MAX_ENV) goto fail;
        for (uint32_t i = 0; i < env->via.map.size; i++) {
            const msgpack_object *k = &env->via.map.ptr[i].key, *v = &env->via.map.ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_STR ||
                !env_key_valid(k->via.str.ptr, k->via.str.size) || v->via.str.size > SVC_MAX_ARG ||
                memchr(v->via.str.ptr, '\0', v->via.str.size))
                goto fail;
        }
    }
    *bad = NULL;
    rc = -ENOMEM;
    c->argv = calloc(argv->via.array.size + 1, sizeof(char *));
    if (!c->argv) goto fail;
    for (uint32_t i = 0; i < argv->via.array.size; i++) {
        const msgpack_object *a = &argv->via.array.ptr[i];
        c->argv[i] = malloc(a->via.str.size + 1);
        if (!c->argv[i]) goto fail;
        memcpy(c->argv[i], a->via.str.ptr, a->via.str.size);
        c->argv[i][a->via.str.size] = '\0';
    }
    if ((rc = env_base(c, &n)) < 0) goto fail;
    if (env && env->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < env->via.map.size; i++) {
            const msgpack_object *k = &env->via.map.ptr[i].key, *v = &env->via.map.ptr[i].val;
            rc = env_set(c, &n, k->via.str.ptr, k->via.str.size, v->via.str.ptr, v->via.str.size);
            if (rc < 0) goto fail;
        }
    }
    if (cwd) {
        rc = cwd_set(c, cwd, cwd_len);
        if (rc == -EINVAL) *bad = "cwd";
        if (rc < 0) goto fail;
    }
    return 0;
fail:
    svc_cmd_free(c);
    return rc;
}

int svc_cmd_init_strv(svc_cmd_t *c, const char *const *argv, const char *const *env,
                      const char *cwd, const char **bad)
{
    int rc = -EINVAL;
    size_t argc = 0, envc = 0, n = 0;
    memset(c, 0, sizeof(*c));
    *bad = "argv";
    if (!argv) goto fail;
    for (; argv[argc]; argc++)
        if (argc >= SVC_MAX_ARGV || arg_valid(argv[argc], strlen(argv[argc]), argc) < 0) goto fail;
    if (argc == 0) goto fail;
    *bad = "env";
    for (; env && env[envc]; envc++) {
        const char *eq = strchr(env[envc], '=');
        if (envc >= SVC_MAX_ENV || !eq || !env_key_valid(env[envc], (size_t)(eq - env[envc])) ||
            strlen(eq + 1) > SVC_MAX_ARG)
            goto fail;
    }
    *bad = NULL;
    rc = -ENOMEM;
    c->argv = calloc(argc + 1, sizeof(char *));
    if (!c->argv) goto fail;
    for (size_t i = 0; i < argc; i++)
        if (!(c->argv[i] = strdup(argv[i]))) goto fail;
    if ((rc = env_base(c, &n)) < 0) goto fail;
    for (size_t i = 0; i < envc; i++) {
        const char *eq = strchr(env[i], '=');
        rc = env_set(c, &n, env[i], (size_t)(eq - env[i]), eq + 1, strlen(eq + 1));
        if (rc < 0) goto fail;
    }
    if (cwd) {
        rc = cwd_set(c, cwd, strlen(cwd));
        if (rc == -EINVAL) *bad = "cwd";
        if (rc < 0) goto fail;
    }
    return 0;
fail:
    svc_cmd_free(c);
    return rc;
}

const char *svc_cmd_getenv(const svc_cmd_t *c, const char *key)
{
    size_t klen = strlen(key);
    for (char **p = c->env; p && *p; p++)
        if (strncmp(*p, key, klen) == 0 && (*p)[klen] == '=') return *p + klen + 1;
    return NULL;
}

void svc_cmd_options(const svc_cmd_t *c, uv_process_options_t *o, uv_stdio_container_t *stdio,
                     int stdio_count, uv_exit_cb exit_cb)
{
    memset(o, 0, sizeof(*o));
    o->file = c->argv[0];
    o->args = c->argv;
    o->env = c->env;
    o->cwd = c->cwd ? c->cwd : "/";
    o->flags = UV_PROCESS_DETACHED;
    o->stdio = stdio;
    o->stdio_count = stdio_count;
    o->exit_cb = exit_cb;
}

int svc_kill_group(int pid, int sig)
{
    if (pid <= 1) return -EINVAL;
    if (kill(-pid, sig) != 0) return -errno;
    return 0;
}

int svc_signal_parse(const char *s, size_t len, int *sig)
{
    char buf[16];
    if (!s || len == 0 || len >= sizeof(buf) || memchr(s, '\0', len)) return -EINVAL;
    if (isdigit((unsigned char)s[0])) {
        long v = 0;
        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i])) return -EINVAL;
            v = v * 10 + (s[i] - '0');
            if (v > SIGRTMAX) return -EINVAL;
        }
        if (v < 1) return -EINVAL;
        *sig = (int)v;
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)toupper((unsigned char)s[i]);
    buf[len] = '\0';
    const char *name = buf;
    if (len > 3 && strncmp(buf, "SIG", 3) == 0) name += 3;
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        if (strcmp(signals[i].name, name) == 0) {
            *sig = signals[i].sig;
            return 0;
        }
    }
    return -EINVAL;
}

const char *svc_signal_name(int sig)
{
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (signals[i].sig == sig) return signals[i].name;
    return NULL;
}
