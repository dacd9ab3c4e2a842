/*
 * transport_tcp.c - READ_PAGE over TCP, page bytes received with io_uring.
 *
 * Connections: a pool per peer (address and port), each opened with HELLO
 * and kept for the next read; any error that may have left bytes in flight
 * drops the connection rather than guess where the stream stands.  A read
 * on a pooled connection that the peer closed while it sat idle (the data
 * server times idle ones out) is retried once on a fresh connection.
 *
 * Receiving the bytes: the frame comes through src/wire_io (it may have
 * read a few page bytes past it: those come first), then the page in
 * chunks straight into dst.  Each chunk is an IORING_OP_RECV with
 * MSG_WAITALL, linked to an IORING_OP_LINK_TIMEOUT, and while the kernel
 * fills chunk k this thread checksums chunk k - 1, so verification costs
 * no pass of its own.  Measured on loopback (tests/bench/mc-bench-tcp.c)
 * this is also faster than one blocking recv(MSG_WAITALL) of the page: the
 * socket is held for short copies as data lands rather than for the whole
 * page.  Where io_uring is unavailable (kernel.io_uring_disabled, memlock
 * limits) a connection falls back to recv(2) in chunks, checksumming each.
 *
 * Lock order: t->lock, then nothing; no I/O under it.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "transport.h"
#include "wire_io.h"
#include "banned.h"

#define DEFAULT_TIMEOUT_MS 2000
#define DEFAULT_CONNS_PER_PEER 4
#define DEFAULT_CHUNK (512u << 10)
#define MIN_CHUNK (64u << 10)
#define RING_ENTRIES 4 /* one recv and its timeout in flight */

enum {
	UD_RECV = 1,
	UD_TIMEOUT = 2
};

struct tcp_conn {
	struct mc_wire_conn *wc;
	struct io_uring ring;
	int has_ring;
	uint64_t next_id; /* of our next request */
	struct tcp_conn *next; /* on its peer's idle list */
};

struct tcp_peer {
	char address[MC_WIRE_ADDR_MAX + 1];
	uint16_t port;
	struct tcp_conn *idle; /* protected by t->lock */
	unsigned nidle; /* protected by t->lock */
	struct tcp_peer *next; /* protected by t->lock */
};

struct transport_tcp {
	struct mc_transport base; /* first: the ops table casts back */
	unsigned timeout_ms;
	unsigned conns_per_peer;
	size_t chunk;
	unsigned flags;
	char name[MC_NAME_MAX + 1];
	pthread_mutex_t lock;
	/* a short list: one entry per host this one ever read from */
	struct tcp_peer *peers; /* protected by lock */
};

/* ----------------------------------------------------------- connections */

static void conn_close(struct tcp_conn *c)
{
	if (!c)
		return;
	if (c->has_ring)
		io_uring_queue_exit(&c->ring);
	mc_wire_conn_close(c->wc);
	free(c);
}

/* Dial, greet, and set up the ring: a connection ready for requests. */
static int conn_open(struct transport_tcp *t, const struct mc_ns_replica *peer,
		     struct tcp_conn **cp)
{
	struct tcp_conn *c;
	int fd, r;

	*cp = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	fd = mc_wire_dial(peer->address, peer->port, t->timeout_ms);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = mc_wire_conn_open(&c->wc, fd);
	if (r < 0) {
		close(fd);
		goto out;
	}
	mc_wire_conn_set_timeout(c->wc, t->timeout_ms);
	r = mc_wire_conn_hello(c->wc, t->name);
	if (r == -EPROTO)
		r = -EBADMSG; /* it answered HELLO with something else */
	if (r < 0)
		goto out;
	c->next_id = 1;
	if (!(t->flags & MC_TRANSPORT_TCP_PLAIN_RECV)) {
		r = io_uring_queue_init(RING_ENTRIES, &c->ring, 0);
		if (r == 0)
			c->has_ring = 1;
		else
			mc_log_ratelimited(
				MC_LOG_NOTICE,
				"transport: no io_uring for '%s' port %u (%s): receiving with recv(2), check kernel.io_uring_disabled and RLIMIT_MEMLOCK",
				peer->address, peer->port, mc_errname(r));
	}
	*cp = c;
	c = NULL;
	r = 0;
out:
	conn_close(c);
	return r;
}

/* Closed by the peer, or holding bytes nobody asked for: not reusable. */
static int conn_stale(struct tcp_conn *c)
{
	struct pollfd pfd = { .fd = mc_wire_conn_fd(c->wc),
			      .events = POLLIN | POLLRDHUP };

	return mc_wire_conn_buffered(c->wc) || poll(&pfd, 1, 0) != 0;
}

static struct tcp_peer *find_peer_locked(struct transport_tcp *t,
					 const struct mc_ns_replica *peer)
{
	struct tcp_peer *p;

	for (p = t->peers; p; p = p->next)
		if (p->port == peer->port &&
		    strcmp(p->address, peer->address) == 0)
			return p;
	return NULL;
}

/* An idle connection to peer, or NULL: take it off the list. */
static struct tcp_conn *conn_get_idle(struct transport_tcp *t,
				      const struct mc_ns_replica *peer)
{
	struct tcp_conn *c = NULL;
	struct tcp_peer *p;

	for (;;) {
		pthread_mutex_lock(&t->lock);
		p = find_peer_locked(t, peer);
		c = p ? p->idle : NULL;
		if (c) {
			p->idle = c->next;
			p->nidle--;
			c->next = NULL;
		}
		pthread_mutex_unlock(&t->lock);
		if (!c || !conn_stale(c))
			break;
		conn_close(c);
	}
	return c;
}

/* Back on the idle list, or closed when the peer has enough idle ones. */
static void conn_put(struct transport_tcp *t, const struct mc_ns_replica *peer,
		     struct tcp_conn *c)
{
	struct tcp_peer *p;

	pthread_mutex_lock(&t->lock);
	p = find_peer_locked(t, peer);
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (p) {
			memcpy(p->address, peer->address, sizeof(p->address));
			p->address[sizeof(p->address) - 1] = '\0';
			p->port = peer->port;
			p->next = t->peers;
			t->peers = p;
		}
	}
	if (p && p->nidle < t->conns_per_peer) {
		c->next = p->idle;
		p->idle = c;
		p->nidle++;
		c = NULL;
	}
	pthread_mutex_unlock(&t->lock);
	conn_close(c);
}

/* ------------------------------------------------------------- receiving */

/*
 * Reap n completions.  Only for a ring whose requests are sure to end: a
 * recv is bounded by its linked timeout, or by a shutdown of its socket.
 * *recv_res gets the recv's result, *timed_out whether its timeout fired.
 */
static int ring_reap(struct tcp_conn *c, int n, int *recv_res, int *timed_out)
{
	struct io_uring_cqe *cqe;
	int r = 0;

	while (n > 0) {
		r = io_uring_wait_cqe(&c->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		if (io_uring_cqe_get_data64(cqe) == UD_RECV)
			*recv_res = cqe->res;
		else if (cqe->res == -ETIME)
			*timed_out = 1;
		io_uring_cqe_seen(&c->ring, cqe);
		n--;
	}
	return r;
}

/* Start receiving n bytes into p: a recv, bounded by a linked timeout. */
static int ring_submit(struct tcp_conn *c, void *p, size_t n,
		       struct __kernel_timespec *ts)
{
	struct io_uring_sqe *sqe, *tsqe;
	int r, res = 0, timed_out = 0;

	/* the ring is empty here: each step reaps all it submitted */
	sqe = io_uring_get_sqe(&c->ring);
	tsqe = io_uring_get_sqe(&c->ring);
	if (!sqe || !tsqe)
		return -EBUSY;
	io_uring_prep_recv(sqe, mc_wire_conn_fd(c->wc), p, n, MSG_WAITALL);
	io_uring_sqe_set_data64(sqe, UD_RECV);
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_prep_link_timeout(tsqe, ts, 0);
	io_uring_sqe_set_data64(tsqe, UD_TIMEOUT);
	r = io_uring_submit(&c->ring);
	if (r == 2)
		return 0;
	if (r == 1) {
		/* a recv without its timeout: end it by shutting the socket,
		 * so nothing writes into p once we return */
		mc_wire_conn_shutdown(c->wc);
		ring_reap(c, 1, &res, &timed_out);
		r = -EIO;
	}
	return r < 0 ? r : -EIO;
}

/*
 * Wait for the recv submitted last: the bytes it received (> 0), or
 * -errno.  Both completions are reaped before dst may be touched by
 * anyone else: the kernel writes into it until then.
 */
static int ring_wait(struct tcp_conn *c)
{
	int res = -EIO, timed_out = 0, r;

	r = ring_reap(c, 2, &res, &timed_out);
	if (r < 0) {
		/* cannot happen with a sane ring; the connection is dropped
		 * and the socket shut so the recv cannot outlive the call */
		mc_wire_conn_shutdown(c->wc);
		return r;
	}
	if (timed_out || res == -EAGAIN)
		return -ETIMEDOUT;
	/* 0: the stream ended */
	return res == 0 ? -ECONNRESET : res;
}

/*
 * len page bytes from the socket into dst with the checksum continued in
 * *crc: chunk k lands while chunk k - 1 is checksummed.  MSG_WAITALL
 * makes one recv fill a chunk; a short one (an older kernel, or the
 * stream ending) is continued, and ends at the stream's end.
 */
static int recv_ring(struct transport_tcp *t, struct tcp_conn *c, uint8_t *dst,
		     uint64_t len, uint32_t *crc)
{
	struct __kernel_timespec ts = {
		.tv_sec = t->timeout_ms / 1000,
		.tv_nsec = (long long)(t->timeout_ms % 1000) * 1000000,
	};
	uint64_t off = 0, prev_off = 0;
	size_t n, got, prev_n = 0;
	int r = 0;

	while (off < len && r == 0) {
		n = len - off < t->chunk ? (size_t)(len - off) : t->chunk;
		for (got = 0; got < n;) {
			r = ring_submit(c, dst + off + got, n - got, &ts);
			if (r < 0)
				break;
			if (crc && prev_n)
				*crc = mc_crc32c(*crc, dst + prev_off, prev_n);
			prev_n = 0;
			r = ring_wait(c);
			if (r < 0)
				break;
			got += (size_t)r;
			r = 0;
		}
		prev_off = off;
		prev_n = n;
		off += n;
	}
	if (r == 0 && crc && prev_n)
		*crc = mc_crc32c(*crc, dst + prev_off, prev_n);
	return r;
}

/* The same with recv(2), for connections without a ring. */
static int recv_plain(struct transport_tcp *t, struct tcp_conn *c, uint8_t *dst,
		      uint64_t len, uint32_t *crc)
{
	uint64_t off = 0;
	size_t n;
	int r = 0;

	while (off < len) {
		n = len - off < t->chunk ? (size_t)(len - off) : t->chunk;
		r = mc_wire_conn_recv_data(c->wc, dst + off, n);
		if (r < 0)
			break;
		if (crc)
			*crc = mc_crc32c(*crc, dst + off, n);
		off += n;
	}
	return r;
}

static int recv_page(struct transport_tcp *t, struct tcp_conn *c, uint8_t *dst,
		     uint64_t len, uint32_t *crc)
{
	size_t ahead = mc_wire_conn_buffered(c->wc);
	int r;

	/* bytes that came in with the frame are wire_io's: take them first */
	if (ahead > len)
		ahead = (size_t)len;
	if (ahead) {
		r = mc_wire_conn_recv_data(c->wc, dst, ahead);
		if (r < 0)
			return r;
		if (crc)
			*crc = mc_crc32c(*crc, dst, ahead);
	}
	if (c->has_ring)
		return recv_ring(t, c, dst + ahead, len - ahead, crc);
	return recv_plain(t, c, dst + ahead, len - ahead, crc);
}

/* ------------------------------------------------------------ a request */

enum exchange_state {
	EX_NO_REPLY, /* failed before any byte of the reply could be known */
	EX_KEEP, /* done (well or with a status): the connection is fine */
	EX_DROP, /* the stream is lost */
};

/*
 * One READ_PAGE on c.  *state says what became of the connection.  The
 * caller's crc is updated only when every byte arrived.
 */
static int exchange(struct transport_tcp *t, struct tcp_conn *c,
		    const struct mc_wire_read_page *req, void *dst,
		    uint32_t *crc, enum exchange_state *state)
{
	struct mc_wire_msg m = { .type = MC_WIRE_READ_PAGE };
	struct mc_wire_header h;
	uint64_t id = c->next_id++;
	uint32_t got = crc ? *crc : 0;
	int dstatus, r;

	*state = EX_NO_REPLY;
	m.u.read_page = *req;
	r = mc_wire_conn_send(c->wc, &m, id);
	if (r == -EINVAL || r == -EMSGSIZE || r == -ENOSYS) {
		/* the encoder refused: nothing was sent */
		*state = EX_KEEP;
		goto out;
	}
	if (r < 0)
		goto out;
	memset(&m, 0, sizeof(m));
	r = mc_wire_conn_recv(c->wc, &h, &m, &dstatus);
	if (r < 0) {
		if (r == -EPROTO)
			r = -EBADMSG;
		goto out;
	}
	*state = EX_DROP;
	if (dstatus < 0 || h.id != id ||
	    h.type != (MC_WIRE_READ_PAGE | MC_WIRE_REPLY)) {
		/* only this request is in flight: anything else is garbage */
		r = -EBADMSG;
		goto out_release;
	}
	if (m.status < 0) {
		r = m.status;
		/* the peer's verdicts on the page; anything else (EPROTO,
		 * ENOSYS, its decoder's status) says we disagree on more */
		if (r == -ENOENT || r == -ESTALE || r == -EIO)
			*state = EX_KEEP;
		goto out_release;
	}
	if (m.u.read_page_reply.length != req->length) {
		r = -EBADMSG;
		goto out_release;
	}
	r = recv_page(t, c, dst, req->length, crc ? &got : NULL);
	if (r < 0)
		goto out_release;
	if (crc)
		*crc = got;
	*state = EX_KEEP;
out_release:
	mc_wire_msg_release(&m);
out:
	return r;
}

static int tcp_read(struct mc_transport *tr, const struct mc_ns_replica *peer,
		    const struct mc_wire_read_page *req, void *dst,
		    uint32_t *crc)
{
	struct transport_tcp *t = (struct transport_tcp *)tr;
	enum exchange_state state;
	struct tcp_conn *c;
	int r, reused;

	c = conn_get_idle(t, peer);
	reused = c != NULL;
	if (!c) {
		r = conn_open(t, peer, &c);
		if (r < 0)
			goto out;
	}
	r = exchange(t, c, req, dst, crc, &state);
	if (r < 0 && state == EX_NO_REPLY && reused && r != -ETIMEDOUT) {
		/* the peer closed it while idle, between our check and the
		 * send: a read is safe to repeat, once, on a fresh one */
		conn_close(c);
		c = NULL;
		r = conn_open(t, peer, &c);
		if (r < 0)
			goto out;
		r = exchange(t, c, req, dst, crc, &state);
	}
	if (state == EX_KEEP) {
		conn_put(t, peer, c);
		c = NULL;
	}
out:
	conn_close(c);
	return r;
}

static void tcp_free(struct mc_transport *tr)
{
	struct transport_tcp *t = (struct transport_tcp *)tr;
	struct tcp_peer *p, *pnext;
	struct tcp_conn *c, *cnext;

	for (p = t->peers; p; p = pnext) {
		pnext = p->next;
		for (c = p->idle; c; c = cnext) {
			cnext = c->next;
			conn_close(c);
		}
		free(p);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const struct mc_transport_ops tcp_ops = {
	.name = "tcp",
	.read = tcp_read,
	.free = tcp_free,
};

int mc_transport_tcp_new(struct mc_transport **tp,
			 const struct mc_transport_tcp_params *p)
{
	static const struct mc_transport_tcp_params defaults;
	struct transport_tcp *t;

	*tp = NULL;
	if (!p)
		p = &defaults;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->base.ops = &tcp_ops;
	t->timeout_ms = p->timeout_ms ? p->timeout_ms : DEFAULT_TIMEOUT_MS;
	t->conns_per_peer = p->conns_per_peer ? p->conns_per_peer :
						DEFAULT_CONNS_PER_PEER;
	t->chunk = p->recv_chunk ? p->recv_chunk : DEFAULT_CHUNK;
	if (t->chunk < MIN_CHUNK)
		t->chunk = MIN_CHUNK;
	t->flags = p->flags;
	snprintf(t->name, sizeof(t->name), "%s",
		 p->name ? p->name : "mooncaked");
	pthread_mutex_init(&t->lock, NULL);
	*tp = &t->base;
	return 0;
}
