/*
 * fuse_ring.h - FUSE requests over io_uring (Linux 6.14+), beside libfuse
 * 3.14, which does not speak it.  Internal to fs/.
 *
 * Why: on a small virtual machine most of a page open's cost is not our
 * work but the scheduler's: /dev/fuse wakes a daemon thread on whatever
 * CPU it last ran, usually another one, idle and halted, and the reply
 * wakes the caller back the same way.  Over io_uring the kernel queues a
 * request on the caller's own CPU, where a thread of ours pinned to that
 * CPU takes it while the caller sleeps: two plain context switches, no
 * interprocessor wake-ups.
 *
 * How: at the INIT exchange (seen through the session's custom I/O), when
 * the kernel offers it, one io_uring per worker thread is made, each thread
 * pinned to one CPU with one ring entry (two to four workers per CPU, so
 * one request a handler keeps waiting does not stall its CPU); the INIT
 * reply accepts the offer and the threads register their entries.  A
 * request from the ring is rebuilt into the classic /dev/fuse layout and handed to deliver() (which
 * calls fuse_session_process_buf); its reply comes back through
 * mc_fuse_ring_writev() and is committed to the entry it came from.
 * FORGET, INTERRUPT and notifications keep using /dev/fuse, so libfuse's
 * own loop keeps running.
 *
 * Failures: anything that fails before the INIT reply leaves the
 * connection on /dev/fuse.  A request that does not parse, or a reply that
 * does not fit its entry, is answered EIO.  Once the kernel uses the ring
 * it queues each request on its caller's CPU for good, so a worker never
 * leaves its queue: an entry lost to a refused command is registered
 * again, backing off up to a second.
 */
#ifndef MC_FUSE_RING_H
#define MC_FUSE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mc_fuse_ring;

/* Hands one request, in the /dev/fuse layout, to libfuse. */
typedef void (*mc_fuse_ring_deliver_fn)(void *ctx, void *buf, size_t len);

/*
 * A ring for the connection on fuse_fd, with about `threads` workers
 * (at least one per CPU).  Nothing is set up until the kernel offers the
 * ring at INIT.  0 or -ENOMEM.
 */
int mc_fuse_ring_new(struct mc_fuse_ring **rp, int fuse_fd, unsigned threads,
		     mc_fuse_ring_deliver_fn deliver, void *ctx);

/* Every request read from /dev/fuse: notes INIT's offer.  r may be NULL. */
void mc_fuse_ring_saw_request(struct mc_fuse_ring *r, const void *buf,
			      size_t len);

/*
 * Every reply and notification: a reply to a ring request is committed to
 * its entry, anything else is written to fd (the INIT reply after taking
 * the offer, if the ring could be set up).  Returns the bytes sent, or -1
 * with errno set, as writev(2) does.  r may be NULL.
 */
ssize_t mc_fuse_ring_writev(struct mc_fuse_ring *r, int fd,
			    const struct iovec *iov, int count);

/* Whether INIT offered the ring (false before INIT, and for NULL). */
bool mc_fuse_ring_offered(const struct mc_fuse_ring *r);

/* Whether the kernel now sends requests over the ring. */
bool mc_fuse_ring_active(const struct mc_fuse_ring *r);

/*
 * A handler running on a ring worker is about to wait for something that
 * may need another request of its CPU served (an entry invalidation needs
 * the directory lock a lookup holds while it waits for its reply).  Returns
 * a hold >= 0 when another worker of the caller's CPU stays free to serve
 * it (release it with mc_fuse_ring_unhold()), -EBUSY when none would, and
 * -ENOTCONN when requests do not come over the ring (then the caller runs
 * on one of libfuse's threads).
 */
int mc_fuse_ring_hold(struct mc_fuse_ring *r);

/* Release a hold of mc_fuse_ring_hold(); a negative one is ignored. */
void mc_fuse_ring_unhold(struct mc_fuse_ring *r, int hold);

/*
 * Stop and join the workers and free r (NULL is fine).  Requests the
 * kernel sends over the ring afterwards wait until the unmount fails them:
 * call it when the session loop has ended.
 */
void mc_fuse_ring_free(struct mc_fuse_ring *r);

#endif
