/* attr_warmer.c - refresh the kernel's attributes of committed pages */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#define CHECK_NS 500000000ull	/* how often the mount is looked for */
/* a directory renamed elsewhere costs at most this long of missed warms */
#define DIR_TTL_NS 1000000000ull

struct warm_req {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
};

struct dir_slot {
	uint64_t ino;		/* 0: empty */
	uint64_t at_ns;		/* when it was looked up (monotonic) */
	char *path;		/* relative to the mount, no trailing '/' */
};

struct mc_attr_warmer {
	struct mc_ns *ns;
	char *mountpoint;
	int mnt_id;
	int clone_fd;			/* the thread's after start; -1: gone */
	struct dir_slot dirs[DIR_SLOTS];	/* the thread's */
	atomic_uint_fast64_t warms;		/* fstat()s that got an answer */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct warm_req ring[WARMER_RING];	/* protected by lock */
	unsigned head, tail;			/* protected by lock */
	bool stop;				/* protected by lock */
	bool running;		/* set before the thread runs, cleared after */
	pthread_t thread;
};

int mc_attr_warmer_new(struct mc_attr_warmer **wp, struct mc_ns *ns,
		       const char *mountpoint, int mnt_id)
{
	struct mc_attr_warmer *w;
	int r;

	*wp = NULL;
	if (mnt_id < 0 || mountpoint[0] != '/')
		return -EINVAL;	/* could not tell when it is unmounted */
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->ns = ns;
	w->mnt_id = mnt_id;
	w->mountpoint = strdup(mountpoint);
	if (!w->mountpoint) {
		r = -ENOMEM;
		goto out_free;
	}
	w->clone_fd = (int)syscall(SYS_open_tree, AT_FDCWD, mountpoint,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (w->clone_fd < 0) {
		r = -errno;
		goto out_free;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	*wp = w;
	return 0;
out_free:
	free(w->mountpoint);
	free(w);
	return r;
}

/*
 * Let the clone go once the mount is gone: it alone would keep the
 * superblock, so the daemon would never hear of the unmount.  mountinfo
 * is read rather than the mount point stat()ed: a stat holds the mount
 * for a moment, and a umount in that moment would fail with EBUSY.
 */
static void check_mounted(struct mc_attr_warmer *w)
{
	struct mc_mountinfo m;

	if (w->clone_fd < 0)
		return;
	if (mc_mountinfo_find(w->mountpoint, "fuse.mooncake", &m) == 1 &&
	    m.id == w->mnt_id)
		return;
	close(w->clone_fd);
	w->clone_fd = -1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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

	if (w->clone_fd < 0)
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
	uint64_t checked = now_ns();
	struct timespec until;
	struct sched_param idle = { 0 };
	struct warm_req q;

	/*
	 * Only spare CPU time: on a small host the warmer would otherwise
	 * take the CPU from the very reader it works for.
	 */
	(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &idle);
	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (now_ns() - checked >= CHECK_NS) {
			pthread_mutex_unlock(&w->lock);
			check_mounted(w);
			checked = now_ns();
			pthread_mutex_lock(&w->lock);
			continue;
		}
		if (w->head == w->tail) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += CHECK_NS;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&w->cond, &w->lock, &until);
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

int mc_attr_warmer_start(struct mc_attr_warmer *w)
{
	int r;

	w->running = true;
	r = pthread_create(&w->thread, NULL, warmer_main, w);
	if (r != 0) {
		w->running = false;
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
		snprintf(q->name, sizeof(q->name), "%s", name);
		w->head++;
		pthread_cond_signal(&w->cond);
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
	}
	if (w->clone_fd >= 0)
		close(w->clone_fd);
	for (size_t i = 0; i < DIR_SLOTS; i++)
		free(w->dirs[i].path);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w->mountpoint);
	free(w);
}
