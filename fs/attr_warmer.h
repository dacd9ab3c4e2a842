/*
 * attr_warmer.h - keep the kernel's cached attributes of committed pages
 * fresh, off the reader's path.  Internal to fs/.
 *
 * A committed page never changes, yet its first reader pays a GETATTR
 * round trip: a page's attributes are not cacheable while it is being
 * written (other processes must not see it), so the first open after the
 * commit asks (the permission check needs the mode), and so does the first
 * fstat(2) after a rename (the ctime is marked stale).  FUSE has no message
 * to push attributes, so a thread of the daemon asks instead: it stat()s
 * the page by name and the GETATTR reply refreshes the kernel's cache for
 * every process.
 *
 * Not after reads, although every passthrough read marks the atime stale
 * and so costs the next fstat(2) a round trip: the wake-up of this thread
 * cost the closing reader more than the round trip it saved.
 *
 * It looks names up in a private clone of the mount (open_tree(2)), so it
 * never makes `umount MOUNTPOINT` fail with EBUSY.  The clone keeps the
 * superblock (and so the daemon) alive, so the thread checks twice a second
 * that the mount is still there and lets the clone go when it is not.
 *
 * Best effort: a full queue drops requests, a name renamed meanwhile is
 * missed (directory paths are remembered for a second), and nothing ever
 * waits for the warmer.
 */
#ifndef MC_ATTR_WARMER_H
#define MC_ATTR_WARMER_H

#include <stdint.h>

#include "ns.h"

struct mc_attr_warmer;

/*
 * A warmer for the FUSE mount at the absolute path mountpoint, whose id in
 * /proc/self/mountinfo is mnt_id, naming inodes through ns.  Call it after
 * the mount and before the session serves requests (cloning the mount
 * sends none).  Returns 0, -ENOMEM, or -errno of open_tree(2) (EPERM
 * without CAP_SYS_ADMIN, ENOSYS before Linux 5.2); the fs then runs
 * without one.
 */
int mc_attr_warmer_new(struct mc_attr_warmer **wp, struct mc_ns *ns,
		       const char *mountpoint, int mnt_id);

/* Start the thread: 0 or -errno (then warming does nothing). */
int mc_attr_warmer_start(struct mc_attr_warmer *w);

/*
 * Queue a refresh of the entry named name in directory parent.  Never
 * blocks on the kernel; w may be NULL.
 */
void mc_attr_warmer_warm(struct mc_attr_warmer *w, uint64_t parent,
			 const char *name);

/* Refreshes made so far (0 for NULL). */
uint64_t mc_attr_warmer_count(const struct mc_attr_warmer *w);

/*
 * Stop the thread and free w (NULL is fine).  Call it after the session
 * unmounted: the thread may be waiting for a GETATTR reply, which the
 * unmount fails.
 */
void mc_attr_warmer_free(struct mc_attr_warmer *w);

#endif
