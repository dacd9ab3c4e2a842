/*
 * fs.h - the FUSE filesystem: POSIX files over the namespace store and the
 * pool memory.  One struct mc_fs per mount; nothing global, so a test can
 * run two in one process.
 */
#ifndef MC_FS_H
#define MC_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "ns.h"
#include "pool.h"

struct mc_fs;
struct mc_transport;

struct mc_fs_params {
	uint64_t max_page_size;		/* EFBIG above */
	double high_watermark;		/* evict when the pool is fuller */
	double eviction_ratio;		/* ... down to high - ratio */
	double entry_timeout_s;		/* kernel name and attr cache */
	enum mc_passthrough_mode passthrough;
	enum mc_fuse_ring_mode fuse_ring;
	unsigned threads;		/* FUSE worker threads */
	const char *hostname;		/* shown in user.mooncake.location */
	bool resident;			/* hold free pool memory in the reserve */
	/*
	 * In a cluster: how pages held by other hosts are fetched (outlives
	 * the filesystem).  NULL: only pages in this pool can be opened.
	 */
	struct mc_transport *transport;
};

/*
 * Make a filesystem over ns and pool (both stay owned by the caller and
 * must outlive it).  0 or -ENOMEM.
 */
int mc_fs_new(struct mc_fs **fsp, struct mc_ns *ns, struct mc_pool *pool,
	      const struct mc_fs_params *params);
void mc_fs_free(struct mc_fs *fs);

/*
 * Mount at mountpoint with extra FUSE options (comma separated, may be
 * NULL).  A stale mount left by a killed daemon is detached first.
 * 0, or -errno with the reason logged.
 */
int mc_fs_mount(struct mc_fs *fs, const char *mountpoint,
		const char *fuse_opts);

/*
 * Serve requests until unmounted or signalled (SIGTERM, SIGINT, SIGHUP),
 * then unmount.  0 or -errno.
 */
int mc_fs_run(struct mc_fs *fs);

/* True once the kernel agreed to passthrough (after the first request). */
bool mc_fs_passthrough_active(const struct mc_fs *fs);

#endif
