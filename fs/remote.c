/*
 * remote.c - fetching pages from other hosts into this pool.
 *
 * A fetch asks the master where copies are (REPLICAS), makes room in the
 * pool as a write would, lands the bytes straight in a new pool file
 * through a shared mapping (the transport checks length and checksum as
 * they arrive), then commits the file and tells the master this host holds
 * a copy.  When the pool cannot take it, the bytes go to a private memfd
 * that lives as long as the open file: the read still works, nothing is
 * cached.
 *
 * Locking: r->lock protects the fetches under way and the order queue; no
 * other lock is held while bytes move.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"
#include "fs_i.h"
#include "log.h"
#include "remote.h"
#include "reserve.h"
#include "transport.h"
#include "banned.h"

#define REMOTE_QUEUE 4096

struct busy {
	struct busy *next;
	uint64_t page_id;
};

struct drop {
	struct drop *next;
	struct mc_ns_dropped d;
};

struct deferred {
	struct deferred *next;
	struct mc_ns_commit c;		/* c.name points at name */
	char name[MC_NAME_MAX + 1];
	uint64_t until_ns;		/* monotonic: give up after */
};

/* Entries of the order queue: a copy to make, or one made to announce. */
#define ANNOUNCE_BIT (1ull << 63)

struct mc_remote {
	struct mc_fs *fs;
	struct mc_transport *t;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* a fetch ended, or an order came */
	struct busy *busy;		/* protected by lock */
	uint64_t queue[REMOTE_QUEUE];	/* protected by lock */
	unsigned qhead, qtail;		/* protected by lock */
	struct drop *drops, **drops_tail; /* protected by lock */
	struct deferred *deferred;	/* protected by lock */
	bool stop;			/* protected by lock */
	bool running;
	pthread_t worker;
};

int mc_remote_new(struct mc_remote **rp, struct mc_fs *fs,
		  struct mc_transport *t)
{
	struct mc_remote *r;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fs = fs;
	r->t = t;
	r->drops_tail = &r->drops;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	*rp = r;
	return 0;
}

void mc_remote_free(struct mc_remote *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (r->running)
		pthread_join(r->worker, NULL);
	while (r->drops) {
		struct drop *d = r->drops;

		r->drops = d->next;
		free(d);
	}
	while (r->deferred) {
		struct deferred *d = r->deferred;

		r->deferred = d->next;
		/*
		 * It waits in pending/, which the next start empties (an
		 * unfinished write): free its memory now rather than then.
		 */
		mc_pool_discard(r->fs->pool, d->c.page_id);
		mc_log(MC_LOG_WARNING,
		       "commit: page '%s' never reached the master before the daemon stopped: it is dropped; write it again",
		       d->name);
		free(d);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Land the bytes in fd (size bytes, already allocated). */
static int fetch_into(struct mc_remote *r, const struct mc_ns_replicas *rep,
		      uint64_t page_id, int fd)
{
	uint64_t from = 0;
	void *map;
	int err;

	if (rep->size == 0)
		return 0;
	map = mmap(NULL, rep->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	err = mc_fetch_page(r->t, rep, page_id, mc_ns_segment(r->fs->ns), map,
			    &from);
	munmap(map, rep->size);
	if (err == 0) {
		atomic_fetch_add(&r->fs->counters.fetches, 1);
		atomic_fetch_add(&r->fs->counters.fetched_bytes, rep->size);
	}
	if (err == 0)
		mc_log(MC_LOG_DEBUG,
		       "fetch: page %016" PRIx64 " (%" PRIu64
		       " bytes) came from segment %" PRIu64,
		       page_id, rep->size, from);
	return err;
}

/* Bytes for one open when the pool has no room: private, never a copy. */
static int fetch_private(struct mc_remote *r, const struct mc_ns_replicas *rep,
			 uint64_t page_id, int *fdp)
{
	int fd, err;

	fd = memfd_create("mooncake-page", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)rep->size) < 0) {
		err = -errno;
		goto out_close;
	}
	err = fetch_into(r, rep, page_id, fd);
	if (err < 0)
		goto out_close;
	*fdp = fd;
	return 0;
out_close:
	close(fd);
	return err;
}

static void queue_order(struct mc_remote *r, uint64_t order)
{
	pthread_mutex_lock(&r->lock);
	if (r->qtail - r->qhead < REMOTE_QUEUE) {
		r->queue[r->qtail++ % REMOTE_QUEUE] = order;
		pthread_cond_broadcast(&r->cond);
	} else {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "replicate: more than %d copy orders queued: dropping some; the master orders them again",
				   REMOTE_QUEUE);
	}
	pthread_mutex_unlock(&r->lock);
}

static int fetch_locked_out(struct mc_remote *r, uint64_t page_id, int *fdp)
{
	struct mc_fs *fs = r->fs;
	struct mc_ns_replicas rep;
	uint64_t lent = 0;
	int fd = -1, err;

	err = mc_ns_replicas(fs->ns, page_id, &rep);
	if (err < 0)
		return err;
	if (mc_pool_has_page(fs->pool, page_id))
		return 0;
	mc_fs_make_room(fs, rep.size);
	/* the size is known: an empty page borrows nothing */
	lent = mc_reserve_lend(fs->reserve, rep.size, 0);
	fd = mc_pool_create(fs->pool, page_id);
	if (fd >= 0 && rep.size > 0 &&
	    fallocate(fd, 0, 0, (off_t)rep.size) < 0) {
		err = -errno;
		close(fd);
		fd = -1;
		mc_pool_discard(fs->pool, page_id);
		if (err != -ENOSPC)
			goto out;
	}
	if (fd < 0) {
		/* everything here is held open: read it without keeping it */
		err = fetch_private(r, &rep, page_id, fdp);
		goto out;
	}
	err = fetch_into(r, &rep, page_id, fd);
	/* only now: a checksum says the bytes are final (mc_pool_open_final) */
	if (err == 0)
		(void)mc_pool_set_crc(fd, rep.crc32c);
	close(fd);
	if (err == 0)
		err = mc_pool_commit(fs->pool, page_id);
	if (err < 0) {
		mc_pool_discard(fs->pool, page_id);
		goto out;
	}
	/*
	 * Tell the master from the worker thread, not on the open's path: the
	 * copy serves this open either way, and one left unrecorded (no
	 * master right now) is declared by the next registration's holdings.
	 */
	queue_order(r, page_id | ANNOUNCE_BIT);
	err = 0;
out:
	mc_reserve_return(fs->reserve, lent);
	return err;
}

int mc_remote_fetch(struct mc_remote *r, uint64_t page_id, int *fdp)
{
	struct busy self = { .page_id = page_id }, **pp;
	bool waited;
	int err;

	*fdp = -1;
	pthread_mutex_lock(&r->lock);
	do {
		waited = false;
		for (struct busy *b = r->busy; b; b = b->next) {
			if (b->page_id == page_id) {
				pthread_cond_wait(&r->cond, &r->lock);
				waited = true;
				break;
			}
		}
	} while (waited);
	self.next = r->busy;
	r->busy = &self;
	pthread_mutex_unlock(&r->lock);

	err = fetch_locked_out(r, page_id, fdp);
	if (err < 0 && err != -ENOENT && err != -EHOSTDOWN)
		atomic_fetch_add(&r->fs->counters.fetch_errors, 1);

	pthread_mutex_lock(&r->lock);
	for (pp = &r->busy; *pp; pp = &(*pp)->next) {
		if (*pp == &self) {
			*pp = self.next;
			break;
		}
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return err;
}

void mc_remote_replicate(struct mc_remote *r, uint64_t page_id)
{
	queue_order(r, page_id & ~ANNOUNCE_BIT);
}

/* Record a copy made here; a page removed while it travelled is freed. */
static void announce(struct mc_remote *r, uint64_t page_id)
{
	int err = mc_ns_add_replica(r->fs->ns, page_id);

	if (err == -ENOENT)
		mc_pool_free(r->fs->pool, page_id);
	else if (err < 0)
		mc_log_errno(MC_LOG_INFO, err,
			     "fetch: copy of page %016" PRIx64
			     " not recorded yet: the next registration declares it",
			     page_id);
}

void mc_remote_drop(struct mc_remote *r, const struct mc_ns_dropped *d)
{
	struct drop *n = malloc(sizeof(*n));

	if (!n) {
		/* the copy stays until the next registration's holdings */
		mc_log_ratelimited(MC_LOG_WARNING,
				   "drop: out of memory: page %016" PRIx64
				   " stays in the pool until the daemon restarts",
				   d->page_id);
		return;
	}
	n->d = *d;
	n->next = NULL;
	pthread_mutex_lock(&r->lock);
	*r->drops_tail = n;
	r->drops_tail = &n->next;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void mc_remote_defer_commit(struct mc_remote *r, const struct mc_ns_commit *c)
{
	struct deferred *d = calloc(1, sizeof(*d));

	if (!d) {
		mc_pool_discard(r->fs->pool, c->page_id);
		mc_log(MC_LOG_ERR,
		       "commit: out of memory while the master is away: page '%s' is dropped; write it again",
		       c->name);
		return;
	}
	d->c = *c;
	snprintf(d->name, sizeof(d->name), "%s", c->name);
	d->c.name = d->name;
	d->until_ns = mc_fs_now_ns(CLOCK_MONOTONIC) + MC_REMOTE_DEFER_NS;
	mc_log(MC_LOG_NOTICE,
	       "commit: the master did not take page '%s': it is kept and committed when the master answers again",
	       d->name);
	pthread_mutex_lock(&r->lock);
	d->next = r->deferred;
	r->deferred = d;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/* Try each deferred commit once; called without the lock. */
static void retry_deferred(struct mc_remote *r)
{
	struct deferred *list, *d, *keep = NULL;
	struct mc_ns_dropped replaced;
	int err;

	pthread_mutex_lock(&r->lock);
	list = r->deferred;
	r->deferred = NULL;
	pthread_mutex_unlock(&r->lock);
	while ((d = list) != NULL) {
		list = d->next;
		memset(&replaced, 0, sizeof(replaced));
		/*
		 * The file waits in pending/ and moves to pages/ once the
		 * master took it; a reader sent here before the move is
		 * served from pending/ (its checksum is recorded).
		 */
		err = mc_ns_commit(r->fs->ns, &d->c, &replaced);
		if (err == -EEXIST)
			err = 0;	/* it landed before: the answer was lost */
		if (err == 0)
			err = mc_pool_commit(r->fs->pool, d->c.page_id);
		if ((err == -EHOSTDOWN || err == -ETIMEDOUT) &&
		    mc_fs_now_ns(CLOCK_MONOTONIC) < d->until_ns) {
			d->next = keep;
			keep = d;
			continue;
		}
		if (err == 0) {
			mc_log(MC_LOG_NOTICE, "commit: page '%s' committed late",
			       d->name);
			if (replaced.ino)
				mc_fs_drop_now(r->fs, &replaced);
		} else {
			mc_pool_discard(r->fs->pool, d->c.page_id);
			mc_log_errno(MC_LOG_WARNING, err,
				     "commit: page '%s' could not be committed after its writer closed it: it is dropped; write it again",
				     d->name);
		}
		free(d);
	}
	pthread_mutex_lock(&r->lock);
	while ((d = keep) != NULL) {
		keep = d->next;
		d->next = r->deferred;
		r->deferred = d;
	}
	pthread_mutex_unlock(&r->lock);
}

static void *worker_main(void *arg)
{
	struct mc_remote *r = arg;
	struct drop *d;
	uint64_t page_id;
	int fd, err;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		if (r->drops) {
			d = r->drops;
			r->drops = d->next;
			if (!r->drops)
				r->drops_tail = &r->drops;
			pthread_mutex_unlock(&r->lock);
			mc_fs_drop_now(r->fs, &d->d);
			free(d);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->deferred) {
			struct timespec ts;

			/* a few tries a second while the master is away */
			pthread_mutex_unlock(&r->lock);
			retry_deferred(r);
			pthread_mutex_lock(&r->lock);
			if (r->deferred && r->qhead == r->qtail && !r->drops &&
			    !r->stop) {
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 250000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&r->cond, &r->lock, &ts);
			}
			if (r->qhead == r->qtail)
				continue;
		}
		if (r->qhead == r->qtail) {
			pthread_cond_wait(&r->cond, &r->lock);
			continue;
		}
		page_id = r->queue[r->qhead++ % REMOTE_QUEUE];
		pthread_mutex_unlock(&r->lock);
		if (page_id & ANNOUNCE_BIT) {
			announce(r, page_id & ~ANNOUNCE_BIT);
			pthread_mutex_lock(&r->lock);
			continue;
		}
		err = mc_remote_fetch(r, page_id, &fd);
		if (fd >= 0)
			close(fd);	/* no room here: no copy either */
		if (err < 0 && err != -ENOENT)
			mc_log_errno(MC_LOG_WARNING, err,
				     "replicate: cannot copy page %016" PRIx64
				     " here: the master will pick another host",
				     page_id);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int mc_remote_start(struct mc_remote *r)
{
	int err = -pthread_create(&r->worker, NULL, worker_main, r);

	if (err == 0)
		r->running = true;
	return err;
}
