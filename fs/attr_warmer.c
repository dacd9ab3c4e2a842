/* attr_warmer.c - refresh the kernel's attributes of committed pages */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "attr_warmer.h"
#include "log.h"
#include "name.h"
#include "path.h"
#include "banned.h"

/* <linux/mount.h> of Debian 12 has them, glibc 2.36 no wrapper */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif

#define WARMER_RING 256		/* a burst of commits; more are dropped */
#define DIR_SLOTS 64		/* directory paths remembered */
#define MAX_DEPTH 64
/* mountinfo wakes the watcher; this only bounds a missed wake-up */
#define WATCH_SAFETY_MS 1000
/*
 * A refresh waits this long after its request: the kernel finishes a
 * rename (marking the page's attributes stale) after our reply, and a
 * refresh made before that is lost.  Made at once (SCHED_BATCH runs it at
 * once), 3 of 20 tmp+renames still cost the next stat a round trip; 2 ms
 * later none of 30, 5 ms none of 40, on a loaded 2-CPU host.
 */
#define SETTLE_NS 5000000ull
/* a directory renamed elsewhere costs at most this long of missed warms */
#define DIR_TTL_NS 1000000000ull

struct warm_req {
	uint64_t parent;
	uint64_t due_ns;	/* not before (monotonic) */
	char name[MC_NAME_MAX + 1];	/* "": skip, moved away */
};

struct dir_slot {
	uint64_t ino;		/* 0: empty */
	uint64_t at_ns;		/* when it was looked up (monotonic) */
	char *path;		/* relative to the mount, no trailing '/' */
};

struct mc_attr_warmer {
	struct mc_ns *ns;
	char *mountpoint;
	/*
	 * The mount's device, not its id: ids are reused (lowest free), so
	 * a new mount at mountpoint could take ours.  The clone pins our
	 * superblock, so no other mount can get its device number meanwhile.
	 */
	dev_t dev;
	/*
	 * The private clone.  Its number stays valid until _free: once the
	 * mount is gone the watcher dup2()s null_fd over it, so a warm that
	 * races it fails with ENOTDIR instead of naming a reused number.
	 */
	int clone_fd;
	int null_fd;			/* /dev/null, opened up front */
	int stop_fd;			/* eventfd: stops the watcher */
	atomic_bool gone;		/* clone_fd is /dev/null now */
	struct dir_slot dirs[DIR_SLOTS];	/* the warmer thread's */
	atomic_uint_fast64_t warms;		/* fstat()s that got an answer */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct warm_req ring[WARMER_RING];	/* protected by lock */
	unsigned head, tail;			/* protected by lock */
	bool stop;				/* protected by lock */
	bool running;		/* set before the threads run, cleared after */
	pthread_t thread, watcher;
};

int mc_attr_warmer_new(struct mc_attr_warmer **wp, struct mc_ns *ns,
		       const char *mountpoint, dev_t dev)
{
	struct mc_attr_warmer *w;
	int r;

	*wp = NULL;
	if (mountpoint[0] != '/')
		return -EINVAL;	/* could not tell when it is unmounted */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->ns = ns;
	w->dev = dev;
	w->mountpoint = strdup(mountpoint);
	if (!w->mountpoint) {
		r = -ENOMEM;
		goto out_free;
	}
	/* both before the clone: letting it go later must not fail */
	w->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->null_fd < 0) {
		r = -errno;
		goto out_free;
	}
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w->stop_fd < 0) {
		r = -errno;
		goto out_close_null;
	}
	w->clone_fd = (int)syscall(SYS_open_tree, AT_FDCWD, mountpoint,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (w->clone_fd < 0) {
		r = -errno;
		goto out_close_stop;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	*wp = w;
	return 0;
out_close_stop:
	close(w->stop_fd);
out_close_null:
	close(w->null_fd);
out_free:
	free(w->mountpoint);
	free(w);
	return r;
}

/*
 * mountinfo is read rather than the mount point stat()ed: a stat holds the
 * mount for a moment, and a umount in that moment would fail with EBUSY.
 * When mountinfo cannot be read the mount counts as gone: warming stops,
 * but an unmount still ends the daemon.
 */
static bool still_mounted(struct mc_attr_warmer *w)
{
	struct mc_mountinfo m;
	int r;

	r = mc_mountinfo_find(w->mountpoint, "fuse.mooncake", &m);
	if (r < 0)
		mc_log_errno(MC_LOG_WARNING, r,
			     "attr warmer: cannot read /proc/self/mountinfo: warming stops so that an unmount of '%s' still stops the daemon; check the open file limit",
			     w->mountpoint);
	return r == 1 && m.major == major(w->dev) && m.minor == minor(w->dev);
}

/*
 * The clone alone would keep the superblock, so the daemon would never
 * hear of the unmount.  It is replaced, not closed: the warmer thread may
 * be about to fstatat() clone_fd, and a closed number could meanwhile
 * name another file of the daemon.  dup2() drops the clone's reference
 * (a lookup already under way keeps its own until it returns).
 */
static void let_clone_go(struct mc_attr_warmer *w)
{
	while (dup2(w->null_fd, w->clone_fd) < 0 && errno == EINTR)
		;
	atomic_store(&w->gone, true);
}

/*
 * Waits for the mount to go.  The kernel raises POLLPRI (and POLLERR) on
 * an open mountinfo whenever the mount table changes, so an unmount wakes
 * it at once; the timeout is a safety net only.  Its own thread, at the
 * default policy: the warmer's SCHED_BATCH must not delay the exit.
 */
static void *watcher_main(void *arg)
{
	struct mc_attr_warmer *w = arg;
	struct pollfd p[2];
	int fd, n;

	/* opened before the first look: a change after it still wakes us */
	fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		mc_log_errno(MC_LOG_WARNING, -errno,
			     "attr warmer: cannot watch /proc/self/mountinfo: the daemon exits up to %d ms after an unmount of '%s'; check the open file limit",
			     WATCH_SAFETY_MS, w->mountpoint);
	p[0].fd = fd;		/* poll() skips it when negative */
	p[0].events = POLLPRI;
	p[1].fd = w->stop_fd;
	p[1].events = POLLIN;
	while (still_mounted(w)) {
		n = poll(p, 2, WATCH_SAFETY_MS);
		if (n < 0 && errno != EINTR) {
			/* neither spin nor pin the mount: stop warming */
			mc_log_errno(MC_LOG_WARNING, -errno,
				     "attr warmer: cannot wait for an unmount of '%s': warming stops; check memory",
				     w->mountpoint);
			break;
		}
		if (n > 0 && (p[1].revents & POLLIN))
			goto out;	/* _free: it closes clone_fd */
	}
	let_clone_go(w);
out:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

static const char *dir_cached(struct mc_attr_warmer *w, uint64_t dir)
{
	struct dir_slot *s = &w->dirs[dir % DIR_SLOTS];

	if (s->ino == dir && now_ns() - s->at_ns < DIR_TTL_NS)
		return s->path;
	return NULL;
}

static void dir_remember(struct mc_attr_warmer *w, uint64_t dir,
			 const char *path)
{
	struct dir_slot *s = &w->dirs[dir % DIR_SLOTS];
	char *copy = strdup(path);

	if (!copy)
		return;
	free(s->path);
	s->path = copy;
	s->ino = dir;
	s->at_ns = now_ns();
}

/*
 * The path of directory dir relative to the mount into buf ("" for the
 * root): 0, -ENOENT, -ENAMETOOLONG, -ELOOP (deeper than we follow).
 */
static int dir_path(struct mc_attr_warmer *w, uint64_t dir, char *buf,
		    size_t len)
{
	char names[MAX_DEPTH][MC_NAME_MAX + 1];
	const char *hit;
	uint64_t cur = dir, up;
	size_t used = 0, n;
	int depth = 0, r;

	buf[0] = '\0';
	if (dir == MC_NS_ROOT_INO)
		return 0;
	hit = dir_cached(w, dir);
	if (hit) {
		if (strlen(hit) >= len)
			return -ENAMETOOLONG;
		memcpy(buf, hit, strlen(hit) + 1);
		return 0;
	}
	while (cur != MC_NS_ROOT_INO) {
		if (depth == MAX_DEPTH)
			return -ELOOP;
		r = mc_ns_name_of(w->ns, cur, &up, names[depth],
				  sizeof(names[depth]));
		if (r < 0)
			return r;
		depth++;
		cur = up;
	}
	while (depth-- > 0) {
		n = strlen(names[depth]);
		if (used + n + 2 > len)
			return -ENAMETOOLONG;
		if (used)
			buf[used++] = '/';
		memcpy(buf + used, names[depth], n + 1);
		used += n;
	}
	dir_remember(w, dir, buf);
	return 0;
}

static void warm_one(struct mc_attr_warmer *w, struct warm_req *q)
{
	char path[PATH_MAX];
	struct stat st;
	size_t used;

	/* gone: fstatat would fail; a blank name: moved away meanwhile */
	if (atomic_load(&w->gone) || q->name[0] == '\0')
		return;
	if (dir_path(w, q->parent, path, sizeof(path)) < 0)
		return;
	used = strlen(path);
	if (used + strlen(q->name) + 2 > sizeof(path))
		return;
	if (used)
		path[used++] = '/';
	memcpy(path + used, q->name, strlen(q->name) + 1);
	/* the GETATTR this sends is the point; the answer is not needed */
	if (fstatat(w->clone_fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0)
		atomic_fetch_add(&w->warms, 1);
}

static void *warmer_main(void *arg)
{
	struct mc_attr_warmer *w = arg;
	struct sched_param batch = { 0 };
	struct warm_req q;
	uint64_t due;

	/*
	 * SCHED_BATCH: its wake-up never preempts the reader it works for,
	 * yet at nice 0 it gets its fair share.  Not SCHED_IDLE: under load
	 * that starved it while it was preempted inside fstatat() holding
	 * kernel locks, and the requests queued behind its GETATTR waited
	 * (create+rename p99 of 264-350 ms beside four busy loops).
	 */
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (w->head == w->tail) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		due = w->ring[w->tail % WARMER_RING].due_ns;
		if (due > now_ns()) {
			/* still queued meanwhile, so a rename can blank it */
			pthread_mutex_unlock(&w->lock);
			sleep_until(due);
			pthread_mutex_lock(&w->lock);
			continue;
		}
		q = w->ring[w->tail % WARMER_RING];
		w->tail++;
		pthread_mutex_unlock(&w->lock);
		warm_one(w, &q);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void stop_watcher(struct mc_attr_warmer *w)
{
	uint64_t one = 1;
	ssize_t n;

	/* an eventfd write of 1 fails only on overflow, after 2^64 - 1 */
	n = write(w->stop_fd, &one, sizeof(one));
	(void)n;
	pthread_join(w->watcher, NULL);
}

/*
 * The watcher first: a warmer whose clone outlived the mount would keep
 * the daemon running after an unmount.
 */
int mc_attr_warmer_start(struct mc_attr_warmer *w)
{
	int r;

	r = pthread_create(&w->watcher, NULL, watcher_main, w);
	if (r != 0)
		return -r;
	w->running = true;
	r = pthread_create(&w->thread, NULL, warmer_main, w);
	if (r != 0) {
		w->running = false;
		stop_watcher(w);
		return -r;
	}
	return 0;
}

void mc_attr_warmer_warm(struct mc_attr_warmer *w, uint64_t parent,
			 const char *name)
{
	struct warm_req *q;

	if (!w || !w->running)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->head - w->tail < WARMER_RING) {
		q = &w->ring[w->head % WARMER_RING];
		q->parent = parent;
		q->due_ns = now_ns() + SETTLE_NS;
		snprintf(q->name, sizeof(q->name), "%s", name);
		w->head++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
}

void mc_attr_warmer_moved(struct mc_attr_warmer *w, uint64_t parent,
			  const char *name)
{
	struct warm_req *q;

	if (!w || !w->running)
		return;
	pthread_mutex_lock(&w->lock);
	for (unsigned i = w->tail; i != w->head; i++) {
		q = &w->ring[i % WARMER_RING];
		if (q->parent == parent && strcmp(q->name, name) == 0)
			q->name[0] = '\0';
	}
	pthread_mutex_unlock(&w->lock);
}

uint64_t mc_attr_warmer_count(const struct mc_attr_warmer *w)
{
	return w ? atomic_load(&w->warms) : 0;
}

void mc_attr_warmer_free(struct mc_attr_warmer *w)
{
	if (!w)
		return;
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		stop_watcher(w);
	}
	close(w->clone_fd);
	close(w->stop_fd);
	close(w->null_fd);
	for (size_t i = 0; i < DIR_SLOTS; i++)
		free(w->dirs[i].path);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->mountpoint);
	free(w);
}
