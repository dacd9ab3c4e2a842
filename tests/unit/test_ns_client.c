/*
 * test_ns_client.c - the namespace calls over the wire, against a real
 * mooncake_master service running in this process.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "ns.h"
#include "ns_client.h"
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
