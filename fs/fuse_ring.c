/* fuse_ring.c - FUSE requests over io_uring, beside libfuse 3.14 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "fuse_ring.h"
#include "log.h"
#include "banned.h"

/*
 * The kernel ABI (include/uapi/linux/fuse.h, protocol 7.42), spelled out
 * because Debian 12's headers predate it.
 */
enum {
	OP_INIT = 26,
	OP_NOTIFY_REPLY = 41,
	CMD_REGISTER = 1,
	CMD_COMMIT_AND_FETCH = 2,
};

#define INIT_EXT (1u << 30)
#define INIT_MAX_PAGES (1u << 22)
#define INIT_FLAGS2_OVER_IO_URING (1u << (41 - 32))
#define INIT_OUT_FLAGS 12
#define INIT_OUT_MAX_WRITE 20
#define INIT_OUT_MAX_PAGES 28
#define INIT_OUT_FLAGS2 32
#define INIT_OUT_MIN_LEN 40
#define MIN_READ_BUFFER 8192
#define DEFAULT_MAX_PAGES 32

#define IN_HEADER_LEN 40
#define OUT_HEADER_LEN 16
#define OP_IN_LEN 128

struct ring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;	/* the request's unique */
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct ring_req_header {
	char in_out[128];	/* fuse_in_header in, fuse_out_header out */
	char op_in[OP_IN_LEN];	/* the request's first argument */
	struct ring_ent_in_out ent;
};

struct ring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

#define STOP_USER_DATA UINT64_MAX
#define WAKE_USER_DATA (UINT64_MAX - 1)
#define RING_DEPTH 4	/* one entry's command, a stop, room to spare */
/*
 * Workers per CPU.  A request a handler keeps (a lookup waiting for a
 * commit, a close waiting for an invalidation) keeps its worker, and the
 * kernel queues each request on its caller's CPU only: one worker per CPU
 * would let one slow request stall every other on that CPU.
 */
#define MIN_PER_CPU 2
#define MAX_PER_CPU 4
#define SUBMIT_TRIES 200	/* 1 ms apart: a full completion queue drains */
/* a lost entry is registered again after 1 ms, then 2, 4... up to 1 s */
#define REARM_FIRST_MS 1
#define REARM_MAX_MS 1000

/* One worker: its own io_uring, one ring entry, pinned to CPU qid. */
struct ring_worker {
	struct mc_fuse_ring *ring;
	unsigned qid;
	struct io_uring uring;
	bool uring_ready;
	pthread_mutex_t lock;	/* submissions: the worker's and repliers' */
	/*
	 * The entry's buffers are the kernel's from a commit on (it may put
	 * the next request there at once), while the handler that replied
	 * may still read its arguments: so each request is rebuilt in a
	 * private area first.
	 */
	struct ring_req_header *hdr;	/* registered with the kernel */
	char *payload;			/* registered with the kernel */
	char *area;		/* request rebuilt here, payload at +PREFIX */
	size_t area_len;
	struct iovec iov[2];
	_Atomic uint64_t unique;	/* request being served, 0: none */
	uint32_t cmd;		/* protected by lock: the command in flight, */
	uint64_t cmd_id;	/* sent again if the kernel says "not now" */
	atomic_bool lost;	/* a replier could not submit its commit */
	pthread_t thread;
	bool started;
};

/* room before the payload to rebuild the request headers in place */
#define PREFIX 4096

struct mc_fuse_ring {
	int fuse_fd;
	unsigned threads;
	mc_fuse_ring_deliver_fn deliver;
	void *ctx;
	atomic_bool offered;		/* INIT offered FUSE_OVER_IO_URING */
	_Atomic uint64_t init_unique;	/* the INIT request, until replied */
	atomic_bool accepted;		/* the INIT reply took the offer */
	atomic_uint_fast64_t requests;	/* served over the ring */
	atomic_uint warned;		/* workers that logged a failure */

	pthread_mutex_t go_lock;
	pthread_cond_t go_cond;
	int go;				/* protected by go_lock: 1 go, -1 quit */

	struct ring_worker *workers;	/* set up at INIT, then fixed */
	unsigned nworkers;
	unsigned nqueues;		/* one per possible CPU */
	atomic_uint *alive;		/* per queue: workers with an entry */
	atomic_uint *held;		/* per queue: workers a handler keeps */
	size_t payload_len;
};

int mc_fuse_ring_new(struct mc_fuse_ring **rp, int fuse_fd, unsigned threads,
		     mc_fuse_ring_deliver_fn deliver, void *ctx)
{
	struct mc_fuse_ring *r;

	*rp = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->fuse_fd = fuse_fd;
	r->threads = threads;
	r->deliver = deliver;
	r->ctx = ctx;
	pthread_mutex_init(&r->go_lock, NULL);
	pthread_cond_init(&r->go_cond, NULL);
	*rp = r;
	return 0;
}

void mc_fuse_ring_saw_request(struct mc_fuse_ring *r, const void *buf,
			      size_t len)
{
	uint32_t opcode, flags, flags2;
	uint64_t unique;

	if (!r || len < IN_HEADER_LEN + 20)
		return;
	memcpy(&opcode, (const char *)buf + 4, 4);
	if (opcode != OP_INIT)
		return;
	memcpy(&unique, (const char *)buf + 8, 8);
	memcpy(&flags, (const char *)buf + IN_HEADER_LEN + 12, 4);
	memcpy(&flags2, (const char *)buf + IN_HEADER_LEN + 16, 4);
	if ((flags & INIT_EXT) && (flags2 & INIT_FLAGS2_OVER_IO_URING))
		atomic_store(&r->offered, true);
	atomic_store(&r->init_unique, unique);
}

/*
 * How many queues the kernel makes: one per possible CPU, counted, not
 * numbered (num_possible_cpus()); a queue's id is its CPU's number, so a
 * machine with holes in its CPU numbers cannot use the ring (the kernel
 * refuses the registration of a CPU numbered past the count).
 */
static unsigned possible_cpus(void)
{
	unsigned lo, hi, count = 0;
	char line[4096], *p;
	FILE *f;
	int n;

	f = fopen("/sys/devices/system/cpu/possible", "re");
	if (f) {
		if (fgets(line, sizeof(line), f)) {
			for (p = line; *p && *p != '\n';) {
				n = sscanf(p, "%u-%u", &lo, &hi);
				if (n < 1)
					break;
				if (n == 1 || hi < lo)
					hi = lo;
				count += hi - lo + 1;
				p += strcspn(p, ",\n");
				if (*p == ',')
					p++;
			}
		}
		fclose(f);
	}
	return count ? count : (unsigned)get_nprocs_conf();
}

static void prep_cmd(struct ring_worker *w, struct io_uring_sqe *sqe,
		     uint32_t cmd, uint64_t commit_id)
{
	struct ring_cmd_req req = { .commit_id = commit_id,
				    .qid = (uint16_t)w->qid };

	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, w->ring->fuse_fd, w->iov, 2,
			 0);
	sqe->cmd_op = cmd;
	sqe->__pad1 = 0;
	/* a 128-byte entry: the command area runs from byte 48 to the end */
	memset(sqe->cmd, 0, 80);
	memcpy(sqe->cmd, &req, sizeof(req));
	sqe->user_data = (uint64_t)(uintptr_t)w;
}

/* A free submission entry, submitting what is queued if there is none. */
static struct io_uring_sqe *get_sqe_locked(struct ring_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->uring);

	if (!sqe && io_uring_submit(&w->uring) >= 0)
		sqe = io_uring_get_sqe(&w->uring);
	return sqe;
}

/*
 * Submit what is queued.  EBUSY (the completion queue is full until the
 * worker reaps it) and EINTR pass: retried for a while, since a command
 * that is never submitted loses its entry for good.
 */
static int submit_locked(struct ring_worker *w)
{
	int r = 0, i;

	for (i = 0; i < SUBMIT_TRIES; i++) {
		r = io_uring_submit(&w->uring);
		if (r != -EBUSY && r != -EAGAIN && r != -EINTR)
			break;
		usleep(1000);
	}
	return r < 0 ? r : 0;
}

/* Queue one command for w's entry and submit it: 0 or -errno. */
static int submit_cmd(struct ring_worker *w, uint32_t cmd, uint64_t commit_id)
{
	struct io_uring_sqe *sqe;
	int r;

	pthread_mutex_lock(&w->lock);
	sqe = get_sqe_locked(w);
	if (!sqe) {
		r = -EBUSY;
		goto out;
	}
	w->cmd = cmd;
	w->cmd_id = commit_id;
	prep_cmd(w, sqe, cmd, commit_id);
	r = submit_locked(w);
out:
	pthread_mutex_unlock(&w->lock);
	return r;
}

/* The kernel said "not now" (EAGAIN, EINTR): send the same command again. */
static int resubmit(struct ring_worker *w)
{
	uint32_t cmd;
	uint64_t id;

	pthread_mutex_lock(&w->lock);
	cmd = w->cmd;
	id = w->cmd_id;
	pthread_mutex_unlock(&w->lock);
	return submit_cmd(w, cmd, id);
}

/* A completion that tells the worker something (ud): best effort. */
static void post_nop(struct ring_worker *w, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	pthread_mutex_lock(&w->lock);
	sqe = get_sqe_locked(w);
	if (sqe) {
		io_uring_prep_nop(sqe);
		sqe->user_data = ud;
		(void)submit_locked(w);
	}
	pthread_mutex_unlock(&w->lock);
}

/* One line per failing worker would flood the log on a big machine. */
static bool first_warning(struct mc_fuse_ring *r)
{
	return atomic_fetch_add(&r->warned, 1) == 0;
}

/*
 * Answer the request unique with error (0: an empty success) and ask for
 * the next one: for requests libfuse never answers, or cannot.  0 or
 * -errno (then nothing is armed).
 */
static int commit_error(struct ring_worker *w, uint64_t unique, int error)
{
	uint32_t len = OUT_HEADER_LEN;
	int32_t err = error;

	memcpy(w->hdr->in_out, &len, 4);
	memcpy(w->hdr->in_out + 4, &err, 4);
	memcpy(w->hdr->in_out + 8, &unique, 8);
	w->hdr->ent.payload_sz = 0;
	atomic_store(&w->unique, 0);
	return submit_cmd(w, CMD_COMMIT_AND_FETCH, unique);
}

/*
 * Rebuild the request in place before the payload and hand it over.
 * Returns 0 (the reply re-arms the entry, now or later), -EPROTO for a
 * request that does not parse (answered EIO, so its caller does not wait
 * forever), or another -errno when nothing is armed any more.
 */
static int serve(struct ring_worker *w)
{
	struct ring_req_header *h = w->hdr;
	uint32_t len, opcode, payload_sz = h->ent.payload_sz;
	uint64_t unique;
	size_t op_len;
	char *start;
	int r = 0;

	memcpy(&len, h->in_out, 4);
	memcpy(&opcode, h->in_out + 4, 4);
	memcpy(&unique, h->in_out + 8, 8);
	if (payload_sz > w->ring->payload_len || len < IN_HEADER_LEN ||
	    len - IN_HEADER_LEN < payload_sz ||
	    len - IN_HEADER_LEN - payload_sz > OP_IN_LEN ||
	    unique != h->ent.commit_id || unique == 0) {
		/* without an id there is nobody to answer: a new entry */
		if (h->ent.commit_id == 0)
			return -EBADMSG;
		r = commit_error(w, h->ent.commit_id, -EIO);
		return r < 0 ? r : -EPROTO;
	}
	op_len = len - IN_HEADER_LEN - payload_sz;
	start = w->area + PREFIX - op_len - IN_HEADER_LEN;
	memcpy(start, h->in_out, IN_HEADER_LEN);
	memcpy(start + IN_HEADER_LEN, h->op_in, op_len);
	memcpy(w->area + PREFIX, w->payload, payload_sz);
	atomic_store(&w->unique, unique);
	atomic_fetch_add(&w->ring->requests, 1);
	w->ring->deliver(w->ring->ctx, start, len);
	/* libfuse takes a retrieve's data without a word: free the entry */
	if (opcode == OP_NOTIFY_REPLY && atomic_load(&w->unique) == unique)
		r = commit_error(w, unique, 0);
	/* our own reply could not be submitted */
	if (atomic_exchange(&w->lost, false))
		r = -EIO;
	return r;
}

/* What a completion leaves: a command armed, none, or the end. */
enum { ARMED, REARM, STOP };

/* What one completion on w's ring means: ARMED, REARM or STOP. */
static int on_completion(struct ring_worker *w, uint64_t ud, int res)
{
	struct mc_fuse_ring *r = w->ring;
	uint32_t cmd;
	int ret;

	if (ud == STOP_USER_DATA)
		return STOP;
	if (ud == WAKE_USER_DATA)	/* a replier lost its commit */
		return atomic_exchange(&w->lost, false) ? REARM : ARMED;
	if (res == -EAGAIN || res == -EINTR)
		return resubmit(w) < 0 ? REARM : ARMED;
	if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED)
		return STOP;	/* unmounted, aborted or stopping */
	if (res < 0) {
		/*
		 * A refused commit (its request is gone) takes the entry
		 * with it, and a refused registration made none: either
		 * way, register the buffers as a new entry.
		 */
		pthread_mutex_lock(&w->lock);
		cmd = w->cmd;
		pthread_mutex_unlock(&w->lock);
		if (first_warning(r))
			mc_log_errno(MC_LOG_WARNING, res,
				     "fuse ring: the kernel refused %s on CPU %u: registering the entry again (logged once)",
				     cmd == CMD_REGISTER ? "a ring entry" :
							   "a reply",
				     w->qid);
		return REARM;
	}
	ret = serve(w);
	if (ret == -EPROTO || ret == -EBADMSG) {
		if (first_warning(r))
			mc_log(MC_LOG_ERR,
			       "fuse ring: malformed request on CPU %u, answered EIO: report a kernel/daemon mismatch (logged once)",
			       w->qid);
	}
	return ret == 0 || ret == -EPROTO ? ARMED : REARM;
}

/*
 * Wait for the next completion; with nothing armed, for at most delay_ms
 * (then -ETIME).  0 or -errno.
 */
static int wait_completion(struct ring_worker *w, bool armed,
			   unsigned delay_ms, struct io_uring_cqe **cqe)
{
	struct __kernel_timespec ts = {
		.tv_sec = delay_ms / 1000,
		.tv_nsec = (long long)(delay_ms % 1000) * 1000000,
	};

	if (armed)
		return io_uring_wait_cqe(&w->uring, cqe);
	return io_uring_wait_cqe_timeout(&w->uring, cqe, &ts);
}

/*
 * On the CPU whose requests it takes: that is the whole point.  A CPU
 * past what a cpu_set_t holds goes unpinned and still works.
 */
static void pin_to_queue(struct ring_worker *w)
{
	cpu_set_t cpus;

	if (w->qid >= CPU_SETSIZE)
		return;
	CPU_ZERO(&cpus);
	CPU_SET(w->qid, &cpus);
	(void)sched_setaffinity(0, sizeof(cpus), &cpus);
}

static void *worker_main(void *arg)
{
	struct ring_worker *w = arg;
	struct mc_fuse_ring *ring = w->ring;
	unsigned delay_ms = REARM_FIRST_MS;
	struct io_uring_cqe *cqe;
	int res, r, go, what;
	uint64_t ud;

	pin_to_queue(w);
	/*
	 * No wake-up preemption: a caller that waits for its reply sleeps,
	 * so the worker runs at once anyway, but one that does not (close's
	 * RELEASE) keeps its CPU, and the worker takes the request the next
	 * time the caller sleeps.
	 */
	(void)sched_setscheduler(0, SCHED_BATCH, &(struct sched_param){ 0 });

	pthread_mutex_lock(&ring->go_lock);
	while (ring->go == 0)
		pthread_cond_wait(&ring->go_cond, &ring->go_lock);
	go = ring->go;
	pthread_mutex_unlock(&ring->go_lock);
	if (go < 0)
		return NULL;
	/*
	 * Never leave the queue: once the kernel sends requests over the
	 * ring it queues each on its caller's CPU for good, so a CPU whose
	 * entries are all gone would leave its callers waiting forever.
	 * An entry lost to a refusal is registered again, backing off.
	 */
	atomic_fetch_add(&ring->alive[w->qid], 1);
	what = submit_cmd(w, CMD_REGISTER, 0) < 0 ? REARM : ARMED;
	while (what != STOP) {
		r = wait_completion(w, what == ARMED, delay_ms, &cqe);
		if (r == -ETIME) {
			if (submit_cmd(w, CMD_REGISTER, 0) == 0)
				what = ARMED;
			delay_ms = delay_ms * 2 > REARM_MAX_MS ? REARM_MAX_MS :
								 delay_ms * 2;
			continue;
		}
		if (r == -EINTR)
			continue;
		if (r < 0) {
			mc_log_errno(MC_LOG_ERR, r,
				     "fuse ring: cannot wait on the ring of CPU %u: its worker stops; restart the daemon with --fuse-ring off if that CPU's requests hang",
				     w->qid);
			break;
		}
		res = cqe->res;
		ud = cqe->user_data;
		io_uring_cqe_seen(&w->uring, cqe);
		if (res >= 0 && ud != STOP_USER_DATA && ud != WAKE_USER_DATA)
			delay_ms = REARM_FIRST_MS;
		what = on_completion(w, ud, res);
	}
	atomic_store(&w->unique, 0);
	atomic_fetch_sub(&ring->alive[w->qid], 1);
	return NULL;
}

static void worker_release(struct ring_worker *w)
{
	if (!w->ring)
		return;		/* never initialised */
	if (w->uring_ready)
		io_uring_queue_exit(&w->uring);
	if (w->area)
		munmap(w->area, w->area_len);
	if (w->payload)
		munmap(w->payload, w->ring->payload_len);
	free(w->hdr);
	pthread_mutex_destroy(&w->lock);
}

/*
 * Stop the workers (before they registered, or after), then free them.
 * A worker that never got its stop waits on the ring forever, so each
 * gets a NOP it will read as the end.
 */
static void workers_free(struct mc_fuse_ring *r)
{
	struct ring_worker *w;
	unsigned i;

	pthread_mutex_lock(&r->go_lock);
	if (r->go == 0)
		r->go = -1;
	pthread_cond_broadcast(&r->go_cond);
	pthread_mutex_unlock(&r->go_lock);
	for (i = 0; i < r->nworkers; i++) {
		w = &r->workers[i];
		if (!w->started)
			continue;
		post_nop(w, STOP_USER_DATA);
		pthread_join(w->thread, NULL);
	}
	/* closing a ring cancels the entry it still had armed */
	for (i = 0; i < r->nworkers; i++)
		worker_release(&r->workers[i]);
	free(r->workers);
	free(r->alive);
	free(r->held);
	r->workers = NULL;
	r->alive = NULL;
	r->held = NULL;
	r->nworkers = 0;
	r->nqueues = 0;
}

static int worker_init(struct mc_fuse_ring *r, struct ring_worker *w,
		       unsigned qid)
{
	struct io_uring_params p;
	int ret = -ENOMEM;

	w->ring = r;
	w->qid = qid;
	pthread_mutex_init(&w->lock, NULL);
	if (posix_memalign((void **)&w->hdr, 64, sizeof(*w->hdr)) != 0) {
		w->hdr = NULL;
		goto out;
	}
	memset(w->hdr, 0, sizeof(*w->hdr));
	/* only what requests touch becomes resident */
	w->area_len = PREFIX + r->payload_len;
	w->area = mmap(NULL, w->area_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->area == MAP_FAILED) {
		w->area = NULL;
		goto out;
	}
	w->payload = mmap(NULL, r->payload_len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (w->payload == MAP_FAILED) {
		w->payload = NULL;
		goto out;
	}
	w->iov[0].iov_base = w->hdr;
	w->iov[0].iov_len = sizeof(*w->hdr);
	w->iov[1].iov_base = w->payload;
	w->iov[1].iov_len = r->payload_len;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128;
	ret = io_uring_queue_init_params(RING_DEPTH, &w->uring, &p);
	if (ret < 0)
		goto out;
	w->uring_ready = true;
	ret = -pthread_create(&w->thread, NULL, worker_main, w);
	if (ret == 0)
		w->started = true;
out:
	return ret;	/* workers_free() releases what was made */
}

/*
 * Workers for every CPU, waiting for the go: 0 or -errno (none left).
 * Worker i serves queue i % ncpu, so every CPU gets one before any gets
 * a second.
 */
static int workers_setup(struct mc_fuse_ring *r, size_t payload_len)
{
	unsigned ncpu = possible_cpus(), per, i;
	int ret = 0;

	per = r->threads / ncpu;
	if (per < MIN_PER_CPU)
		per = MIN_PER_CPU;
	if (per > MAX_PER_CPU)
		per = MAX_PER_CPU;	/* more only adds idle threads */
	r->payload_len = payload_len;
	r->nqueues = ncpu;
	r->alive = calloc(ncpu, sizeof(*r->alive));
	r->held = calloc(ncpu, sizeof(*r->held));
	r->workers = calloc((size_t)ncpu * per, sizeof(*r->workers));
	if (!r->alive || !r->held || !r->workers) {
		ret = -ENOMEM;
		goto out;
	}
	r->nworkers = ncpu * per;
	for (i = 0; i < r->nworkers && ret == 0; i++)
		ret = worker_init(r, &r->workers[i], i % ncpu);
out:
	if (ret < 0)
		workers_free(r);
	return ret;
}

/* The INIT reply: take the offer if the workers could be made. */
static void take_offer(struct mc_fuse_ring *r, const struct iovec *iov,
		       int count)
{
	uint32_t flags, flags2, max_write;
	uint16_t max_pages;
	size_t payload;
	char *p;
	int ret;

	if (count < 2 || iov[1].iov_len < INIT_OUT_MIN_LEN)
		return;
	p = iov[1].iov_base;
	memcpy(&flags, p + INIT_OUT_FLAGS, 4);
	memcpy(&flags2, p + INIT_OUT_FLAGS2, 4);
	memcpy(&max_write, p + INIT_OUT_MAX_WRITE, 4);
	memcpy(&max_pages, p + INIT_OUT_MAX_PAGES, 2);
	/* the kernel insists every entry can take its largest request */
	payload = MIN_READ_BUFFER;
	if (max_write > payload)
		payload = max_write;
	if ((size_t)((flags & INIT_MAX_PAGES) ? max_pages : DEFAULT_MAX_PAGES) *
		    (size_t)sysconf(_SC_PAGESIZE) > payload)
		payload = (size_t)((flags & INIT_MAX_PAGES) ? max_pages :
							      DEFAULT_MAX_PAGES) *
			  (size_t)sysconf(_SC_PAGESIZE);
	ret = workers_setup(r, payload);
	if (ret < 0) {
		mc_log_errno(MC_LOG_WARNING, ret,
			     "fuse ring: cannot set up FUSE over io_uring: requests use /dev/fuse");
		return;
	}
	flags |= INIT_EXT;
	flags2 |= INIT_FLAGS2_OVER_IO_URING;
	memcpy(p + INIT_OUT_FLAGS, &flags, 4);
	memcpy(p + INIT_OUT_FLAGS2, &flags2, 4);
	atomic_store(&r->accepted, true);
}

static void go(struct mc_fuse_ring *r, int how)
{
	pthread_mutex_lock(&r->go_lock);
	r->go = how;
	pthread_cond_broadcast(&r->go_cond);
	pthread_mutex_unlock(&r->go_lock);
}

/*
 * A reply could not be submitted, and with it went the entry's command:
 * the worker must register the entry again.  It looks after its own
 * requests; a reply from another thread wakes it (best effort: the ring
 * that refused the commit may refuse this too, and then only an unmount
 * frees that entry's next caller).
 */
static void lost_commit(struct ring_worker *w)
{
	atomic_store(&w->lost, true);
	if (!pthread_equal(pthread_self(), w->thread))
		post_nop(w, WAKE_USER_DATA);
}

/* Commit a reply to w's entry and ask for the next request. */
static ssize_t commit(struct ring_worker *w, const struct iovec *iov,
		      int count, uint64_t unique)
{
	size_t total = 0, room = w->ring->payload_len, n;
	char *payload = w->payload;
	int32_t error;
	int i, r;

	memcpy(&error, (const char *)iov[0].iov_base + 4, 4);
	for (i = 1; i < count && error == 0; i++) {
		n = iov[i].iov_len;
		if (n > room - total) {
			/* the kernel sized the entry for any reply: our bug */
			mc_log(MC_LOG_ERR,
			       "fuse ring: a reply of over %zu bytes does not fit its ring entry: answered EIO; report this",
			       room);
			r = commit_error(w, unique, -EIO);
			goto out;
		}
		memcpy(payload + total, iov[i].iov_base, n);
		total += n;
	}
	memcpy(w->hdr->in_out, iov[0].iov_base, OUT_HEADER_LEN);
	w->hdr->ent.payload_sz = (uint32_t)total;
	atomic_store(&w->unique, 0);
	r = submit_cmd(w, CMD_COMMIT_AND_FETCH, unique);
out:
	if (r < 0) {
		lost_commit(w);
		errno = -r;
		return -1;
	}
	for (i = 0, total = 0; i < count; i++)
		total += iov[i].iov_len;
	return (ssize_t)total;
}

/* The worker serving unique: the replying thread's own, usually. */
static struct ring_worker *worker_of(struct mc_fuse_ring *r, uint64_t unique)
{
	unsigned i, n = r->nworkers;
	int cpu = sched_getcpu();
	unsigned start = cpu > 0 ? (unsigned)cpu : 0;

	for (i = 0; i < n; i++) {
		struct ring_worker *w = &r->workers[(start + i) % n];

		if (atomic_load(&w->unique) == unique)
			return w;
	}
	return NULL;
}

ssize_t mc_fuse_ring_writev(struct mc_fuse_ring *r, int fd,
			    const struct iovec *iov, int count)
{
	struct ring_worker *w;
	uint64_t unique;
	ssize_t n;

	if (!r || count < 1 || iov[0].iov_len < OUT_HEADER_LEN)
		return writev(fd, iov, count);
	memcpy(&unique, (const char *)iov[0].iov_base + 8, 8);
	if (unique == 0)
		return writev(fd, iov, count);	/* a notification */
	if (unique == atomic_load(&r->init_unique)) {
		atomic_store(&r->init_unique, 0);
		if (atomic_load(&r->offered))
			take_offer(r, iov, count);
		n = writev(fd, iov, count);
		/* registering is refused until the kernel took the reply */
		if (atomic_load(&r->accepted))
			go(r, n < 0 ? -1 : 1);
		return n;
	}
	if (atomic_load(&r->accepted)) {
		w = worker_of(r, unique);
		if (w)
			return commit(w, iov, count, unique);
	}
	return writev(fd, iov, count);
}

bool mc_fuse_ring_offered(const struct mc_fuse_ring *r)
{
	return r && atomic_load(&r->offered);
}

bool mc_fuse_ring_active(const struct mc_fuse_ring *r)
{
	return r && atomic_load(&r->requests) > 0;
}

/* The worker the calling thread is, or NULL. */
static struct ring_worker *worker_self(struct mc_fuse_ring *r)
{
	pthread_t self = pthread_self();
	unsigned i;

	for (i = 0; i < r->nworkers; i++)
		if (r->workers[i].started &&
		    pthread_equal(r->workers[i].thread, self))
			return &r->workers[i];
	return NULL;
}

int mc_fuse_ring_hold(struct mc_fuse_ring *r)
{
	struct ring_worker *w;
	unsigned held, q;

	if (!mc_fuse_ring_active(r))
		return -ENOTCONN;
	w = worker_self(r);
	if (!w)
		return -ENOTCONN;	/* a request that came over /dev/fuse */
	q = w->qid;
	held = atomic_fetch_add(&r->held[q], 1);
	if (held + 2 > atomic_load(&r->alive[q])) {
		atomic_fetch_sub(&r->held[q], 1);
		return -EBUSY;
	}
	return (int)q;
}

void mc_fuse_ring_unhold(struct mc_fuse_ring *r, int hold)
{
	if (r && hold >= 0 && (unsigned)hold < r->nqueues)
		atomic_fetch_sub(&r->held[hold], 1);
}

void mc_fuse_ring_free(struct mc_fuse_ring *r)
{
	if (!r)
		return;
	workers_free(r);
	pthread_mutex_destroy(&r->go_lock);
	pthread_cond_destroy(&r->go_cond);
	free(r);
}
