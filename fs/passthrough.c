/* passthrough.c - patch INIT/OPEN/CREATE replies for FUSE passthrough */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "passthrough.h"
#include "banned.h"

/*
 * The kernel ABI pieces we need, spelled out because Debian 12's
 * <linux/fuse.h> predates passthrough (protocol 7.40).
 */
enum {
	OP_OPEN = 14,
	OP_INIT = 26,
	OP_CREATE = 35,
};

#define INIT_EXT (1u << 30)
#define INIT_FLAGS2_PASSTHROUGH (1u << (37 - 32))
#define FOPEN_PASSTHROUGH_FLAG (1u << 7)

struct wire_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen;
	uint16_t padding;
};

struct wire_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};

struct wire_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

/* Offsets inside fuse_init_out and fuse_open_out (protocol 7.40). */
#define INIT_OUT_FLAGS 12
#define INIT_OUT_FLAGS2 32
#define INIT_OUT_MAX_STACK_DEPTH 36
#define INIT_OUT_MIN_LEN 40
#define ENTRY_OUT_LEN 128
#define OPEN_OUT_FLAGS 8
#define OPEN_OUT_BACKING_ID 12
#define OPEN_OUT_LEN 16

struct wire_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define DEV_IOC_BACKING_OPEN _IOW(229, 1, struct wire_backing_map)
#define DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/*
 * Requests in flight whose reply we must patch, by unique id.  Only OPEN,
 * CREATE and INIT are kept, so the table stays as small as the number of
 * worker threads.
 */
#define INFLIGHT_SLOTS 512

struct inflight {
	uint64_t unique;	/* 0: free slot */
	uint32_t opcode;
};

struct mc_passthrough {
	int fuse_fd;
	mc_passthrough_backing_fn backing_of;
	void *ctx;
	atomic_bool offered;
	atomic_bool active;
	pthread_mutex_t lock;
	struct inflight slots[INFLIGHT_SLOTS];	/* protected by lock */
	atomic_uint inflight;			/* used slots, read unlocked */
};

int mc_passthrough_new(struct mc_passthrough **ptp, int fuse_fd,
		       mc_passthrough_backing_fn backing_of, void *ctx)
{
	struct mc_passthrough *pt;

	*ptp = NULL;
	pt = calloc(1, sizeof(*pt));
	if (!pt)
		return -ENOMEM;
	pt->fuse_fd = fuse_fd;
	pt->backing_of = backing_of;
	pt->ctx = ctx;
	pthread_mutex_init(&pt->lock, NULL);
	*ptp = pt;
	return 0;
}

void mc_passthrough_free(struct mc_passthrough *pt)
{
	if (!pt)
		return;
	pthread_mutex_destroy(&pt->lock);
	free(pt);
}

static void remember(struct mc_passthrough *pt, uint64_t unique,
		     uint32_t opcode)
{
	size_t i = unique % INFLIGHT_SLOTS;

	pthread_mutex_lock(&pt->lock);
	for (size_t n = 0; n < INFLIGHT_SLOTS; n++, i = (i + 1) % INFLIGHT_SLOTS) {
		if (pt->slots[i].unique == 0) {
			pt->slots[i].unique = unique;
			pt->slots[i].opcode = opcode;
			atomic_fetch_add(&pt->inflight, 1);
			break;
		}
	}
	pthread_mutex_unlock(&pt->lock);
}

/* Returns the opcode remembered for unique (and forgets it), or 0. */
static uint32_t forget(struct mc_passthrough *pt, uint64_t unique)
{
	size_t i = unique % INFLIGHT_SLOTS;
	uint32_t op = 0;

	/* most replies answer requests nobody patches: skip the scan */
	if (atomic_load(&pt->inflight) == 0)
		return 0;
	pthread_mutex_lock(&pt->lock);
	for (size_t n = 0; n < INFLIGHT_SLOTS; n++, i = (i + 1) % INFLIGHT_SLOTS) {
		if (pt->slots[i].unique == unique) {
			op = pt->slots[i].opcode;
			pt->slots[i].unique = 0;
			atomic_fetch_sub(&pt->inflight, 1);
			break;
		}
	}
	pthread_mutex_unlock(&pt->lock);
	return op;
}

void mc_passthrough_saw_request(struct mc_passthrough *pt, const void *buf,
				size_t len)
{
	struct wire_in_header h;

	if (len < sizeof(h))
		return;
	memcpy(&h, buf, sizeof(h));
	if (h.opcode == OP_INIT && len >= sizeof(h) + sizeof(struct wire_init_in)) {
		struct wire_init_in in;

		memcpy(&in, (const char *)buf + sizeof(h), sizeof(in));
		if ((in.flags & INIT_EXT) && (in.flags2 & INIT_FLAGS2_PASSTHROUGH))
			atomic_store(&pt->offered, true);
	}
	if (h.opcode == OP_OPEN || h.opcode == OP_CREATE || h.opcode == OP_INIT)
		remember(pt, h.unique, h.opcode);
}

/* Pointer to byte `off` of the reply's argument, if the iovecs hold it. */
static char *arg_at(struct iovec *iov, int count, size_t off, size_t need)
{
	for (int i = 1; i < count; i++) {
		if (off + need <= iov[i].iov_len)
			return (char *)iov[i].iov_base + off;
		if (off < iov[i].iov_len)
			return NULL;	/* straddles two iovecs: not ours */
		off -= iov[i].iov_len;
	}
	return NULL;
}

static void patch_init(struct mc_passthrough *pt, struct iovec *iov, int count)
{
	char *p = arg_at(iov, count, 0, INIT_OUT_MIN_LEN);
	uint32_t flags, flags2, depth = 1;

	if (!p || !atomic_load(&pt->offered))
		return;
	memcpy(&flags, p + INIT_OUT_FLAGS, 4);
	memcpy(&flags2, p + INIT_OUT_FLAGS2, 4);
	flags |= INIT_EXT;
	flags2 |= INIT_FLAGS2_PASSTHROUGH;
	memcpy(p + INIT_OUT_FLAGS, &flags, 4);
	memcpy(p + INIT_OUT_FLAGS2, &flags2, 4);
	memcpy(p + INIT_OUT_MAX_STACK_DEPTH, &depth, 4);
	atomic_store(&pt->active, true);
}

static void patch_open(struct mc_passthrough *pt, struct iovec *iov, int count,
		       size_t off)
{
	char *p = arg_at(iov, count, off, OPEN_OUT_LEN);
	uint64_t fh;
	uint32_t flags;
	int32_t id;

	if (!p)
		return;
	memcpy(&fh, p, 8);
	id = pt->backing_of(pt->ctx, fh);
	if (id <= 0)
		return;
	memcpy(&flags, p + OPEN_OUT_FLAGS, 4);
	flags |= FOPEN_PASSTHROUGH_FLAG;
	memcpy(p + OPEN_OUT_FLAGS, &flags, 4);
	memcpy(p + OPEN_OUT_BACKING_ID, &id, 4);
}

void mc_passthrough_patch_reply(struct mc_passthrough *pt, struct iovec *iov,
				int count)
{
	struct wire_out_header h;
	uint32_t op;

	if (count < 1 || iov[0].iov_len < sizeof(h))
		return;
	memcpy(&h, iov[0].iov_base, sizeof(h));
	if (h.unique == 0)
		return;		/* a notification, not a reply */
	op = forget(pt, h.unique);
	if (op == 0 || h.error != 0)
		return;
	if (op == OP_INIT)
		patch_init(pt, iov, count);
	else if (op == OP_OPEN && atomic_load(&pt->active))
		patch_open(pt, iov, count, 0);
	else if (op == OP_CREATE && atomic_load(&pt->active))
		patch_open(pt, iov, count, ENTRY_OUT_LEN);
}

bool mc_passthrough_active(const struct mc_passthrough *pt)
{
	return pt && atomic_load(&pt->active);
}

bool mc_passthrough_offered(const struct mc_passthrough *pt)
{
	return pt && atomic_load(&pt->offered);
}

bool mc_passthrough_disable(struct mc_passthrough *pt)
{
	return pt && atomic_exchange(&pt->active, false);
}

int mc_passthrough_open_backing(struct mc_passthrough *pt, int fd)
{
	struct wire_backing_map map = { .fd = fd };
	int id;

	if (!mc_passthrough_active(pt))
		return -ENOTSUP;
	id = ioctl(pt->fuse_fd, DEV_IOC_BACKING_OPEN, &map);
	if (id < 0)
		return -errno;
	return id;
}

void mc_passthrough_close_backing(struct mc_passthrough *pt, int32_t id)
{
	uint32_t uid = (uint32_t)id;

	if (id <= 0 || !pt)
		return;
	if (ioctl(pt->fuse_fd, DEV_IOC_BACKING_CLOSE, &uid) < 0)
		mc_log_ratelimited(MC_LOG_WARNING,
				   "passthrough: cannot release backing id %d (%s): the kernel keeps it until unmount",
				   id, strerror(errno));
}
