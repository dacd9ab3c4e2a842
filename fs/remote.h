/*
 * remote.h - pages whose bytes live on other hosts: fetch them into this
 * host's pool on first open (a cached copy the master then knows of), and
 * copy pages the master asks for (replica_num).  Internal to fs/.
 */
#ifndef MC_REMOTE_H
#define MC_REMOTE_H

#include <stdint.h>

struct mc_fs;
struct mc_remote;
struct mc_transport;

/* A fetcher for fs over transport t (both outlive it).  0 or -ENOMEM. */
int mc_remote_new(struct mc_remote **rp, struct mc_fs *fs,
		  struct mc_transport *t);

/* Start the thread that serves the master's copy orders.  0 or -errno. */
int mc_remote_start(struct mc_remote *r);

/* Stop the thread (orders still queued are dropped) and free. */
void mc_remote_free(struct mc_remote *r);

/*
 * Make page_id's bytes readable here.  Returns 0 with *fdp = -1 when the
 * page is in this pool now (fetched, checked and recorded as a copy, or
 * already there), 0 with *fdp a private read-write descriptor holding the
 * bytes when the pool had no room for a copy, or -errno: -ENOENT (the page
 * left the namespace, or has no live copy), -EHOSTDOWN (no master), or the
 * transfer's error after every copy was tried (-EIO, -ETIMEDOUT,
 * -ECONNRESET, -ECONNREFUSED, -EHOSTUNREACH).  Two opens of one page fetch
 * it once.
 */
int mc_remote_fetch(struct mc_remote *r, uint64_t page_id, int *fdp);

/* Queue a copy order from the master; never blocks (full queue: dropped). */
void mc_remote_replicate(struct mc_remote *r, uint64_t page_id);

/*
 * Queue a page the master dropped, for this module's thread to free with
 * mc_fs_drop_now(): the master client's thread that calls this must not
 * wait for the inode table, whose holder may be waiting for a reply only
 * that thread delivers.
 */
void mc_remote_drop(struct mc_remote *r, const struct mc_ns_dropped *d);

/*
 * A page whose commit found no master (its bytes wait in the pool's
 * pending/): retry the commit from this module's thread until the master
 * answers, for up to MC_REMOTE_DEFER_NS, then move it to pages/; a page
 * still not taken then is freed.
 */
#define MC_REMOTE_DEFER_NS (60ull * 1000000000ull)
void mc_remote_defer_commit(struct mc_remote *r, const struct mc_ns_commit *c);

#endif
