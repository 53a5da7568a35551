/* job.h: process.run: commands run to completion with captured (capped) output, optional output
 * streaming as job.output notifications, a timeout that kills the whole process group, and a bound
 * on concurrent jobs. */
#ifndef P2P_SVC_JOB_H
#define P2P_SVC_JOB_H

#include <uv.h>

#include "rpc/rpc.h"

#ifndef SVC_RUN_MAX_OUTPUT
#define SVC_RUN_MAX_OUTPUT (1024u * 1024) /* bytes kept (and streamed) per output stream */
#endif
#ifndef SVC_RUN_MAX_STDIN
#define SVC_RUN_MAX_STDIN (1024 * 1024) /* bytes of stdin a call may give */
#endif
#ifndef SVC_RUN_MAX_JOBS
#define SVC_RUN_MAX_JOBS 16 /* process.run jobs at once on a node */
#endif
#ifndef SVC_RUN_MARGIN_MS
#define SVC_RUN_MARGIN_MS 250 /* a timed-out job is killed this long before the call's deadline */
#endif
#ifndef SVC_RUN_DRAIN_MS
#define SVC_RUN_DRAIN_MS 500 /* after exit, wait this long at most for the pipes' last bytes */
#endif
#ifndef SVC_RUN_POLL_MS
#define SVC_RUN_POLL_MS 200 /* how often a job checks that its caller is still there */
#endif

typedef struct svc_jobs svc_jobs_t;

/* Creates the job runner on loop. node_name is copied (it goes into job.output notifications).
 * Returns 0 and *out, or -ENOMEM. */
int svc_jobs_new(uv_loop_t *loop, const char *node_name, svc_jobs_t **out);

/* Registers process.run (role admin, changes) in reg with jobs as its context. Returns 0 or the
 * negative errno of rpc_registry_add. */
int svc_jobs_register(svc_jobs_t *jobs, rpc_registry_t *reg);

/* The number of jobs running. */
int svc_jobs_count(const svc_jobs_t *jobs);

/* Kills every running job's process group (SIGKILL), answers their calls UNAVAILABLE, closes all
 * handles and frees jobs; done(arg) runs from the loop afterwards. NULL jobs: done is not called.
 */
void svc_jobs_stop(svc_jobs_t *jobs, void (*done)(void *arg), void *arg);

#endif
