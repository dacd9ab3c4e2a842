/*
 * master.c - mooncake_master's service: the store behind the control RPC.
 *
 * Threads:
 *   run()         accepts connections, one thread each;
 *   a connection  reads requests in order and answers each; replies are
 *                 queued and flushed when no further request is buffered,
 *                 so a pipelining client gets many replies per write;
 *                 COMMITs pipelined back to back are written in one store
 *                 transaction (on_commit()), since a transaction each
 *                 would be bound by the WAL writes; an EVICT may wait
 *                 up to MASTER_EVICT_WAIT_MS on m->moved_cond for its
 *                 segment's pages to land on another (on_evict());
 *   housekeeper   wakes every tick (a fraction of the heartbeat) or when
 *                 there is mail: declares silent segments dead, sends the
 *                 master's own requests (DROP, REPLICATE), writes the LRU
 *                 touches, and looks for pages short of replica_num copies.
 *
 * No request thread ever writes to another connection: what a request
 * means for other daemons (DROP a page they hold, REPLICATE a page) goes
 * into the target segment's outbox and the housekeeper sends it, so a slow
 * or stuck daemon can delay only the housekeeper, bounded by the send
 * timeout, never another daemon's requests.  A full segment's pages move
 * to one with room the same way: REPLICATE to the target, and when its
 * ADD_REPLICA comes, a DROP of the old copy (or the old segment's waiting
 * EVICT reply carries it).
 *
 * Lock order:  m->seg_rwlock  ->  m->lock
 *              m->seg_rwlock  ->  the store's st->lock
 * seg_rwlock is held shared by calls that add copies to a segment
 * (COMMIT, ADD_REPLICA, HOLDINGS, REGISTER), which check their session
 * under it, and exclusively while a segment is declared dead, so no copy
 * lands in a segment after its loss was recorded.  m->lock (segments,
 * their outboxes, the connection list and references) and st->lock are
 * never held together: the store's callbacks run with both free, and
 * sqlite work never blocks the registry.  A connection's send lock
 * (inside mc_wire_conn_queue/send) is a leaf, taken with none of these
 * held: replies are queued after the store call, and the housekeeper lets
 * go of m->lock to send an outbox, holding a reference on the connection,
 * so a stuck daemon never blocks the registry.  m->moved_cond is waited
 * on with m->lock alone.  doc/locking.md has the whole picture.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "id_counts.h"
#include "log.h"
#include "master.h"
#include "store.h"
#include "wire.h"
#include "wire_io.h"
#include "banned.h"

/* Heartbeats come every quarter ttl, but never more often than this. */
#define MASTER_MIN_HEARTBEAT_MS 100
/* LRU touches are written at least this often. */
#define MASTER_TOUCH_FLUSH_MS 1000
/* The re-replication scan runs this often (and after every death). */
#define MASTER_SCAN_MS 1000
/* Pages looked at, and REPLICATE requests sent, per scan at most. */
#define MASTER_SCAN_MAX 256
/* A page asked to be copied is not asked again for this long. */
#define MASTER_RECENT_MS 10000
#define MASTER_RECENT_SLOTS 4096
/*
 * Pages moving off a segment that asked for room (on_evict()), at most,
 * and how long one may take to land before it is forgotten: its segment
 * keeps the copy, and its next EVICT decides again.
 */
#define MASTER_MOVES_MAX 1024
#define MASTER_MOVE_MS 30000
/*
 * A segment takes moved pages up to this share of its capacity (percent),
 * counting what its last heartbeat said, what is on its way to it and what
 * landed since: below the daemons' default high watermark (0.9), so pages
 * moved there do not make it evict in turn.
 */
#define MASTER_MOVE_FILL_PCT 85
/*
 * An EVICT from a segment whose pages are still moving waits this long at
 * most (and never longer than a heartbeat period, which it delays) for
 * them to land, so that their memory is free when it is answered.
 */
#define MASTER_EVICT_WAIT_MS 500
/* Pipelined COMMITs of one connection written together at most. */
#define MASTER_RUN_MAX 64
/* Connection threads need little stack: messages live on the heap. */
#define MASTER_CONN_STACK (512 * 1024)
#define MASTER_MAX_CONNS 4096

enum seg_state {
	SEG_PENDING, /* known from before a master restart, not yet back */
	SEG_LIVE, /* registered, heartbeating (or within the ttl) */
	SEG_DEAD, /* declared dead: its copies were dropped */
};

/* A growable array of dropped pages (the outbox of DROP, store callbacks). */
struct drop_list {
	struct mc_ns_dropped *v;
	size_t n, cap;
};

struct id_list {
	uint64_t *v;
	size_t n, cap;
};

struct master_conn;

/*
 * An EVICT waiting for its segment's pages to land elsewhere (on_evict()):
 * the copies dropped from the segment as they land go into its reply.
 */
struct move_catch {
	struct drop_list drops;
	uint64_t unit; /* the EVICT's */
	uint64_t freed; /* the footprint of drops */
};

/*
 * One segment the master knows.  Entries are never freed while the master
 * runs (a dead one comes back to life when its uuid registers again), so a
 * pointer to one stays valid; every field is protected by m->lock.
 */
struct master_seg {
	uint64_t id;
	enum seg_state state;
	char host[MC_NAME_MAX + 1];
	char address[MC_WIRE_ADDR_MAX + 1];
	uint16_t port;
	uint64_t capacity;
	uint64_t used_bytes; /* from the last heartbeat */
	uint64_t pages;
	uint64_t last_seen_ms; /* REGISTER or HEARTBEAT, monotonic */
	bool reported; /* a HEARTBEAT came since REGISTER: the figures hold */
	uint64_t moving_out; /* footprint of its pages moving elsewhere */
	uint64_t moving_in; /* footprint of pages moving here */
	uint64_t moved_in; /* footprint landed here since the last heartbeat */
	struct move_catch *catch; /* its EVICT waiting for moves, or NULL */
	struct master_conn *conn; /* the registered session, or NULL */
	struct drop_list drops; /* outbox: DROP */
	struct id_list repl; /* outbox: REPLICATE */
};

/* A request received and not yet answered. */
struct master_req {
	struct mc_wire_header h;
	struct mc_wire_msg msg; /* owns what it decoded */
	int dstatus; /* the decoder's: < 0, answer it */
};

/* One client connection.  Owned by its thread; others hold references. */
struct master_conn {
	struct mc_master *m;
	struct mc_wire_conn *wc;
	char peer[64]; /* address:port, for logs */
	/* protected by m->lock */
	unsigned refs;
	struct master_seg *seg; /* the live segment it registered, or NULL */
	bool registered; /* it registered once (-EPERM vs -ENOENT) */
	struct master_conn *prev, *next;
	/* the connection's thread only */
	bool hello_done;
	bool holdings_open; /* a HOLDINGS reconcile is under way */
	struct mc_id_counts pins; /* the pins it took, by inode */
	/* per-request scratch, sized MC_WIRE_MAX_BATCH on first use */
	struct mc_wire_commit_result *results;
	struct mc_store_commit_item *items; /* grows to the largest run */
	size_t capitems;
	struct master_req *run; /* MASTER_RUN_MAX - 1 COMMITs after the first */
	struct mc_wire_dirent *dirents;
	struct mc_wire_reserved *reserved;
	int32_t *statuses;
	struct id_list ids;
	struct drop_list drops;
};

struct recent_ask {
	uint64_t page_id;
	uint64_t when_ms;
};

/* A page whose only copy is moving from one segment to another. */
struct move {
	uint64_t page_id;
	uint64_t from, to; /* segment ids */
	uint64_t footprint; /* in the unit of the EVICT that started it */
	uint64_t deadline_ms; /* forgotten after, landed or not */
};

struct mc_master {
	struct mc_store *st;
	char *db_path; /* for messages */
	int listen_fd;
	uint16_t port;
	int stop_pipe[2]; /* mc_master_stop() writes, run() polls */
	uint64_t client_ttl_ms;
	uint64_t heartbeat_ms;
	uint64_t tick_ms; /* housekeeper period */
	unsigned replica_num;
	uint64_t start_ms;
	_Atomic uint64_t next_id; /* ids of the master's own requests */

	pthread_rwlock_t seg_rwlock;
	pthread_mutex_t lock;

	pthread_cond_t hk_cond; /* wakes the housekeeper: mail, stop */
	pthread_cond_t idle_cond; /* wakes run(): a connection ended */
	pthread_cond_t moved_cond; /* a move ended: wakes a waiting EVICT */
	/* protected by m->lock */
	struct master_seg **segs;
	size_t nsegs, capsegs;
	struct master_conn *conns;
	size_t nconns;
	bool stopping;
	bool mail; /* an outbox has something */
	bool rescan; /* re-replication scan wanted now */
	struct move moves[MASTER_MOVES_MAX]; /* pages moving, unordered */
	size_t nmoves;

	/* the housekeeper's own */
	uint64_t scan_after;
	struct recent_ask recent[MASTER_RECENT_SLOTS];
};

/* ---- small helpers ---------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The CLOCK_MONOTONIC time ms from now, for a timed condition wait. */
static void deadline_in(struct timespec *ts, uint64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += (time_t)(ms / 1000) + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 16;
	void *nv;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	nv = realloc(*v, ncap * size);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	*cap = ncap;
	return 0;
}

static int drop_list_add(struct drop_list *l, const struct mc_ns_dropped *d)
{
	if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = *d;
	return 0;
}

static int id_list_add(struct id_list *l, uint64_t id)
{
	if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n++] = id;
	return 0;
}

/* Store callbacks: collect, so the work is done with no lock held. */
static void collect_dropped(void *ctx, const struct mc_ns_dropped *d)
{
	struct drop_list *l = ctx;

	if (drop_list_add(l, d) < 0)
		mc_log_ratelimited(
			MC_LOG_ERR,
			"master: out of memory noting dropped page %" PRIu64
			": a daemon may keep its copy until it restarts",
			d->page_id);
}

static void collect_id(void *ctx, uint64_t page_id)
{
	struct id_list *l = ctx;

	if (id_list_add(l, page_id) < 0)
		mc_log_ratelimited(MC_LOG_ERR,
				   "master: out of memory noting page %" PRIu64,
				   page_id);
}

static void collect_under(void *ctx, uint64_t page_id, unsigned copies)
{
	(void)copies;
	collect_id(ctx, page_id);
}

/*
 * A store call failed for a reason that is not the caller's (the disk,
 * memory): say so once a second at most.  Namespace answers (-ENOENT,
 * -EEXIST ...) are the client's business and not logged.
 */
static void store_failed(const struct mc_master *m, const char *what, int r)
{
	if (r != -EIO && r != -ENOMEM && r != -EBUSY && r != -ENOSPC)
		return;
	mc_log_ratelimited(
		MC_LOG_ERR,
		"store: %s failed on '%s' (%s): check the disk and the memory of the master host; clients see the error",
		what, m->db_path, strerror(-r));
}

/* ---- the segment registry (m->lock held) ------------------------------ */

static struct master_seg *seg_find_locked(struct mc_master *m, uint64_t id)
{
	for (size_t i = 0; i < m->nsegs; i++)
		if (m->segs[i]->id == id)
			return m->segs[i];
	return NULL;
}

static struct master_seg *seg_get_locked(struct mc_master *m, uint64_t id)
{
	struct master_seg *s = seg_find_locked(m, id);

	if (s)
		return s;
	if (grow((void **)&m->segs, &m->capsegs, m->nsegs + 1,
		 sizeof(*m->segs)) < 0)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->id = id;
	s->state = SEG_DEAD;
	m->segs[m->nsegs++] = s;
	return s;
}

static void seg_clear_outbox_locked(struct master_seg *s)
{
	s->drops.n = 0;
	s->repl.n = 0;
}

/* ---- pages moving off a full segment (m->lock held) -------------------- */

/*
 * When a segment asks for room (EVICT) and another has plenty, the master
 * moves the asker's oldest pages there instead of evicting them: the
 * target fetches each (REPLICATE), and when its ADD_REPLICA comes the old
 * copy is dropped (move_landed()).  m->moves remembers what is on its way,
 * so that an asker back too soon is not given the same room twice and a
 * target is not filled past its share.
 */

static uint64_t footprint(uint64_t size, uint64_t unit)
{
	return (size + unit - 1) / unit * unit;
}

static size_t move_find_locked(const struct mc_master *m, uint64_t page_id)
{
	for (size_t i = 0; i < m->nmoves; i++)
		if (m->moves[i].page_id == page_id)
			return i;
	return SIZE_MAX;
}

static void sub_floor(uint64_t *v, uint64_t n)
{
	*v = *v > n ? *v - n : 0;
}

/* Forget move i, landed or not, and wake an EVICT that may wait for it. */
static void move_end_locked(struct mc_master *m, size_t i)
{
	const struct move *mv = &m->moves[i];
	struct master_seg *s;

	s = seg_find_locked(m, mv->from);
	if (s)
		sub_floor(&s->moving_out, mv->footprint);
	s = seg_find_locked(m, mv->to);
	if (s)
		sub_floor(&s->moving_in, mv->footprint);
	m->moves[i] = m->moves[--m->nmoves];
	pthread_cond_broadcast(&m->moved_cond);
}

/* Forget the moves from segment `from` and those to `to` (0: none). */
static size_t moves_forget_locked(struct mc_master *m, uint64_t from,
				  uint64_t to)
{
	size_t n = 0;

	/* downwards: the entry moved into slot i was looked at already */
	for (size_t i = m->nmoves; i-- > 0;) {
		if (m->moves[i].from == from || m->moves[i].to == to) {
			move_end_locked(m, i);
			n++;
		}
	}
	return n;
}

/* A page left the namespace: a move of it can never land. */
static void move_forget_page_locked(struct mc_master *m, uint64_t page_id)
{
	size_t i = move_find_locked(m, page_id);

	if (i != SIZE_MAX)
		move_end_locked(m, i);
}

/*
 * Room segment s may still take as a move target: up to
 * MASTER_MOVE_FILL_PCT of its capacity, by its last heartbeat and what
 * moved there since.
 */
static uint64_t seg_move_room(const struct master_seg *s)
{
	uint64_t limit = s->capacity / 100 * MASTER_MOVE_FILL_PCT;
	uint64_t used = s->used_bytes + s->moving_in + s->moved_in;

	return limit > used ? limit - used : 0;
}

/* The live segment but `from` with the most room for moves, or NULL. */
static struct master_seg *pick_move_target_locked(struct mc_master *m,
						  uint64_t from)
{
	struct master_seg *best = NULL;

	for (size_t i = 0; i < m->nsegs; i++) {
		struct master_seg *s = m->segs[i];

		/* not before its first heartbeat: its memory is unknown */
		if (s->id == from || s->state != SEG_LIVE || !s->conn ||
		    !s->reported)
			continue;
		if (!best || seg_move_room(s) > seg_move_room(best))
			best = s;
	}
	return best && seg_move_room(best) > 0 ? best : NULL;
}

/* Queue a DROP of d in s's outbox (the caller wakes the housekeeper). */
static void seg_queue_drop_locked(struct mc_master *m, struct master_seg *s,
				  const struct mc_ns_dropped *d)
{
	if (drop_list_add(&s->drops, d) < 0) {
		mc_log_ratelimited(
			MC_LOG_ERR,
			"master: out of memory queueing a drop of page %" PRIu64
			" for segment %" PRIu64
			": it keeps the copy until it restarts",
			d->page_id, s->id);
		return;
	}
	m->mail = true;
}

/*
 * Queue a DROP of d for every segment holding a copy but `except` (the
 * requester, who learns it from its reply).  Segments without a live
 * session get nothing: a daemon that comes back reconciles its holdings.
 */
static void drop_to_holders_locked(struct mc_master *m,
				   const struct mc_ns_dropped *d,
				   uint64_t except)
{
	struct master_seg *s;

	if (d->ino == 0 || d->page_id == 0)
		return;
	for (unsigned i = 0; i < d->nsegments && i < MC_NS_MAX_REPLICAS; i++) {
		if (d->segments[i] == except)
			continue;
		s = seg_find_locked(m, d->segments[i]);
		if (s && s->state == SEG_LIVE && s->conn)
			seg_queue_drop_locked(m, s, d);
	}
}

static void drops_to_holders(struct mc_master *m, const struct mc_ns_dropped *d,
			     size_t n, uint64_t except)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++) {
		drop_to_holders_locked(m, &d[i], except);
		if (!(d[i].flags & MC_NS_DROPPED_COPY))
			move_forget_page_locked(m, d[i].page_id);
	}
	if (m->mail)
		pthread_cond_signal(&m->hk_cond);
	pthread_mutex_unlock(&m->lock);
}

static uint64_t seg_free(const struct master_seg *s)
{
	return s->capacity > s->used_bytes ? s->capacity - s->used_bytes : 0;
}

/*
 * Up to want live, connected segments not in have[], most free memory
 * first (from heartbeats).  Returns how many were put in out.
 */
static size_t pick_targets_locked(struct mc_master *m, const uint64_t *have,
				  size_t nhave, size_t want,
				  struct master_seg **out)
{
	size_t n = 0;

	while (n < want) {
		struct master_seg *best = NULL;

		for (size_t i = 0; i < m->nsegs; i++) {
			struct master_seg *s = m->segs[i];
			bool skip = s->state != SEG_LIVE || !s->conn;

			for (size_t j = 0; !skip && j < nhave; j++)
				skip = have[j] == s->id;
			for (size_t j = 0; !skip && j < n; j++)
				skip = out[j] == s;
			if (!skip && (!best || seg_free(s) > seg_free(best)))
				best = s;
		}
		if (!best)
			break;
		out[n++] = best;
	}
	return n;
}

/* ---- connections: references ------------------------------------------ */

static void conn_free(struct master_conn *c)
{
	mc_wire_conn_close(c->wc);
	mc_id_counts_release(&c->pins);
	free(c->results);
	free(c->items);
	free(c->run);
	free(c->dirents);
	free(c->reserved);
	free(c->statuses);
	free(c->ids.v);
	free(c->drops.v);
	free(c);
}

static void conn_get_locked(struct master_conn *c)
{
	c->refs++;
}

static void conn_put(struct master_conn *c)
{
	struct mc_master *m = c->m;
	bool last;

	pthread_mutex_lock(&m->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&m->lock);
	if (last)
		conn_free(c);
}

/*
 * The live segment this connection registered: 0 and *id, or -EPERM (it
 * has none: it never registered, or its segment was declared dead or
 * taken over by a newer connection; REGISTER again).
 */
static int session_segment(struct master_conn *c, uint64_t *id)
{
	struct mc_master *m = c->m;
	int r = -EPERM;

	pthread_mutex_lock(&m->lock);
	if (c->seg && c->seg->state == SEG_LIVE && c->seg->conn == c) {
		*id = c->seg->id;
		r = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* ---- replies ------------------------------------------------------------ */

/*
 * Queue the reply to h.  An encoder error (a bug on this side: the reply
 * could not be encoded) is logged and answered -EIO so the client is not
 * left waiting; a connection error is returned (close).
 */
static int reply(struct master_conn *c, const struct mc_wire_header *h,
		 struct mc_wire_msg *rep)
{
	struct mc_wire_msg err;
	int r;

	rep->type = (uint16_t)(h->type | MC_WIRE_REPLY);
	r = mc_wire_conn_queue(c->wc, rep, h->id);
	if (r == -EINVAL || r == -EMSGSIZE || r == -ENOSYS) {
		mc_log_ratelimited(
			MC_LOG_ERR,
			"master: cannot encode the %s reply for '%s' (%s): answered EIO; report a bug",
			mc_wire_type_name(h->type) ?
				mc_wire_type_name(h->type) :
				"unknown",
			c->peer, strerror(-r));
		memset(&err, 0, sizeof(err));
		err.type = rep->type;
		err.status = -EIO;
		r = mc_wire_conn_queue(c->wc, &err, h->id);
	}
	return r;
}

static int reply_status(struct master_conn *c, const struct mc_wire_header *h,
			int status)
{
	struct mc_wire_msg rep;

	memset(&rep, 0, sizeof(rep));
	rep.status = status;
	return reply(c, h, &rep);
}

static int scratch(void **p, size_t size)
{
	if (*p)
		return 0;
	*p = calloc(MC_WIRE_MAX_BATCH, size);
	return *p ? 0 : -ENOMEM;
}

/* ---- session requests ---------------------------------------------------- */

static int on_register(struct master_conn *c, const struct mc_wire_header *h,
		       const struct mc_wire_register *reg)
{
	struct mc_master *m = c->m;
	struct mc_store_segment sseg;
	struct drop_list lost = { 0 };
	struct master_conn *old = NULL;
	struct master_seg *s;
	struct mc_wire_msg rep;
	char host[MC_NAME_MAX * 4 + 8];
	int64_t n = 0;
	int r;

	memset(&sseg, 0, sizeof(sseg));
	memcpy(sseg.uuid, reg->segment, sizeof(sseg.uuid));
	snprintf(sseg.host, sizeof(sseg.host), "%s", reg->host);
	snprintf(sseg.address, sizeof(sseg.address), "%s", reg->address);
	sseg.port = reg->port;
	sseg.capacity = reg->capacity;
	snprintf(sseg.protocol, sizeof(sseg.protocol), "%s", reg->protocol);
	mc_log_escape(reg->host, host, sizeof(host));

	pthread_rwlock_rdlock(&m->seg_rwlock);
	r = mc_store_segment_register(m->st, &sseg);
	if (r < 0) {
		store_failed(m, "REGISTER", r);
		goto out_unlock;
	}
	if (reg->flags & MC_WIRE_REGISTER_POOL_LOST) {
		n = mc_store_segment_lost(m->st, sseg.id, collect_dropped,
					  &lost);
		if (n < 0) {
			r = (int)n;
			store_failed(m, "REGISTER (pool lost)", r);
			goto out_unlock;
		}
	}
	r = mc_store_holdings_begin(m->st, sseg.id);
	if (r < 0) {
		store_failed(m, "REGISTER (holdings)", r);
		goto out_unlock;
	}

	pthread_mutex_lock(&m->lock);
	s = seg_get_locked(m, sseg.id);
	if (!s) {
		pthread_mutex_unlock(&m->lock);
		r = -ENOMEM;
		goto out_unlock;
	}
	if (s->conn && s->conn != c) {
		/* a restarted daemon whose old connection has not died yet */
		old = s->conn;
		conn_get_locked(old);
		old->seg = NULL;
	}
	if (c->seg && c->seg != s && c->seg->conn == c)
		c->seg->conn = NULL; /* re-registered as another segment */
	if (s->state != SEG_LIVE)
		seg_clear_outbox_locked(s);
	s->state = SEG_LIVE;
	snprintf(s->host, sizeof(s->host), "%s", reg->host);
	snprintf(s->address, sizeof(s->address), "%s", reg->address);
	s->port = reg->port;
	s->capacity = reg->capacity;
	s->last_seen_ms = now_ms();
	s->reported = false;
	s->moved_in = 0;
	/*
	 * A restarted daemon lost the copies it was asked to make; with its
	 * memory gone, its own pages cannot move either.
	 */
	if (reg->flags & MC_WIRE_REGISTER_POOL_LOST)
		moves_forget_locked(m, s->id, s->id);
	else
		moves_forget_locked(m, 0, s->id);
	s->conn = c;
	c->seg = s;
	c->registered = true;
	m->rescan = true; /* a new home for copies */
	pthread_mutex_unlock(&m->lock);
	c->holdings_open = true;

out_unlock:
	pthread_rwlock_unlock(&m->seg_rwlock);
	if (r == 0) {
		mc_log(MC_LOG_INFO,
		       "segment %" PRIu64
		       " registered: host '%s', data at %s:%u, %" PRIu64
		       " bytes, %s, from %s",
		       sseg.id, host, reg->address, (unsigned)reg->port,
		       reg->capacity, reg->protocol, c->peer);
		if (reg->flags & MC_WIRE_REGISTER_POOL_LOST)
			mc_log(MC_LOG_NOTICE,
			       "segment %" PRIu64
			       " (host '%s') came back with fresh memory: %" PRId64
			       " copies it held are dropped",
			       sseg.id, host, n);
		drops_to_holders(m, lost.v, lost.n, sseg.id);
	}
	free(lost.v);
	if (old) {
		mc_log(MC_LOG_NOTICE,
		       "segment %" PRIu64
		       " (host '%s') registered again from %s: closing its old connection from %s",
		       sseg.id, host, c->peer, old->peer);
		mc_wire_conn_shutdown(old->wc);
		conn_put(old);
	}
	if (r < 0)
		return reply_status(c, h, r);
	memset(&rep, 0, sizeof(rep));
	rep.u.reg_reply.segment_id = sseg.id;
	rep.u.reg_reply.heartbeat_ms = m->heartbeat_ms;
	rep.u.reg_reply.client_ttl_ms = m->client_ttl_ms;
	return reply(c, h, &rep);
}

static int on_heartbeat(struct master_conn *c, const struct mc_wire_header *h,
			const struct mc_wire_heartbeat *hb)
{
	struct mc_master *m = c->m;
	struct master_seg *s;
	int r;

	pthread_mutex_lock(&m->lock);
	s = c->seg;
	if (!c->registered) {
		r = -EPERM;
	} else if (!s || s->conn != c || s->state != SEG_LIVE ||
		   s->id != hb->segment_id) {
		r = -ENOENT; /* declared dead or taken over: register again */
	} else {
		s->last_seen_ms = now_ms();
		s->used_bytes = hb->used_bytes;
		s->pages = hb->pages;
		/* what moved here so far is in used_bytes now */
		s->reported = true;
		s->moved_in = 0;
		r = 0;
	}
	pthread_mutex_unlock(&m->lock);
	return reply_status(c, h, r);
}

static int on_holdings(struct master_conn *c, const struct mc_wire_header *h,
		       const struct mc_wire_holdings *ho)
{
	struct mc_master *m = c->m;
	struct drop_list gone = { 0 };
	struct mc_wire_msg rep;
	uint64_t seg = 0;
	int64_t n;
	int r;

	c->ids.n = 0;
	/* checked under the lock: no copy lands after the death is recorded */
	pthread_rwlock_rdlock(&m->seg_rwlock);
	r = session_segment(c, &seg);
	if (r < 0)
		goto out_unlock;
	if (!c->holdings_open) {
		r = mc_store_holdings_begin(m->st, seg);
		if (r < 0) {
			store_failed(m, "HOLDINGS", r);
			goto out_unlock;
		}
		c->holdings_open = true;
	}
	r = mc_store_holdings_add(m->st, seg, ho->ids, ho->count, collect_id,
				  &c->ids);
	if (r < 0) {
		store_failed(m, "HOLDINGS", r);
		goto out_unlock;
	}
	if (ho->last) {
		c->holdings_open = false;
		n = mc_store_holdings_end(m->st, seg, collect_dropped, &gone);
		if (n < 0) {
			r = (int)n;
			store_failed(m, "HOLDINGS", r);
			goto out_unlock;
		}
		mc_log(MC_LOG_INFO,
		       "segment %" PRIu64 " reconciled its holdings: %" PRId64
		       " copies it no longer holds are dropped",
		       seg, n);
	}
out_unlock:
	pthread_rwlock_unlock(&m->seg_rwlock);
	drops_to_holders(m, gone.v, gone.n, seg);
	free(gone.v);
	if (r < 0)
		return reply_status(c, h, r);
	memset(&rep, 0, sizeof(rep));
	/* at most one unknown id per id sent, so the reply fits a batch */
	rep.u.ids.count = (uint32_t)(c->ids.n < MC_WIRE_MAX_BATCH ?
					     c->ids.n :
					     MC_WIRE_MAX_BATCH);
	rep.u.ids.ids = c->ids.v;
	return reply(c, h, &rep);
}

/* ---- placement requests ------------------------------------------------ */

/* Queue REPLICATE of pages[] to replica_num - 1 segments besides `from`. */
static void replicate_new(struct mc_master *m, uint64_t from,
			  const uint64_t *pages, size_t n)
{
	struct master_seg *t[MC_NS_MAX_REPLICAS];
	size_t nt;

	if (n == 0 || m->replica_num <= 1)
		return;
	pthread_mutex_lock(&m->lock);
	nt = pick_targets_locked(m, &from, 1, m->replica_num - 1, t);
	for (size_t i = 0; i < nt; i++) {
		for (size_t j = 0; j < n; j++) {
			if (id_list_add(&t[i]->repl, pages[j]) < 0) {
				mc_log_ratelimited(
					MC_LOG_ERR,
					"master: out of memory queueing copies for segment %" PRIu64
					": the re-replication scan retries",
					t[i]->id);
				break;
			}
		}
		m->mail = true;
	}
	if (m->mail)
		pthread_cond_signal(&m->hk_cond);
	pthread_mutex_unlock(&m->lock);
}

/*
 * COMMITs run[0..n), received back to back on c: one transaction for all
 * their items, then one reply each, in order.  0, or the connection error that ended the replies.
 */
static int commit_run(struct master_conn *c, struct master_req **run, size_t n)
{
	struct mc_master *m = c->m;
	struct mc_wire_msg rep;
	size_t total = 0, k = 0;
	uint64_t seg = 0;
	int status, r = 0;

	for (size_t j = 0; j < n; j++)
		total += run[j]->msg.u.commit.count;
	status = scratch((void **)&c->results, sizeof(*c->results));
	if (status == 0)
		status = grow((void **)&c->items, &c->capitems,
			      total ? total : 1, sizeof(*c->items));
	c->drops.n = 0;
	c->ids.n = 0;

	/* shared, and checked under it: a death waits for these copies */
	pthread_rwlock_rdlock(&m->seg_rwlock);
	if (status == 0)
		status = session_segment(c, &seg);
	for (size_t j = 0; status == 0 && j < n; j++) {
		const struct mc_wire_commit *cm = &run[j]->msg.u.commit;

		for (uint32_t i = 0; i < cm->count; i++) {
			const struct mc_wire_commit_item *it = &cm->items[i];

			/* a daemon commits what it wrote into its own pool */
			if (it->nsegments < 1 || it->segments[0] != seg)
				continue;
			c->items[k++] = (struct mc_store_commit_item){
				.c = {
					.parent = it->parent,
					.name = it->name,
					.ino = it->ino,
					.page_id = it->page_id,
					.mode = it->mode,
					.uid = it->uid,
					.gid = it->gid,
					.size = it->size,
					.mtime_ns = it->mtime_ns,
					.crc32c = it->crc32c,
				},
				.segment = seg,
			};
		}
	}
	if (k > 0)
		mc_store_commit_batch(m->st, c->items, k);
	pthread_rwlock_unlock(&m->seg_rwlock);
	for (size_t i = 0; i < k; i++) {
		const struct mc_store_commit_item *si = &c->items[i];

		if (si->status < 0) {
			store_failed(m, "COMMIT", si->status);
			continue;
		}
		/* out of memory here costs a notice, never the commit */
		if (si->replaced.ino != 0)
			collect_dropped(&c->drops, &si->replaced);
		if (m->replica_num > 1)
			collect_id(&c->ids, si->c.page_id);
	}

	k = 0;
	for (size_t j = 0; r == 0 && j < n; j++) {
		const struct mc_wire_commit *cm = &run[j]->msg.u.commit;

		if (status < 0) {
			r = reply_status(c, &run[j]->h, status);
			continue;
		}
		for (uint32_t i = 0; i < cm->count; i++) {
			const struct mc_wire_commit_item *it = &cm->items[i];
			struct mc_wire_commit_result *res = &c->results[i];
			const struct mc_store_commit_item *si;

			memset(res, 0, sizeof(*res));
			if (it->nsegments < 1 || it->segments[0] != seg) {
				res->status = -EPERM;
				continue;
			}
			si = &c->items[k++];
			res->status = si->status;
			if (si->status == 0)
				res->replaced = si->replaced;
		}
		memset(&rep, 0, sizeof(rep));
		rep.u.commit_reply.count = cm->count;
		rep.u.commit_reply.items = c->results;
		/* encoded now, so c->results serves the next one */
		r = reply(c, &run[j]->h, &rep);
	}
	drops_to_holders(m, c->drops.v, c->drops.n, seg);
	replicate_new(m, seg, c->ids.v, c->ids.n);
	return r;
}

/* What offer_move() is filling: one target, for one EVICT. */
struct move_offer {
	struct mc_master *m;
	uint64_t from, to;
	uint64_t deadline_ms;
	uint64_t taken; /* footprint put on its way */
	size_t pages;
};

/* mc_store_sole_copies(): start moving page d to o->to while it has room. */
static int offer_move(void *ctx, const struct mc_ns_dropped *d, uint64_t fp)
{
	struct move_offer *o = ctx;
	struct mc_master *m = o->m;
	struct master_seg *s, *t;
	int r = 1;

	pthread_mutex_lock(&m->lock);
	s = seg_find_locked(m, o->from);
	t = seg_find_locked(m, o->to);
	if (move_find_locked(m, d->page_id) != SIZE_MAX)
		r = 0; /* on its way already */
	else if (!s || !t || t->state != SEG_LIVE || !t->conn ||
		 fp > seg_move_room(t) || m->nmoves == MASTER_MOVES_MAX)
		r = -1;
	else if (id_list_add(&t->repl, d->page_id) < 0)
		r = -1;
	if (r == 1) {
		m->moves[m->nmoves++] = (struct move){
			.page_id = d->page_id,
			.from = o->from,
			.to = o->to,
			.footprint = fp,
			.deadline_ms = o->deadline_ms,
		};
		s->moving_out += fp;
		t->moving_in += fp;
		m->mail = true;
		o->taken += fp;
		o->pages++;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

/*
 * Start moving up to `want` of footprint of the pages whose only copy is
 * in segment `from`, oldest first, to segment `to`.  Returns the footprint
 * put on its way; the memory comes back as the pages land.
 */
static uint64_t move_pages(struct mc_master *m, uint64_t from, uint64_t to,
			   uint64_t want, uint64_t unit)
{
	struct move_offer o = {
		.m = m,
		.from = from,
		.to = to,
		.deadline_ms = now_ms() + MASTER_MOVE_MS,
	};
	int64_t r;

	r = mc_store_sole_copies(m->st, from, want, unit, offer_move, &o);
	if (r < 0)
		store_failed(m, "EVICT (moving pages)", (int)r);
	pthread_mutex_lock(&m->lock);
	if (m->mail)
		pthread_cond_signal(&m->hk_cond);
	pthread_mutex_unlock(&m->lock);
	if (o.pages)
		mc_log(MC_LOG_DEBUG,
		       "segment %" PRIu64 " is full: moving %zu pages (%" PRIu64
		       " bytes) to segment %" PRIu64,
		       from, o.pages, o.taken, to);
	return o.taken;
}

/*
 * Wait a moment for the pages of segment seg that are moving to land,
 * until their copies here free `want`: those copies go into out (they are
 * the EVICT's to report).  Moves that do not land in time are forgotten
 * (they may still land; the copy here then stays, a copy like any other)
 * and counted in *late.  Returns the footprint of the copies caught.
 */
static uint64_t await_moves(struct mc_master *m, uint64_t seg, uint64_t want,
			    uint64_t unit, struct drop_list *out, size_t *late)
{
	uint64_t wait_ms = m->heartbeat_ms < MASTER_EVICT_WAIT_MS ?
				   m->heartbeat_ms :
				   MASTER_EVICT_WAIT_MS;
	struct move_catch mc = { .unit = unit };
	struct master_seg *s;
	struct timespec ts;

	*late = 0;
	deadline_in(&ts, wait_ms);
	pthread_mutex_lock(&m->lock);
	s = seg_find_locked(m, seg);
	if (s && !s->catch) {
		s->catch = &mc;
		while (!m->stopping && s->state == SEG_LIVE &&
		       s->moving_out > 0 && mc.freed < want) {
			if (pthread_cond_timedwait(&m->moved_cond, &m->lock,
						   &ts) == ETIMEDOUT)
				break;
		}
		if (mc.freed < want && s->moving_out > 0)
			*late = moves_forget_locked(m, seg, 0);
		s->catch = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	if (*late)
		mc_log_ratelimited(
			MC_LOG_INFO,
			"segment %" PRIu64
			" needs room and %zu of its pages moving to other segments did not land within %" PRIu64
			" ms: evicting instead",
			seg, *late, wait_ms);
	for (size_t i = 0; i < mc.drops.n; i++)
		collect_dropped(out, &mc.drops.v[i]);
	free(mc.drops.v);
	return mc.freed;
}

/*
 * Segment `to` said it holds page_id (added), or was told the page is
 * gone: end the page's move there, if one runs.  Once the page landed, the
 * copy it moved from is dropped, unless the page is open somewhere, and
 * its segment told: in the reply of its EVICT that waits for it, else by
 * DROP.
 */
static void move_landed(struct mc_master *m, uint64_t page_id, uint64_t to,
			bool added)
{
	struct master_seg *s, *t;
	struct mc_ns_dropped d;
	uint64_t from, fp;
	size_t i;
	int r;

	pthread_mutex_lock(&m->lock);
	i = move_find_locked(m, page_id);
	if (i == SIZE_MAX || m->moves[i].to != to) {
		pthread_mutex_unlock(&m->lock);
		return;
	}
	from = m->moves[i].from;
	fp = m->moves[i].footprint;
	if (!added)
		move_end_locked(m, i);
	pthread_mutex_unlock(&m->lock);
	if (!added)
		return;

	r = mc_store_drop_copy(m->st, page_id, from, &d);
	if (r < 0 && r != -EBUSY && r != -ENOENT)
		store_failed(m, "ADD_REPLICA (moving a page)", r);

	pthread_mutex_lock(&m->lock);
	/* ended with the drop routed, so a waiting EVICT sees both at once */
	i = move_find_locked(m, page_id);
	if (i != SIZE_MAX && m->moves[i].from == from && m->moves[i].to == to)
		move_end_locked(m, i);
	t = seg_find_locked(m, to);
	if (t)
		t->moved_in += fp;
	s = seg_find_locked(m, from);
	if (r == 0 && s && s->state == SEG_LIVE && s->conn) {
		if (s->catch && drop_list_add(&s->catch->drops, &d) == 0) {
			s->catch->freed += footprint(d.size, s->catch->unit);
		} else {
			seg_queue_drop_locked(m, s, &d);
			pthread_cond_signal(&m->hk_cond);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/*
 * Make room in the sender's segment S, in this order:
 *  1. drop S's copies of pages that have a copy elsewhere;
 *  2. when pages of S are still moving, wait a moment for them to land
 *     (the daemon is back before they did: it writes faster than they
 *     move, and may have no room left at all);
 *  3. move S's oldest pages whose only copy is there to the live segment
 *     with the most room (REPLICATE), without waiting: the daemon goes on
 *     in the rest of its pool above the watermark, and its memory comes
 *     back as they land (DROP);
 *  4. evict, as on one host, what no other segment can take (the oldest
 *     pages go, the younger move), or all of it when the moves of 2 did
 *     not land in time or nothing could move.
 * The reply has what 1, 2 and 4 freed; 3 frees later.  Since pages move
 * whole, 3 may start a little more or less than asked; the next EVICT
 * settles the difference.
 */
static int on_evict(struct master_conn *c, const struct mc_wire_header *h,
		    const struct mc_wire_evict *ev)
{
	struct mc_master *m = c->m;
	struct drop_list out = { 0 };
	struct mc_wire_msg rep, drop;
	struct master_seg *s, *t;
	uint64_t seg, want, fit = 0, to = 0, moving = 0;
	uint64_t unit = ev->unit ? ev->unit : 1, freed;
	size_t first, evicted, late = 0;
	int64_t n;
	int r;

	r = session_segment(c, &seg);
	if (r < 0)
		return reply_status(c, h, r);
	n = mc_store_evict_copies(m->st, seg, ev->bytes, unit, collect_dropped,
				  &out);
	if (n < 0)
		goto out_failed;
	freed = (uint64_t)n;
	want = ev->bytes > freed ? ev->bytes - freed : 0;

	pthread_mutex_lock(&m->lock);
	s = seg_find_locked(m, seg);
	moving = want && s ? s->moving_out : 0;
	pthread_mutex_unlock(&m->lock);
	if (moving) {
		n = (int64_t)await_moves(m, seg, want, unit, &out, &late);
		freed += (uint64_t)n;
		sub_floor(&want, (uint64_t)n);
	}

	if (want && !late) {
		pthread_mutex_lock(&m->lock);
		t = pick_move_target_locked(m, seg);
		if (t) {
			to = t->id;
			fit = seg_move_room(t);
		}
		pthread_mutex_unlock(&m->lock);
	}
	evicted = out.n;
	if (want > fit) {
		/* more than the others take: the oldest go, the rest move */
		n = mc_store_evict(m->st, seg, want - fit, unit,
				   collect_dropped, &out);
		if (n < 0)
			goto out_failed;
		freed += (uint64_t)n;
		sub_floor(&want, (uint64_t)n);
	}
	if (want && to && move_pages(m, seg, to, want, unit) == 0) {
		/* nothing could move (too big for the room, or open) */
		n = mc_store_evict(m->st, seg, want, unit, collect_dropped,
				   &out);
		if (n < 0)
			goto out_failed;
		freed += (uint64_t)n;
	}
	/* pages evicted while moving (the last resort) will never land */
	pthread_mutex_lock(&m->lock);
	for (size_t i = evicted; i < out.n; i++)
		if (!(out.v[i].flags & MC_NS_DROPPED_COPY))
			move_forget_page_locked(m, out.v[i].page_id);
	pthread_mutex_unlock(&m->lock);

	first = out.n < MC_WIRE_MAX_BATCH ? out.n : MC_WIRE_MAX_BATCH;
	memset(&rep, 0, sizeof(rep));
	rep.u.dropped_list.freed = freed;
	rep.u.dropped_list.count = (uint32_t)first;
	rep.u.dropped_list.items = out.v;
	r = reply(c, h, &rep);
	/* the rest follows on the same connection, right after the reply */
	for (size_t i = first; r == 0 && i < out.n; i += MC_WIRE_MAX_BATCH) {
		size_t k = out.n - i < MC_WIRE_MAX_BATCH ? out.n - i :
							   MC_WIRE_MAX_BATCH;

		memset(&drop, 0, sizeof(drop));
		drop.type = MC_WIRE_DROP;
		drop.u.dropped_list.count = (uint32_t)k;
		drop.u.dropped_list.items = out.v + i;
		r = mc_wire_conn_queue(c->wc, &drop,
				       atomic_fetch_add(&m->next_id, 1));
	}
	free(out.v);
	return r;

out_failed:
	/* what was dropped already is gone: the daemon reconciles it later */
	store_failed(m, "EVICT", (int)n);
	free(out.v);
	return reply_status(c, h, (int)n);
}

static int on_add_replica(struct master_conn *c, const struct mc_wire_header *h,
			  uint64_t page_id)
{
	struct mc_master *m = c->m;
	uint64_t seg = 0;
	int r;

	/* checked under the lock: no copy lands after the death is recorded */
	pthread_rwlock_rdlock(&m->seg_rwlock);
	r = session_segment(c, &seg);
	if (r == 0) {
		r = mc_store_add_replica(m->st, page_id, seg);
		store_failed(m, "ADD_REPLICA", r);
	}
	pthread_rwlock_unlock(&m->seg_rwlock);
	if (r == 0 || r == -ENOENT)
		move_landed(m, page_id, seg, r == 0);
	return reply_status(c, h, r);
}

static int on_replicas(struct master_conn *c, const struct mc_wire_header *h,
		       uint64_t page_id)
{
	struct mc_master *m = c->m;
	struct mc_wire_replicas_reply *rr;
	uint64_t segs[MC_WIRE_MAX_REPLICAS];
	struct mc_wire_msg rep;
	unsigned n = 0;
	int r;

	memset(&rep, 0, sizeof(rep));
	rr = &rep.u.replicas_reply;
	r = mc_store_replicas(m->st, page_id, &rr->size, &rr->crc32c, segs,
			      MC_WIRE_MAX_REPLICAS, &n);
	if (r < 0) {
		store_failed(m, "REPLICAS", r);
		return reply_status(c, h, r);
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < n && i < MC_WIRE_MAX_REPLICAS; i++) {
		struct master_seg *s = seg_find_locked(m, segs[i]);
		struct mc_wire_replica *w;

		/* pending and dead segments are not offered to readers */
		if (!s || s->state != SEG_LIVE)
			continue;
		w = &rr->replicas[rr->count++];
		w->segment_id = s->id;
		snprintf(w->address, sizeof(w->address), "%s", s->address);
		w->port = s->port;
	}
	pthread_mutex_unlock(&m->lock);
	if (rr->count == 0)
		return reply_status(c, h, -ENOENT);
	return reply(c, h, &rep);
}

/* ---- namespace requests ------------------------------------------------- */

/* The requester's segment, if it has one (0 otherwise): it needs no DROP. */
static uint64_t own_segment(struct master_conn *c)
{
	uint64_t seg = 0;

	if (session_segment(c, &seg) < 0)
		seg = 0;
	return seg;
}

static int on_reserve(struct master_conn *c, const struct mc_wire_header *h,
		      uint32_t count)
{
	struct mc_wire_msg rep;
	int r = 0;

	if (count > MC_WIRE_MAX_BATCH)
		return reply_status(c, h, -EINVAL);
	if (scratch((void **)&c->reserved, sizeof(*c->reserved)) < 0)
		return reply_status(c, h, -ENOMEM);
	for (uint32_t i = 0; i < count && r == 0; i++)
		r = mc_store_reserve(c->m->st, &c->reserved[i].ino,
				     &c->reserved[i].page_id);
	if (r < 0) {
		store_failed(c->m, "RESERVE", r);
		return reply_status(c, h, r);
	}
	memset(&rep, 0, sizeof(rep));
	rep.u.reserve_reply.count = count;
	rep.u.reserve_reply.items = c->reserved;
	return reply(c, h, &rep);
}

static int on_dropping(struct master_conn *c, const struct mc_wire_header *h,
		       const struct mc_wire_msg *req)
{
	struct mc_master *m = c->m;
	struct mc_wire_msg rep;
	int r;

	memset(&rep, 0, sizeof(rep));
	if (h->type == MC_WIRE_UNLINK) {
		r = mc_store_unlink(m->st, req->u.entry.parent,
				    req->u.entry.name, &rep.u.dropped);
		store_failed(m, "UNLINK", r);
	} else {
		r = mc_store_rename(m->st, req->u.rename.parent,
				    req->u.rename.name, req->u.rename.newparent,
				    req->u.rename.newname, req->u.rename.flags,
				    &rep.u.dropped);
		store_failed(m, "RENAME", r);
	}
	if (r < 0)
		return reply_status(c, h, r);
	if (rep.u.dropped.ino != 0)
		drops_to_holders(m, &rep.u.dropped, 1, own_segment(c));
	return reply(c, h, &rep);
}

static int on_touch(struct master_conn *c, const struct mc_wire_header *h,
		    const struct mc_wire_touch *t)
{
	struct mc_wire_msg rep;

	if (scratch((void **)&c->statuses, sizeof(*c->statuses)) < 0)
		return reply_status(c, h, -ENOMEM);
	for (uint32_t i = 0; i < t->count; i++) {
		c->statuses[i] = mc_store_touch(c->m->st, t->items[i].ino,
						t->items[i].now_ns);
		store_failed(c->m, "TOUCH", c->statuses[i]);
	}
	memset(&rep, 0, sizeof(rep));
	rep.u.touch_reply.count = t->count;
	rep.u.touch_reply.status = c->statuses;
	return reply(c, h, &rep);
}

static int on_pin(struct master_conn *c, const struct mc_wire_header *h,
		  const struct mc_wire_ids *ids, bool pin)
{
	int r = 0;

	for (uint32_t i = 0; i < ids->count; i++) {
		uint64_t ino = ids->ids[i];

		if (ino == 0)
			continue;
		if (!pin) {
			/* only pins this connection took: no one unpins another's */
			if (mc_id_counts_add(&c->pins, ino, -1) >= 0)
				mc_store_unpin(c->m->st, ino);
			continue;
		}
		/* a pin the connection could not release at its end is not taken */
		if (mc_id_counts_add(&c->pins, ino, 1) < 0) {
			r = -ENOMEM;
			continue;
		}
		mc_store_pin(c->m->st, ino);
	}
	return reply_status(c, h, r);
}

struct readdir_ctx {
	struct mc_wire_dirent *out;
	uint32_t max;
	uint32_t n;
};

static int readdir_one(void *arg, const char *name,
		       const struct mc_ns_attr *attr)
{
	struct readdir_ctx *rc = arg;

	if (rc->n == rc->max)
		return 1; /* one more exists: not the end */
	snprintf(rc->out[rc->n].name, sizeof(rc->out[rc->n].name), "%s", name);
	rc->out[rc->n].attr = *attr;
	rc->n++;
	return 0;
}

static int on_readdir(struct master_conn *c, const struct mc_wire_header *h,
		      const struct mc_wire_readdir *rd)
{
	struct readdir_ctx rc = { 0 };
	struct mc_wire_msg rep;
	int r;

	if (scratch((void **)&c->dirents, sizeof(*c->dirents)) < 0)
		return reply_status(c, h, -ENOMEM);
	rc.out = c->dirents;
	rc.max = rd->max < MC_WIRE_MAX_BATCH ? rd->max : MC_WIRE_MAX_BATCH;
	if (rc.max == 0)
		return reply_status(c, h, -EINVAL);
	r = mc_store_readdir(c->m->st, rd->dir, rd->after, readdir_one, &rc);
	if (r < 0) {
		store_failed(c->m, "READDIR", r);
		return reply_status(c, h, r);
	}
	memset(&rep, 0, sizeof(rep));
	rep.u.readdir_reply.count = rc.n;
	rep.u.readdir_reply.eof = r == 0;
	rep.u.readdir_reply.items = c->dirents;
	return reply(c, h, &rep);
}

static int on_namespace(struct master_conn *c, const struct mc_wire_header *h,
			const struct mc_wire_msg *req)
{
	struct mc_store *st = c->m->st;
	struct mc_wire_msg rep;
	int r;

	memset(&rep, 0, sizeof(rep));
	switch (h->type) {
	case MC_WIRE_LOOKUP:
		r = mc_store_lookup(st, req->u.entry.parent, req->u.entry.name,
				    &rep.u.attr);
		break;
	case MC_WIRE_GETATTR:
		r = mc_store_getattr(st, req->u.ino, &rep.u.attr);
		break;
	case MC_WIRE_MKDIR:
		r = mc_store_mkdir(st, req->u.mkdir.parent, req->u.mkdir.name,
				   req->u.mkdir.mode, req->u.mkdir.uid,
				   req->u.mkdir.gid, &rep.u.attr);
		break;
	case MC_WIRE_RMDIR:
		r = mc_store_rmdir(st, req->u.entry.parent, req->u.entry.name);
		break;
	case MC_WIRE_SETATTR:
		r = mc_store_setattr(st, req->u.setattr.ino,
				     req->u.setattr.flags, &req->u.setattr.in,
				     &rep.u.attr);
		break;
	case MC_WIRE_NAME_OF:
		r = mc_store_name_of(st, req->u.ino,
				     &rep.u.name_of_reply.parent,
				     rep.u.name_of_reply.name,
				     sizeof(rep.u.name_of_reply.name));
		break;
	case MC_WIRE_STATS:
		mc_store_get_stats(st, &rep.u.stats);
		r = 0;
		break;
	default:
		r = -ENOSYS;
		break;
	}
	if (r < 0) {
		store_failed(c->m,
			     mc_wire_type_name(h->type) ?
				     mc_wire_type_name(h->type) :
				     "a call",
			     r);
		return reply_status(c, h, r);
	}
	return reply(c, h, &rep);
}

/* ---- one connection ----------------------------------------------------- */

/*
 * Answer one decoded request but COMMIT (handle() gives it to on_commit()).
 * < 0: the connection is to be closed.
 */
static int dispatch(struct master_conn *c, const struct mc_wire_header *h,
		    const struct mc_wire_msg *req)
{
	switch (h->type) {
	case MC_WIRE_HELLO:
		/* versions are agreed once per connection */
		return reply_status(c, h, -EPROTO);
	case MC_WIRE_REGISTER:
		return on_register(c, h, &req->u.reg);
	case MC_WIRE_HEARTBEAT:
		return on_heartbeat(c, h, &req->u.heartbeat);
	case MC_WIRE_HOLDINGS:
		return on_holdings(c, h, &req->u.holdings);
	case MC_WIRE_RESERVE:
		return on_reserve(c, h, req->u.reserve_count);
	case MC_WIRE_UNLINK:
	case MC_WIRE_RENAME:
		return on_dropping(c, h, req);
	case MC_WIRE_TOUCH:
		return on_touch(c, h, &req->u.touch);
	case MC_WIRE_PIN:
	case MC_WIRE_UNPIN:
		return on_pin(c, h, &req->u.ids, h->type == MC_WIRE_PIN);
	case MC_WIRE_READDIR:
		return on_readdir(c, h, &req->u.readdir);
	case MC_WIRE_EVICT:
		return on_evict(c, h, &req->u.evict);
	case MC_WIRE_ADD_REPLICA:
		return on_add_replica(c, h, req->u.page_id);
	case MC_WIRE_REPLICAS:
		return on_replicas(c, h, req->u.page_id);
	case MC_WIRE_LOOKUP:
	case MC_WIRE_GETATTR:
	case MC_WIRE_MKDIR:
	case MC_WIRE_RMDIR:
	case MC_WIRE_SETATTR:
	case MC_WIRE_NAME_OF:
	case MC_WIRE_STATS:
		return on_namespace(c, h, req);
	default:
		/* a type the master does not serve (DROP, READ_PAGE ...) */
		return reply_status(c, h, -ENOSYS);
	}
}

/* A reply to one of the master's own requests (DROP, REPLICATE). */
static void on_reply(struct master_conn *c, const struct mc_wire_header *h,
		     const struct mc_wire_msg *rep, int decode_status)
{
	int st = decode_status < 0 ? decode_status : rep->status;

	if (st < 0)
		mc_log(MC_LOG_DEBUG,
		       "%s from %s answered %s to request %" PRIu64,
		       mc_wire_type_name(h->type) ? mc_wire_type_name(h->type) :
						    "a reply",
		       c->peer, strerror(-st), h->id);
}

/* Release in the store every pin a closing connection still holds. */
static int unpin_all(void *st, uint64_t ino, uint64_t count)
{
	for (uint64_t k = 0; k < count; k++)
		mc_store_unpin(st, ino);
	return 0;
}

/* The segment stays live until its ttl (the daemon may be restarting). */
static void conn_end(struct master_conn *c)
{
	struct mc_master *m = c->m;
	bool last;

	mc_id_counts_foreach(&c->pins, unpin_all, m->st);
	if (mc_id_counts_size(&c->pins))
		mc_log(MC_LOG_DEBUG, "%s closed holding %zu pins: released",
		       c->peer, mc_id_counts_size(&c->pins));

	pthread_mutex_lock(&m->lock);
	if (c->seg && c->seg->conn == c)
		c->seg->conn = NULL;
	c->seg = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		m->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	last = --c->refs == 0;
	/* the last thing this thread does with m: run() may free it next */
	m->nconns--;
	pthread_cond_broadcast(&m->idle_cond);
	pthread_mutex_unlock(&m->lock);
	if (last)
		conn_free(c);
}

/* Receive the next frame into *rq; say why when the connection ends. */
static int conn_recv(struct master_conn *c, struct master_req *rq)
{
	int r;

	memset(rq, 0, sizeof(*rq));
	r = mc_wire_conn_recv(c->wc, &rq->h, &rq->msg, &rq->dstatus);
	if (r == -ECONNRESET)
		mc_log(MC_LOG_DEBUG, "%s closed the connection", c->peer);
	else if (r < 0)
		mc_log_errno(
			MC_LOG_INFO, r,
			"closing the connection from %s: bad bytes or a stalled peer",
			c->peer);
	return r;
}

static int handle(struct master_conn *c, struct master_req *rq);

/*
 * A COMMIT, with the COMMITs pipelined right behind it (in the receive
 * buffer already: never waiting for more), written in one transaction:
 * a daemon's FUSE threads closing files at once send single-item COMMITs
 * back to back, and each as its own transaction would be bound by the
 * WAL writes.  The request that ends the run is handled after it, so
 * every request still takes effect, and is answered, in order.
 */
static int on_commit(struct master_conn *c, struct master_req *first)
{
	struct master_req *run[MASTER_RUN_MAX], *next = NULL;
	size_t n = 1, total = first->msg.u.commit.count;
	int r = 0, rr;

	run[0] = first;
	/* no room to gather costs speed only */
	if (!c->run)
		c->run = calloc(MASTER_RUN_MAX - 1, sizeof(*c->run));
	/* at most a COMMIT's worth and one more, to bound the store's lock */
	while (c->run && n < MASTER_RUN_MAX && total < MC_WIRE_MAX_BATCH &&
	       mc_wire_conn_buffered(c->wc) > 0) {
		struct master_req *q = &c->run[n - 1];

		r = conn_recv(c, q);
		if (r < 0)
			break;
		if (q->h.type != MC_WIRE_COMMIT || q->dstatus < 0) {
			next = q;
			break;
		}
		run[n++] = q;
		total += q->msg.u.commit.count;
	}
	rr = commit_run(c, run, n);
	if (rr == 0 && next)
		rr = handle(c, next);
	for (size_t i = 1; i < n; i++)
		mc_wire_msg_release(&run[i]->msg);
	if (next)
		mc_wire_msg_release(&next->msg);
	return r < 0 ? r : rr;
}

/* Answer one received frame.  < 0: the connection is to be closed. */
static int handle(struct master_conn *c, struct master_req *rq)
{
	int r;

	if (rq->h.type & MC_WIRE_REPLY) {
		on_reply(c, &rq->h, &rq->msg, rq->dstatus);
		return 0;
	}
	if (!c->hello_done) {
		if (rq->h.type != MC_WIRE_HELLO)
			return reply_status(c, &rq->h, -EPROTO);
		if (rq->dstatus < 0)
			return reply_status(c, &rq->h, rq->dstatus);
		/* a refusal is sent and logged there: close */
		r = mc_wire_conn_answer_hello(c->wc, &rq->h, &rq->msg);
		c->hello_done = r == 0;
		return r;
	}
	if (rq->dstatus < 0)
		return reply_status(c, &rq->h, rq->dstatus);
	if (rq->h.type == MC_WIRE_COMMIT)
		return on_commit(c, rq);
	return dispatch(c, &rq->h, &rq->msg);
}

static void *conn_thread(void *arg)
{
	struct master_conn *c = arg;
	struct master_req rq;
	int r;

	mc_log(MC_LOG_DEBUG, "connection from %s", c->peer);
	for (;;) {
		if (conn_recv(c, &rq) < 0)
			break;
		r = handle(c, &rq);
		mc_wire_msg_release(&rq.msg);
		if (r == 0 && mc_wire_conn_buffered(c->wc) == 0)
			r = mc_wire_conn_flush(c->wc);
		if (r < 0) {
			if (r != -EPROTONOSUPPORT)
				mc_log_errno(MC_LOG_DEBUG, r,
					     "closing the connection from %s",
					     c->peer);
			break;
		}
	}
	conn_end(c);
	return NULL;
}

static void describe_peer(const struct sockaddr_storage *ss, char *out,
			  size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
	}
	snprintf(out, len, "%s:%u", ip, port);
}

/*
 * Sockets of daemons whose host died never say so: keepalive ends their
 * threads, and a send timeout keeps one stuck daemon from holding the
 * housekeeper for long.
 */
static void tune_socket(const struct mc_master *m, int fd)
{
	int one = 1, idle = 30, intvl = 10, cnt = 3;
	uint64_t ms = m->client_ttl_ms < 1000 ? 1000 : m->client_ttl_ms;
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000),
			      .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Start a thread for an accepted fd (taken: closed on failure). */
static int conn_start(struct mc_master *m, int fd,
		      const struct sockaddr_storage *ss)
{
	struct master_conn *c;
	pthread_attr_t attr;
	pthread_t thr;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->m = m;
	mc_id_counts_init(&c->pins);
	describe_peer(ss, c->peer, sizeof(c->peer));
	tune_socket(m, fd);
	r = mc_wire_conn_open(&c->wc, fd);
	if (r < 0) {
		close(fd);
		free(c);
		return r;
	}
	c->refs = 1; /* the thread's */

	pthread_mutex_lock(&m->lock);
	c->next = m->conns;
	if (m->conns)
		m->conns->prev = c;
	m->conns = c;
	m->nconns++;
	pthread_mutex_unlock(&m->lock);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, MASTER_CONN_STACK);
	r = -pthread_create(&thr, &attr, conn_thread, c);
	pthread_attr_destroy(&attr);
	if (r < 0)
		conn_end(c);
	return r;
}

/* ---- the housekeeper ----------------------------------------------------- */

/* Send one segment's outbox; m->lock held on entry and exit, not inside. */
static void send_outbox_locked(struct mc_master *m, struct master_seg *s)
{
	struct drop_list drops = s->drops;
	struct id_list repl = s->repl;
	struct master_conn *c = s->conn;
	struct mc_wire_msg msg;
	int r = 0;

	if (drops.n == 0 && repl.n == 0)
		return;
	if (!c || s->state != SEG_LIVE) {
		/* nobody to tell: a daemon that comes back reconciles */
		seg_clear_outbox_locked(s);
		return;
	}
	/* take the arrays; new mail goes into fresh ones */
	memset(&s->drops, 0, sizeof(s->drops));
	memset(&s->repl, 0, sizeof(s->repl));
	conn_get_locked(c);
	pthread_mutex_unlock(&m->lock);

	for (size_t i = 0; r == 0 && i < drops.n; i += MC_WIRE_MAX_BATCH) {
		memset(&msg, 0, sizeof(msg));
		msg.type = MC_WIRE_DROP;
		msg.u.dropped_list.count =
			(uint32_t)(drops.n - i < MC_WIRE_MAX_BATCH ?
					   drops.n - i :
					   MC_WIRE_MAX_BATCH);
		msg.u.dropped_list.items = drops.v + i;
		r = mc_wire_conn_send(c->wc, &msg,
				      atomic_fetch_add(&m->next_id, 1));
	}
	for (size_t i = 0; r == 0 && i < repl.n; i += MC_WIRE_MAX_BATCH) {
		memset(&msg, 0, sizeof(msg));
		msg.type = MC_WIRE_REPLICATE;
		msg.u.ids.count = (uint32_t)(repl.n - i < MC_WIRE_MAX_BATCH ?
						     repl.n - i :
						     MC_WIRE_MAX_BATCH);
		msg.u.ids.ids = repl.v + i;
		r = mc_wire_conn_send(c->wc, &msg,
				      atomic_fetch_add(&m->next_id, 1));
	}
	if (r < 0) {
		mc_log_errno(
			MC_LOG_WARNING, r,
			"cannot send to segment %" PRIu64
			" at %s: closing its connection; it reconciles when it registers again",
			s->id, c->peer);
		mc_wire_conn_shutdown(c->wc);
	}
	free(drops.v);
	free(repl.v);
	conn_put(c);
	pthread_mutex_lock(&m->lock);
}

static void send_mail(struct mc_master *m)
{
	pthread_mutex_lock(&m->lock);
	m->mail = false;
	for (size_t i = 0; i < m->nsegs; i++)
		send_outbox_locked(m, m->segs[i]);
	pthread_mutex_unlock(&m->lock);
}

static bool seg_expired(const struct mc_master *m, const struct master_seg *s,
			uint64_t now)
{
	/* a heartbeat may have come after `now` was read */
	if (s->state == SEG_LIVE)
		return now > s->last_seen_ms &&
		       now - s->last_seen_ms > m->client_ttl_ms;
	if (s->state == SEG_PENDING)
		return now > m->start_ms &&
		       now - m->start_ms > m->client_ttl_ms;
	return false;
}

/* Declare segment id dead if it still should be. */
static void declare_dead(struct mc_master *m, uint64_t id)
{
	struct drop_list gone = { 0 };
	char host[MC_NAME_MAX * 4 + 8] = "", addr[MC_WIRE_ADDR_MAX + 1] = "";
	struct master_seg *s;
	bool was_pending = false;
	uint64_t silent_ms = 0, now;
	unsigned port = 0;
	int64_t n;

	pthread_rwlock_wrlock(&m->seg_rwlock);
	pthread_mutex_lock(&m->lock);
	now = now_ms();
	s = seg_find_locked(m, id);
	if (!s || !seg_expired(m, s, now)) {
		pthread_mutex_unlock(&m->lock);
		pthread_rwlock_unlock(&m->seg_rwlock);
		return;
	}
	was_pending = s->state == SEG_PENDING;
	silent_ms = was_pending ? now - m->start_ms : now - s->last_seen_ms;
	s->state = SEG_DEAD;
	if (s->conn) {
		s->conn->seg = NULL; /* its next HEARTBEAT hears ENOENT */
		s->conn = NULL;
	}
	seg_clear_outbox_locked(s);
	moves_forget_locked(m, id, id);
	mc_log_escape(s->host, host, sizeof(host));
	snprintf(addr, sizeof(addr), "%s", s->address);
	port = s->port;
	m->rescan = true;
	m->scan_after = 0;
	pthread_mutex_unlock(&m->lock);

	n = mc_store_segment_lost(m->st, id, collect_dropped, &gone);
	pthread_rwlock_unlock(&m->seg_rwlock);

	if (n < 0)
		mc_log_errno(
			MC_LOG_ERR, (int)n,
			"store: cannot drop the copies of dead segment %" PRIu64
			" (host '%s') in '%s': readers may be sent to it until the master restarts; check the disk",
			id, host, m->db_path);
	else if (was_pending && n == 0)
		mc_log(MC_LOG_INFO,
		       "segment %" PRIu64
		       " (host '%s', %s:%u) did not register again after the master started; it held nothing",
		       id, host, addr, port);
	else
		mc_log(MC_LOG_WARNING,
		       "segment %" PRIu64
		       " (host '%s', %s:%u) declared dead: %s for %.1f s; %" PRId64
		       " copies dropped, %zu pages with no other copy are gone; restart mooncaked there to bring it back",
		       id, host, addr, port,
		       was_pending ?
			       "not registered again since the master started" :
			       "no heartbeat",
		       (double)silent_ms / 1000.0, n, gone.n);
	drops_to_holders(m, gone.v, gone.n, id);
	free(gone.v);
}

static void check_deaths(struct mc_master *m)
{
	struct id_list dead = { 0 };
	uint64_t now = now_ms();

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->nsegs; i++)
		if (seg_expired(m, m->segs[i], now))
			id_list_add(&dead, m->segs[i]->id);
	pthread_mutex_unlock(&m->lock);
	for (size_t i = 0; i < dead.n; i++)
		declare_dead(m, dead.v[i]);
	free(dead.v);
}

/* Forget moves past their deadline: those pages stay where they were. */
static void expire_moves(struct mc_master *m)
{
	uint64_t now = now_ms();
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	for (size_t i = m->nmoves; i-- > 0;) {
		if (now >= m->moves[i].deadline_ms) {
			move_end_locked(m, i);
			n++;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (n)
		mc_log_ratelimited(
			MC_LOG_INFO,
			"%zu pages asked to move off a full segment did not land within %d s: they stay where they were; check the target hosts' logs",
			n, MASTER_MOVE_MS / 1000);
}

static bool recently_asked(struct mc_master *m, uint64_t page_id, uint64_t now)
{
	struct recent_ask *r =
		&m->recent[(page_id * 0x9e3779b97f4a7c15ULL >> 20) %
			   MASTER_RECENT_SLOTS];

	if (r->page_id == page_id && now - r->when_ms < MASTER_RECENT_MS)
		return true;
	r->page_id = page_id;
	r->when_ms = now;
	return false;
}

/*
 * Ask live segments for copies of pages short of replica_num, at most
 * MASTER_SCAN_MAX pages per scan, resuming where the last one stopped.
 */
static void rereplicate(struct mc_master *m)
{
	struct id_list pages = { 0 };
	uint64_t segs[MC_WIRE_MAX_REPLICAS], size, now = now_ms();
	struct master_seg *t[MC_NS_MAX_REPLICAS];
	unsigned n, live;
	uint32_t crc;
	int r;

	r = mc_store_under_replicated(m->st, m->replica_num, m->scan_after,
				      MASTER_SCAN_MAX, collect_under, &pages);
	if (r < 0) {
		store_failed(m, "the re-replication scan", r);
		goto out;
	}
	m->scan_after = (size_t)r < MASTER_SCAN_MAX || pages.n == 0 ?
				0 :
				pages.v[pages.n - 1];
	for (size_t i = 0; i < pages.n; i++) {
		size_t nt;

		if (recently_asked(m, pages.v[i], now))
			continue;
		n = 0;
		if (mc_store_replicas(m->st, pages.v[i], &size, &crc, segs,
				      MC_WIRE_MAX_REPLICAS, &n) < 0)
			continue;
		pthread_mutex_lock(&m->lock);
		live = 0;
		for (unsigned j = 0; j < n; j++) {
			struct master_seg *s = seg_find_locked(m, segs[j]);

			live += s && s->state == SEG_LIVE;
		}
		/* no live source: nobody could copy it */
		nt = live == 0 || n >= m->replica_num ?
			     0 :
			     pick_targets_locked(m, segs, n, m->replica_num - n,
						 t);
		for (size_t j = 0; j < nt; j++) {
			if (id_list_add(&t[j]->repl, pages.v[i]) == 0)
				m->mail = true;
		}
		pthread_mutex_unlock(&m->lock);
	}
out:
	free(pages.v);
}

static void *housekeeper(void *arg)
{
	struct mc_master *m = arg;
	uint64_t last_flush = now_ms(), last_scan = 0, now;
	struct timespec ts;
	bool stop, mail, rescan;
	int r;

	for (;;) {
		pthread_mutex_lock(&m->lock);
		if (!m->stopping && !m->mail) {
			deadline_in(&ts, m->tick_ms);
			pthread_cond_timedwait(&m->hk_cond, &m->lock, &ts);
		}
		stop = m->stopping;
		mail = m->mail;
		rescan = m->rescan;
		m->rescan = false;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;

		check_deaths(m);
		expire_moves(m);
		now = now_ms();
		if (m->replica_num > 1 &&
		    (rescan || now - last_scan >= MASTER_SCAN_MS)) {
			rereplicate(m);
			last_scan = now;
			mail = true;
		}
		if (mail)
			send_mail(m);
		if (now - last_flush >= MASTER_TOUCH_FLUSH_MS) {
			r = mc_store_flush_touches(m->st);
			store_failed(m, "writing LRU touches", r);
			last_flush = now;
		}
	}
	return NULL;
}

/* ---- life cycle ----------------------------------------------------------- */

/* One segment the store knew before this start: pending until it is back. */
static int load_segment(void *ctx, const struct mc_store_segment *ss)
{
	struct mc_master *m = ctx;
	struct master_seg *s;

	/* --standalone's own, made by the store: no daemon registers it */
	if (ss->id == MC_NS_LOCAL_SEGMENT)
		return 0;
	s = seg_get_locked(m, ss->id);
	if (!s)
		return -ENOMEM;
	s->state = SEG_PENDING;
	snprintf(s->host, sizeof(s->host), "%s", ss->host);
	snprintf(s->address, sizeof(s->address), "%s", ss->address);
	s->port = ss->port;
	s->capacity = ss->capacity;
	return 0;
}

static void count_gone(void *ctx, const struct mc_ns_dropped *d)
{
	(void)d;
	(*(uint64_t *)ctx)++;
}

/*
 * Segments the store knows from before this start are pending: kept from
 * readers until they register again.  Copies in the local segment come
 * from a store a standalone mooncaked used: that host's memory, which no
 * cluster reader can reach and no daemon will ever register, so they go
 * now rather than linger as a segment that never comes back.
 */
static int load_known_segments(struct mc_master *m) /* before any thread */
{
	uint64_t gone = 0;
	int64_t n;
	int r;

	r = mc_store_segment_foreach(m->st, load_segment, m);
	if (r < 0)
		return r;
	if (m->nsegs > 0)
		mc_log(MC_LOG_NOTICE,
		       "%zu segments known from before: readers are not sent to them until they register again, and those not back within %.1f s are declared dead",
		       m->nsegs, (double)m->client_ttl_ms / 1000.0);
	n = mc_store_segment_lost(m->st, MC_NS_LOCAL_SEGMENT, count_gone,
				  &gone);
	if (n < 0)
		return (int)n;
	if (n > 0)
		mc_log(MC_LOG_NOTICE,
		       "store '%s' was used by a standalone mooncaked: its %" PRId64
		       " pages were in that host's memory, which no daemon serves, and are dropped (%" PRIu64
		       " had no other copy); directories are kept",
		       m->db_path, n, gone);
	return 0;
}

int mc_master_new(struct mc_master **mp, const struct mc_master_params *p)
{
	struct mc_master *m = NULL;
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;
	const char *addr;
	int r;

	*mp = NULL;
	if (!p || !p->db_path || !*p->db_path || p->client_ttl_ms == 0 ||
	    p->replica_num < 1 || p->replica_num > MC_NS_MAX_REPLICAS)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->listen_fd = -1;
	m->stop_pipe[0] = m->stop_pipe[1] = -1;
	m->client_ttl_ms = p->client_ttl_ms;
	m->heartbeat_ms = p->client_ttl_ms / 4;
	if (m->heartbeat_ms < MASTER_MIN_HEARTBEAT_MS)
		m->heartbeat_ms = MASTER_MIN_HEARTBEAT_MS;
	m->tick_ms = m->heartbeat_ms / 2;
	if (m->tick_ms < 20)
		m->tick_ms = 20;
	if (m->tick_ms > 500)
		m->tick_ms = 500;
	m->replica_num = p->replica_num;
	atomic_init(&m->next_id, 1);
	pthread_mutex_init(&m->lock, NULL);
	/* a death must not wait behind a steady stream of commits */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(
		&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->seg_rwlock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->hk_cond, &ca);
	pthread_cond_init(&m->moved_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&m->idle_cond, NULL);

	m->db_path = strdup(p->db_path);
	if (!m->db_path) {
		r = -ENOMEM;
		goto out_free;
	}
	if (pipe2(m->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		r = -errno;
		mc_log_errno(
			MC_LOG_ERR, r,
			"master: cannot make a pipe: check the open file limit");
		goto out_free;
	}
	r = mc_store_open(&m->st, p->db_path);
	if (r < 0) {
		mc_log_errno(
			MC_LOG_ERR, r,
			"store: cannot open '%s': check that its directory exists and is writable, or move the file aside to start empty",
			p->db_path);
		goto out_free;
	}
	r = load_known_segments(m);
	if (r < 0) {
		mc_log_errno(
			MC_LOG_ERR, r,
			"store: cannot read the segments recorded in '%s': check the disk, or move it aside to start empty",
			p->db_path);
		goto out_free;
	}
	addr = p->rpc_address && *p->rpc_address ? p->rpc_address : NULL;
	r = mc_wire_listen(addr, p->port, 128);
	if (r < 0) {
		mc_log_errno(
			MC_LOG_ERR, r,
			"rpc: cannot listen on '%s' port %u: is another master running there? pick another --port or --rpc_address",
			addr ? addr : "any", (unsigned)p->port);
		goto out_free;
	}
	m->listen_fd = r;
	r = mc_wire_local_port(m->listen_fd, &m->port);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r, "rpc: cannot read the bound port");
		goto out_free;
	}
	m->start_ms = now_ms();
	*mp = m;
	m = NULL;
	r = 0;
out_free:
	mc_master_free(m);
	return r;
}

uint16_t mc_master_port(const struct mc_master *m)
{
	return m->port;
}

void mc_master_stop(struct mc_master *m)
{
	ssize_t n;

	/* a full pipe already holds a stop: nothing lost */
	n = write(m->stop_pipe[1], "x", 1);
	(void)n;
}

int mc_master_run(struct mc_master *m)
{
	struct sockaddr_storage ss;
	struct pollfd pfd[2];
	pthread_t hk;
	socklen_t len;
	int fd, r;

	r = -pthread_create(&hk, NULL, housekeeper, m);
	if (r < 0) {
		mc_log_errno(
			MC_LOG_ERR, r,
			"master: cannot start the housekeeping thread: check the thread limit");
		return r;
	}
	mc_log(MC_LOG_NOTICE,
	       "serving on port %u: store '%s', client ttl %" PRIu64
	       " ms, heartbeat %" PRIu64 " ms, replica_num %u",
	       (unsigned)m->port, m->db_path, m->client_ttl_ms, m->heartbeat_ms,
	       m->replica_num);
	for (;;) {
		pfd[0].fd = m->listen_fd;
		pfd[0].events = POLLIN;
		pfd[1].fd = m->stop_pipe[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			mc_log_errno(MC_LOG_ERR, r, "rpc: poll failed");
			break;
		}
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		len = sizeof(ss);
		fd = accept4(m->listen_fd, (struct sockaddr *)&ss, &len,
			     SOCK_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			if (r == -EMFILE || r == -ENFILE || r == -ENOMEM ||
			    r == -ENOBUFS) {
				mc_log_errno(
					MC_LOG_WARNING, r,
					"rpc: cannot accept a connection: raise the open file limit (LimitNOFILE)");
				usleep(100 * 1000);
			}
			r = 0;
			continue;
		}
		pthread_mutex_lock(&m->lock);
		r = m->nconns >= MASTER_MAX_CONNS ? -EMFILE : 0;
		pthread_mutex_unlock(&m->lock);
		if (r < 0) {
			mc_log_ratelimited(
				MC_LOG_WARNING,
				"rpc: %d connections open: refusing more; look for a client that leaks connections",
				MASTER_MAX_CONNS);
			close(fd);
			r = 0;
			continue;
		}
		r = conn_start(m, fd, &ss);
		if (r < 0)
			mc_log_errno(
				MC_LOG_WARNING, r,
				"rpc: cannot serve a new connection: check memory and the thread limit");
		r = 0;
	}

	/* every connection ends: its thread releases its pins */
	pthread_mutex_lock(&m->lock);
	m->stopping = true;
	pthread_cond_broadcast(&m->moved_cond); /* an EVICT waiting */
	for (struct master_conn *c = m->conns; c; c = c->next)
		mc_wire_conn_shutdown(c->wc);
	while (m->nconns > 0)
		pthread_cond_wait(&m->idle_cond, &m->lock);
	pthread_cond_signal(&m->hk_cond);
	pthread_mutex_unlock(&m->lock);
	pthread_join(hk, NULL);
	r = r < 0 ? r : mc_store_flush_touches(m->st);
	return r < 0 ? r : 0;
}

void mc_master_free(struct mc_master *m)
{
	if (!m)
		return;
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	mc_store_close(m->st);
	for (size_t i = 0; i < m->nsegs; i++) {
		free(m->segs[i]->drops.v);
		free(m->segs[i]->repl.v);
		free(m->segs[i]);
	}
	free(m->segs);
	if (m->stop_pipe[0] >= 0)
		close(m->stop_pipe[0]);
	if (m->stop_pipe[1] >= 0)
		close(m->stop_pipe[1]);
	pthread_cond_destroy(&m->idle_cond);
	pthread_cond_destroy(&m->moved_cond);
	pthread_cond_destroy(&m->hk_cond);
	pthread_rwlock_destroy(&m->seg_rwlock);
	pthread_mutex_destroy(&m->lock);
	free(m->db_path);
	free(m);
}
