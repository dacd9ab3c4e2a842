/*
 * reserve.h - the pool's free memory, held resident.
 *
 * Free memory that sits unused is taken back (by the kernel, and on a VM by
 * the host: touching it again is 20x slower here).  So the pool's free
 * memory lives in its reserve file (mc_pool_reserve_resize()): each write
 * borrows from it just before it faults memory in, and a background thread
 * (the keeper) grows it back off the request path.  doc/pool-layout.md has
 * the rules.
 */
#ifndef MC_RESERVE_H
#define MC_RESERVE_H

#include <stdint.h>

#include "pool.h"

struct mc_reserve;

/*
 * A reserve over pool that fills the pool up to high_watermark (the share
 * above stays free as slack).  0, -ENOMEM, -ENOTSUP for a pool without a
 * reserve file (a plain directory).  Free with mc_reserve_free(), which
 * stops the keeper; pool must outlive it.
 */
int mc_reserve_new(struct mc_reserve **rp, struct mc_pool *pool,
		   double high_watermark);
void mc_reserve_free(struct mc_reserve *r);

/* Start the keeper thread: 0 or -errno. */
int mc_reserve_start(struct mc_reserve *r);

/*
 * Before a write: lend it twice largest_page bytes, cut out of the reserve
 * now, so the writer faults in memory freed a moment ago; without a loan
 * (pages under 1 MiB) the reserve still shrinks to its target so pages
 * that grew since keep their slack.  With no page written yet
 * (largest_page 0) the loan is max_page, as much as the reserve holds:
 * nothing says how big the page will be.  Returns the loan (0 for small
 * pages or a NULL reserve), to give back with mc_reserve_return().
 */
uint64_t mc_reserve_lend(struct mc_reserve *r, uint64_t largest_page,
			 uint64_t max_page);
void mc_reserve_return(struct mc_reserve *r, uint64_t loan);

/*
 * A write found the pool full: give it at least bytes of the reserve now
 * (a page bigger than any before outgrows its loan).  The keeper takes the
 * memory back once writes are quiet, as far as the pages leave room.
 * Returns the bytes given: 0 when the reserve is empty (or r is NULL).
 */
uint64_t mc_reserve_give(struct mc_reserve *r, uint64_t bytes);

/*
 * A page is being read (its reads may bypass the daemon): the keeper waits
 * until writes and opens have been quiet for 100 ms, since its zeroing
 * takes the memory bandwidth they need.  Cheap; NULL is fine.
 */
void mc_reserve_busy(struct mc_reserve *r);

/* Memory was freed: let the keeper grow the reserve back.  NULL is fine. */
void mc_reserve_kick(struct mc_reserve *r);

#endif
