/*
 * lookup_cache.h - the attributes of pages just looked up, for the OPEN
 * the kernel sends right after a LOOKUP: in a cluster it then costs no
 * second round trip to the master.  Internal to fs/.
 *
 * A small direct-mapped table: an entry is taken (removed) by the first
 * open that uses it, and entries older than the caller's bound are never
 * used.  Losing an entry to a collision only costs that round trip.
 */
#ifndef MC_LOOKUP_CACHE_H
#define MC_LOOKUP_CACHE_H

#include <pthread.h>
#include <stdint.h>

#include "ns.h"

#define MC_LOOKUP_CACHE_SLOTS 1024

struct mc_lookup_cache {
	pthread_mutex_t lock;
	struct mc_lookup_slot {
		uint64_t at_ns;		/* 0: empty */
		struct mc_ns_attr attr;
	} slot[MC_LOOKUP_CACHE_SLOTS];	/* protected by lock */
};

void mc_lookup_cache_init(struct mc_lookup_cache *c);
void mc_lookup_cache_release(struct mc_lookup_cache *c);

/* Remember a's attributes as of now_ns (monotonic). */
void mc_lookup_cache_put(struct mc_lookup_cache *c, const struct mc_ns_attr *a,
			 uint64_t now_ns);

/*
 * Take ino's attributes if they were put less than max_age_ns ago: 0 with
 * *out filled (the entry is gone from the cache), or -ENOENT.
 */
int mc_lookup_cache_take(struct mc_lookup_cache *c, uint64_t ino,
			 uint64_t now_ns, uint64_t max_age_ns,
			 struct mc_ns_attr *out);

#endif
