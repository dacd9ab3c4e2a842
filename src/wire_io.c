/*
 * wire_io.c - frames over a blocking socket.
 *
 * Receiving: bytes are read into a per-connection buffer (64 KiB, grown
 * to one whole frame of MC_WIRE_MAX_PAYLOAD when a bigger one comes), as
 * many as the socket has, so pipelined requests cost one recv() between
 * them.  Page bytes after a READ_PAGE reply do not go through the buffer:
 * mc_wire_conn_recv_data() takes what the last read happened to buffer
 * (at most one buffer's worth) and then receives the rest with
 * MSG_WAITALL straight into the caller's memory, never past its end.
 *
 * Sending: frames are encoded into a send buffer under the send lock and
 * written from there, so concurrent senders never interleave and queued
 * replies leave in one send().  After a failed write the stream is lost;
 * the error sticks, so every later send fails the same way.
 *
 * Timeouts are the socket's own (SO_RCVTIMEO, SO_SNDTIMEO): a wait fails
 * when no byte moved for the timeout, and MSG_WAITALL and sendfile() keep
 * their one-call-per-chunk efficiency (a poll() before each call would
 * split them).  A timed out call returns what it moved, so a peer that
 * keeps sending, however slowly, is not timed out.  Signals: every call
 * that fails with EINTR is simply made again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "wire_io.h"
#include "banned.h"

#define BUF_START (64U << 10)
#define FRAME_MAX (MC_WIRE_HEADER_SIZE + MC_WIRE_MAX_PAYLOAD)
/* page bytes asked of one recv()/sendfile() call */
#define DATA_CHUNK (1U << 30)
/* HELLO frames carry version 1 in every version of the protocol */
#define HELLO_VERSION 1

struct mc_wire_conn {
	int fd;
	_Atomic uint16_t version; /* agreed by HELLO; 0 before */

	/* the reader thread's alone */
	uint8_t *rbuf;
	size_t rcap;
	size_t rpos; /* first byte not consumed */
	size_t rlen; /* end of the bytes received */

	pthread_mutex_t send_lock;
	uint8_t *sbuf; /* protected by send_lock */
	size_t scap; /* protected by send_lock */
	size_t slen; /* protected by send_lock: bytes queued */
	int send_err; /* protected by send_lock: sticky once a write failed */
};

/* errno of a socket call as we report it: a timed out wait is -ETIMEDOUT */
static int io_error(int e)
{
	if (e == EAGAIN || e == EWOULDBLOCK)
		return -ETIMEDOUT;
	return -e;
}

/* ------------------------------------------------------------ addresses */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* getaddrinfo()'s errors as errnos: a name that does not resolve is bad */
static int resolve_error(int e)
{
	switch (e) {
	case EAI_SYSTEM:
		return errno ? -errno : -EIO;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_AGAIN:
		/* the resolver is unreachable now: as a host is, retry later */
		return -EHOSTUNREACH;
	default:
		return -EINVAL;
	}
}

static int resolve(const char *host, uint16_t port, int flags,
		   struct addrinfo **out)
{
	struct addrinfo hints = { 0 };
	char serv[8];
	int e;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | flags;
	snprintf(serv, sizeof(serv), "%u", port);
	e = getaddrinfo(host, serv, &hints, out);
	if (e != 0) {
		*out = NULL;
		return resolve_error(e);
	}
	return 0;
}

/* Wait until a non-blocking connect() finished, by deadline (0: none) */
static int connect_wait(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int64_t left;
	int timeout, n, err = 0;

	for (;;) {
		timeout = -1;
		if (deadline) {
			left = deadline - now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		n = poll(&pfd, 1, timeout);
		if (n > 0)
			break;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int dial_one(const struct addrinfo *ai, int64_t deadline)
{
	int fd, flags, one = 1, r;

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		r = -errno;
		/* interrupted, it goes on in the background all the same */
		if (r != -EINPROGRESS && r != -EINTR)
			goto out_close;
		r = connect_wait(fd, deadline);
		if (r < 0)
			goto out_close;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		r = -errno;
		goto out_close;
	}
	/* frames are whole when written: waiting to fill a segment only delays */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		r = -errno;
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return r;
}

int mc_wire_dial(const char *host, uint16_t port, unsigned timeout_ms)
{
	struct addrinfo *res = NULL, *ai;
	int64_t deadline = 0;
	int r;

	if (!host || !*host || port == 0)
		return -EINVAL;
	if (timeout_ms)
		deadline = now_ms() + timeout_ms;
	r = resolve(host, port, 0, &res);
	if (r < 0)
		return r;
	/* every address in turn; the last one's error says why none took */
	r = -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		r = dial_one(ai, deadline);
		if (r >= 0 || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return r;
}

static int listen_one(int family, const struct sockaddr *sa, socklen_t salen,
		      int backlog)
{
	int fd, one = 1, zero = 0, r;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
		r = -errno;
		goto out_close;
	}
	/* "every address" is one socket for both families */
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY,
					     &zero, sizeof(zero)) < 0) {
		r = -errno;
		goto out_close;
	}
	if (bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0) {
		r = -errno;
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return r;
}

int mc_wire_listen(const char *addr, uint16_t port, int backlog)
{
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_in6 any6 = { 0 };
	struct sockaddr_in any4 = { 0 };
	int r;

	if (!addr || !*addr) {
		any6.sin6_family = AF_INET6;
		any6.sin6_addr = in6addr_any;
		any6.sin6_port = htons(port);
		r = listen_one(AF_INET6, (struct sockaddr *)&any6, sizeof(any6),
			       backlog);
		/* a host without IPv6 still listens on every IPv4 address */
		if (r >= 0 || r == -EADDRINUSE || r == -EACCES)
			return r;
		any4.sin_family = AF_INET;
		any4.sin_addr.s_addr = htonl(INADDR_ANY);
		any4.sin_port = htons(port);
		return listen_one(AF_INET, (struct sockaddr *)&any4,
				  sizeof(any4), backlog);
	}
	r = resolve(addr, port, AI_PASSIVE, &res);
	if (r < 0)
		return r;
	r = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next) {
		r = listen_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen,
			       backlog);
		if (r >= 0)
			break;
	}
	freeaddrinfo(res);
	return r;
}

int mc_wire_local_port(int fd, uint16_t *port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	*port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		*port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		return -EINVAL;
	return 0;
}

/* 1..65535 in decimal, nothing else */
static int parse_port(const char *s, uint16_t *port)
{
	unsigned v = 0;
	size_t n;

	for (n = 0; s[n] >= '0' && s[n] <= '9'; n++) {
		if (n == 5)
			return -EINVAL;
		v = v * 10 + (unsigned)(s[n] - '0');
	}
	if (n == 0 || s[n] != '\0' || v == 0 || v > UINT16_MAX)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int mc_wire_parse_hostport(const char *s, uint16_t default_port, char *host,
			   size_t hostlen, uint16_t *port)
{
	const char *h, *end, *colon, *p = NULL;
	uint16_t v = default_port;
	size_t hlen;

	if (hostlen)
		host[0] = '\0';
	*port = 0;
	if (!s)
		return -EINVAL;
	if (s[0] == '[') {
		h = s + 1;
		end = strchr(h, ']');
		if (!end)
			return -EINVAL;
		if (end[1] == ':')
			p = end + 2;
		else if (end[1] != '\0')
			return -EINVAL;
	} else {
		h = s;
		colon = strchr(s, ':');
		if (colon && !strchr(colon + 1, ':')) {
			end = colon;
			p = colon + 1;
		} else {
			/* no port, or a bare IPv6 literal */
			end = s + strlen(s);
		}
	}
	hlen = (size_t)(end - h);
	if (hlen == 0 || hlen >= hostlen || memchr(h, '[', hlen) ||
	    memchr(h, ']', hlen))
		return -EINVAL;
	if (p && parse_port(p, &v) < 0)
		return -EINVAL;
	if (v == 0)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = v;
	return 0;
}

/* "address:port" of the peer, for logs */
static const char *peer_name(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN];
	const void *a;
	uint16_t port;

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		goto out_unknown;
	if (ss.ss_family == AF_INET) {
		a = &((struct sockaddr_in *)&ss)->sin_addr;
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else {
		goto out_unknown;
	}
	if (!inet_ntop(ss.ss_family, a, addr, sizeof(addr)))
		goto out_unknown;
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", addr,
		 port);
	return buf;

out_unknown:
	snprintf(buf, len, "the local peer");
	return buf;
}

/* ----------------------------------------------------------- connection */

int mc_wire_conn_open(struct mc_wire_conn **cp, int fd)
{
	struct mc_wire_conn *c;
	int r = -ENOMEM;

	*cp = NULL;
	if (fd < 0)
		return -EBADF;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->rbuf = malloc(BUF_START);
	c->sbuf = malloc(BUF_START);
	if (!c->rbuf || !c->sbuf)
		goto out_free;
	c->rcap = BUF_START;
	c->scap = BUF_START;
	r = -pthread_mutex_init(&c->send_lock, NULL);
	if (r < 0)
		goto out_free;
	c->fd = fd;
	atomic_init(&c->version, 0);
	*cp = c;
	return 0;

out_free:
	free(c->rbuf);
	free(c->sbuf);
	free(c);
	return r;
}

void mc_wire_conn_close(struct mc_wire_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	pthread_mutex_destroy(&c->send_lock);
	free(c->rbuf);
	free(c->sbuf);
	free(c);
}

int mc_wire_conn_fd(const struct mc_wire_conn *c)
{
	return c->fd;
}

void mc_wire_conn_shutdown(struct mc_wire_conn *c)
{
	shutdown(c->fd, SHUT_RDWR);
}

void mc_wire_conn_set_timeout(struct mc_wire_conn *c, unsigned timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};

	/* fails only on a descriptor that is not a socket: nothing to bound */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

uint16_t mc_wire_conn_version(const struct mc_wire_conn *c)
{
	return atomic_load(&c->version);
}

/* -------------------------------------------------------------- receive */

/* Room for need bytes from rpos: compact the buffer, or grow it */
static int rbuf_reserve(struct mc_wire_conn *c, size_t need)
{
	size_t have = c->rlen - c->rpos, cap;
	uint8_t *nb;

	if (have == 0)
		c->rpos = c->rlen = 0;
	if (need <= c->rcap - c->rpos)
		return 0;
	if (need > c->rcap) {
		cap = c->rcap * 2 > need ? c->rcap * 2 : need;
		if (cap > FRAME_MAX)
			cap = FRAME_MAX;
		nb = malloc(cap);
		if (!nb)
			return -ENOMEM;
		memcpy(nb, c->rbuf + c->rpos, have);
		free(c->rbuf);
		c->rbuf = nb;
		c->rcap = cap;
	} else {
		memmove(c->rbuf, c->rbuf + c->rpos, have);
	}
	c->rpos = 0;
	c->rlen = have;
	return 0;
}

/* Receive until need bytes are buffered, taking all the socket has */
static int rbuf_fill(struct mc_wire_conn *c, size_t need)
{
	ssize_t n;
	int r;

	r = rbuf_reserve(c, need);
	if (r < 0)
		return r;
	while (c->rlen - c->rpos < need) {
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EINTR)
			return io_error(errno);
	}
	return 0;
}

int mc_wire_conn_recv(struct mc_wire_conn *c, struct mc_wire_header *h,
		      struct mc_wire_msg *m, int *decode_status)
{
	uint16_t agreed;
	int r;

	memset(m, 0, sizeof(*m));
	memset(h, 0, sizeof(*h));
	*decode_status = 0;
	r = rbuf_fill(c, MC_WIRE_HEADER_SIZE);
	if (r < 0)
		return r;
	r = mc_wire_header_decode(c->rbuf + c->rpos, MC_WIRE_HEADER_SIZE, h);
	if (r < 0)
		return r;
	agreed = atomic_load(&c->version);
	if (agreed && h->version != agreed)
		return -EPROTO;
	r = rbuf_fill(c, MC_WIRE_HEADER_SIZE + (size_t)h->length);
	if (r < 0)
		return r;
	*decode_status = mc_wire_msg_decode(
		m, h->type, c->rbuf + c->rpos + MC_WIRE_HEADER_SIZE, h->length);
	c->rpos += MC_WIRE_HEADER_SIZE + (size_t)h->length;
	return 0;
}

int mc_wire_conn_recv_data(struct mc_wire_conn *c, void *dst, uint64_t len)
{
	size_t have = c->rlen - c->rpos, take;
	uint8_t *d = dst;
	ssize_t n;

	take = have < len ? have : (size_t)len;
	if (take) {
		memcpy(d, c->rbuf + c->rpos, take);
		c->rpos += take;
		d += take;
		len -= take;
	}
	while (len > 0) {
		n = recv(c->fd, d, len < DATA_CHUNK ? (size_t)len : DATA_CHUNK,
			 MSG_WAITALL);
		if (n > 0) {
			d += n;
			len -= (uint64_t)n;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EINTR)
			return io_error(errno);
	}
	return 0;
}

size_t mc_wire_conn_buffered(const struct mc_wire_conn *c)
{
	return c->rlen - c->rpos;
}

/* ----------------------------------------------------------------- send */

/*
 * One frame of m into buf, with the agreed version (HELLO's is always 1,
 * and so is everything sent before HELLO agreed on one).
 */
static int encode_frame(const struct mc_wire_conn *c,
			const struct mc_wire_msg *m, uint64_t id, uint8_t *buf,
			size_t cap, size_t *lenp)
{
	uint16_t version = atomic_load(&c->version);

	if (version == 0 ||
	    (m->type & (uint16_t)~MC_WIRE_REPLY) == MC_WIRE_HELLO)
		version = HELLO_VERSION;
	return mc_wire_frame_encode_version(m, version, id, buf, cap, lenp);
}

static int send_all(int fd, const uint8_t *p, size_t len, int flags)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL | flags);
		if (n >= 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (errno != EINTR)
			return io_error(errno);
	}
	return 0;
}

/* Write out the send buffer; a failure loses the stream for good */
static int flush_locked(struct mc_wire_conn *c, int flags)
{
	int r;

	if (c->send_err)
		return c->send_err;
	r = send_all(c->fd, c->sbuf, c->slen, flags);
	c->slen = 0;
	if (r < 0)
		c->send_err = r;
	return r;
}

/* Encode m at the end of the send buffer, flushing or growing it for room */
static int append_locked(struct mc_wire_conn *c, const struct mc_wire_msg *m,
			 uint64_t id)
{
	size_t len;
	uint8_t *nb;
	int r;

	if (c->send_err)
		return c->send_err;
	for (;;) {
		r = encode_frame(c, m, id, c->sbuf + c->slen, c->scap - c->slen,
				 &len);
		if (r == 0) {
			c->slen += len;
			return 0;
		}
		if (r != -EMSGSIZE)
			return r;
		if (c->slen > 0) {
			r = flush_locked(c, 0);
			if (r < 0)
				return r;
			continue;
		}
		/* a frame bigger than the buffer, or bigger than any frame */
		if (c->scap >= FRAME_MAX)
			return -EMSGSIZE;
		nb = realloc(c->sbuf, FRAME_MAX);
		if (!nb)
			return -ENOMEM;
		c->sbuf = nb;
		c->scap = FRAME_MAX;
	}
}

/* Append m and write out everything queued; flags as for send(2) */
static int send_locked(struct mc_wire_conn *c, const struct mc_wire_msg *m,
		       uint64_t id, int flags)
{
	int r = append_locked(c, m, id);

	return r < 0 ? r : flush_locked(c, flags);
}

int mc_wire_conn_send(struct mc_wire_conn *c, const struct mc_wire_msg *m,
		      uint64_t id)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	r = send_locked(c, m, id, 0);
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int mc_wire_conn_queue(struct mc_wire_conn *c, const struct mc_wire_msg *m,
		       uint64_t id)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	r = append_locked(c, m, id);
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int mc_wire_conn_flush(struct mc_wire_conn *c)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	r = c->slen ? flush_locked(c, 0) : c->send_err;
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

/*
 * sendfile() has no MSG_NOSIGNAL: hold SIGPIPE back in this thread for the
 * call and swallow the one it raised (unless one was pending before), so
 * a reader that went away is -EPIPE here, not the death of the process.
 */
static int sendfile_all(int sock, int fd, uint64_t off, uint64_t len)
{
	static const struct timespec zero = { 0 };
	sigset_t pipe_set, old, pending;
	bool was_pending;
	off_t pos;
	ssize_t n;
	int r = 0;

	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return -EINVAL;
	pos = (off_t)off;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	was_pending = sigpending(&pending) == 0 &&
		      sigismember(&pending, SIGPIPE) == 1;
	while (len > 0) {
		n = sendfile(sock, fd, &pos,
			     len < DATA_CHUNK ? (size_t)len : DATA_CHUNK);
		if (n > 0) {
			len -= (uint64_t)n;
			continue;
		}
		if (n == 0) {
			r = -EIO; /* the file ended before off + len */
			break;
		}
		if (errno != EINTR) {
			r = io_error(errno);
			break;
		}
	}
	if (r == -EPIPE && !was_pending) {
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

int mc_wire_conn_send_data(struct mc_wire_conn *c, const struct mc_wire_msg *m,
			   uint64_t id, int data_fd, uint64_t off, uint64_t len)
{
	int r;

	pthread_mutex_lock(&c->send_lock);
	/* MSG_MORE: the frame and the first page bytes share a segment */
	r = send_locked(c, m, id, len ? MSG_MORE : 0);
	if (r == 0 && len) {
		r = sendfile_all(c->fd, data_fd, off, len);
		c->send_err = r; /* 0, or the stream is lost for good */
	}
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int mc_wire_conn_send_buf(struct mc_wire_conn *c, const struct mc_wire_msg *m,
			  uint64_t id, const void *data, uint64_t len)
{
	int r;

	if (len > SIZE_MAX)
		return -EINVAL;
	pthread_mutex_lock(&c->send_lock);
	r = send_locked(c, m, id, len ? MSG_MORE : 0);
	if (r == 0 && len) {
		r = send_all(c->fd, data, (size_t)len, 0);
		c->send_err = r; /* 0, or the stream is lost for good */
	}
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

/* ---------------------------------------------------------------- hello */

static void log_refusal(const struct mc_wire_conn *c, uint16_t min,
			uint16_t max)
{
	char peer[INET6_ADDRSTRLEN + 16];

	mc_log(MC_LOG_ERR,
	       "wire: cannot agree on a protocol version with '%s': it speaks "
	       "%u..%u, this side %u..%u: upgrade the older side",
	       peer_name(c->fd, peer, sizeof(peer)), min, max,
	       MC_WIRE_VERSION_MIN, MC_WIRE_VERSION);
}

int mc_wire_conn_hello(struct mc_wire_conn *c, const char *name)
{
	struct mc_wire_msg req, rep;
	struct mc_wire_header h;
	uint16_t v;
	int r, ds;

	memset(&rep, 0, sizeof(rep));
	memset(&req, 0, sizeof(req));
	/* the peer judges it as a name: refuse here what it would refuse */
	r = name ? mc_name_check(name) : -EINVAL;
	if (r < 0)
		return r;
	req.type = MC_WIRE_HELLO;
	req.u.hello.min_version = MC_WIRE_VERSION_MIN;
	req.u.hello.max_version = MC_WIRE_VERSION;
	snprintf(req.u.hello.name, sizeof(req.u.hello.name), "%s", name);
	r = mc_wire_conn_send(c, &req, 0);
	if (r < 0)
		return r;
	r = mc_wire_conn_recv(c, &h, &rep, &ds);
	if (r < 0)
		return r;
	/* nothing but the answer may come first: no version is agreed yet */
	if (h.type != (MC_WIRE_HELLO | MC_WIRE_REPLY) || h.id != 0 || ds < 0) {
		r = -EPROTO;
		goto out;
	}
	if (rep.status == -EPROTONOSUPPORT) {
		log_refusal(c, rep.u.hello_reply.min_version,
			    rep.u.hello_reply.max_version);
		r = -EPROTONOSUPPORT;
		goto out;
	}
	r = rep.status;
	if (r < 0)
		goto out;
	v = rep.u.hello_reply.version;
	if (v < MC_WIRE_VERSION_MIN || v > MC_WIRE_VERSION) {
		r = -EPROTO;
		goto out;
	}
	atomic_store(&c->version, v);
out:
	mc_wire_msg_release(&rep);
	return r;
}

int mc_wire_conn_answer_hello(struct mc_wire_conn *c,
			      const struct mc_wire_header *h,
			      const struct mc_wire_msg *m)
{
	const struct mc_wire_hello *q = &m->u.hello;
	struct mc_wire_msg rep;
	uint16_t lo, hi;
	int r;

	if (m->type != MC_WIRE_HELLO)
		return -EINVAL;
	lo = q->min_version > MC_WIRE_VERSION_MIN ? q->min_version :
						    MC_WIRE_VERSION_MIN;
	hi = q->max_version < MC_WIRE_VERSION ? q->max_version :
						MC_WIRE_VERSION;
	memset(&rep, 0, sizeof(rep));
	rep.type = MC_WIRE_HELLO | MC_WIRE_REPLY;
	rep.u.hello_reply.min_version = MC_WIRE_VERSION_MIN;
	rep.u.hello_reply.max_version = MC_WIRE_VERSION;
	if (lo > hi) {
		rep.status = -EPROTONOSUPPORT;
		r = mc_wire_conn_send(c, &rep, h->id);
		if (r == 0) {
			log_refusal(c, q->min_version, q->max_version);
			r = -EPROTONOSUPPORT;
		}
		return r;
	}
	/* before the reply leaves: the peer's next frame carries it */
	rep.u.hello_reply.version = hi;
	atomic_store(&c->version, hi);
	return mc_wire_conn_send(c, &rep, h->id);
}
