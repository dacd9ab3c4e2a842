/*
 * mc-bench-tcp - remote page reads against raw TCP over the same link.
 *
 *   mc-bench-tcp serve --dir D --port P [--address A] [--pages N] [--size S]
 *   mc-bench-tcp client --peer ADDR --port P [--pages N] [--size S]
 *                       [--rounds R] [--pool-dir DIR] [--chunk S]
 *
 * serve writes pages 1..N of S bytes into D (content derived from the page
 * id, so the client knows each page's checksum without asking), serves
 * them with the data server on P, and runs a raw TCP source on P + 1: a
 * request is a u64 page id and a u64 length, the answer that many bytes of
 * the page file, sendfile(2) as the data server sends them.  The two ends
 * can live in two network namespaces, or both on loopback.
 *
 * client measures, in one run, with the modes interleaved round by round
 * so drift on a shared machine hits them alike:
 *
 *   raw          request S bytes on P + 1, one recv(MSG_WAITALL) into a
 *                warm buffer: the anchor
 *   raw-steps    the same, received in --chunk steps (what a careful raw
 *                reader gets)
 *   fetch        mc_fetch_page() over the tcp transport (io_uring receive,
 *                CRC-32C checked) into the same warm buffer
 *   fetch-plain  the same with recv(2) instead of io_uring
 *   fetch-fresh  mc_fetch_page() into an mmap of a fresh file of S bytes in
 *                --pool-dir (create, ftruncate, mmap, fetch, munmap,
 *                unlink): what a daemon does for a page it has not seen
 *
 * and prints, per mode, GB/s (10^9 bytes), p50 and p99 milliseconds per
 * page and the ratio to raw, of the means and of the medians.  One round of every mode runs first, untimed:
 * this machine's first touch of fresh memory is slow.
 *
 * Exit status: 0 success, 1 a failed read or wrong bytes, 2 bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "data_server.h"
#include "fetch.h"
#include "log.h"
#include "size.h"
#include "transport.h"
#include "wire_io.h"
#include "banned.h"

struct opts {
	const char *dir;
	const char *address;
	const char *peer;
	const char *pool_dir;
	uint16_t port;
	unsigned pages;
	unsigned rounds;
	uint64_t size;
	uint64_t chunk;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: mc-bench-tcp serve --dir D --port P [--address A] [--pages N] [--size S]\n"
		"       mc-bench-tcp client --peer ADDR --port P [--pages N] [--size S]\n"
		"                           [--rounds R] [--pool-dir DIR] [--chunk S]\n");
	return 2;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Page id's content: any fast pattern both ends can make alike. */
static void page_fill(uint8_t *p, uint64_t len, uint64_t id)
{
	uint64_t x = id * 0x9e3779b97f4a7c15u + 1;
	uint64_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
}

/* ---------------------------------------------------------------- serve */

static void page_name(char *buf, size_t len, uint64_t id)
{
	snprintf(buf, len, "%016" PRIx64, id);
}

struct dir_source {
	int dirfd;
};

static int dir_open(void *ctx, uint64_t page_id, int *fd, uint64_t *size)
{
	struct dir_source *d = ctx;
	struct stat st;
	char name[32];
	int r;

	page_name(name, sizeof(name), page_id);
	*fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC);
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

static int write_pages(const struct opts *o, int dirfd)
{
	uint8_t *buf = malloc(o->size ? o->size : 1);
	char name[32];
	struct stat st;
	int fd, r = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t id = 1; id <= o->pages && r == 0; id++) {
		page_name(name, sizeof(name), id);
		if (fstatat(dirfd, name, &st, 0) == 0 &&
		    (uint64_t)st.st_size == o->size)
			continue;
		page_fill(buf, o->size, id);
		fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			r = -errno;
			break;
		}
		/* a short write on a full tmpfs leaves errno unset */
		if (write(fd, buf, o->size) != (ssize_t)o->size)
			r = -ENOSPC;
		close(fd);
	}
	free(buf);
	return r;
}

struct raw_conn {
	int fd;
	int dirfd;
};

/* The raw source: u64 page id, u64 length in; that many bytes out. */
static void *raw_conn_main(void *arg)
{
	struct raw_conn *rc = arg;
	uint64_t req[2];
	char name[32];

	while (recv(rc->fd, req, sizeof(req), MSG_WAITALL) ==
	       (ssize_t)sizeof(req)) {
		off_t off = 0;
		uint64_t left = req[1];
		int pfd;

		page_name(name, sizeof(name), req[0]);
		pfd = openat(rc->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (pfd < 0)
			break;
		while (left) {
			ssize_t n = sendfile(rc->fd, pfd, &off, left);

			if (n <= 0)
				break;
			left -= (uint64_t)n;
		}
		close(pfd);
		if (left)
			break;
	}
	close(rc->fd);
	free(rc);
	return NULL;
}

static int serve(const struct opts *o)
{
	struct mc_data_server_params sp = { .address = o->address,
					    .port = o->port };
	struct dir_source src;
	struct mc_page_source ps = {
		.open = dir_open,
		.immutable = true,
		.ctx = &src,
	};
	struct mc_data_server *s = NULL;
	int lfd = -1, r;

	src.dirfd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src.dirfd < 0) {
		r = -errno;
		fprintf(stderr, "mc-bench-tcp: cannot open '%s': %s\n", o->dir,
			strerror(-r));
		goto out;
	}
	r = write_pages(o, src.dirfd);
	if (r < 0) {
		fprintf(stderr,
			"mc-bench-tcp: cannot write pages in '%s': %s\n",
			o->dir, strerror(-r));
		goto out;
	}
	r = mc_data_server_open(&s, &sp, &ps);
	if (r < 0)
		goto out;
	lfd = mc_wire_listen(o->address, (uint16_t)(o->port + 1), 64);
	if (lfd < 0) {
		r = lfd;
		fprintf(stderr, "mc-bench-tcp: cannot listen on port %u: %s\n",
			o->port + 1, strerror(-r));
		goto out;
	}
	printf("serving %u pages of %" PRIu64
	       " bytes: data server on port %u, raw on port %u\n",
	       o->pages, o->size, mc_data_server_port(s), o->port + 1);
	fflush(stdout);
	for (;;) {
		struct raw_conn *rc;
		pthread_t th;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			continue;
		rc = malloc(sizeof(*rc));
		if (!rc) {
			close(fd);
			continue;
		}
		rc->fd = fd;
		rc->dirfd = src.dirfd;
		if (pthread_create(&th, NULL, raw_conn_main, rc)) {
			close(fd);
			free(rc);
			continue;
		}
		pthread_detach(th);
	}
out:
	if (lfd >= 0)
		close(lfd);
	mc_data_server_close(s);
	if (src.dirfd >= 0)
		close(src.dirfd);
	return r < 0 ? 1 : 0;
}

/* --------------------------------------------------------------- client */

enum mode {
	RAW,
	RAW_STEPS,
	FETCH,
	FETCH_PLAIN,
	FETCH_FRESH,
	NMODES
};

static const char *const mode_names[NMODES] = {
	"raw", "raw-steps", "fetch", "fetch-plain", "fetch-fresh",
};

struct client {
	const struct opts *o;
	int raw_fd;
	uint8_t *buf; /* warm, o->size bytes */
	uint32_t *crcs; /* of page i + 1 */
	struct mc_transport *tcp;
	struct mc_transport *plain;
	struct mc_ns_replicas reps;
	double *samples[NMODES]; /* seconds per page */
	size_t nsamples[NMODES];
	unsigned fresh_seq;
};

static int raw_read(struct client *c, uint64_t id, int steps)
{
	uint64_t req[2] = { id, c->o->size };
	uint64_t off = 0, n;
	ssize_t got;

	if (send(c->raw_fd, req, sizeof(req), MSG_NOSIGNAL) != sizeof(req))
		return -errno;
	while (off < c->o->size) {
		n = c->o->size - off;
		if (steps && n > c->o->chunk)
			n = c->o->chunk;
		got = recv(c->raw_fd, c->buf + off, n, MSG_WAITALL);
		if (got <= 0)
			return got < 0 ? -errno : -ECONNRESET;
		off += (uint64_t)got;
	}
	return 0;
}

static int fetch_into(struct client *c, struct mc_transport *t, uint64_t id,
		      void *dst)
{
	uint64_t from;

	c->reps.crc32c = c->crcs[id - 1];
	return mc_fetch_page(t, &c->reps, id, 0, dst, &from);
}

static int fetch_fresh(struct client *c, uint64_t id)
{
	char path[4096];
	void *p = MAP_FAILED;
	int fd, r;

	snprintf(path, sizeof(path), "%s/mc-bench-tcp.%d.%u", c->o->pool_dir,
		 (int)getpid(), c->fresh_seq++);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)c->o->size) < 0) {
		r = -errno;
		goto out;
	}
	p = mmap(NULL, c->o->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	r = fetch_into(c, c->tcp, id, p);
out:
	if (p != MAP_FAILED)
		munmap(p, c->o->size);
	close(fd);
	unlink(path);
	return r;
}

static int run_one(struct client *c, enum mode m, uint64_t id)
{
	switch (m) {
	case RAW:
		return raw_read(c, id, 0);
	case RAW_STEPS:
		return raw_read(c, id, 1);
	case FETCH:
		return fetch_into(c, c->tcp, id, c->buf);
	case FETCH_PLAIN:
		return fetch_into(c, c->plain, id, c->buf);
	default:
		return fetch_fresh(c, id);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);

	return v[i < n ? i : n - 1];
}

/*
 * Mean GB/s is what a reader gets; on a shared machine it swings with
 * whoever else is scheduled, so the ratio is also given on the medians.
 */
static void report(struct client *c)
{
	double raw_gbs = 0, raw_p50 = 0;

	printf("%-12s %9s %9s %9s %8s %12s\n", "mode", "GB/s", "p50 ms",
	       "p99 ms", "vs raw", "vs raw p50");
	for (int m = 0; m < NMODES; m++) {
		double sum = 0, gbs, p50;
		size_t n = c->nsamples[m];

		if (!n)
			continue;
		for (size_t i = 0; i < n; i++)
			sum += c->samples[m][i];
		qsort(c->samples[m], n, sizeof(double), cmp_double);
		gbs = (double)c->o->size * (double)n / sum / 1e9;
		p50 = pct(c->samples[m], n, 0.5);
		if (m == RAW) {
			raw_gbs = gbs;
			raw_p50 = p50;
		}
		printf("%-12s %9.2f %9.3f %9.3f %8.2f %12.2f\n", mode_names[m],
		       gbs, p50 * 1e3, pct(c->samples[m], n, 0.99) * 1e3,
		       raw_gbs ? gbs / raw_gbs : 0,
		       raw_p50 ? raw_p50 / p50 : 0);
	}
}

static int client(const struct opts *o)
{
	struct mc_transport_tcp_params tp = { .name = "mc-bench-tcp",
					      .recv_chunk = o->chunk };
	struct client c = { .o = o, .raw_fd = -1 };
	uint8_t *check = NULL;
	int r = 0;

	c.buf = aligned_alloc(2 << 20, (o->size + (2 << 20) - 1) &
					       ~(uint64_t)((2 << 20) - 1));
	c.crcs = calloc(o->pages, sizeof(*c.crcs));
	check = malloc(o->size ? o->size : 1);
	for (int m = 0; m < NMODES; m++)
		c.samples[m] =
			calloc((size_t)o->pages * o->rounds, sizeof(double));
	if (!c.buf || !c.crcs || !check) {
		r = -ENOMEM;
		goto out;
	}
	/* the expected checksums, and the buffer touched before timing */
	for (unsigned i = 0; i < o->pages; i++) {
		page_fill(c.buf, o->size, i + 1);
		c.crcs[i] = mc_crc32c(0, c.buf, o->size);
	}
	memset(check, 0, o->size);
	c.reps.size = o->size;
	c.reps.count = 1;
	c.reps.r[0].segment_id = 1;
	snprintf(c.reps.r[0].address, sizeof(c.reps.r[0].address), "%s",
		 o->peer);
	c.reps.r[0].port = o->port;

	r = mc_transport_tcp_new(&c.tcp, &tp);
	if (r < 0)
		goto out;
	tp.flags = MC_TRANSPORT_TCP_PLAIN_RECV;
	r = mc_transport_tcp_new(&c.plain, &tp);
	if (r < 0)
		goto out;
	c.raw_fd = mc_wire_dial(o->peer, (uint16_t)(o->port + 1), 5000);
	if (c.raw_fd < 0) {
		r = c.raw_fd;
		fprintf(stderr,
			"mc-bench-tcp: cannot reach the raw source at '%s' port %u: %s\n",
			o->peer, o->port + 1, strerror(-r));
		goto out;
	}

	printf("%u pages of %" PRIu64 " bytes from %s port %u, %u rounds, "
	       "crc32c %s, receive steps %" PRIu64 " bytes\n",
	       o->pages, o->size, o->peer, o->port, o->rounds, mc_crc32c_impl(),
	       o->chunk);
	/* round 0 warms up every path and is not counted */
	for (unsigned round = 0; round <= o->rounds && r == 0; round++) {
		for (int m = 0; m < NMODES && r == 0; m++) {
			for (unsigned i = 0; i < o->pages && r == 0; i++) {
				double t0 = now_s();

				r = run_one(&c, (enum mode)m, i + 1);
				if (r < 0) {
					fprintf(stderr,
						"mc-bench-tcp: %s of page %u failed: %s\n",
						mode_names[m], i + 1,
						strerror(-r));
					break;
				}
				if (round)
					c.samples[m][c.nsamples[m]++] =
						now_s() - t0;
			}
		}
		/* once per round, the bytes themselves: fetch landed them */
		if (r == 0 && o->pages) {
			page_fill(check, o->size, o->pages);
			if (memcmp(check, c.buf, o->size) != 0) {
				fprintf(stderr,
					"mc-bench-tcp: page %u arrived with wrong bytes\n",
					o->pages);
				r = -EIO;
			}
		}
	}
	if (r == 0)
		report(&c);
out:
	if (c.raw_fd >= 0)
		close(c.raw_fd);
	mc_transport_free(c.tcp);
	mc_transport_free(c.plain);
	for (int m = 0; m < NMODES; m++)
		free(c.samples[m]);
	free(c.crcs);
	free(c.buf);
	free(check);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "address", required_argument, NULL, 'a' },
		{ "peer", required_argument, NULL, 'P' },
		{ "port", required_argument, NULL, 'p' },
		{ "pages", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "pool-dir", required_argument, NULL, 'D' },
		{ "chunk", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .pages = 16,
			  .rounds = 5,
			  .size = 8 << 20,
			  .chunk = 512 << 10,
			  .pool_dir = "/dev/shm" };
	const char *cmd;
	uint64_t v;
	int ch;

	if (argc < 2)
		return usage();
	cmd = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o.dir = optarg;
			break;
		case 'a':
			o.address = optarg;
			break;
		case 'P':
			o.peer = optarg;
			break;
		case 'D':
			o.pool_dir = optarg;
			break;
		case 'p':
		case 'n':
		case 'r':
			if (mc_size_parse(optarg, &v) < 0 || v == 0 ||
			    v > (ch == 'p' ? 65534 : 1000000))
				return usage();
			if (ch == 'p')
				o.port = (uint16_t)v;
			else if (ch == 'n')
				o.pages = (unsigned)v;
			else
				o.rounds = (unsigned)v;
			break;
		case 's':
		case 'c':
			if (mc_size_parse(optarg, &v) < 0 || v == 0 ||
			    v > MC_WIRE_MAX_DATA)
				return usage();
			if (ch == 's')
				o.size = v;
			else
				o.chunk = v;
			break;
		default:
			return usage();
		}
	}
	mc_log_init("mc-bench-tcp", MC_LOG_NOTICE, 0);
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(cmd, "serve") == 0 && o.dir && o.port)
		return serve(&o);
	if (strcmp(cmd, "client") == 0 && o.peer && o.port)
		return client(&o);
	return usage();
}
