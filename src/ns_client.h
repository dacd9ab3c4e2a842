/*
 * ns_client.h - src/ns.h over the wire: every namespace call is a request
 * to mooncake_master (doc/wire-protocol.md).
 *
 * One control connection per daemon carries everything: this host's
 * registration, its heartbeats, the calls of every FUSE worker (pipelined,
 * matched by request id) and the master's own requests (DROP, REPLICATE),
 * which reach the filesystem through the ns listener.  When the master is
 * away, calls fail at once with -EHOSTDOWN while a thread of the client
 * reconnects; on return it registers again, re-declares the pages this
 * host holds and the pins its open files need, and calls work again.
 */
#ifndef MC_NS_CLIENT_H
#define MC_NS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "ns.h"

struct mc_ns_client_params {
	const char *master;		/* "host:port" or "host" (port 50051) */
	const char *name;		/* HELLO sender: "mooncaked@<host>" */
	uint8_t segment[16];		/* this pool's persistent uuid */
	const char *host;		/* host name, for the master's logs */
	const char *address;		/* data server address, as peers dial it */
	uint16_t port;			/* data server port (set at start) */
	uint64_t capacity;		/* pool bytes offered */
	const char *protocol;		/* "tcp" or "rdma" */
	bool pool_lost;			/* first start after the memory went */
	unsigned timeout_ms;		/* per call; 0: 5000 */
	/*
	 * The committed pages this host holds, for HOLDINGS at every
	 * registration: call emit for each, stop early when it fails.
	 */
	int (*holdings)(void *ctx,
			int (*emit)(void *ectx, uint64_t page_id),
			void *ectx);
	/* free a held page the master has no record of */
	void (*forget)(void *ctx, uint64_t page_id);
	/* pool use for heartbeats */
	void (*usage)(void *ctx, uint64_t *used_bytes, uint64_t *pages);
	void *ctx;
};

/*
 * Make a client (no thread, no connection yet: a daemon forks after this).
 * 0, -EINVAL (bad master address, logged), -ENOMEM.
 */
int mc_ns_connect(struct mc_ns **nsp, const struct mc_ns_client_params *p);

/*
 * Start connecting, registering (with the data server's port, known by
 * now) and declaring holdings in a thread of the client's own.  Waits up
 * to wait_ms for the first registration; when the master is not reachable
 * by then it still returns 0 (calls get -EHOSTDOWN until it is) and the
 * thread has logged a warning.  0 or -errno from pthread_create.
 */
int mc_ns_client_start(struct mc_ns *ns, uint16_t data_port, unsigned wait_ms);

/*
 * Stop the client's threads (no more listener calls, calls get
 * -EHOSTDOWN); mc_ns_close() still frees it.  Idempotent.
 */
void mc_ns_client_stop(struct mc_ns *ns);

/* True while registered with the master. */
bool mc_ns_client_connected(struct mc_ns *ns);

#endif
