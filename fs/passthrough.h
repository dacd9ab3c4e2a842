/*
 * passthrough.h - FUSE passthrough on libfuse 3.14, which has no API for it.
 *
 * The kernel (6.9+) can hand reads, writes and mmap of an open file straight
 * to a backing file.  libfuse learns of that only in 3.17, so we sit on the
 * wire instead: every request read from /dev/fuse is observed, and the
 * replies to INIT, OPEN and CREATE are patched before they are written
 * (research/fuse-memory-io.md).  The daemon registers backing files with
 * FUSE_DEV_IOC_BACKING_OPEN and says, per file handle, which backing id a
 * reply should carry.
 */
#ifndef MC_PASSTHROUGH_H
#define MC_PASSTHROUGH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mc_passthrough;

/*
 * Returns the backing id an OPEN or CREATE reply carrying file handle fh
 * should announce, or 0 for a handle the daemon serves itself.
 */
typedef int32_t (*mc_passthrough_backing_fn)(void *ctx, uint64_t fh);

/*
 * Start watching the wire of the session whose /dev/fuse fd is fuse_fd.
 * Returns 0, -ENOMEM.
 */
int mc_passthrough_new(struct mc_passthrough **ptp, int fuse_fd,
		       mc_passthrough_backing_fn backing_of, void *ctx);
void mc_passthrough_free(struct mc_passthrough *pt);

/* Hooks for struct fuse_custom_io: call on every request and reply. */
void mc_passthrough_saw_request(struct mc_passthrough *pt, const void *buf,
				size_t len);
void mc_passthrough_patch_reply(struct mc_passthrough *pt, struct iovec *iov,
				int count);

/* True once INIT negotiated passthrough with the kernel. */
bool mc_passthrough_active(const struct mc_passthrough *pt);

/* True when the kernel offered passthrough in INIT (known after INIT). */
bool mc_passthrough_offered(const struct mc_passthrough *pt);

/*
 * Stop using passthrough for opens from now on (the kernel refuses our
 * backing files): true for the one caller that turned it off.
 */
bool mc_passthrough_disable(struct mc_passthrough *pt);

/*
 * Register fd as a backing file: a positive backing id, or -errno (-EPERM
 * without CAP_SYS_ADMIN).  Release with mc_passthrough_close_backing().
 */
int mc_passthrough_open_backing(struct mc_passthrough *pt, int fd);
void mc_passthrough_close_backing(struct mc_passthrough *pt, int32_t id);

#endif
