/* graves.c - a ring of replaced pages, freed after MC_GRAVE_NS */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "graves.h"
#include "log.h"
#include "banned.h"

#define SLOTS 4096	/* thousands of replacements a second fit */

struct grave {
	uint64_t buried_ns;
	struct mc_ns_attr attr;	/* ino 0: empty */
};

struct mc_graves {
	struct mc_pool *pool;
	void (*freed)(void *ctx);
	void *ctx;
	pthread_mutex_t lock;
	struct grave slots[SLOTS];	/* protected by lock */
	unsigned head, tail;		/* protected by lock */
};

int mc_graves_new(struct mc_graves **gp, struct mc_pool *pool,
		  void (*freed)(void *ctx), void *ctx)
{
	struct mc_graves *g;

	*gp = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->pool = pool;
	g->freed = freed;
	g->ctx = ctx;
	pthread_mutex_init(&g->lock, NULL);
	*gp = g;
	return 0;
}

void mc_graves_free(struct mc_graves *g)
{
	if (!g)
		return;
	mc_graves_reap(g, UINT64_MAX);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void free_page(struct mc_graves *g, uint64_t page_id)
{
	int r = mc_pool_free(g->pool, page_id);

	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot free replaced page %016llx: its memory stays used until the pool is unmounted",
			     (unsigned long long)page_id);
	if (g->freed)
		g->freed(g->ctx);
}

void mc_graves_reap(struct mc_graves *g, uint64_t before_ns)
{
	struct grave old;

	for (;;) {
		pthread_mutex_lock(&g->lock);
		if (g->tail == g->head ||
		    g->slots[g->tail % SLOTS].buried_ns >= before_ns) {
			pthread_mutex_unlock(&g->lock);
			return;
		}
		old = g->slots[g->tail % SLOTS];
		g->slots[g->tail % SLOTS].attr.ino = 0;
		g->tail++;
		pthread_mutex_unlock(&g->lock);
		free_page(g, old.attr.page_id);
	}
}

void mc_graves_bury(struct mc_graves *g, const struct mc_ns_attr *a)
{
	struct grave old = { 0 };
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	pthread_mutex_lock(&g->lock);
	if (g->head - g->tail == SLOTS) {
		old = g->slots[g->tail % SLOTS];
		g->tail++;
	}
	g->slots[g->head % SLOTS].attr = *a;
	g->slots[g->head % SLOTS].buried_ns =
		(uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	g->head++;
	pthread_mutex_unlock(&g->lock);
	if (old.attr.ino)
		free_page(g, old.attr.page_id);
}

int mc_graves_find(struct mc_graves *g, uint64_t ino, struct mc_ns_attr *out)
{
	int r = -ENOENT;

	pthread_mutex_lock(&g->lock);
	for (unsigned i = g->tail; i != g->head; i++) {
		if (g->slots[i % SLOTS].attr.ino == ino) {
			*out = g->slots[i % SLOTS].attr;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&g->lock);
	return r;
}
