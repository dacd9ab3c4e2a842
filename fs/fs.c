/*
 * fs.c - FUSE low-level operations over the namespace store and the pool.
 *
 * The rules this file keeps (man/mooncaked.8 states them for users):
 * - a page is written once: create, write, close; it is committed at the
 *   last close of its last open file and only then has a name that others
 *   can see; until then lookups from anyone get ENOENT;
 * - a lookup that races a writer's close waits (bounded) for that commit,
 *   because RELEASE reaches us after close(2) has returned to the writer;
 * - an inode's bytes never change: an O_TRUNC rewrite commits as a new
 *   inode and the old one dies, so kernel caches and passthrough backing
 *   files (one per inode, a kernel rule) stay correct;
 * - eviction picks least-recently-opened pages that no file holds open.
 *
 * Lock order: fs->evict_lock, then the inode table lock, then the store's
 * own lock (inside ns.c).  The table lock is never held across pool or
 * namespace calls that may evict.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "fs_i.h"
#include "attr_warmer.h"
#include "fuse_ring.h"
#include "crc32c.h"
#include "graves.h"
#include "log.h"
#include "remote.h"
#include "reserve.h"
#include "name.h"
#include "path.h"
#include "banned.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* LRU resolution: opens closer together than this touch the store once. */
#define TOUCH_GRAIN_NS (1000000000ull)

/* Idle committed inodes whose backing file stays registered. */
#define IDLE_MAX 1024

/* How long a lookup waits for a closing writer's commit. */
#define COMMIT_WAIT_NS (2ull * 1000000000ull)
/* How long a rewrite waits for the RELEASEs of descriptors just closed. */
#define RELEASE_WAIT_NS (200ull * 1000000ull)
/* An OPEN this soon after its LOOKUP uses the attributes the lookup got. */
#define LOOKED_UP_NS (100ull * 1000000ull)

enum handle_kind {
	HANDLE_PAGE,
	HANDLE_STATUS,
};

/* One open file; fi->fh points at it. */
struct mc_handle {
	enum handle_kind kind;
	struct mc_inode *inode;	/* HANDLE_PAGE */
	bool passthrough;	/* the kernel does the I/O */
	bool writer;
	bool undecided;		/* opened for writing a committed page: a
				 * truncate to 0 makes it a rewrite, a write
				 * before that is refused */
	pid_t pid;		/* the process that opened it */
	char *text;		/* HANDLE_STATUS snapshot */
	size_t text_len;
};

static void release_inode_files(struct mc_fs *fs, struct mc_inode *in);
static void discard_inode(struct mc_fs *fs, struct mc_inode *in);
static int begin_rewrite(struct mc_fs *fs, struct mc_handle *h);
static void graves_freed(void *ctx);
static void reply_open_or_drop(fuse_req_t req, struct fuse_file_info *fi,
			       uint64_t ino);
static void release_handle(struct mc_fs *fs, struct mc_handle *h, uint64_t ino);

static struct mc_fs *fs_from_req(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void count_error(struct mc_fs *fs, int err)
{
	if (err == -EIO || err == -ENOSPC || err == -EFBIG)
		atomic_fetch_add(&fs->counters.errors, 1);
	if (err == -ENOSPC)
		atomic_fetch_add(&fs->counters.enospc, 1);
}

static void reply_err(fuse_req_t req, int err)
{
	if (err < 0)
		count_error(fs_from_req(req), err);
	fuse_reply_err(req, err < 0 ? -err : err);
}

static struct timespec ts_of(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000ull),
		.tv_nsec = (long)(ns % 1000000000ull),
	};
	return ts;
}

static void fill_stat(const struct mc_ns_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 1 << 21;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = ts_of(a->atime_ns ? a->atime_ns : a->mtime_ns);
	st->st_mtim = ts_of(a->mtime_ns);
	st->st_ctim = ts_of(a->ctime_ns);
}

/* Attributes of the virtual inodes under /.mooncake. */
static int virtual_attr(uint64_t ino, struct mc_ns_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mtime_ns = a->ctime_ns = mc_fs_now_ns(CLOCK_REALTIME);
	if (ino == MC_FS_CTL_INO) {
		a->parent = MC_NS_ROOT_INO;
		a->mode = S_IFDIR | 0555;
		a->nlink = 2;
		return 0;
	}
	if (ino == MC_FS_STATUS_INO) {
		a->parent = MC_FS_CTL_INO;
		a->mode = S_IFREG | 0444;
		a->nlink = 1;
		a->size = 0;	/* direct_io: tools read to EOF, never past a size */
		return 0;
	}
	return -ENOENT;
}

static bool is_virtual(uint64_t ino)
{
	return ino > MC_NS_ROOT_INO && ino < MC_NS_FIRST_INO;
}

static void reply_entry(fuse_req_t req, const struct mc_ns_attr *a,
			double timeout)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	e.generation = MC_FS_GENERATION;
	e.attr_timeout = timeout;
	e.entry_timeout = timeout;
	fill_stat(a, &e.attr);
	fuse_reply_entry(req, &e);
}

/* ---- entry invalidation: sent from a thread of its own ---------------- */

/* How long a rewrite's close waits for its old name to leave the caches. */
#define REWRITE_INVAL_NS (250 * 1000000ull)
/* How long a stop waits for an invalidation under way before aborting. */
#define INVAL_STOP_S 2
#define MC_FUSECTL "/sys/fs/fuse/connections"

static struct timespec monotonic_in(uint64_t ns)
{
	uint64_t at = mc_fs_now_ns(CLOCK_MONOTONIC) + ns;

	return (struct timespec){ .tv_sec = (time_t)(at / 1000000000ull),
				  .tv_nsec = (long)(at % 1000000000ull) };
}

/*
 * The kernel takes the directory lock to invalidate an entry, and request
 * handlers may run with that lock held, so notifications are queued here
 * and sent by a thread that never serves requests.
 */
static void *inval_main(void *arg)
{
	struct mc_fs *fs = arg;
	struct mc_fs_inval item;
	struct timespec ts;

	pthread_mutex_lock(&fs->inval_lock);
	for (;;) {
		while (fs->inval_head == fs->inval_tail && !fs->inval_stop) {
			/* wake twice a second to free pages whose grace ended */
			ts = monotonic_in(500000000ull);
			if (pthread_cond_timedwait(&fs->inval_cond, &fs->inval_lock,
						   &ts) == ETIMEDOUT) {
				pthread_mutex_unlock(&fs->inval_lock);
				mc_graves_reap(fs->graves,
					       mc_fs_now_ns(CLOCK_MONOTONIC) -
						       MC_GRAVE_NS);
				mc_ns_flush_touches(fs->ns);
				pthread_mutex_lock(&fs->inval_lock);
			}
		}
		/* stopping: the kernel is going away, drop what is queued */
		if (fs->inval_stop || fs->inval_head == fs->inval_tail)
			break;
		item = fs->inval_ring[fs->inval_tail % MC_FS_INVAL_RING];
		fs->inval_tail++;
		pthread_mutex_unlock(&fs->inval_lock);
		fuse_lowlevel_notify_inval_entry(fs->se, item.parent, item.name,
						 strlen(item.name));
		pthread_mutex_lock(&fs->inval_lock);
		fs->inval_done++;
		pthread_cond_broadcast(&fs->inval_done_cond);
	}
	/* nobody waits for what will never be sent */
	fs->inval_done = fs->inval_head;
	pthread_cond_broadcast(&fs->inval_done_cond);
	pthread_mutex_unlock(&fs->inval_lock);
	return NULL;
}

/*
 * Queue the invalidation of name in parent.  Returns its ticket for
 * inval_wait(), or 0 when it was not queued (no thread, or a full queue:
 * that only delays, entries expire after entry_timeout).
 */
static uint64_t queue_inval(struct mc_fs *fs, uint64_t parent,
			    const char *name)
{
	struct mc_fs_inval *slot;
	uint64_t ticket = 0;

	pthread_mutex_lock(&fs->inval_lock);
	if (fs->inval_running && !fs->inval_stop &&
	    fs->inval_head - fs->inval_tail < MC_FS_INVAL_RING) {
		slot = &fs->inval_ring[fs->inval_head % MC_FS_INVAL_RING];
		slot->parent = parent;
		snprintf(slot->name, sizeof(slot->name), "%s", name);
		ticket = ++fs->inval_head;
		pthread_cond_signal(&fs->inval_cond);
	}
	pthread_mutex_unlock(&fs->inval_lock);
	return ticket;
}

/* Wait until the invalidation of ticket was sent: 0 or -ETIMEDOUT. */
static int inval_wait(struct mc_fs *fs, uint64_t ticket, uint64_t timeout_ns)
{
	struct timespec until = monotonic_in(timeout_ns);
	int r = 0;

	pthread_mutex_lock(&fs->inval_lock);
	while (fs->inval_done < ticket && r == 0)
		r = pthread_cond_timedwait(&fs->inval_done_cond,
					   &fs->inval_lock, &until);
	if (fs->inval_done >= ticket)
		r = 0;
	pthread_mutex_unlock(&fs->inval_lock);
	return r == 0 ? 0 : -ETIMEDOUT;
}

/* ---- dropping pages ---------------------------------------------------- */


/* An evicted page: its memory is wanted now, so no grave. */
static void free_page_now(struct mc_fs *fs, uint64_t page_id, const char *name)
{
	int r = mc_pool_free(fs->pool, page_id);

	mc_reserve_kick(fs->reserve);
	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot free page %016llx of '%s': its memory stays used until restart",
			     (unsigned long long)page_id, name);
}

/*
 * A page left the namespace: free its memory (open files keep their
 * bytes).  A replaced page lingers in a grave first; an evicted one is
 * freed at once because its memory is wanted now.
 */
static void drop_page_as(struct mc_fs *fs, const struct mc_ns_dropped *d,
			 bool linger)
{
	struct mc_inode *in;

	if (d->ino == 0)
		return;
	mc_inode_table_lock(fs->itab);
	in = mc_inode_find_locked(fs->itab, d->ino);
	if (in && in->state == MC_INODE_OPEN && in->nopen == 0) {
		/* idle: nobody reads it, its backing file can go now */
		mc_inode_remove_locked(fs->itab, in);
	} else if (in && in->state == MC_INODE_OPEN) {
		/* closed for good at its last close, never parked idle */
		in->dead = true;
		/* only this host's copy went: the page lives on elsewhere */
		if (!(d->flags & MC_NS_DROPPED_COPY))
			in->attr.nlink = 0;
		in = NULL;
	} else {
		in = NULL;
	}
	mc_inode_table_unlock(fs->itab);
	discard_inode(fs, in);
	if (d->page_id == 0)
		return;
	if (linger)
		mc_graves_bury(fs->graves, &d->attr);
	else
		free_page_now(fs, d->page_id, d->name);
}

static void drop_page(struct mc_fs *fs, const struct mc_ns_dropped *d)
{
	drop_page_as(fs, d, true);
}

static void on_evicted(void *ctx, const struct mc_ns_dropped *d)
{
	struct mc_fs *fs = ctx;

	drop_page_as(fs, d, false);
	/* a copy that went elsewhere leaves the name as it was */
	if (!(d->flags & MC_NS_DROPPED_COPY))
		queue_inval(fs, d->parent, d->name);
}

void mc_fs_drop_now(struct mc_fs *fs, const struct mc_ns_dropped *d)
{
	on_evicted(fs, d);
}

/*
 * The master dropped a page (or this host's copy of it) for another host's
 * unlink, rename or commit, or an eviction.  This runs on the master
 * client's thread, which also delivers the replies that a worker holding
 * the inode table may be waiting for: hand the work to remote.c's thread.
 */
static void on_dropped_elsewhere(void *ctx, const struct mc_ns_dropped *d)
{
	struct mc_fs *fs = ctx;

	if (fs->remote)
		mc_remote_drop(fs->remote, d);
	else
		on_evicted(fs, d);
}

static void on_replicate(void *ctx, uint64_t page_id)
{
	struct mc_fs *fs = ctx;

	if (fs->remote)
		mc_remote_replicate(fs->remote, page_id);
}

/*
 * Keep room for the next write: when the pool is past the high watermark
 * (or a page of the size last seen would not fit), evict down to
 * high - eviction_ratio.  Only one thread evicts at a time; others go on.
 */
static void make_room_locked(struct mc_fs *fs, uint64_t want);

static void make_room(struct mc_fs *fs, uint64_t want)
{
	if (pthread_mutex_trylock(&fs->evict_lock) != 0)
		return;		/* someone is evicting: go on */
	make_room_locked(fs, want);
	pthread_mutex_unlock(&fs->evict_lock);
}

/* A write that hit a full pool waits for the eviction under way. */
static void make_room_wait(struct mc_fs *fs, uint64_t want)
{
	pthread_mutex_lock(&fs->evict_lock);
	make_room_locked(fs, want);
	pthread_mutex_unlock(&fs->evict_lock);
}

void mc_fs_make_room(struct mc_fs *fs, uint64_t want)
{
	make_room_wait(fs, want);
}

/* True when `want` more bytes would take the pool past its watermark. */
static bool past_watermark(const struct mc_fs *fs,
			   const struct mc_pool_usage *u, uint64_t want)
{
	return (double)(u->used + want) >
		       (double)u->capacity * fs->params.high_watermark ||
	       u->used + want > u->capacity;
}

static void make_room_locked(struct mc_fs *fs, uint64_t want)
{
	struct mc_pool_usage u;
	uint64_t need;
	double low;

	if (mc_pool_usage(fs->pool, &u) < 0 || u.capacity == 0 ||
	    !past_watermark(fs, &u, want))
		return;
	/* replaced pages lingering in graves go first: memory is wanted now */
	mc_graves_reap(fs->graves, UINT64_MAX);
	if (mc_pool_usage(fs->pool, &u) < 0 || !past_watermark(fs, &u, want))
		return;
	low = (double)u.capacity *
	      (fs->params.high_watermark - fs->params.eviction_ratio);
	if (low < 0)
		low = 0;
	need = (uint64_t)((double)(u.used + want) - low);
	if (u.used + want > u.capacity && u.used + want - u.capacity > need)
		need = u.used + want - u.capacity;
	if (mc_ns_evict(fs->ns, need, u.unit, on_evicted, fs) < 0)
		mc_log_ratelimited(MC_LOG_ERR,
				   "evict: the namespace store failed: writes may get ENOSPC until it recovers");
}

/* ---- inode helpers ----------------------------------------------------- */

/* The number after "\n<key>" in an fdinfo text, base base; -1 when absent. */
static long long fdinfo_field(const char *buf, const char *key, int base)
{
	const char *p = strstr(buf, key);

	return p ? strtoll(p + strlen(key), NULL, base) : -1;
}

/*
 * True when thread pid's process holds a descriptor of inode ino of this
 * mount open for reading or writing: /proc/<pid>/fdinfo/<fd> names each
 * one's inode and mount without touching it (a stat of /proc/<pid>/fd/<fd>
 * would come back to this filesystem).  An O_PATH descriptor does not
 * count: it could be reopened through /proc to read the page.
 */
static bool holds_open(struct mc_fs *fs, pid_t pid, uint64_t ino)
{
	char path[64], buf[256];
	struct dirent *de;
	bool found = false;
	ssize_t n;
	DIR *d;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		found = fdinfo_field(buf, "\nino:", 10) == (long long)ino &&
			(fs->mnt_id < 0 ||
			 fdinfo_field(buf, "\nmnt_id:", 10) == fs->mnt_id) &&
			!(fdinfo_field(buf, "flags:", 8) & O_PATH);
	}
	closedir(d);
	return found;
}

/* What the inode table says of a page being written, taken under its lock. */
struct writing {
	bool pending;		/* written or committing here, not yet seen */
	bool closing;		/* its writer has closed it */
	pid_t writer;		/* the creating thread; 0 outside our pid ns */
};

static void writing_of_locked(const struct mc_inode *in, struct writing *w)
{
	w->pending = in && in->state != MC_INODE_OPEN;
	w->writer = w->pending ? in->writer_pid : 0;
	w->closing = w->pending &&
		     (in->flushed || in->state == MC_INODE_COMMITTING);
}

/*
 * True while ino is a page being written or committed here (w) and the
 * caller (thread pid) holds no descriptor of it: the name the kernel keeps
 * from the create must not show the page before its commit to anyone but
 * the processes writing it (an fstat comes without a file handle, so the
 * descriptor is looked for; the creating thread is the common case).
 */
static bool hidden(struct mc_fs *fs, uint64_t ino, pid_t pid,
		   const struct writing *w)
{
	/*
	 * A writer outside our pid namespace (pid 0) got no cached name at
	 * its create: nothing reaches the page by name.
	 */
	if (!w->pending || w->writer == 0)
		return false;
	/*
	 * The creating thread, while it writes; once a close came, only a
	 * descriptor still open counts (a reopen by name then looks again and
	 * waits for the commit, instead of joining the write).
	 */
	if (w->writer == pid && !w->closing)
		return false;
	return !holds_open(fs, pid, ino);
}

static bool hidden_from(struct mc_fs *fs, uint64_t ino, pid_t pid)
{
	struct writing w;

	mc_inode_table_lock(fs->itab);
	writing_of_locked(mc_inode_find_locked(fs->itab, ino), &w);
	mc_inode_table_unlock(fs->itab);
	return hidden(fs, ino, pid, &w);
}

/*
 * close(2) returns before its RELEASE reaches us, so a page its reader has
 * just closed may still count as open here, and a rewrite of an open page
 * fails with ETXTBSY: give those RELEASEs a moment.
 */
static void wait_for_releases(struct mc_fs *fs, uint64_t ino)
{
	uint64_t deadline = mc_fs_now_ns(CLOCK_MONOTONIC) + RELEASE_WAIT_NS;
	struct mc_inode *in;

	mc_inode_table_lock(fs->itab);
	while ((in = mc_inode_find_locked(fs->itab, ino)) &&
	       (in->nopen > 0 || in->rewriter) &&
	       mc_inode_wait_locked(fs->itab, deadline) == 0)
		;
	mc_inode_table_unlock(fs->itab);
}

/*
 * A writer that has closed its file may not have committed yet: RELEASE
 * comes after close(2) returned.  Calls on the name (lookup, rename,
 * unlink) wait for that commit, so "close, then rename" (SGLang's
 * tmp+rename) never finds the name missing.
 */
static void wait_for_closing(struct mc_fs *fs, uint64_t parent,
			     const char *name)
{
	uint64_t deadline = mc_fs_now_ns(CLOCK_MONOTONIC) + COMMIT_WAIT_NS;

	mc_inode_table_lock(fs->itab);
	while (mc_inode_find_closing_locked(fs->itab, parent, name)) {
		if (mc_inode_wait_locked(fs->itab, deadline) == -ETIMEDOUT)
			break;
	}
	mc_inode_table_unlock(fs->itab);
}

/*
 * Attributes of ino as this host sees them, open files and writes
 * included; *w says whether it is a page being written here.
 */
static int get_attr_of(struct mc_fs *fs, uint64_t ino, struct mc_ns_attr *a,
		       struct writing *w)
{
	struct mc_inode *in;
	struct stat st;

	writing_of_locked(NULL, w);
	if (is_virtual(ino))
		return virtual_attr(ino, a);
	mc_inode_table_lock(fs->itab);
	in = mc_inode_find_locked(fs->itab, ino);
	writing_of_locked(in, w);
	if (in && (in->state != MC_INODE_OPEN || in->dead)) {
		*a = in->attr;
		if (in->state != MC_INODE_OPEN && in->fd >= 0 &&
		    fstat(in->fd, &st) == 0)
			a->size = (uint64_t)st.st_size;
		mc_inode_table_unlock(fs->itab);
		return 0;
	}
	mc_inode_table_unlock(fs->itab);
	return mc_ns_getattr(fs->ns, ino, a);
}

static int get_attr(struct mc_fs *fs, uint64_t ino, struct mc_ns_attr *a)
{
	struct writing w;

	return get_attr_of(fs, ino, a, &w);
}

static void release_inode_files(struct mc_fs *fs, struct mc_inode *in)
{
	if (in->backing_id > 0)
		mc_passthrough_close_backing(fs->pt, in->backing_id);
	in->backing_id = 0;
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
}

/* Close an inode's files and free it (it is out of the table); NULL is fine. */
static void discard_inode(struct mc_fs *fs, struct mc_inode *in)
{
	if (!in)
		return;
	release_inode_files(fs, in);
	mc_inode_free(in);
}

/* Register in->fd for passthrough when the kernel agreed to it. */
static void try_backing(struct mc_fs *fs, struct mc_inode *in)
{
	int id;

	if (!mc_passthrough_active(fs->pt) || in->backing_id > 0)
		return;
	id = mc_passthrough_open_backing(fs->pt, in->fd);
	if (id > 0) {
		in->backing_id = id;
		return;
	}
	/*
	 * The kernel offers passthrough to anyone but registers backing
	 * files only for CAP_SYS_ADMIN: one warning, then no more tries.
	 */
	if (id == -EPERM) {
		if (mc_passthrough_disable(fs->pt))
			mc_log(MC_LOG_WARNING,
			       "passthrough: the kernel refuses this daemon's backing files (EPERM: it needs CAP_SYS_ADMIN): the daemon serves every read and write itself, which is slower; run it as root for passthrough");
		return;
	}
	mc_log_ratelimited(MC_LOG_WARNING,
			   "passthrough: cannot register a backing file (%s): the daemon serves this file itself, which is slower",
			   strerror(-id));
}

static int32_t backing_of_fh(void *ctx, uint64_t fh)
{
	struct mc_handle *h = (struct mc_handle *)(uintptr_t)fh;

	if (!h || h->kind != HANDLE_PAGE || !h->passthrough)
		return 0;
	return h->inode->backing_id;
}

static struct mc_handle *handle_new(enum handle_kind kind, struct mc_inode *in)
{
	struct mc_handle *h = calloc(1, sizeof(*h));

	if (h) {
		h->kind = kind;
		h->inode = in;
	}
	return h;
}

static struct mc_handle *handle_of(struct fuse_file_info *fi)
{
	return (struct mc_handle *)(uintptr_t)fi->fh;
}

/* ---- lifecycle ----------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mc_fs *fs = userdata;

	/*
	 * No atomic O_TRUNC: with it the kernel zeroes the cached size of a
	 * page the moment a rewrite opens it, and everyone stat'ing the page
	 * sees 0 until the commit.  Without it the truncate arrives as a
	 * SETATTR on the new handle, which we answer with the old size.
	 */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* passthrough refuses a writeback cache */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->max_readahead = 1u << 20;

	/* saw_request() has seen INIT's flags before this runs */
	if (fs->params.fuse_ring == MC_FUSE_RING_ON &&
	    !mc_fuse_ring_offered(fs->ring)) {
		mc_log(MC_LOG_ERR,
		       "fuse: the kernel does not offer FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING, and its enable_uring switch on): start with --fuse-ring auto or off");
		fs->fatal = -ENOTSUP;
		fuse_session_exit(fs->se);
		return;
	}
	if (fs->params.passthrough == MC_PASSTHROUGH_OFF)
		return;
	if (mc_passthrough_offered(fs->pt)) {
		mc_log(MC_LOG_INFO, "fuse: passthrough on: reads and writes of pages bypass the daemon");
		return;
	}
	if (fs->params.passthrough == MC_PASSTHROUGH_ON) {
		mc_log(MC_LOG_ERR,
		       "fuse: the kernel does not offer passthrough (Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH): start with --passthrough auto or off");
		fs->fatal = -ENOTSUP;
		fuse_session_exit(fs->se);
		return;
	}
	mc_log(MC_LOG_WARNING,
	       "fuse: the kernel does not offer passthrough: the daemon serves page bytes itself, which is slower (Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH)");
}

/* ---- namespace operations --------------------------------------------- */

/*
 * How long the kernel may keep the name parent/name.  Not at all while a
 * write that will replace it is in progress: the rewrite's close drops the
 * name from the caches, but a lookup between that and its commit would
 * cache the old page again, and a reader after close(2) would find it.
 */
static double entry_timeout_of(struct mc_fs *fs, uint64_t parent,
			       const char *name)
{
	bool rewriting;

	mc_inode_table_lock(fs->itab);
	rewriting = mc_inode_find_write_locked(fs->itab, parent, name) != NULL;
	mc_inode_table_unlock(fs->itab);
	return rewriting ? 0 : fs->params.entry_timeout_s;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_attr a;
	int r;

	if (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0) {
		virtual_attr(MC_FS_CTL_INO, &a);
		reply_entry(req, &a, 0);
		return;
	}
	if (parent == MC_FS_CTL_INO) {
		if (strcmp(name, "status") == 0) {
			virtual_attr(MC_FS_STATUS_INO, &a);
			reply_entry(req, &a, 0);
		} else {
			reply_err(req, -ENOENT);
		}
		return;
	}
	/*
	 * A writer that has closed its file may not have committed yet:
	 * RELEASE is queued after close(2) returns.  Wait for it, whether the
	 * name is new or a page being replaced, so that "close, then open or
	 * stat from anywhere" always sees the new page.
	 */
	wait_for_closing(fs, parent, name);
	r = mc_ns_lookup(fs->ns, parent, name, &a);
	if (r == 0) {
		if (S_ISREG(a.mode))
			mc_lookup_cache_put(&fs->looked_up, &a,
					    mc_fs_now_ns(CLOCK_MONOTONIC));
		reply_entry(req, &a, entry_timeout_of(fs, parent, name));
		return;
	}
	if (r == -ENOENT) {
		atomic_fetch_add(&fs->counters.misses, 1);
		/* ino 0: a negative entry the kernel must not cache */
		struct fuse_entry_param e;

		memset(&e, 0, sizeof(e));
		fuse_reply_entry(req, &e);
		return;
	}
	reply_err(req, r);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_attr a;
	struct writing w;
	struct stat st;
	int r;

	atomic_fetch_add(&fs->counters.getattrs, 1);
	r = get_attr_of(fs, ino, &a, &w);
	/* by name (no file handle): a page being written is not there yet */
	if (!fi && hidden(fs, ino, fuse_req_ctx(req)->pid, &w)) {
		reply_err(req, -ESTALE);
		return;
	}
	if (r == -ENOENT && ino >= MC_NS_FIRST_INO && mc_graves_find(fs->graves, ino, &a) == 0)
		r = 0;		/* replaced a moment ago: the old page, still */
	else if (r == -ENOENT && ino >= MC_NS_FIRST_INO)
		r = -ESTALE;	/* replaced under a cached name: look it up again */
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fill_stat(&a, &st);
	/*
	 * Only a committed page's attributes may be cached: the writer's own
	 * fstat of a page being written must not let others see it.
	 */
	fuse_reply_attr(req, &st,
			(ino >= MC_NS_FIRST_INO || ino == MC_NS_ROOT_INO) &&
					!w.pending ?
				fs->params.entry_timeout_s : 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_inode *in = NULL;
	struct mc_ns_attr a, want;
	unsigned flags = 0;
	struct stat st;
	int r;

	if (is_virtual(ino)) {
		reply_err(req, -EPERM);
		return;
	}
	if (!fi && hidden_from(fs, ino, fuse_req_ctx(req)->pid)) {
		reply_err(req, -ESTALE);	/* not committed: not there yet */
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/*
		 * The kernel sends open(O_TRUNC)'s truncate without the file
		 * handle, so find the handle that opened the page to write.
		 */
		struct mc_handle *rw = NULL;

		if (fi && fi->fh && handle_of(fi)->kind == HANDLE_PAGE &&
		    handle_of(fi)->undecided) {
			rw = handle_of(fi);
		} else {
			mc_inode_table_lock(fs->itab);
			in = mc_inode_find_locked(fs->itab, ino);
			/*
			 * Only the opener's own truncate: it is still inside
			 * open(2), so the handle cannot be released under us.
			 */
			if (in && in->state == MC_INODE_OPEN && in->rewriter &&
			    ((struct mc_handle *)in->rewriter)->pid ==
				    fuse_req_ctx(req)->pid)
				rw = in->rewriter;
			mc_inode_table_unlock(fs->itab);
			in = NULL;
		}
		if (rw) {
			/* others see the committed size until the commit */
			a = rw->inode->attr;
			r = attr->st_size == 0 ? begin_rewrite(fs, rw) : -EPERM;
			if (r < 0) {
				reply_err(req, r);
				return;
			}
			fill_stat(&a, &st);
			fuse_reply_attr(req, &st, 0);
			return;
		}
	}
	if (fi && fi->fh && handle_of(fi)->kind == HANDLE_PAGE)
		in = handle_of(fi)->inode;
	mc_inode_table_lock(fs->itab);
	if (!in)
		in = mc_inode_find_locked(fs->itab, ino);
	if (in && in->state == MC_INODE_OPEN)
		in = NULL;	/* committed: the store answers */
	if (in) {
		/* a write in progress: change what it will commit */
		r = 0;
		if (to_set & FUSE_SET_ATTR_SIZE) {
			if ((uint64_t)attr->st_size > fs->params.max_page_size)
				r = -EFBIG;
			else if (ftruncate(in->fd, attr->st_size) < 0)
				r = -errno;
		}
		if (to_set & FUSE_SET_ATTR_MODE)
			in->attr.mode = S_IFREG | (attr->st_mode & 07777);
		if (to_set & FUSE_SET_ATTR_UID)
			in->attr.uid = attr->st_uid;
		if (to_set & FUSE_SET_ATTR_GID)
			in->attr.gid = attr->st_gid;
		a = in->attr;
		if (in->fd >= 0 && fstat(in->fd, &st) == 0)
			a.size = (uint64_t)st.st_size;
		mc_inode_table_unlock(fs->itab);
		if (r < 0) {
			reply_err(req, r);
			return;
		}
		fill_stat(&a, &st);
		fuse_reply_attr(req, &st, 0);
		return;
	}
	mc_inode_table_unlock(fs->itab);

	r = mc_ns_getattr(fs->ns, ino, &a);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && (uint64_t)attr->st_size != a.size) {
		/* committed bytes never change; see O_TRUNC in op_open */
		reply_err(req, -EPERM);
		return;
	}
	memset(&want, 0, sizeof(want));
	if (to_set & FUSE_SET_ATTR_MODE) {
		flags |= MC_NS_SET_MODE;
		want.mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		flags |= MC_NS_SET_UID;
		want.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		flags |= MC_NS_SET_GID;
		want.gid = attr->st_gid;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		flags |= MC_NS_SET_MTIME;
		want.mtime_ns = (to_set & FUSE_SET_ATTR_MTIME_NOW) ?
					mc_fs_now_ns(CLOCK_REALTIME) :
					(uint64_t)attr->st_mtim.tv_sec * 1000000000ull +
						(uint64_t)attr->st_mtim.tv_nsec;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		flags |= MC_NS_SET_ATIME;
		want.atime_ns = (to_set & FUSE_SET_ATTR_ATIME_NOW) ?
					mc_fs_now_ns(CLOCK_REALTIME) :
					(uint64_t)attr->st_atim.tv_sec * 1000000000ull +
						(uint64_t)attr->st_atim.tv_nsec;
	}
	if (flags) {
		r = mc_ns_setattr(fs->ns, ino, flags, &want, &a);
		if (r < 0) {
			reply_err(req, r);
			return;
		}
	}
	fill_stat(&a, &st);
	fuse_reply_attr(req, &st, fs->params.entry_timeout_s);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct mc_fs *fs = fs_from_req(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct mc_ns_attr a;
	int r;

	if (is_virtual(parent) ||
	    (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0)) {
		reply_err(req, parent == MC_NS_ROOT_INO ? -EEXIST : -EPERM);
		return;
	}
	r = mc_ns_mkdir(fs->ns, parent, name, mode & ~ctx->umask & 07777,
			ctx->uid, ctx->gid, &a);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	reply_entry(req, &a, fs->params.entry_timeout_s);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mc_fs *fs = fs_from_req(req);

	if (is_virtual(parent) ||
	    (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0)) {
		reply_err(req, -EPERM);
		return;
	}
	reply_err(req, mc_ns_rmdir(fs->ns, parent, name));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_dropped d;
	int r;

	if (is_virtual(parent) ||
	    (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0)) {
		reply_err(req, -EPERM);
		return;
	}
	memset(&d, 0, sizeof(d));
	wait_for_closing(fs, parent, name);
	r = mc_ns_unlink(fs->ns, parent, name, &d);
	if (r == 0)
		drop_page(fs, &d);
	reply_err(req, r);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_dropped d;
	unsigned nsflags = 0;
	int r;

	if (is_virtual(parent) || is_virtual(newparent) ||
	    (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0) ||
	    (newparent == MC_NS_ROOT_INO &&
	     strcmp(newname, MC_FS_CTL_NAME) == 0)) {
		reply_err(req, -EPERM);
		return;
	}
	if (flags & RENAME_EXCHANGE) {
		reply_err(req, -EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		nsflags |= MC_NS_RENAME_NOREPLACE;
	memset(&d, 0, sizeof(d));
	wait_for_closing(fs, parent, name);
	r = mc_ns_rename(fs->ns, parent, name, newparent, newname, nsflags, &d);
	if (r == 0) {
		drop_page(fs, &d);
		/* before the reply lets the old name be reused */
		mc_attr_warmer_moved(fs->warmer, parent, name);
	}
	reply_err(req, r);
	/* the kernel marked the ctime stale (tmp+rename: the final name) */
	if (r == 0)
		mc_attr_warmer_warm(fs->warmer, newparent, newname);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	/* a page has one name: replicas and eviction track it by that name */
	reply_err(req, -EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	reply_err(req, -EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	reply_err(req, -EPERM);
}

/* ---- files --------------------------------------------------------------- */

/*
 * A new write: reserve the inode and page, create the pending backing file.
 * Returns the table entry (nopen 1) or -errno.
 */
static int start_write(struct mc_fs *fs, uint64_t parent, const char *name,
		       uint32_t mode, uint32_t uid, uint32_t gid,
		       uint64_t replaces, struct mc_inode **inp)
{
	struct mc_inode *in;
	uint64_t ino, page, lent, want;
	int fd, r;

	*inp = NULL;
	/*
	 * Room for a page up to twice the largest seen, as the reserve's loan
	 * assumes: under passthrough a write that finds the pool's tmpfs full
	 * fails, with no daemon in its path to evict.  A pool filled to its
	 * watermark has no reserve left to lend, and after a restart only the
	 * size recorded with the pool's memory knows the pages it holds (it
	 * is never below last_page_size: finish_write() notes it first).
	 */
	want = mc_pool_largest_page(fs->pool);
	if (want > fs->params.max_page_size)
		want = fs->params.max_page_size;
	make_room(fs, 2 * want);
	r = mc_ns_reserve(fs->ns, &ino, &page);
	if (r < 0)
		return r;
	fd = mc_pool_create(fs->pool, page);
	if (fd < 0)
		return fd;
	lent = mc_reserve_lend(fs->reserve, atomic_load(&fs->last_page_size),
			       fs->params.max_page_size);
	mc_inode_table_lock(fs->itab);
	in = mc_inode_add_locked(fs->itab, ino);
	if (!in) {
		r = -ENOMEM;
		goto out_unlock;
	}
	in->state = MC_INODE_WRITING;
	in->fd = fd;
	fd = -1;
	in->nopen = 1;
	in->replaces = replaces;
	in->lent = lent;
	lent = 0;
	in->attr.mode = S_IFREG | (mode & 07777);
	in->attr.uid = uid;
	in->attr.gid = gid;
	in->attr.nlink = 1;
	in->attr.page_id = page;
	in->attr.mtime_ns = in->attr.ctime_ns = mc_fs_now_ns(CLOCK_REALTIME);
	r = mc_inode_set_write_locked(fs->itab, in, parent, name);
	if (r < 0) {
		mc_inode_remove_locked(fs->itab, in);
		fd = in->fd;	/* closed and discarded below */
		lent = in->lent;
		mc_inode_free(in);
		goto out_unlock;
	}
	*inp = in;
	r = 0;
out_unlock:
	mc_inode_table_unlock(fs->itab);
	if (fd >= 0) {
		close(fd);
		mc_pool_discard(fs->pool, page);
	}
	mc_reserve_return(fs->reserve, lent);
	return r;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param e;
	struct mc_ns_attr pa, a;
	struct mc_inode *in;
	struct mc_handle *h;
	int r;

	if (is_virtual(parent)) {
		reply_err(req, -EPERM);
		return;
	}
	if (parent == MC_NS_ROOT_INO && strcmp(name, MC_FS_CTL_NAME) == 0) {
		reply_err(req, -EEXIST);
		return;
	}
	r = mc_name_check(name);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	r = mc_ns_getattr(fs->ns, parent, &pa);
	if (r == 0 && !S_ISDIR(pa.mode))
		r = -ENOTDIR;
	if (r == 0 && (fi->flags & O_EXCL) &&
	    mc_ns_lookup(fs->ns, parent, name, &a) == 0)
		r = -EEXIST;
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	r = start_write(fs, parent, name, mode & ~ctx->umask, ctx->uid,
			ctx->gid, 0, &in);
	if (r == 0)
		in->writer_pid = ctx->pid;
	if (r < 0) {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "create: cannot start a page (%s): the pool at '%s' may be full or unwritable",
				   strerror(-r), mc_pool_dir(fs->pool));
		reply_err(req, r);
		return;
	}
	h = handle_new(HANDLE_PAGE, in);
	if (!h) {
		mc_inode_table_lock(fs->itab);
		mc_inode_remove_locked(fs->itab, in);
		mc_inode_table_unlock(fs->itab);
		mc_pool_discard(fs->pool, in->attr.page_id);
		mc_reserve_return(fs->reserve, in->lent);
		discard_inode(fs, in);
		reply_err(req, -ENOMEM);
		return;
	}
	h->writer = true;
	try_backing(fs, in);
	h->passthrough = in->backing_id > 0;
	if (!h->passthrough)
		fi->direct_io = 1;
	fi->fh = (uintptr_t)h;

	memset(&e, 0, sizeof(e));
	e.ino = in->ino;
	e.generation = MC_FS_GENERATION;
	/*
	 * The kernel may keep the name: the first open after the commit then
	 * costs one round trip, not two.  Until the commit, what comes by
	 * that name (a stat, an open, an xattr call) gets ESTALE, and the
	 * kernel looks the name up again, which finds nothing (or waits for
	 * a closing writer's commit).  Attributes are never cached here.
	 */
	e.attr_timeout = 0;
	/* a writer we cannot name (pid 0: another pid namespace) gets none */
	e.entry_timeout = ctx->pid ? fs->params.entry_timeout_s : 0;
	fill_stat(&in->attr, &e.attr);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* the kernel will not RELEASE what it never got */
		mc_log(MC_LOG_INFO, "create: the reply for '%s' was not delivered (interrupted): discarding the write", name);
		release_handle(fs, h, in->ino);
	}
}

static void open_status(fuse_req_t req, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_handle *h;
	int r;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		reply_err(req, -EACCES);
		return;
	}
	h = handle_new(HANDLE_STATUS, NULL);
	if (!h) {
		reply_err(req, -ENOMEM);
		return;
	}
	r = mc_status_render(fs, &h->text, &h->text_len);
	if (r < 0) {
		free(h);
		reply_err(req, r);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	reply_open_or_drop(req, fi, MC_FS_STATUS_INO);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	int acc = fi->flags & O_ACCMODE;
	struct mc_ns_attr a;
	struct mc_inode *in;
	struct mc_handle *h;
	bool first = false, undecided = false, grave = false, known;
	uint64_t now;
	int r, fd, fetched = -1;

	if (ino == MC_FS_STATUS_INO) {
		open_status(req, fi);
		return;
	}
	if (is_virtual(ino)) {
		reply_err(req, -EISDIR);
		return;
	}

	/*
	 * An open by the name of a page still being written: the name was
	 * left in the kernel's cache by its create.  Nobody may see the page
	 * before its commit, so send the kernel to look the name up again.
	 */
	if (hidden_from(fs, ino, fuse_req_ctx(req)->pid)) {
		reply_err(req, -ESTALE);
		return;
	}
	/* the writer's own second open of its page (by /proc/self/fd, say) */
	mc_inode_table_lock(fs->itab);
	in = mc_inode_find_locked(fs->itab, ino);
	if (in && in->state == MC_INODE_WRITING) {
		h = handle_new(HANDLE_PAGE, in);
		if (!h) {
			mc_inode_table_unlock(fs->itab);
			reply_err(req, -ENOMEM);
			return;
		}
		in->nopen++;
		h->writer = acc != O_RDONLY;
		h->passthrough = in->backing_id > 0;
		mc_inode_table_unlock(fs->itab);
		if (!h->passthrough)
			fi->direct_io = 1;
		fi->fh = (uintptr_t)h;
		reply_open_or_drop(req, fi, ino);
		return;
	}
	/*
	 * A page this host holds open or idle: the table's attributes are the
	 * store's (a page never changes, and a drop takes it out of the table
	 * or marks it dead), so a hot page's open skips the store.  An unlink
	 * racing this open finds the page held, like one that came after it.
	 */
	known = in && in->state == MC_INODE_OPEN && !in->dead &&
		acc == O_RDONLY;
	if (known)
		a = in->attr;
	mc_inode_table_unlock(fs->itab);

	/*
	 * In a cluster the kernel's LOOKUP just fetched these attributes from
	 * the master: the OPEN right behind it uses them instead of asking
	 * again (a page gone since is found out by the fetch, or by the DROP
	 * that invalidates the name).
	 */
	if (known)
		r = 0;
	else if (mc_ns_is_cluster(fs->ns) && acc == O_RDONLY &&
		 mc_lookup_cache_take(&fs->looked_up, ino,
				      mc_fs_now_ns(CLOCK_MONOTONIC),
				      LOOKED_UP_NS, &a) == 0)
		r = 0;
	else
		r = mc_ns_getattr(fs->ns, ino, &a);
	if (r == -ENOENT && acc == O_RDONLY && mc_graves_find(fs->graves, ino, &a) == 0) {
		grave = true;	/* replaced a moment ago: read the old page */
		r = 0;
	}
	if (r == -ENOENT) {
		/* replaced or evicted since the kernel cached it: look again */
		reply_err(req, -ESTALE);
		return;
	}
	if (r == 0 && S_ISDIR(a.mode))
		r = -EISDIR;
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	if (acc != O_RDONLY) {
		/* written once: only a rewrite (truncate to 0) may follow */
		if (fi->flags & O_APPEND) {
			reply_err(req, -EPERM);
			return;
		}
		undecided = true;
		wait_for_releases(fs, ino);
	}

	/* bytes on another host: bring them here first, with no lock held */
	if (fs->remote && !grave) {
		bool cached;

		mc_inode_table_lock(fs->itab);
		cached = mc_inode_find_locked(fs->itab, ino) != NULL;
		mc_inode_table_unlock(fs->itab);
		if (!cached && !mc_pool_has_page(fs->pool, a.page_id)) {
			r = mc_remote_fetch(fs->remote, a.page_id, &fetched);
			if (r < 0 && r != -ENOENT)
				mc_log_ratelimited(MC_LOG_WARNING,
						   "open: cannot fetch page %016llx of inode %llu from any host holding it (%s): the open fails; check those hosts and the network",
						   (unsigned long long)a.page_id,
						   (unsigned long long)ino,
						   strerror(-r));
			if (r < 0) {
				/* gone everywhere: the kernel looks it up again */
				reply_err(req, r == -ENOENT ? -ESTALE : r);
				return;
			}
		}
	}

	h = handle_new(HANDLE_PAGE, NULL);
	if (!h) {
		if (fetched >= 0)
			close(fetched);
		reply_err(req, -ENOMEM);
		return;
	}
	mc_inode_table_lock(fs->itab);
	in = mc_inode_find_locked(fs->itab, ino);
	if (in && fetched >= 0) {
		close(fetched);	/* another open got there first */
		fetched = -1;
	}
	if (!in) {
		fd = fetched >= 0 ? fetched :
				    mc_pool_open_page(fs->pool, a.page_id, O_RDONLY);
		fetched = -1;
		/*
		 * Replaced or evicted since the getattr above.  In a cluster
		 * the page may also live on while this host's copy (fetched a
		 * moment ago, or found above) was evicted or dropped since:
		 * the kernel's second look fetches it again, where EIO would
		 * call a healthy page lost.
		 */
		if (fd == -ENOENT &&
		    (fs->remote || mc_ns_getattr(fs->ns, ino, &a) == -ENOENT)) {
			mc_inode_table_unlock(fs->itab);
			free(h);
			reply_err(req, -ESTALE);
			return;
		}
		if (fd < 0) {
			mc_inode_table_unlock(fs->itab);
			free(h);
			mc_log_ratelimited(MC_LOG_ERR,
					   "open: page %016llx of inode %llu is missing from the pool (%s): the page is lost; remove it and write it again",
					   (unsigned long long)a.page_id,
					   (unsigned long long)ino, strerror(-fd));
			reply_err(req, fd == -ENOENT ? -EIO : fd);
			return;
		}
		in = mc_inode_add_locked(fs->itab, ino);
		if (!in) {
			mc_inode_table_unlock(fs->itab);
			close(fd);
			free(h);
			reply_err(req, -ENOMEM);
			return;
		}
		in->state = MC_INODE_OPEN;
		in->fd = fd;
		in->attr = a;
		in->dead = grave;
		try_backing(fs, in);
	}
	if (undecided && (in->nopen > 0 || in->rewriter)) {
		/*
		 * Checked under the same lock as the count: a reader's
		 * passthrough file and this daemon-served one cannot share
		 * the inode (the kernel allows one backing file per inode).
		 */
		mc_inode_table_unlock(fs->itab);
		free(h);
		reply_err(req, -ETXTBSY);
		return;
	}
	if (in->nopen++ == 0) {
		first = true;
		mc_inode_unidle_locked(fs->itab, in);
		try_backing(fs, in);	/* a rewrite's page has none yet */
	}
	h->inode = in;
	/* readers during a rewrite stay off passthrough: see above */
	h->passthrough = in->backing_id > 0 && !undecided && !in->rewriter;
	h->undecided = undecided;
	h->writer = undecided;
	h->pid = fuse_req_ctx(req)->pid;
	if (undecided)
		in->rewriter = h;
	mc_inode_table_unlock(fs->itab);

	if (first)
		mc_ns_pin(fs->ns, ino);
	if (undecided) {
		fi->direct_io = 1;
		fi->fh = (uintptr_t)h;
		reply_open_or_drop(req, fi, ino);
		return;
	}
	/*
	 * The first open after the commit always counts; after that the LRU
	 * clock needs no finer grain than a second, and skipping the store
	 * write keeps a hot page's reopen cheap.
	 */
	/* passthrough reads never reach us: the open stands for them */
	mc_reserve_busy(fs->reserve);
	now = mc_fs_now_ns(CLOCK_REALTIME);
	if (a.atime_ns == a.mtime_ns || now < a.atime_ns ||
	    now - a.atime_ns >= TOUCH_GRAIN_NS) {
		mc_ns_touch(fs->ns, ino, now);
		/* the table's copy decides the next open's touch */
		mc_inode_table_lock(fs->itab);
		in->attr.atime_ns = now;
		mc_inode_table_unlock(fs->itab);
	}
	atomic_fetch_add(&fs->counters.hits, 1);
	/* an inode's bytes never change, so the kernel may keep its cache */
	if (!h->passthrough)
		fi->keep_cache = 1;
	/* nothing to check at close(2) of a reader: skip the FLUSH trip */
	fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	reply_open_or_drop(req, fi, ino);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mc_handle *h = handle_of(fi);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

	if (h->kind == HANDLE_STATUS) {
		size_t o = (size_t)off;

		if (o >= h->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + o,
				       size < h->text_len - o ? size :
								h->text_len - o);
		return;
	}
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = h->inode->fd;
	bv.buf[0].pos = off;
	/* copy, never splice-move: moving would steal pages from the pool */
	fuse_reply_data(req, &bv, 0);
}

/* pwrite all of buf, making room once when the pool is full: 0 or -errno. */
static int write_all(struct mc_fs *fs, int fd, const char *buf, size_t size,
		     off_t off)
{
	bool retried = false;
	ssize_t n;

	while (size > 0) {
		n = pwrite(fd, buf, size, off);
		if (n < 0 && errno == EINTR)
			continue;
		if ((n < 0 && errno == ENOSPC) || n == 0) {
			/* free memory held resident comes before evictions */
			if (mc_reserve_give(fs->reserve, size) > 0)
				continue;
			if (retried)
				return -ENOSPC;
			retried = true;
			make_room_wait(fs, size);
			continue;
		}
		if (n < 0)
			return -errno;
		buf += n;
		off += n;
		size -= (size_t)n;
	}
	return 0;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_handle *h = handle_of(fi);
	struct mc_inode *in = h->inode;
	int r;

	if (h->kind == HANDLE_PAGE && h->undecided) {
		reply_err(req, -EPERM);	/* a committed page; see O_TRUNC */
		return;
	}
	if (h->kind != HANDLE_PAGE || !h->writer ||
	    in->state != MC_INODE_WRITING) {
		reply_err(req, -EBADF);
		return;
	}
	if ((uint64_t)off + size > fs->params.max_page_size) {
		in->error = -EFBIG;
		reply_err(req, -EFBIG);
		return;
	}
	r = write_all(fs, in->fd, buf, size, off);
	if (r < 0) {
		/* a page cut short must never be committed */
		in->error = r;
		reply_err(req, r);
		return;
	}
	fuse_reply_write(req, size);
}

/*
 * A rewrite replaces a name other processes may hold in their dentry
 * cache, pointing at the old inode: drop it while close(2) still waits for
 * us, and only then mark the write closing (lookups of a closing write's
 * name wait for its commit).
 *
 * The inval thread sends it, and this request waits, but only while
 * another worker stays free for the lookups of its CPU: the invalidation
 * needs the directory lock, which a lookup holds while it waits for its
 * reply, so if every worker waited here, the lookup, the invalidation and
 * the close would wait for each other forever.  When none stays free the
 * close goes on and the name drops a little later (late_invalidations).
 * The wait is bounded for the same reason: a worker of the CPU may be free
 * and still be kept, by a lookup waiting for a commit.
 */
static void invalidate_rewritten(struct mc_fs *fs, uint64_t parent,
				 const char *name)
{
	uint64_t ticket = queue_inval(fs, parent, name);
	bool wait;
	int hold;

	if (ticket == 0) {
		atomic_fetch_add(&fs->counters.late_invalidations, 1);
		return;
	}
	hold = mc_fuse_ring_hold(fs->ring);
	if (hold == -ENOTCONN)
		/* on libfuse's threads, any of which serves any request */
		wait = atomic_fetch_add(&fs->rewrites_closing, 1) + 2 <=
		       fs->params.threads;
	else
		wait = hold >= 0;
	if (!wait || inval_wait(fs, ticket, REWRITE_INVAL_NS) < 0)
		atomic_fetch_add(&fs->counters.late_invalidations, 1);
	if (hold == -ENOTCONN)
		atomic_fetch_sub(&fs->rewrites_closing, 1);
	mc_fuse_ring_unhold(fs->ring, hold);
}

/*
 * close(2) of one descriptor.  The page is checked here because this is the
 * last point where an error reaches the writer: too big, or the pool filled
 * up under a passthrough write (which never passes through us).
 */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_handle *h = handle_of(fi);
	struct mc_inode *in = h->inode;
	char name[MC_NAME_MAX + 1];
	struct mc_pool_usage u;
	bool rewrite;
	uint64_t parent;
	struct stat st;
	int r = 0;

	if (h->kind != HANDLE_PAGE || in->state == MC_INODE_OPEN) {
		fuse_reply_err(req, 0);
		return;
	}
	mc_inode_table_lock(fs->itab);
	if (h->writer && in->error == 0) {
		if (fstat(in->fd, &st) == 0 &&
		    (uint64_t)st.st_size > fs->params.max_page_size)
			in->error = -EFBIG;
		else if (h->passthrough && mc_pool_usage(fs->pool, &u) == 0 &&
			 u.used + mc_pool_reserve_size(fs->pool) + u.unit >
				 u.capacity)
			/*
			 * A full pool at close means a passthrough write
			 * may have been cut short; refusing the page is the
			 * only safe answer since we never saw the write.
			 */
			in->error = -ENOSPC;
	}
	if (h->writer)
		r = in->error;
	rewrite = in->replaces != 0 && r == 0 && !in->flushed;
	if (rewrite)
		snprintf(name, sizeof(name), "%s", in->name);
	parent = in->attr.parent;
	mc_inode_table_unlock(fs->itab);
	if (rewrite)
		invalidate_rewritten(fs, parent, name);
	mc_inode_table_lock(fs->itab);
	in->flushed = true;
	mc_inode_table_unlock(fs->itab);
	reply_err(req, r);
}

/* Last close of a write: commit it, or throw it away. */
/* CRC-32C of a page's size bytes, read through a mapping. */
static int page_crc32c(int fd, uint64_t size, uint32_t *crc)
{
	void *map;

	*crc = 0;
	if (size == 0)
		return 0;
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	*crc = mc_crc32c(0, map, size);
	munmap(map, size);
	return 0;
}

/*
 * Last close of a write: commit it, or throw it away.  A kept page keeps
 * its fd and backing file for its first readers.  The store commit and the
 * table change happen under the table lock (order: table, then store), so
 * an open that finds the page in the store finds it committed here too.
 */
static void finish_write(struct mc_fs *fs, struct mc_inode *in)
{
	struct mc_ns_dropped replaced;
	struct mc_inode *old = NULL;
	char name[MC_NAME_MAX + 1];
	uint64_t lent = in->lent, page = in->attr.page_id;
	bool in_pages = false, deferred = false;
	struct mc_ns_commit c;
	struct stat st;
	bool cluster = mc_ns_is_cluster(fs->ns);
	int err0 = in->error, r = err0, r2;

	snprintf(name, sizeof(name), "%s", in->name ? in->name : "");
	memset(&replaced, 0, sizeof(replaced));
	memset(&c, 0, sizeof(c));
	if (r == 0 && fstat(in->fd, &st) < 0)
		r = -errno;
	if (r == 0 && (uint64_t)st.st_size > fs->params.max_page_size)
		r = -EFBIG;
	/*
	 * In a cluster the file leaves pending/ only once the master took it
	 * (below): a new session's HOLDINGS lists pages/, and the master,
	 * with no record of the page yet, would have it freed mid-commit.
	 */
	if (r == 0 && !cluster) {
		r = mc_pool_commit(fs->pool, page);
		in_pages = r == 0;
	}
	if (r == 0) {
		c.parent = in->attr.parent;
		c.name = name;
		c.ino = in->ino;
		c.page_id = page;
		c.mode = in->attr.mode;
		c.uid = in->attr.uid;
		c.gid = in->attr.gid;
		c.size = (uint64_t)st.st_size;
		c.mtime_ns = mc_fs_now_ns(CLOCK_REALTIME);
	}
	/* other hosts check what they fetch against this */
	if (r == 0 && cluster) {
		r = page_crc32c(in->fd, c.size, &c.crc32c);
		/*
		 * Kept with the file for the data server, before the master
		 * hears of the page: it also says the page, still in pending/,
		 * is final and may be served (mc_pool_open_final()).  Where
		 * the pool keeps none, the server computes it, and a reader
		 * sent here before the move is refused.
		 */
		if (r == 0)
			(void)mc_pool_set_crc(in->fd, c.crc32c);
	}
	in->lent = 0;

	mc_inode_table_lock(fs->itab);
	if (r == 0)
		r = mc_ns_commit(fs->ns, &c, &replaced);
	if (r == 0 && cluster) {
		/* a peer sent here before this move is served from pending/ */
		r2 = mc_pool_commit(fs->pool, page);
		in_pages = r2 == 0;
		if (r2 < 0)
			mc_log_errno(MC_LOG_ERR, r2,
				     "pool: cannot move page '%s' to '%s/pages' after its commit: other hosts cannot read it; check the pool directory",
				     name, mc_pool_dir(fs->pool));
	}
	/*
	 * The master is away (or slow) and the writer's close has returned:
	 * keep the page (in pending/, so no new session's HOLDINGS lists it
	 * for the master to free) and commit it when the master answers.
	 */
	deferred = err0 == 0 && (r == -EHOSTDOWN || r == -ETIMEDOUT) &&
		   fs->remote && !in_pages;
	if (r == 0) {
		in->attr.size = c.size;
		in->attr.mtime_ns = in->attr.ctime_ns = c.mtime_ns;
		in->attr.atime_ns = c.mtime_ns;
		mc_inode_end_write_locked(fs->itab, in);
		old = mc_inode_idle_locked(fs->itab, in, fs->idle_max);
	} else if (in->nopen > 0) {
		/* cannot happen: nobody finds an uncommitted page; be safe */
		mc_inode_end_write_locked(fs->itab, in);
		in->dead = true;
	} else {
		mc_inode_remove_locked(fs->itab, in);
		old = in;	/* ours to close and free */
	}
	mc_inode_table_unlock(fs->itab);
	/* from here `in` belongs to the table (or is `old`) */

	mc_reserve_return(fs->reserve, lent);
	if (r == 0) {
		atomic_fetch_add(&fs->counters.commits, 1);
		/* its attributes were not cacheable until now */
		mc_attr_warmer_warm(fs->warmer, c.parent, name);
		r2 = mc_pool_note_page_size(fs->pool, c.size);
		if (r2 < 0)
			mc_log_ratelimited(MC_LOG_WARNING,
					   "pool: cannot keep the largest page size on '%s' (%s): after a restart the first write may get ENOSPC in a full pool; check that the pool's filesystem keeps user xattrs",
					   mc_pool_dir(fs->pool), strerror(-r2));
		if (c.size > atomic_load(&fs->last_page_size))
			atomic_store(&fs->last_page_size, c.size);
		drop_page(fs, &replaced);
		/* the kernel may still cache the name of the page replaced */
		if (replaced.ino)
			queue_inval(fs, c.parent, name);
		/*
		 * No eviction here: when everything else is held open, the page
		 * just committed would be the only candidate, a loss the writer
		 * never hears of.  The next create makes room instead.
		 */
	} else if (deferred) {
		mc_remote_defer_commit(fs->remote, &c);
	} else {
		if (in_pages)
			mc_pool_free(fs->pool, page);
		else
			mc_pool_discard(fs->pool, page);
		if (r != -ENOENT && r != err0)
			mc_log_ratelimited(MC_LOG_WARNING,
					   "commit: page '%s' was dropped after its writer closed it (%s): write it again",
					   name, strerror(-r));
	}
	discard_inode(fs, old);
}

/*
 * Drop one open of a committed page (table lock held).  The last one parks
 * the page idle, or takes it out of the table when it is dead.  Returns
 * what the caller discards after unlocking (the page, or the idle page it
 * pushed out), and sets *last.
 */
static struct mc_inode *unref_committed_locked(struct mc_fs *fs,
					       struct mc_inode *in, bool *last)
{
	*last = --in->nopen == 0;
	if (*last)
		mc_inode_wake_locked(fs->itab);	/* a rewrite may wait */
	/* a reader that came during the commit: finish_write parks it */
	if (!*last || in->state == MC_INODE_COMMITTING)
		return NULL;
	/* idle keeps the backing file registered: hot pages reopen cheaply */
	if (!in->dead)
		return mc_inode_idle_locked(fs->itab, in, fs->idle_max);
	mc_inode_remove_locked(fs->itab, in);
	return in;
}

/* Drop a handle: the last one of a write commits it. */
static void release_handle(struct mc_fs *fs, struct mc_handle *h, uint64_t ino)
{
	struct mc_inode *in = h->inode, *old;
	bool last;

	if (h->kind == HANDLE_STATUS) {
		free(h->text);
		free(h);
		return;
	}
	mc_inode_table_lock(fs->itab);
	if (in->rewriter == h) {
		in->rewriter = NULL;
		mc_inode_wake_locked(fs->itab);
	}
	free(h);
	if (in->state == MC_INODE_WRITING) {
		last = --in->nopen == 0;
		if (last) {
			in->state = MC_INODE_COMMITTING;
			/* no FLUSH: the kernel failed the open after our reply */
			if (!in->flushed && in->error == 0)
				in->error = -EIO;
		}
		mc_inode_table_unlock(fs->itab);
		if (last)
			finish_write(fs, in);
		return;
	}
	old = unref_committed_locked(fs, in, &last);
	mc_inode_table_unlock(fs->itab);
	if (last)
		mc_ns_unpin(fs->ns, ino);
	discard_inode(fs, old);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);

	/* the kernel does not wait for this reply: answer before the work */
	fuse_reply_err(req, 0);
	release_handle(fs, handle_of(fi), ino);
}

/* An open reply the kernel did not take: it will send no RELEASE. */
static void reply_open_or_drop(fuse_req_t req, struct fuse_file_info *fi,
			       uint64_t ino)
{
	struct mc_fs *fs = fs_from_req(req);

	if (fuse_reply_open(req, fi) != 0)
		release_handle(fs, handle_of(fi), ino);
}

/* Drop one open of a committed page (its handle became something else). */
static void put_committed(struct mc_fs *fs, struct mc_inode *in)
{
	uint64_t ino = in->ino;
	struct mc_inode *old;
	bool last;

	mc_inode_table_lock(fs->itab);
	old = unref_committed_locked(fs, in, &last);
	mc_inode_table_unlock(fs->itab);
	if (last)
		mc_ns_unpin(fs->ns, ino);
	discard_inode(fs, old);
}

/*
 * open(O_TRUNC) of a committed page reaches us as an open for writing and
 * then this truncate to 0 on its handle: from here the handle writes a new
 * page that replaces the old one at the last close.  The new page gets an
 * inode of its own; the handle is served by the daemon because the old
 * inode may have a passthrough backing file (one per inode at a time).
 */
static int begin_rewrite(struct mc_fs *fs, struct mc_handle *h)
{
	struct mc_inode *old = h->inode, *in;
	char name[MC_NAME_MAX + 1];
	uint64_t parent;
	int r;

	r = mc_ns_name_of(fs->ns, old->ino, &parent, name, sizeof(name));
	if (r == 0)
		r = start_write(fs, parent, name, old->attr.mode,
				old->attr.uid, old->attr.gid, old->ino, &in);
	if (r == 0)
		in->writer_pid = h->pid;
	if (r < 0)
		return r == -ENOENT ? -ESTALE : r;
	mc_inode_table_lock(fs->itab);
	if (old->rewriter == h)
		old->rewriter = NULL;
	mc_inode_table_unlock(fs->itab);
	h->inode = in;
	h->undecided = false;
	h->passthrough = false;
	put_committed(fs, old);
	return 0;
}

/* ---- directories ------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_attr a;
	int r;

	r = get_attr(fs, ino, &a);
	if (r == 0 && !S_ISDIR(a.mode))
		r = -ENOTDIR;
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

/* Offsets: 1 ".", 2 "..", 3 "/.mooncake" (root only), then inode numbers. */
struct dir_fill {
	fuse_req_t req;
	struct mc_fs *fs;
	char *buf;
	size_t size, used;
	bool plus;
	bool full;
};

static bool dir_add(struct dir_fill *df, const char *name,
		    const struct mc_ns_attr *a, off_t next)
{
	struct fuse_entry_param e;
	size_t n;

	memset(&e, 0, sizeof(e));
	fill_stat(a, &e.attr);
	if (df->plus) {
		e.ino = a->ino;
		e.generation = MC_FS_GENERATION;
		if (a->ino >= MC_NS_FIRST_INO || a->ino == MC_NS_ROOT_INO)
			e.attr_timeout = e.entry_timeout =
				entry_timeout_of(df->fs, a->parent, name);
		n = fuse_add_direntry_plus(df->req, df->buf + df->used,
					   df->size - df->used, name, &e, next);
	} else {
		n = fuse_add_direntry(df->req, df->buf + df->used,
				      df->size - df->used, name, &e.attr, next);
	}
	if (n > df->size - df->used) {
		df->full = true;
		return false;
	}
	df->used += n;
	return true;
}

static int dir_fill_one(void *ctx, const char *name,
			const struct mc_ns_attr *a)
{
	struct dir_fill *df = ctx;

	return dir_add(df, name, a, (off_t)a->ino) ? 0 : 1;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct mc_fs *fs = fs_from_req(req);
	struct dir_fill df = { .req = req, .fs = fs, .size = size, .plus = plus };
	struct mc_ns_attr self, parent, ctl;
	uint64_t after;
	int r;

	df.buf = malloc(size);
	if (!df.buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	r = get_attr(fs, ino, &self);
	if (r == 0)
		r = get_attr(fs, self.parent ? self.parent : MC_NS_ROOT_INO,
			     &parent);
	if (r < 0)
		goto out;
	if (off < 1 && !dir_add(&df, ".", &self, 1))
		goto done;
	if (off < 2 && !dir_add(&df, "..", &parent, 2))
		goto done;
	if (ino == MC_FS_CTL_INO) {
		virtual_attr(MC_FS_STATUS_INO, &ctl);
		if (off < 3)
			dir_add(&df, "status", &ctl, 3);
		goto done;
	}
	if (ino == MC_NS_ROOT_INO && off < 3) {
		virtual_attr(MC_FS_CTL_INO, &ctl);
		if (!dir_add(&df, MC_FS_CTL_NAME, &ctl, 3))
			goto done;
	}
	after = off < 3 ? 0 : (uint64_t)off;
	r = mc_ns_readdir(fs->ns, ino, after, dir_fill_one, &df);
	if (r > 0)
		r = 0;
	if (r < 0)
		goto out;
done:
	if (df.used == 0 && df.full) {
		r = -EINVAL;	/* buffer too small for one entry */
		goto out;
	}
	fuse_reply_buf(req, df.buf, df.used);
	free(df.buf);
	return;
out:
	free(df.buf);
	reply_err(req, r);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_pool_usage u;
	struct mc_ns_stats st;
	struct statvfs sv;
	int r;

	r = mc_pool_usage(fs->pool, &u);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	mc_ns_get_stats(fs->ns, &st);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = u.capacity / 4096;
	sv.f_bfree = u.used < u.capacity ? (u.capacity - u.used) / 4096 : 0;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = st.pages + st.dirs + sv.f_bfree;
	sv.f_ffree = sv.f_bfree;
	sv.f_favail = sv.f_bfree;
	sv.f_namemax = MC_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: where a page lives ---------------------------- */

static const struct {
	const char *name;
	bool writing;	/* answers for a page not committed yet */
} xattr_names[] = {
	{ "user.mooncake.state", true },
	{ "user.mooncake.location", false },
	{ "user.mooncake.replicas", false },
	{ "user.mooncake.page_id", true },
	{ "user.mooncake.local", true },
};

/* Where a cluster's page lives: the data servers of its copies. */
static int cluster_xattr(struct mc_fs *fs, const struct mc_ns_attr *a,
			 const char *name, char *out, size_t outlen)
{
	struct mc_ns_replicas reps;
	size_t off = 0;
	int r;

	r = mc_ns_replicas(fs->ns, a->page_id, &reps);
	if (r == -ENOENT)
		reps.count = 0;
	else if (r < 0)
		return r;
	if (strcmp(name, "user.mooncake.replicas") == 0)
		return snprintf(out, outlen, "%u", reps.count);
	out[0] = '\0';
	for (unsigned i = 0; i < reps.count && off < outlen; i++) {
		r = snprintf(out + off, outlen - off, "%s%s:%u%s",
			     i ? "," : "", reps.r[i].address, reps.r[i].port,
			     reps.r[i].segment_id == mc_ns_segment(fs->ns) ?
				     "(here)" : "");
		if (r < 0)
			return -EIO;
		off += (size_t)r;
	}
	return (int)off;
}

/*
 * A page being written, as its writers see it: its state, and the ID it
 * will commit under in this host's pool.  Where its copies live describes
 * a committed page; it has none yet.
 */
static int writing_xattr(uint64_t page_id, const char *name, char *out,
			 size_t outlen)
{
	if (strcmp(name, "user.mooncake.state") == 0)
		return snprintf(out, outlen, "writing");
	if (strcmp(name, "user.mooncake.local") == 0)
		return snprintf(out, outlen, "yes");
	if (strcmp(name, "user.mooncake.page_id") == 0)
		return snprintf(out, outlen, "%016llx",
				(unsigned long long)page_id);
	return -ENODATA;
}

static int xattr_value(struct mc_fs *fs, fuse_ino_t ino, pid_t pid,
		       const char *name, char *out, size_t outlen)
{
	struct mc_inode *in;
	struct writing w;
	struct mc_ns_attr a;
	uint64_t page_id = 0;
	char path[PATH_MAX];
	int r;

	if (is_virtual(ino))
		return -ENODATA;
	mc_inode_table_lock(fs->itab);
	in = mc_inode_find_locked(fs->itab, ino);
	writing_of_locked(in, &w);
	if (w.pending)
		page_id = in->attr.page_id;
	mc_inode_table_unlock(fs->itab);
	/* a page being written is nobody's to inspect yet: look again */
	if (hidden(fs, ino, pid, &w))
		return -ESTALE;
	/* the store knows committed pages only */
	if (w.pending)
		return writing_xattr(page_id, name, out, outlen);
	r = mc_ns_getattr(fs->ns, ino, &a);
	if (r < 0)
		return r;
	if (!S_ISREG(a.mode))
		return -ENODATA;
	if (strcmp(name, "user.mooncake.state") == 0)
		return snprintf(out, outlen, "committed");
	if (strcmp(name, "user.mooncake.local") == 0)
		return snprintf(out, outlen, "%s",
				mc_pool_has_page(fs->pool, a.page_id) ? "yes" :
									"no");
	if (mc_ns_is_cluster(fs->ns) &&
	    (strcmp(name, "user.mooncake.location") == 0 ||
	     strcmp(name, "user.mooncake.replicas") == 0))
		return cluster_xattr(fs, &a, name, out, outlen);
	if (strcmp(name, "user.mooncake.location") == 0) {
		mc_pool_page_path(fs->pool, a.page_id, path, sizeof(path));
		return snprintf(out, outlen, "%s:%s", fs->hostname, path);
	}
	if (strcmp(name, "user.mooncake.replicas") == 0)
		return snprintf(out, outlen, "1");
	if (strcmp(name, "user.mooncake.page_id") == 0)
		return snprintf(out, outlen, "%016llx",
				(unsigned long long)a.page_id);
	return -ENODATA;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct mc_fs *fs = fs_from_req(req);
	char val[PATH_MAX + 300];
	int n;

	n = xattr_value(fs, ino, fuse_req_ctx(req)->pid, name, val, sizeof(val));
	if (n < 0) {
		fuse_reply_err(req, -n);
		return;
	}
	if ((size_t)n >= sizeof(val))
		n = (int)sizeof(val) - 1;
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if ((size_t)n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)n);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mc_fs *fs = fs_from_req(req);
	struct mc_ns_attr a;
	struct writing w;
	char list[256];
	size_t len = 0;

	if (hidden_from(fs, ino, fuse_req_ctx(req)->pid)) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (is_virtual(ino) || get_attr_of(fs, ino, &a, &w) < 0 ||
	    !S_ISREG(a.mode)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	/* only the names that answer, so that getfattr -d works */
	for (size_t i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++) {
		size_t n = strlen(xattr_names[i].name) + 1;

		if (w.pending && !xattr_names[i].writing)
			continue;
		memcpy(list + len, xattr_names[i].name, n);
		len += n;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	fuse_reply_err(req, ENOTSUP);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, ENOTSUP);
}

static const struct fuse_lowlevel_ops mc_fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.link = op_link,
	.symlink = op_symlink,
	.mknod = op_mknod,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

/* ---- the wire hooks that give libfuse 3.14 passthrough -------------------- */

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct mc_fs *fs = userdata;
	ssize_t n = read(fd, buf, len);

	if (n > 0 && fs->pt)
		mc_passthrough_saw_request(fs->pt, buf, (size_t)n);
	if (n > 0)
		mc_fuse_ring_saw_request(fs->ring, buf, (size_t)n);
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct mc_fs *fs = userdata;

	if (fs->pt)
		mc_passthrough_patch_reply(fs->pt, iov, count);
	return mc_fuse_ring_writev(fs->ring, fd, iov, count);
}

/* A request that came over the ring, laid out as /dev/fuse gives it. */
static void ring_deliver(void *ctx, void *buf, size_t len)
{
	struct mc_fs *fs = ctx;
	struct fuse_buf fb = { .size = len, .mem = buf };

	if (fs->pt)
		mc_passthrough_saw_request(fs->pt, buf, len);
	fuse_session_process_buf(fs->se, &fb);
}

static const struct fuse_custom_io mc_fs_io = {
	.read = io_read,
	.writev = io_writev,
};

/* ---- life cycle ------------------------------------------------------------ */

/* The inval thread's waits measure intervals: the wall clock may jump. */
static int init_monotonic_cond(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int r;

	r = pthread_condattr_init(&attr);
	if (r != 0)
		return -r;
	r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (r == 0)
		r = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return -r;
}

int mc_fs_new(struct mc_fs **fsp, struct mc_ns *ns, struct mc_pool *pool,
	      const struct mc_fs_params *params)
{
	struct mc_fs *fs;
	struct rlimit rl;
	int r;

	*fsp = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->ns = ns;
	fs->pool = pool;
	fs->params = *params;
	fs->mnt_id = -1;
	mc_lookup_cache_init(&fs->looked_up);
	fs->hostname = strdup(params->hostname ? params->hostname : "localhost");
	fs->params.hostname = fs->hostname;
	fs->inval_ring = calloc(MC_FS_INVAL_RING, sizeof(*fs->inval_ring));
	if (!fs->hostname || !fs->inval_ring) {
		r = -ENOMEM;
		goto out_free;
	}
	r = mc_inode_table_new(&fs->itab);
	if (r < 0)
		goto out_free;
	pthread_mutex_init(&fs->evict_lock, NULL);
	pthread_mutex_init(&fs->inval_lock, NULL);
	r = init_monotonic_cond(&fs->inval_cond);
	if (r == 0)
		r = init_monotonic_cond(&fs->inval_done_cond);
	if (r < 0)
		goto out_free;
	/* each idle inode holds an fd: leave most of the limit to requests */
	fs->idle_max = IDLE_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < IDLE_MAX)
		fs->idle_max = (unsigned)(rl.rlim_cur / 4);
	if (fs->params.resident) {
		r = mc_reserve_new(&fs->reserve, pool, fs->params.high_watermark);
		if (r == -ENOTSUP) {
			mc_log(MC_LOG_INFO, "pool: a plain directory has no reserve: --resident is ignored");
			fs->params.resident = false;
		} else if (r < 0) {
			goto out_free;
		}
	}
	r = mc_graves_new(&fs->graves, pool, graves_freed, fs);
	if (r < 0)
		goto out_free;
	if (mc_ns_is_cluster(ns)) {
		struct mc_ns_listener l = {
			.dropped = on_dropped_elsewhere,
			.replicate = on_replicate,
			.ctx = fs,
		};

		if (params->transport) {
			r = mc_remote_new(&fs->remote, fs, params->transport);
			if (r < 0)
				goto out_free;
		}
		mc_ns_set_listener(ns, &l);
	}
	*fsp = fs;
	return 0;
out_free:
	mc_graves_free(fs->graves);
	mc_reserve_free(fs->reserve);
	mc_inode_table_free(fs->itab);
	mc_lookup_cache_release(&fs->looked_up);
	free(fs->inval_ring);
	free(fs->hostname);
	free(fs);
	return r;
}

/*
 * Fail every request of our connection, through fusectl (mounted here if
 * nobody did).  The last resort of a stop: see stop_inval_thread().
 */
static void abort_connection(struct mc_fs *fs)
{
	char path[96];
	int fd, r = -ENOENT;

	if (fs->conn_minor != 0) {
		if (access(MC_FUSECTL "/version", F_OK) != 0 &&
		    mount("fusectl", MC_FUSECTL, "fusectl", 0, NULL) < 0)
			mc_log_errno(MC_LOG_INFO, -errno,
				     "stop: cannot mount fusectl at " MC_FUSECTL);
		snprintf(path, sizeof(path), MC_FUSECTL "/%u/abort",
			 fs->conn_minor);
		fd = open(path, O_WRONLY | O_CLOEXEC);
		r = fd < 0 ? -errno : 0;
		if (fd >= 0 && write(fd, "1", 1) != 1)
			r = -errno;
		if (fd >= 0)
			close(fd);
	}
	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r,
			     "stop: cannot abort the FUSE connection of '%s': the daemon may hang; run 'umount -f %s' as root",
			     fs->mountpoint, fs->mountpoint);
}

/*
 * The inval thread may be inside the kernel, sending an invalidation that
 * waits for a directory lock a lookup holds, while nobody is left to
 * answer that lookup (the loop over /dev/fuse has ended).  Give it a
 * moment, then fail the connection's requests so that it returns.
 */
static void stop_inval_thread(struct mc_fs *fs)
{
	struct timespec until;

	if (!fs->inval_running)
		return;
	pthread_mutex_lock(&fs->inval_lock);
	fs->inval_stop = true;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += INVAL_STOP_S;
	if (pthread_timedjoin_np(fs->inval_thread, NULL, &until) != 0) {
		mc_log(MC_LOG_WARNING,
		       "stop: an entry invalidation of '%s' waits on a request nobody serves any more: aborting the connection",
		       fs->mountpoint);
		abort_connection(fs);
		pthread_join(fs->inval_thread, NULL);
	}
	fs->inval_running = false;
}

/* A replaced page's memory came back: the reserve may grow again. */
static void graves_freed(void *ctx)
{
	struct mc_fs *fs = ctx;

	mc_reserve_kick(fs->reserve);
}

void mc_fs_free(struct mc_fs *fs)
{
	if (!fs)
		return;
	stop_inval_thread(fs);
	mc_remote_free(fs->remote);	/* stops the copy orders */
	mc_reserve_free(fs->reserve);	/* stops the keeper */
	mc_graves_free(fs->graves);	/* frees what is still buried */
	mc_fuse_ring_free(fs->ring);
	if (fs->se) {
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	mc_attr_warmer_free(fs->warmer);
	mc_passthrough_free(fs->pt);
	mc_inode_table_free(fs->itab);
	pthread_mutex_destroy(&fs->evict_lock);
	mc_lookup_cache_release(&fs->looked_up);
	pthread_mutex_destroy(&fs->inval_lock);
	pthread_cond_destroy(&fs->inval_cond);
	pthread_cond_destroy(&fs->inval_done_cond);
	free(fs->inval_ring);
	free(fs->hostname);
	free(fs->mountpoint);
	free(fs);
}

bool mc_fs_passthrough_active(const struct mc_fs *fs)
{
	return mc_passthrough_active(fs->pt);
}

/*
 * A daemon killed with -9 leaves its mount behind, answering ENOTCONN.
 * It is ours to clean up: detach it so the new mount can take its place.
 */
static bool is_mooncake_mount(const char *mountpoint)
{
	struct mc_mountinfo m;

	return mc_mountinfo_find(mountpoint, "fuse.mooncake", &m) == 1;
}

/*
 * statfs(2) always reaches the daemon (stat may be answered from the
 * kernel's attribute cache), so ENOTCONN from it proves the mount stale.
 *
 * With FUSE over io_uring the kernel lets go of a killed daemon's
 * connection only after its rings are torn down, in a worker, some
 * milliseconds after the daemon was reaped: a statfs sent in between waits
 * and then fails with ECONNABORTED (the connection was aborted under it)
 * or ECANCELED (the dead daemon's ring cancelled it).  Ask again: the next
 * one says ENOTCONN.  Mounting on top instead would leave the stale mount
 * behind our own, for the unmount at our stop to reveal.
 */
#define STALE_RETRIES 200	/* 10 ms apart: 2 s */

static int clear_stale_mount(const char *mountpoint)
{
	unsigned int dying = 0;
	struct statvfs sv;
	int r;

	while (is_mooncake_mount(mountpoint)) {
		if (statvfs(mountpoint, &sv) == 0) {
			mc_log(MC_LOG_ERR,
			       "mount: '%s' is already served by a running mooncaked: stop it first ('umount %s')",
			       mountpoint, mountpoint);
			return -EBUSY;
		}
		r = -errno;
		if (r == -ECONNABORTED || r == -ECANCELED) {
			if (dying == 0)
				mc_log_errno(MC_LOG_INFO, r,
					     "mount: waiting for the stale mount at '%s' to be torn down",
					     mountpoint);
			if (++dying > STALE_RETRIES) {
				mc_log_errno(MC_LOG_ERR, r,
					     "mount: the mount at '%s' is still going away: run 'umount -l %s' and start again",
					     mountpoint, mountpoint);
				return -EBUSY;
			}
			usleep(10 * 1000);
			continue;
		}
		if (r != -ENOTCONN)
			return 0;	/* let the mount itself report it */
		mc_log(MC_LOG_NOTICE,
		       "mount: '%s' is a stale mount left by a daemon that died: detaching it",
		       mountpoint);
		if (umount2(mountpoint, MNT_DETACH) < 0) {
			r = -errno;
			mc_log_errno(MC_LOG_ERR, r,
				     "mount: cannot detach the stale mount at '%s': run 'umount -l %s' as root",
				     mountpoint, mountpoint);
			return r;
		}
	}
	return 0;
}

/*
 * Raise the mount's readahead: daemon-served reads double with 1 MiB.  The
 * device number comes from mountinfo because touching the mount before the
 * request loop runs would wait forever for INIT.
 */
static void raise_readahead(const struct mc_mountinfo *m)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 m->major, m->minor);
	f = fopen(path, "w");
	if (!f)
		return;
	fputs("1024", f);
	fclose(f);
}

/*
 * Our mount as /proc/self/mountinfo lists it (its id is what
 * /proc/<pid>/fdinfo names): only the parent directory is resolved, since
 * a stat of the mount point would ask this very filesystem, which serves
 * nothing yet.  1 when found, else 0 or -errno.
 */
static int find_own_mount(const char *mountpoint, struct mc_mountinfo *m)
{
	char *dup = strdup(mountpoint), *slash, *dir, want[PATH_MAX];
	int r = 0;

	if (!dup)
		return -ENOMEM;
	slash = strrchr(dup, '/');
	if (slash && slash[1] == '\0' && slash != dup) {
		*slash = '\0';
		slash = strrchr(dup, '/');
	}
	dir = realpath(slash == dup ? "/" : slash ? (*slash = '\0', dup) : ".",
		       NULL);
	if (dir) {
		snprintf(want, sizeof(want), "%s/%s",
			 strcmp(dir, "/") == 0 ? "" : dir,
			 slash ? slash + 1 : dup);
		/* the topmost: a stale mount may lie underneath */
		r = mc_mountinfo_find(want, "fuse.mooncake", m);
	}
	free(dir);
	free(dup);
	return r;
}

#define ENABLE_URING_PARAM "/sys/module/fuse/parameters/enable_uring"

/*
 * The kernel decides at mount time whether to offer FUSE over io_uring,
 * from a module parameter that is off by default.  We turn it on: it only
 * lets FUSE servers ask for a ring, and servers that do not ask (every
 * libfuse before 3.18, and 3.18 unless told to) see no change.
 */
static void check_ring_switch(enum mc_fuse_ring_mode mode)
{
	char c = 0;
	int fd;

	if (mode == MC_FUSE_RING_OFF)
		return;
	fd = open(ENABLE_URING_PARAM, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		mc_log(mode == MC_FUSE_RING_ON ? MC_LOG_WARNING : MC_LOG_INFO,
		       "mount: this kernel has no FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING): requests use /dev/fuse");
		return;
	}
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	if (c == 'Y' || c == '1')
		return;
	fd = open(ENABLE_URING_PARAM, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "Y", 1) != 1) {
		mc_log_errno(mode == MC_FUSE_RING_ON ? MC_LOG_WARNING : MC_LOG_NOTICE,
			     -errno,
			     "mount: cannot turn on the kernel's FUSE over io_uring at '%s', so each open costs more cross-CPU wake-ups: run as root, or 'echo Y' there before starting",
			     ENABLE_URING_PARAM);
	} else {
		mc_log(MC_LOG_NOTICE,
		       "mount: turned on the kernel's FUSE over io_uring (%s)",
		       ENABLE_URING_PARAM);
	}
	if (fd >= 0)
		close(fd);
}

int mc_fs_mount(struct mc_fs *fs, const char *mountpoint, const char *fuse_opts)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct mc_mountinfo m;
	char opts[1024];
	int r;

	r = clear_stale_mount(mountpoint);
	if (r < 0)
		return r;
	fs->mountpoint = strdup(mountpoint);
	if (!fs->mountpoint)
		return -ENOMEM;
	/*
	 * noatime: the kernel would otherwise drop cached attributes after
	 * every read, turning each fstat(2) into a round trip; the LRU clock
	 * is ours (last open), not atime.
	 */
	snprintf(opts, sizeof(opts),
		 "fsname=mooncake,subtype=mooncake,default_permissions,noatime%s%s%s",
		 geteuid() == 0 ? ",allow_other" : "",
		 fuse_opts && *fuse_opts ? "," : "",
		 fuse_opts ? fuse_opts : "");
	if (fuse_opt_add_arg(&args, "mooncaked") < 0 ||
	    fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, opts) < 0) {
		r = -ENOMEM;
		goto out;
	}
	check_ring_switch(fs->params.fuse_ring);
	fs->se = fuse_session_new(&args, &mc_fs_ops, sizeof(mc_fs_ops), fs);
	if (!fs->se) {
		mc_log(MC_LOG_ERR,
		       "mount: fuse rejected the options '%s': check the -o options",
		       opts);
		r = -EINVAL;
		goto out;
	}
	if (fuse_session_mount(fs->se, mountpoint) != 0) {
		mc_log(MC_LOG_ERR,
		       "mount: cannot mount at '%s': check that it is an empty directory, that /dev/fuse exists (modprobe fuse) and that you are root or fusermount3 is installed",
		       mountpoint);
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		r = -EIO;
		goto out;
	}
	r = 0;
	if (fs->params.passthrough != MC_PASSTHROUGH_OFF)
		r = mc_passthrough_new(&fs->pt, fuse_session_fd(fs->se),
				       backing_of_fh, fs);
	if (r == 0 && fs->params.fuse_ring != MC_FUSE_RING_OFF)
		r = mc_fuse_ring_new(&fs->ring, fuse_session_fd(fs->se),
				     fs->params.threads, ring_deliver, fs);
	if (r == 0 && (fs->pt || fs->ring))
		r = fuse_session_custom_io(fs->se, &mc_fs_io,
					   fuse_session_fd(fs->se));
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "mount: cannot hook the fuse channel for passthrough and io_uring: start with --passthrough off --fuse-ring off");
		goto out;
	}
	if (find_own_mount(mountpoint, &m) == 1) {
		raise_readahead(&m);
		fs->mnt_id = m.id;
		fs->conn_minor = m.major == 0 ? m.minor : 0;
		/* root only (open_tree); without it readers just ask more */
		r = geteuid() == 0 ? mc_attr_warmer_new(&fs->warmer, fs->ns,
							 m.point,
							 makedev(m.major, m.minor)) :
				     -EPERM;
		if (r < 0 && r != -EPERM)
			mc_log_errno(MC_LOG_INFO, r,
				     "mount: cannot clone the mount for the attribute warmer: a page's first open after its commit asks the daemon for its attributes");
	} else {
		mc_log(MC_LOG_WARNING,
		       "mount: cannot find '%s' in /proc/self/mountinfo: another process's descriptor with the same inode number as a page being written may let it see that page",
		       mountpoint);
	}
	r = 0;
out:
	fuse_opt_free_args(&args);
	return r;
}

int mc_fs_run(struct mc_fs *fs)
{
	struct fuse_loop_config *lc;
	int r;

	if (fuse_set_signal_handlers(fs->se) != 0)
		return -EIO;
	r = pthread_create(&fs->inval_thread, NULL, inval_main, fs);
	if (r != 0) {
		fuse_remove_signal_handlers(fs->se);
		return -r;
	}
	fs->inval_running = true;
	if (fs->warmer && mc_attr_warmer_start(fs->warmer) < 0) {
		mc_log(MC_LOG_WARNING,
		       "mount: cannot start the attribute warmer thread: a page's first open after its commit asks the daemon for its attributes");
		/* its clone of the mount would outlive an unmount */
		mc_attr_warmer_free(fs->warmer);
		fs->warmer = NULL;
	}
	r = mc_reserve_start(fs->reserve);
	if (r < 0)
		mc_log_errno(MC_LOG_WARNING, r,
			     "pool: cannot start the reserve keeper: writes may fault in cold memory");
	if (fs->remote) {
		r = mc_remote_start(fs->remote);
		if (r < 0)
			mc_log_errno(MC_LOG_WARNING, r,
				     "replicate: cannot start the copy thread: this host takes no copies for replica_num");
	}
	lc = fuse_loop_cfg_create();
	if (!lc) {
		r = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, fs->params.threads);
	fuse_loop_cfg_set_idle_threads(lc, fs->params.threads);
	r = fuse_session_loop_mt(fs->se, lc);
	fuse_loop_cfg_destroy(lc);
	if (r > 0)
		r = 0;	/* a signal ended the loop */
	if (r == 0 && fs->fatal < 0)
		r = fs->fatal;
out:
	stop_inval_thread(fs);
	mc_graves_reap(fs->graves, UINT64_MAX);
	fuse_remove_signal_handlers(fs->se);
	/* its armed commands hold /dev/fuse open: before the unmount */
	mc_fuse_ring_free(fs->ring);
	fs->ring = NULL;
	fuse_session_unmount(fs->se);
	/*
	 * Not the warmer yet: it may wait in a GETATTR nobody serves now.
	 * mc_fs_free() stops it once closing /dev/fuse failed that.
	 */
	return r;
}
