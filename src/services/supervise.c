/* supervise.c: PLACEHOLDER until the supervise service lands (scaffold of the services wiring). */
#include <errno.h>
#include <stdlib.h>

#include "services/services.h"

struct svc_supervise {
    node_t *node;
};

int svc_supervise_start(node_t *node, svc_supervise_t **out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    svc_supervise_t *svc = calloc(1, sizeof(*svc));
    if (!svc) return -ENOMEM;
    svc->node = node;
    *out = svc;
    return 0;
}

void svc_supervise_stop(svc_supervise_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc) return;
    free(svc);
    if (done) done(arg);
}
