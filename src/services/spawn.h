/* spawn.h: the shared way the services start commands: a validated argv, a clean environment
 * (a fixed base plus what the caller gives) and a working directory, turned into libuv spawn
 * options. Never a shell: uv_spawn forks and calls execvp with the argv array, in a new session
 * (hence its own process group whose id is the child's pid) so that a whole group can be signalled.
 * Also signal names and group kills. Used by process.run (job.c) and the supervisor. */
#ifndef P2P_SVC_SPAWN_H
#define P2P_SVC_SPAWN_H

#include <stddef.h>
#include <msgpack.h>
#include <uv.h>

#ifndef SVC_MAX_ARGV
#define SVC_MAX_ARGV 256 /* arguments in an argv */
#endif
#ifndef SVC_MAX_ARG
#define SVC_MAX_ARG 8192 /* bytes in one argument or environment value */
#endif
#ifndef SVC_MAX_ENV
#define SVC_MAX_ENV 128 /* caller-given environment entries */
#endif
#ifndef SVC_MAX_ENV_KEY
#define SVC_MAX_ENV_KEY 256 /* bytes in one environment variable name */
#endif
#ifndef SVC_MAX_CWD
#define SVC_MAX_CWD 4095 /* bytes in a working directory path */
#endif

/* The base environment every command starts from (the caller's map overrides or extends it). */
#define SVC_BASE_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define SVC_BASE_LANG "C.UTF-8"
#define SVC_BASE_HOME "/"

typedef struct svc_cmd {
    char **argv; /* NULL-terminated, malloc'd copies */
    char **env;  /* NULL-terminated KEY=VALUE: the base environment (PATH=SVC_BASE_PATH,
                    LANG=C.UTF-8, HOME=/) overridden/extended by the caller's map */
    char *cwd;   /* NULL = "/" */
} svc_cmd_t;

/* Builds c from validated call arguments: argv an array of 1..SVC_MAX_ARGV strings without NUL of
 * at most SVC_MAX_ARG bytes (argv[0] not empty), env a map of string -> string (NULL or nil = none;
 * at most SVC_MAX_ENV entries; keys [A-Za-z_][A-Za-z0-9_]* of at most SVC_MAX_ENV_KEY bytes; values
 * without NUL of at most SVC_MAX_ARG bytes; a key given twice: the last wins), cwd (NULL = none;
 * must be an absolute existing directory of at most SVC_MAX_CWD bytes without NUL). Returns 0, or
 * -EINVAL with *bad naming the parameter ("argv", "env", "cwd"), or -ENOMEM. c is zeroed on
 * failure. */
int svc_cmd_init(svc_cmd_t *c, const msgpack_object *argv, const msgpack_object *env,
                 const char *cwd, size_t cwd_len, const char **bad);

/* Builds c from C strings (argv NULL-terminated, env NULL-terminated "KEY=VALUE" entries applied
 * over the base environment, cwd NULL = none), with the same checks as svc_cmd_init. Returns 0,
 * -EINVAL (*bad set as above) or -ENOMEM; c is zeroed on failure. */
int svc_cmd_init_strv(svc_cmd_t *c, const char *const *argv, const char *const *env,
                      const char *cwd, const char **bad);

/* Frees what c holds and zeroes it. NULL-safe, idempotent. */
void svc_cmd_free(svc_cmd_t *c);

/* The value of KEY in c's environment, or NULL. */
const char *svc_cmd_getenv(const svc_cmd_t *c, const char *key);

/* Fills uv_process_options_t for c: file = argv[0] (a bare name is looked up along the PATH of
 * c->env: the child's environ is c->env when execvp runs), args, env, cwd ("/" when c->cwd is
 * NULL), flags UV_PROCESS_DETACHED (own session, hence own process group whose id is the pid),
 * stdio/stdio_count as given, exit_cb. o keeps pointers into c: c must outlive uv_spawn. */
void svc_cmd_options(const svc_cmd_t *c, uv_process_options_t *o, uv_stdio_container_t *stdio,
                     int stdio_count, uv_exit_cb exit_cb);

/* Sends sig to the whole process group of pid (kill(-pid, sig)). pid must be > 1. Returns 0 or
 * negative errno (-EINVAL for pid <= 1, -ESRCH when the group is gone). */
int svc_kill_group(int pid, int sig);

/* Parses a signal name ("TERM", "SIGTERM", "KILL", "HUP", "INT", "QUIT", "USR1", "USR2", "STOP",
 * "CONT" and the other standard names, case-insensitive, with or without "SIG") or a decimal number
 * string (1..SIGRTMAX) into *sig. Returns 0 or -EINVAL. */
int svc_signal_parse(const char *s, size_t len, int *sig);

/* The name of a signal without "SIG" ("TERM"), or NULL for a number without a standard name. */
const char *svc_signal_name(int sig);

#endif
