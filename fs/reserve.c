/* reserve.c - loans from the resident reserve, and the keeper that refills it */
#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "reserve.h"
#include "banned.h"

/*
 * Pages smaller than this borrow nothing: they fit in the slack above the
 * watermark and their faults are cheap, while cutting and refilling the
 * reserve for each would cost more than it saves (a million tiny pages).
 */
#define LEND_MIN_PAGE (1ull << 20)
/* The keeper grows the reserve in steps this big, so lenders wait little, */
#define KEEP_CHUNK (2ull << 20)
/* and only once it is this far below its target, */
#define KEEP_SLACK (64ull << 20)
/*
 * and only after this long without a write or an open: zeroing memory runs
 * at memory bandwidth, which writes and reads need.  Small pages count too:
 * each growth step holds the lenders' mutex, and a keeper at nice 10 beside
 * busy CPUs held it for seconds.  But not much longer: what the keeper
 * takes back is mostly memory freed a moment ago (the half of each loan a
 * page did not use, evicted and replaced pages), and on a VM the host takes
 * free memory back within a couple of seconds.  Refilled at once, one
 * benchmark round's 512 MiB took 88 ms; a second later, each 2 MiB cost a
 * 7-9 ms host fault, and the refill ran into the next reads.
 */
#define KEEP_QUIET_NS (100000000ull)
/* with nothing to refill, the keeper looks again this often */
#define KEEP_IDLE_NS (1000000000ull)

struct mc_reserve {
	struct mc_pool *pool;
	double high_watermark;
	atomic_uint_fast64_t lent;	/* loans to writes in flight */
	atomic_uint_fast64_t last_busy_ns;	/* CLOCK_MONOTONIC */
	pthread_mutex_t mutex;		/* a loan vs the keeper's growth */
	pthread_mutex_t lock;		/* the keeper's flags */
	pthread_cond_t cond;		/* CLOCK_MONOTONIC */
	bool stop, kicked;		/* protected by lock */
	atomic_bool filling;		/* the keeper is refilling: no kicks */
	pthread_t keeper;
	bool running;
};

int mc_reserve_new(struct mc_reserve **rp, struct mc_pool *pool,
		   double high_watermark)
{
	struct mc_reserve *r;
	pthread_condattr_t ca;

	*rp = NULL;
	if (mc_pool_kind(pool) == MC_POOL_DIR)
		return -ENOTSUP;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->pool = pool;
	r->high_watermark = high_watermark;
	pthread_mutex_init(&r->mutex, NULL);
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	*rp = r;
	return 0;
}

void mc_reserve_free(struct mc_reserve *r)
{
	if (!r)
		return;
	if (r->running) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_signal(&r->cond);
		pthread_mutex_unlock(&r->lock);
		pthread_join(r->keeper, NULL);
	}
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->mutex);
	free(r);
}

/*
 * The reserve may hold what is left below the high watermark once pages
 * and loans are counted: the share above the watermark stays free as slack
 * for writes bigger than their loan.
 */
static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t target(struct mc_reserve *r)
{
	struct mc_pool_usage u;
	uint64_t taken;
	double top;

	if (mc_pool_usage(r->pool, &u) < 0)
		return 0;
	top = (double)u.capacity * r->high_watermark;
	taken = u.used + atomic_load(&r->lent);
	return top > (double)taken ? (uint64_t)(top - (double)taken) : 0;
}

void mc_reserve_kick(struct mc_reserve *r)
{
	/* a keeper refilling wakes by itself once writes and opens are quiet */
	if (!r || atomic_load(&r->filling))
		return;
	pthread_mutex_lock(&r->lock);
	r->kicked = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * Shrink the reserve by `by`, and at least down to `cap` (the lenders'
 * mutex held): the bytes it gave up.
 */
static uint64_t cut_locked(struct mc_reserve *r, uint64_t by, uint64_t cap)
{
	uint64_t cur = mc_pool_reserve_size(r->pool);
	uint64_t cut = cur > by ? cur - by : 0;

	if (cut > cap)
		cut = cap;
	if (cut < cur && mc_pool_reserve_resize(r->pool, cut, NULL, NULL) < 0)
		cut = cur;
	return cur - cut;
}

void mc_reserve_busy(struct mc_reserve *r)
{
	if (r)
		atomic_store(&r->last_busy_ns, mono_ns());
}

uint64_t mc_reserve_lend(struct mc_reserve *r, uint64_t largest_page,
			 uint64_t max_page)
{
	uint64_t want = 2 * largest_page;

	if (!r)
		return 0;
	/*
	 * The first page since the start: under passthrough its write goes
	 * straight to the pool's tmpfs, where only the slack and the loan
	 * are free, so a guess too small is an ENOSPC in a pool with room.
	 * The keeper fills the reserve again once the page is closed.
	 */
	if (largest_page == 0)
		want = max_page;
	else if (largest_page < LEND_MIN_PAGE)
		want = 0;
	/*
	 * Always cut the loan out of the reserve, even when free memory is
	 * left: that memory may have sat free long enough to go cold, while
	 * what the reserve gives up now is what the writer faults in next.
	 * Without a loan the reserve still gives way down to its target, so
	 * pages that grew since it was filled keep their slack.
	 */
	mc_reserve_busy(r);
	pthread_mutex_lock(&r->mutex);
	atomic_fetch_add(&r->lent, want);
	cut_locked(r, want, target(r));
	pthread_mutex_unlock(&r->mutex);
	return want;
}

uint64_t mc_reserve_give(struct mc_reserve *r, uint64_t bytes)
{
	uint64_t given;

	if (!r)
		return 0;
	/* a step at least the keeper's slack: a growing page asks once */
	if (bytes < KEEP_SLACK)
		bytes = KEEP_SLACK;
	mc_reserve_busy(r);
	pthread_mutex_lock(&r->mutex);
	given = cut_locked(r, bytes, UINT64_MAX);
	pthread_mutex_unlock(&r->mutex);
	return given;
}

void mc_reserve_return(struct mc_reserve *r, uint64_t loan)
{
	if (!r || !loan)
		return;
	atomic_fetch_sub(&r->lent, loan);
	mc_reserve_kick(r);
}

/* How long until nothing was written or opened for KEEP_QUIET_NS: 0 once. */
static uint64_t until_quiet(struct mc_reserve *r)
{
	uint64_t since = mono_ns() - atomic_load(&r->last_busy_ns);

	return since >= KEEP_QUIET_NS ? 0 : KEEP_QUIET_NS - since;
}

static bool quiet(struct mc_reserve *r)
{
	return until_quiet(r) == 0;
}

/* The keeper's growth gives way as soon as a write or an open comes. */
static bool keeper_should_stop(void *ctx)
{
	return !quiet(ctx);
}

/* ts = now + ns on CLOCK_MONOTONIC */
static void deadline_in(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ns += (uint64_t)ts->tv_nsec;
	ts->tv_sec += (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/*
 * Grow the reserve back to its target, a chunk at a time: once writes and
 * opens are quiet when it is below, else every second or when kicked.
 * Zeroing memory costs CPU, so it runs here at a lower priority and never
 * on a request's path.
 */
static void *keeper_main(void *arg)
{
	struct mc_reserve *r = arg;
	bool stop = false, filling = false, grown;
	struct timespec ts;
	uint64_t cur, cap, wait;

	/* below request threads, but not starved like SCHED_IDLE on a busy host */
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	while (!stop) {
		/* under the lenders' mutex: growing a stale size takes a loan */
		pthread_mutex_lock(&r->mutex);
		cap = target(r);
		cur = mc_pool_reserve_size(r->pool);
		if (cur + KEEP_SLACK <= cap)
			filling = true;
		if (filling && cur + KEEP_CHUNK > cap)
			filling = false;
		grown = filling && quiet(r) &&
			mc_pool_reserve_resize(r->pool, cur + KEEP_CHUNK,
					       keeper_should_stop, r) == 0;
		atomic_store(&r->filling, filling);
		pthread_mutex_unlock(&r->mutex);

		/* below target and kept only by traffic: back when it stops */
		wait = filling ? until_quiet(r) : 0;
		if (wait == 0)
			wait = KEEP_IDLE_NS;	/* full, or a step that failed */
		pthread_mutex_lock(&r->lock);
		if (!grown && !r->stop && !r->kicked) {
			deadline_in(&ts, wait);
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		}
		r->kicked = false;
		stop = r->stop;
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

int mc_reserve_start(struct mc_reserve *r)
{
	int e;

	if (!r || r->running)
		return 0;
	e = pthread_create(&r->keeper, NULL, keeper_main, r);
	if (e != 0)
		return -e;
	r->running = true;
	return 0;
}
