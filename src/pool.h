/*
 * pool.h - the pool memory this host contributes: one backing file per page
 * on a private `tmpfs -o huge=always` (2 MiB pages, no hugetlb reservation).
 *
 * Layout under the pool directory: pending/<id> holds pages being written,
 * pages/<id> committed ones (id in 16 hex digits).  The mount outlives the
 * daemon, so a restarted daemon re-adopts every committed page; pending/ is
 * emptied at open because unfinished writes are discarded.
 */
#ifndef MC_POOL_H
#define MC_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mc_pool;

enum mc_pool_flags {
	MC_POOL_HUGE = 1 << 0,		/* want huge=always tmpfs */
	MC_POOL_NO_MOUNT = 1 << 1,	/* never mount: use dir as it is */
};

enum mc_pool_kind {
	MC_POOL_TMPFS_HUGE,	/* our own tmpfs mount with huge=always */
	MC_POOL_TMPFS,		/* our own tmpfs mount, 4 KiB pages */
	MC_POOL_DIR,		/* fallback: a directory we did not mount */
};

struct mc_pool_usage {
	uint64_t capacity;	/* bytes the pool may hold */
	uint64_t used;		/* bytes of memory its files take */
	uint64_t unit;		/* allocation unit: 2 MiB on huge tmpfs */
};

/*
 * Open the pool at dir (created if missing): adopt a tmpfs already mounted
 * there by an earlier daemon, or mount a fresh one of `capacity` bytes.
 * Where mounting is not allowed (EPERM), fall back with one warning to a
 * plain directory (capacity then enforced by accounting only): dir itself
 * when it is on tmpfs or ramfs, else the private directory named by
 * mc_pool_shm_name() on /dev/shm (if /dev/shm is a tmpfs or ramfs owned
 * by root or by us; dir otherwise).  mc_pool_dir() tells which.  A tmpfs
 * of another size is resized with a remount.  *adopted says whether
 * committed pages from before survive.  Returns 0 or -errno with the
 * reason logged: -ENOTDIR when the /dev/shm name is taken by a symlink or
 * a file, -EACCES or -EPERM by a directory that is not this user's alone.
 * A failed open removes the /dev/shm directory if it made it.
 */
int mc_pool_open(struct mc_pool **poolp, const char *dir, uint64_t capacity,
		 unsigned flags, bool *adopted);

/* Close files; the mount stays for the next daemon.  NULL is fine. */
void mc_pool_close(struct mc_pool *pool);

/*
 * Unmount and remove the pool at dir, and its /dev/shm fallback directory
 * when that is a real directory owned by dir's owner or by us: every page
 * is gone.  0 or -errno.
 */
int mc_pool_destroy(const char *dir);

/* Longest name mc_pool_shm_name() writes, without the NUL. */
#define MC_POOL_SHM_NAME_MAX 128

/*
 * The name, in /dev/shm, of the directory that holds the pages of the pool
 * at dir (absolute and canonical) when the tmpfs mount is refused:
 * "mooncake-pool-" and dir without its leading '/', where '/' becomes '-'
 * and every byte but [A-Za-z0-9_] becomes '.' and two hex digits.  The
 * same dir always gives the same name and different ones different names;
 * a name that would be longer than MC_POOL_SHM_NAME_MAX is cut and ends in
 * ".." and a 64-bit hash of dir instead.  Writes it into buf: 0, -EINVAL
 * when dir is not absolute, -ENAMETOOLONG when len is too small.
 */
int mc_pool_shm_name(const char *dir, char *buf, size_t len);

enum mc_pool_kind mc_pool_kind(const struct mc_pool *pool);
const char *mc_pool_kind_name(enum mc_pool_kind kind);
const char *mc_pool_dir(const struct mc_pool *pool);

/* Create pending/<id> and return an O_RDWR fd to it, or -errno. */
int mc_pool_create(struct mc_pool *pool, uint64_t id);

/* Move pending/<id> to pages/<id>: 0 or -errno. */
int mc_pool_commit(struct mc_pool *pool, uint64_t id);


/* Remove pending/<id> (a write given up): 0 or -errno; -ENOENT is 0. */
int mc_pool_discard(struct mc_pool *pool, uint64_t id);

/* Open pages/<id> with flags (O_RDONLY usually): fd or -errno. */
int mc_pool_open_page(struct mc_pool *pool, uint64_t id, int flags);

/*
 * Open page id read-only to serve it to another host: pages/<id>, or
 * pending/<id> once its checksum is recorded (mc_pool_set_crc()), which
 * says its bytes are final and only its move to pages/ is under way.
 * Returns the fd, or -errno: -ENOENT when this host holds no final copy.
 */
int mc_pool_open_final(struct mc_pool *pool, uint64_t id);

/* Remove pages/<id>; open fds keep the bytes until closed.  -ENOENT is 0. */
int mc_pool_free(struct mc_pool *pool, uint64_t id);

/* True when pages/<id> exists (restart checks). */
bool mc_pool_has_page(struct mc_pool *pool, uint64_t id);

/*
 * Fill *out: capacity, used, allocation unit.  0 or -errno.  On tmpfs,
 * from the mount; for MC_POOL_DIR, the pool's own files only (pages/ and
 * pending/, each file's size rounded up to the unit): capacity is the one
 * passed to open, and used may exceed it.
 */
int mc_pool_usage(struct mc_pool *pool, struct mc_pool_usage *out);

/*
 * The reserve: free pool memory held resident in one file so that writes
 * never fault in memory the kernel has given away.  Resize it to `bytes`
 * (rounded down to 2 MiB): shrinking frees memory at once, growing
 * allocates it (and takes time: call it off the request path).  0, -errno
 * (-ENOSPC when the pool has no room), -ENOTSUP for MC_POOL_DIR.  Usage
 * reports exclude the reserve.  Thread-safe.  A growth asks stop(ctx)
 * (when not NULL) every 64 KiB and gives up when it says true: the size
 * stays as it was, and the result is -EAGAIN.
 */
int mc_pool_reserve_resize(struct mc_pool *pool, uint64_t bytes,
			   bool (*stop)(void *ctx), void *ctx);
uint64_t mc_pool_reserve_size(struct mc_pool *pool);

/*
 * The largest page this pool memory has committed, kept with the memory
 * across restarts; 0 when none is known (new memory, or a filesystem with
 * no extended attributes).  mc_pool_note_page_size() records a committed
 * page's size when it is larger: 0, or -errno when it could not be kept
 * (the figure still holds until the daemon stops).
 */
uint64_t mc_pool_largest_page(struct mc_pool *pool);
int mc_pool_note_page_size(struct mc_pool *pool, uint64_t size);

/* Write "<dir>/pages/<16 hex>" into buf; returns buf. */
const char *mc_pool_page_path(const struct mc_pool *pool, uint64_t id,
			      char *buf, size_t len);

/*
 * The CRC-32C of a page's bytes, kept with its file (an extended
 * attribute) so whoever serves it later need not read it to know.
 * Record it only once the bytes are final: mc_pool_open_final() serves a
 * pending page that has one.  0, or -errno (-ENOTSUP where the pool's
 * filesystem keeps none, -ENODATA when none was recorded).
 */
int mc_pool_set_crc(int fd, uint32_t crc32c);
int mc_pool_get_crc(int fd, uint32_t *crc32c);

/*
 * Call fn for every committed page in the pool, in no order, until it
 * returns non-zero (returned).  0 at the end or -errno.
 */
int mc_pool_foreach_page(struct mc_pool *pool,
			 int (*fn)(void *ctx, uint64_t id), void *ctx);

/*
 * The pool memory's identity in a cluster: a random uuid made with the
 * memory and kept beside it (segment.uuid), so a restarted daemon is the
 * same segment to the master and a rebooted one is a new segment.
 * 0 or -errno.
 */
int mc_pool_segment_uuid(struct mc_pool *pool, uint8_t uuid[16]);

#endif
