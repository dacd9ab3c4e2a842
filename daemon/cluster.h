/*
 * cluster.h - what mooncaked adds to join a cluster: this pool's identity,
 * the data server that hands its pages to peers, the transport that
 * fetches theirs, and the master client that carries the namespace.
 */
#ifndef MC_CLUSTER_H
#define MC_CLUSTER_H

#include "config.h"
#include "ns.h"
#include "pool.h"

struct mc_cluster;
struct mc_transport;

/*
 * Prepare to join the master in cfg (no thread, no socket yet: the daemon
 * may fork after this).  *nsp and *tp are the namespace and transport for
 * the filesystem, owned by the cluster.  0 or -errno, the reason logged.
 */
int mc_cluster_new(struct mc_cluster **cp, const struct mc_config *cfg,
		   struct mc_pool *pool, struct mc_ns **nsp,
		   struct mc_transport **tp);

/* Serve pages to peers and register with the master.  0 or -errno, logged. */
int mc_cluster_start(struct mc_cluster *c);

/*
 * Stop everything that calls into the filesystem on its own (the master's
 * DROP and REPLICATE): call before freeing the filesystem.
 */
void mc_cluster_stop(struct mc_cluster *c);

/* Stop and free everything; NULL is fine. */
void mc_cluster_free(struct mc_cluster *c);

/* "10.0.0.2:50052 (segment 3)" or "not registered" for the banner. */
void mc_cluster_describe(struct mc_cluster *c, char *buf, size_t len);

#endif
