/*
 * store.h - the namespace and placement store over sqlite: the master's
 * logic, run in-process by --standalone (through src/ns.h) and behind the
 * RPC by mooncake_master.
 *
 * The types are ns.h's; the calls are ns.h's with the segment made explicit,
 * plus what only a master needs: the segment registry, replicas, holdings
 * and re-replication.  Every call is one short transaction under the
 * store's own lock (calls that walk a whole segment: a batch at a time,
 * letting go in between), so callers on many threads need no lock of
 * their own; callbacks run without the lock and may call the store.
 * Schema, migration and costs: doc/namespace-store.md.
 *
 * A segment is one host's pool memory, named by a uuid the host keeps
 * across restarts; the store gives it a small number (segment id, never 0,
 * stable across restarts of both sides).  A page has one or more copies,
 * each in one segment; it leaves the namespace when its last copy goes.
 * Which segments are alive is the master's business, not the store's.
 */
#ifndef MC_STORE_H
#define MC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ns.h"

struct mc_store;

typedef void (*mc_store_dropped_fn)(void *ctx, const struct mc_ns_dropped *d);

/*
 * Everything as in ns.h: see there.  mc_store_open() also brings a store
 * of an older schema up to date (doc/namespace-store.md); segment
 * MC_NS_LOCAL_SEGMENT always exists.  A touch (and a setattr of atime)
 * moves every copy of the page in its segment's LRU.
 */
int mc_store_open(struct mc_store **stp, const char *path);
/*
 * As mc_store_open(), and a store made new gets a root directory owned by
 * uid:gid (mc_store_open(): root's), so that a daemon a user runs can
 * write its own pool; a master's namespace stays root's on every host.
 */
int mc_store_open_owned(struct mc_store **stp, const char *path, uid_t uid,
			gid_t gid);
void mc_store_close(struct mc_store *st);
int64_t mc_store_forget_pages(struct mc_store *st);
int mc_store_reserve(struct mc_store *st, uint64_t *ino, uint64_t *page_id);
int mc_store_lookup(struct mc_store *st, uint64_t parent, const char *name,
		    struct mc_ns_attr *out);
int mc_store_getattr(struct mc_store *st, uint64_t ino,
		     struct mc_ns_attr *out);
int mc_store_mkdir(struct mc_store *st, uint64_t parent, const char *name,
		   uint32_t mode, uint32_t uid, uint32_t gid,
		   struct mc_ns_attr *out);
int mc_store_rmdir(struct mc_store *st, uint64_t parent, const char *name);
int mc_store_unlink(struct mc_store *st, uint64_t parent, const char *name,
		    struct mc_ns_dropped *dropped);
int mc_store_rename(struct mc_store *st, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, unsigned flags,
		    struct mc_ns_dropped *dropped);
int mc_store_setattr(struct mc_store *st, uint64_t ino, unsigned flags,
		     const struct mc_ns_attr *in, struct mc_ns_attr *out);
int mc_store_touch(struct mc_store *st, uint64_t ino, uint64_t now_ns);
int mc_store_flush_touches(struct mc_store *st);
int mc_store_readdir(struct mc_store *st, uint64_t dir, uint64_t after,
		     int (*fn)(void *ctx, const char *name,
			       const struct mc_ns_attr *attr),
		     void *ctx);
void mc_store_pin(struct mc_store *st, uint64_t ino);
void mc_store_unpin(struct mc_store *st, uint64_t ino);
void mc_store_get_stats(struct mc_store *st, struct mc_ns_stats *out);
int mc_store_name_of(struct mc_store *st, uint64_t ino, uint64_t *parent,
		     char *name, size_t len);

/*
 * Commit c with its one copy in `segment`, recording c->crc32c.  A
 * replaced page is reported in *replaced with every segment that held a
 * copy (replaced->segments, at most MC_NS_MAX_REPLICAS of them), and its
 * copies are gone from the store; so are those of a page that unlink or
 * rename drops, reported the same way.  -EINVAL for segment 0, else as
 * mc_ns_commit().
 */
int mc_store_commit(struct mc_store *st, const struct mc_ns_commit *c,
		    uint64_t segment, struct mc_ns_dropped *replaced);

/* One page of mc_store_commit_batch(): c and segment in, the rest out. */
struct mc_store_commit_item {
	struct mc_ns_commit c;
	uint64_t segment;		/* where its one copy is */
	int status;			/* mc_store_commit()'s return value */
	struct mc_ns_dropped replaced;	/* as mc_store_commit() fills it */
};

/*
 * mc_store_commit() of items[0..n) in that order, each with its own
 * segment, in one transaction: what n calls would do (a later item sees
 * the earlier ones, and may replace one), at the WAL cost of about one.
 * An item that is refused (-EEXIST, -EISDIR, -ENOENT parent ...) leaves
 * the others committed.  Holds the store's lock throughout: keep n to
 * about a thousand.  Returns how many items were committed (status 0).
 */
size_t mc_store_commit_batch(struct mc_store *st,
			     struct mc_store_commit_item *items, size_t n);

/*
 * Evict for `segment` (ns.h's mc_ns_evict): least-recently-opened copies
 * in that segment whose page is not pinned.  A page losing its last copy
 * leaves the namespace and counts as an eviction (fn gets it with flags
 * 0); otherwise fn gets it with MC_NS_DROPPED_COPY, every other field
 * filled in all the same.  Either way d->segments names `segment` only.
 * Returns the footprint freed, or -EIO.
 */
int64_t mc_store_evict(struct mc_store *st, uint64_t segment, uint64_t bytes,
		       uint64_t unit, mc_store_dropped_fn fn, void *ctx);

/*
 * mc_store_evict() that takes only copies with another copy elsewhere: a
 * page's last copy is left alone, so nothing leaves the namespace and
 * nothing counts as an eviction; fn gets each copy, MC_NS_DROPPED_COPY.
 * What the master frees first when a segment asks for room.  Returns the
 * footprint freed, or -errno.
 */
int64_t mc_store_evict_copies(struct mc_store *st, uint64_t segment,
			      uint64_t bytes, uint64_t unit,
			      mc_store_dropped_fn fn, void *ctx);

/*
 * What mc_store_sole_copies() offers: d is the page as an eviction would
 * report it (flags 0, d->segments naming the segment), footprint its size
 * rounded up to the unit.  Return 1 to take the page (its footprint
 * counts), 0 to pass it over, -1 to end the walk.
 */
typedef int (*mc_store_offer_fn)(void *ctx, const struct mc_ns_dropped *d,
				 uint64_t footprint);

/*
 * Offer fn the pages whose only copy is in `segment` and that no host
 * holds open, least recently opened first, until those it took add up to
 * `bytes` of footprint; nothing is dropped (the master moves them to
 * another segment before it drops this copy).  fn runs without the
 * store's lock.  Returns the footprint taken, or -errno when the walk
 * failed before anything was taken.
 */
int64_t mc_store_sole_copies(struct mc_store *st, uint64_t segment,
			     uint64_t bytes, uint64_t unit,
			     mc_store_offer_fn fn, void *ctx);

/* ---- segments ------------------------------------------------------------ */

struct mc_store_segment {
	uint64_t id;
	uint8_t uuid[16];
	char host[256];
	char address[46];
	uint16_t port;
	uint64_t capacity;
	char protocol[8];
};

/*
 * Record a segment by its uuid (the same uuid always gets the same id) and
 * its current host, address, port, capacity and protocol.  seg->id is set
 * (never 0 nor MC_NS_LOCAL_SEGMENT: registered segments get ids from 2).
 * 0, -EINVAL (an all-zero uuid, or the local segment's,
 * 00000000-0000-0000-0000-000000000001, which is made, never registered),
 * -EIO.
 */
int mc_store_segment_register(struct mc_store *st,
			      struct mc_store_segment *seg);

/* 0 or -ENOENT. */
int mc_store_segment_get(struct mc_store *st, uint64_t id,
			 struct mc_store_segment *out);

/*
 * Call fn for every segment the store knows, MC_NS_LOCAL_SEGMENT
 * included, in id order, without the store's lock (the list is read
 * first).  fn returning non-zero stops the walk and is returned; else 0,
 * -ENOMEM or -EIO.
 */
int mc_store_segment_foreach(struct mc_store *st,
			     int (*fn)(void *ctx,
				       const struct mc_store_segment *seg),
			     void *ctx);

/*
 * The segment's memory is gone (its host died, or came back with a fresh
 * pool): drop every copy it held, and end a reconcile of it.  Pages left
 * with no copy leave the namespace; fn gets each of them (flags 0), after
 * the store let go of them and without its lock.  Returns the number of
 * copies dropped, or -EIO.
 */
int64_t mc_store_segment_lost(struct mc_store *st, uint64_t segment,
			      mc_store_dropped_fn fn, void *ctx);

/* ---- copies -------------------------------------------------------------- */

/*
 * segment now holds a copy of page_id: 0 (also when it did), -ENOENT (no
 * such page), -EINVAL (segment 0).
 */
int mc_store_add_replica(struct mc_store *st, uint64_t page_id,
			 uint64_t segment);

/*
 * Drop segment's copy of page_id, and only while the page keeps another
 * copy and no host holds it open: a copy the master moved elsewhere.  d
 * (not NULL) is filled in as an eviction reports a copy
 * (MC_NS_DROPPED_COPY, d->segments naming `segment`).  0, -ENOENT (no
 * such page, or no copy in segment), -EBUSY (the page is pinned, or that
 * copy is its last), -EIO.
 */
int mc_store_drop_copy(struct mc_store *st, uint64_t page_id,
		       uint64_t segment, struct mc_ns_dropped *d);

/*
 * Size, checksum and the segments holding page_id, at most max of them,
 * in no particular order (size and crc32c may be NULL).  0, -ENOENT.
 * The caller fills in addresses and leaves out dead segments.  A page
 * from a version 1 store has crc32c 0: never taken.
 */
int mc_store_replicas(struct mc_store *st, uint64_t page_id, uint64_t *size,
		      uint32_t *crc32c, uint64_t *segments, unsigned max,
		      unsigned *count);

/*
 * Reconcile what a segment says it holds (after its daemon restarted or the
 * master did) with what the store says:
 *   begin  marks every copy the store has in segment as unconfirmed (a
 *          second begin while one runs starts over);
 *   add    confirms each id held, in batches of up to 1024 per
 *          transaction; ids the store has no page for, or whose copy here
 *          it evicted since begin, are passed to unknown() (the daemon
 *          frees them); a page the store has but without a copy here gets
 *          one;
 *   end    drops the copies left unconfirmed (fn gets pages that left the
 *          namespace with them, flags 0) and returns how many it dropped.
 * Copies made in segment between begin and end (commit, add_replica) count
 * as confirmed.  What a reconcile heard lives in memory only: a master
 * restarted mid-way begins again.  0 (end: a count) or -EIO from each;
 * add and end give -EINVAL when no reconcile of segment runs (never begun,
 * or ended by mc_store_segment_lost()).
 */
int mc_store_holdings_begin(struct mc_store *st, uint64_t segment);
int mc_store_holdings_add(struct mc_store *st, uint64_t segment,
			  const uint64_t *page_ids, size_t n,
			  void (*unknown)(void *ctx, uint64_t page_id),
			  void *ctx);
int64_t mc_store_holdings_end(struct mc_store *st, uint64_t segment,
			      mc_store_dropped_fn fn, void *ctx);

/*
 * Pages with fewer than `want` copies, in page_id order after `after`, at
 * most max of them: fn gets each page id and its current copy count,
 * without the store's lock (read a chunk at a time, so a walk of a million
 * pages never stalls other calls).  Returns how many were passed to fn,
 * or -EIO.
 */
int mc_store_under_replicated(struct mc_store *st, unsigned want,
			      uint64_t after, unsigned max,
			      void (*fn)(void *ctx, uint64_t page_id,
					 unsigned copies),
			      void *ctx);

#endif
