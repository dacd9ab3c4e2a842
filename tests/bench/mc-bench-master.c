/*
 * mc-bench-master - how fast a mooncake_master commits and looks up, and
 * what a page costs it in memory.
 *
 *   mc-bench-master --master HOST:PORT [--master-pid PID] [options]
 *
 * Opens --connections connections, each registering a fake segment as a
 * daemon with an empty pool would (REGISTER, an empty HOLDINGS, then
 * heartbeats), makes a fresh directory, then
 * measures in one run:
 *   1. commits/s, one item per COMMIT, --depth requests in flight per
 *      connection (the close of one file at a time, pipelined, as a
 *      daemon's FUSE threads send them; the master writes the COMMITs it
 *      finds back to back in one transaction, so --depth 1 is the way to
 *      measure a transaction per commit);
 *   2. commits/s, --batch items per COMMIT (SGLang-style bursts of closes);
 *   3. lookups/s of committed names, --depth in flight (hits);
 *   4. the master's resident memory per page: VmRSS of --master-pid before
 *      and after the pages were loaded.
 * RESERVE is done before the clock starts (daemons keep numbers ready).
 * Prints a table with the targets.  Exit 0 when every request succeeded
 * (targets missed are reported, not failed), 1 on errors, 2 on usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"
#include "wire_io.h"
#include "banned.h"

#define BEAT_ID (1ULL << 62)
#define TARGET_LOOKUPS 100000.0
#define TARGET_COMMITS 30000.0

struct opts {
	char host[256];
	uint16_t port;
	long pid;
	unsigned conns;
	uint64_t pages; /* per commit phase, all connections */
	unsigned batch;
	unsigned depth;
	uint64_t lookups;
};

struct bconn {
	struct mc_wire_conn *wc;
	unsigned idx;
	uint64_t segment;
	uint64_t next_id;
	/* reserved numbers for this connection's pages */
	struct mc_wire_reserved *res;
	uint64_t nres, used;
	uint64_t first_single, nsingle; /* name index ranges */
	uint64_t first_batch, nbatch;
	uint64_t errors;
	int fail; /* first connection error */
	pthread_t thr;
};

struct bench {
	struct opts o;
	struct bconn *c;
	uint64_t dir;
	uint64_t heartbeat_ms;
	_Atomic bool stop_beats;
	pthread_barrier_t start;
	int phase;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: mc-bench-master --master HOST:PORT [--master-pid PID]\n"
		"       [--connections N] [--pages N] [--batch N] [--depth N] [--lookups N]\n"
		"  --master HOST:PORT  the mooncake_master to measure (default 127.0.0.1:50051)\n"
		"  --master-pid PID    its pid, to read VmRSS from /proc (else memory is not measured)\n"
		"  --connections N     connections, each a fake daemon (default 4)\n"
		"  --pages N           pages committed by each commit phase (default 100000)\n"
		"  --batch N           items per COMMIT in the batched phase, 1..1024 (default 256)\n"
		"  --depth N           requests in flight per connection (default 64)\n"
		"  --lookups N         lookups in the lookup phase (default 400000)\n");
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	uint64_t v;

	memset(o, 0, sizeof(*o));
	snprintf(o->host, sizeof(o->host), "127.0.0.1");
	o->port = MC_WIRE_CONTROL_PORT;
	o->conns = 4;
	o->pages = 100000;
	o->batch = 256;
	o->depth = 64;
	o->lookups = 400000;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i],
			   *val = i + 1 < argc ? argv[i + 1] : NULL;
		int r = -EINVAL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (!val) {
			fprintf(stderr, "mc-bench-master: %s needs a value\n",
				a);
			return -EINVAL;
		}
		i++;
		if (strcmp(a, "--master") == 0) {
			r = mc_wire_parse_hostport(val, MC_WIRE_CONTROL_PORT,
						   o->host, sizeof(o->host),
						   &o->port);
		} else if (strcmp(a, "--master-pid") == 0) {
			r = parse_u64(val, 1, 1 << 30, &v);
			o->pid = (long)v;
		} else if (strcmp(a, "--connections") == 0) {
			r = parse_u64(val, 1, 256, &v);
			o->conns = (unsigned)v;
		} else if (strcmp(a, "--pages") == 0) {
			r = parse_u64(val, 1, 100000000, &o->pages);
		} else if (strcmp(a, "--batch") == 0) {
			r = parse_u64(val, 1, MC_WIRE_MAX_BATCH, &v);
			o->batch = (unsigned)v;
		} else if (strcmp(a, "--depth") == 0) {
			r = parse_u64(val, 1, 4096, &v);
			o->depth = (unsigned)v;
		} else if (strcmp(a, "--lookups") == 0) {
			r = parse_u64(val, 1, 1000000000, &o->lookups);
		} else {
			fprintf(stderr,
				"mc-bench-master: unknown option '%s': see --help\n",
				a);
			return -EINVAL;
		}
		if (r < 0) {
			fprintf(stderr, "mc-bench-master: %s: bad value '%s'\n",
				a, val);
			return -EINVAL;
		}
	}
	return 0;
}

/* VmRSS of pid in bytes, or 0 when it cannot be read. */
static uint64_t rss_of(long pid)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/*
 * The next reply on c (requests from the master are answered and skipped,
 * and so are heartbeat replies).  0 with *status, or a connection error.
 */
static int next_reply(struct bconn *c, struct mc_wire_msg *rep,
		      struct mc_wire_header *h)
{
	int ds, r;

	for (;;) {
		memset(rep, 0, sizeof(*rep));
		r = mc_wire_conn_recv(c->wc, h, rep, &ds);
		if (r < 0)
			return r;
		if (ds < 0)
			return ds;
		if (!(h->type & MC_WIRE_REPLY)) {
			struct mc_wire_msg ack;

			memset(&ack, 0, sizeof(ack));
			ack.type = (uint16_t)(h->type | MC_WIRE_REPLY);
			mc_wire_msg_release(rep);
			r = mc_wire_conn_send(c->wc, &ack, h->id);
			if (r < 0)
				return r;
			continue;
		}
		if (h->id & BEAT_ID) {
			if (rep->status < 0)
				fprintf(stderr,
					"mc-bench-master: heartbeat refused: %s\n",
					strerror(-rep->status));
			mc_wire_msg_release(rep);
			continue;
		}
		return 0;
	}
}

static int call(struct bconn *c, struct mc_wire_msg *req,
		struct mc_wire_msg *rep)
{
	struct mc_wire_header h;
	int r;

	r = mc_wire_conn_send(c->wc, req, c->next_id++);
	if (r == 0)
		r = next_reply(c, rep, &h);
	if (r == 0 && rep->status < 0) {
		r = rep->status;
		mc_wire_msg_release(rep);
	}
	return r;
}

static void page_name(char *buf, size_t len, unsigned conn, uint64_t i)
{
	snprintf(buf, len, "%016" PRIx64 "_bench_%u_%u.bin",
		 (uint64_t)(i * 0x9e3779b97f4a7c15ULL), conn, 8);
}

static void fill_item(struct bench *b, struct bconn *c,
		      struct mc_wire_commit_item *it, uint64_t name_idx)
{
	memset(it, 0, sizeof(*it));
	it->parent = b->dir;
	page_name(it->name, sizeof(it->name), c->idx, name_idx);
	it->ino = c->res[c->used].ino;
	it->page_id = c->res[c->used].page_id;
	c->used++;
	it->mode = S_IFREG | 0644;
	it->size = 2 << 20;
	it->mtime_ns = 1;
	it->crc32c = (uint32_t)name_idx;
	it->nsegments = 1;
	it->segments[0] = c->segment;
}

/* Count a reply's failures; returns the number of items it answered. */
static uint64_t check_reply(struct bconn *c, const struct mc_wire_msg *rep)
{
	if (rep->status < 0) {
		if (c->errors++ == 0)
			fprintf(stderr, "mc-bench-master: %s failed: %s\n",
				mc_wire_type_name(rep->type) ?
					mc_wire_type_name(rep->type) :
					"a request",
				strerror(-rep->status));
		return 1;
	}
	if ((rep->type & ~MC_WIRE_REPLY) == MC_WIRE_COMMIT) {
		for (uint32_t i = 0; i < rep->u.commit_reply.count; i++) {
			if (rep->u.commit_reply.items[i].status < 0 &&
			    c->errors++ == 0)
				fprintf(stderr,
					"mc-bench-master: a commit failed: %s\n",
					strerror(-rep->u.commit_reply.items[i]
							  .status));
		}
		return rep->u.commit_reply.count;
	}
	return 1;
}

/*
 * Keep `depth` requests in flight until `total` requests were answered;
 * build(i) fills request i.  Replies are drained while bytes are buffered,
 * then the next window is sent in one write.
 */
static int pipeline(struct bench *b, struct bconn *c, uint64_t total,
		    unsigned depth,
		    void (*build)(struct bench *, struct bconn *, uint64_t,
				  struct mc_wire_msg *, void *),
		    void *scratch)
{
	struct mc_wire_msg req, rep;
	struct mc_wire_header h;
	uint64_t sent = 0, done = 0, inflight = 0;
	int r;

	while (done < total) {
		while (inflight < depth && sent < total) {
			memset(&req, 0, sizeof(req));
			build(b, c, sent, &req, scratch);
			r = mc_wire_conn_queue(c->wc, &req, c->next_id++);
			if (r < 0)
				return r;
			sent++;
			inflight++;
		}
		r = mc_wire_conn_flush(c->wc);
		if (r < 0)
			return r;
		do {
			r = next_reply(c, &rep, &h);
			if (r < 0)
				return r;
			check_reply(c, &rep);
			mc_wire_msg_release(&rep);
			inflight--;
			done++;
		} while (inflight > 0 && mc_wire_conn_buffered(c->wc) > 0);
	}
	return 0;
}

struct single_scratch {
	struct mc_wire_commit_item it[4096];
};

static void build_single(struct bench *b, struct bconn *c, uint64_t i,
			 struct mc_wire_msg *req, void *scratch)
{
	struct single_scratch *s = scratch;
	struct mc_wire_commit_item *it = &s->it[i % 4096];

	fill_item(b, c, it, c->first_single + i);
	req->type = MC_WIRE_COMMIT;
	req->u.commit.count = 1;
	req->u.commit.items = it;
}

struct batch_scratch {
	struct mc_wire_commit_item *it; /* depth * batch */
	unsigned depth;
};

static void build_batch(struct bench *b, struct bconn *c, uint64_t i,
			struct mc_wire_msg *req, void *scratch)
{
	struct batch_scratch *s = scratch;
	struct mc_wire_commit_item *items = s->it + (i % s->depth) * b->o.batch;
	uint64_t first = i * b->o.batch;
	uint32_t n = (uint32_t)(c->nbatch - first < b->o.batch ?
					c->nbatch - first :
					b->o.batch);

	for (uint32_t k = 0; k < n; k++)
		fill_item(b, c, &items[k], c->first_batch + first + k);
	req->type = MC_WIRE_COMMIT;
	req->u.commit.count = n;
	req->u.commit.items = items;
}

static void build_lookup(struct bench *b, struct bconn *c, uint64_t i,
			 struct mc_wire_msg *req, void *scratch)
{
	uint64_t names = c->nsingle + c->nbatch;
	uint64_t k = (i * 7919) % names;
	uint64_t idx = k < c->nsingle ? c->first_single + k :
					c->first_batch + (k - c->nsingle);

	(void)scratch;
	req->type = MC_WIRE_LOOKUP;
	req->u.entry.parent = b->dir;
	page_name(req->u.entry.name, sizeof(req->u.entry.name), c->idx, idx);
}

struct worker {
	struct bench *b;
	struct bconn *c;
};

static void *phase_thread(void *arg)
{
	struct worker *w = arg;
	struct bench *b = w->b;
	struct bconn *c = w->c;
	struct batch_scratch bs = { 0 };
	void *scratch = NULL;
	int r = 0;

	if (b->phase == 1) {
		scratch = malloc(sizeof(struct single_scratch));
		if (!scratch)
			r = -ENOMEM;
	} else if (b->phase == 2) {
		bs.depth = b->o.depth < 8 ? b->o.depth : 8;
		bs.it = calloc((size_t)bs.depth * b->o.batch, sizeof(*bs.it));
		if (!bs.it)
			r = -ENOMEM;
	}
	pthread_barrier_wait(&b->start);
	if (r < 0)
		goto out;
	switch (b->phase) {
	case 1:
		r = pipeline(b, c, c->nsingle, b->o.depth, build_single,
			     scratch);
		break;
	case 2:
		r = pipeline(b, c, (c->nbatch + b->o.batch - 1) / b->o.batch,
			     bs.depth, build_batch, &bs);
		break;
	default:
		r = pipeline(b, c, b->o.lookups / b->o.conns, b->o.depth,
			     build_lookup, NULL);
		break;
	}
out:
	if (r < 0 && !c->fail)
		c->fail = r;
	free(scratch);
	free(bs.it);
	return NULL;
}

/* Run one phase on every connection; seconds it took. */
static double run_phase(struct bench *b, int phase)
{
	struct worker *w = calloc(b->o.conns, sizeof(*w));
	double t0, t1;

	if (!w)
		return -1;
	b->phase = phase;
	pthread_barrier_init(&b->start, NULL, b->o.conns + 1);
	for (unsigned i = 0; i < b->o.conns; i++) {
		w[i].b = b;
		w[i].c = &b->c[i];
		pthread_create(&b->c[i].thr, NULL, phase_thread, &w[i]);
	}
	pthread_barrier_wait(&b->start);
	t0 = now_s();
	for (unsigned i = 0; i < b->o.conns; i++)
		pthread_join(b->c[i].thr, NULL);
	t1 = now_s();
	pthread_barrier_destroy(&b->start);
	free(w);
	return t1 - t0;
}

static void *beat_thread(void *arg)
{
	struct bench *b = arg;
	struct mc_wire_msg req;
	uint64_t id = BEAT_ID;

	while (!atomic_load(&b->stop_beats)) {
		for (unsigned i = 0; i < b->o.conns; i++) {
			memset(&req, 0, sizeof(req));
			req.type = MC_WIRE_HEARTBEAT;
			req.u.heartbeat.segment_id = b->c[i].segment;
			mc_wire_conn_send(b->c[i].wc, &req, id++);
		}
		usleep((useconds_t)b->heartbeat_ms * 1000);
	}
	return NULL;
}

static int setup_conn(struct bench *b, struct bconn *c, unsigned idx,
		      uint64_t run)
{
	struct mc_wire_msg req, rep;
	uint64_t need = c->nsingle + c->nbatch;
	int fd, r;

	c->idx = idx;
	c->next_id = 1;
	fd = mc_wire_dial(b->o.host, b->o.port, 3000);
	if (fd < 0)
		return fd;
	r = mc_wire_conn_open(&c->wc, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = mc_wire_conn_hello(c->wc, "mc-bench-master");
	if (r < 0)
		return r;

	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_REGISTER;
	/* a fresh uuid per run and connection: nothing left from before */
	memcpy(req.u.reg.segment, &run, sizeof(run));
	req.u.reg.segment[8] = (uint8_t)idx;
	req.u.reg.segment[15] = 0xbe;
	snprintf(req.u.reg.host, sizeof(req.u.reg.host), "bench%u", idx);
	snprintf(req.u.reg.address, sizeof(req.u.reg.address), "127.0.0.1");
	req.u.reg.port = (uint16_t)(40000 + idx);
	req.u.reg.capacity = 1ULL << 40;
	snprintf(req.u.reg.protocol, sizeof(req.u.reg.protocol), "tcp");
	r = call(c, &req, &rep);
	if (r < 0)
		return r;
	c->segment = rep.u.reg_reply.segment_id;
	b->heartbeat_ms = rep.u.reg_reply.heartbeat_ms;
	mc_wire_msg_release(&rep);

	/* as a daemon with an empty pool does: "I hold nothing", reconciled */
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_HOLDINGS;
	req.u.holdings.last = 1;
	r = call(c, &req, &rep);
	if (r < 0)
		return r;
	mc_wire_msg_release(&rep);

	c->res = calloc(need, sizeof(*c->res));
	if (!c->res)
		return -ENOMEM;
	while (c->nres < need) {
		uint64_t k = need - c->nres < MC_WIRE_MAX_BATCH ?
				     need - c->nres :
				     MC_WIRE_MAX_BATCH;

		memset(&req, 0, sizeof(req));
		req.type = MC_WIRE_RESERVE;
		req.u.reserve_count = (uint32_t)k;
		r = call(c, &req, &rep);
		if (r < 0)
			return r;
		memcpy(c->res + c->nres, rep.u.reserve_reply.items,
		       k * sizeof(*c->res));
		c->nres += k;
		mc_wire_msg_release(&rep);
	}
	return 0;
}

static const char *verdict(double v, double target)
{
	return v >= target ? "ok" : "BELOW";
}

int main(int argc, char **argv)
{
	struct bench b;
	struct mc_wire_msg req, rep;
	pthread_t beats;
	bool beating = false;
	double t1, t2, t3, commits1, commits2, lookups;
	uint64_t rss0, rss1, per, errors = 0, run;
	char dirname[64];
	int status = 1, r;

	memset(&b, 0, sizeof(b));
	if (parse_opts(&b.o, argc, argv) < 0)
		return 2;
	b.c = calloc(b.o.conns, sizeof(*b.c));
	if (!b.c)
		return 1;
	run = (uint64_t)time(NULL) << 20 ^ (uint64_t)getpid();
	for (unsigned i = 0; i < b.o.conns; i++) {
		struct bconn *c = &b.c[i];

		c->nsingle = b.o.pages / b.o.conns;
		c->nbatch = b.o.pages / b.o.conns;
		c->first_single = 0;
		c->first_batch = c->nsingle;
		r = setup_conn(&b, c, i, run);
		if (r < 0) {
			fprintf(stderr,
				"mc-bench-master: cannot set up connection %u to %s:%u: %s: is mooncake_master running there?\n",
				i, b.o.host, (unsigned)b.o.port, strerror(-r));
			goto out;
		}
	}
	atomic_store(&b.stop_beats, false);
	if (pthread_create(&beats, NULL, beat_thread, &b) == 0)
		beating = true;

	snprintf(dirname, sizeof(dirname), "bench-%" PRIx64, run);
	memset(&req, 0, sizeof(req));
	req.type = MC_WIRE_MKDIR;
	req.u.mkdir.parent = MC_NS_ROOT_INO;
	snprintf(req.u.mkdir.name, sizeof(req.u.mkdir.name), "%s", dirname);
	req.u.mkdir.mode = 0755;
	r = call(&b.c[0], &req, &rep);
	if (r < 0) {
		fprintf(stderr, "mc-bench-master: cannot make '/%s': %s\n",
			dirname, strerror(-r));
		goto out;
	}
	b.dir = rep.u.attr.ino;
	mc_wire_msg_release(&rep);

	rss0 = rss_of(b.o.pid);
	t1 = run_phase(&b, 1);
	t2 = run_phase(&b, 2);
	rss1 = rss_of(b.o.pid);
	t3 = run_phase(&b, 3);

	for (unsigned i = 0; i < b.o.conns; i++) {
		errors += b.c[i].errors;
		if (b.c[i].fail) {
			fprintf(stderr,
				"mc-bench-master: connection %u failed: %s\n",
				i, strerror(-b.c[i].fail));
			errors++;
		}
	}
	commits1 = (double)(b.c[0].nsingle * b.o.conns) / t1;
	commits2 = (double)(b.c[0].nbatch * b.o.conns) / t2;
	lookups = (double)(b.o.lookups / b.o.conns * b.o.conns) / t3;
	per = rss1 > rss0 ? (rss1 - rss0) / (b.c[0].nsingle * 2 * b.o.conns) :
			    0;

	printf("mc-bench-master: %s:%u, %u connections, %" PRIu64
	       " pages per commit phase, depth %u, batch %u\n",
	       b.o.host, (unsigned)b.o.port, b.o.conns,
	       b.c[0].nsingle * b.o.conns, b.o.depth, b.o.batch);
	printf("%-38s %14s %14s  %s\n", "measure", "result", "target", "");
	printf("%-38s %14.0f %14s  %s\n", "commits/s, 1 item per COMMIT",
	       commits1, ">= 30000", verdict(commits1, TARGET_COMMITS));
	printf("%-38s %14.0f %14s  %s\n", "commits/s, batched COMMIT", commits2,
	       ">= 30000", verdict(commits2, TARGET_COMMITS));
	printf("%-38s %14.0f %14s  %s\n", "lookups/s (hits)", lookups,
	       ">= 100000", verdict(lookups, TARGET_LOOKUPS));
	if (b.o.pid > 0 && rss0 && rss1)
		printf("%-38s %12" PRIu64 " B %14s  (VmRSS %.1f -> %.1f MiB)\n",
		       "master RSS per page", per, "-",
		       (double)rss0 / 1048576.0, (double)rss1 / 1048576.0);
	else
		printf("%-38s %14s %14s  (give --master-pid)\n",
		       "master RSS per page", "not measured", "-");
	if (errors) {
		fprintf(stderr,
			"mc-bench-master: %" PRIu64 " requests failed\n",
			errors);
		goto out;
	}
	status = 0;
out:
	if (beating) {
		atomic_store(&b.stop_beats, true);
		pthread_join(beats, NULL);
	}
	for (unsigned i = 0; i < b.o.conns; i++) {
		mc_wire_conn_close(b.c[i].wc);
		free(b.c[i].res);
	}
	free(b.c);
	return status;
}
