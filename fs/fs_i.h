/* fs_i.h - what fs.c shares with status.c; not for other modules */
#ifndef MC_FS_I_H
#define MC_FS_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "fs.h"
#include "inode_table.h"
#include "lookup_cache.h"
#include "passthrough.h"

struct fuse_session;

/* Virtual inodes below MC_NS_FIRST_INO. */
#define MC_FS_CTL_INO 2		/* /.mooncake */
#define MC_FS_STATUS_INO 3	/* /.mooncake/status */
#define MC_FS_CTL_NAME ".mooncake"
/* every entry carries it: inode numbers are never reused (next_ino only grows) */
#define MC_FS_GENERATION 1

/* The time on clk (CLOCK_MONOTONIC or CLOCK_REALTIME) in nanoseconds. */
static inline uint64_t mc_fs_now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct mc_fs_counters {
	atomic_uint_fast64_t hits;	/* opens of committed pages */
	atomic_uint_fast64_t misses;	/* lookups that found nothing */
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t errors;	/* requests that failed with EIO/ENOSPC/EFBIG */
	atomic_uint_fast64_t enospc;
	atomic_uint_fast64_t fetches;	/* pages fetched from other hosts */
	atomic_uint_fast64_t fetched_bytes;
	atomic_uint_fast64_t fetch_errors; /* fetches that failed every copy */
	atomic_uint_fast64_t getattrs;	/* GETATTR requests, the warmer's too */
	/* rewrites whose close returned before their old name was dropped */
	atomic_uint_fast64_t late_invalidations;
};

/* Entry invalidations, sent by their own thread (see inval_thread). */
struct mc_fs_inval {
	uint64_t parent;
	char name[256];
};

#define MC_FS_INVAL_RING 1024

struct mc_reserve;
struct mc_graves;
struct mc_remote;
struct mc_attr_warmer;
struct mc_fuse_ring;

struct mc_fs {
	struct mc_ns *ns;
	struct mc_pool *pool;
	struct mc_fs_params params;
	char *hostname;
	char *mountpoint;
	struct fuse_session *se;
	struct mc_passthrough *pt;	/* NULL with --passthrough off */
	struct mc_inode_table *itab;
	struct mc_fs_counters counters;
	atomic_uint_fast64_t last_page_size;	/* room kept free for a write */
	unsigned idle_max;		/* idle inodes kept, from RLIMIT_NOFILE */
	int fatal;			/* -errno that stopped the loop, else 0 */
	atomic_uint rewrites_closing;	/* FLUSHes invalidating an entry now */
	pthread_mutex_t evict_lock;	/* one evictor at a time */

	pthread_mutex_t inval_lock;
	pthread_cond_t inval_cond;	/* work for the inval thread */
	pthread_cond_t inval_done_cond;	/* inval_done moved */
	struct mc_fs_inval *inval_ring;	/* protected by inval_lock */
	uint64_t inval_head, inval_tail;	/* protected by inval_lock */
	uint64_t inval_done;		/* protected by inval_lock: sent */
	bool inval_stop;			/* protected by inval_lock */
	pthread_t inval_thread;
	bool inval_running;

	struct mc_graves *graves;	/* replaced pages, freed a second later */
	struct mc_reserve *reserve;	/* NULL without --resident */
	struct mc_remote *remote;	/* fetches from other hosts; NULL alone */
	struct mc_attr_warmer *warmer;	/* NULL when it cannot work */
	struct mc_fuse_ring *ring;	/* NULL with --fuse-ring off */
	int mnt_id;			/* the kernel's id of our mount, -1 unknown */
	unsigned conn_minor;	/* its connection in fusectl, 0 unknown */
	struct mc_lookup_cache looked_up; /* for the OPEN after a LOOKUP */
};

/* Evict until `want` more bytes fit under the watermark (waits its turn). */
void mc_fs_make_room(struct mc_fs *fs, uint64_t want);

/* Free a page the namespace dropped, as an eviction does. */
void mc_fs_drop_now(struct mc_fs *fs, const struct mc_ns_dropped *d);

/* Render the status file into a new buffer: 0 or -ENOMEM. */
int mc_status_render(struct mc_fs *fs, char **bufp, size_t *lenp);

#endif
