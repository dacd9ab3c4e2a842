/* inode_table.c - open and in-progress inodes, hashed by inode number */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inode_table.h"
#include "banned.h"

#define BUCKETS 4096

struct mc_inode_table {
	pthread_mutex_t lock;
	pthread_cond_t cond;			/* commits finished */
	struct mc_inode *buckets[BUCKETS];	/* protected by lock */
	struct mc_inode *writes;		/* protected by lock */
	struct mc_inode *idle_head;		/* oldest; protected by lock */
	struct mc_inode *idle_tail;		/* newest; protected by lock */
	unsigned nidle;				/* protected by lock */
};

int mc_inode_table_new(struct mc_inode_table **tabp)
{
	struct mc_inode_table *tab;
	pthread_condattr_t ca;

	*tabp = NULL;
	tab = calloc(1, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	pthread_mutex_init(&tab->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tab->cond, &ca);
	pthread_condattr_destroy(&ca);
	*tabp = tab;
	return 0;
}

void mc_inode_free(struct mc_inode *in)
{
	if (!in)
		return;
	free(in->name);
	free(in);
}

void mc_inode_table_free(struct mc_inode_table *tab)
{
	if (!tab)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		while (tab->buckets[i]) {
			struct mc_inode *in = tab->buckets[i];

			tab->buckets[i] = in->next;
			if (in->fd >= 0)
				close(in->fd);
			mc_inode_free(in);
		}
	}
	pthread_cond_destroy(&tab->cond);
	pthread_mutex_destroy(&tab->lock);
	free(tab);
}

void mc_inode_table_lock(struct mc_inode_table *tab)
{
	pthread_mutex_lock(&tab->lock);
}

void mc_inode_table_unlock(struct mc_inode_table *tab)
{
	pthread_mutex_unlock(&tab->lock);
}

struct mc_inode *mc_inode_find_locked(struct mc_inode_table *tab, uint64_t ino)
{
	struct mc_inode *in = tab->buckets[ino % BUCKETS];

	while (in && in->ino != ino)
		in = in->next;
	return in;
}

static struct mc_inode *find_write(struct mc_inode_table *tab, uint64_t parent,
				   const char *name, bool closing_only)
{
	/*
	 * Writes in progress are few (a handful per writer thread), so a walk
	 * of their list is cheaper than a second index.
	 */
	for (struct mc_inode *in = tab->writes; in; in = in->wnext) {
		if (closing_only && in->state == MC_INODE_WRITING &&
		    !in->flushed)
			continue;
		if (in->attr.parent == parent && strcmp(in->name, name) == 0)
			return in;
	}
	return NULL;
}

struct mc_inode *mc_inode_find_closing_locked(struct mc_inode_table *tab,
					      uint64_t parent, const char *name)
{
	return find_write(tab, parent, name, true);
}

struct mc_inode *mc_inode_find_write_locked(struct mc_inode_table *tab,
					    uint64_t parent, const char *name)
{
	return find_write(tab, parent, name, false);
}

struct mc_inode *mc_inode_add_locked(struct mc_inode_table *tab, uint64_t ino)
{
	struct mc_inode *in = calloc(1, sizeof(*in));

	if (!in)
		return NULL;
	in->ino = ino;
	in->fd = -1;
	in->attr.ino = ino;
	in->next = tab->buckets[ino % BUCKETS];
	tab->buckets[ino % BUCKETS] = in;
	return in;
}

int mc_inode_set_write_locked(struct mc_inode_table *tab, struct mc_inode *in,
			      uint64_t parent, const char *name)
{
	char *copy = strdup(name);

	if (!copy)
		return -ENOMEM;
	free(in->name);
	in->name = copy;
	in->attr.parent = parent;
	if (!in->wprevp) {
		in->wnext = tab->writes;
		if (tab->writes)
			tab->writes->wprevp = &in->wnext;
		tab->writes = in;
		in->wprevp = &tab->writes;
	}
	return 0;
}

void mc_inode_unidle_locked(struct mc_inode_table *tab, struct mc_inode *in)
{
	if (!in->idle)
		return;
	if (in->idle_prev)
		in->idle_prev->idle_next = in->idle_next;
	else
		tab->idle_head = in->idle_next;
	if (in->idle_next)
		in->idle_next->idle_prev = in->idle_prev;
	else
		tab->idle_tail = in->idle_prev;
	in->idle_next = in->idle_prev = NULL;
	in->idle = false;
	tab->nidle--;
}

struct mc_inode *mc_inode_idle_locked(struct mc_inode_table *tab,
				      struct mc_inode *in, unsigned max)
{
	struct mc_inode *old;

	if (in->idle || in->nopen > 0)
		return NULL;	/* parked already, or in use: never twice */
	in->idle = true;
	in->idle_prev = tab->idle_tail;
	in->idle_next = NULL;
	if (tab->idle_tail)
		tab->idle_tail->idle_next = in;
	else
		tab->idle_head = in;
	tab->idle_tail = in;
	tab->nidle++;
	if (tab->nidle <= max)
		return NULL;
	old = tab->idle_head;
	mc_inode_remove_locked(tab, old);
	return old;
}

static void unlist_write(struct mc_inode *in)
{
	if (!in->wprevp)
		return;
	*in->wprevp = in->wnext;
	if (in->wnext)
		in->wnext->wprevp = in->wprevp;
	in->wprevp = NULL;
	in->wnext = NULL;
}

void mc_inode_end_write_locked(struct mc_inode_table *tab, struct mc_inode *in)
{
	unlist_write(in);
	free(in->name);
	in->name = NULL;
	in->state = MC_INODE_OPEN;
	in->flushed = false;
	pthread_cond_broadcast(&tab->cond);
}

void mc_inode_remove_locked(struct mc_inode_table *tab, struct mc_inode *in)
{
	struct mc_inode **pp = &tab->buckets[in->ino % BUCKETS];

	mc_inode_unidle_locked(tab, in);
	while (*pp && *pp != in)
		pp = &(*pp)->next;
	if (*pp)
		*pp = in->next;
	in->next = NULL;
	unlist_write(in);
	pthread_cond_broadcast(&tab->cond);
}

void mc_inode_wake_locked(struct mc_inode_table *tab)
{
	pthread_cond_broadcast(&tab->cond);
}

int mc_inode_wait_locked(struct mc_inode_table *tab, uint64_t deadline_ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(deadline_ns / 1000000000u),
		.tv_nsec = (long)(deadline_ns % 1000000000u),
	};

	return -pthread_cond_timedwait(&tab->cond, &tab->lock, &ts);
}

void mc_inode_foreach_locked(struct mc_inode_table *tab,
			     void (*fn)(void *ctx, const struct mc_inode *in),
			     void *ctx)
{
	for (size_t i = 0; i < BUCKETS; i++)
		for (struct mc_inode *in = tab->buckets[i]; in; in = in->next)
			fn(ctx, in);
}
