/*
 * graves.h - replaced pages linger a second before their memory is freed.
 *
 * A process that looked a name up just before a rename or rewrite replaced
 * the page may still stat or open the old inode; a local filesystem gives
 * it the old file or the new one, never ESTALE.  So a replaced page's
 * attributes are kept, and its memory freed, a second later (at once when
 * the ring is full or memory is wanted).
 */
#ifndef MC_GRAVES_H
#define MC_GRAVES_H

#include <stdint.h>

#include "ns.h"
#include "pool.h"

#define MC_GRAVE_NS (1000000000ull)	/* how long a page lingers */

struct mc_graves;

/*
 * Graves over pool; freed() is called after each page's memory is freed
 * (the reserve refills).  0 or -ENOMEM.  mc_graves_free() frees every page
 * still buried.
 */
int mc_graves_new(struct mc_graves **gp, struct mc_pool *pool,
		  void (*freed)(void *ctx), void *ctx);
void mc_graves_free(struct mc_graves *g);

/* Keep page a->page_id of inode a->ino for MC_GRAVE_NS. */
void mc_graves_bury(struct mc_graves *g, const struct mc_ns_attr *a);

/* The attributes of inode ino if it was replaced a moment ago: 0, -ENOENT. */
int mc_graves_find(struct mc_graves *g, uint64_t ino, struct mc_ns_attr *out);

/* Free the pages buried before before_ns (CLOCK_MONOTONIC; UINT64_MAX: all). */
void mc_graves_reap(struct mc_graves *g, uint64_t before_ns);

#endif
