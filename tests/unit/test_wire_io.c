/*
 * test_wire_io.c - frames over sockets: what arrives is whole and in
 * order, what is malformed is told apart from what is lost, and every
 * wait ends.  Socket pairs for the stream logic, loopback TCP for dialing,
 * listening and sendfile().
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wire_io.h"
#include "banned.h"

/* ---------------------------------------------------------------- helpers */

/* a connected pair: *a and *b, each a conn over one end of a socketpair */
static void conn_pair(struct mc_wire_conn **a, struct mc_wire_conn **b)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	ck_assert_int_eq(mc_wire_conn_open(a, sv[0]), 0);
	ck_assert_int_eq(mc_wire_conn_open(b, sv[1]), 0);
}

/* a connected pair over loopback TCP, through mc_wire_listen and _dial */
static void tcp_pair(const char *addr, struct mc_wire_conn **client,
		     struct mc_wire_conn **server)
{
	uint16_t port;
	int lfd, cfd, sfd;

	lfd = mc_wire_listen(addr, 0, 4);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(mc_wire_local_port(lfd, &port), 0);
	ck_assert_uint_ne(port, 0);
	cfd = mc_wire_dial(strcmp(addr, "") == 0 ? "localhost" : addr, port,
			   2000);
	ck_assert_int_ge(cfd, 0);
	sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(sfd, 0);
	close(lfd);
	ck_assert_int_eq(mc_wire_conn_open(client, cfd), 0);
	ck_assert_int_eq(mc_wire_conn_open(server, sfd), 0);
}

/* raw bytes onto a conn's socket, as a peer that may break the rules */
static void put_raw(struct mc_wire_conn *c, const void *p, size_t len)
{
	ck_assert_int_eq(write(mc_wire_conn_fd(c), p, len), (ssize_t)len);
}

/* a frame header of any shape, and a payload */
static size_t raw_frame(uint8_t *buf, uint16_t version, uint16_t type,
			uint64_t id, const void *payload, uint32_t len)
{
	struct mc_wire_header h = {
		.version = version, .type = type, .length = len, .id = id
	};

	ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
	if (len)
		memcpy(buf + MC_WIRE_HEADER_SIZE, payload, len);
	return MC_WIRE_HEADER_SIZE + len;
}

static void stats_request(struct mc_wire_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = MC_WIRE_STATS;
}

static void getattr_request(struct mc_wire_msg *m, uint64_t ino)
{
	memset(m, 0, sizeof(*m));
	m->type = MC_WIRE_GETATTR;
	m->u.ino = ino;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* the child of fork() exited 0 */
static void reap(pid_t pid)
{
	int status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* a name that does not resolve: -EINVAL, or the resolver is unreachable */
static void assert_bad_name(int r)
{
	ck_assert_msg(r == -EINVAL || r == -EHOSTUNREACH, "got %d", r);
}

/* expect a whole frame that decodes, of this type and id */
static void recv_ok(struct mc_wire_conn *c, uint16_t type, uint64_t id,
		    struct mc_wire_msg *m)
{
	struct mc_wire_header h;
	int ds;

	ck_assert_int_eq(mc_wire_conn_recv(c, &h, m, &ds), 0);
	ck_assert_int_eq(ds, 0);
	ck_assert_uint_eq(h.type, type);
	ck_assert_uint_eq(h.id, id);
	ck_assert_uint_eq(m->type, type);
}

/* --------------------------------------------------------------- frames */

START_TEST(pipelined_frames_arrive_whole_and_in_order_from_one_read)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;

	conn_pair(&a, &b);
	for (uint64_t i = 1; i <= 20; i++) {
		getattr_request(&m, 1000 + i);
		ck_assert_int_eq(mc_wire_conn_queue(a, &m, i), 0);
	}
	ck_assert_int_eq(mc_wire_conn_flush(a), 0);
	ck_assert_uint_eq(mc_wire_conn_buffered(b), 0);
	for (uint64_t i = 1; i <= 20; i++) {
		recv_ok(b, MC_WIRE_GETATTR, i, &m);
		ck_assert_uint_eq(m.u.ino, 1000 + i);
		mc_wire_msg_release(&m);
		/* the first read took them all: the rest wait in the buffer */
		ck_assert_uint_eq(mc_wire_conn_buffered(b),
				  (20 - i) * (MC_WIRE_HEADER_SIZE + 8));
	}
	/* a send goes out after what was queued before it */
	getattr_request(&m, 1);
	ck_assert_int_eq(mc_wire_conn_queue(a, &m, 21), 0);
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 22), 0);
	recv_ok(b, MC_WIRE_GETATTR, 21, &m);
	recv_ok(b, MC_WIRE_STATS, 22, &m);
	ck_assert_int_eq(mc_wire_conn_flush(a), 0); /* nothing queued */
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(a_payload_that_does_not_decode_leaves_the_conn_usable)
{
	static const uint8_t dotdot[] = {
		1, 0, 0, 0, 0, 0, 0, 0, 2, 0, '.', '.'
	};
	static const uint8_t short_ino[] = { 1, 2, 3 };
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	uint8_t buf[64];
	int ds;

	conn_pair(&a, &b);
	put_raw(a, buf,
		raw_frame(buf, 1, MC_WIRE_LOOKUP, 7, dotdot, sizeof(dotdot)));
	put_raw(a, buf,
		raw_frame(buf, 1, MC_WIRE_GETATTR, 8, short_ino,
			  sizeof(short_ino)));
	put_raw(a, buf, raw_frame(buf, 1, 0x0abc, 9, NULL, 0));
	getattr_request(&m, 4242);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 10), 0);

	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), 0);
	ck_assert_int_eq(ds, -EINVAL);
	ck_assert_uint_eq(h.id, 7);
	ck_assert_ptr_null(m.owned);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), 0);
	ck_assert_int_eq(ds, -EBADMSG);
	ck_assert_uint_eq(h.type, MC_WIRE_GETATTR);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), 0);
	ck_assert_int_eq(ds, -ENOSYS);
	ck_assert_uint_eq(h.type, 0x0abc);
	recv_ok(b, MC_WIRE_GETATTR, 10, &m);
	ck_assert_uint_eq(m.u.ino, 4242);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(a_bad_magic_or_an_oversize_length_loses_the_framing)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	uint8_t buf[64];
	int ds;

	conn_pair(&a, &b);
	raw_frame(buf, 1, MC_WIRE_STATS, 1, NULL, 0);
	buf[3] = '2';
	put_raw(a, buf, MC_WIRE_HEADER_SIZE);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), -EBADMSG);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);

	conn_pair(&a, &b);
	raw_frame(buf, 1, MC_WIRE_STATS, 1, NULL, 0);
	buf[14] = 0x20; /* length 2 MiB */
	put_raw(a, buf, MC_WIRE_HEADER_SIZE);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), -EBADMSG);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(a_version_this_side_does_not_speak_is_eproto)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	uint8_t buf[64];
	int ds;

	conn_pair(&a, &b);
	put_raw(a, buf,
		raw_frame(buf, MC_WIRE_VERSION + 1, MC_WIRE_STATS, 5, NULL, 0));
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), -EPROTO);
	/* the header is there for the log */
	ck_assert_uint_eq(h.version, MC_WIRE_VERSION + 1);
	ck_assert_uint_eq(h.id, 5);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(the_end_of_the_stream_inside_a_frame_is_econnreset)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	uint8_t buf[64];
	size_t len;
	int ds;

	/* inside the header, inside the payload, and between frames */
	for (int where = 0; where < 3; where++) {
		conn_pair(&a, &b);
		len = raw_frame(buf, 1, MC_WIRE_GETATTR, 1, "12345678", 8);
		put_raw(a, buf, where == 0 ? 10 : where == 1 ? len - 1 : len);
		shutdown(mc_wire_conn_fd(a), SHUT_WR);
		if (where == 2)
			recv_ok(b, MC_WIRE_GETATTR, 1, &m);
		ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds),
				 -ECONNRESET);
		mc_wire_conn_close(a);
		mc_wire_conn_close(b);
	}
}
END_TEST

START_TEST(page_bytes_after_a_frame_are_taken_from_the_buffer_first)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	uint8_t buf[64], data[3000], got[3000];
	size_t len;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	conn_pair(&a, &b);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_READ_PAGE | MC_WIRE_REPLY;
	m.u.read_page_reply.length = sizeof(data);
	ck_assert_int_eq(mc_wire_frame_encode(&m, 3, buf, sizeof(buf), &len),
			 0);
	put_raw(a, buf, len);
	put_raw(a, data, 1000);
	recv_ok(b, MC_WIRE_READ_PAGE | MC_WIRE_REPLY, 3, &m);
	ck_assert_uint_eq(m.u.read_page_reply.length, sizeof(data));
	ck_assert_uint_eq(mc_wire_conn_buffered(b), 1000);
	put_raw(a, data + 1000, sizeof(data) - 1000);
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 4), 0);
	ck_assert_int_eq(mc_wire_conn_recv_data(b, got, sizeof(got)), 0);
	ck_assert(memcmp(got, data, sizeof(data)) == 0);
	/* and what follows the bytes is the next frame */
	recv_ok(b, MC_WIRE_STATS, 4, &m);
	ck_assert_int_eq(mc_wire_conn_recv_data(b, NULL, 0), 0);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(the_end_of_the_stream_inside_page_bytes_is_econnreset)
{
	struct mc_wire_conn *a, *b;
	uint8_t data[4096], got[8192];

	memset(data, 0x5a, sizeof(data));
	conn_pair(&a, &b);
	put_raw(a, data, sizeof(data));
	shutdown(mc_wire_conn_fd(a), SHUT_WR);
	ck_assert_int_eq(mc_wire_conn_recv_data(b, got, sizeof(got)),
			 -ECONNRESET);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(a_frame_over_the_buffers_grows_them_and_the_largest_passes)
{
	static struct mc_wire_commit_item items[MC_WIRE_MAX_BATCH];
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m, got;
	pid_t pid;

	conn_pair(&a, &b);
	memset(&m, 0, sizeof(m));
	for (uint32_t i = 0; i < MC_WIRE_MAX_BATCH; i++) {
		memset(items[i].name, 'n', MC_NAME_MAX);
		items[i].ino = i + 16;
		items[i].nsegments = MC_WIRE_MAX_REPLICAS;
	}
	m.type = MC_WIRE_COMMIT;
	m.u.commit.count = MC_WIRE_MAX_BATCH;
	m.u.commit.items = items;
	/* the socket holds less than the frame: send from another process */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		mc_wire_conn_queue(a, &m, 1);
		m.u.commit.count = 3;
		mc_wire_conn_queue(a, &m, 2);
		_exit(mc_wire_conn_flush(a) == 0 ? 0 : 1);
	}
	recv_ok(b, MC_WIRE_COMMIT, 1, &got);
	ck_assert_uint_eq(got.u.commit.count, MC_WIRE_MAX_BATCH);
	ck_assert_uint_eq(got.u.commit.items[MC_WIRE_MAX_BATCH - 1].ino,
			  MC_WIRE_MAX_BATCH - 1 + 16);
	mc_wire_msg_release(&got);
	recv_ok(b, MC_WIRE_COMMIT, 2, &got);
	ck_assert_uint_eq(got.u.commit.count, 3);
	mc_wire_msg_release(&got);
	reap(pid);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(an_encoder_error_sends_nothing_and_keeps_the_conn)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;

	conn_pair(&a, &b);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_READDIR; /* max 0 */
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 1), -EINVAL);
	m.type = 0x0abc;
	ck_assert_int_eq(mc_wire_conn_queue(a, &m, 2), -ENOSYS);
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 3), 0);
	recv_ok(b, MC_WIRE_STATS, 3, &m);
	ck_assert_uint_eq(mc_wire_conn_buffered(b), 0);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

/* ------------------------------------------------------------- threads */

struct sender {
	struct mc_wire_conn *c;
	uint64_t base;
};

static void *send_many(void *arg)
{
	struct sender *s = arg;
	struct mc_wire_msg m;

	for (uint64_t i = 0; i < 2000; i++) {
		getattr_request(&m, s->base + i);
		if ((i & 1 ? mc_wire_conn_queue(s->c, &m, s->base + i) :
			     mc_wire_conn_send(s->c, &m, s->base + i)) != 0)
			return (void *)1;
	}
	return mc_wire_conn_flush(s->c) == 0 ? NULL : (void *)1;
}

START_TEST(concurrent_senders_never_interleave_their_frames)
{
	struct sender s[4];
	pthread_t t[4];
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	uint64_t next[4] = { 0 };
	void *ret;

	conn_pair(&a, &b);
	for (int i = 0; i < 4; i++) {
		s[i].c = a;
		s[i].base = (uint64_t)(i + 1) << 32;
		ck_assert_int_eq(pthread_create(&t[i], NULL, send_many, &s[i]),
				 0);
	}
	for (int n = 0; n < 4 * 2000; n++) {
		struct mc_wire_header h;
		int ds, k;

		ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), 0);
		ck_assert_int_eq(ds, 0);
		ck_assert_uint_eq(m.u.ino, h.id);
		k = (int)(h.id >> 32) - 1;
		ck_assert(k >= 0 && k < 4);
		/* each sender's frames in its own order */
		ck_assert_uint_eq(h.id & 0xffffffff, next[k]);
		next[k]++;
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], &ret), 0);
		ck_assert_ptr_null(ret);
	}
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

static void *recv_one(void *arg)
{
	struct mc_wire_conn *c = arg;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	int ds;

	return (void *)(intptr_t)mc_wire_conn_recv(c, &h, &m, &ds);
}

START_TEST(shutdown_wakes_a_reader_blocked_in_recv)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	pthread_t t;
	void *ret;

	conn_pair(&a, &b);
	ck_assert_int_eq(pthread_create(&t, NULL, recv_one, b), 0);
	usleep(50 * 1000);
	mc_wire_conn_shutdown(b);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_int_eq((int)(intptr_t)ret, -ECONNRESET);
	/* and its sends fail, for good */
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(b, &m, 1), -EPIPE);
	ck_assert_int_eq(mc_wire_conn_send(b, &m, 2), -EPIPE);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(a_receive_with_nothing_coming_times_out)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	uint8_t buf[64], got[16];
	double t0, t;
	size_t len;
	int ds;

	conn_pair(&a, &b);
	mc_wire_conn_set_timeout(b, 150);
	t0 = now_s();
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), -ETIMEDOUT);
	t = now_s() - t0;
	ck_assert_msg(t >= 0.14 && t < 2.0, "timed out after %.3f s", t);
	/* inside a frame, and inside page bytes */
	mc_wire_msg_release(&m);
	mc_wire_conn_close(b);
	mc_wire_conn_close(a);

	conn_pair(&a, &b);
	mc_wire_conn_set_timeout(b, 100);
	len = raw_frame(buf, 1, MC_WIRE_GETATTR, 1, "12345678", 8);
	put_raw(a, buf, len - 3);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &m, &ds), -ETIMEDOUT);
	mc_wire_conn_close(b);
	mc_wire_conn_close(a);

	conn_pair(&a, &b);
	mc_wire_conn_set_timeout(b, 100);
	put_raw(a, buf, 5);
	ck_assert_int_eq(mc_wire_conn_recv_data(b, got, sizeof(got)),
			 -ETIMEDOUT);
	/* 0 waits forever again: what comes is taken */
	mc_wire_conn_set_timeout(b, 0);
	put_raw(a, buf, 11);
	ck_assert_int_eq(mc_wire_conn_recv_data(b, got, 11), 0);
	mc_wire_conn_close(b);
	mc_wire_conn_close(a);
}
END_TEST

START_TEST(a_send_to_a_peer_that_reads_nothing_times_out)
{
	static uint8_t chunk[1 << 16];
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	int r = 0;

	conn_pair(&a, &b);
	mc_wire_conn_set_timeout(a, 100);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_RESERVE;
	m.u.reserve_count = 1;
	/* fill the socket, then one more */
	for (int i = 0; i < 1000 && r == 0; i++)
		r = send(mc_wire_conn_fd(a), chunk, sizeof(chunk),
			 MSG_DONTWAIT) < 0 ?
			    -errno :
			    0;
	ck_assert_int_eq(r, -EAGAIN);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 1), -ETIMEDOUT);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

/* ---------------------------------------------------------------- hello */

static void *answer_one_hello(void *arg)
{
	struct mc_wire_conn *c = arg;
	struct mc_wire_header h;
	struct mc_wire_msg m;
	intptr_t r;
	int ds;

	r = mc_wire_conn_recv(c, &h, &m, &ds);
	if (r == 0 && ds == 0 && m.type == MC_WIRE_HELLO &&
	    strcmp(m.u.hello.name, "mooncaked@test") == 0)
		r = mc_wire_conn_answer_hello(c, &h, &m);
	else if (r == 0)
		r = -EPROTO;
	mc_wire_msg_release(&m);
	return (void *)r;
}

START_TEST(hello_agrees_on_the_highest_common_version)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	pthread_t t;
	void *ret;

	tcp_pair("127.0.0.1", &a, &b);
	ck_assert_uint_eq(mc_wire_conn_version(a), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, answer_one_hello, b), 0);
	ck_assert_int_eq(mc_wire_conn_hello(a, "mooncaked@test"), 0);
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_int_eq((int)(intptr_t)ret, 0);
	ck_assert_uint_eq(mc_wire_conn_version(a), MC_WIRE_VERSION);
	ck_assert_uint_eq(mc_wire_conn_version(b), MC_WIRE_VERSION);
	/* and the conn goes on */
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 1), 0);
	recv_ok(b, MC_WIRE_STATS, 1, &m);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

START_TEST(hello_is_refused_when_the_ranges_do_not_meet)
{
	struct mc_wire_conn *a, *b;
	struct mc_wire_header h;
	struct mc_wire_msg m, got;
	int ds;

	/* the answering side: a peer that speaks only versions 2..3 */
	conn_pair(&a, &b);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_HELLO;
	m.u.hello.min_version = MC_WIRE_VERSION + 1;
	m.u.hello.max_version = MC_WIRE_VERSION + 2;
	snprintf(m.u.hello.name, sizeof(m.u.hello.name), "future");
	ck_assert_int_eq(mc_wire_conn_send(a, &m, 0), 0);
	ck_assert_int_eq(mc_wire_conn_recv(b, &h, &got, &ds), 0);
	ck_assert_int_eq(ds, 0);
	ck_assert_int_eq(mc_wire_conn_answer_hello(b, &h, &got),
			 -EPROTONOSUPPORT);
	ck_assert_uint_eq(mc_wire_conn_version(b), 0);
	recv_ok(a, MC_WIRE_HELLO | MC_WIRE_REPLY, 0, &got);
	ck_assert_int_eq(got.status, -EPROTONOSUPPORT);
	ck_assert_uint_eq(got.u.hello_reply.version, 0);
	ck_assert_uint_eq(got.u.hello_reply.min_version, MC_WIRE_VERSION_MIN);
	ck_assert_uint_eq(got.u.hello_reply.max_version, MC_WIRE_VERSION);
	/* only a HELLO is answered so */
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_answer_hello(b, &h, &m), -EINVAL);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);

	/* the asking side: the refusal is waiting when it asks */
	conn_pair(&a, &b);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_HELLO | MC_WIRE_REPLY;
	m.status = -EPROTONOSUPPORT;
	m.u.hello_reply.min_version = MC_WIRE_VERSION + 1;
	m.u.hello_reply.max_version = MC_WIRE_VERSION + 2;
	ck_assert_int_eq(mc_wire_conn_send(b, &m, 0), 0);
	ck_assert_int_eq(mc_wire_conn_hello(a, "mooncaked@test"),
			 -EPROTONOSUPPORT);
	ck_assert_uint_eq(mc_wire_conn_version(a), 0);

	/* a name the peer would refuse is refused before anything is sent */
	ck_assert_int_eq(mc_wire_conn_hello(a, "a/b"), -EINVAL);
	ck_assert_uint_eq(mc_wire_conn_buffered(b), 0);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);

	/* anything but the answer first is a peer that does not speak it */
	conn_pair(&a, &b);
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(b, &m, 0), 0);
	ck_assert_int_eq(mc_wire_conn_hello(a, "mooncaked@test"), -EPROTO);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
}
END_TEST

/* ------------------------------------------------------------- sendfile */

START_TEST(send_data_sends_a_frame_then_the_file_range)
{
	const size_t size = 3 << 20;
	char path[] = "/tmp/test_wire_io.XXXXXX";
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	uint8_t *data, *got;
	pid_t pid;
	int fd;

	data = malloc(size);
	got = malloc(size);
	ck_assert(data && got);
	for (size_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 2654435761U >> 13);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, data, size), (ssize_t)size);

	for (int tcp = 0; tcp <= 1; tcp++) {
		if (tcp)
			tcp_pair("127.0.0.1", &a, &b);
		else
			conn_pair(&a, &b);
		memset(&m, 0, sizeof(m));
		m.type = MC_WIRE_READ_PAGE | MC_WIRE_REPLY;
		m.u.read_page_reply.length = size - 4097;
		/* the receiver reads while the sender sends: another process */
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			_exit(mc_wire_conn_send_data(b, &m, 9, fd, 4097,
						     size - 4097) == 0 ?
				      0 :
				      1);
		recv_ok(a, MC_WIRE_READ_PAGE | MC_WIRE_REPLY, 9, &m);
		ck_assert_uint_eq(m.u.read_page_reply.length, size - 4097);
		memset(got, 0, size);
		ck_assert_int_eq(mc_wire_conn_recv_data(a, got, size - 4097),
				 0);
		ck_assert(memcmp(got, data + 4097, size - 4097) == 0);
		reap(pid);
		mc_wire_conn_close(a);
		mc_wire_conn_close(b);
	}

	/* a file shorter than the range: -EIO, and the conn is lost */
	conn_pair(&a, &b);
	m.u.read_page_reply.length = 100;
	ck_assert_int_eq(mc_wire_conn_send_data(b, &m, 10, fd, size - 50, 100),
			 -EIO);
	stats_request(&m);
	ck_assert_int_eq(mc_wire_conn_send(b, &m, 11), -EIO);
	mc_wire_conn_close(a);
	mc_wire_conn_close(b);
	close(fd);
	free(data);
	free(got);
}
END_TEST

START_TEST(send_data_to_a_peer_gone_is_epipe_not_sigpipe)
{
	char path[] = "/tmp/test_wire_io.XXXXXX";
	static uint8_t data[1 << 20];
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;
	int fd, r;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	tcp_pair("127.0.0.1", &a, &b);
	mc_wire_conn_close(a);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_READ_PAGE | MC_WIRE_REPLY;
	m.u.read_page_reply.length = sizeof(data);
	/* the first write may still land before the reset comes back */
	r = 0;
	for (int i = 0; i < 50 && r == 0; i++) {
		r = mc_wire_conn_send_data(b, &m, 1, fd, 0, sizeof(data));
		usleep(10 * 1000);
	}
	ck_assert_msg(r == -EPIPE || r == -ECONNRESET, "got %d", r);
	mc_wire_conn_close(b);
	close(fd);
}
END_TEST

/* ------------------------------------------------------------ addresses */

START_TEST(dial_listen_and_local_port_work_on_ipv4_ipv6_and_names)
{
	static const char *const addrs[] = { "127.0.0.1", "::1", "" };
	struct mc_wire_conn *a, *b;
	struct mc_wire_msg m;

	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		tcp_pair(addrs[i], &a, &b);
		stats_request(&m);
		ck_assert_int_eq(mc_wire_conn_send(a, &m, 1), 0);
		recv_ok(b, MC_WIRE_STATS, 1, &m);
		mc_wire_conn_close(a);
		mc_wire_conn_close(b);
	}
	assert_bad_name(mc_wire_listen("no such host.invalid", 0, 1));
}
END_TEST

START_TEST(dial_to_a_closed_port_is_econnrefused)
{
	uint16_t port;
	int lfd;

	lfd = mc_wire_listen("127.0.0.1", 0, 1);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(mc_wire_local_port(lfd, &port), 0);
	close(lfd);
	ck_assert_int_eq(mc_wire_dial("127.0.0.1", port, 1000), -ECONNREFUSED);
	ck_assert_int_eq(mc_wire_dial("", port, 1000), -EINVAL);
	ck_assert_int_eq(mc_wire_dial(NULL, port, 1000), -EINVAL);
	ck_assert_int_eq(mc_wire_dial("127.0.0.1", 0, 1000), -EINVAL);
	assert_bad_name(mc_wire_dial("no such host.invalid", 1, 1000));
}
END_TEST

START_TEST(dial_gives_up_at_its_timeout)
{
	int lfd, fds[8], n = 0, r = 0;
	uint16_t port;
	double t0, t;

	/* a listener that accepts nothing: once its queue is full, SYNs drop */
	lfd = mc_wire_listen("127.0.0.1", 0, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(mc_wire_local_port(lfd, &port), 0);
	for (n = 0; n < 8; n++) {
		t0 = now_s();
		r = mc_wire_dial("127.0.0.1", port, 200);
		t = now_s() - t0;
		if (r < 0)
			break;
		fds[n] = r;
	}
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_msg(t >= 0.19 && t < 2.0, "gave up after %.3f s", t);
	while (n--)
		close(fds[n]);
	close(lfd);
}
END_TEST

START_TEST(host_and_port_are_split_as_written)
{
	static const struct {
		const char *s;
		const char *host;
		uint16_t port; /* 0: -EINVAL */
	} cases[] = {
		{ "master", "master", 50051 },
		{ "master:1", "master", 1 },
		{ "10.0.0.1:65535", "10.0.0.1", 65535 },
		{ "[fd00::1]:8080", "fd00::1", 8080 },
		{ "[fd00::1]", "fd00::1", 50051 },
		{ "fd00::1", "fd00::1", 50051 },
		{ "::1", "::1", 50051 },
		{ "master:050", "master", 50 },
		{ "", NULL, 0 },
		{ ":80", NULL, 0 },
		{ "[]:80", NULL, 0 },
		{ "master:", NULL, 0 },
		{ "master:0", NULL, 0 },
		{ "master:65536", NULL, 0 },
		{ "master:123456", NULL, 0 },
		{ "master:8o", NULL, 0 },
		{ "master:+80", NULL, 0 },
		{ "master:-1", NULL, 0 },
		{ "[fd00::1", NULL, 0 },
		{ "[fd00::1]80", NULL, 0 },
		{ "[fd00::1]:", NULL, 0 },
		{ "fd00::1]", NULL, 0 },
		{ "ma[ster:80", NULL, 0 },
	};
	char host[16];
	uint16_t port;
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = mc_wire_parse_hostport(cases[i].s, 50051, host,
					   sizeof(host), &port);
		if (cases[i].host) {
			ck_assert_msg(r == 0, "'%s' gave %d", cases[i].s, r);
			ck_assert_str_eq(host, cases[i].host);
			ck_assert_uint_eq(port, cases[i].port);
		} else {
			ck_assert_msg(r == -EINVAL, "'%s' gave %d", cases[i].s,
				      r);
			ck_assert_str_eq(host, "");
			ck_assert_uint_eq(port, 0);
		}
	}
	/* no port written and no default */
	ck_assert_int_eq(mc_wire_parse_hostport("master", 0, host, sizeof(host),
						&port),
			 -EINVAL);
	ck_assert_int_eq(mc_wire_parse_hostport(NULL, 1, host, sizeof(host),
						&port),
			 -EINVAL);
	/* the host fills the buffer exactly, or is one byte too long */
	ck_assert_int_eq(mc_wire_parse_hostport("fifteen-bytes-x:1", 0, host,
						sizeof(host), &port),
			 0);
	ck_assert_int_eq(mc_wire_parse_hostport("sixteen-bytes-xx:1", 0, host,
						sizeof(host), &port),
			 -EINVAL);
}
END_TEST

static Suite *wire_io_suite(void)
{
	Suite *s = suite_create("wire_io");
	TCase *tf = tcase_create("frames");
	TCase *tt = tcase_create("threads and time");
	TCase *th = tcase_create("hello");
	TCase *ta = tcase_create("addresses");

	tcase_add_test(
		tf, pipelined_frames_arrive_whole_and_in_order_from_one_read);
	tcase_add_test(tf,
		       a_payload_that_does_not_decode_leaves_the_conn_usable);
	tcase_add_test(tf, a_bad_magic_or_an_oversize_length_loses_the_framing);
	tcase_add_test(tf, a_version_this_side_does_not_speak_is_eproto);
	tcase_add_test(tf, the_end_of_the_stream_inside_a_frame_is_econnreset);
	tcase_add_test(
		tf, page_bytes_after_a_frame_are_taken_from_the_buffer_first);
	tcase_add_test(tf,
		       the_end_of_the_stream_inside_page_bytes_is_econnreset);
	tcase_add_test(
		tf, a_frame_over_the_buffers_grows_them_and_the_largest_passes);
	tcase_add_test(tf, an_encoder_error_sends_nothing_and_keeps_the_conn);
	tcase_add_test(tf, send_data_sends_a_frame_then_the_file_range);
	tcase_add_test(tf, send_data_to_a_peer_gone_is_epipe_not_sigpipe);
	suite_add_tcase(s, tf);

	tcase_add_test(tt, concurrent_senders_never_interleave_their_frames);
	tcase_add_test(tt, shutdown_wakes_a_reader_blocked_in_recv);
	tcase_add_test(tt, a_receive_with_nothing_coming_times_out);
	tcase_add_test(tt, a_send_to_a_peer_that_reads_nothing_times_out);
	suite_add_tcase(s, tt);

	tcase_add_test(th, hello_agrees_on_the_highest_common_version);
	tcase_add_test(th, hello_is_refused_when_the_ranges_do_not_meet);
	suite_add_tcase(s, th);

	tcase_add_test(ta,
		       dial_listen_and_local_port_work_on_ipv4_ipv6_and_names);
	tcase_add_test(ta, dial_to_a_closed_port_is_econnrefused);
	tcase_add_test(ta, dial_gives_up_at_its_timeout);
	tcase_add_test(ta, host_and_port_are_split_as_written);
	suite_add_tcase(s, ta);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(wire_io_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
