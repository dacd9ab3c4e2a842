/*
 * master.h - mooncake_master's service: the namespace and placement store
 * (src/store.h) behind the control-plane RPC of doc/wire-protocol.md.
 *
 * One thread per connection reads requests and answers them in order of
 * arrival (pipelined requests get their replies in one write, pipelined
 * COMMITs one store transaction), and one housekeeping thread keeps time:
 * it declares segments dead after the client ttl, sends the master's own
 * requests (DROP, REPLICATE) to the daemons, writes LRU touches and looks
 * for pages short of replica_num copies.  A daemon whose pool is full
 * (EVICT) has its oldest pages moved to the host with the most room while
 * other hosts have some; only when none has are pages evicted.  Page bytes
 * never pass through here.
 */
#ifndef MC_MASTER_H
#define MC_MASTER_H

#include <stdint.h>

struct mc_master;

struct mc_master_params {
	const char *db_path; /* sqlite store; ":memory:" for tests */
	const char *rpc_address; /* bind address; NULL or "" for any */
	uint16_t port; /* 0: an ephemeral port (mc_master_port()) */
	uint64_t client_ttl_ms; /* a segment silent this long is dead; > 0 */
	unsigned replica_num; /* copies wanted per page, 1..8 */
};

/*
 * Open the store, bind and listen, and load the segments the store knows
 * as pending (they are not offered to readers until they register again).
 * Copies in the local segment (a store a standalone mooncaked used) are
 * dropped: no daemon serves that memory.
 * Nothing is served until mc_master_run().  Returns 0, -EINVAL (a bad
 * parameter), or what opening the store or the socket failed with (logged
 * with what to do).  *mp is NULL on failure; free with mc_master_free().
 */
int mc_master_new(struct mc_master **mp, const struct mc_master_params *p);

/* The port the RPC listens on (the chosen one when params->port was 0). */
uint16_t mc_master_port(const struct mc_master *m);

/*
 * Serve until mc_master_stop(): accept connections, start the housekeeping
 * thread.  On return every connection is closed (their pins released) and
 * every thread this call started has ended.  Returns 0 after a stop, or
 * -errno when serving could not start.  Call at most once.
 */
int mc_master_run(struct mc_master *m);

/*
 * Ask mc_master_run() to return.  Async-signal-safe (one write(2) to a
 * pipe), callable from any thread, before or during run, more than once.
 */
void mc_master_stop(struct mc_master *m);

/* Close the store and the socket.  Not while mc_master_run() runs.  NULL ok. */
void mc_master_free(struct mc_master *m);

#endif
