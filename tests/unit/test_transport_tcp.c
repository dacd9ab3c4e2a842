/*
 * test_transport_tcp.c - the TCP transport against a real data server on
 * 127.0.0.1, serving page files from a temporary directory: bytes arrive
 * exact, every refusal has its errno, and no bytes a client sends can
 * crash the server or cost it more than that client's connection.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "data_server.h"
#include "fetch.h"
#include "transport.h"
#include "wire_io.h"
#include "banned.h"

#define BIG_ID 1 /* a page of BIG_LEN bytes */
#define BIG_LEN ((8u << 20) + 123)
#define SMALL_ID 2
#define SMALL_LEN 1000
#define EMPTY_ID 3

static char dir[64];
static int dirfd_ = -1;
static uint8_t *big, *small;
static struct mc_data_server *server;
static struct mc_transport *t;
static struct mc_ns_replica peer;

/* ---------------------------------------------------------------- pages */

static void fill(uint8_t *p, uint64_t len, uint32_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15u + 1;

	for (uint64_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static void write_page(uint64_t id, const void *p, size_t len)
{
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "%016" PRIx64, id);
	fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
	close(fd);
}

/* struct mc_page_source over the directory: files named by page id */
static int dir_open(void *ctx, uint64_t page_id, int *fd, uint64_t *size)
{
	int dfd = *(int *)ctx;
	struct stat st;
	char name[32];
	int r;

	snprintf(name, sizeof(name), "%016" PRIx64, page_id);
	*fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &st) < 0) {
		r = -errno;
		close(*fd);
		return r;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

/* the daemon's own setting: page files never shrink, sent from a mapping */
static struct mc_page_source source = {
	.open = dir_open,
	.immutable = true,
	.ctx = &dirfd_,
};

static void start_server(const struct mc_data_server_params *p)
{
	ck_assert_int_eq(mc_data_server_open(&server, p, &source), 0);
	memset(&peer, 0, sizeof(peer));
	peer.segment_id = 11;
	snprintf(peer.address, sizeof(peer.address), "127.0.0.1");
	peer.port = mc_data_server_port(server);
	ck_assert_uint_ne(peer.port, 0);
}

static void setup(void)
{
	struct mc_data_server_params sp = { .address = "127.0.0.1" };
	struct mc_transport_tcp_params tp = { .timeout_ms = 2000,
					      .name = "test" };

	snprintf(dir, sizeof(dir), "/tmp/mc-test-tcp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd_, 0);
	big = malloc(BIG_LEN);
	small = malloc(SMALL_LEN);
	fill(big, BIG_LEN, 1);
	fill(small, SMALL_LEN, 2);
	write_page(BIG_ID, big, BIG_LEN);
	write_page(SMALL_ID, small, SMALL_LEN);
	write_page(EMPTY_ID, "", 0);
	start_server(&sp);
	ck_assert_int_eq(mc_transport_tcp_new(&t, &tp), 0);
}

static void teardown(void)
{
	char name[32];

	mc_transport_free(t);
	t = NULL;
	mc_data_server_close(server);
	server = NULL;
	for (uint64_t id = 1; id <= 4; id++) {
		snprintf(name, sizeof(name), "%016" PRIx64, id);
		unlinkat(dirfd_, name, 0);
	}
	close(dirfd_);
	rmdir(dir);
	free(big);
	free(small);
}

static struct mc_wire_read_page request(uint64_t id, uint64_t off, uint64_t len)
{
	struct mc_wire_read_page rq = { .page_id = id,
					.offset = off,
					.length = len };

	if (id == BIG_ID) {
		rq.expected_size = BIG_LEN;
		rq.expected_crc32c = mc_crc32c(0, big, BIG_LEN);
	} else if (id == SMALL_ID) {
		rq.expected_size = SMALL_LEN;
		rq.expected_crc32c = mc_crc32c(0, small, SMALL_LEN);
	}
	return rq;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Until the server holds only `open` connections (the transport's pooled
 * ones): those it dropped are closed and their threads gone.
 */
static void wait_open(unsigned open)
{
	struct mc_data_server_stats st;
	uint64_t t0 = now_ms();

	do {
		mc_data_server_get_stats(server, &st);
		if (st.open == open)
			return;
		poll(NULL, 0, 10);
	} while (now_ms() - t0 < 5000);
	ck_abort_msg("the server holds %u connections, not %u", st.open, open);
}

/* ------------------------------------------------------------ good reads */

START_TEST(a_whole_page_arrives_byte_exact_with_its_checksum)
{
	struct mc_wire_read_page rq = request(BIG_ID, 0, BIG_LEN);
	uint8_t *dst = malloc(BIG_LEN);
	uint32_t crc = 0;

	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, &crc), 0);
	ck_assert_int_eq(memcmp(dst, big, BIG_LEN), 0);
	ck_assert_uint_eq(crc, rq.expected_crc32c);
	rq = request(SMALL_ID, 0, SMALL_LEN);
	crc = 0;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, &crc), 0);
	ck_assert_int_eq(memcmp(dst, small, SMALL_LEN), 0);
	ck_assert_uint_eq(crc, rq.expected_crc32c);
	free(dst);
}
END_TEST

START_TEST(partial_ranges_arrive_byte_exact_and_chain_the_checksum)
{
	static const uint64_t ranges[][2] = {
		{ 0, 1 },	    { 1, 4095 },
		{ 4096, 65536 },    { 12345, 1000000 },
		{ BIG_LEN - 1, 1 }, { BIG_LEN - 3000000, 3000000 },
		{ 777, 0 },	    { BIG_LEN, 0 },
	};
	uint8_t *dst = malloc(BIG_LEN + 1);

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		struct mc_wire_read_page rq =
			request(BIG_ID, ranges[i][0], ranges[i][1]);
		uint32_t before = mc_crc32c(0, big, ranges[i][0]);
		uint32_t crc = before;

		dst[ranges[i][1]] = 0xa5;
		ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, &crc),
				 0);
		ck_assert_int_eq(memcmp(dst, big + ranges[i][0], ranges[i][1]),
				 0);
		ck_assert_uint_eq(crc, mc_crc32c(before, big + ranges[i][0],
						 ranges[i][1]));
		ck_assert_uint_eq(dst[ranges[i][1]], 0xa5);
	}
	free(dst);
}
END_TEST

START_TEST(an_empty_page_reads_as_nothing)
{
	struct mc_wire_read_page rq = { .page_id = EMPTY_ID };
	uint32_t crc = 0;
	uint8_t b = 0x11;

	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, &b, &crc), 0);
	ck_assert_uint_eq(crc, 0);
	ck_assert_uint_eq(b, 0x11);
}
END_TEST

START_TEST(a_connection_is_reused_across_many_reads)
{
	struct mc_wire_read_page rq = request(SMALL_ID, 0, SMALL_LEN);
	struct mc_data_server_stats st;
	uint8_t dst[SMALL_LEN];

	for (int i = 0; i < 300; i++) {
		memset(dst, 0, sizeof(dst));
		ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL),
				 0);
		ck_assert_int_eq(memcmp(dst, small, SMALL_LEN), 0);
	}
	/* errors the peer answers in the frame keep the connection too */
	rq = request(SMALL_ID, 0, SMALL_LEN);
	rq.expected_size++;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -ESTALE);
	rq = request(99, 0, 0);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -ENOENT);
	rq = request(BIG_ID, 0, 100);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), 0);
	mc_data_server_get_stats(server, &st);
	ck_assert_uint_eq(st.accepted, 1);
	ck_assert_uint_eq(st.requests, 303);
	ck_assert_uint_eq(st.pages_sent, 301);
}
END_TEST

START_TEST(a_pooled_connection_the_server_timed_out_is_replaced)
{
	struct mc_data_server_params sp = { .address = "127.0.0.1",
					    .idle_timeout_ms = 100 };
	struct mc_wire_read_page rq = request(SMALL_ID, 0, SMALL_LEN);
	struct mc_data_server_stats st;
	uint8_t dst[SMALL_LEN];

	mc_data_server_close(server);
	start_server(&sp);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), 0);
	/* the server drops it as idle; the next read must not notice */
	poll(NULL, 0, 300);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), 0);
	ck_assert_int_eq(memcmp(dst, small, SMALL_LEN), 0);
	mc_data_server_get_stats(server, &st);
	ck_assert_uint_eq(st.accepted, 2);
}
END_TEST

struct reader_arg {
	int seed;
	int fails;
};

static void *reader_main(void *arg)
{
	struct reader_arg *a = arg;
	uint8_t *dst = malloc(BIG_LEN);
	uint64_t x = (uint64_t)a->seed * 2654435761u + 1;

	for (int i = 0; i < 40; i++) {
		uint64_t off, len;
		struct mc_wire_read_page rq;
		uint32_t crc;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		off = i % 4 == 0 ? 0 : x % BIG_LEN;
		len = i % 4 == 0 ? BIG_LEN : (x >> 24) % (BIG_LEN - off + 1);
		rq = request(BIG_ID, off, len);
		crc = mc_crc32c(0, big, off);
		if (mc_transport_read(t, &peer, &rq, dst, &crc) != 0 ||
		    memcmp(dst, big + off, len) != 0 ||
		    crc != mc_crc32c(mc_crc32c(0, big, off), big + off, len))
			a->fails++;
	}
	free(dst);
	return NULL;
}

START_TEST(four_threads_reading_at_once_get_exact_bytes)
{
	struct reader_arg args[4];
	pthread_t th[4];
	struct mc_data_server_stats st;

	for (int i = 0; i < 4; i++) {
		args[i].seed = i + 1;
		args[i].fails = 0;
		ck_assert_int_eq(
			pthread_create(&th[i], NULL, reader_main, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(args[i].fails, 0);
	}
	mc_data_server_get_stats(server, &st);
	ck_assert_uint_eq(st.requests, 160);
	/* pooled: never more connections than readers at once, and far
	 * fewer than reads */
	ck_assert_uint_le(st.accepted, 4 * 4);
}
END_TEST

START_TEST(fetch_over_tcp_checks_the_whole_page)
{
	struct mc_ns_replicas r = { .size = BIG_LEN,
				    .crc32c = mc_crc32c(0, big, BIG_LEN),
				    .count = 2 };
	uint8_t *dst = malloc(BIG_LEN);
	uint64_t from;

	/* the first copy is on a port where nobody listens */
	r.r[0] = peer;
	r.r[0].segment_id = 5;
	r.r[0].port = 1;
	r.r[1] = peer;
	for (int i = 0; i < 4; i++) {
		memset(dst, 0, BIG_LEN);
		ck_assert_int_eq(mc_fetch_page(t, &r, BIG_ID, 99, dst, &from),
				 0);
		ck_assert_uint_eq(from, peer.segment_id);
		ck_assert_int_eq(memcmp(dst, big, BIG_LEN), 0);
	}
	free(dst);
}
END_TEST

/* ------------------------------------------------------------- refusals */

START_TEST(a_wrong_expected_size_is_estale)
{
	struct mc_wire_read_page rq = request(BIG_ID, 0, 4096);
	uint8_t dst[4096];

	rq.expected_size = BIG_LEN + 1;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -ESTALE);
	rq.expected_size = BIG_LEN - 1;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -ESTALE);
}
END_TEST

START_TEST(a_wrong_checksum_is_eio_and_remembered)
{
	struct mc_wire_read_page rq = request(BIG_ID, 0, 4096);
	uint8_t dst[4096];

	rq.expected_crc32c ^= 1;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -EIO);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -EIO);
	/* the remembered checksum still says yes to the right one */
	rq.expected_crc32c ^= 1;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), 0);
}
END_TEST

START_TEST(an_unknown_page_is_enoent)
{
	struct mc_wire_read_page rq = request(SMALL_ID, 0, 10);
	uint8_t dst[10];

	rq.page_id = 4;
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -ENOENT);
}
END_TEST

START_TEST(a_range_past_the_end_is_refused)
{
	struct mc_wire_read_page rq = request(SMALL_ID, 1, SMALL_LEN);
	uint8_t dst[SMALL_LEN + 1];

	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -EINVAL);
	rq = request(SMALL_ID, SMALL_LEN + 1, 0);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -EINVAL);
	rq = request(SMALL_ID, UINT64_MAX, 2);
	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), -EINVAL);
}
END_TEST

START_TEST(nobody_listening_is_econnrefused)
{
	struct mc_wire_read_page rq = request(SMALL_ID, 0, 10);
	struct mc_ns_replica nobody = peer;
	uint8_t dst[10];

	nobody.port = 1;
	ck_assert_int_eq(mc_transport_read(t, &nobody, &rq, dst, NULL),
			 -ECONNREFUSED);
}
END_TEST

/* ------------------------------------------------- hostile and broken */

/* A raw connection to the server. */
static int raw_dial(void)
{
	int fd = mc_wire_dial("127.0.0.1", peer.port, 2000);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* The server hangs up on fd within 3 s (EOF or reset, no reply). */
static void assert_hung_up(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char b[256];
	ssize_t n;

	for (;;) {
		ck_assert_int_eq(poll(&pfd, 1, 3000), 1);
		n = recv(fd, b, sizeof(b), 0);
		if (n <= 0)
			break;
	}
	close(fd);
}

/* A header in its byte layout, with any length (the encoder bounds it). */
static void raw_header(uint8_t *b, uint16_t type, uint32_t length)
{
	memset(b, 0, MC_WIRE_HEADER_SIZE);
	memcpy(b, "MCF1", 4);
	b[4] = 1;
	b[6] = (uint8_t)type;
	b[7] = (uint8_t)(type >> 8);
	b[12] = (uint8_t)length;
	b[13] = (uint8_t)(length >> 8);
	b[14] = (uint8_t)(length >> 16);
	b[15] = (uint8_t)(length >> 24);
}

static void assert_still_serving(void)
{
	struct mc_wire_read_page rq = request(BIG_ID, 0, BIG_LEN);
	uint8_t *dst = malloc(BIG_LEN);

	ck_assert_int_eq(mc_transport_read(t, &peer, &rq, dst, NULL), 0);
	ck_assert_int_eq(memcmp(dst, big, BIG_LEN), 0);
	free(dst);
}

START_TEST(garbage_bytes_close_that_connection_only)
{
	uint8_t junk[65536];
	int fd;

	fill(junk, sizeof(junk), 7);
	fd = raw_dial();
	ck_assert_int_eq(send(fd, junk, sizeof(junk), MSG_NOSIGNAL),
			 (ssize_t)sizeof(junk));
	assert_hung_up(fd);
	assert_still_serving();
	wait_open(1);
}
END_TEST

START_TEST(a_bad_magic_closes_that_connection_only)
{
	uint8_t h[MC_WIRE_HEADER_SIZE];
	int fd;

	raw_header(h, MC_WIRE_HELLO, 0);
	memcpy(h, "MCF2", 4);
	fd = raw_dial();
	ck_assert_int_eq(send(fd, h, sizeof(h), MSG_NOSIGNAL),
			 (ssize_t)sizeof(h));
	assert_hung_up(fd);
	assert_still_serving();
	wait_open(1);
}
END_TEST

START_TEST(a_huge_length_closes_that_connection_without_waiting_for_it)
{
	static const uint32_t lens[] = { MC_WIRE_MAX_PAYLOAD + 1, UINT32_MAX };
	uint8_t h[MC_WIRE_HEADER_SIZE];
	int fd;

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		raw_header(h, MC_WIRE_READ_PAGE, lens[i]);
		fd = raw_dial();
		ck_assert_int_eq(send(fd, h, sizeof(h), MSG_NOSIGNAL),
				 (ssize_t)sizeof(h));
		assert_hung_up(fd);
	}
	assert_still_serving();
	wait_open(1);
}
END_TEST

START_TEST(requests_before_hello_are_eproto_and_the_connection_goes_on)
{
	struct mc_wire_msg m = { .type = MC_WIRE_READ_PAGE }, rm;
	struct mc_wire_conn *c;
	struct mc_wire_header h;
	uint8_t *dst = malloc(BIG_LEN);
	int ds;

	ck_assert_int_eq(mc_wire_conn_open(&c, raw_dial()), 0);
	mc_wire_conn_set_timeout(c, 3000);
	m.u.read_page = request(SMALL_ID, 0, SMALL_LEN);
	ck_assert_int_eq(mc_wire_conn_send(c, &m, 5), 0);
	ck_assert_int_eq(mc_wire_conn_recv(c, &h, &rm, &ds), 0);
	ck_assert_int_eq(ds, 0);
	ck_assert_uint_eq(h.id, 5);
	ck_assert_uint_eq(h.type, MC_WIRE_READ_PAGE | MC_WIRE_REPLY);
	ck_assert_int_eq(rm.status, -EPROTO);
	mc_wire_msg_release(&rm);

	ck_assert_int_eq(mc_wire_conn_hello(c, "raw"), 0);

	/* a request of a type the data plane does not serve */
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_GETATTR;
	m.u.ino = 1;
	ck_assert_int_eq(mc_wire_conn_send(c, &m, 6), 0);
	ck_assert_int_eq(mc_wire_conn_recv(c, &h, &rm, &ds), 0);
	ck_assert_uint_eq(h.id, 6);
	ck_assert_int_eq(rm.status, -ENOSYS);
	mc_wire_msg_release(&rm);

	/* a range the decoder refuses: its status, and the conn goes on */
	{
		uint8_t b[MC_WIRE_HEADER_SIZE + 36];
		struct mc_wire_writer w;

		raw_header(b, MC_WIRE_READ_PAGE, 36);
		b[16] = 7; /* id */
		mc_wire_writer_init(&w, b + MC_WIRE_HEADER_SIZE, 36);
		mc_wire_put_u64(&w, SMALL_ID);
		mc_wire_put_u64(&w, 10);
		mc_wire_put_u64(&w, SMALL_LEN);
		mc_wire_put_u64(&w, SMALL_LEN);
		mc_wire_put_u32(&w, 0);
		ck_assert_int_eq(mc_wire_writer_done(&w), 0);
		ck_assert_int_eq(send(mc_wire_conn_fd(c), b, sizeof(b),
				      MSG_NOSIGNAL),
				 (ssize_t)sizeof(b));
	}
	ck_assert_int_eq(mc_wire_conn_recv(c, &h, &rm, &ds), 0);
	ck_assert_uint_eq(h.id, 7);
	ck_assert_int_eq(rm.status, -EBADMSG);
	mc_wire_msg_release(&rm);

	/* and a good one after all that */
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_READ_PAGE;
	m.u.read_page = request(BIG_ID, 0, BIG_LEN);
	ck_assert_int_eq(mc_wire_conn_send(c, &m, 8), 0);
	ck_assert_int_eq(mc_wire_conn_recv(c, &h, &rm, &ds), 0);
	ck_assert_int_eq(rm.status, 0);
	ck_assert_uint_eq(rm.u.read_page_reply.length, BIG_LEN);
	ck_assert_int_eq(mc_wire_conn_recv_data(c, dst, BIG_LEN), 0);
	ck_assert_int_eq(memcmp(dst, big, BIG_LEN), 0);
	mc_wire_conn_close(c);
	free(dst);
	assert_still_serving();
}
END_TEST

START_TEST(random_frames_after_hello_never_break_the_server)
{
	uint8_t b[MC_WIRE_HEADER_SIZE + 600];
	uint64_t x = 12345;
	struct mc_wire_conn *c;

	for (int conn = 0; conn < 50; conn++) {
		ck_assert_int_eq(mc_wire_conn_open(&c, raw_dial()), 0);
		mc_wire_conn_set_timeout(c, 3000);
		if (conn % 2)
			ck_assert_int_eq(mc_wire_conn_hello(c, "fuzz"), 0);
		for (int i = 0; i < 20; i++) {
			uint32_t len;

			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			len = (uint32_t)(x % 600);
			/* known types mostly, READ_PAGE often, replies too */
			raw_header(b,
				   i % 3 ? MC_WIRE_READ_PAGE :
					   (uint16_t)((x >> 16) % 0x50) |
						   (uint16_t)(x & 0x8000),
				   len);
			fill(b + MC_WIRE_HEADER_SIZE, len, (uint32_t)x);
			if (send(mc_wire_conn_fd(c), b,
				 MC_WIRE_HEADER_SIZE + len, MSG_NOSIGNAL) < 0)
				break;
		}
		mc_wire_conn_close(c);
	}
	wait_open(0);
	assert_still_serving();
}
END_TEST

START_TEST(a_client_that_hangs_up_mid_page_costs_nothing)
{
	struct mc_wire_msg m = { .type = MC_WIRE_READ_PAGE };
	struct mc_wire_conn *c;
	char b[4096];

	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(mc_wire_conn_open(&c, raw_dial()), 0);
		mc_wire_conn_set_timeout(c, 3000);
		ck_assert_int_eq(mc_wire_conn_hello(c, "quitter"), 0);
		m.u.read_page = request(BIG_ID, 0, BIG_LEN);
		ck_assert_int_eq(mc_wire_conn_send(c, &m, 1), 0);
		/* a little of the reply, then gone: the server's sendfile
		 * meets a reset socket (EPIPE, and no SIGPIPE) */
		ck_assert_int_gt(recv(mc_wire_conn_fd(c), b, sizeof(b), 0), 0);
		mc_wire_conn_close(c);
	}
	wait_open(0);
	assert_still_serving();
}
END_TEST

START_TEST(a_client_that_hangs_up_mid_frame_costs_nothing)
{
	uint8_t h[MC_WIRE_HEADER_SIZE];
	int fd;

	for (int i = 0; i < 20; i++) {
		raw_header(h, MC_WIRE_HELLO, 100);
		fd = raw_dial();
		send(fd, h, (size_t)(i % MC_WIRE_HEADER_SIZE) + 1,
		     MSG_NOSIGNAL);
		close(fd);
	}
	wait_open(0);
	assert_still_serving();
}
END_TEST

START_TEST(a_silent_client_is_dropped_after_the_timeouts)
{
	struct mc_data_server_params sp = { .address = "127.0.0.1",
					    .timeout_ms = 200,
					    .idle_timeout_ms = 300 };
	uint8_t h[MC_WIRE_HEADER_SIZE];
	uint64_t t0;
	int fd;

	mc_data_server_close(server);
	start_server(&sp);
	/* says nothing at all */
	t0 = now_ms();
	fd = raw_dial();
	assert_hung_up(fd);
	ck_assert_uint_lt(now_ms() - t0, 2000);
	/* starts a frame and stalls inside it */
	raw_header(h, MC_WIRE_HELLO, 100);
	t0 = now_ms();
	fd = raw_dial();
	send(fd, h, sizeof(h), MSG_NOSIGNAL);
	assert_hung_up(fd);
	ck_assert_uint_lt(now_ms() - t0, 2000);
	wait_open(0);
	assert_still_serving();
}
END_TEST

START_TEST(connections_past_max_conns_are_turned_away)
{
	struct mc_data_server_params sp = { .address = "127.0.0.1",
					    .max_conns = 2 };
	struct mc_data_server_stats st;
	struct mc_wire_conn *c[2];
	int fd;

	mc_data_server_close(server);
	start_server(&sp);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(mc_wire_conn_open(&c[i], raw_dial()), 0);
		mc_wire_conn_set_timeout(c[i], 3000);
		ck_assert_int_eq(mc_wire_conn_hello(c[i], "raw"), 0);
	}
	fd = raw_dial();
	assert_hung_up(fd);
	mc_data_server_get_stats(server, &st);
	ck_assert_uint_eq(st.refused, 1);
	mc_wire_conn_close(c[0]);
	mc_wire_conn_close(c[1]);
	wait_open(0);
	assert_still_serving();
}
END_TEST

/*
 * A server that answers HELLO, then sends half the page and dies, or
 * (stall) stays connected and silent until the client gives up.
 */
struct half_server {
	int lfd;
	int stall;
	uint16_t port;
	pthread_t th;
};

static void *half_main(void *arg)
{
	struct half_server *hs = arg;
	struct mc_wire_msg m,
		reply = { .type = MC_WIRE_READ_PAGE | MC_WIRE_REPLY };
	struct mc_wire_conn *c;
	struct mc_wire_header h;
	char b;
	int fd, ds;

	fd = accept(hs->lfd, NULL, NULL);
	if (fd < 0 || mc_wire_conn_open(&c, fd) < 0)
		return NULL;
	if (mc_wire_conn_recv(c, &h, &m, &ds) == 0 && ds == 0) {
		ds = mc_wire_conn_answer_hello(c, &h, &m);
		mc_wire_msg_release(&m);
		if (ds == 0 && mc_wire_conn_recv(c, &h, &m, &ds) == 0 &&
		    ds == 0) {
			reply.u.read_page_reply.length = m.u.read_page.length;
			if (mc_wire_conn_send(c, &reply, h.id) == 0)
				send(fd, big, m.u.read_page.length / 2,
				     MSG_NOSIGNAL);
			mc_wire_msg_release(&m);
		}
	}
	if (hs->stall)
		recv(fd, &b, 1, 0); /* until the client hangs up */
	mc_wire_conn_close(c);
	return NULL;
}

/* One read of the big page from a half server; *ms: how long it took. */
static int read_from_half(struct mc_transport *tr, int stall, uint64_t *ms)
{
	struct half_server hs = { .stall = stall };
	struct mc_ns_replica half = peer;
	struct mc_wire_read_page rq = request(BIG_ID, 0, BIG_LEN);
	uint8_t *dst = malloc(BIG_LEN);
	uint64_t t0 = now_ms();
	int r;

	hs.lfd = mc_wire_listen("127.0.0.1", 0, 4);
	ck_assert_int_ge(hs.lfd, 0);
	ck_assert_int_eq(mc_wire_local_port(hs.lfd, &hs.port), 0);
	ck_assert_int_eq(pthread_create(&hs.th, NULL, half_main, &hs), 0);
	half.port = hs.port;
	r = mc_transport_read(tr, &half, &rq, dst, NULL);
	*ms = now_ms() - t0;
	/* the transport dropped the connection: the stalled server wakes */
	pthread_join(hs.th, NULL);
	close(hs.lfd);
	free(dst);
	return r;
}

static struct mc_transport *short_timeout_transport(unsigned flags)
{
	struct mc_transport_tcp_params tp = { .timeout_ms = 300,
					      .name = "impatient",
					      .flags = flags };
	struct mc_transport *tr;

	ck_assert_int_eq(mc_transport_tcp_new(&tr, &tp), 0);
	return tr;
}

START_TEST(a_server_that_dies_mid_transfer_is_econnreset)
{
	struct mc_transport *plain =
		short_timeout_transport(MC_TRANSPORT_TCP_PLAIN_RECV);
	uint64_t ms;

	ck_assert_int_eq(read_from_half(t, 0, &ms), -ECONNRESET);
	ck_assert_int_eq(read_from_half(plain, 0, &ms), -ECONNRESET);
	mc_transport_free(plain);
}
END_TEST

START_TEST(a_server_that_stalls_mid_transfer_is_etimedout)
{
	struct mc_transport *ring = short_timeout_transport(0);
	struct mc_transport *plain =
		short_timeout_transport(MC_TRANSPORT_TCP_PLAIN_RECV);
	uint64_t ms;

	ck_assert_int_eq(read_from_half(ring, 1, &ms), -ETIMEDOUT);
	ck_assert_uint_ge(ms, 250);
	ck_assert_uint_lt(ms, 3000);
	ck_assert_int_eq(read_from_half(plain, 1, &ms), -ETIMEDOUT);
	ck_assert_uint_ge(ms, 250);
	ck_assert_uint_lt(ms, 3000);
	mc_transport_free(ring);
	mc_transport_free(plain);
}
END_TEST

struct loop_arg {
	int bad; /* reads that returned 0 with wrong bytes, or odd errors */
	_Atomic int ok;
	_Atomic int stop;
};

static void *loop_main(void *arg)
{
	struct loop_arg *a = arg;
	struct mc_wire_read_page rq = request(BIG_ID, 0, BIG_LEN);
	uint8_t *dst = malloc(BIG_LEN);
	int r;

	while (!a->stop) {
		memset(dst, 0, 4096);
		r = mc_transport_read(t, &peer, &rq, dst, NULL);
		if (r == 0 && memcmp(dst, big, BIG_LEN) != 0)
			a->bad++;
		else if (r == 0)
			a->ok++;
		else if (r != -ECONNRESET && r != -ECONNREFUSED)
			a->bad++;
	}
	free(dst);
	return NULL;
}

START_TEST(closing_the_server_under_a_reader_fails_its_reads_cleanly)
{
	struct loop_arg a = { 0 };
	pthread_t th;
	uint64_t t0 = now_ms();

	ck_assert_int_eq(pthread_create(&th, NULL, loop_main, &a), 0);
	while (a.ok < 3 && now_ms() - t0 < 10000)
		poll(NULL, 0, 5);
	mc_data_server_close(server);
	server = NULL;
	poll(NULL, 0, 50);
	a.stop = 1;
	pthread_join(th, NULL);
	ck_assert_int_ge(a.ok, 3);
	ck_assert_int_eq(a.bad, 0);
	/* teardown closes a server: give it one */
	start_server(&(struct mc_data_server_params){ .address = "127.0.0.1" });
}
END_TEST

START_TEST(the_plain_recv_path_reads_the_same_bytes)
{
	struct mc_transport_tcp_params tp = {
		.name = "plain",
		.flags = MC_TRANSPORT_TCP_PLAIN_RECV,
		.recv_chunk = 100000
	};
	struct mc_wire_read_page rq = request(BIG_ID, 3, BIG_LEN - 3);
	struct mc_transport *plain;
	uint8_t *dst = malloc(BIG_LEN);
	uint32_t crc = mc_crc32c(0, big, 3);

	ck_assert_int_eq(mc_transport_tcp_new(&plain, &tp), 0);
	ck_assert_int_eq(mc_transport_read(plain, &peer, &rq, dst, &crc), 0);
	ck_assert_int_eq(memcmp(dst, big + 3, BIG_LEN - 3), 0);
	ck_assert_uint_eq(crc, rq.expected_crc32c);
	mc_transport_free(plain);
	free(dst);
}
END_TEST

static Suite *tcp_suite(void)
{
	Suite *s = suite_create("transport_tcp");
	TCase *tg = tcase_create("reads");
	TCase *tr = tcase_create("refusals");
	TCase *th = tcase_create("hostile");

	tcase_add_checked_fixture(tg, setup, teardown);
	tcase_add_test(tg, a_whole_page_arrives_byte_exact_with_its_checksum);
	tcase_add_test(tg,
		       partial_ranges_arrive_byte_exact_and_chain_the_checksum);
	tcase_add_test(tg, an_empty_page_reads_as_nothing);
	tcase_add_test(tg, a_connection_is_reused_across_many_reads);
	tcase_add_test(tg,
		       a_pooled_connection_the_server_timed_out_is_replaced);
	tcase_add_test(tg, four_threads_reading_at_once_get_exact_bytes);
	tcase_add_test(tg, fetch_over_tcp_checks_the_whole_page);
	tcase_add_test(tg, the_plain_recv_path_reads_the_same_bytes);
	suite_add_tcase(s, tg);

	tcase_add_checked_fixture(tr, setup, teardown);
	tcase_add_test(tr, a_wrong_expected_size_is_estale);
	tcase_add_test(tr, a_wrong_checksum_is_eio_and_remembered);
	tcase_add_test(tr, an_unknown_page_is_enoent);
	tcase_add_test(tr, a_range_past_the_end_is_refused);
	tcase_add_test(tr, nobody_listening_is_econnrefused);
	suite_add_tcase(s, tr);

	tcase_add_checked_fixture(th, setup, teardown);
	tcase_add_test(th, garbage_bytes_close_that_connection_only);
	tcase_add_test(th, a_bad_magic_closes_that_connection_only);
	tcase_add_test(
		th,
		a_huge_length_closes_that_connection_without_waiting_for_it);
	tcase_add_test(
		th,
		requests_before_hello_are_eproto_and_the_connection_goes_on);
	tcase_add_test(th, random_frames_after_hello_never_break_the_server);
	tcase_add_test(th, a_client_that_hangs_up_mid_frame_costs_nothing);
	tcase_add_test(th, a_client_that_hangs_up_mid_page_costs_nothing);
	tcase_add_test(th, a_silent_client_is_dropped_after_the_timeouts);
	tcase_add_test(th, connections_past_max_conns_are_turned_away);
	tcase_add_test(th, a_server_that_dies_mid_transfer_is_econnreset);
	tcase_add_test(th, a_server_that_stalls_mid_transfer_is_etimedout);
	tcase_add_test(
		th, closing_the_server_under_a_reader_fails_its_reads_cleanly);
	suite_add_tcase(s, th);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(tcp_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
