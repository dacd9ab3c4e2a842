/*
 * data_server.c - READ_PAGE served from this host's pool files.
 *
 * Threads: one accepts; each connection has its own, which answers its
 * requests in order and blocks only on that connection (every wait bounded
 * by a timeout), so a slow or silent peer costs one thread for a while and
 * never the server.  A finished connection thread parks itself on the done
 * list, and the accept thread (or close) joins it.
 *
 * Lock order: s->lock, then nothing; s->cache_lock, then nothing.  No
 * blocking call under either (close() shuts sockets down under s->lock, so
 * that no connection thread frees one meanwhile: shutdown(2) never waits).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "crc32c.h"
#include "data_server.h"
#include "log.h"
#include "wire_io.h"
#include "banned.h"

/* Checksums remembered, direct-mapped by page id: bounded, no eviction
 * bookkeeping, and a collision costs only one recomputation. */
#define CRC_CACHE_BITS 12
#define CRC_CACHE_SLOTS (1u << CRC_CACHE_BITS)
#define CRC_BUF (256u << 10) /* checksum a cold page in cache-sized steps */

struct crc_slot {
	uint64_t page_id; /* 0: empty (page ids start at 1) */
	uint64_t size;
	uint32_t crc32c;
};

struct ds_conn {
	struct mc_data_server *s;
	struct mc_wire_conn *wc;
	pthread_t thread;
	char peer[INET6_ADDRSTRLEN + 16]; /* "address port N", for logs */
	uint8_t *buf; /* CRC_BUF bytes, allocated at the first cold page */
	struct ds_conn *next; /* on s->conns or s->done; protected by s->lock */
};

struct mc_data_server {
	struct mc_page_source src;
	unsigned max_conns;
	unsigned timeout_ms;
	unsigned idle_timeout_ms;
	int lfd;
	int wake_fd; /* eventfd: tells the accept thread to stop */
	uint16_t port;
	pthread_t accept_thread;

	pthread_mutex_t lock;
	pthread_cond_t changed; /* a thread moved to done */
	struct ds_conn *conns; /* serving; protected by lock */
	struct ds_conn *done; /* finished, to join; protected by lock */
	unsigned nconns; /* threads not yet on done; protected by lock */
	struct mc_data_server_stats stats; /* protected by lock */

	pthread_mutex_t cache_lock;
	struct crc_slot cache[CRC_CACHE_SLOTS]; /* protected by cache_lock */
};

static void peer_text(int fd, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(out, outlen, "%s port %u", host, port);
}

/* ------------------------------------------------------------- checksums */

static struct crc_slot *slot_of(struct mc_data_server *s, uint64_t page_id)
{
	/* Fibonacci hashing: page ids are sequential, slots should not be */
	return &s->cache[(page_id * 0x9e3779b97f4a7c15u) >>
			 (64 - CRC_CACHE_BITS)];
}

/*
 * The CRC-32C of the size bytes of fd: computed once, then remembered.
 * Read with pread(2) into the connection's buffer rather than mapped: a
 * file cut short under us (a damaged pool) then reads short and fails
 * with -ESTALE, where a mapping would raise SIGBUS in the daemon.
 */
static int page_crc(struct ds_conn *c, uint64_t page_id, int fd, uint64_t size,
		    uint32_t *crc)
{
	struct mc_data_server *s = c->s;
	struct crc_slot *slot = slot_of(s, page_id);
	uint64_t off = 0;
	uint32_t v = 0;
	ssize_t n;
	int hit;

	pthread_mutex_lock(&s->cache_lock);
	hit = slot->page_id == page_id && slot->size == size;
	if (hit)
		*crc = slot->crc32c;
	pthread_mutex_unlock(&s->cache_lock);
	if (hit)
		return 0;

	if (!c->buf) {
		c->buf = malloc(CRC_BUF);
		if (!c->buf)
			return -ENOMEM;
	}
	while (off < size) {
		n = pread(fd, c->buf,
			  size - off < CRC_BUF ? size - off : CRC_BUF,
			  (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ESTALE;
		v = mc_crc32c(v, c->buf, (size_t)n);
		off += (uint64_t)n;
	}
	/* two threads may both compute a cold page: same answer, no harm */
	pthread_mutex_lock(&s->cache_lock);
	slot->page_id = page_id;
	slot->size = size;
	slot->crc32c = v;
	pthread_mutex_unlock(&s->cache_lock);
	*crc = v;
	return 0;
}

/* ------------------------------------------------------------ one request */

/*
 * Send the reply and [off, off + len) of the page open on fd (size bytes).
 * Through a mapping when it can: copying out of it is twice as fast as
 * sendfile(2) from a huge-page tmpfs.  A committed page is never
 * truncated (pages are written once), so the mapping cannot fault past
 * its end; anything else goes through sendfile.
 */
static int send_range(struct ds_conn *c, const struct mc_wire_header *h,
		      const struct mc_wire_msg *m, int fd, uint64_t size,
		      uint64_t off, uint64_t len)
{
	void *map;
	int r;

	if (len == 0 || size > SIZE_MAX || !c->s->src.immutable)
		return mc_wire_conn_send_data(c->wc, m, h->id, fd, off, len);
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return mc_wire_conn_send_data(c->wc, m, h->id, fd, off, len);
	r = mc_wire_conn_send_buf(c->wc, m, h->id, (const uint8_t *)map + off,
				  len);
	munmap(map, (size_t)size);
	return r;
}

static int reply_status(struct ds_conn *c, const struct mc_wire_header *h,
			int status)
{
	struct mc_wire_msg m = {
		.type = h->type | MC_WIRE_REPLY,
		.status = status,
	};

	return mc_wire_conn_send(c->wc, &m, h->id);
}

/*
 * Find the page, judge it against what the reader was told at commit,
 * then send the status and the range.  Returns the send's result: < 0
 * means the connection is lost.
 */
static int serve_read_page(struct ds_conn *c, const struct mc_wire_header *h,
			   const struct mc_wire_read_page *rq)
{
	struct mc_data_server *s = c->s;
	struct mc_wire_msg m = { .type = MC_WIRE_READ_PAGE | MC_WIRE_REPLY };
	uint64_t size = 0;
	uint32_t crc = 0;
	int fd = -1, r;

	r = s->src.open(s->src.ctx, rq->page_id, &fd, &size);
	if (r < 0) {
		fd = -1;
		goto out_reply;
	}
	if (size != rq->expected_size) {
		mc_log_ratelimited(
			MC_LOG_WARNING,
			"data server: page %016" PRIx64 " here holds %" PRIu64
			" bytes but %s expects %" PRIu64
			" (ESTALE): not served, the reader tries another copy",
			rq->page_id, size, c->peer, rq->expected_size);
		r = -ESTALE;
		goto out_reply;
	}
	/* the checksum recorded with the page saves a read pass */
	if (!s->src.crc || s->src.crc(s->src.ctx, fd, &crc) < 0)
		r = page_crc(c, rq->page_id, fd, size, &crc);
	if (r < 0) {
		mc_log_ratelimited(
			MC_LOG_ERR,
			"data server: cannot checksum page %016" PRIx64
			" (%s): not served, check the pool directory",
			rq->page_id, mc_errname(r));
		goto out_reply;
	}
	if (crc != rq->expected_crc32c) {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "data server: page %016" PRIx64
				   " here has crc32c %08" PRIx32
				   " but was committed with %08" PRIx32
				   " (EIO): the copy is damaged and not served",
				   rq->page_id, crc, rq->expected_crc32c);
		r = -EIO;
		goto out_reply;
	}
	/* counted before the bytes leave, so a reader that has them sees
	 * them counted */
	pthread_mutex_lock(&s->lock);
	s->stats.pages_sent++;
	s->stats.bytes_sent += rq->length;
	pthread_mutex_unlock(&s->lock);
	m.u.read_page_reply.length = rq->length;
	r = send_range(c, h, &m, fd, size, rq->offset, rq->length);
	goto out_close;
out_reply:
	r = reply_status(c, h, r);
out_close:
	if (fd >= 0)
		close(fd);
	return r;
}

/* ---------------------------------------------------------- a connection */

/*
 * Wait for the next request to start: 1 when bytes are there, 0 after
 * idle_timeout_ms of silence or a hang-up, -errno.
 */
static int wait_request(struct ds_conn *c)
{
	struct pollfd pfd = { .fd = mc_wire_conn_fd(c->wc), .events = POLLIN };
	int n;

	if (mc_wire_conn_buffered(c->wc))
		return 1;
	do
		n = poll(&pfd, 1, (int)c->s->idle_timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	/* a hang-up with nothing to read ends as EOF in the receive */
	return n > 0;
}

static void serve(struct ds_conn *c)
{
	struct mc_wire_header h;
	struct mc_wire_msg m;
	int helloed = 0, dstatus, r;

	mc_wire_conn_set_timeout(c->wc, c->s->timeout_ms);
	for (;;) {
		r = wait_request(c);
		if (r <= 0)
			break;
		memset(&m, 0, sizeof(m));
		r = mc_wire_conn_recv(c->wc, &h, &m, &dstatus);
		if (r == -ETIMEDOUT) {
			mc_log_ratelimited(
				MC_LOG_NOTICE,
				"data server: dropping the connection from %s (ETIMEDOUT): it went silent inside a frame",
				c->peer);
			break;
		}
		if (r < 0) {
			if (r != -ECONNRESET)
				mc_log_ratelimited(
					MC_LOG_NOTICE,
					"data server: dropping the connection from %s (%s): it broke the framing",
					c->peer, mc_errname(r));
			break;
		}
		if (h.type & MC_WIRE_REPLY) {
			/* we never ask, so a reply is out of turn */
			mc_log_ratelimited(
				MC_LOG_NOTICE,
				"data server: dropping the connection from %s: it sent a reply to nothing",
				c->peer);
			mc_wire_msg_release(&m);
			break;
		}
		if (!helloed && h.type == MC_WIRE_HELLO && dstatus == 0) {
			r = mc_wire_conn_answer_hello(c->wc, &h, &m);
			helloed = r == 0;
		} else if (dstatus < 0) {
			/* the header framed it: answer, and go on */
			r = reply_status(c, &h, dstatus);
		} else if (!helloed) {
			r = reply_status(c, &h, -EPROTO);
		} else if (h.type != MC_WIRE_READ_PAGE) {
			r = reply_status(c, &h, -ENOSYS);
		} else {
			pthread_mutex_lock(&c->s->lock);
			c->s->stats.requests++;
			pthread_mutex_unlock(&c->s->lock);
			r = serve_read_page(c, &h, &m.u.read_page);
		}
		mc_wire_msg_release(&m);
		if (r < 0)
			break;
	}
}

static void *conn_main(void *arg)
{
	struct ds_conn *c = arg;
	struct mc_data_server *s = c->s;
	struct ds_conn **pp;

	serve(c);
	pthread_mutex_lock(&s->lock);
	for (pp = &s->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_mutex_unlock(&s->lock);
	/* off the serving list first: close() shuts down only those */
	mc_wire_conn_close(c->wc);
	c->wc = NULL;
	pthread_mutex_lock(&s->lock);
	c->next = s->done;
	s->done = c;
	s->nconns--;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Join and free the finished connections. */
static void reap(struct mc_data_server *s)
{
	struct ds_conn *list, *next;

	pthread_mutex_lock(&s->lock);
	list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; list; list = next) {
		next = list->next;
		pthread_join(list->thread, NULL);
		free(list->buf);
		free(list);
	}
}

static void start_conn(struct mc_data_server *s, int fd)
{
	struct ds_conn *c;
	char peer[sizeof(c->peer)];
	int r;

	peer_text(fd, peer, sizeof(peer));
	pthread_mutex_lock(&s->lock);
	r = s->nconns >= s->max_conns ? -EMFILE : 0;
	if (r < 0)
		s->stats.refused++;
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		mc_log_ratelimited(
			MC_LOG_WARNING,
			"data server: refusing a connection from %s: %u connections open already: raise max_conns or find who holds them",
			peer, s->max_conns);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->s = s;
	memcpy(c->peer, peer, sizeof(peer));
	r = mc_wire_conn_open(&c->wc, fd);
	if (r < 0) {
		close(fd);
		free(c);
		return;
	}
	/* listed before it runs, so it can always find itself to leave */
	pthread_mutex_lock(&s->lock);
	c->next = s->conns;
	s->conns = c;
	s->nconns++;
	r = pthread_create(&c->thread, NULL, conn_main, c);
	if (r) {
		s->conns = c->next;
		s->nconns--;
	} else {
		s->stats.accepted++;
	}
	pthread_mutex_unlock(&s->lock);
	if (r) {
		mc_log_ratelimited(
			MC_LOG_ERR,
			"data server: cannot start a thread for %s (%s): connection dropped, check the thread limit",
			peer, mc_errname(r));
		mc_wire_conn_close(c->wc);
		free(c);
	}
}

static void *accept_main(void *arg)
{
	struct mc_data_server *s = arg;
	struct pollfd pfd[2] = {
		{ .fd = s->lfd, .events = POLLIN },
		{ .fd = s->wake_fd, .events = POLLIN },
	};
	int fd, n;

	for (;;) {
		reap(s);
		/* wake now and then to join finished threads */
		n = poll(pfd, 2, 1000);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (n <= 0 || !(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				mc_log_ratelimited(
					MC_LOG_ERR,
					"data server: cannot accept on port %u (%s): raise the open files limit",
					s->port, mc_errname(errno));
				/* the backlog stays readable: do not spin */
				poll(NULL, 0, 100);
			}
			continue;
		}
		start_conn(s, fd);
	}
	return NULL;
}

/* ------------------------------------------------------------ life cycle */

/* Free what open built so far (no thread running); NULL is fine. */
static void server_free(struct mc_data_server *s)
{
	if (!s)
		return;
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->lfd >= 0)
		close(s->lfd);
	pthread_mutex_destroy(&s->cache_lock);
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int mc_data_server_open(struct mc_data_server **sp,
			const struct mc_data_server_params *p,
			const struct mc_page_source *src)
{
	const char *addr = p && p->address && *p->address ? p->address : "*";
	struct mc_data_server *s;
	int r;

	*sp = NULL;
	if (!p || !src || !src->open)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->src = *src;
	s->max_conns = p->max_conns ? p->max_conns : 64;
	s->timeout_ms = p->timeout_ms ? p->timeout_ms : 2000;
	s->idle_timeout_ms = p->idle_timeout_ms ? p->idle_timeout_ms : 60000;
	s->lfd = -1;
	s->wake_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	pthread_mutex_init(&s->cache_lock, NULL);

	r = mc_wire_listen(p->address, p->port, 128);
	if (r == -EADDRINUSE) {
		mc_log(MC_LOG_ERR,
		       "data server: cannot listen on '%s' port %u (EADDRINUSE): another daemon uses it; stop it or choose another data port",
		       addr, p->port);
		goto out;
	}
	if (r < 0) {
		mc_log_errno(
			MC_LOG_ERR, r,
			"data server: cannot listen on '%s' port %u: check the address",
			addr, p->port);
		goto out;
	}
	s->lfd = r;
	r = mc_wire_local_port(s->lfd, &s->port);
	if (r < 0)
		goto out;
	s->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (s->wake_fd < 0) {
		r = -errno;
		goto out;
	}
	r = -pthread_create(&s->accept_thread, NULL, accept_main, s);
	if (r < 0)
		goto out;
	*sp = s;
	s = NULL;
	r = 0;
out:
	server_free(s);
	return r;
}

uint16_t mc_data_server_port(const struct mc_data_server *s)
{
	return s->port;
}

void mc_data_server_get_stats(struct mc_data_server *s,
			      struct mc_data_server_stats *st)
{
	pthread_mutex_lock(&s->lock);
	*st = s->stats;
	st->open = s->nconns;
	pthread_mutex_unlock(&s->lock);
}

void mc_data_server_close(struct mc_data_server *s)
{
	uint64_t one = 1;
	struct ds_conn *c;

	if (!s)
		return;
	if (write(s->wake_fd, &one, sizeof(one)) < 0)
		mc_log_errno(
			MC_LOG_ERR, -errno,
			"data server: cannot wake the accept thread of port %u: close hangs",
			s->port);
	pthread_join(s->accept_thread, NULL);
	/* new connections are refused from here on */
	close(s->lfd);
	s->lfd = -1;

	pthread_mutex_lock(&s->lock);
	for (c = s->conns; c; c = c->next)
		mc_wire_conn_shutdown(c->wc);
	/* every thread on the done list, where reap() joins it */
	while (s->nconns)
		pthread_cond_wait(&s->changed, &s->lock);
	pthread_mutex_unlock(&s->lock);
	reap(s);
	server_free(s);
}
