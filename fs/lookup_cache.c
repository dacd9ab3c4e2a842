/*
 * lookup_cache.c - attributes of pages just looked up (see the header).
 */
#include <errno.h>
#include <string.h>

#include "lookup_cache.h"
#include "banned.h"

static struct mc_lookup_slot *slot_of(struct mc_lookup_cache *c, uint64_t ino)
{
	/* inode numbers are sequential: spread them over the table */
	return &c->slot[(ino * 0x9e3779b97f4a7c15ull) >> 54];
}

void mc_lookup_cache_init(struct mc_lookup_cache *c)
{
	memset(c->slot, 0, sizeof(c->slot));
	pthread_mutex_init(&c->lock, NULL);
}

void mc_lookup_cache_release(struct mc_lookup_cache *c)
{
	pthread_mutex_destroy(&c->lock);
}

void mc_lookup_cache_put(struct mc_lookup_cache *c, const struct mc_ns_attr *a,
			 uint64_t now_ns)
{
	struct mc_lookup_slot *s = slot_of(c, a->ino);

	pthread_mutex_lock(&c->lock);
	s->attr = *a;
	s->at_ns = now_ns ? now_ns : 1;
	pthread_mutex_unlock(&c->lock);
}

int mc_lookup_cache_take(struct mc_lookup_cache *c, uint64_t ino,
			 uint64_t now_ns, uint64_t max_age_ns,
			 struct mc_ns_attr *out)
{
	struct mc_lookup_slot *s = slot_of(c, ino);
	int r = -ENOENT;

	pthread_mutex_lock(&c->lock);
	if (s->at_ns != 0 && s->attr.ino == ino && now_ns >= s->at_ns &&
	    now_ns - s->at_ns < max_age_ns) {
		*out = s->attr;
		r = 0;
	}
	s->at_ns = 0;
	pthread_mutex_unlock(&c->lock);
	return r;
}
