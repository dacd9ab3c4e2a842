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
 * The thread runs SCHED_BATCH: its wake-ups never preempt a reader, yet it
 * is not starved while it holds the kernel's locks inside a lookup (as
 * SCHED_IDLE was under load, stalling the requests queued behind it).
 *
 * It looks names up in a private clone of the mount (open_tree(2)), so it
 * never makes `umount MOUNTPOINT` fail with EBUSY.  The clone keeps the
 * superblock (and so the daemon) alive, so a second, small thread watches
 * the mount table: it sleeps in poll(2) on /proc/self/mountinfo, which the
 * kernel wakes on every mount or unmount (and once a second regardless),
 * and when no fuse.mooncake mount at the mount point has the clone's
 * device any more (not the mount id: ids are reused, so a new mount at the
 * same point could take ours; the clone pins our device number), it
 * dup2()s /dev/null over the clone's descriptor.  That drops the clone's
 * reference at once, so the daemon exits right after an unmount, while
 * the descriptor number stays valid for a lookup that races it (which
 * then fails with ENOTDIR).
 *
 * Each refresh waits a few milliseconds after its request: the kernel
 * finishes a rename after the daemon's reply, and a refresh made before
 * that would be lost.
 *
 * Best effort: a full queue drops requests, a page renamed after its
 * request was queued is skipped (mc_attr_warmer_moved), a directory renamed
 * meanwhile costs missed warms (directory paths are remembered for a
 * second), and nothing ever waits for the warmer.
 */
#ifndef MC_ATTR_WARMER_H
#define MC_ATTR_WARMER_H

#include <stdint.h>
#include <sys/types.h>

#include "ns.h"

struct mc_attr_warmer;

/*
 * A warmer for the FUSE mount at the absolute path mountpoint, as
 * /proc/self/mountinfo spells it, whose device is dev (the mount is told
 * by it), naming inodes through ns.  Call it after the mount and before
 * the session serves requests (cloning the mount sends none).  Returns 0,
 * -ENOMEM, -EINVAL, or -errno of open_tree(2) (EPERM without
 * CAP_SYS_ADMIN, ENOSYS before Linux 5.2); the fs then runs without one.
 */
int mc_attr_warmer_new(struct mc_attr_warmer **wp, struct mc_ns *ns,
		       const char *mountpoint, dev_t dev);

/*
 * Start the warmer and the mount watcher: 0 or -errno (then neither runs
 * and the caller must free w: its clone would outlive an unmount).
 */
int mc_attr_warmer_start(struct mc_attr_warmer *w);

/*
 * Queue a refresh of the entry named name in directory parent.  Never
 * blocks on the kernel; w may be NULL.
 */
void mc_attr_warmer_warm(struct mc_attr_warmer *w, uint64_t parent,
			 const char *name);

/*
 * A rename moved the entry name of directory parent away: queued refreshes
 * of that name are skipped, since it no longer exists or, later, names
 * another page.  Call it before replying to the rename.  Never blocks on
 * the kernel; w may be NULL.
 */
void mc_attr_warmer_moved(struct mc_attr_warmer *w, uint64_t parent,
			  const char *name);

/* Refreshes made so far (0 for NULL). */
uint64_t mc_attr_warmer_count(const struct mc_attr_warmer *w);

/*
 * Stop both threads, close the clone and free w (NULL is fine).  Call it
 * after the session unmounted: the warmer may be waiting for a GETATTR
 * reply, which the unmount fails.
 */
void mc_attr_warmer_free(struct mc_attr_warmer *w);

#endif
