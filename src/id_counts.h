/*
 * id_counts.h - a count per 64-bit id: how many times each inode is
 * pinned.  The store keeps one for the whole host, the master one per
 * connection, the master client one to replay after a reconnect.
 *
 * An id is never 0 (0 marks a free slot).  An id is in the map exactly
 * while its count is above 0: the add that brings it to 0 removes it.
 * Counts stay in [1, INT_MAX], so that an add can return the new count.
 *
 * Open addressing with linear probing, at most half full, deletion by
 * backward shift (no tombstones); the table grows by doubling and never
 * shrinks until mc_id_counts_release().  There is no lock inside: the
 * owner guards the map with its own, as for any other field.
 */
#ifndef MC_ID_COUNTS_H
#define MC_ID_COUNTS_H

#include <stddef.h>
#include <stdint.h>

/* Embedded by its owner; the fields are private to id_counts.c. */
struct mc_id_count_slot {
	uint64_t id; /* 0: free */
	uint32_t count;
};

struct mc_id_counts {
	struct mc_id_count_slot *slot;
	size_t cap; /* a power of two, or 0 before the first id */
	unsigned bits; /* log2(cap) */
	size_t used;
};

/* An empty map; allocates nothing, so it cannot fail. */
void mc_id_counts_init(struct mc_id_counts *m);

/* Free the table; m is empty afterwards and may be used again. */
void mc_id_counts_release(struct mc_id_counts *m);

/*
 * Add delta (either sign) to id's count: the new count, 0 when id left
 * the map, or -errno with the map unchanged: -EINVAL (id 0), -ENOENT (a
 * decrement of an id not in the map; every caller treats that as "not
 * pinned here"), -ERANGE (a decrement below 0), -EOVERFLOW (above
 * INT_MAX), -ENOMEM (the table could not grow).  A delta of 0 returns
 * the count and changes nothing.
 */
int mc_id_counts_add(struct mc_id_counts *m, uint64_t id, int64_t delta);

/* id's count, 0 when it is not in the map (or is 0). */
uint64_t mc_id_counts_get(const struct mc_id_counts *m, uint64_t id);

/* How many ids are in the map (not the sum of their counts). */
size_t mc_id_counts_size(const struct mc_id_counts *m);

/*
 * Call fn once per id, in no particular order, while fn returns 0: then
 * 0, or the first non-zero value fn returned.  fn must not change m.
 */
int mc_id_counts_foreach(const struct mc_id_counts *m,
			 int (*fn)(void *ctx, uint64_t id, uint64_t count),
			 void *ctx);

#endif
