/*
 * id_counts.c - a count per 64-bit id, in an open-addressing table.
 *
 * Linear probing keeps an id's probe run contiguous from its home slot to
 * the first free slot, so a lookup stops at a free slot.  Deleting by
 * backward shift keeps that true without tombstones: each later entry of
 * the run moves into the hole unless its home lies cyclically after the
 * hole, where moving it would put it before its home.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "id_counts.h"
#include "banned.h"

#define ID_COUNTS_MIN_BITS 6 /* 64 slots on the first add */

/* Fibonacci hashing: the top bits, so sequential inodes spread out. */
static size_t home(const struct mc_id_counts *m, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> (64 - m->bits));
}

/* The slot holding id, or the free slot where it would go; cap > 0. */
static size_t find(const struct mc_id_counts *m, uint64_t id)
{
	size_t i = home(m, id);

	while (m->slot[i].id != 0 && m->slot[i].id != id)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static int grow(struct mc_id_counts *m)
{
	struct mc_id_counts n = { 0 };

	n.bits = m->cap ? m->bits + 1 : ID_COUNTS_MIN_BITS;
	if (n.bits >= sizeof(size_t) * CHAR_BIT)
		return -ENOMEM;
	n.cap = (size_t)1 << n.bits;
	n.slot = calloc(n.cap, sizeof(*n.slot));
	if (!n.slot)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].id != 0)
			n.slot[find(&n, m->slot[i].id)] = m->slot[i];
	n.used = m->used;
	free(m->slot);
	*m = n;
	return 0;
}

/* Empty slot i, shifting the rest of its run back over the hole. */
static void delete_slot(struct mc_id_counts *m, size_t i)
{
	size_t mask = m->cap - 1, j = i, k;

	for (;;) {
		j = (j + 1) & mask;
		if (m->slot[j].id == 0)
			break;
		k = home(m, m->slot[j].id);
		/* an entry whose home lies cyclically in (i, j] stays put */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		m->slot[i] = m->slot[j];
		i = j;
	}
	m->slot[i].id = 0;
	m->slot[i].count = 0;
	m->used--;
}

void mc_id_counts_init(struct mc_id_counts *m)
{
	memset(m, 0, sizeof(*m));
}

void mc_id_counts_release(struct mc_id_counts *m)
{
	free(m->slot);
	mc_id_counts_init(m);
}

int mc_id_counts_add(struct mc_id_counts *m, uint64_t id, int64_t delta)
{
	/* |delta| without overflow, INT64_MIN included */
	uint64_t mag = delta < 0 ? -(uint64_t)delta : (uint64_t)delta;
	uint64_t cur = 0;
	bool found = false;
	size_t i = 0;
	int r;

	if (id == 0)
		return -EINVAL;
	if (m->cap) {
		i = find(m, id);
		found = m->slot[i].id == id;
		if (found)
			cur = m->slot[i].count;
	}
	if (delta == 0)
		return (int)cur;
	if (delta < 0) {
		if (!found)
			return -ENOENT;
		if (mag > cur)
			return -ERANGE;
		if (cur == mag) {
			delete_slot(m, i);
			return 0;
		}
		m->slot[i].count = (uint32_t)(cur - mag);
		return (int)(cur - mag);
	}
	if (mag > (uint64_t)INT_MAX - cur)
		return -EOVERFLOW;
	if (!found) {
		/* keep the table at most half full so probe runs stay short */
		if ((m->used + 1) * 2 > m->cap) {
			r = grow(m);
			if (r < 0)
				return r;
			i = find(m, id);
		}
		m->slot[i].id = id;
		m->used++;
	}
	m->slot[i].count = (uint32_t)(cur + mag);
	return (int)(cur + mag);
}

uint64_t mc_id_counts_get(const struct mc_id_counts *m, uint64_t id)
{
	size_t i;

	if (id == 0 || m->cap == 0)
		return 0;
	i = find(m, id);
	return m->slot[i].id == id ? m->slot[i].count : 0;
}

size_t mc_id_counts_size(const struct mc_id_counts *m)
{
	return m->used;
}

int mc_id_counts_foreach(const struct mc_id_counts *m,
			 int (*fn)(void *ctx, uint64_t id, uint64_t count),
			 void *ctx)
{
	int r;

	for (size_t i = 0; i < m->cap; i++) {
		if (m->slot[i].id == 0)
			continue;
		r = fn(ctx, m->slot[i].id, m->slot[i].count);
		if (r != 0)
			return r;
	}
	return 0;
}
