/*
 * test_master.c - mooncake_master's service as daemons and tools see it:
 * a master runs in-process on 127.0.0.1 (an ephemeral port, an in-memory
 * or temporary store) and the tests talk to it over real sockets with
 * src/wire_io, as "daemons" that register segments and as plain tools.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "ns.h"
#include "store.h"
#include "wire.h"
#include "wire_io.h"
#include "banned.h"

#define ROOT MC_NS_ROOT_INO
#define TTL_MS 500
/* heartbeat replies carry ids with this bit, so waits can skip them */
#define BEAT_ID (1ULL << 62)
#define INBOX_MAX 4096

/* ---- a master in this process -------------------------------------------- */

struct tmaster {
	struct mc_master *m;
	pthread_t thr;
	uint16_t port;
	int rc;
};

static void *master_thread(void *arg)
{
	struct tmaster *tm = arg;

	tm->rc = mc_master_run(tm->m);
	return NULL;
}

static void master_start(struct tmaster *tm, const char *db, uint64_t ttl_ms,
			 unsigned replica_num)
{
	struct mc_master_params p = {
		.db_path = db,
		.rpc_address = "127.0.0.1",
		.port = 0,
		.client_ttl_ms = ttl_ms,
		.replica_num = replica_num,
	};

	memset(tm, 0, sizeof(*tm));
	ck_assert_int_eq(mc_master_new(&tm->m, &p), 0);
	tm->port = mc_master_port(tm->m);
	ck_assert_uint_ne(tm->port, 0);
	ck_assert_int_eq(pthread_create(&tm->thr, NULL, master_thread, tm), 0);
}

static void master_stop(struct tmaster *tm)
{
	mc_master_stop(tm->m);
	ck_assert_int_eq(pthread_join(tm->thr, NULL), 0);
	ck_assert_int_eq(tm->rc, 0);
	mc_master_free(tm->m);
	tm->m = NULL;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	usleep(ms * 1000);
}

/* ---- a client: a tool, or a daemon once registered ----------------------- */

struct inbox_item {
	uint16_t type; /* MC_WIRE_DROP or MC_WIRE_REPLICATE */
	uint64_t page_id;
	uint32_t flags; /* DROP's */
};

struct tclient {
	struct mc_wire_conn *wc;
	uint64_t next_id;
	uint64_t segment;
	_Atomic bool beat; /* the keeper heartbeats it */
	struct inbox_item inbox[INBOX_MAX];
	size_t ninbox;
};

static struct tclient *client_raw(uint16_t port)
{
	struct tclient *cl = calloc(1, sizeof(*cl));
	int fd;

	ck_assert_ptr_nonnull(cl);
	fd = mc_wire_dial("127.0.0.1", port, 2000);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mc_wire_conn_open(&cl->wc, fd), 0);
	/* a safety net: no test waits this long on purpose */
	mc_wire_conn_set_timeout(cl->wc, 10000);
	cl->next_id = 1;
	return cl;
}

static struct tclient *client(uint16_t port)
{
	struct tclient *cl = client_raw(port);

	ck_assert_int_eq(mc_wire_conn_hello(cl->wc, "test_master"), 0);
	return cl;
}

static void client_close(struct tclient *cl)
{
	if (!cl)
		return;
	mc_wire_conn_close(cl->wc);
	free(cl);
}

/* A request from the master: note it, and answer it as a daemon would. */
static void stash(struct tclient *cl, const struct mc_wire_header *h,
		  const struct mc_wire_msg *m)
{
	struct mc_wire_msg rep;

	if (h->type == MC_WIRE_DROP) {
		for (uint32_t i = 0; i < m->u.dropped_list.count; i++) {
			ck_assert_uint_lt(cl->ninbox, INBOX_MAX);
			cl->inbox[cl->ninbox++] = (struct inbox_item){
				MC_WIRE_DROP,
				m->u.dropped_list.items[i].page_id,
				m->u.dropped_list.items[i].flags
			};
		}
	} else if (h->type == MC_WIRE_REPLICATE) {
		for (uint32_t i = 0; i < m->u.ids.count; i++) {
			ck_assert_uint_lt(cl->ninbox, INBOX_MAX);
			cl->inbox[cl->ninbox++] =
				(struct inbox_item){ MC_WIRE_REPLICATE,
						     m->u.ids.ids[i], 0 };
		}
	} else {
		ck_abort_msg("unexpected request 0x%x from the master",
			     h->type);
	}
	memset(&rep, 0, sizeof(rep));
	rep.type = (uint16_t)(h->type | MC_WIRE_REPLY);
	ck_assert_int_eq(mc_wire_conn_send(cl->wc, &rep, h->id), 0);
}

/*
 * Receive one frame: a reply is returned (0, its status in rep->status);
 * a master's request is stashed and 1 returned; < 0 a connection error.
 */
static int recv_one(struct tclient *cl, struct mc_wire_header *h,
		    struct mc_wire_msg *rep)
{
	int ds, r;

	memset(rep, 0, sizeof(*rep));
	r = mc_wire_conn_recv(cl->wc, h, rep, &ds);
	if (r < 0)
		return r;
	if (ds < 0 && (h->type & MC_WIRE_REPLY)) {
		/* the answer to a type this side cannot decode either */
		rep->status = ds;
		return 0;
	}
	ck_assert_int_eq(ds, 0);
	if (h->type & MC_WIRE_REPLY)
		return 0;
	stash(cl, h, rep);
	mc_wire_msg_release(rep);
	return 1;
}

/* The reply to request id (others: heartbeats are skipped). */
static int wait_reply(struct tclient *cl, uint64_t id, struct mc_wire_msg *rep)
{
	struct mc_wire_header h;
	int r;

	for (;;) {
		r = recv_one(cl, &h, rep);
		if (r < 0)
			return r;
		if (r == 1)
			continue;
		if (h.id & BEAT_ID) {
			mc_wire_msg_release(rep);
			continue;
		}
		ck_assert_uint_eq(h.id, id);
		return rep->status;
	}
}

/* Send req and wait for its reply (release rep after); the reply status. */
static int call(struct tclient *cl, struct mc_wire_msg *req,
		struct mc_wire_msg *rep)
{
	uint64_t id = cl->next_id++;

	ck_assert_int_eq(mc_wire_conn_send(cl->wc, req, id), 0);
	return wait_reply(cl, id, rep);
}

/* call() for requests whose reply has no body. */
static int call0(struct tclient *cl, struct mc_wire_msg *req)
{
	struct mc_wire_msg rep;
	int r = call(cl, req, &rep);

	mc_wire_msg_release(&rep);
	return r;
}

/* Wait up to ms for a DROP or REPLICATE of page_id; true when it came. */
static bool wait_request(struct tclient *cl, uint16_t type, uint64_t page_id,
			 unsigned ms)
{
	uint64_t end = ms_now() + ms;
	struct mc_wire_header h;
	struct mc_wire_msg rep;
	struct pollfd pfd;
	int r;

	for (;;) {
		for (size_t i = 0; i < cl->ninbox; i++)
			if (cl->inbox[i].type == type &&
			    cl->inbox[i].page_id == page_id)
				return true;
		if (ms_now() >= end)
			return false;
		if (mc_wire_conn_buffered(cl->wc) == 0) {
			pfd.fd = mc_wire_conn_fd(cl->wc);
			pfd.events = POLLIN;
			if (poll(&pfd, 1, (int)(end - ms_now()) + 1) <= 0)
				continue;
		}
		r = recv_one(cl, &h, &rep);
		ck_assert_int_ge(r, 0);
		mc_wire_msg_release(&rep); /* a late heartbeat reply */
	}
}

/* True when the master closed this connection (within ms). */
static bool closed_by_master(int fd, unsigned ms)
{
	uint64_t end = ms_now() + ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	while (ms_now() < end) {
		if (poll(&pfd, 1, 50) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

/* ---- requests ------------------------------------------------------------ */

static void reg(struct tclient *cl, uint8_t uuid, uint16_t port, uint32_t flags)
{
	struct mc_wire_msg req, rep;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REGISTER;
	memset(req.u.reg.segment, uuid, sizeof(req.u.reg.segment));
	snprintf(req.u.reg.host, sizeof(req.u.reg.host), "host%u", uuid);
	snprintf(req.u.reg.address, sizeof(req.u.reg.address), "127.0.0.1");
	req.u.reg.port = port;
	req.u.reg.capacity = 1ULL << 30;
	snprintf(req.u.reg.protocol, sizeof(req.u.reg.protocol), "tcp");
	req.u.reg.flags = flags;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	ck_assert_uint_ne(rep.u.reg_reply.segment_id, 0);
	ck_assert_uint_ge(rep.u.reg_reply.heartbeat_ms, 100);
	ck_assert_uint_lt(rep.u.reg_reply.heartbeat_ms,
			  rep.u.reg_reply.client_ttl_ms);
	cl->segment = rep.u.reg_reply.segment_id;
	mc_wire_msg_release(&rep);
}

/* A HEARTBEAT saying the pool holds used bytes (of reg()'s 1 GiB). */
static int heartbeat_used(struct tclient *cl, uint64_t used)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HEARTBEAT;
	req.u.heartbeat.segment_id = cl->segment;
	req.u.heartbeat.used_bytes = used;
	return call0(cl, &req);
}

static int heartbeat(struct tclient *cl)
{
	return heartbeat_used(cl, 4096);
}

static int lookup(struct tclient *cl, uint64_t parent, const char *name,
		  struct mc_ns_attr *a)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_LOOKUP;
	req.u.entry.parent = parent;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "%s", name);
	r = call(cl, &req, &rep);
	if (r == 0 && a)
		*a = rep.u.attr;
	mc_wire_msg_release(&rep);
	return r;
}

/* Reserve and commit name (size bytes) on seg; the item's status. */
static int commit_on(struct tclient *cl, uint64_t parent, const char *name,
		     uint64_t size, uint64_t seg, uint64_t *page_id,
		     uint64_t *ino, struct mc_ns_dropped *replaced)
{
	struct mc_wire_commit_item it;
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RESERVE;
	req.u.reserve_count = 1;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	ck_assert_uint_eq(rep.u.reserve_reply.count, 1);
	memset(&it, 0, sizeof(it));
	it.ino = rep.u.reserve_reply.items[0].ino;
	it.page_id = rep.u.reserve_reply.items[0].page_id;
	mc_wire_msg_release(&rep);

	it.parent = parent;
	snprintf(it.name, sizeof(it.name), "%s", name);
	it.mode = S_IFREG | 0644;
	it.size = size;
	it.mtime_ns = 1;
	it.crc32c = 0x1234;
	it.nsegments = 1;
	it.segments[0] = seg;
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_COMMIT;
	req.u.commit.count = 1;
	req.u.commit.items = &it;
	r = call(cl, &req, &rep);
	if (r == 0) {
		ck_assert_uint_eq(rep.u.commit_reply.count, 1);
		r = rep.u.commit_reply.items[0].status;
		if (replaced)
			*replaced = rep.u.commit_reply.items[0].replaced;
	}
	mc_wire_msg_release(&rep);
	if (page_id)
		*page_id = it.page_id;
	if (ino)
		*ino = it.ino;
	return r;
}

static int put(struct tclient *cl, const char *name, uint64_t size,
	       uint64_t *page_id, uint64_t *ino)
{
	return commit_on(cl, ROOT, name, size, cl->segment, page_id, ino, NULL);
}

/* REPLICAS: the status, and the live segments in segs[] (count in *n). */
static int replicas(struct tclient *cl, uint64_t page_id, uint64_t *segs,
		    unsigned *n, struct mc_wire_replicas_reply *out)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REPLICAS;
	req.u.page_id = page_id;
	r = call(cl, &req, &rep);
	*n = 0;
	if (r == 0) {
		*n = rep.u.replicas_reply.count;
		for (unsigned i = 0; i < *n; i++)
			segs[i] = rep.u.replicas_reply.replicas[i].segment_id;
		if (out)
			*out = rep.u.replicas_reply;
	}
	mc_wire_msg_release(&rep);
	return r;
}

static bool has_seg(const uint64_t *segs, unsigned n, uint64_t seg)
{
	for (unsigned i = 0; i < n; i++)
		if (segs[i] == seg)
			return true;
	return false;
}

static int evict(struct tclient *cl, uint64_t bytes, int64_t *freed,
		 uint32_t *count)
{
	struct mc_wire_msg req, rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_EVICT;
	req.u.evict.bytes = bytes;
	req.u.evict.unit = 4096;
	r = call(cl, &req, &rep);
	if (r == 0) {
		*freed = (int64_t)rep.u.dropped_list.freed;
		*count = rep.u.dropped_list.count;
	}
	mc_wire_msg_release(&rep);
	return r;
}

/* EVICT's reply to request id: freed, and the first item in *first. */
static int evict_reply(struct tclient *cl, uint64_t id, int64_t *freed,
		       uint32_t *count, struct mc_ns_dropped *first)
{
	struct mc_wire_msg rep;
	int r = wait_reply(cl, id, &rep);

	if (r == 0) {
		*freed = (int64_t)rep.u.dropped_list.freed;
		*count = rep.u.dropped_list.count;
		if (first && *count > 0)
			*first = rep.u.dropped_list.items[0];
	}
	mc_wire_msg_release(&rep);
	return r;
}

/* Send an EVICT without waiting: its request id. */
static uint64_t evict_send(struct tclient *cl, uint64_t bytes)
{
	struct mc_wire_msg req;
	uint64_t id = cl->next_id++;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_EVICT;
	req.u.evict.bytes = bytes;
	req.u.evict.unit = 4096;
	ck_assert_int_eq(mc_wire_conn_send(cl->wc, &req, id), 0);
	return id;
}

static int add_replica(struct tclient *cl, uint64_t page_id)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_ADD_REPLICA;
	req.u.page_id = page_id;
	return call0(cl, &req);
}

static uint64_t evictions(struct tclient *cl)
{
	struct mc_wire_msg req, rep;
	uint64_t n;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_STATS;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	n = rep.u.stats.evictions;
	mc_wire_msg_release(&rep);
	return n;
}

/* The flags of the DROP of page_id cl received (wait_request() first). */
static uint32_t drop_flags(const struct tclient *cl, uint64_t page_id)
{
	for (size_t i = 0; i < cl->ninbox; i++)
		if (cl->inbox[i].type == MC_WIRE_DROP &&
		    cl->inbox[i].page_id == page_id)
			return cl->inbox[i].flags;
	ck_abort_msg("no DROP of page %" PRIu64, page_id);
	return 0;
}

static int pin(struct tclient *cl, uint16_t type, uint64_t ino)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = type;
	req.u.ids.count = 1;
	req.u.ids.ids = &ino;
	return call0(cl, &req);
}

/* ---- the keeper: heartbeats for the clients that should stay alive ------ */

struct keeper {
	struct tclient *cl[4];
	size_t n;
	_Atomic bool stop;
	pthread_t thr;
};

static void *keeper_thread(void *arg)
{
	struct keeper *k = arg;
	struct mc_wire_msg req;
	uint64_t id = BEAT_ID;

	while (!atomic_load(&k->stop)) {
		for (size_t i = 0; i < k->n; i++) {
			if (!atomic_load(&k->cl[i]->beat))
				continue;
			memset(&req, 0, sizeof(req));
			req.type = MC_WIRE_HEARTBEAT;
			req.u.heartbeat.segment_id = k->cl[i]->segment;
			/* the reply is skipped by whoever reads next */
			mc_wire_conn_send(k->cl[i]->wc, &req, id++);
		}
		sleep_ms(50);
	}
	return NULL;
}

static void keeper_start(struct keeper *k)
{
	atomic_store(&k->stop, false);
	for (size_t i = 0; i < k->n; i++)
		atomic_store(&k->cl[i]->beat, true);
	ck_assert_int_eq(pthread_create(&k->thr, NULL, keeper_thread, k), 0);
}

static void keeper_stop(struct keeper *k)
{
	atomic_store(&k->stop, true);
	pthread_join(k->thr, NULL);
}

/* ---- tests: sessions -------------------------------------------------------- */

START_TEST(hello_with_no_common_version_is_refused_and_closed)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req, rep;
	struct mc_wire_header h;
	int ds;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client_raw(tm.port);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HELLO;
	req.u.hello.min_version = MC_WIRE_VERSION + 1;
	req.u.hello.max_version = MC_WIRE_VERSION + 5;
	snprintf(req.u.hello.name, sizeof(req.u.hello.name), "future");
	ck_assert_int_eq(mc_wire_conn_send(cl->wc, &req, 7), 0);
	memset(&rep, 0, sizeof(rep));
	ck_assert_int_eq(mc_wire_conn_recv(cl->wc, &h, &rep, &ds), 0);
	ck_assert_int_eq(ds, 0);
	ck_assert_uint_eq(h.id, 7);
	ck_assert_int_eq(rep.status, -EPROTONOSUPPORT);
	ck_assert_uint_eq(rep.u.hello_reply.min_version, MC_WIRE_VERSION_MIN);
	ck_assert_uint_eq(rep.u.hello_reply.max_version, MC_WIRE_VERSION);
	mc_wire_msg_release(&rep);
	ck_assert(closed_by_master(mc_wire_conn_fd(cl->wc), 2000));
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(requests_before_hello_are_answered_eproto)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client_raw(tm.port);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_STATS;
	ck_assert_int_eq(call0(cl, &req), -EPROTO);
	/* the connection goes on: HELLO still works */
	ck_assert_int_eq(mc_wire_conn_hello(cl->wc, "late"), 0);
	ck_assert_int_eq(call0(cl, &req), 0);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(namespace_calls_need_no_register)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req, rep;
	struct mc_ns_attr a;
	uint64_t dir;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client(tm.port);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_MKDIR;
	req.u.mkdir.parent = ROOT;
	snprintf(req.u.mkdir.name, sizeof(req.u.mkdir.name), "model");
	req.u.mkdir.mode = 0755;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	dir = rep.u.attr.ino;
	ck_assert(S_ISDIR(rep.u.attr.mode));
	mc_wire_msg_release(&rep);
	ck_assert_int_eq(call0(cl, &req), -EEXIST);

	ck_assert_int_eq(lookup(cl, ROOT, "model", &a), 0);
	ck_assert_uint_eq(a.ino, dir);
	ck_assert_int_eq(lookup(cl, ROOT, "nothing", &a), -ENOENT);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_GETATTR;
	req.u.ino = dir;
	ck_assert_int_eq(call0(cl, &req), 0);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_STATS;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	ck_assert_uint_eq(rep.u.stats.dirs, 2);
	mc_wire_msg_release(&rep);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RESERVE;
	req.u.reserve_count = 100;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	ck_assert_uint_eq(rep.u.reserve_reply.count, 100);
	ck_assert_uint_ne(rep.u.reserve_reply.items[0].ino,
			  rep.u.reserve_reply.items[99].ino);
	mc_wire_msg_release(&rep);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RMDIR;
	req.u.entry.parent = ROOT;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "model");
	ck_assert_int_eq(call0(cl, &req), 0);
	ck_assert_int_eq(lookup(cl, ROOT, "model", &a), -ENOENT);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(commit_evict_holdings_heartbeat_need_register)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req;
	uint64_t page, ids[1] = { 5 };
	int64_t freed;
	uint32_t n;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client(tm.port);
	ck_assert_int_eq(put(cl, "p", 10, &page, NULL), -EPERM);
	ck_assert_int_eq(evict(cl, 4096, &freed, &n), -EPERM);
	ck_assert_int_eq(heartbeat(cl), -EPERM);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_ADD_REPLICA;
	req.u.page_id = page;
	ck_assert_int_eq(call0(cl, &req), -EPERM);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HOLDINGS;
	req.u.holdings.last = 1;
	req.u.holdings.count = 1;
	req.u.holdings.ids = ids;
	ck_assert_int_eq(call0(cl, &req), -EPERM);

	reg(cl, 0xa1, 7001, 0);
	ck_assert_int_eq(heartbeat(cl), 0);
	ck_assert_int_eq(put(cl, "p", 10, &page, NULL), 0);
	/* a daemon commits only into its own segment */
	ck_assert_int_eq(commit_on(cl, ROOT, "q", 10, cl->segment + 1, NULL,
				   NULL, NULL),
			 -EPERM);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(pipelined_requests_get_every_reply_in_order)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req, rep;
	struct mc_wire_header h;
	uint64_t ino;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client(tm.port);
	reg(cl, 0xa1, 7001, 0);
	ck_assert_int_eq(put(cl, "p", 10, NULL, &ino), 0);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_LOOKUP;
	req.u.entry.parent = ROOT;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "p");
	for (uint64_t i = 0; i < 500; i++)
		ck_assert_int_eq(mc_wire_conn_queue(cl->wc, &req, 1000 + i), 0);
	ck_assert_int_eq(mc_wire_conn_flush(cl->wc), 0);
	for (uint64_t i = 0; i < 500; i++) {
		ck_assert_int_eq(recv_one(cl, &h, &rep), 0);
		ck_assert_uint_eq(h.id, 1000 + i);
		ck_assert_int_eq(rep.status, 0);
		ck_assert_uint_eq(rep.u.attr.ino, ino);
		mc_wire_msg_release(&rep);
	}
	client_close(cl);
	master_stop(&tm);
}
END_TEST

/* A COMMIT item for name in the root, on seg, with fresh numbers. */
static struct mc_wire_commit_item commit_item(struct tclient *cl,
					      const char *name, uint64_t seg)
{
	struct mc_wire_commit_item it;
	struct mc_wire_msg req, rep;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_RESERVE;
	req.u.reserve_count = 1;
	ck_assert_int_eq(call(cl, &req, &rep), 0);
	memset(&it, 0, sizeof(it));
	it.ino = rep.u.reserve_reply.items[0].ino;
	it.page_id = rep.u.reserve_reply.items[0].page_id;
	mc_wire_msg_release(&rep);
	it.parent = ROOT;
	snprintf(it.name, sizeof(it.name), "%s", name);
	it.mode = S_IFREG | 0644;
	it.size = 10;
	it.mtime_ns = 1;
	it.nsegments = 1;
	it.segments[0] = seg;
	return it;
}

/* Queue a COMMIT of items[0..n) as request id. */
static void queue_commit(struct tclient *cl, struct mc_wire_commit_item *items,
			 uint32_t n, uint64_t id)
{
	struct mc_wire_msg req;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_COMMIT;
	req.u.commit.count = n;
	req.u.commit.items = items;
	ck_assert_int_eq(mc_wire_conn_queue(cl->wc, &req, id), 0);
}

/* The next reply: request id, with n items; their statuses in st[]. */
static void expect_commit_reply(struct tclient *cl, uint64_t id, uint32_t n,
				int *st, struct mc_ns_dropped *replaced)
{
	struct mc_wire_header h;
	struct mc_wire_msg rep;

	ck_assert_int_eq(recv_one(cl, &h, &rep), 0);
	ck_assert_uint_eq(h.id, id);
	ck_assert_uint_eq(h.type, MC_WIRE_COMMIT | MC_WIRE_REPLY);
	ck_assert_int_eq(rep.status, 0);
	ck_assert_uint_eq(rep.u.commit_reply.count, n);
	for (uint32_t i = 0; i < n; i++) {
		st[i] = rep.u.commit_reply.items[i].status;
		if (replaced)
			replaced[i] = rep.u.commit_reply.items[i].replaced;
	}
	mc_wire_msg_release(&rep);
}

START_TEST(pipelined_commits_are_answered_in_order_each_as_if_alone)
{
	struct mc_wire_commit_item a, a2, b, nop, other, two[2];
	struct mc_ns_dropped rp[2];
	struct mc_wire_msg req, rep;
	struct mc_wire_header h;
	struct tmaster tm;
	struct tclient *cl;
	int st[2];

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client(tm.port);
	reg(cl, 0xa1, 7001, 0);
	a = commit_item(cl, "a", cl->segment);
	a2 = commit_item(cl, "a", cl->segment);
	b = commit_item(cl, "b", cl->segment);
	nop = commit_item(cl, "nop", cl->segment);
	nop.parent = 999999;
	other = commit_item(cl, "o", cl->segment + 1);
	two[0] = commit_item(cl, "c", cl->segment);
	two[1] = commit_item(cl, "b", cl->segment);

	/* one write: the master finds them all buffered, back to back */
	queue_commit(cl, &a, 1, 1);
	queue_commit(cl, &a, 1, 2);
	queue_commit(cl, &nop, 1, 3);
	queue_commit(cl, &other, 1, 4);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_LOOKUP;
	req.u.entry.parent = ROOT;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "a");
	ck_assert_int_eq(mc_wire_conn_queue(cl->wc, &req, 5), 0);
	queue_commit(cl, &a2, 1, 6);
	queue_commit(cl, &b, 1, 7);
	queue_commit(cl, two, 2, 8);
	ck_assert_int_eq(mc_wire_conn_flush(cl->wc), 0);

	expect_commit_reply(cl, 1, 1, st, NULL);
	ck_assert_int_eq(st[0], 0);
	/* the same COMMIT again, as after a lost reply */
	expect_commit_reply(cl, 2, 1, st, NULL);
	ck_assert_int_eq(st[0], -EEXIST);
	expect_commit_reply(cl, 3, 1, st, NULL);
	ck_assert_int_eq(st[0], -ENOENT);
	expect_commit_reply(cl, 4, 1, st, NULL);
	ck_assert_int_eq(st[0], -EPERM);
	/* the LOOKUP in between sees the COMMITs before it */
	ck_assert_int_eq(recv_one(cl, &h, &rep), 0);
	ck_assert_uint_eq(h.id, 5);
	ck_assert_int_eq(rep.status, 0);
	ck_assert_uint_eq(rep.u.attr.ino, a.ino);
	mc_wire_msg_release(&rep);
	expect_commit_reply(cl, 6, 1, st, rp);
	ck_assert_int_eq(st[0], 0);
	ck_assert_uint_eq(rp[0].ino, a.ino);
	ck_assert_uint_eq(rp[0].page_id, a.page_id);
	expect_commit_reply(cl, 7, 1, st, rp);
	ck_assert_int_eq(st[0], 0);
	ck_assert_uint_eq(rp[0].ino, 0);
	/* a later COMMIT replaces a page an earlier one of the run made */
	expect_commit_reply(cl, 8, 2, st, rp);
	ck_assert_int_eq(st[0], 0);
	ck_assert_int_eq(st[1], 0);
	ck_assert_uint_eq(rp[0].ino, 0);
	ck_assert_uint_eq(rp[1].ino, b.ino);
	ck_assert_int_eq(lookup(cl, ROOT, "b", NULL), 0);
	ck_assert_int_eq(lookup(cl, ROOT, "o", NULL), -ENOENT);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(readdir_pages_through_a_directory)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg req, rep;
	uint64_t after = 0;
	unsigned seen = 0, calls = 0;
	char name[32];
	bool eof = false;

	master_start(&tm, ":memory:", TTL_MS, 1);
	cl = client(tm.port);
	reg(cl, 0xa1, 7001, 0);
	for (int i = 0; i < 25; i++) {
		snprintf(name, sizeof(name), "page%02d", i);
		ck_assert_int_eq(put(cl, name, 10, NULL, NULL), 0);
	}
	while (!eof) {
		memset(&req, 0, sizeof(req));
		req.type = MC_WIRE_READDIR;
		req.u.readdir.dir = ROOT;
		req.u.readdir.after = after;
		req.u.readdir.max = 10;
		ck_assert_int_eq(call(cl, &req, &rep), 0);
		ck_assert_uint_le(rep.u.readdir_reply.count, 10);
		seen += rep.u.readdir_reply.count;
		eof = rep.u.readdir_reply.eof;
		if (rep.u.readdir_reply.count)
			after = rep.u.readdir_reply
					.items[rep.u.readdir_reply.count - 1]
					.attr.ino;
		mc_wire_msg_release(&rep);
		ck_assert_uint_lt(++calls, 10);
	}
	ck_assert_uint_eq(seen, 25);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

/* ---- tests: two daemons ------------------------------------------------------ */

START_TEST(unlink_elsewhere_sends_drop_to_the_holder)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_wire_replicas_reply rr;
	struct mc_wire_msg req, rep;
	uint64_t segs[8], page, page2;
	unsigned n;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	b = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	reg(b, 0xb2, 7002, 0);
	ck_assert_uint_ne(a->segment, b->segment);

	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert_int_eq(replicas(b, page, segs, &n, &rr), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(segs[0], a->segment);
	ck_assert_str_eq(rr.replicas[0].address, "127.0.0.1");
	ck_assert_uint_eq(rr.replicas[0].port, 7001);
	ck_assert_uint_eq(rr.size, 4096);
	ck_assert_uint_eq(rr.crc32c, 0x1234);

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_UNLINK;
	req.u.entry.parent = ROOT;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "p");
	ck_assert_int_eq(call(b, &req, &rep), 0);
	ck_assert_uint_eq(rep.u.dropped.page_id, page);
	mc_wire_msg_release(&rep);
	ck_assert(wait_request(a, MC_WIRE_DROP, page, 3000));
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), -ENOENT);

	/* a page replaced by a commit elsewhere: its holder hears DROP too */
	ck_assert_int_eq(put(a, "q", 10, &page, NULL), 0);
	ck_assert_int_eq(put(b, "q", 10, &page2, NULL), 0);
	ck_assert(wait_request(a, MC_WIRE_DROP, page, 3000));
	/* the requester learns it from its reply, not from a DROP */
	ck_assert(!wait_request(b, MC_WIRE_DROP, page, 200));
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(a_silent_segment_is_declared_dead_after_the_ttl)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct keeper k = { 0 };
	struct mc_ns_attr at;
	uint64_t segs[8], page;
	unsigned n;

	master_start(&tm, ":memory:", TTL_MS, 1);
	a = client(tm.port);
	b = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	reg(b, 0xb2, 7002, 0);
	k.cl[0] = a;
	k.cl[1] = b;
	k.n = 2;
	keeper_start(&k);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	sleep_ms(TTL_MS * 2); /* heartbeats keep both alive */
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), 0);

	atomic_store(&a->beat, false);
	sleep_ms(TTL_MS * 3);
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), -ENOENT);
	ck_assert_int_eq(lookup(b, ROOT, "p", &at), -ENOENT);
	/* the dead daemon hears it at its next heartbeat, and comes back */
	ck_assert_int_eq(heartbeat(a), -ENOENT);
	ck_assert_int_eq(put(a, "p2", 10, NULL, NULL), -EPERM);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(heartbeat(a), 0);
	keeper_stop(&k);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(a_closed_connection_does_not_kill_its_segment_at_once)
{
	struct tmaster tm;
	struct tclient *a, *b;
	uint64_t segs[8], page;
	unsigned n;

	master_start(&tm, ":memory:", 2000, 1);
	a = client(tm.port);
	b = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	client_close(a);
	sleep_ms(300);
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), 0);
	/* the restarted daemon registers the same uuid: same segment */
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_uint_eq(segs[0], a->segment);
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), 0);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(replica_num_2_asks_another_segment_and_survives_a_death)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct keeper k = { 0 };
	struct mc_wire_msg req;
	struct mc_ns_attr at;
	uint64_t segs[8], page;
	unsigned n;

	master_start(&tm, ":memory:", TTL_MS, 2);
	a = client(tm.port);
	b = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	reg(b, 0xb2, 7002, 0);
	k.cl[0] = a;
	k.cl[1] = b;
	k.n = 2;
	keeper_start(&k);

	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	/* b copies the bytes from a (not here), then says so */
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_ADD_REPLICA;
	req.u.page_id = page;
	ck_assert_int_eq(call0(b, &req), 0);
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(has_seg(segs, n, a->segment));
	ck_assert(has_seg(segs, n, b->segment));

	atomic_store(&a->beat, false);
	sleep_ms(TTL_MS * 3);
	ck_assert_int_eq(lookup(b, ROOT, "p", &at), 0);
	ck_assert_int_eq(replicas(b, page, segs, &n, NULL), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(segs[0], b->segment);
	keeper_stop(&k);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(under_replicated_pages_are_copied_when_a_segment_arrives)
{
	struct tmaster tm;
	struct tclient *a, *b;
	uint64_t page;

	master_start(&tm, ":memory:", 5000, 2);
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	/* nobody to copy to yet */
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	b = client(tm.port);
	reg(b, 0xb2, 7002, 0);
	/* the scan finds the page short of a copy and asks b */
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 5000));
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(pins_are_released_when_their_connection_closes)
{
	struct tmaster tm;
	struct tclient *a, *tool;
	uint64_t page, ino;
	int64_t freed = 0;
	uint32_t n = 0;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	tool = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(put(a, "p", 4096, &page, &ino), 0);
	ck_assert_int_eq(pin(tool, MC_WIRE_PIN, ino), 0);
	ck_assert_int_eq(pin(tool, MC_WIRE_PIN, ino), 0);
	/* an unpin of a pin this connection never took changes nothing */
	ck_assert_int_eq(pin(a, MC_WIRE_UNPIN, ino), 0);
	ck_assert_int_eq(evict(a, 1 << 20, &freed, &n), 0);
	ck_assert_int_eq(freed, 0);
	ck_assert_uint_eq(n, 0);

	client_close(tool);
	for (int i = 0; i < 100 && freed == 0; i++) {
		sleep_ms(20);
		ck_assert_int_eq(evict(a, 1 << 20, &freed, &n), 0);
	}
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lookup(a, ROOT, "p", NULL), -ENOENT);
	client_close(a);
	master_stop(&tm);
}
END_TEST

START_TEST(holdings_reconcile_after_a_daemon_restart)
{
	struct tmaster tm;
	struct tclient *a, *a2;
	struct mc_wire_msg req, rep;
	uint64_t segs[8], p1, p2, ids[2];
	unsigned n;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(put(a, "p1", 4096, &p1, NULL), 0);
	ck_assert_int_eq(put(a, "p2", 4096, &p2, NULL), 0);

	/* the daemon restarts before its old connection died: new one wins */
	a2 = client(tm.port);
	reg(a2, 0xa1, 7001, 0);
	ck_assert_uint_eq(a2->segment, a->segment);
	ck_assert(closed_by_master(mc_wire_conn_fd(a->wc), 2000));

	/* it holds p1 and a page the master never heard of, not p2 */
	ids[0] = p1;
	ids[1] = 999999;
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HOLDINGS;
	req.u.holdings.last = 1;
	req.u.holdings.count = 2;
	req.u.holdings.ids = ids;
	ck_assert_int_eq(call(a2, &req, &rep), 0);
	ck_assert_uint_eq(rep.u.ids.count, 1);
	ck_assert_uint_eq(rep.u.ids.ids[0], 999999);
	mc_wire_msg_release(&rep);

	ck_assert_int_eq(replicas(a2, p1, segs, &n, NULL), 0);
	ck_assert_int_eq(replicas(a2, p2, segs, &n, NULL), -ENOENT);
	ck_assert_int_eq(lookup(a2, ROOT, "p1", NULL), 0);
	ck_assert_int_eq(lookup(a2, ROOT, "p2", NULL), -ENOENT);
	client_close(a);
	client_close(a2);
	master_stop(&tm);
}
END_TEST

START_TEST(register_with_pool_lost_drops_its_copies)
{
	struct tmaster tm;
	struct tclient *a;
	uint64_t page;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	reg(a, 0xa1, 7001, MC_WIRE_REGISTER_POOL_LOST);
	ck_assert_int_eq(lookup(a, ROOT, "p", NULL), -ENOENT);
	client_close(a);
	master_stop(&tm);
}
END_TEST

START_TEST(evict_drops_only_the_callers_copy)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_wire_msg req;
	uint64_t segs[8], page;
	int64_t freed;
	uint32_t n;
	unsigned k;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	b = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	reg(b, 0xb2, 7002, 0);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_ADD_REPLICA;
	req.u.page_id = page;
	ck_assert_int_eq(call0(b, &req), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lookup(b, ROOT, "p", NULL), 0);
	ck_assert_int_eq(replicas(b, page, segs, &k, NULL), 0);
	ck_assert_uint_eq(k, 1);
	ck_assert_uint_eq(segs[0], b->segment);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

/* ---- tests: a full segment's pages move -------------------------------------- */

/* Two daemons: a (full, asking) and b (reporting room, used bytes). */
static void two_daemons(struct tmaster *tm, struct tclient **a,
			struct tclient **b, uint64_t b_used)
{
	master_start(tm, ":memory:", 5000, 1);
	*a = client(tm->port);
	*b = client(tm->port);
	reg(*a, 0xa1, 7001, 0);
	reg(*b, 0xb2, 7002, 0);
	ck_assert_int_eq(heartbeat_used(*a, 1ULL << 30), 0);
	ck_assert_int_eq(heartbeat_used(*b, b_used), 0);
}

START_TEST(evict_moves_pages_to_a_segment_with_room_instead)
{
	struct tmaster tm;
	struct tclient *a, *b;
	uint64_t segs[8], page;
	int64_t freed = -1;
	uint32_t n = 99;
	unsigned k;

	two_daemons(&tm, &a, &b, 4096);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	/* nothing freed yet: the page is on its way to b */
	ck_assert_int_eq(freed, 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	ck_assert_int_eq(lookup(b, ROOT, "p", NULL), 0);
	ck_assert_int_eq(replicas(b, page, segs, &k, NULL), 0);
	ck_assert_uint_eq(k, 1);
	ck_assert_uint_eq(segs[0], a->segment);

	/* b fetched it: a's copy goes, the page stays */
	ck_assert_int_eq(add_replica(b, page), 0);
	ck_assert(wait_request(a, MC_WIRE_DROP, page, 3000));
	ck_assert_uint_eq(drop_flags(a, page), MC_NS_DROPPED_COPY);
	ck_assert_int_eq(lookup(a, ROOT, "p", NULL), 0);
	ck_assert_int_eq(replicas(a, page, segs, &k, NULL), 0);
	ck_assert_uint_eq(k, 1);
	ck_assert_uint_eq(segs[0], b->segment);
	ck_assert_uint_eq(evictions(a), 0);
	/* a has nothing of its own left to give */
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 0);
	ck_assert(!wait_request(b, MC_WIRE_DROP, page, 200));
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(with_no_room_anywhere_evict_evicts_as_before)
{
	struct tmaster tm;
	struct tclient *a, *b, *c;
	uint64_t p1, p2;
	int64_t freed = 0;
	uint32_t n = 0;

	/* b says it is full */
	two_daemons(&tm, &a, &b, 1ULL << 30);
	ck_assert_int_eq(put(a, "p1", 4096, &p1, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(lookup(a, ROOT, "p1", NULL), -ENOENT);
	ck_assert_uint_eq(evictions(a), 1);
	/* c has not said how full it is yet: no pages for it either */
	c = client(tm.port);
	reg(c, 0xc3, 7003, 0);
	ck_assert_int_eq(put(a, "p2", 4096, &p2, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_int_eq(lookup(a, ROOT, "p2", NULL), -ENOENT);
	ck_assert(!wait_request(b, MC_WIRE_REPLICATE, p1, 200));
	ck_assert(!wait_request(c, MC_WIRE_REPLICATE, p2, 200));
	client_close(a);
	client_close(b);
	client_close(c);
	master_stop(&tm);
}
END_TEST

START_TEST(copies_with_another_copy_go_before_pages_move)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_ns_dropped d;
	uint64_t alone, shared, segs[8];
	int64_t freed = 0;
	uint32_t n = 0;
	unsigned k;

	two_daemons(&tm, &a, &b, 4096);
	/* the page only a holds is the older one */
	ck_assert_int_eq(put(a, "alone", 4096, &alone, NULL), 0);
	ck_assert_int_eq(put(a, "shared", 4096, &shared, NULL), 0);
	ck_assert_int_eq(add_replica(b, shared), 0);
	ck_assert_int_eq(evict_reply(a, evict_send(a, 4096), &freed, &n, &d),
			 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(d.page_id, shared);
	ck_assert_uint_eq(d.flags, MC_NS_DROPPED_COPY);
	ck_assert(!wait_request(b, MC_WIRE_REPLICATE, alone, 200));
	ck_assert_int_eq(replicas(b, alone, segs, &k, NULL), 0);
	ck_assert_uint_eq(segs[0], a->segment);
	ck_assert_uint_eq(evictions(a), 0);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(what_no_other_segment_can_take_is_evicted_oldest_first)
{
	struct tmaster tm;
	struct tclient *a, *b;
	uint64_t p[3];
	int64_t freed = 0;
	uint32_t n = 0;

	/* b may take 6000 more bytes: one page of 4096, not two */
	two_daemons(&tm, &a, &b, (1ULL << 30) / 100 * 85 - 6000);
	ck_assert_int_eq(put(a, "p0", 4096, &p[0], NULL), 0);
	ck_assert_int_eq(put(a, "p1", 4096, &p[1], NULL), 0);
	ck_assert_int_eq(put(a, "p2", 4096, &p[2], NULL), 0);
	ck_assert_int_eq(evict(a, 3 * 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 2 * 4096);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(lookup(a, ROOT, "p0", NULL), -ENOENT);
	ck_assert_int_eq(lookup(a, ROOT, "p1", NULL), -ENOENT);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, p[2], 3000));
	ck_assert_int_eq(lookup(a, ROOT, "p2", NULL), 0);
	ck_assert_uint_eq(evictions(a), 2);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(an_evict_while_pages_move_waits_and_reports_their_copies)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_ns_dropped d;
	uint64_t page, id;
	int64_t freed = 0;
	uint32_t n = 0;

	two_daemons(&tm, &a, &b, 4096);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	/* a is back before the page landed: its EVICT waits for it */
	id = evict_send(a, 4096);
	sleep_ms(100);
	ck_assert_int_eq(add_replica(b, page), 0);
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(evict_reply(a, id, &freed, &n, &d), 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(d.page_id, page);
	ck_assert_uint_eq(d.flags, MC_NS_DROPPED_COPY);
	/* in the reply, so not again as a DROP */
	ck_assert(!wait_request(a, MC_WIRE_DROP, page, 200));
	ck_assert_int_eq(lookup(a, ROOT, "p", NULL), 0);
	ck_assert_uint_eq(evictions(a), 0);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(pages_that_do_not_land_in_time_are_evicted_instead)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_ns_dropped d;
	uint64_t page, t0;
	int64_t freed = 0;
	uint32_t n = 0;

	two_daemons(&tm, &a, &b, 4096);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	/* b never fetches it */
	t0 = ms_now();
	ck_assert_int_eq(evict_reply(a, evict_send(a, 4096), &freed, &n, &d),
			 0);
	ck_assert_uint_ge(ms_now() - t0, 300);
	ck_assert_uint_lt(ms_now() - t0, 3000);
	ck_assert_int_eq(freed, 4096);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(d.page_id, page);
	ck_assert_uint_eq(d.flags, 0);
	ck_assert_int_eq(lookup(a, ROOT, "p", NULL), -ENOENT);
	ck_assert_uint_eq(evictions(a), 1);
	/* too late: b frees its copy */
	ck_assert_int_eq(add_replica(b, page), -ENOENT);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(a_page_opened_while_it_moves_keeps_its_old_copy)
{
	struct tmaster tm;
	struct tclient *a, *b, *tool;
	uint64_t page, ino, segs[8];
	int64_t freed = 0;
	uint32_t n = 0;
	unsigned k;

	two_daemons(&tm, &a, &b, 4096);
	tool = client(tm.port);
	ck_assert_int_eq(put(a, "p", 4096, &page, &ino), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	ck_assert_int_eq(pin(tool, MC_WIRE_PIN, ino), 0);
	ck_assert_int_eq(add_replica(b, page), 0);
	ck_assert(!wait_request(a, MC_WIRE_DROP, page, 300));
	ck_assert_int_eq(replicas(a, page, segs, &k, NULL), 0);
	ck_assert_uint_eq(k, 2);
	/* closed, a's copy is one like any other: it goes first */
	ck_assert_int_eq(pin(tool, MC_WIRE_UNPIN, ino), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_int_eq(freed, 4096);
	ck_assert_int_eq(replicas(a, page, segs, &k, NULL), 0);
	ck_assert_uint_eq(k, 1);
	ck_assert_uint_eq(segs[0], b->segment);
	client_close(tool);
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

START_TEST(a_page_unlinked_while_it_moves_is_forgotten)
{
	struct tmaster tm;
	struct tclient *a, *b;
	struct mc_wire_msg req;
	uint64_t page, q, t0;
	int64_t freed = 0;
	uint32_t n = 0;

	two_daemons(&tm, &a, &b, 4096);
	ck_assert_int_eq(put(a, "p", 4096, &page, NULL), 0);
	ck_assert_int_eq(put(a, "q", 4096, &q, NULL), 0);
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, page, 3000));
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_UNLINK;
	req.u.entry.parent = ROOT;
	snprintf(req.u.entry.name, sizeof(req.u.entry.name), "p");
	ck_assert_int_eq(call0(b, &req), 0);
	ck_assert(wait_request(a, MC_WIRE_DROP, page, 3000));
	ck_assert_uint_eq(drop_flags(a, page), 0);
	ck_assert_int_eq(add_replica(b, page), -ENOENT);
	/* nothing is moving: the next EVICT does not wait, q moves */
	t0 = ms_now();
	ck_assert_int_eq(evict(a, 4096, &freed, &n), 0);
	ck_assert_uint_lt(ms_now() - t0, 250);
	ck_assert_int_eq(freed, 0);
	ck_assert(wait_request(b, MC_WIRE_REPLICATE, q, 3000));
	client_close(a);
	client_close(b);
	master_stop(&tm);
}
END_TEST

/* ---- tests: hostile bytes -------------------------------------------------- */

static void send_frame(int fd, uint16_t type, uint64_t id, const void *payload,
		       uint32_t len)
{
	struct mc_wire_header h = { .version = MC_WIRE_VERSION,
				    .type = type,
				    .length = len,
				    .id = id };
	uint8_t buf[MC_WIRE_HEADER_SIZE + 512];

	ck_assert_uint_le(len, 512);
	ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
	if (len)
		memcpy(buf + MC_WIRE_HEADER_SIZE, payload, len);
	ck_assert_int_eq(write(fd, buf, MC_WIRE_HEADER_SIZE + len),
			 (ssize_t)(MC_WIRE_HEADER_SIZE + len));
}

START_TEST(garbage_closes_only_that_connection)
{
	static const char http[] = "GET /metadata?key=x HTTP/1.1\r\n\r\n";
	uint8_t big[MC_WIRE_HEADER_SIZE];
	struct mc_wire_header h = { .version = 1, .type = MC_WIRE_STATS };
	struct tmaster tm;
	struct tclient *good, *bad;

	master_start(&tm, ":memory:", 5000, 1);
	good = client(tm.port);
	reg(good, 0xa1, 7001, 0);
	ck_assert_int_eq(put(good, "p", 10, NULL, NULL), 0);

	/* not our protocol at all */
	bad = client_raw(tm.port);
	ck_assert_int_eq(write(mc_wire_conn_fd(bad->wc), http,
			       sizeof(http) - 1),
			 (ssize_t)(sizeof(http) - 1));
	ck_assert(closed_by_master(mc_wire_conn_fd(bad->wc), 2000));
	client_close(bad);

	/* a header announcing more than a frame may hold */
	bad = client(tm.port);
	ck_assert_int_eq(mc_wire_header_encode(&h, big), 0);
	big[12] = 0xff; /* length, little-endian: 0x...ff */
	big[13] = 0xff;
	big[14] = 0xff;
	ck_assert_int_eq(write(mc_wire_conn_fd(bad->wc), big, sizeof(big)),
			 (ssize_t)sizeof(big));
	ck_assert(closed_by_master(mc_wire_conn_fd(bad->wc), 2000));
	client_close(bad);

	/* a connection that just vanishes mid-frame */
	bad = client(tm.port);
	ck_assert_int_eq(write(mc_wire_conn_fd(bad->wc), big, 10), 10);
	client_close(bad);

	ck_assert_int_eq(lookup(good, ROOT, "p", NULL), 0);
	bad = client(tm.port);
	ck_assert_int_eq(lookup(bad, ROOT, "p", NULL), 0);
	client_close(bad);
	client_close(good);
	master_stop(&tm);
}
END_TEST

START_TEST(bad_payloads_are_answered_and_the_connection_goes_on)
{
	struct tmaster tm;
	struct tclient *cl;
	struct mc_wire_msg rep;
	uint8_t junk[8] = { 1, 2, 3 };
	int fd;

	master_start(&tm, ":memory:", 5000, 1);
	cl = client(tm.port);
	fd = mc_wire_conn_fd(cl->wc);
	send_frame(fd, MC_WIRE_LOOKUP, 11, junk, 3); /* cut short */
	ck_assert_int_eq(wait_reply(cl, 11, &rep), -EBADMSG);
	mc_wire_msg_release(&rep);
	send_frame(fd, 0x0777, 12, junk, 8); /* unknown type */
	ck_assert_int_eq(wait_reply(cl, 12, &rep), -ENOSYS);
	mc_wire_msg_release(&rep);
	send_frame(fd, MC_WIRE_READ_PAGE, 13, NULL, 0); /* not served here */
	ck_assert_int_lt(wait_reply(cl, 13, &rep), 0);
	mc_wire_msg_release(&rep);
	cl->next_id = 14;
	ck_assert_int_eq(lookup(cl, ROOT, "nothing", NULL), -ENOENT);
	client_close(cl);
	master_stop(&tm);
}
END_TEST

START_TEST(random_frames_never_crash_the_master)
{
	static const uint16_t types[] = {
		MC_WIRE_HELLO,
		MC_WIRE_REGISTER,
		MC_WIRE_HEARTBEAT,
		MC_WIRE_HOLDINGS,
		MC_WIRE_LOOKUP,
		MC_WIRE_GETATTR,
		MC_WIRE_MKDIR,
		MC_WIRE_RMDIR,
		MC_WIRE_RESERVE,
		MC_WIRE_COMMIT,
		MC_WIRE_UNLINK,
		MC_WIRE_RENAME,
		MC_WIRE_SETATTR,
		MC_WIRE_TOUCH,
		MC_WIRE_PIN,
		MC_WIRE_UNPIN,
		MC_WIRE_READDIR,
		MC_WIRE_NAME_OF,
		MC_WIRE_STATS,
		MC_WIRE_EVICT,
		MC_WIRE_REPLICAS,
		MC_WIRE_DROP,
		MC_WIRE_ADD_REPLICA,
		MC_WIRE_REPLICATE,
		MC_WIRE_READ_PAGE,
		0x0005,
		0x7fff,
	};
	const unsigned ntypes = sizeof(types) / sizeof(types[0]);
	struct tmaster tm;
	struct tclient *cl, *other;
	struct mc_wire_msg rep;
	uint8_t payload[512];
	unsigned seed = 12345;
	uint32_t len;
	int fd;

	master_start(&tm, ":memory:", 5000, 1);
	other = client(tm.port);
	cl = client(tm.port);
	fd = mc_wire_conn_fd(cl->wc);
	for (uint64_t id = 1; id <= 2000; id++) {
		len = (uint32_t)(rand_r(&seed) % sizeof(payload));
		if (id % 3 == 0)
			len %= 40; /* short ones decode more often */
		for (uint32_t i = 0; i < len; i++)
			payload[i] = (uint8_t)rand_r(&seed);
		send_frame(fd, types[rand_r(&seed) % ntypes], id, payload, len);
		/* every framed request gets its answer */
		(void)wait_reply(cl, id, &rep);
		mc_wire_msg_release(&rep);
	}
	cl->next_id = 2001;
	ck_assert_int_eq(lookup(cl, ROOT, "x", NULL), -ENOENT);
	ck_assert_int_eq(lookup(other, ROOT, "x", NULL), -ENOENT);
	client_close(cl);
	client_close(other);
	master_stop(&tm);
}
END_TEST

/* ---- tests: restart ---------------------------------------------------------- */

START_TEST(a_restarted_master_keeps_pages_and_waits_for_their_segments)
{
	char dir[] = "/tmp/test_master.XXXXXX", db[64];
	struct tmaster tm;
	struct tclient *a, *c, *tool;
	uint64_t segs[8], p, q;
	unsigned n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/master.db", dir);

	master_start(&tm, db, 1000, 1);
	a = client(tm.port);
	c = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	reg(c, 0xc3, 7003, 0);
	ck_assert_int_eq(put(a, "p", 4096, &p, NULL), 0);
	ck_assert_int_eq(put(c, "q", 4096, &q, NULL), 0);
	client_close(a);
	client_close(c);
	master_stop(&tm);

	master_start(&tm, db, 1000, 1);
	tool = client(tm.port);
	ck_assert_int_eq(lookup(tool, ROOT, "p", NULL), 0);
	ck_assert_int_eq(lookup(tool, ROOT, "q", NULL), 0);
	/* pending: not offered to readers until they come back */
	ck_assert_int_eq(replicas(tool, p, segs, &n, NULL), -ENOENT);
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(replicas(tool, p, segs, &n, NULL), 0);
	ck_assert_uint_eq(segs[0], a->segment);
	/* c never comes back: after the ttl its pages are gone */
	for (int i = 0; i < 30; i++) {
		sleep_ms(100);
		ck_assert_int_eq(heartbeat(a), 0);
	}
	ck_assert_int_eq(lookup(tool, ROOT, "q", NULL), -ENOENT);
	ck_assert_int_eq(lookup(tool, ROOT, "p", NULL), 0);
	client_close(a);
	client_close(tool);
	master_stop(&tm);

	unlink(db);
	snprintf(db, sizeof(db), "%s/master.db-wal", dir);
	unlink(db);
	snprintf(db, sizeof(db), "%s/master.db-shm", dir);
	unlink(db);
	rmdir(dir);
}
END_TEST

START_TEST(a_standalone_store_s_pages_go_at_start_and_its_segment_is_none)
{
	char dir[] = "/tmp/test_master.XXXXXX", db[64], path[80];
	struct mc_ns_commit c = {
		.parent = ROOT, .name = "p", .size = 10, .mode = S_IFREG | 0644
	};
	struct mc_wire_msg req, rep;
	struct mc_store *st;
	struct tmaster tm;
	struct tclient *tool, *a;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/master.db", dir);
	/* what mooncaked --standalone leaves: pages in the local segment */
	ck_assert_int_eq(mc_store_open(&st, db), 0);
	ck_assert_int_eq(mc_store_mkdir(st, ROOT, "d", 0755, 0, 0, NULL), 0);
	ck_assert_int_eq(mc_store_reserve(st, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_store_commit(st, &c, MC_NS_LOCAL_SEGMENT, NULL), 0);
	mc_store_close(st);

	master_start(&tm, db, 60000, 1);
	tool = client(tm.port);
	/* at once, not after a ttl: no daemon ever serves that memory */
	ck_assert_int_eq(lookup(tool, ROOT, "p", NULL), -ENOENT);
	ck_assert_int_eq(lookup(tool, ROOT, "d", NULL), 0);
	/* nor can a daemon pass itself off as the local segment */
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REGISTER;
	req.u.reg.segment[15] = 1;
	snprintf(req.u.reg.host, sizeof(req.u.reg.host), "impostor");
	snprintf(req.u.reg.address, sizeof(req.u.reg.address), "127.0.0.1");
	req.u.reg.port = 7001;
	snprintf(req.u.reg.protocol, sizeof(req.u.reg.protocol), "tcp");
	ck_assert_int_eq(call(tool, &req, &rep), -EINVAL);
	mc_wire_msg_release(&rep);
	a = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_uint_gt(a->segment, MC_NS_LOCAL_SEGMENT);
	client_close(a);
	client_close(tool);
	master_stop(&tm);

	snprintf(path, sizeof(path), "%s-wal", db);
	unlink(path);
	ck_assert_int_eq(unlink(db), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(stop_returns_with_clients_still_connected)
{
	struct tmaster tm;
	struct tclient *a, *tool;
	uint64_t ino;

	master_start(&tm, ":memory:", 5000, 1);
	a = client(tm.port);
	tool = client(tm.port);
	reg(a, 0xa1, 7001, 0);
	ck_assert_int_eq(put(a, "p", 10, NULL, &ino), 0);
	ck_assert_int_eq(pin(tool, MC_WIRE_PIN, ino), 0);
	master_stop(&tm);
	ck_assert(closed_by_master(mc_wire_conn_fd(a->wc), 2000));
	client_close(a);
	client_close(tool);
}
END_TEST

/* ---------------------------------------------------------------------------- */

static void add(Suite *s, const char *behaviour, const TTest *test)
{
	TCase *tc = tcase_create(behaviour);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *master_suite(void)
{
	Suite *s = suite_create("master");

	add(s, "HELLO with no common version is refused and closed",
	    hello_with_no_common_version_is_refused_and_closed);
	add(s, "requests before HELLO are answered EPROTO",
	    requests_before_hello_are_answered_eproto);
	add(s, "namespace calls need no REGISTER",
	    namespace_calls_need_no_register);
	add(s, "COMMIT, EVICT, HOLDINGS, HEARTBEAT need REGISTER",
	    commit_evict_holdings_heartbeat_need_register);
	add(s, "pipelined requests get every reply in order",
	    pipelined_requests_get_every_reply_in_order);
	add(s, "pipelined COMMITs are answered in order, each as if alone",
	    pipelined_commits_are_answered_in_order_each_as_if_alone);
	add(s, "READDIR pages through a directory",
	    readdir_pages_through_a_directory);
	add(s, "UNLINK elsewhere sends DROP to the holder",
	    unlink_elsewhere_sends_drop_to_the_holder);
	add(s, "a silent segment is declared dead after the ttl",
	    a_silent_segment_is_declared_dead_after_the_ttl);
	add(s, "a closed connection does not kill its segment at once",
	    a_closed_connection_does_not_kill_its_segment_at_once);
	add(s, "replica_num 2 asks another segment and survives a death",
	    replica_num_2_asks_another_segment_and_survives_a_death);
	add(s, "under-replicated pages are copied when a segment arrives",
	    under_replicated_pages_are_copied_when_a_segment_arrives);
	add(s, "pins are released when their connection closes",
	    pins_are_released_when_their_connection_closes);
	add(s, "HOLDINGS reconcile after a daemon restart",
	    holdings_reconcile_after_a_daemon_restart);
	add(s, "REGISTER with POOL_LOST drops its copies",
	    register_with_pool_lost_drops_its_copies);
	add(s, "EVICT drops only the caller's copy",
	    evict_drops_only_the_callers_copy);
	add(s, "EVICT moves pages to a segment with room instead",
	    evict_moves_pages_to_a_segment_with_room_instead);
	add(s, "with no room anywhere EVICT evicts as before",
	    with_no_room_anywhere_evict_evicts_as_before);
	add(s, "copies with another copy go before pages move",
	    copies_with_another_copy_go_before_pages_move);
	add(s, "what no other segment can take is evicted, oldest first",
	    what_no_other_segment_can_take_is_evicted_oldest_first);
	add(s, "an EVICT while pages move waits and reports their copies",
	    an_evict_while_pages_move_waits_and_reports_their_copies);
	add(s, "pages that do not land in time are evicted instead",
	    pages_that_do_not_land_in_time_are_evicted_instead);
	add(s, "a page opened while it moves keeps its old copy",
	    a_page_opened_while_it_moves_keeps_its_old_copy);
	add(s, "a page unlinked while it moves is forgotten",
	    a_page_unlinked_while_it_moves_is_forgotten);
	add(s, "garbage closes only that connection",
	    garbage_closes_only_that_connection);
	add(s, "bad payloads are answered and the connection goes on",
	    bad_payloads_are_answered_and_the_connection_goes_on);
	add(s, "random frames never crash the master",
	    random_frames_never_crash_the_master);
	add(s, "a restarted master keeps pages and waits for their segments",
	    a_restarted_master_keeps_pages_and_waits_for_their_segments);
	add(s, "a standalone store's pages go at start and its segment is none",
	    a_standalone_store_s_pages_go_at_start_and_its_segment_is_none);
	add(s, "stop returns with clients still connected",
	    stop_returns_with_clients_still_connected);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(master_suite());
	int failed;

	/* quiet unless something is wrong: tests provoke warnings on purpose */
	mc_log_init("test_master", MC_LOG_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
