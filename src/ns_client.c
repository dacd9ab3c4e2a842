/*
 * ns_client.c - the namespace calls as requests to mooncake_master.
 *
 * Threads:
 *   callers   (FUSE workers) send a request and sleep on their own waiter
 *             until the reply with their id arrives, the call times out, or
 *             the connection goes;
 *   session   connects, registers, declares holdings and pins, then reads
 *             every frame: replies go to their waiter, the master's
 *             requests (DROP, REPLICATE) to the listener; when the
 *             connection ends it fails the waiters and starts over;
 *   heartbeat sends HEARTBEAT every heartbeat_ms while registered.
 *
 * Pins, unpins and touches are sent without waiting (their replies are
 * read and dropped): they sit on the open and close paths, and one TCP
 * connection keeps them in order.  Pins are also counted here, so a new
 * session can tell a restarted master which inodes are open.
 *
 * Nobody sends while holding c->lock: the session thread needs it to
 * hand out replies, and a sender blocked on a full socket must not stop
 * the reads that would drain the other side.  A sender takes a reference
 * (conn_get); the session thread closes a connection only once the
 * references are back.  Sends stay bounded by the call timeout (only the
 * session's reads wait forever), and a send that fails shuts the
 * connection down, so a master that stops reading costs a reconnect,
 * never a worker stuck in send(2).
 *
 * A new session replays the pins of open files before anyone else may
 * send on it (c->replaying): an EVICT or UNPIN overtaking them would
 * let the master drop or keep the wrong pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "id_counts.h"
#include "log.h"
#include "ns_client.h"
#include "wire.h"
#include "wire_io.h"
#include "banned.h"

#define CLIENT_TIMEOUT_MS 5000
#define CLIENT_DIAL_MS 1000
#define CLIENT_BACKOFF_MIN_MS 100
#define CLIENT_BACKOFF_MAX_MS 1000
#define CLIENT_RESERVE_BATCH 256
#define CLIENT_TOUCH_BATCH 256

struct waiter {
	struct waiter *next;
	uint64_t id;
	uint16_t type;		/* the reply expected: request type | REPLY */
	bool done;
	int status;		/* connection-level result when done */
	struct mc_wire_msg reply;
	pthread_cond_t cond;
};

struct ns_client {
	struct mc_ns ns;		/* first: the interface's head */
	struct mc_ns_client_params p;	/* strings point into the copies below */
	char master_host[256];
	uint16_t master_port;
	char *name, *host, *address, *protocol;

	pthread_mutex_t lock;
	pthread_cond_t state_cond;	/* registered or stopping changed */
	/* all below protected by c->lock */
	struct mc_wire_conn *conn;	/* NULL while disconnected */
	unsigned senders;		/* threads sending on conn right now */
	bool registered;
	bool replaying;		/* the session thread sends the pins first */
	bool stopping;
	uint64_t session;	/* counts registrations */
	bool warned_down;		/* said once that the master is away */
	uint64_t next_id;
	uint64_t heartbeat_ms;
	struct waiter *waiters;
	struct mc_wire_reserved reserved[CLIENT_RESERVE_BATCH];
	unsigned nreserved, reserved_next;
	struct mc_wire_touch_item touches[CLIENT_TOUCH_BATCH];
	unsigned ntouches;
	struct mc_id_counts pins;	/* the pins of files open here */

	pthread_t session_thread, heartbeat_thread;
	bool session_running, heartbeat_running;
	pthread_cond_t hb_cond;		/* wakes the heartbeat thread to stop */
};

static struct ns_client *cl(struct mc_ns *ns)
{
	return (struct ns_client *)ns;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t a;
	int r;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	r = -pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
	return r;
}

/* ---- calls ---------------------------------------------------------------- */

/* The registered connection, held until conn_put_locked(); NULL if none. */
static struct mc_wire_conn *conn_get_locked(struct ns_client *c)
{
	/* a new session's pin replay goes out before anything else */
	while (c->replaying)
		pthread_cond_wait(&c->state_cond, &c->lock);
	if (!c->registered || !c->conn)
		return NULL;
	c->senders++;
	return c->conn;
}

static void conn_put_locked(struct ns_client *c)
{
	if (--c->senders == 0)
		pthread_cond_broadcast(&c->state_cond);
}

/* An encoder's refusal leaves the stream whole; anything else loses it. */
static bool send_failed(int r)
{
	return r < 0 && r != -EINVAL && r != -EMSGSIZE && r != -ENOSYS;
}

/*
 * A send that failed (timed out half-way, or hit a dead socket) lost the
 * stream, but the session thread may sit in a read that never ends: shut
 * the connection down so that it reconnects.  conn is held by the caller.
 */
static void conn_lost(struct mc_wire_conn *conn, int r)
{
	if (send_failed(r))
		mc_wire_conn_shutdown(conn);
}

/*
 * Send req and wait for its reply (moved into *reply, released by the
 * caller; reply NULL when only the status is wanted).  Returns the
 * reply's status (0 or -errno from the master), or -EHOSTDOWN without a
 * registered session, -ETIMEDOUT, or a send error.
 */
static int call(struct ns_client *c, const struct mc_wire_msg *req,
		struct mc_wire_msg *reply)
{
	struct mc_wire_conn *conn;
	struct waiter w, **pp;
	struct timespec dl;
	int r;

	memset(&w, 0, sizeof(w));
	if (reply)
		memset(reply, 0, sizeof(*reply));
	if (cond_init_monotonic(&w.cond) < 0)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	conn = conn_get_locked(c);
	if (!conn) {
		pthread_mutex_unlock(&c->lock);
		pthread_cond_destroy(&w.cond);
		return -EHOSTDOWN;
	}
	w.id = ++c->next_id;
	w.type = req->type | MC_WIRE_REPLY;
	w.next = c->waiters;
	c->waiters = &w;
	pthread_mutex_unlock(&c->lock);
	/* the timeout bounds the whole call, a slow send included */
	deadline_in(&dl, c->p.timeout_ms);
	r = mc_wire_conn_send(conn, req, w.id);
	conn_lost(conn, r);
	pthread_mutex_lock(&c->lock);
	conn_put_locked(c);
	if (r < 0 && !w.done) {
		w.done = true;
		w.status = send_failed(r) ? -EHOSTDOWN : r;
	}
	while (!w.done) {
		if (pthread_cond_timedwait(&w.cond, &c->lock, &dl) == ETIMEDOUT &&
		    !w.done) {
			w.done = true;
			w.status = -ETIMEDOUT;
		}
	}
	for (pp = &c->waiters; *pp; pp = &(*pp)->next) {
		if (*pp == &w) {
			*pp = w.next;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	pthread_cond_destroy(&w.cond);
	if (w.status < 0) {
		mc_wire_msg_release(&w.reply);
		if (w.status == -ETIMEDOUT)
			mc_log_ratelimited(MC_LOG_WARNING,
					   "master: no answer to %s from '%s:%u' within %u ms: check that it runs and is not overloaded",
					   mc_wire_type_name(req->type),
					   c->master_host, c->master_port,
					   c->p.timeout_ms);
		return w.status;
	}
	r = w.reply.status;
	if (reply)
		*reply = w.reply;
	else
		mc_wire_msg_release(&w.reply);
	return r;
}

/* Send without waiting; the reply is read and dropped. */
static void send_async(struct ns_client *c, const struct mc_wire_msg *m)
{
	struct mc_wire_conn *conn;
	uint64_t id;

	pthread_mutex_lock(&c->lock);
	conn = conn_get_locked(c);
	id = ++c->next_id;
	pthread_mutex_unlock(&c->lock);
	if (!conn)
		return;
	conn_lost(conn, mc_wire_conn_send(conn, m, id));
	pthread_mutex_lock(&c->lock);
	conn_put_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* A reply arrived: hand it to its waiter, or drop it (async calls). */
static void deliver(struct ns_client *c, const struct mc_wire_header *h,
		    struct mc_wire_msg *m, int decode_status)
{
	struct waiter *w;

	pthread_mutex_lock(&c->lock);
	for (w = c->waiters; w; w = w->next)
		if (w->id == h->id && !w->done)
			break;
	/* a reply of another type would be read as the wrong union member */
	if (w && decode_status == 0 && h->type != w->type)
		decode_status = -EBADMSG;
	if (w) {
		if (decode_status < 0) {
			memset(&w->reply, 0, sizeof(w->reply));
			w->reply.type = h->type;
			w->reply.status = decode_status;
		} else {
			w->reply = *m;
			memset(m, 0, sizeof(*m));
		}
		w->done = true;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&c->lock);
	if (!w && decode_status == 0 && m->status < 0 &&
	    (h->type & ~MC_WIRE_REPLY) != MC_WIRE_TOUCH)
		mc_log_errno(MC_LOG_DEBUG, m->status, "master: %s refused",
			     mc_wire_type_name(h->type));
	mc_wire_msg_release(m);
}

/* The connection is gone: every caller waiting learns it now. */
static void fail_waiters_locked(struct ns_client *c)
{
	for (struct waiter *w = c->waiters; w; w = w->next) {
		if (w->done)
			continue;
		w->done = true;
		w->status = -EHOSTDOWN;
		pthread_cond_signal(&w->cond);
	}
}

/* ---- the master's requests ---------------------------------------------- */

static void answer(struct mc_wire_conn *conn, const struct mc_wire_header *h,
		   int status)
{
	struct mc_wire_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.type = h->type | MC_WIRE_REPLY;
	rep.status = status;
	conn_lost(conn, mc_wire_conn_send(conn, &rep, h->id));
}

static void serve_request(struct ns_client *c, struct mc_wire_conn *conn,
			  const struct mc_wire_header *h,
			  struct mc_wire_msg *m, int decode_status)
{
	const struct mc_ns_listener *l = &c->ns.listener;
	int status = decode_status;

	if (status == 0) {
		switch (h->type) {
		case MC_WIRE_DROP:
			for (uint32_t i = 0; i < m->u.dropped_list.count; i++)
				if (l->dropped)
					l->dropped(l->ctx,
						   &m->u.dropped_list.items[i]);
			break;
		case MC_WIRE_REPLICATE:
			for (uint32_t i = 0; i < m->u.ids.count; i++)
				if (l->replicate)
					l->replicate(l->ctx, m->u.ids.ids[i]);
			break;
		default:
			status = -ENOSYS;
			break;
		}
	}
	mc_wire_msg_release(m);
	answer(conn, h, status);
}

/* ---- the session ------------------------------------------------------------ */

/*
 * Wait for the reply to id on a connection nobody else reads yet (during
 * registration), serving the master's requests that come first.
 */
static int session_wait(struct ns_client *c, struct mc_wire_conn *conn,
			uint64_t id, uint16_t type, struct mc_wire_msg *reply)
{
	struct mc_wire_header h;
	struct mc_wire_msg m;
	int ds, r;

	for (;;) {
		r = mc_wire_conn_recv(conn, &h, &m, &ds);
		if (r < 0)
			return r;
		if (!(h.type & MC_WIRE_REPLY)) {
			serve_request(c, conn, &h, &m, ds);
			continue;
		}
		if (h.id != id) {
			mc_wire_msg_release(&m);
			continue;
		}
		if (ds == 0 && h.type != (type | MC_WIRE_REPLY)) {
			/* read as the wrong union member, it could crash us */
			mc_wire_msg_release(&m);
			return -EBADMSG;
		}
		if (ds < 0)
			return ds;
		*reply = m;
		return reply->status;
	}
}

static int session_call(struct ns_client *c, struct mc_wire_conn *conn,
			const struct mc_wire_msg *req, uint64_t id,
			struct mc_wire_msg *reply)
{
	int r;

	memset(reply, 0, sizeof(*reply));
	r = mc_wire_conn_send(conn, req, id);
	if (r < 0)
		return r;
	return session_wait(c, conn, id, req->type, reply);
}

struct holdings_batch {
	struct ns_client *c;
	struct mc_wire_conn *conn;
	uint64_t ids[MC_WIRE_MAX_BATCH];
	uint32_t n;
	uint64_t next_id;
	uint64_t sent;
	int err;
};

static int holdings_send(struct holdings_batch *b, bool last)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HOLDINGS;
	req.u.holdings.last = last;
	req.u.holdings.count = b->n;
	req.u.holdings.ids = b->ids;
	r = session_call(b->c, b->conn, &req, b->next_id++, &rep);
	if (r == 0) {
		for (uint32_t i = 0; i < rep.u.ids.count; i++)
			if (b->c->p.forget)
				b->c->p.forget(b->c->p.ctx, rep.u.ids.ids[i]);
		b->sent += b->n;
	}
	mc_wire_msg_release(&rep);
	b->n = 0;
	return r;
}

static int holdings_emit(void *ctx, uint64_t page_id)
{
	struct holdings_batch *b = ctx;

	b->ids[b->n++] = page_id;
	if (b->n == MC_WIRE_MAX_BATCH) {
		b->err = holdings_send(b, false);
		if (b->err < 0)
			return b->err;
	}
	return 0;
}

/* Counts the ids to send while ids is NULL, then fills ids. */
struct pins_snapshot {
	uint64_t *ids;
	uint64_t n;
};

static int pins_snapshot_one(void *ctx, uint64_t ino, uint64_t count)
{
	struct pins_snapshot *s = ctx;

	for (uint64_t k = 0; k < count; k++, s->n++)
		if (s->ids)
			s->ids[s->n] = ino;
	return 0;
}

/*
 * The pins of files open here, once per count, for the new session (a
 * restarted master lost them): taken in the critical section that makes
 * the session usable, so a pin is either in it or sent by its caller
 * later.  *nidsp 0 and NULL when there are none, or on ENOMEM (logged).
 */
static uint64_t *pins_snapshot_locked(struct ns_client *c, uint64_t *nidsp)
{
	struct pins_snapshot s = { 0 };
	uint64_t n;

	*nidsp = 0;
	mc_id_counts_foreach(&c->pins, pins_snapshot_one, &s);
	if (s.n == 0)
		return NULL;
	n = s.n;
	s.ids = malloc(n * sizeof(*s.ids));
	if (!s.ids) {
		mc_log(MC_LOG_ERR,
		       "master: out of memory re-declaring the %" PRIu64
		       " pages open here: they may be evicted while open",
		       n);
		return NULL;
	}
	s.n = 0;
	mc_id_counts_foreach(&c->pins, pins_snapshot_one, &s);
	*nidsp = s.n;
	return s.ids;
}

/* Send the snapshot as PINs (their replies are read and dropped). */
static int replay_pins(struct mc_wire_conn *conn, const uint64_t *ids,
		       uint64_t nids, uint64_t *next_id)
{
	struct mc_wire_msg req;
	int r = 0;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_PIN;
	for (uint64_t i = 0; i < nids && r == 0; i += req.u.ids.count) {
		req.u.ids.count = nids - i < MC_WIRE_MAX_BATCH ?
					  (uint32_t)(nids - i) :
					  MC_WIRE_MAX_BATCH;
		req.u.ids.ids = (uint64_t *)(ids + i);
		r = mc_wire_conn_send(conn, &req, (*next_id)++);
	}
	return r;
}

/* A HEARTBEAT request: the pool's use, as the usage callback says */
static void heartbeat_req(struct ns_client *c, uint64_t segment,
			  struct mc_wire_msg *req)
{
	memset(req, 0, sizeof(*req));
	req->type = MC_WIRE_HEARTBEAT;
	req->u.heartbeat.segment_id = segment;
	if (c->p.usage)
		c->p.usage(c->p.ctx, &req->u.heartbeat.used_bytes,
			   &req->u.heartbeat.pages);
}

/* Connect, say hello, register, declare holdings. */
static int session_open(struct ns_client *c, struct mc_wire_conn **connp,
			uint64_t *next_idp)
{
	struct mc_wire_conn *conn = NULL;
	struct holdings_batch *b = NULL;
	struct mc_wire_msg req, rep;
	uint64_t id = 1;
	int fd, r;

	*connp = NULL;
	memset(&rep, 0, sizeof(rep));
	fd = mc_wire_dial(c->master_host, c->master_port, CLIENT_DIAL_MS);
	if (fd < 0)
		return fd;
	r = mc_wire_conn_open(&conn, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	mc_wire_conn_set_timeout(conn, c->p.timeout_ms);
	r = mc_wire_conn_hello(conn, c->name);
	if (r < 0)
		goto out;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REGISTER;
	memcpy(req.u.reg.segment, c->p.segment, sizeof(req.u.reg.segment));
	snprintf(req.u.reg.host, sizeof(req.u.reg.host), "%s", c->host);
	snprintf(req.u.reg.address, sizeof(req.u.reg.address), "%s",
		 c->address);
	req.u.reg.port = c->p.port;
	req.u.reg.capacity = c->p.capacity;
	snprintf(req.u.reg.protocol, sizeof(req.u.reg.protocol), "%s",
		 c->protocol);
	req.u.reg.flags = c->p.pool_lost ? MC_WIRE_REGISTER_POOL_LOST : 0;
	r = session_call(c, conn, &req, id++, &rep);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "master: '%s:%u' refused to register this host's pool: see the master's log; retrying",
			     c->master_host, c->master_port);
		goto out;
	}
	/* only the first registration after a lost pool says so */
	c->p.pool_lost = false;
	pthread_mutex_lock(&c->lock);
	c->ns.segment = rep.u.reg_reply.segment_id;
	c->heartbeat_ms = rep.u.reg_reply.heartbeat_ms ?
				  rep.u.reg_reply.heartbeat_ms : 1000;
	pthread_mutex_unlock(&c->lock);
	mc_wire_msg_release(&rep);

	b = calloc(1, sizeof(*b));
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	b->c = c;
	b->conn = conn;
	b->next_id = id;
	r = 0;
	if (c->p.holdings)
		r = c->p.holdings(c->p.ctx, holdings_emit, b);
	if (b->err < 0)
		r = b->err;
	if (r == 0)
		r = holdings_send(b, true);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "master: cannot declare the pages this host holds to '%s:%u': retrying",
			     c->master_host, c->master_port);
		goto out;
	}
	/*
	 * A first heartbeat now, not a period later: the master sends a full
	 * host's pages only to hosts whose room it has heard of.
	 */
	heartbeat_req(c, c->ns.segment, &req);
	r = session_call(c, conn, &req, b->next_id++, &rep);
	mc_wire_msg_release(&rep);
	if (r < 0)
		goto out;
	mc_log(MC_LOG_NOTICE,
	       "master: registered with '%s:%u' as segment %" PRIu64
	       " (%" PRIu64 " pages held here)",
	       c->master_host, c->master_port, c->ns.segment, b->sent);
	*next_idp = b->next_id;
	*connp = conn;
	conn = NULL;
out:
	free(b);
	mc_wire_conn_close(conn);
	return r;
}

/* Read frames until the connection ends. */
static int session_read(struct ns_client *c, struct mc_wire_conn *conn)
{
	struct timeval forever = { 0 };
	struct mc_wire_header h;
	struct mc_wire_msg m;
	int ds, r;

	/*
	 * Reads are bounded by each caller's own deadline, not the socket's.
	 * Sends keep the timeout: a master that stops reading must not
	 * hold a worker (or this thread, answering a DROP) in send(2).
	 */
	(void)setsockopt(mc_wire_conn_fd(conn), SOL_SOCKET, SO_RCVTIMEO,
			 &forever, sizeof(forever));
	for (;;) {
		r = mc_wire_conn_recv(conn, &h, &m, &ds);
		if (r < 0)
			return r;
		if (h.type & MC_WIRE_REPLY)
			deliver(c, &h, &m, ds);
		else
			serve_request(c, conn, &h, &m, ds);
	}
}

static bool stopping(struct ns_client *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

static void *session_main(void *arg)
{
	struct ns_client *c = arg;
	unsigned backoff = CLIENT_BACKOFF_MIN_MS;
	struct mc_wire_conn *conn;
	uint64_t next_id, *pins, npins;
	struct timespec dl;
	int r;

	while (!stopping(c)) {
		r = session_open(c, &conn, &next_id);
		if (r == 0) {
			pthread_mutex_lock(&c->lock);
			if (c->stopping) {
				/*
				 * stop() found no connection to shut down
				 * while this one was being made: reading it
				 * would wait forever
				 */
				pthread_mutex_unlock(&c->lock);
				mc_wire_conn_close(conn);
				break;
			}
			if (c->warned_down)
				mc_log(MC_LOG_NOTICE,
				       "master: '%s:%u' is back: opens work again",
				       c->master_host, c->master_port);
			c->warned_down = false;
			c->conn = conn;
			c->registered = true;
			c->replaying = true;
			c->session++;
			pins = pins_snapshot_locked(c, &npins);
			pthread_mutex_unlock(&c->lock);
			r = replay_pins(conn, pins, npins, &next_id);
			free(pins);
			conn_lost(conn, r);
			pthread_mutex_lock(&c->lock);
			c->next_id = next_id;
			c->replaying = false;
			pthread_cond_broadcast(&c->state_cond);
			pthread_cond_broadcast(&c->hb_cond);
			pthread_mutex_unlock(&c->lock);
			backoff = CLIENT_BACKOFF_MIN_MS;
			r = session_read(c, conn);
			mc_wire_conn_shutdown(conn);	/* unblocks senders */
			pthread_mutex_lock(&c->lock);
			c->registered = false;
			fail_waiters_locked(c);
			while (c->senders > 0)
				pthread_cond_wait(&c->state_cond, &c->lock);
			c->conn = NULL;
			pthread_mutex_unlock(&c->lock);
			mc_wire_conn_close(conn);
			if (stopping(c))
				break;
		}
		pthread_mutex_lock(&c->lock);
		if (!c->warned_down && !c->stopping) {
			mc_log_errno(MC_LOG_WARNING, r,
				     "master: no session with '%s:%u': new opens and creates fail with EHOSTDOWN until it is back; open files keep working; retrying",
				     c->master_host, c->master_port);
			c->warned_down = true;
		}
		deadline_in(&dl, backoff);
		while (!c->stopping &&
		       pthread_cond_timedwait(&c->state_cond, &c->lock, &dl) !=
			       ETIMEDOUT)
			;
		pthread_mutex_unlock(&c->lock);
		backoff = backoff * 2 > CLIENT_BACKOFF_MAX_MS ?
				  CLIENT_BACKOFF_MAX_MS :
				  backoff * 2;
	}
	return NULL;
}

static void *heartbeat_main(void *arg)
{
	struct ns_client *c = arg;
	struct mc_wire_msg req;
	struct timespec dl;
	uint64_t session, segment;
	int r;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		if (!c->registered) {
			pthread_cond_wait(&c->hb_cond, &c->lock);
			continue;
		}
		deadline_in(&dl, (unsigned)c->heartbeat_ms);
		while (!c->stopping &&
		       pthread_cond_timedwait(&c->hb_cond, &c->lock, &dl) !=
			       ETIMEDOUT)
			;
		if (c->stopping || !c->registered)
			continue;
		segment = c->ns.segment;
		session = c->session;
		pthread_mutex_unlock(&c->lock);
		heartbeat_req(c, segment, &req);
		r = call(c, &req, NULL);
		pthread_mutex_lock(&c->lock);
		/* not a newer session that registered meanwhile */
		if (r == -ENOENT && c->conn && c->session == session) {
			/* declared dead meanwhile: register again */
			mc_log(MC_LOG_WARNING,
			       "master: '%s:%u' had declared this host dead: registering again",
			       c->master_host, c->master_port);
			mc_wire_conn_shutdown(c->conn);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- the ns.h calls --------------------------------------------------------- */

void mc_ns_client_stop(struct mc_ns *ns)
{
	struct ns_client *c = cl(ns);

	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	if (c->conn)
		mc_wire_conn_shutdown(c->conn);
	pthread_cond_broadcast(&c->state_cond);
	pthread_cond_broadcast(&c->hb_cond);
	pthread_mutex_unlock(&c->lock);
	if (c->session_running)
		pthread_join(c->session_thread, NULL);
	if (c->heartbeat_running)
		pthread_join(c->heartbeat_thread, NULL);
	c->session_running = c->heartbeat_running = false;
}

static void client_close(struct mc_ns *ns)
{
	struct ns_client *c = cl(ns);

	mc_ns_client_stop(ns);
	mc_id_counts_release(&c->pins);
	pthread_cond_destroy(&c->hb_cond);
	pthread_cond_destroy(&c->state_cond);
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c->host);
	free(c->address);
	free(c->protocol);
	free(c);
}

/* The pool's memory is gone: the next registration tells the master. */
static int64_t client_forget_pages(struct mc_ns *ns)
{
	struct ns_client *c = cl(ns);

	pthread_mutex_lock(&c->lock);
	c->p.pool_lost = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static int client_reserve(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id)
{
	struct ns_client *c = cl(ns);
	struct mc_wire_msg req, rep;
	int r;

	pthread_mutex_lock(&c->lock);
	if (c->reserved_next < c->nreserved) {
		*ino = c->reserved[c->reserved_next].ino;
		*page_id = c->reserved[c->reserved_next].page_id;
		c->reserved_next++;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RESERVE;
	req.u.reserve_count = CLIENT_RESERVE_BATCH;
	r = call(c, &req, &rep);
	if (r == 0 && rep.u.reserve_reply.count == 0)
		r = -EIO;
	if (r == 0) {
		uint32_t n = rep.u.reserve_reply.count;

		if (n > CLIENT_RESERVE_BATCH)
			n = CLIENT_RESERVE_BATCH;
		*ino = rep.u.reserve_reply.items[0].ino;
		*page_id = rep.u.reserve_reply.items[0].page_id;
		pthread_mutex_lock(&c->lock);
		/* numbers are never reused, so a racing refill wastes a few */
		memcpy(c->reserved, rep.u.reserve_reply.items,
		       n * sizeof(c->reserved[0]));
		c->nreserved = n;
		c->reserved_next = 1;
		pthread_mutex_unlock(&c->lock);
	}
	mc_wire_msg_release(&rep);
	return r;
}

/* name into a request's name field of size bytes: 0 or -ENAMETOOLONG */
static int name_to_wire(char *field, size_t size, const char *name)
{
	if (snprintf(field, size, "%s", name) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* A LOOKUP, RMDIR or UNLINK request: 0 or -ENAMETOOLONG */
static int entry_req(struct mc_wire_msg *req, uint16_t type, uint64_t parent,
		     const char *name)
{
	memset(req, 0, sizeof(*req));
	req->type = type;
	req->u.entry.parent = parent;
	return name_to_wire(req->u.entry.name, sizeof(req->u.entry.name), name);
}

/* Call, and copy the attributes the reply carries to *out */
static int call_attr(struct ns_client *c, const struct mc_wire_msg *req,
		     struct mc_ns_attr *out)
{
	struct mc_wire_msg rep;
	int r;

	r = call(c, req, &rep);
	if (r == 0)
		*out = rep.u.attr;
	mc_wire_msg_release(&rep);
	return r;
}

static int client_lookup(struct mc_ns *ns, uint64_t parent, const char *name,
			 struct mc_ns_attr *out)
{
	struct mc_wire_msg req;
	int r;

	r = entry_req(&req, MC_WIRE_LOOKUP, parent, name);
	return r < 0 ? r : call_attr(cl(ns), &req, out);
}

static int client_getattr(struct mc_ns *ns, uint64_t ino,
			  struct mc_ns_attr *out)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_GETATTR;
	req.u.ino = ino;
	return call_attr(cl(ns), &req, out);
}

static int client_mkdir(struct mc_ns *ns, uint64_t parent, const char *name,
			uint32_t mode, uint32_t uid, uint32_t gid,
			struct mc_ns_attr *out)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_MKDIR;
	req.u.mkdir.parent = parent;
	if (name_to_wire(req.u.mkdir.name, sizeof(req.u.mkdir.name), name) < 0)
		return -ENAMETOOLONG;
	req.u.mkdir.mode = mode;
	req.u.mkdir.uid = uid;
	req.u.mkdir.gid = gid;
	return call_attr(cl(ns), &req, out);
}

static int client_rmdir(struct mc_ns *ns, uint64_t parent, const char *name)
{
	struct mc_wire_msg req;
	int r;

	r = entry_req(&req, MC_WIRE_RMDIR, parent, name);
	return r < 0 ? r : call(cl(ns), &req, NULL);
}

/*
 * The wire carries a dropped page without its attributes; what the
 * filesystem keeps of them (a replaced page lingers for racing opens) is
 * rebuilt from what it does carry.
 */
static void dropped_from_wire(struct mc_ns_dropped *out,
			      const struct mc_ns_dropped *in)
{
	*out = *in;
	if (out->ino == 0 || out->attr.ino != 0)
		return;
	out->attr.ino = in->ino;
	out->attr.parent = in->parent;
	out->attr.page_id = in->page_id;
	out->attr.size = in->size;
	out->attr.nlink = 1;
	out->attr.mode = in->page_id ? S_IFREG | 0444 : S_IFDIR | 0755;
}

/* Call, and rebuild what the reply says left into *dropped */
static int call_dropped(struct ns_client *c, const struct mc_wire_msg *req,
			struct mc_ns_dropped *dropped)
{
	struct mc_wire_msg rep;
	int r;

	r = call(c, req, &rep);
	if (r == 0)
		dropped_from_wire(dropped, &rep.u.dropped);
	mc_wire_msg_release(&rep);
	return r;
}

static int client_commit(struct mc_ns *ns, const struct mc_ns_commit *c,
			 struct mc_ns_dropped *replaced)
{
	struct ns_client *cc = cl(ns);
	struct mc_wire_commit_item item;
	struct mc_wire_msg req, rep;
	int r;

	memset(replaced, 0, sizeof(*replaced));
	memset(&item, 0, sizeof(item));
	item.parent = c->parent;
	if (name_to_wire(item.name, sizeof(item.name), c->name) < 0)
		return -ENAMETOOLONG;
	item.ino = c->ino;
	item.page_id = c->page_id;
	item.mode = c->mode;
	item.uid = c->uid;
	item.gid = c->gid;
	item.size = c->size;
	item.mtime_ns = c->mtime_ns;
	item.crc32c = c->crc32c;
	item.nsegments = 1;
	pthread_mutex_lock(&cc->lock);
	item.segments[0] = cc->ns.segment;
	pthread_mutex_unlock(&cc->lock);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_COMMIT;
	req.u.commit.count = 1;
	req.u.commit.items = &item;
	r = call(cc, &req, &rep);
	if (r == 0 && rep.u.commit_reply.count != 1)
		r = -EBADMSG;
	if (r == 0) {
		r = rep.u.commit_reply.items[0].status;
		if (r == 0)
			dropped_from_wire(replaced,
					  &rep.u.commit_reply.items[0].replaced);
	}
	mc_wire_msg_release(&rep);
	return r;
}

static int client_unlink(struct mc_ns *ns, uint64_t parent, const char *name,
			 struct mc_ns_dropped *dropped)
{
	struct mc_wire_msg req;
	int r;

	memset(dropped, 0, sizeof(*dropped));
	r = entry_req(&req, MC_WIRE_UNLINK, parent, name);
	return r < 0 ? r : call_dropped(cl(ns), &req, dropped);
}

static int client_rename(struct mc_ns *ns, uint64_t parent, const char *name,
			 uint64_t newparent, const char *newname,
			 unsigned flags, struct mc_ns_dropped *dropped)
{
	struct mc_wire_rename *q;
	struct mc_wire_msg req;

	memset(dropped, 0, sizeof(*dropped));
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RENAME;
	q = &req.u.rename;
	q->parent = parent;
	q->newparent = newparent;
	q->flags = flags;
	if (name_to_wire(q->name, sizeof(q->name), name) < 0 ||
	    name_to_wire(q->newname, sizeof(q->newname), newname) < 0)
		return -ENAMETOOLONG;
	return call_dropped(cl(ns), &req, dropped);
}

static int client_setattr(struct mc_ns *ns, uint64_t ino, unsigned flags,
			  const struct mc_ns_attr *in, struct mc_ns_attr *out)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_SETATTR;
	req.u.setattr.ino = ino;
	req.u.setattr.flags = flags;
	req.u.setattr.in = *in;
	return call_attr(cl(ns), &req, out);
}

/* Send the touches held here (a batch taken under the lock, sent outside). */
static void flush_touches(struct ns_client *c)
{
	struct mc_wire_touch_item items[CLIENT_TOUCH_BATCH];
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_TOUCH;
	pthread_mutex_lock(&c->lock);
	req.u.touch.count = c->ntouches;
	memcpy(items, c->touches, c->ntouches * sizeof(items[0]));
	c->ntouches = 0;
	pthread_mutex_unlock(&c->lock);
	req.u.touch.items = items;
	if (req.u.touch.count > 0)
		send_async(c, &req);
}

static int client_touch(struct mc_ns *ns, uint64_t ino, uint64_t now_ns)
{
	struct ns_client *c = cl(ns);
	bool full;

	pthread_mutex_lock(&c->lock);
	if (c->ntouches == CLIENT_TOUCH_BATCH)
		c->ntouches--;	/* a racing flush is late: lose the oldest grain */
	c->touches[c->ntouches].ino = ino;
	c->touches[c->ntouches].now_ns = now_ns;
	full = ++c->ntouches == CLIENT_TOUCH_BATCH;
	pthread_mutex_unlock(&c->lock);
	if (full)
		flush_touches(c);
	return 0;
}

static int client_flush_touches(struct mc_ns *ns)
{
	flush_touches(cl(ns));
	return 0;
}

static int client_readdir(struct mc_ns *ns, uint64_t dir, uint64_t after,
			  int (*fn)(void *ctx, const char *name,
				    const struct mc_ns_attr *attr),
			  void *ctx)
{
	struct mc_wire_msg req, rep;
	bool eof = false;
	int r = 0;

	while (!eof && r == 0) {
		memset(&req, 0, sizeof(req));
		req.type = MC_WIRE_READDIR;
		req.u.readdir.dir = dir;
		req.u.readdir.after = after;
		req.u.readdir.max = MC_WIRE_MAX_BATCH;
		r = call(cl(ns), &req, &rep);
		if (r == 0) {
			struct mc_wire_readdir_reply *rr = &rep.u.readdir_reply;

			eof = rr->eof || rr->count == 0;
			for (uint32_t i = 0; i < rr->count && r == 0; i++) {
				after = rr->items[i].attr.ino;
				r = fn(ctx, rr->items[i].name,
				       &rr->items[i].attr);
			}
		}
		mc_wire_msg_release(&rep);
	}
	return r;
}

static void send_pin(struct ns_client *c, uint16_t type, uint64_t ino)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.u.ids.count = 1;
	req.u.ids.ids = &ino;
	send_async(c, &req);
}

/*
 * Counted for the replay, then sent either way: a pin the map cannot
 * count (out of memory) still holds in this session; only a restarted
 * master would miss it.  An unpin of an uncounted inode changes nothing.
 */
static void client_pin(struct mc_ns *ns, uint64_t ino)
{
	struct ns_client *c = cl(ns);

	pthread_mutex_lock(&c->lock);
	mc_id_counts_add(&c->pins, ino, 1);
	pthread_mutex_unlock(&c->lock);
	send_pin(c, MC_WIRE_PIN, ino);
}

static void client_unpin(struct mc_ns *ns, uint64_t ino)
{
	struct ns_client *c = cl(ns);

	pthread_mutex_lock(&c->lock);
	mc_id_counts_add(&c->pins, ino, -1);
	pthread_mutex_unlock(&c->lock);
	send_pin(c, MC_WIRE_UNPIN, ino);
}

static int64_t client_evict(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
			    void (*fn)(void *ctx, const struct mc_ns_dropped *d),
			    void *ctx)
{
	struct mc_wire_msg req, rep;
	int64_t freed;
	int r;

	client_flush_touches(ns);	/* the LRU order must be current */
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_EVICT;
	req.u.evict.bytes = bytes;
	req.u.evict.unit = unit ? unit : 1;
	r = call(cl(ns), &req, &rep);
	if (r < 0) {
		mc_wire_msg_release(&rep);
		return r;
	}
	for (uint32_t i = 0; i < rep.u.dropped_list.count; i++)
		if (fn)
			fn(ctx, &rep.u.dropped_list.items[i]);
	freed = (int64_t)rep.u.dropped_list.freed;
	mc_wire_msg_release(&rep);
	return freed;
}

static void client_get_stats(struct mc_ns *ns, struct mc_ns_stats *out)
{
	struct mc_wire_msg req, rep;

	memset(out, 0, sizeof(*out));
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_STATS;
	if (call(cl(ns), &req, &rep) == 0)
		*out = rep.u.stats;
	mc_wire_msg_release(&rep);
}

static int client_name_of(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
			  char *name, size_t len)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_NAME_OF;
	req.u.ino = ino;
	r = call(cl(ns), &req, &rep);
	if (r == 0) {
		*parent = rep.u.name_of_reply.parent;
		if (snprintf(name, len, "%s", rep.u.name_of_reply.name) >=
		    (int)len)
			r = -ENAMETOOLONG;
	}
	mc_wire_msg_release(&rep);
	return r;
}

static int client_replicas(struct mc_ns *ns, uint64_t page_id,
			   struct mc_ns_replicas *out)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(out, 0, sizeof(*out));
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REPLICAS;
	req.u.page_id = page_id;
	r = call(cl(ns), &req, &rep);
	if (r == 0) {
		const struct mc_wire_replicas_reply *rr = &rep.u.replicas_reply;

		out->size = rr->size;
		out->crc32c = rr->crc32c;
		out->count = rr->count;
		for (unsigned i = 0; i < rr->count && i < MC_NS_MAX_REPLICAS;
		     i++) {
			out->r[i].segment_id = rr->replicas[i].segment_id;
			snprintf(out->r[i].address, sizeof(out->r[i].address),
				 "%s", rr->replicas[i].address);
			out->r[i].port = rr->replicas[i].port;
		}
	}
	mc_wire_msg_release(&rep);
	return r;
}

static int client_add_replica(struct mc_ns *ns, uint64_t page_id)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_ADD_REPLICA;
	req.u.page_id = page_id;
	return call(cl(ns), &req, NULL);
}

static const struct mc_ns_ops client_ops = {
	.close = client_close,
	.forget_pages = client_forget_pages,
	.reserve = client_reserve,
	.lookup = client_lookup,
	.getattr = client_getattr,
	.mkdir = client_mkdir,
	.rmdir = client_rmdir,
	.commit = client_commit,
	.unlink = client_unlink,
	.rename = client_rename,
	.setattr = client_setattr,
	.touch = client_touch,
	.flush_touches = client_flush_touches,
	.readdir = client_readdir,
	.pin = client_pin,
	.unpin = client_unpin,
	.evict = client_evict,
	.get_stats = client_get_stats,
	.name_of = client_name_of,
	.replicas = client_replicas,
	.add_replica = client_add_replica,
};

bool mc_ns_client_connected(struct mc_ns *ns)
{
	struct ns_client *c = cl(ns);
	bool r;

	pthread_mutex_lock(&c->lock);
	r = c->registered;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

int mc_ns_connect(struct mc_ns **nsp, const struct mc_ns_client_params *p)
{
	struct ns_client *c;
	int r;

	*nsp = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	mc_id_counts_init(&c->pins);
	c->p = *p;
	if (c->p.timeout_ms == 0)
		c->p.timeout_ms = CLIENT_TIMEOUT_MS;
	r = mc_wire_parse_hostport(p->master, MC_WIRE_CONTROL_PORT,
				   c->master_host, sizeof(c->master_host),
				   &c->master_port);
	if (r < 0) {
		mc_log(MC_LOG_ERR,
		       "master: cannot parse master address '%s': give host:port, e.g. 10.0.0.1:50051",
		       p->master ? p->master : "");
		free(c);
		return -EINVAL;
	}
	c->name = dup_or_empty(p->name);
	c->host = dup_or_empty(p->host);
	c->address = dup_or_empty(p->address);
	c->protocol = dup_or_empty(p->protocol && *p->protocol ? p->protocol :
								 "tcp");
	c->ns.ops = &client_ops;
	c->ns.cluster = true;
	c->heartbeat_ms = 1000;
	pthread_mutex_init(&c->lock, NULL);
	r = -ENOMEM;
	if (!c->name || !c->host || !c->address || !c->protocol)
		goto fail;
	r = cond_init_monotonic(&c->state_cond);
	if (r < 0)
		goto fail;
	r = cond_init_monotonic(&c->hb_cond);
	if (r < 0) {
		pthread_cond_destroy(&c->state_cond);
		goto fail;
	}
	*nsp = &c->ns;
	return 0;
fail:
	pthread_mutex_destroy(&c->lock);
	free(c->name);
	free(c->host);
	free(c->address);
	free(c->protocol);
	free(c);
	return r;
}

int mc_ns_client_start(struct mc_ns *ns, uint16_t data_port, unsigned wait_ms)
{
	struct ns_client *c = cl(ns);
	struct timespec dl;
	int r;

	c->p.port = data_port;
	r = -pthread_create(&c->session_thread, NULL, session_main, c);
	if (r < 0)
		return r;
	c->session_running = true;
	r = -pthread_create(&c->heartbeat_thread, NULL, heartbeat_main, c);
	if (r < 0)
		return r;
	c->heartbeat_running = true;

	deadline_in(&dl, wait_ms);
	pthread_mutex_lock(&c->lock);
	while (!c->registered &&
	       pthread_cond_timedwait(&c->state_cond, &c->lock, &dl) !=
		       ETIMEDOUT)
		;
	pthread_mutex_unlock(&c->lock);
	return 0;
}
