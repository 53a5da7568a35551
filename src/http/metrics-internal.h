/* metrics-internal.h: what metrics.c, metrics_host.c and sd.c share, and what their unit tests
 * reach: the host collectors, the RPC call counters and the service-discovery document. */
#ifndef P2P_HTTP_METRICS_INTERNAL_H
#define P2P_HTTP_METRICS_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http/api.h"
#include "http/metrics_text.h"
#include "node/members.h"
#include "rpc/rpc.h"

/* --- metrics_host.c: node_exporter-named host metrics and process_* of this process ----------
 * Each collector reads files below proc_root ("/proc"; tests pass a directory of fixtures) and
 * writes its families into w. They block (statvfs may hang on a dead network mount), so
 * metrics.c runs each on its own thread under a deadline. Return 0 or a negative errno: the
 * collector then counts as failed and what it wrote is dropped. */
typedef int (*http_host_fn)(http_mtext_t *w, const char *proc_root);

typedef struct http_host_collector {
    const char *name; /* the collector label of p2p_scrape_collector_success */
    http_host_fn fn;
} http_host_collector_t;

/* The host collectors, in output order; *n gets their count. */
const http_host_collector_t *http_host_collectors(size_t *n);

/* node_load1, node_load5, node_load15 (loadavg). */
int http_host_loadavg(http_mtext_t *w, const char *proc_root);
/* node_memory_*_bytes of the usual meminfo fields (meminfo). */
int http_host_meminfo(http_mtext_t *w, const char *proc_root);
/* node_cpu_seconds_total{cpu,mode}, node_boot_time_seconds, node_context_switches_total,
 * node_forks_total, node_procs_running, node_procs_blocked (stat). */
int http_host_cpu(http_mtext_t *w, const char *proc_root);
/* node_filesystem_{size,free,avail}_bytes, _files, _files_free, _readonly
 * {device,mountpoint,fstype} of the real filesystems of self/mounts (statvfs on each). */
int http_host_filesystem(http_mtext_t *w, const char *proc_root);
/* node_network_{receive,transmit}_bytes_total{device} (net/dev). */
int http_host_netdev(http_mtext_t *w, const char *proc_root);
/* process_cpu_seconds_total, process_start_time_seconds, process_resident_memory_bytes,
 * process_virtual_memory_bytes, process_open_fds, process_max_fds, process_threads (self/stat,
 * self/fd, self/limits, stat's btime). */
int http_host_process(http_mtext_t *w, const char *proc_root);

/* --- metrics.c: RPC calls seen through the registry's observer ----------------------------- */

/* Splits a call into its metric labels: domain and method from the local method name
 * ("file.read") or, for a routed call (method NULL), from the address system.NODE.DOMAIN.METHOD.
 * Values that are not a known domain or a plain method name become "other". dom and meth get at
 * least 32 and 64 bytes. */
void http_metrics_call_labels(const rpc_observation_t *o, char *dom, size_t domcap, char *meth,
                              size_t methcap);

/* Replaces the host collectors of m (c: static data, at most 8 are used) and the proc root they
 * read, for the tests (a collector that overruns its deadline, fixture files). Call it while no
 * scrape is running. */
void http_metrics_set_host(http_metrics_t *m, const http_host_collector_t *c, size_t n,
                           const char *proc_root);

/* --- sd.c: the Prometheus HTTP SD document -----------------------------------------------------
 */

/* The target groups of every live member of m (conflict losers left out): [{"targets":
 * ["host:port"], "labels": {"__meta_p2p_node": NAME, "__meta_p2p_node_id": HEX,
 * "__meta_p2p_version": V, "__meta_p2p_self": "true"|"false", "__meta_p2p_tag_KEY": VALUE...}}],
 * host:port from the member's published HTTP address (an unspecified host takes the host of its
 * first peer address). Members without an HTTP address are left out. NULL on no memory. */
json_t *http_sd_document(const members_t *m, uint64_t now);

#endif
