/*
 * pool.c - pool memory: one backing file per page on a private tmpfs.
 *
 * Everything on the hot path (create, commit, open, free) is one *at()
 * call relative to the pages/ or pending/ directory fd, so no path is built
 * and no lock is taken: the kernel's directory lock is the only one.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <linux/magic.h>
#include <unistd.h>

#include "log.h"
#include "path.h"
#include "pool.h"
#include "size.h"
#include "banned.h"

#define POOL_SOURCE "mooncake-pool"
#define POOL_HUGE_UNIT (2ull << 20)
#define POOL_SMALL_UNIT 4096ull
#define POOL_SHM_ROOT "/dev/shm"
#define POOL_SHM_PREFIX "mooncake-pool-"
/* ".." and 16 hex digits: the end of a name cut to MC_POOL_SHM_NAME_MAX */
#define POOL_SHM_HASH_LEN 18
/* 16 hex digits and a NUL */
#define POOL_NAME_LEN 17

struct mc_pool {
	char *dir;		/* canonical path of the pool directory */
	enum mc_pool_kind kind;
	uint64_t capacity;	/* as passed to open (MC_POOL_DIR reports it) */
	/*
	 * MC_POOL_DIR only: what the committed pages (the files in pages/)
	 * take, each file's size rounded up to POOL_SMALL_UNIT as eviction
	 * counts it.  The filesystem under such a pool is shared (/dev/shm
	 * with NCCL and PyTorch), so its free space says nothing of ours.
	 * Summed once at open, then kept by commit and free: committed bytes
	 * never change.  pending/ is summed at each usage call instead.
	 */
	_Atomic uint64_t dir_pages_bytes;
	int pages_fd;
	int pending_fd;
	int reserve_fd;		/* -1 for MC_POOL_DIR */
	pthread_mutex_t reserve_lock;
	_Atomic uint64_t reserve_bytes;	/* written under reserve_lock */
	pthread_mutex_t largest_lock;	/* not reserve_lock: the keeper holds
					 * that for milliseconds */
	_Atomic uint64_t largest_page;	/* written under largest_lock */
};

static int open_reserve(struct mc_pool *pool);
static uint64_t load_largest_page(const char *dir, uint64_t capacity);

static void page_name(uint64_t id, char name[POOL_NAME_LEN])
{
	snprintf(name, POOL_NAME_LEN, "%016" PRIx64, id);
}

/* True when the comma-separated list opts holds exactly the option opt. */
static bool has_option(const char *opts, const char *opt)
{
	size_t len = strlen(opt);
	const char *p = opts;

	while (p && *p) {
		if (strncmp(p, opt, len) == 0 && (p[len] == ',' || !p[len]))
			return true;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

/*
 * A legacy remount resets the per-mount flags to the ones it is given, so
 * pass back the ones the mount has now.  Mapped one by one: ST_RELATIME
 * is MS_BIND's value, and a bind remount would ignore the new size.
 */
static unsigned long mount_flags(const char *dir)
{
	static const struct {
		unsigned long st, ms;
	} map[] = {
		{ ST_RDONLY, MS_RDONLY },	{ ST_NOSUID, MS_NOSUID },
		{ ST_NODEV, MS_NODEV },		{ ST_NOEXEC, MS_NOEXEC },
		{ ST_SYNCHRONOUS, MS_SYNCHRONOUS },
		{ ST_NOATIME, MS_NOATIME },	{ ST_NODIRATIME, MS_NODIRATIME },
		{ ST_RELATIME, MS_RELATIME },
	};
	struct statvfs sv;
	unsigned long ms = 0;

	if (statvfs(dir, &sv) < 0)
		return MS_NOSUID | MS_NODEV;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (sv.f_flag & map[i].st)
			ms |= map[i].ms;
	return ms;
}

/*
 * Bring an adopted tmpfs to the requested size (and to huge=always when
 * asked).  A failure is not fatal: the pages in it are what matters, so
 * keep the mount as it is and say so.
 */
static void resize_adopted(const char *dir, uint64_t capacity, unsigned flags,
			   struct mc_mountinfo *m)
{
	bool want_huge = (flags & MC_POOL_HUGE) &&
			 !has_option(m->opts, "huge=always");
	struct statfs sf;
	uint64_t size, want;
	char opts[64];

	if (statfs(dir, &sf) < 0)
		return;
	size = (uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize;
	/* tmpfs keeps its size in whole pages */
	want = (capacity + (uint64_t)sf.f_bsize - 1) / (uint64_t)sf.f_bsize *
	       (uint64_t)sf.f_bsize;
	if (size == want && !want_huge)
		return;

	snprintf(opts, sizeof(opts), "size=%" PRIu64 "%s", capacity,
		 want_huge ? ",huge=always" : "");
	if (mount(POOL_SOURCE, dir, "tmpfs", MS_REMOUNT | mount_flags(dir),
		  opts) < 0) {
		int r = -errno;

		mc_log_errno(MC_LOG_WARNING, r,
			     "pool: cannot remount '%s' with '%s' (keeping size %" PRIu64
			     " bytes): free pages below the new size or unmount it",
			     dir, opts, size);
		return;
	}
	if (want_huge)
		snprintf(m->opts, sizeof(m->opts), "huge=always");
}

/*
 * Mount a fresh tmpfs of capacity bytes at dir.  Returns 0 with *kind set,
 * or -errno (-EPERM left to the caller, which falls back to a directory).
 */
static int mount_fresh(const char *dir, uint64_t capacity, unsigned flags,
		       enum mc_pool_kind *kind)
{
	const unsigned long mflags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
	char opts[96];

	if (flags & MC_POOL_HUGE) {
		snprintf(opts, sizeof(opts),
			 "size=%" PRIu64 ",mode=0700,huge=always", capacity);
		if (mount(POOL_SOURCE, dir, "tmpfs", mflags, opts) == 0) {
			*kind = MC_POOL_TMPFS_HUGE;
			return 0;
		}
		if (errno != EINVAL)
			return -errno;
		/* a kernel without transparent huge pages rejects huge= */
		mc_log(MC_LOG_WARNING,
		       "pool: tmpfs at '%s' refused huge=always (EINVAL): pages are 4 KiB, enable CONFIG_TRANSPARENT_HUGEPAGE for 2 MiB pages",
		       dir);
	}
	snprintf(opts, sizeof(opts), "size=%" PRIu64 ",mode=0700", capacity);
	if (mount(POOL_SOURCE, dir, "tmpfs", mflags, opts) < 0)
		return -errno;
	*kind = MC_POOL_TMPFS;
	return 0;
}

/*
 * Open (making it if missing) the subdirectory name of the pool directory
 * dfd, whose path dir is for messages: relative to the fd, so the
 * directory checked or mounted is the one used.
 */
static int open_subdir(int dfd, const char *dir, const char *name)
{
	int fd;

	if (mkdirat(dfd, name, 0700) < 0 && errno != EEXIST) {
		int r = -errno;

		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot create '%s/%s': check the pool directory's owner and permissions",
			     dir, name);
		return r;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int r = -errno;

		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot open '%s/%s': it must be a directory, not a symlink",
			     dir, name);
		return r;
	}
	return fd;
}

/*
 * Call fn on every entry of the directory fd (other than . and ..).
 * Stops early when fn returns non-zero and returns that, else 0 or -errno.
 */
static int for_each_entry(int fd,
			  int (*fn)(void *ctx, int fd, const char *name),
			  void *ctx)
{
	DIR *d;
	struct dirent *de;
	int dup_fd, r = 0;

	/* closedir() closes its fd; the caller keeps fd */
	dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dup_fd < 0)
		return -errno;
	d = fdopendir(dup_fd);
	if (!d) {
		r = -errno;
		close(dup_fd);
		return r;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		r = fn(ctx, fd, de->d_name);
		if (r != 0)
			break;
		errno = 0;
	}
	if (!de && errno)
		r = -errno;
	closedir(d);
	return r;
}

static int unlink_entry(void *ctx, int fd, const char *name)
{
	if (unlinkat(fd, name, 0) < 0 && errno != ENOENT) {
		int r = -errno;

		mc_log_errno(MC_LOG_WARNING, r,
			     "pool: cannot remove page file '%s': remove it from the pool directory by hand",
			     name);
	}
	return 0;
}

/* What a file takes in a directory pool: its size in whole 4 KiB pages. */
static uint64_t dir_footprint(const struct stat *st)
{
	uint64_t size;

	if (!S_ISREG(st->st_mode) || st->st_size <= 0)
		return 0;
	size = (uint64_t)st->st_size;
	return (size + POOL_SMALL_UNIT - 1) / POOL_SMALL_UNIT * POOL_SMALL_UNIT;
}

struct dir_sum {
	uint64_t bytes;		/* footprints of the regular files */
	uint64_t entries;	/* every entry, a stray one too */
};

static int sum_entry(void *ctx, int fd, const char *name)
{
	struct dir_sum *sum = ctx;
	struct stat st;

	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;	/* gone since */
	sum->bytes += dir_footprint(&st);
	sum->entries++;
	return 0;
}

/* Take bytes off the committed pages' sum, never below 0. */
static void dir_pages_sub(struct mc_pool *pool, uint64_t bytes)
{
	uint64_t cur = atomic_load(&pool->dir_pages_bytes);

	while (!atomic_compare_exchange_weak(&pool->dir_pages_bytes, &cur,
					     cur > bytes ? cur - bytes : 0))
		;
}

/* ---- the fallback when mounting is not allowed ------------------------ */

/* True for a filesystem that keeps its files in memory. */
static bool on_memory(const struct statfs *sf)
{
	return sf->f_type == TMPFS_MAGIC || sf->f_type == RAMFS_MAGIC;
}

/* FNV-1a, 64 bits: tells apart pool directories too long to spell out. */
static uint64_t hash64(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

int mc_pool_shm_name(const char *dir, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char name[MC_POOL_SHM_NAME_MAX + 1];
	size_t n = strlen(POOL_SHM_PREFIX);
	const char *p;

	if (!dir || dir[0] != '/')
		return -EINVAL;
	memcpy(name, POOL_SHM_PREFIX, n);
	/*
	 * '.' is the escape and always followed by a hex digit, so a whole
	 * name never holds "..", which marks a cut one.
	 */
	for (p = dir + 1; *p; p++) {
		unsigned char c = (unsigned char)*p;
		bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '_';

		if (n + (keep || c == '/' ? 1 : 3) > MC_POOL_SHM_NAME_MAX)
			break;
		if (keep) {
			name[n++] = (char)c;
		} else if (c == '/') {
			name[n++] = '-';
		} else {
			name[n++] = '.';
			name[n++] = hex[c >> 4];
			name[n++] = hex[c & 15];
		}
	}
	if (*p) {
		/* too long to spell out: the hash of all of dir keeps it apart */
		n = MC_POOL_SHM_NAME_MAX - POOL_SHM_HASH_LEN;
		snprintf(name + n, sizeof(name) - n, "..%016" PRIx64,
			 hash64(dir));
		n = MC_POOL_SHM_NAME_MAX;
	}
	name[n] = '\0';
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, name, n + 1);
	return 0;
}

/*
 * Open /dev/shm if pages may live there: a tmpfs or ramfs in which nobody
 * else can rename or remove our entries (sticky, as world-writable
 * /dev/shm is, or writable to its owner only), owned by root or by us (the
 * owner of a sticky directory may still rename what is in it).  Returns
 * the fd with the canonical path in *rootp (the caller frees it), or
 * -errno.
 */
static int open_shm_root(char **rootp)
{
	struct statfs sf;
	struct stat st;
	char *root;
	int fd, r;

	*rootp = NULL;
	root = realpath(POOL_SHM_ROOT, NULL);
	if (!root)
		return -errno;
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	if (fstatfs(fd, &sf) < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	if (!on_memory(&sf)) {
		r = -ENOTSUP;
		goto out_close;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		r = -EPERM;
		goto out_close;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		r = -EPERM;
		goto out_close;
	}
	*rootp = root;
	return fd;
out_close:
	close(fd);
out_free:
	free(root);
	return r;
}

/*
 * The name in /dev/shm of the pool at dir, and /dev/shm itself: 1 with the
 * name in name, the fd in *rfdp and the path in *rootp (the caller closes
 * and frees them), 0 when there is no usable /dev/shm, or -errno.
 */
static int open_shm_of(const char *dir, char name[MC_POOL_SHM_NAME_MAX + 1],
		       char **rootp, int *rfdp)
{
	int r = mc_pool_shm_name(dir, name, MC_POOL_SHM_NAME_MAX + 1);

	if (r < 0)
		return r;
	*rfdp = open_shm_root(rootp);
	return *rfdp >= 0;
}

/*
 * Make, or find from an earlier run, the private /dev/shm directory of the
 * pool at dir.  Anyone may create names in /dev/shm, so the name may have
 * been taken first (by mistake or to catch our pages): accept only a
 * directory, not a symlink to one, owned by us and closed to others.
 * Returns 1 with its path in *pathp (the caller frees it), an fd of the
 * directory checked in *fdp (the caller closes it; pages/ and pending/ are
 * opened relative to it) and in *madep whether this call made it; 0 when
 * there is no usable /dev/shm; or -errno (logged), leaving nothing made.
 */
static int make_shm_dir(const char *dir, char **pathp, int *fdp, bool *madep)
{
	char name[MC_POOL_SHM_NAME_MAX + 1], path[PATH_MAX], *root = NULL;
	struct stat st;
	bool made = false;
	int rfd, fd = -1, r;

	*pathp = NULL;
	*fdp = -1;
	*madep = false;
	r = open_shm_of(dir, name, &root, &rfd);
	if (r <= 0)
		return r;
	if (mkdirat(rfd, name, 0700) == 0) {
		made = true;
	} else if (errno != EEXIST) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot create '%s/%s': make /dev/shm writable or run as root",
			     root, name);
		goto out_close;
	}
	fd = openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot open '%s/%s', which must be a directory of this user (not a symlink): remove it or pass another --state-dir",
			     root, name);
		goto out_close;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot stat '%s/%s': check /dev/shm", root,
			     name);
		goto out_close;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		r = -EPERM;
		mc_log(MC_LOG_ERR,
		       "pool: '%s/%s' is not private to this user (owner uid %u, mode %04o): remove it or pass another --state-dir",
		       root, name, (unsigned)st.st_uid,
		       (unsigned)(st.st_mode & 07777));
		goto out_close;
	}
	if (snprintf(path, sizeof(path), "%s/%s", root, name) >=
	    (int)sizeof(path)) {
		r = -ENAMETOOLONG;
		goto out_close;
	}
	*pathp = strdup(path);
	if (!*pathp) {
		r = -ENOMEM;
		goto out_close;
	}
	*fdp = fd;
	fd = -1;
	*madep = made;
	made = false;
	r = 1;
out_close:
	if (fd >= 0)
		close(fd);
	/* empty still: what this call made goes when it fails */
	if (made)
		unlinkat(rfd, name, AT_REMOVEDIR);
	close(rfd);
	free(root);
	return r;
}

/*
 * The tmpfs mount at pool->dir was refused (EPERM): keep the pages in a
 * plain directory.  pool->dir itself will do when it is memory already (a
 * state directory on /run).  On disk, pages would be read at disk speed
 * and fill the disk, so then a private directory on /dev/shm takes its
 * place in pool->dir, with an fd of it in *dfdp (else -1) and in *madep
 * whether this call made it.  Logs the one warning.  0 or -errno (logged).
 */
static int fall_back(struct mc_pool *pool, int *dfdp, bool *madep)
{
	char have[32], want[32], *shm = NULL;
	struct statfs sf;
	int r = 0;

	*dfdp = -1;
	*madep = false;
	if (statfs(pool->dir, &sf) < 0 || !on_memory(&sf))
		r = make_shm_dir(pool->dir, &shm, dfdp, madep);
	if (r < 0)
		return r;
	if (r == 0) {
		mc_log(MC_LOG_WARNING,
		       "pool: cannot mount tmpfs at '%s' (EPERM): memory is not huge-page backed and capacity is only accounted, run as root or mount a tmpfs there first",
		       pool->dir);
	} else {
		mc_log(MC_LOG_WARNING,
		       "pool: cannot mount tmpfs at '%s' (EPERM): pages live in '%s' instead, without huge pages and with capacity only accounted (free them with rm -r once stopped); run as root or mount a tmpfs at '%s' first for huge pages",
		       pool->dir, shm, pool->dir);
		free(pool->dir);
		pool->dir = shm;
	}
	/* a tmpfs smaller than the pool fills up before the accounting does */
	if (statfs(pool->dir, &sf) == 0 && sf.f_type == TMPFS_MAGIC &&
	    (uint64_t)sf.f_blocks * (uint64_t)sf.f_bsize < pool->capacity)
		mc_log(MC_LOG_WARNING,
		       "pool: the tmpfs under '%s' holds %s, less than the pool's %s: writes fail with ENOSPC before the pool is full; lower --global-segment-size or grow that tmpfs",
		       pool->dir,
		       mc_size_format((uint64_t)sf.f_blocks *
					      (uint64_t)sf.f_bsize,
				      have, sizeof(have)),
		       mc_size_format(pool->capacity, want, sizeof(want)));
	return 0;
}

/*
 * Undo make_shm_dir() after a failed open, which nothing else would (the
 * daemon has no pool to destroy): the directory holds only pages/ and
 * pending/, both empty.  By dfd and rmdir, with no listing: the open may
 * have failed for want of fds.  Nobody else can put another directory
 * under that name in /dev/shm, and rmdir() removes only an empty one.
 */
static void unmake_shm_dir(int dfd, const char *path)
{
	(void)unlinkat(dfd, "pending", AT_REMOVEDIR);
	(void)unlinkat(dfd, "pages", AT_REMOVEDIR);
	if (rmdir(path) < 0 && errno != ENOENT)
		mc_log_errno(MC_LOG_WARNING, -errno,
			     "pool: cannot remove '%s' after a failed open: remove it by hand",
			     path);
}

/* Close the pool's files (a mount with files open cannot be unmounted). */
static void close_files(struct mc_pool *pool)
{
	if (pool->pending_fd >= 0)
		close(pool->pending_fd);
	if (pool->pages_fd >= 0)
		close(pool->pages_fd);
	if (pool->reserve_fd >= 0)
		close(pool->reserve_fd);
	pool->pending_fd = pool->pages_fd = pool->reserve_fd = -1;
}

int mc_pool_open(struct mc_pool **poolp, const char *dir, uint64_t capacity,
		 unsigned flags, bool *adopted)
{
	struct mc_pool *pool = NULL;
	struct mc_mountinfo m;
	struct dir_sum sum = { 0, 0 };
	struct statfs sf;
	bool mounted = false, shm_made = false;
	int dfd = -1, r;

	*poolp = NULL;
	*adopted = false;
	if (!dir || !*dir || capacity == 0)
		return -EINVAL;

	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->pages_fd = -1;
	pool->pending_fd = -1;
	pool->reserve_fd = -1;
	pthread_mutex_init(&pool->reserve_lock, NULL);
	pthread_mutex_init(&pool->largest_lock, NULL);
	pool->capacity = capacity;

	r = mc_mkdir_p(dir, 0700);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot create '%s': check its parent's permissions or pass another --state-dir",
			     dir);
		goto out_free;
	}
	pool->dir = realpath(dir, NULL);
	if (!pool->dir) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot resolve '%s': check the path or pass another --state-dir",
			     dir);
		goto out_free;
	}

	r = mc_mountinfo_find(pool->dir, NULL, &m);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot read '/proc/self/mountinfo': mount /proc");
		goto out_free;
	}
	if (r == 1 && statfs(pool->dir, &sf) == 0 &&
	    sf.f_type == TMPFS_MAGIC) {
		/* an earlier daemon's pool (or an operator's tmpfs): keep it */
		if (!(flags & MC_POOL_NO_MOUNT))
			resize_adopted(pool->dir, capacity, flags, &m);
		pool->kind = has_option(m.opts, "huge=always") ?
				     MC_POOL_TMPFS_HUGE : MC_POOL_TMPFS;
		*adopted = true;
	} else if (flags & MC_POOL_NO_MOUNT) {
		pool->kind = MC_POOL_DIR;
	} else {
		r = mount_fresh(pool->dir, capacity, flags, &pool->kind);
		if (r == -EPERM) {
			pool->kind = MC_POOL_DIR;
			r = fall_back(pool, &dfd, &shm_made);
			if (r < 0)
				goto out_free;
		} else if (r < 0) {
			mc_log_errno(MC_LOG_ERR, r,
				     "pool: cannot mount tmpfs at '%s': check that tmpfs is available and the directory is not busy",
				     pool->dir);
			goto out_free;
		} else {
			mounted = true;
		}
	}

	/* on /dev/shm, fall_back() gave the directory it checked */
	if (dfd < 0) {
		dfd = open(pool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0) {
			r = -errno;
			mc_log_errno(MC_LOG_ERR, r,
				     "pool: cannot open '%s': check its permissions",
				     pool->dir);
			goto out_umount;
		}
	}
	r = open_subdir(dfd, pool->dir, "pages");
	if (r < 0)
		goto out_umount;
	pool->pages_fd = r;
	r = open_subdir(dfd, pool->dir, "pending");
	if (r < 0)
		goto out_umount;
	pool->pending_fd = r;

	/* a page still in pending/ was never closed by its writer: drop it */
	r = for_each_entry(pool->pending_fd, unlink_entry, NULL);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot list '%s/pending': check its permissions",
			     pool->dir);
		goto out_umount;
	}

	if (pool->kind != MC_POOL_DIR) {
		r = open_reserve(pool);
		if (r < 0)
			goto out_umount;
	}

	if (pool->kind == MC_POOL_DIR) {
		/*
		 * The one scan of pages/ at start, which a tmpfs pool never
		 * makes (the mount counts its use): a directory pool is the
		 * degraded mode, and only its own files are its use.
		 */
		r = for_each_entry(pool->pages_fd, sum_entry, &sum);
		if (r < 0) {
			mc_log_errno(MC_LOG_ERR, r,
				     "pool: cannot list '%s/pages': check its permissions",
				     pool->dir);
			goto out_umount;
		}
		pool->dir_pages_bytes = sum.bytes;
		*adopted = sum.entries > 0;
	}

	pool->largest_page = load_largest_page(pool->dir, pool->capacity);
	*poolp = pool;
	pool = NULL;
	r = 0;
out_umount:
	if (pool) {
		close_files(pool);
		if (shm_made)
			unmake_shm_dir(dfd, pool->dir);
		if (dfd >= 0)
			close(dfd);
		dfd = -1;
		if (mounted && umount2(pool->dir, 0) < 0)
			mc_log_errno(MC_LOG_WARNING, -errno,
				     "pool: cannot unmount '%s' after a failed open: unmount it by hand",
				     pool->dir);
	}
out_free:
	if (r < 0)
		*adopted = false;
	if (dfd >= 0)
		close(dfd);
	mc_pool_close(pool);
	return r;
}

void mc_pool_close(struct mc_pool *pool)
{
	if (!pool)
		return;
	close_files(pool);
	pthread_mutex_destroy(&pool->reserve_lock);
	pthread_mutex_destroy(&pool->largest_lock);
	free(pool->dir);
	free(pool);
}

/* ---- the reserve: free pool memory kept resident ---------------------- */

/*
 * Free memory that sits unused is handed back by the kernel (and, in a VM,
 * by the host), and the next write pays to fault it in again: 20x slower
 * here.  So the pool's free memory lives in one file, `reserve`, which is
 * cut down just before a write needs the memory and grown back when pages
 * are freed: the writer always faults in pages that were freed a moment
 * ago.  The file survives restarts with the mount.
 */
static int open_reserve(struct mc_pool *pool)
{
	char path[PATH_MAX];
	struct stat st;
	int fd, r;

	if (snprintf(path, sizeof(path), "%s/reserve", pool->dir) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot open the reserve '%s': check the pool mount",
			     path);
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	pool->reserve_fd = fd;
	pool->reserve_bytes = (uint64_t)st.st_size;
	return 0;
}

/*
 * Write zeros over [from, to) of fd.  fallocate() only takes pages off the
 * free lists; in a VM with free page reporting (virtio-balloon) a page
 * that sat free was handed back to the host, and the first write to it
 * costs a host fault, 0.3 GB/s here.  Writing the reserve's pages now, in
 * the keeper's time, means the writer that later takes them does not pay.
 */
static int touch_range(int fd, uint64_t from, uint64_t to,
		       bool (*stop)(void *ctx), void *ctx)
{
	static const uint8_t zeros[64 << 10];
	ssize_t n;

	while (from < to) {
		size_t len = to - from < sizeof(zeros) ? (size_t)(to - from) :
							 sizeof(zeros);

		/* a 2 MiB step of cold memory takes ~7 ms: readers come first */
		if (stop && stop(ctx))
			return -EAGAIN;
		n = pwrite(fd, zeros, len, (off_t)from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		from += (uint64_t)n;
	}
	return 0;
}

uint64_t mc_pool_reserve_size(struct mc_pool *pool)
{
	return pool->reserve_bytes;
}

int mc_pool_reserve_resize(struct mc_pool *pool, uint64_t bytes,
			   bool (*stop)(void *ctx), void *ctx)
{
	uint64_t cur;
	int r = 0;

	if (pool->reserve_fd < 0)
		return -ENOTSUP;
	bytes -= bytes % POOL_HUGE_UNIT;
	pthread_mutex_lock(&pool->reserve_lock);
	cur = pool->reserve_bytes;
	if (bytes < cur) {
		/* truncation frees the tail at once, for the writer to take */
		if (ftruncate(pool->reserve_fd, (off_t)bytes) < 0)
			r = -errno;
	} else if (bytes > cur) {
		if (fallocate(pool->reserve_fd, 0, (off_t)cur,
			      (off_t)(bytes - cur)) < 0)
			r = -errno;
		if (r == 0)
			r = touch_range(pool->reserve_fd, cur, bytes, stop,
					ctx);
		if (r < 0 && ftruncate(pool->reserve_fd, (off_t)cur) < 0)
			r = -errno;
	}
	if (r == 0)
		pool->reserve_bytes = bytes;
	pthread_mutex_unlock(&pool->reserve_lock);
	return r;
}

/* Remove the subdirectory name of dfd and the page files in it. */
static int remove_subdir(int dfd, const char *name)
{
	int fd, r;

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = for_each_entry(fd, unlink_entry, NULL);
	close(fd);
	if (r < 0)
		return r;
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/*
 * Remove the /dev/shm directory of the pool at dir, when there is one and
 * it is a directory (not a symlink) owned by owner (dir's owner) or by us:
 * never what someone else made under that name.  0 or -errno (logged).
 */
static int destroy_shm(const char *dir, uid_t owner)
{
	char name[MC_POOL_SHM_NAME_MAX + 1], *root = NULL;
	struct stat st;
	int rfd, fd = -1, r;

	r = open_shm_of(dir, name, &root, &rfd);
	if (r <= 0)
		return r;
	r = 0;
	fd = openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 ||
	    (st.st_uid != owner && st.st_uid != geteuid()))
		goto out_close;	/* none, or not ours: r is 0 */
	r = remove_subdir(fd, "pending");
	if (r == 0)
		r = remove_subdir(fd, "pages");
	if (r == 0 && unlinkat(fd, "segment.uuid", 0) < 0 && errno != ENOENT)
		r = -errno;
	if (r == 0 && unlinkat(rfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		r = -errno;
	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot remove '%s/%s': remove it by hand",
			     root, name);
out_close:
	if (fd >= 0)
		close(fd);
	close(rfd);
	free(root);
	return r;
}

int mc_pool_destroy(const char *dir)
{
	struct mc_mountinfo m;
	struct stat st;
	char *path;
	int dfd = -1, r;

	path = realpath(dir, NULL);
	if (!path)
		return errno == ENOENT ? 0 : -errno;

	/* only our own mounts: never unmount an operator's tmpfs */
	while ((r = mc_mountinfo_find(path, NULL, &m)) == 1 &&
	       strcmp(m.fstype, "tmpfs") == 0 &&
	       strcmp(m.source, POOL_SOURCE) == 0) {
		if (umount2(path, 0) == 0)
			continue;
		r = -errno;
		if (r == -EBUSY && umount2(path, MNT_DETACH) == 0)
			continue;
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot unmount '%s': stop the programs using it and retry",
			     path);
		goto out_free;
	}
	if (r < 0)
		goto out_free;

	dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		r = -errno;
		goto out_free;
	}
	/* a pool that could not mount may have kept its pages on /dev/shm */
	r = destroy_shm(path, st.st_uid);
	if (r < 0)
		goto out_free;
	r = remove_subdir(dfd, "pending");
	if (r == 0)
		r = remove_subdir(dfd, "pages");
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot remove the pages under '%s': check its permissions",
			     path);
		goto out_free;
	}
	/* the directory may hold other things (a state dir): keep it then */
	if (rmdir(path) < 0 && errno != ENOTEMPTY && errno != EEXIST &&
	    errno != EBUSY && errno != ENOENT) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "pool: cannot remove '%s': check its parent's permissions",
			     path);
		goto out_free;
	}
	r = 0;
out_free:
	if (dfd >= 0)
		close(dfd);
	free(path);
	return r;
}

enum mc_pool_kind mc_pool_kind(const struct mc_pool *pool)
{
	return pool->kind;
}

const char *mc_pool_kind_name(enum mc_pool_kind kind)
{
	switch (kind) {
	case MC_POOL_TMPFS_HUGE:
		return "tmpfs huge=always";
	case MC_POOL_TMPFS:
		return "tmpfs";
	case MC_POOL_DIR:
		return "directory";
	}
	return "unknown";
}

const char *mc_pool_dir(const struct mc_pool *pool)
{
	return pool->dir;
}

int mc_pool_create(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];
	int fd;

	page_name(id, name);
	fd = openat(pool->pending_fd, name,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

int mc_pool_commit(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];
	uint64_t footprint = 0;
	struct stat st;
	int r;

	page_name(id, name);
	if (pool->kind == MC_POOL_DIR) {
		/*
		 * Counted before the move, so that mc_pool_usage() sees it
		 * twice for a moment rather than nowhere; its bytes are final.
		 */
		if (fstatat(pool->pending_fd, name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		footprint = dir_footprint(&st);
		atomic_fetch_add(&pool->dir_pages_bytes, footprint);
	}
	if (renameat(pool->pending_fd, name, pool->pages_fd, name) < 0) {
		r = -errno;
		dir_pages_sub(pool, footprint);
		return r;
	}
	return 0;
}

int mc_pool_discard(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];

	page_name(id, name);
	if (unlinkat(pool->pending_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

/* dirfd/name: fd or -errno */
static int open_at(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int mc_pool_open_page(struct mc_pool *pool, uint64_t id, int flags)
{
	char name[POOL_NAME_LEN];

	page_name(id, name);
	return open_at(pool->pages_fd, name, flags);
}

int mc_pool_free(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];
	uint64_t footprint = 0;
	struct stat st;

	page_name(id, name);
	if (pool->kind == MC_POOL_DIR) {
		if (fstatat(pool->pages_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : -errno;
		footprint = dir_footprint(&st);
	}
	if (unlinkat(pool->pages_fd, name, 0) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* only the unlink that removed it: two frees of one page count once */
	dir_pages_sub(pool, footprint);
	return 0;
}

int mc_pool_open_final(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];
	uint32_t crc;
	int fd;

	page_name(id, name);
	fd = open_at(pool->pages_fd, name, O_RDONLY);
	if (fd != -ENOENT)
		return fd;
	/*
	 * In a cluster a written page moves to pages/ only after the master
	 * took its commit, and the master may send a reader here before the
	 * move: refused, the reader's open failed with ESTALE.  Its checksum
	 * is recorded once its bytes are final, so such a page is served; a
	 * page still being written or fetched has none and is not.
	 */
	fd = open_at(pool->pending_fd, name, O_RDONLY);
	if (fd >= 0 && mc_pool_get_crc(fd, &crc) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	/* moved to pages/ between the two looks */
	return open_at(pool->pages_fd, name, O_RDONLY);
}

bool mc_pool_has_page(struct mc_pool *pool, uint64_t id)
{
	char name[POOL_NAME_LEN];

	page_name(id, name);
	return faccessat(pool->pages_fd, name, F_OK, AT_EACCESS) == 0;
}

int mc_pool_usage(struct mc_pool *pool, struct mc_pool_usage *out)
{
	struct dir_sum pending = { 0, 0 };
	struct statfs sf;
	uint64_t bsize, reserve;
	int r;

	if (pool->kind != MC_POOL_DIR) {
		if (fstatfs(pool->pages_fd, &sf) < 0)
			return -errno;
		bsize = (uint64_t)sf.f_bsize;
		out->capacity = (uint64_t)sf.f_blocks * bsize;
		out->used = ((uint64_t)sf.f_blocks - (uint64_t)sf.f_bfree) *
			    bsize;
		/* the reserve is free memory held resident, not use */
		reserve = pool->reserve_bytes;
		out->used = out->used > reserve ? out->used - reserve : 0;
		out->unit = pool->kind == MC_POOL_TMPFS_HUGE ?
				    POOL_HUGE_UNIT : POOL_SMALL_UNIT;
		return 0;
	}

	/*
	 * The pool's own files only: the committed pages' sum, and the
	 * writes in flight, whose files grow where we do not see it (the
	 * daemon's pwrite(), a passthrough write), read from pending/ now.
	 * That holds only the pages being written, a few.  pending/ first:
	 * commit counts a page before it leaves, so one that moves during
	 * the scan is in the sum read after it.  Not capped at the capacity:
	 * eviction must free what a pool over it holds (after a restart with
	 * a smaller --global-segment-size).
	 */
	r = for_each_entry(pool->pending_fd, sum_entry, &pending);
	if (r < 0)
		return r;
	out->capacity = pool->capacity;
	out->used = pending.bytes + atomic_load(&pool->dir_pages_bytes);
	out->unit = POOL_SMALL_UNIT;
	return 0;
}

const char *mc_pool_page_path(const struct mc_pool *pool, uint64_t id,
			      char *buf, size_t len)
{
	snprintf(buf, len, "%s/pages/%016" PRIx64, pool->dir, id);
	return buf;
}

struct page_visit {
	int (*fn)(void *ctx, uint64_t id);
	void *ctx;
};

static int visit_page(void *ctx, int fd, const char *name)
{
	const struct page_visit *v = ctx;
	char *end;
	uint64_t id;

	id = strtoull(name, &end, 16);
	/* not one of ours (a stray file): leave it alone */
	if (*end != '\0' || strlen(name) != POOL_NAME_LEN - 1 || id == 0)
		return 0;
	return v->fn(v->ctx, id);
}

int mc_pool_foreach_page(struct mc_pool *pool,
			 int (*fn)(void *ctx, uint64_t id), void *ctx)
{
	struct page_visit v = { fn, ctx };

	return for_each_entry(pool->pages_fd, visit_page, &v);
}

int mc_pool_segment_uuid(struct mc_pool *pool, uint8_t uuid[16])
{
	static const uint8_t zero[16];
	int dfd, fd, r;
	ssize_t n;

	dfd = open(pool->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, "segment.uuid", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, uuid, 16);
		r = n < 0 ? -errno : 0;
		close(fd);
		if (r == 0 && n == 16 && memcmp(uuid, zero, 16) != 0)
			goto out;
	}
	/* new memory, new identity: the master knows nothing held here */
	do {
		n = getrandom(uuid, 16, 0);
	} while (n < 0 && errno == EINTR);
	if (n != 16) {
		r = n < 0 ? -errno : -EIO;
		goto out;
	}
	uuid[0] |= 1;	/* never all zero */
	fd = openat(dfd, "segment.uuid.tmp",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = write(fd, uuid, 16) == 16 ? 0 : -EIO;
	close(fd);
	if (r == 0 && renameat(dfd, "segment.uuid.tmp", dfd, "segment.uuid") < 0)
		r = -errno;
out:
	close(dfd);
	return r;
}

/*
 * On the pool's directory, so it lives and dies with the memory: a restart
 * sizes its first eviction by it (a fresh start knows no page yet).
 */
#define POOL_LARGEST_XATTR "user.mooncake.largest_page"

static uint64_t load_largest_page(const char *dir, uint64_t capacity)
{
	char buf[24];
	ssize_t n = getxattr(dir, POOL_LARGEST_XATTR, buf, sizeof(buf) - 1);
	uint64_t v;

	if (n <= 0)
		return 0;	/* none recorded, or no xattrs here: guess later */
	buf[n] = '\0';
	/* no more than the pool holds: it sizes evictions */
	if (mc_size_parse(buf, &v) < 0 || v > capacity)
		return 0;
	return v;
}

uint64_t mc_pool_largest_page(struct mc_pool *pool)
{
	return pool->largest_page;
}

int mc_pool_note_page_size(struct mc_pool *pool, uint64_t size)
{
	char buf[24];
	int r = 0;

	if (size <= pool->largest_page)
		return 0;	/* the common case: no lock, no write */
	pthread_mutex_lock(&pool->largest_lock);
	if (size > pool->largest_page) {
		pool->largest_page = size;
		snprintf(buf, sizeof(buf), "%" PRIu64, size);
		if (setxattr(pool->dir, POOL_LARGEST_XATTR, buf, strlen(buf),
			     0) < 0)
			r = -errno;
	}
	pthread_mutex_unlock(&pool->largest_lock);
	return r;
}

#define POOL_CRC_XATTR "user.mooncake.crc32c"

int mc_pool_set_crc(int fd, uint32_t crc32c)
{
	uint8_t b[4] = { (uint8_t)crc32c, (uint8_t)(crc32c >> 8),
			 (uint8_t)(crc32c >> 16), (uint8_t)(crc32c >> 24) };

	return fsetxattr(fd, POOL_CRC_XATTR, b, sizeof(b), 0) < 0 ? -errno : 0;
}

int mc_pool_get_crc(int fd, uint32_t *crc32c)
{
	uint8_t b[4];
	ssize_t n = fgetxattr(fd, POOL_CRC_XATTR, b, sizeof(b));

	if (n < 0)
		return -errno;
	if (n != sizeof(b))
		return -ENODATA;
	*crc32c = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
		  (uint32_t)b[3] << 24;
	return 0;
}
