/*
 * test_ns_client.c - the namespace calls over the wire, against a real
 * mooncake_master service running in this process.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "ns.h"
#include "ns_client.h"
#include "wire_io.h"
#include "banned.h"

struct running_master {
	struct mc_master *m;
	pthread_t thread;
	uint16_t port;
};

static void *master_main(void *arg)
{
	mc_master_run(arg);
	return NULL;
}

static void master_start(struct running_master *rm, const char *db,
			 uint16_t port)
{
	struct mc_master_params p = {
		.db_path = db,
		.rpc_address = "127.0.0.1",
		.port = port,
		.client_ttl_ms = 2000,
		.replica_num = 1,
	};

	ck_assert_int_eq(mc_master_new(&rm->m, &p), 0);
	rm->port = mc_master_port(rm->m);
	ck_assert_int_eq(pthread_create(&rm->thread, NULL, master_main, rm->m), 0);
}

static void master_stop(struct running_master *rm)
{
	mc_master_stop(rm->m);
	pthread_join(rm->thread, NULL);
	mc_master_free(rm->m);
	rm->m = NULL;
}

/* What a daemon would hold and what the client told it. */
struct host {
	uint64_t held[8];
	unsigned nheld;
	_Atomic uint64_t forgotten;
	_Atomic uint64_t dropped_ino;
	_Atomic unsigned ndropped;
};

static int host_holdings(void *ctx, int (*emit)(void *ectx, uint64_t id),
			 void *ectx)
{
	struct host *h = ctx;

	for (unsigned i = 0; i < h->nheld; i++) {
		int r = emit(ectx, h->held[i]);

		if (r)
			return r;
	}
	return 0;
}

static void host_forget(void *ctx, uint64_t id)
{
	struct host *h = ctx;

	atomic_store(&h->forgotten, id);
}

static void host_dropped(void *ctx, const struct mc_ns_dropped *d)
{
	struct host *h = ctx;

	atomic_store(&h->dropped_ino, d->ino);
	atomic_fetch_add(&h->ndropped, 1);
}

static struct mc_ns *client(uint16_t port, uint8_t id, struct host *h)
{
	struct mc_ns_client_params p;
	struct mc_ns_listener l = { .dropped = host_dropped, .ctx = h };
	char master[32];
	struct mc_ns *ns;

	snprintf(master, sizeof(master), "127.0.0.1:%u", port);
	memset(&p, 0, sizeof(p));
	p.master = master;
	p.name = "test";
	p.segment[0] = id;
	p.host = "testhost";
	p.address = "127.0.0.1";
	p.capacity = 1 << 30;
	p.protocol = "tcp";
	p.timeout_ms = 2000;
	p.holdings = host_holdings;
	p.forget = host_forget;
	p.ctx = h;
	ck_assert_int_eq(mc_ns_connect(&ns, &p), 0);
	mc_ns_set_listener(ns, &l);
	ck_assert_int_eq(mc_ns_client_start(ns, (uint16_t)(40000 + id), 3000), 0);
	return ns;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Commit a page named name in the root, held by this client's segment. */
static void commit_page(struct mc_ns *ns, const char *name, uint64_t size,
			uint64_t *ino, uint64_t *page)
{
	struct mc_ns_commit c;
	struct mc_ns_dropped replaced;

	ck_assert_int_eq(mc_ns_reserve(ns, ino, page), 0);
	memset(&c, 0, sizeof(c));
	c.parent = MC_NS_ROOT_INO;
	c.name = name;
	c.ino = *ino;
	c.page_id = *page;
	c.mode = S_IFREG | 0644;
	c.size = size;
	c.mtime_ns = 1;
	c.crc32c = 0x1234;
	ck_assert_int_eq(mc_ns_commit(ns, &c, &replaced), 0);
	ck_assert_uint_eq(replaced.ino, 0);
}

static int count_entry(void *ctx, const char *name,
		       const struct mc_ns_attr *a)
{
	(void)name;
	(void)a;
	(*(int *)ctx)++;
	return 0;
}

START_TEST(calls_without_a_master_fail_at_once_with_ehostdown)
{
	struct mc_ns_attr a;
	struct host h;
	struct mc_ns *ns;
	uint64_t t0;

	memset(&h, 0, sizeof(h));
	/* nothing listens on port 1 */
	ns = client(1, 1, &h);
	ck_assert(!mc_ns_client_connected(ns));
	t0 = now_ms();
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "x", &a), -EHOSTDOWN);
	ck_assert_uint_lt(now_ms() - t0, 100);
	mc_ns_close(ns);
}
END_TEST

START_TEST(namespace_calls_round_trip_through_the_master)
{
	struct running_master rm;
	struct mc_ns_attr a, d;
	struct mc_ns_replicas reps;
	struct mc_ns_dropped dropped;
	struct host h;
	struct mc_ns *ns;
	uint64_t ino, page;
	int n = 0;

	memset(&h, 0, sizeof(h));
	master_start(&rm, ":memory:", 0);
	ns = client(rm.port, 2, &h);
	ck_assert(mc_ns_client_connected(ns));
	ck_assert(mc_ns_is_cluster(ns));
	ck_assert_uint_ne(mc_ns_segment(ns), 0);

	ck_assert_int_eq(mc_ns_mkdir(ns, MC_NS_ROOT_INO, "dir", S_IFDIR | 0755,
				     0, 0, &d), 0);
	ck_assert_int_eq(mc_ns_mkdir(ns, MC_NS_ROOT_INO, "dir", S_IFDIR | 0755,
				     0, 0, &d), -EEXIST);
	commit_page(ns, "page", 4096, &ino, &page);
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "page", &a), 0);
	ck_assert_uint_eq(a.ino, ino);
	ck_assert_uint_eq(a.size, 4096);
	ck_assert_uint_eq(a.page_id, page);
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "nope", &a), -ENOENT);

	/* the master knows where the bytes are and their checksum */
	ck_assert_int_eq(mc_ns_replicas(ns, page, &reps), 0);
	ck_assert_uint_eq(reps.count, 1);
	ck_assert_uint_eq(reps.r[0].segment_id, mc_ns_segment(ns));
	ck_assert_uint_eq(reps.r[0].port, 40002);
	ck_assert_str_eq(reps.r[0].address, "127.0.0.1");
	ck_assert_uint_eq(reps.crc32c, 0x1234);
	ck_assert_uint_eq(reps.size, 4096);

	ck_assert_int_eq(mc_ns_readdir(ns, MC_NS_ROOT_INO, 0, count_entry, &n), 0);
	ck_assert_int_eq(n, 2);
	ck_assert_int_eq(mc_ns_rename(ns, MC_NS_ROOT_INO, "page", d.ino, "moved",
				      0, &dropped), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, d.ino, "moved", &a), 0);
	ck_assert_int_eq(mc_ns_unlink(ns, d.ino, "moved", &dropped), 0);
	ck_assert_uint_eq(dropped.ino, ino);
	ck_assert_uint_eq(dropped.page_id, page);
	ck_assert_int_eq(mc_ns_getattr(ns, ino, &a), -ENOENT);
	ck_assert_int_eq(mc_ns_rmdir(ns, MC_NS_ROOT_INO, "dir"), 0);

	mc_ns_close(ns);
	master_stop(&rm);
}
END_TEST

START_TEST(an_unlink_on_one_host_reaches_the_holder_as_a_drop)
{
	struct running_master rm;
	struct mc_ns_dropped dropped;
	struct host ha, hb;
	struct mc_ns *a, *b;
	uint64_t ino, page, t0;

	memset(&ha, 0, sizeof(ha));
	memset(&hb, 0, sizeof(hb));
	master_start(&rm, ":memory:", 0);
	a = client(rm.port, 3, &ha);
	b = client(rm.port, 4, &hb);
	commit_page(a, "shared", 100, &ino, &page);
	ck_assert_int_eq(mc_ns_unlink(b, MC_NS_ROOT_INO, "shared", &dropped), 0);
	t0 = now_ms();
	while (atomic_load(&ha.ndropped) == 0 && now_ms() - t0 < 2000)
		usleep(1000);
	ck_assert_uint_eq(atomic_load(&ha.dropped_ino), ino);
	/* the host that unlinked learns it from its own reply */
	ck_assert_uint_eq(atomic_load(&hb.ndropped), 0);
	mc_ns_close(a);
	mc_ns_close(b);
	master_stop(&rm);
}
END_TEST

START_TEST(a_restarted_master_is_rejoined_and_keeps_held_pages)
{
	char dir[] = "/tmp/test_ns_client.XXXXXX", db[64];
	struct running_master rm;
	struct mc_ns_attr a;
	struct host h;
	struct mc_ns *ns;
	uint64_t ino, page, t0;
	uint16_t port;
	int r;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/master.db", dir);
	memset(&h, 0, sizeof(h));
	master_start(&rm, db, 0);
	port = rm.port;
	ns = client(port, 5, &h);
	commit_page(ns, "kept", 10, &ino, &page);
	h.held[h.nheld++] = page;	/* the daemon's pool holds its bytes */
	h.held[h.nheld++] = 0xdead;	/* and a page the master never had */

	master_stop(&rm);
	/* away: calls fail fast, not after a timeout */
	t0 = now_ms();
	do {
		r = mc_ns_lookup(ns, MC_NS_ROOT_INO, "kept", &a);
	} while (r == 0 && now_ms() - t0 < 2000);
	ck_assert_int_eq(r, -EHOSTDOWN);
	t0 = now_ms();
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "kept", &a), -EHOSTDOWN);
	ck_assert_uint_lt(now_ms() - t0, 100);

	master_start(&rm, db, port);
	t0 = now_ms();
	while (!mc_ns_client_connected(ns) && now_ms() - t0 < 5000)
		usleep(10000);
	ck_assert(mc_ns_client_connected(ns));
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "kept", &a), 0);
	ck_assert_uint_eq(a.ino, ino);
	/* the page the master never had is for the daemon to free */
	ck_assert_uint_eq(atomic_load(&h.forgotten), 0xdead);

	mc_ns_close(ns);
	master_stop(&rm);
	unlink(db);
	{
		char p[96];

		snprintf(p, sizeof(p), "%s-wal", db);
		unlink(p);
		snprintf(p, sizeof(p), "%s-shm", db);
		unlink(p);
	}
	rmdir(dir);
}
END_TEST


/*
 * A scripted master for what the real one never does: answer late, stop
 * reading, or answer with the wrong type.  It takes one session (HELLO,
 * REGISTER, HOLDINGS), then refuses any other connection.
 */
enum fake_mode {
	FAKE_SERVE,		/* PIN/UNPIN: 0; READDIR: wrong type; else -ENOENT */
	FAKE_DEAF,		/* stop reading after the registration */
	FAKE_BAD_HOLDINGS,	/* answer HOLDINGS with a REGISTER reply */
};

#define FAKE_SEEN 16

struct fake_master {
	int lfd;
	uint16_t port;
	pthread_t thread;
	enum fake_mode mode;
	unsigned register_delay_ms;
	_Atomic bool stop;
	_Atomic bool registered;	/* the REGISTER reply left */
	/* the first requests after HOLDINGS */
	_Atomic unsigned nseen;
	uint16_t seen_type[FAKE_SEEN];
	uint64_t seen_ids[FAKE_SEEN][4];
	uint32_t seen_count[FAKE_SEEN];
};

static int fake_send(struct mc_wire_conn *conn, struct mc_wire_msg *rep,
		     uint64_t id)
{
	return mc_wire_conn_send(conn, rep, id);
}

static void fake_session(struct fake_master *f, struct mc_wire_conn *conn)
{
	struct mc_wire_header h;
	struct mc_wire_msg m, rep;
	bool last = false;
	int ds;

	if (mc_wire_conn_recv(conn, &h, &m, &ds) < 0 || ds < 0)
		return;
	ck_assert_int_eq(mc_wire_conn_answer_hello(conn, &h, &m), 0);
	mc_wire_msg_release(&m);
	if (mc_wire_conn_recv(conn, &h, &m, &ds) < 0)
		return;
	ck_assert_uint_eq(h.type, MC_WIRE_REGISTER);
	mc_wire_msg_release(&m);
	usleep(f->register_delay_ms * 1000);
	memset(&rep, 0, sizeof(rep));
	rep.type = MC_WIRE_REGISTER | MC_WIRE_REPLY;
	rep.u.reg_reply.segment_id = 7;
	rep.u.reg_reply.heartbeat_ms = 60000;	/* none during a test */
	rep.u.reg_reply.client_ttl_ms = 240000;
	if (fake_send(conn, &rep, h.id) < 0)
		return;
	atomic_store(&f->registered, true);
	while (!last) {
		if (mc_wire_conn_recv(conn, &h, &m, &ds) < 0)
			return;
		ck_assert_uint_eq(h.type, MC_WIRE_HOLDINGS);
		last = m.u.holdings.last;
		mc_wire_msg_release(&m);
		memset(&rep, 0, sizeof(rep));
		if (f->mode == FAKE_BAD_HOLDINGS) {
			/* read as the ids expected, its numbers are a pointer */
			rep.type = MC_WIRE_REGISTER | MC_WIRE_REPLY;
			rep.u.reg_reply.segment_id = 1;
			rep.u.reg_reply.heartbeat_ms = 0x4141414141414141ull;
			rep.u.reg_reply.client_ttl_ms = 1;
			last = true;
		} else {
			rep.type = MC_WIRE_HOLDINGS | MC_WIRE_REPLY;
		}
		if (fake_send(conn, &rep, h.id) < 0)
			return;
	}
	if (f->mode == FAKE_BAD_HOLDINGS)
		return;
	/* the client's first heartbeat ends its registration */
	if (mc_wire_conn_recv(conn, &h, &m, &ds) < 0)
		return;
	ck_assert_uint_eq(h.type, MC_WIRE_HEARTBEAT);
	mc_wire_msg_release(&m);
	memset(&rep, 0, sizeof(rep));
	rep.type = MC_WIRE_HEARTBEAT | MC_WIRE_REPLY;
	if (fake_send(conn, &rep, h.id) < 0)
		return;
	if (f->mode == FAKE_DEAF) {
		while (!atomic_load(&f->stop))
			usleep(10000);
		return;
	}
	while (!atomic_load(&f->stop)) {
		unsigned n;

		if (mc_wire_conn_recv(conn, &h, &m, &ds) < 0)
			return;
		n = atomic_load(&f->nseen);
		if (n < FAKE_SEEN) {
			f->seen_type[n] = h.type;
			if (ds == 0 && (h.type == MC_WIRE_PIN ||
					h.type == MC_WIRE_UNPIN)) {
				f->seen_count[n] = m.u.ids.count;
				for (uint32_t i = 0; i < m.u.ids.count && i < 4; i++)
					f->seen_ids[n][i] = m.u.ids.ids[i];
			}
			atomic_store(&f->nseen, n + 1);
		}
		mc_wire_msg_release(&m);
		memset(&rep, 0, sizeof(rep));
		rep.type = h.type | MC_WIRE_REPLY;
		if (h.type == MC_WIRE_READDIR) {
			/* read as a READDIR reply, bytes is its items pointer */
			rep.type = MC_WIRE_STATS | MC_WIRE_REPLY;
			rep.u.stats.pages = 1;
			rep.u.stats.bytes = 0x4141414141414141ull;
		} else if (h.type != MC_WIRE_PIN && h.type != MC_WIRE_UNPIN) {
			rep.status = -ENOENT;
		}
		if (fake_send(conn, &rep, h.id) < 0)
			return;
	}
}

static void *fake_main(void *arg)
{
	struct fake_master *f = arg;
	struct pollfd pfd = { .fd = f->lfd, .events = POLLIN };
	struct mc_wire_conn *conn = NULL;
	int fd;

	while (!atomic_load(&f->stop) && poll(&pfd, 1, 20) == 0)
		;
	fd = atomic_load(&f->stop) ? -1 : accept(f->lfd, NULL, NULL);
	/* one session only: a reconnect is refused */
	close(f->lfd);
	if (fd < 0)
		return NULL;
	ck_assert_int_eq(mc_wire_conn_open(&conn, fd), 0);
	mc_wire_conn_set_timeout(conn, 10000);
	fake_session(f, conn);
	mc_wire_conn_close(conn);
	return NULL;
}

static void fake_start(struct fake_master *f, enum fake_mode mode)
{
	int small = 4096;

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->lfd = mc_wire_listen("127.0.0.1", 0, 4);
	ck_assert_int_ge(f->lfd, 0);
	/* a deaf master's socket fills soon (accepted sockets inherit it) */
	ck_assert_int_eq(setsockopt(f->lfd, SOL_SOCKET, SO_RCVBUF, &small,
				    sizeof(small)), 0);
	ck_assert_int_eq(mc_wire_local_port(f->lfd, &f->port), 0);
}

static void fake_run(struct fake_master *f)
{
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake_master *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
}

/* A client of the fake: made, not started. */
static struct mc_ns *fake_client(struct fake_master *f, struct host *h,
				 unsigned timeout_ms)
{
	struct mc_ns_client_params p;
	struct mc_ns_listener l = { .dropped = host_dropped, .ctx = h };
	char master[32];
	struct mc_ns *ns;

	snprintf(master, sizeof(master), "127.0.0.1:%u", f->port);
	memset(&p, 0, sizeof(p));
	p.master = master;
	p.name = "test";
	p.segment[0] = 9;
	p.host = "testhost";
	p.address = "127.0.0.1";
	p.capacity = 1 << 30;
	p.protocol = "tcp";
	p.timeout_ms = timeout_ms;
	p.holdings = host_holdings;
	p.forget = host_forget;
	p.ctx = h;
	ck_assert_int_eq(mc_ns_connect(&ns, &p), 0);
	mc_ns_set_listener(ns, &l);
	return ns;
}

START_TEST(a_stop_during_registration_does_not_hang)
{
	struct fake_master f;
	struct host h;
	struct mc_ns *ns;
	uint64_t t0;

	memset(&h, 0, sizeof(h));
	fake_start(&f, FAKE_SERVE);
	f.register_delay_ms = 300;
	fake_run(&f);
	ns = fake_client(&f, &h, 2000);
	ck_assert_int_eq(mc_ns_client_start(ns, 40009, 0), 0);
	/* REGISTER is on its way and its answer 300 ms off */
	usleep(100 * 1000);
	ck_assert(!atomic_load(&f.registered));
	t0 = now_ms();
	mc_ns_client_stop(ns);
	/* the registration ends in a session nobody would ever cut */
	ck_assert_uint_lt(now_ms() - t0, 2000);
	ck_assert(!mc_ns_client_connected(ns));
	mc_ns_close(ns);
	fake_stop(&f);
}
END_TEST

START_TEST(a_master_that_stops_reading_costs_a_reconnect_not_a_hang)
{
	struct fake_master f;
	struct mc_ns_attr a;
	struct host h;
	struct mc_ns *ns;
	uint64_t t0, i;

	memset(&h, 0, sizeof(h));
	fake_start(&f, FAKE_DEAF);
	fake_run(&f);
	ns = fake_client(&f, &h, 300);
	ck_assert_int_eq(mc_ns_client_start(ns, 40009, 3000), 0);
	ck_assert(mc_ns_client_connected(ns));
	/* touches go out without waiting: they fill both sides' buffers */
	t0 = now_ms();
	for (i = 0; i < (1u << 24) && mc_ns_client_connected(ns); i++)
		ck_assert_int_eq(mc_ns_touch(ns, MC_NS_FIRST_INO + i % 1000, i),
				 0);
	ck_assert(!mc_ns_client_connected(ns));
	ck_assert_uint_lt(now_ms() - t0, 10000);
	/* and calls fail at once, as with a master away */
	t0 = now_ms();
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "x", &a), -EHOSTDOWN);
	ck_assert_uint_lt(now_ms() - t0, 100);
	mc_ns_close(ns);
	fake_stop(&f);
}
END_TEST

START_TEST(a_reply_of_the_wrong_type_is_ebadmsg_not_a_crash)
{
	struct fake_master f;
	struct host h;
	struct mc_ns *ns;
	int n = 0;

	memset(&h, 0, sizeof(h));
	fake_start(&f, FAKE_SERVE);
	fake_run(&f);
	ns = fake_client(&f, &h, 2000);
	ck_assert_int_eq(mc_ns_client_start(ns, 40009, 3000), 0);
	ck_assert(mc_ns_client_connected(ns));
	ck_assert_int_eq(mc_ns_readdir(ns, MC_NS_ROOT_INO, 0, count_entry, &n),
			 -EBADMSG);
	ck_assert_int_eq(n, 0);
	mc_ns_close(ns);
	fake_stop(&f);
}
END_TEST

START_TEST(a_holdings_answer_of_the_wrong_type_fails_the_registration)
{
	struct fake_master f;
	struct host h;
	struct mc_ns *ns;

	memset(&h, 0, sizeof(h));
	h.held[h.nheld++] = 0x99;
	fake_start(&f, FAKE_BAD_HOLDINGS);
	fake_run(&f);
	ns = fake_client(&f, &h, 2000);
	ck_assert_int_eq(mc_ns_client_start(ns, 40009, 1000), 0);
	ck_assert(!mc_ns_client_connected(ns));
	ck_assert_uint_eq(atomic_load(&h.forgotten), 0);
	mc_ns_close(ns);
	fake_stop(&f);
}
END_TEST

START_TEST(pins_of_open_files_reach_a_new_master_before_any_call)
{
	struct fake_master f;
	struct mc_ns_attr a;
	struct host h;
	struct mc_ns *ns;
	uint64_t got[3];

	memset(&h, 0, sizeof(h));
	fake_start(&f, FAKE_SERVE);
	fake_run(&f);
	ns = fake_client(&f, &h, 2000);
	/* opened while no master answered: twice, and another */
	mc_ns_pin(ns, 100);
	mc_ns_pin(ns, 100);
	mc_ns_pin(ns, 200);
	mc_ns_pin(ns, 300);
	mc_ns_unpin(ns, 300);
	ck_assert_int_eq(mc_ns_client_start(ns, 40009, 3000), 0);
	ck_assert(mc_ns_client_connected(ns));
	ck_assert_int_eq(mc_ns_lookup(ns, MC_NS_ROOT_INO, "x", &a), -ENOENT);
	ck_assert_uint_ge(atomic_load(&f.nseen), 2);
	ck_assert_uint_eq(f.seen_type[0], MC_WIRE_PIN);
	ck_assert_uint_eq(f.seen_count[0], 3);
	memcpy(got, f.seen_ids[0], sizeof(got));
	ck_assert_uint_eq((got[0] == 100) + (got[1] == 100) + (got[2] == 100), 2);
	ck_assert_uint_eq((got[0] == 200) + (got[1] == 200) + (got[2] == 200), 1);
	ck_assert_uint_eq(f.seen_type[1], MC_WIRE_LOOKUP);
	mc_ns_close(ns);
	fake_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ns_client");
	TCase *tc = tcase_create("over the wire");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, calls_without_a_master_fail_at_once_with_ehostdown);
	tcase_add_test(tc, namespace_calls_round_trip_through_the_master);
	tcase_add_test(tc, an_unlink_on_one_host_reaches_the_holder_as_a_drop);
	tcase_add_test(tc, a_restarted_master_is_rejoined_and_keeps_held_pages);
	suite_add_tcase(s, tc);

	tc = tcase_create("against a scripted master");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, a_stop_during_registration_does_not_hang);
	tcase_add_test(tc, a_master_that_stops_reading_costs_a_reconnect_not_a_hang);
	tcase_add_test(tc, a_reply_of_the_wrong_type_is_ebadmsg_not_a_crash);
	tcase_add_test(tc, a_holdings_answer_of_the_wrong_type_fails_the_registration);
	tcase_add_test(tc, pins_of_open_files_reach_a_new_master_before_any_call);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	mc_log_init("test_ns_client", MC_LOG_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
