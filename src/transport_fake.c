/*
 * transport_fake.c - an in-process transport for the tests of what sits
 * above it (src/fetch.c): peers are entries in a table, pages are heap
 * copies, and each peer can be told to fail in one of the ways a network
 * and a remote daemon fail.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "transport.h"
#include "banned.h"

struct fake_page {
	uint64_t page_id;
	uint8_t *data;
	uint64_t len;
	uint32_t crc32c; /* of the whole copy, as a data server checks it */
	struct fake_page *next;
};

struct fake_peer {
	uint64_t segment_id;
	struct fake_page *pages;
	enum mc_transport_fault fault;
	uint64_t arg;
	unsigned calls;
	int dead; /* MC_TRANSPORT_FAULT_DEAD struck: every read fails */
	struct fake_peer *next;
};

struct mc_transport_fake {
	struct mc_transport base; /* first: the ops table casts back */
	pthread_mutex_t lock;
	struct fake_peer *peers; /* protected by lock */
	unsigned timeout_ms; /* protected by lock */
};

static struct fake_peer *find_peer_locked(struct mc_transport_fake *f,
					  uint64_t segment_id, int create)
{
	struct fake_peer *p;

	for (p = f->peers; p; p = p->next)
		if (p->segment_id == segment_id)
			return p;
	if (!create)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->segment_id = segment_id;
	p->next = f->peers;
	f->peers = p;
	return p;
}

static struct fake_page *find_page(struct fake_peer *p, uint64_t page_id)
{
	struct fake_page *pg;

	for (pg = p->pages; pg; pg = pg->next)
		if (pg->page_id == page_id)
			return pg;
	return NULL;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The peer's answer, judged as src/data_server.c judges it, then the
 * fault.  The bytes are copied under the lock: pages are small in tests,
 * and it keeps a concurrent add_page from freeing them mid-copy.
 */
static int fake_read(struct mc_transport *t, const struct mc_ns_replica *peer,
		     const struct mc_wire_read_page *req, void *dst,
		     uint32_t *crc)
{
	struct mc_transport_fake *f = (struct mc_transport_fake *)t;
	enum mc_transport_fault fault;
	uint64_t arg, len = req->length, n;
	uint64_t delay_ms = 0;
	struct fake_peer *p;
	struct fake_page *pg;
	int r;

	pthread_mutex_lock(&f->lock);
	p = find_peer_locked(f, peer->segment_id, 0);
	if (!p) {
		/* nobody listens at an address the table does not know */
		r = -ECONNREFUSED;
		goto out_unlock;
	}
	p->calls++;
	fault = p->fault;
	arg = p->arg;
	if (p->dead) {
		r = -EHOSTUNREACH;
		goto out_unlock;
	}
	switch (fault) {
	case MC_TRANSPORT_FAULT_REFUSE:
		r = -ECONNREFUSED;
		goto out_unlock;
	case MC_TRANSPORT_FAULT_DELAY:
		if (arg >= f->timeout_ms) {
			delay_ms = f->timeout_ms;
			r = -ETIMEDOUT;
			goto out_unlock;
		}
		delay_ms = arg;
		break;
	default:
		break;
	}
	pg = find_page(p, req->page_id);
	if (!pg) {
		r = -ENOENT;
		goto out_unlock;
	}
	if (pg->len != req->expected_size) {
		r = -ESTALE;
		goto out_unlock;
	}
	if (pg->crc32c != req->expected_crc32c) {
		r = -EIO;
		goto out_unlock;
	}
	switch (fault) {
	case MC_TRANSPORT_FAULT_DROP:
	case MC_TRANSPORT_FAULT_DEAD:
		/* partial bytes land, as they would from a dying socket */
		n = arg < len ? arg : len;
		memcpy(dst, pg->data + req->offset, n);
		if (fault == MC_TRANSPORT_FAULT_DEAD)
			p->dead = 1;
		r = -ECONNRESET;
		goto out_unlock;
	case MC_TRANSPORT_FAULT_TRUNCATE:
		n = arg ? arg : 1;
		len = n < len ? len - n : 0;
		break;
	default:
		break;
	}
	memcpy(dst, pg->data + req->offset, len);
	if (fault == MC_TRANSPORT_FAULT_CORRUPT && len)
		((uint8_t *)dst)[arg % len] ^= 0x5a;
	if (crc)
		*crc = mc_crc32c(*crc, dst, len);
	r = 0;
out_unlock:
	pthread_mutex_unlock(&f->lock);
	if (delay_ms)
		sleep_ms(delay_ms);
	return r;
}

static void fake_free(struct mc_transport *t)
{
	mc_transport_fake_free((struct mc_transport_fake *)t);
}

static const struct mc_transport_ops fake_ops = {
	.name = "fake",
	.read = fake_read,
	.free = fake_free,
};

int mc_transport_fake_new(struct mc_transport_fake **fp)
{
	struct mc_transport_fake *f;

	*fp = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->base.ops = &fake_ops;
	f->timeout_ms = 2000;
	pthread_mutex_init(&f->lock, NULL);
	*fp = f;
	return 0;
}

void mc_transport_fake_free(struct mc_transport_fake *f)
{
	struct fake_peer *p, *pnext;
	struct fake_page *pg, *gnext;

	if (!f)
		return;
	for (p = f->peers; p; p = pnext) {
		pnext = p->next;
		for (pg = p->pages; pg; pg = gnext) {
			gnext = pg->next;
			free(pg->data);
			free(pg);
		}
		free(p);
	}
	pthread_mutex_destroy(&f->lock);
	free(f);
}

struct mc_transport *mc_transport_fake_transport(struct mc_transport_fake *f)
{
	return &f->base;
}

void mc_transport_fake_set_timeout(struct mc_transport_fake *f,
				   unsigned timeout_ms)
{
	pthread_mutex_lock(&f->lock);
	f->timeout_ms = timeout_ms;
	pthread_mutex_unlock(&f->lock);
}

int mc_transport_fake_add_page(struct mc_transport_fake *f,
			       const struct mc_ns_replica *peer,
			       uint64_t page_id, const void *data, uint64_t len)
{
	struct fake_page *pg = NULL, *old;
	struct fake_peer *p;
	int r;

	pg = calloc(1, sizeof(*pg));
	if (!pg)
		return -ENOMEM;
	/* one byte more so that an empty page still has a buffer */
	pg->data = malloc(len + 1);
	if (!pg->data) {
		r = -ENOMEM;
		goto out_free;
	}
	if (len)
		memcpy(pg->data, data, len);
	pg->len = len;
	pg->page_id = page_id;
	pg->crc32c = mc_crc32c(0, pg->data, len);

	pthread_mutex_lock(&f->lock);
	p = find_peer_locked(f, peer->segment_id, 1);
	if (!p) {
		pthread_mutex_unlock(&f->lock);
		r = -ENOMEM;
		goto out_free;
	}
	old = find_page(p, page_id);
	if (old) {
		/* swap the bytes in place: the list stays as it is */
		uint8_t *d = old->data;

		old->data = pg->data;
		old->len = pg->len;
		old->crc32c = pg->crc32c;
		pg->data = d;
	} else {
		pg->next = p->pages;
		p->pages = pg;
		pg = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	r = 0;
out_free:
	if (pg)
		free(pg->data);
	free(pg);
	return r;
}

int mc_transport_fake_set_fault(struct mc_transport_fake *f,
				const struct mc_ns_replica *peer,
				enum mc_transport_fault fault, uint64_t arg)
{
	struct fake_peer *p;
	int r = -ENOMEM;

	pthread_mutex_lock(&f->lock);
	p = find_peer_locked(f, peer->segment_id, 1);
	if (p) {
		p->fault = fault;
		p->arg = arg;
		p->dead = 0;
		r = 0;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

unsigned mc_transport_fake_calls(struct mc_transport_fake *f,
				 const struct mc_ns_replica *peer)
{
	struct fake_peer *p;
	unsigned n = 0;

	pthread_mutex_lock(&f->lock);
	p = find_peer_locked(f, peer->segment_id, 0);
	if (p)
		n = p->calls;
	pthread_mutex_unlock(&f->lock);
	return n;
}
