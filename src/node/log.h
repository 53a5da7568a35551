/* log.h: the daemon's one logger. Text lines for a terminal or JSON lines (one object a line with
 * ts, level, msg and the caller's fields). Only src/node and src/http log; library code returns
 * errors. */
#ifndef P2P_NODE_LOG_H
#define P2P_NODE_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum node_log_level { NODE_LOG_DEBUG = 0, NODE_LOG_INFO, NODE_LOG_WARNING, NODE_LOG_ERROR };

typedef struct node_log node_log_t;

/* Creates a logger writing to out (not closed by node_log_free). Returns NULL when out of memory.
 */
node_log_t *node_log_new(FILE *out, int level, bool json);

/* Frees the logger. Accepts NULL. */
void node_log_free(node_log_t *log);

/* Changes the minimum level written (SIGHUP reload). */
void node_log_set_level(node_log_t *log, int level);

/* True when a message at level would be written (to skip building expensive fields). */
bool node_log_enabled(const node_log_t *log, int level);

/* Parses DEBUG, INFO, WARNING (or WARN), ERROR, any case. Returns the level or -EINVAL. */
int node_log_level_parse(const char *s);

/* The upper-case name of a level ("INFO"). */
const char *node_log_level_name(int level);

/* Writes one line: msg, then key/value string pairs ending with a NULL key. A key starting with '#'
 * marks its value as a JSON number or boolean (written unquoted in JSON mode; the '#' is dropped).
 * Example: node_log(log, NODE_LOG_INFO, "ready", "name", name, "#dht_port", "5678", NULL).
 * log may be NULL (nothing is written). */
void node_log(node_log_t *log, int level, const char *msg, ...);

#endif
