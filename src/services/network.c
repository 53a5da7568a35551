/* network.c: PLACEHOLDER until the network service lands (scaffold of the services wiring). */
#include <errno.h>
#include <stdlib.h>

#include "services/services.h"

struct svc_network {
    node_t *node;
};

int svc_network_start(node_t *node, svc_network_t **out, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    svc_network_t *svc = calloc(1, sizeof(*svc));
    if (!svc) return -ENOMEM;
    svc->node = node;
    *out = svc;
    return 0;
}

void svc_network_stop(svc_network_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc) return;
    free(svc);
    if (done) done(arg);
}
