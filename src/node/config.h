/* config.h: node_config_t from flags, environment and config file (flag > env > file > default).
 * Parsing is pure apart from reading the config file and the host name, so tests drive it with
 * argv and environment arrays. The config file holds KEY=VALUE lines with the environment names
 * (a .env file); see config/node.env.example. */
#ifndef P2P_NODE_CONFIG_H
#define P2P_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "node/node.h"

#ifndef NODE_CONFIG_FILE_MAX
#define NODE_CONFIG_FILE_MAX (64 * 1024) /* largest config file read */
#endif
#ifndef NODE_MAX_PEERS_DEFAULT
#define NODE_MAX_PEERS_DEFAULT 4096 /* MAX_PEERS when not configured */
#endif

/* Fills cfg from argv[0..argc) (flags only, no program name or subcommand), env (a NULL-terminated
 * "KEY=VALUE" array like environ; NULL = empty) and the config file named by --config/CONFIG_FILE.
 * tty says whether stderr is a terminal (default log format). Returns 0, or -EINVAL with one line
 * naming the bad item in err (no newline). Flags take "--flag value" or "--flag=value". */
int node_config_parse(node_config_t *cfg, int argc, char *const *argv, char *const *env, bool tty,
                      char *err, size_t errlen);

/* True when s is a DNS label: [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?. */
bool node_config_valid_name(const char *s);

/* Splits "host:port" or "[v6]:port" into host (no brackets) and port. Returns 0 or -EINVAL. */
int node_config_split_hostport(const char *s, char *host, size_t hostcap, int *port);

/* Parses a duration: "30s", "15m", "1h", "7d" or plain seconds. Returns 0 and *out or -EINVAL. */
int node_config_parse_duration(const char *s, unsigned long long *out);

/* One line per flag, for --help. */
void node_config_usage(FILE *out);

#endif
