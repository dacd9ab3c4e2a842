/*
 * mc-bench-pages - time SGLang's file-backend access pattern on one directory.
 *
 * SGLang's `file` HiCache backend keeps one KV page per file in one flat
 * directory and touches it in exactly these ways (research/sglang-file-backend.md):
 *
 *   write:     stat (a miss), open(O_WRONLY|O_CREAT|O_TRUNC), one write() of
 *              the whole page, close
 *   read:      open(O_RDONLY), fstat, one read() of st_size, close
 *   exists:    stat, where a miss is the hot case
 *
 * This program replays that pattern on any directory (a mooncakefs mount, a
 * native huge tmpfs, /dev/shm) so the three can be compared in one run.  It
 * is standalone on purpose: it needs no project header (banned.h only when
 * found) and links nothing but libc and libm.
 *
 * Reads are split the way research/fuse-memory-io.md asks: memory that was
 * just written is slow to read for a second or two on this machine, so the
 * first read of a page is timed twice over, on two halves of the pages:
 *
 *   read-now      even pages, first read, right after the write phase
 *   read-settled  odd pages, first read, after --settle-ms
 *   read-warm     every page again (steady state)
 *
 * Buffers are allocated once, 2 MiB aligned and touched before any timing.
 * Each timed sample covers the system calls of one page (or one stat); the
 * per-page stamping and verification run outside the timed region.
 *
 * Exit status: 0 success, 1 a failed call, a short read or write, wrong
 * content or a missing page, 2 bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The project's banned functions when built in the tree (-I src); the file
 * still builds on its own: gcc -O2 mc-bench-pages.c -lm.
 */
#if __has_include("banned.h")
#include "banned.h"
#endif

#define BUF_ALIGN (2u << 20) /* a transparent huge page */
#define STAMP_LEN 64 /* bytes stamped at start, middle and end */
#define PATH_LEN 4096

enum bench_phase {
	PHASE_ALL,
	PHASE_WRITE,
	PHASE_READ,
	PHASE_STAT,
	PHASE_CREATE_EMPTY,
	PHASE_STAT_HIT,
	PHASE_UNLINK,
};

static const char *const phase_names[] = {
	[PHASE_ALL] = "all",
	[PHASE_WRITE] = "write",
	[PHASE_READ] = "read",
	[PHASE_STAT] = "stat",
	[PHASE_CREATE_EMPTY] = "create-empty",
	[PHASE_STAT_HIT] = "stat-hit",
	[PHASE_UNLINK] = "unlink",
};

/* the name spaces of generated names: pages, and names that never exist */
enum bench_domain {
	DOMAIN_PAGE = 0x50,
	DOMAIN_MISS = 0x4d,
};

struct bench_opts {
	const char *dir;
	const char *label;
	uint64_t pages;
	uint64_t page_size;
	uint64_t rounds;
	uint64_t misses;
	uint64_t sample;
	uint64_t settle_ms;
	uint64_t seed;
	enum bench_phase phase;
	bool page_size_set;
	bool json;
	bool keep;
};

/* the samples of one measured step: latencies and bytes moved */
struct bench_lat {
	const char *name;
	double *us;
	size_t n;
	size_t cap;
	double total_us;
	uint64_t bytes;
	bool has_bytes; /* report GB/s, not only latencies */
};

enum bench_step {
	STEP_WRITE,
	STEP_READ_NOW,
	STEP_READ_SETTLED,
	STEP_READ_WARM,
	STEP_STAT_MISS,
	STEP_CREATE,
	STEP_STAT_HIT,
	STEP_UNLINK,
	STEP_COUNT,
};

/* names as they appear in the table and, with '-' as '_', in the JSON keys */
static const char *const step_names[STEP_COUNT] = {
	[STEP_WRITE] = "write",
	[STEP_READ_NOW] = "read-now",
	[STEP_READ_SETTLED] = "read-settled",
	[STEP_READ_WARM] = "read-warm",
	[STEP_STAT_MISS] = "stat-miss",
	[STEP_CREATE] = "create",
	[STEP_STAT_HIT] = "stat-hit",
	[STEP_UNLINK] = "unlink",
};

struct bench_round {
	struct bench_lat step[STEP_COUNT];
};

struct bench {
	const struct bench_opts *opts;
	unsigned char *wbuf; /* page image written, pre-touched */
	unsigned char *rbuf; /* read target, pre-touched */
	size_t buf_len;
	uint64_t round; /* selects the round's names and contents */
};

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("mc-bench-pages: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(FILE *f)
{
	fputs("usage: mc-bench-pages --dir DIR --pages N --page-size BYTES [options]\n"
	      "\n"
	      "  --dir DIR          directory the pages are made in (must exist)\n"
	      "  --pages N          pages per round\n"
	      "  --page-size SIZE   bytes per page (4194304, 8MiB, 1m; 0 with create-empty)\n"
	      "  --rounds R         rounds, each on fresh names (default 1)\n"
	      "  --phase P          write|read|stat|all (default all), or for scale runs\n"
	      "                     create-empty|stat-hit|unlink\n"
	      "  --settle-ms MS     pause between write and the settled first read\n"
	      "                     (default 2000)\n"
	      "  --misses M         names probed by stat-miss (default: N)\n"
	      "  --sample S         names probed by stat-hit, drawn at random (default 10000)\n"
	      "  --seed S           names and contents seed (default 1)\n"
	      "  --label NAME       target name put in the JSON (default: DIR)\n"
	      "  --keep             leave the pages (default: unlink them at the end,\n"
	      "                     untimed)\n"
	      "  --json             one JSON object per round on stdout\n"
	      "  --help\n"
	      "\n"
	      "Pages are named like SGLang's: <64 hex>_bench_0_1.bin.  Phases:\n"
	      "  write         stat (a miss), open(O_WRONLY|O_CREAT|O_TRUNC), one write(), close\n"
	      "  read          open, fstat, one read() of st_size, close, verify; even pages\n"
	      "                right after writing (read-now), odd pages after --settle-ms\n"
	      "                (read-settled), all pages again (read-warm)\n"
	      "  stat          stat() of M names that do not exist\n"
	      "  all           write, read, stat\n"
	      "  create-empty  open(O_CREAT|O_WRONLY) + close of N pages of --page-size bytes\n"
	      "                (default 0)\n"
	      "  stat-hit      stat() of a random sample of the N pages; all must exist\n"
	      "  unlink        unlink() of the N pages\n",
	      f);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t mix64(uint64_t x)
{
	return splitmix64(&x);
}

/*
 * The key of page @index: distinct indexes give distinct keys within one
 * (seed, round, domain) because an odd multiplier and an addition are
 * bijections mod 2^64, and so is splitmix64's output function.
 */
static uint64_t page_key(const struct bench *b, enum bench_domain domain,
			 uint64_t index)
{
	uint64_t base = mix64(mix64(b->opts->seed) ^ ((uint64_t)domain << 56) ^
			      b->round);

	return base + index * 0xd1342543de82ef95ULL;
}

static void page_path(const struct bench *b, enum bench_domain domain,
		      uint64_t index, char *path, size_t len)
{
	uint64_t state = page_key(b, domain, index);
	uint64_t w[4];
	int i, n;

	for (i = 0; i < 4; i++)
		w[i] = splitmix64(&state);
	n = snprintf(path, len,
		     "%s/%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64
		     "_bench_0_1.bin",
		     b->opts->dir, w[0], w[1], w[2], w[3]);
	if (n < 0 || (size_t)n >= len)
		die("path too long under '%s'", b->opts->dir);
}

/* the byte the page with @key holds at @off, at the stamped offsets */
static unsigned char stamp_byte(uint64_t key, uint64_t off)
{
	return (unsigned char)(mix64(key ^ (off * 0x9e3779b97f4a7c15ULL)) >>
			       56);
}

/* the byte every page holds at @off outside the stamps */
static unsigned char background_byte(uint64_t off)
{
	return (unsigned char)((off * 131u + (off >> 12) * 7u + 29u) & 0xff);
}

/*
 * The stamped ranges of a page of @size bytes: its start, middle and end.
 * They may overlap on small pages, which is harmless: a stamped byte depends
 * only on the page key and its offset.
 */
static void stamp_ranges(uint64_t size, uint64_t start[3], uint64_t end[3])
{
	int k;

	start[0] = 0;
	start[1] = size / 2;
	start[2] = size > STAMP_LEN ? size - STAMP_LEN : 0;
	for (k = 0; k < 3; k++)
		end[k] = start[k] + STAMP_LEN < size ? start[k] + STAMP_LEN :
						       size;
}

static void page_stamp(unsigned char *buf, uint64_t size, uint64_t key)
{
	uint64_t start[3], end[3], off;
	int k;

	stamp_ranges(size, start, end);
	for (k = 0; k < 3; k++)
		for (off = start[k]; off < end[k]; off++)
			buf[off] = stamp_byte(key, off);
}

/* returns the first wrong offset, or UINT64_MAX when the page is right */
static uint64_t page_verify(const unsigned char *buf, uint64_t size,
			    uint64_t key)
{
	uint64_t start[3], end[3], off, probe;
	int k;

	stamp_ranges(size, start, end);
	for (k = 0; k < 3; k++)
		for (off = start[k]; off < end[k]; off++)
			if (buf[off] != stamp_byte(key, off))
				return off;
	/* and a few bytes of the common background between the stamps */
	for (probe = 1; probe <= 3; probe++) {
		off = size * probe / 8 + 8 * probe;
		for (k = 0; k < 3; k++)
			if (off >= start[k] && off < end[k])
				break;
		if (k == 3 && off < size && buf[off] != background_byte(off))
			return off;
	}
	return UINT64_MAX;
}

static void lat_init(struct bench_lat *l, const char *name, size_t cap,
		     bool has_bytes)
{
	l->name = name;
	l->n = 0;
	l->cap = cap;
	l->total_us = 0;
	l->bytes = 0;
	l->has_bytes = has_bytes;
	l->us = cap ? calloc(cap, sizeof(*l->us)) : NULL;
	if (cap && !l->us)
		die("out of memory for %zu samples", cap);
}

static void lat_release(struct bench_lat *l)
{
	free(l->us);
	l->us = NULL;
	l->n = l->cap = 0;
}

static void lat_add(struct bench_lat *l, uint64_t ns, uint64_t bytes)
{
	double us = (double)ns / 1000.0;

	if (l->n == l->cap)
		die("internal: more samples than planned for %s", l->name);
	l->us[l->n++] = us;
	l->total_us += us;
	l->bytes += bytes;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* nearest-rank percentile of the first @n sorted values */
static double percentile(const double *sorted, size_t n, double p)
{
	size_t k;

	if (!n)
		return NAN;
	k = (size_t)ceil(p / 100.0 * (double)n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return sorted[k - 1];
}

struct lat_summary {
	size_t n;
	double gbps; /* NAN when the step moves no bytes */
	double p50_us;
	double p99_us;
	double ops_per_s;
};

static struct lat_summary lat_summarize(const struct bench_lat *l)
{
	struct lat_summary s = { .n = l->n,
				 .gbps = NAN,
				 .p50_us = NAN,
				 .p99_us = NAN,
				 .ops_per_s = NAN };
	double *sorted;

	if (!l->n)
		return s;
	sorted = malloc(l->n * sizeof(*sorted));
	if (!sorted)
		die("out of memory sorting %zu samples", l->n);
	memcpy(sorted, l->us, l->n * sizeof(*sorted));
	qsort(sorted, l->n, sizeof(*sorted), cmp_double);
	s.p50_us = percentile(sorted, l->n, 50);
	s.p99_us = percentile(sorted, l->n, 99);
	free(sorted);
	if (l->total_us > 0) {
		if (l->has_bytes)
			s.gbps = (double)l->bytes / (l->total_us * 1000.0);
		s.ops_per_s = (double)l->n / (l->total_us / 1e6);
	}
	return s;
}

static void *buf_alloc(size_t len, unsigned char fill)
{
	void *p = NULL;
	int r;

	if (!len)
		len = 1;
	r = posix_memalign(&p, BUF_ALIGN, len);
	if (r)
		die("cannot allocate a %zu-byte buffer: %s", len, strerror(r));
	/* huge pages where the system allows them; the same for every target */
	(void)madvise(p, len, MADV_HUGEPAGE);
	memset(p, fill, len); /* touch it: faulting it in must not be timed */
	return p;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void phase_write(struct bench *b, struct bench_lat *l)
{
	const struct bench_opts *o = b->opts;
	char path[PATH_LEN];
	struct stat st;
	uint64_t i, t0, key;
	ssize_t n;
	int fd, stat_r, stat_err, close_r;

	for (i = 0; i < o->pages; i++) {
		page_path(b, DOMAIN_PAGE, i, path, sizeof(path));
		key = page_key(b, DOMAIN_PAGE, i);
		page_stamp(b->wbuf, o->page_size, key);

		t0 = now_ns();
		stat_r = stat(path, &st);
		stat_err = errno;
		if (stat_r == 0)
			die("page '%s' exists before its write: use an empty directory or another --seed",
			    path);
		if (stat_err != ENOENT)
			die("stat '%s': %s", path, strerror(stat_err));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("open '%s' for writing: %s", path, strerror(errno));
		n = write(fd, b->wbuf, o->page_size);
		if (n < 0)
			die("write '%s': %s", path, strerror(errno));
		close_r = close(fd);
		lat_add(l, now_ns() - t0, o->page_size);

		if ((uint64_t)n != o->page_size)
			die("short write to '%s': %zd of %" PRIu64 " bytes",
			    path, n, o->page_size);
		if (close_r < 0)
			die("close '%s' after writing: %s", path,
			    strerror(errno));
	}
}

/* reads pages first, first + step, ... as SGLang's get() does */
static void phase_read(struct bench *b, struct bench_lat *l, uint64_t first,
		       uint64_t step)
{
	const struct bench_opts *o = b->opts;
	char path[PATH_LEN];
	struct stat st;
	uint64_t i, t0, bad, size;
	ssize_t n;
	int fd, fstat_r, fstat_err;

	for (i = first; i < o->pages; i += step) {
		page_path(b, DOMAIN_PAGE, i, path, sizeof(path));

		t0 = now_ns();
		fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open '%s' for reading: %s", path, strerror(errno));
		fstat_r = fstat(fd, &st);
		fstat_err = errno;
		if (fstat_r < 0)
			die("fstat '%s': %s", path, strerror(fstat_err));
		size = (uint64_t)st.st_size;
		if (size > b->buf_len)
			die("page '%s' is %" PRIu64
			    " bytes, more than the %" PRIu64 " written",
			    path, size, o->page_size);
		n = read(fd, b->rbuf, size);
		if (n < 0)
			die("read '%s': %s", path, strerror(errno));
		close(fd);
		lat_add(l, now_ns() - t0, (uint64_t)n);

		/* a short read kills SGLang's prefetch thread for good */
		if ((uint64_t)n != size)
			die("short read of '%s': %zd of st_size %" PRIu64
			    " bytes",
			    path, n, size);
		if (size != o->page_size)
			die("page '%s' is %" PRIu64 " bytes, %" PRIu64
			    " were written",
			    path, size, o->page_size);
		bad = page_verify(b->rbuf, size, page_key(b, DOMAIN_PAGE, i));
		if (bad != UINT64_MAX)
			die("wrong content in '%s' at offset %" PRIu64, path,
			    bad);
	}
}

static void phase_stat_miss(struct bench *b, struct bench_lat *l)
{
	char path[PATH_LEN];
	struct stat st;
	uint64_t i, t0;
	int r, err;

	for (i = 0; i < b->opts->misses; i++) {
		page_path(b, DOMAIN_MISS, i, path, sizeof(path));
		t0 = now_ns();
		r = stat(path, &st);
		err = errno;
		lat_add(l, now_ns() - t0, 0);
		if (r == 0)
			die("'%s' exists, but no page has that name", path);
		if (err != ENOENT)
			die("stat '%s' (a miss): %s", path, strerror(err));
	}
}

static void phase_create_empty(struct bench *b, struct bench_lat *l)
{
	const struct bench_opts *o = b->opts;
	char path[PATH_LEN];
	uint64_t i, t0;
	ssize_t n = 0;
	int fd, close_r;

	for (i = 0; i < o->pages; i++) {
		page_path(b, DOMAIN_PAGE, i, path, sizeof(path));
		if (o->page_size)
			page_stamp(b->wbuf, o->page_size,
				   page_key(b, DOMAIN_PAGE, i));
		t0 = now_ns();
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("create '%s' (page %" PRIu64 "): %s", path, i,
			    strerror(errno));
		if (o->page_size) {
			n = write(fd, b->wbuf, o->page_size);
			if (n < 0)
				die("write '%s': %s", path, strerror(errno));
		}
		close_r = close(fd);
		lat_add(l, now_ns() - t0, o->page_size);
		if ((uint64_t)n != o->page_size)
			die("short write to '%s': %zd of %" PRIu64 " bytes",
			    path, n, o->page_size);
		if (close_r < 0)
			die("close '%s' after creating: %s", path,
			    strerror(errno));
	}
}

/* how many pages stat-hit probes */
static uint64_t sample_count(const struct bench_opts *o)
{
	return o->sample < o->pages ? o->sample : o->pages;
}

static void phase_stat_hit(struct bench *b, struct bench_lat *l)
{
	const struct bench_opts *o = b->opts;
	char path[PATH_LEN];
	struct stat st;
	uint64_t *idx, i, j, k, t0, rng, missing = 0;
	int r, err;

	k = sample_count(o);
	idx = malloc(o->pages * sizeof(*idx));
	if (!idx)
		die("out of memory for %" PRIu64 " indexes", o->pages);
	for (i = 0; i < o->pages; i++)
		idx[i] = i;
	/* a partial Fisher-Yates shuffle draws k distinct pages */
	rng = mix64(o->seed ^ 0x5a5a5a5a5a5a5a5aULL ^ b->round);
	for (i = 0; i < k; i++) {
		j = i + splitmix64(&rng) % (o->pages - i);
		t0 = idx[i];
		idx[i] = idx[j];
		idx[j] = t0;
	}
	for (i = 0; i < k; i++) {
		page_path(b, DOMAIN_PAGE, idx[i], path, sizeof(path));
		t0 = now_ns();
		r = stat(path, &st);
		err = errno;
		lat_add(l, now_ns() - t0, 0);
		if (r < 0 && err == ENOENT) {
			if (!missing++)
				fprintf(stderr,
					"mc-bench-pages: page %" PRIu64
					" '%s' is missing\n",
					idx[i], path);
		} else if (r < 0) {
			die("stat '%s': %s", path, strerror(err));
		} else if ((uint64_t)st.st_size != o->page_size) {
			die("page '%s' is %jd bytes, %" PRIu64 " were written",
			    path, (intmax_t)st.st_size, o->page_size);
		}
	}
	free(idx);
	if (missing)
		die("%" PRIu64 " of %" PRIu64 " sampled pages are missing",
		    missing, k);
}

/* unlinks the round's pages; @l may be NULL (untimed clean-up) */
static void phase_unlink(struct bench *b, struct bench_lat *l, bool must_exist)
{
	char path[PATH_LEN];
	uint64_t i, t0;
	int r, err;

	for (i = 0; i < b->opts->pages; i++) {
		page_path(b, DOMAIN_PAGE, i, path, sizeof(path));
		t0 = now_ns();
		r = unlink(path);
		err = errno;
		if (l)
			lat_add(l, now_ns() - t0, 0);
		if (r < 0 && (err != ENOENT || must_exist))
			die("unlink '%s': %s", path, strerror(err));
	}
}

static void round_init(struct bench_round *rd, const struct bench_opts *o)
{
	enum bench_phase p = o->phase;
	bool w = p == PHASE_ALL || p == PHASE_WRITE;
	bool r = p == PHASE_ALL || p == PHASE_READ;
	bool s = p == PHASE_ALL || p == PHASE_STAT;
	uint64_t cap[STEP_COUNT] = {
		[STEP_WRITE] = w ? o->pages : 0,
		[STEP_READ_NOW] = r ? (o->pages + 1) / 2 : 0,
		[STEP_READ_SETTLED] = r ? o->pages / 2 : 0,
		[STEP_READ_WARM] = r ? o->pages : 0,
		[STEP_STAT_MISS] = s ? o->misses : 0,
		[STEP_CREATE] = p == PHASE_CREATE_EMPTY ? o->pages : 0,
		[STEP_STAT_HIT] = p == PHASE_STAT_HIT ? sample_count(o) : 0,
		[STEP_UNLINK] = p == PHASE_UNLINK ? o->pages : 0,
	};
	bool bytes;
	int k;

	for (k = 0; k < STEP_COUNT; k++) {
		bytes = k <= STEP_READ_WARM ||
			(k == STEP_CREATE && o->page_size);
		lat_init(&rd->step[k], step_names[k], cap[k], bytes);
	}
}

static void round_release(struct bench_round *rd)
{
	int k;

	for (k = 0; k < STEP_COUNT; k++)
		lat_release(&rd->step[k]);
}

static void round_run(struct bench *b, struct bench_round *rd)
{
	const struct bench_opts *o = b->opts;
	enum bench_phase p = o->phase;

	if (p == PHASE_ALL || p == PHASE_WRITE)
		phase_write(b, &rd->step[STEP_WRITE]);
	if (p == PHASE_ALL || p == PHASE_READ) {
		phase_read(b, &rd->step[STEP_READ_NOW], 0, 2);
		if (o->settle_ms)
			sleep_ms(o->settle_ms);
		phase_read(b, &rd->step[STEP_READ_SETTLED], 1, 2);
		phase_read(b, &rd->step[STEP_READ_WARM], 0, 1);
	}
	if (p == PHASE_ALL || p == PHASE_STAT)
		phase_stat_miss(b, &rd->step[STEP_STAT_MISS]);
	if (p == PHASE_CREATE_EMPTY)
		phase_create_empty(b, &rd->step[STEP_CREATE]);
	if (p == PHASE_STAT_HIT)
		phase_stat_hit(b, &rd->step[STEP_STAT_HIT]);
	if (p == PHASE_UNLINK)
		phase_unlink(b, &rd->step[STEP_UNLINK], true);
	else if (!o->keep && p != PHASE_STAT)
		phase_unlink(b, NULL, false);
}

/* prints a JSON number, or null for a value that was not measured */
static void json_num(const char *key, double v, int decimals)
{
	printf(",\"%s\":", key);
	if (isnan(v))
		fputs("null", stdout);
	else
		printf("%.*f", decimals, v);
}

static void json_key(char *key, size_t len, const char *step, const char *what)
{
	size_t i;

	snprintf(key, len, "%s_%s", step, what);
	for (i = 0; key[i]; i++)
		if (key[i] == '-')
			key[i] = '_';
}

static void round_print_json(const struct bench_round *rd,
			     const struct bench_opts *o, uint64_t round)
{
	struct lat_summary s;
	char key[64];
	const char *c;
	int k;

	fputs("{\"label\":\"", stdout);
	for (c = o->label; *c; c++) {
		if (*c == '"' || *c == '\\')
			putchar('\\');
		if ((unsigned char)*c >= 0x20)
			putchar(*c);
	}
	printf("\",\"phase\":\"%s\",\"round\":%" PRIu64 ",\"pages\":%" PRIu64
	       ",\"page_size\":%" PRIu64 ",\"settle_ms\":%" PRIu64,
	       phase_names[o->phase], round, o->pages, o->page_size,
	       o->settle_ms);
	for (k = 0; k < STEP_COUNT; k++) {
		if (!rd->step[k].cap)
			continue;
		s = lat_summarize(&rd->step[k]);
		json_key(key, sizeof(key), step_names[k], "n");
		printf(",\"%s\":%zu", key, s.n);
		if (rd->step[k].has_bytes) {
			json_key(key, sizeof(key), step_names[k], "gbps");
			json_num(key, s.gbps, 3);
		}
		json_key(key, sizeof(key), step_names[k], "ops");
		json_num(key, s.ops_per_s, 0);
		json_key(key, sizeof(key), step_names[k], "p50_us");
		json_num(key, s.p50_us, 1);
		json_key(key, sizeof(key), step_names[k], "p99_us");
		json_num(key, s.p99_us, 1);
	}
	puts("}");
}

static void print_cell(double v, int decimals)
{
	if (isnan(v))
		printf(" %10s", "-");
	else
		printf(" %10.*f", decimals, v);
}

static void round_print_text(const struct bench_round *rd,
			     const struct bench_opts *o, uint64_t round)
{
	struct lat_summary s;
	int k;

	printf("%s: round %" PRIu64 ", %" PRIu64 " pages of %" PRIu64
	       " bytes, settle %" PRIu64 " ms\n",
	       o->label, round, o->pages, o->page_size, o->settle_ms);
	printf("  %-13s %8s %10s %10s %10s %10s\n", "step", "n", "GB/s",
	       "ops/s", "p50 us", "p99 us");
	for (k = 0; k < STEP_COUNT; k++) {
		if (!rd->step[k].cap)
			continue;
		s = lat_summarize(&rd->step[k]);
		printf("  %-13s %8zu", step_names[k], s.n);
		print_cell(s.gbps, 2);
		print_cell(s.ops_per_s, 0);
		print_cell(s.p50_us, 1);
		print_cell(s.p99_us, 1);
		putchar('\n');
	}
}

/* parses 4194304, 8MiB, 8m, 4gb, 64KiB: the suffixes are powers of 1024 */
static int parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {
		{ "", 0 },     { "b", 0 },    { "k", 10 },   { "kb", 10 },
		{ "kib", 10 }, { "m", 20 },   { "mb", 20 },  { "mib", 20 },
		{ "g", 30 },   { "gb", 30 },  { "gib", 30 }, { "t", 40 },
		{ "tb", 40 },  { "tib", 40 },
	};
	unsigned long long v;
	char *end;
	size_t i;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix))
			continue;
		if (units[i].shift && v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		*out = (uint64_t)v << units[i].shift;
		return 0;
	}
	return -EINVAL;
}

static uint64_t opt_size(const char *name, const char *arg)
{
	uint64_t v;

	if (parse_size(arg, &v) < 0) {
		fprintf(stderr,
			"mc-bench-pages: bad %s '%s': give bytes, or a number with "
			"k, m, g (KiB, MiB, GiB)\n",
			name, arg);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum {
		O_DIR = 256,
		O_PAGES,
		O_PAGE_SIZE,
		O_ROUNDS,
		O_PHASE,
		O_SETTLE,
		O_MISSES,
		O_SAMPLE,
		O_SEED,
		O_LABEL,
		O_KEEP,
		O_JSON,
		O_HELP
	};
	static const struct option longopts[] = {
		{ "dir", required_argument, NULL, O_DIR },
		{ "pages", required_argument, NULL, O_PAGES },
		{ "page-size", required_argument, NULL, O_PAGE_SIZE },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "phase", required_argument, NULL, O_PHASE },
		{ "settle-ms", required_argument, NULL, O_SETTLE },
		{ "misses", required_argument, NULL, O_MISSES },
		{ "sample", required_argument, NULL, O_SAMPLE },
		{ "seed", required_argument, NULL, O_SEED },
		{ "label", required_argument, NULL, O_LABEL },
		{ "keep", no_argument, NULL, O_KEEP },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	bool misses_set = false;
	struct stat st;
	size_t i;
	int c;

	*o = (struct bench_opts){ .rounds = 1,
				  .settle_ms = 2000,
				  .sample = 10000,
				  .seed = 1,
				  .phase = PHASE_ALL };
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_DIR:
			o->dir = optarg;
			break;
		case O_PAGES:
			o->pages = opt_size("--pages", optarg);
			break;
		case O_PAGE_SIZE:
			o->page_size = opt_size("--page-size", optarg);
			o->page_size_set = true;
			break;
		case O_ROUNDS:
			o->rounds = opt_size("--rounds", optarg);
			break;
		case O_PHASE:
			for (i = 0;
			     i < sizeof(phase_names) / sizeof(phase_names[0]);
			     i++)
				if (!strcmp(optarg, phase_names[i]))
					break;
			if (i == sizeof(phase_names) / sizeof(phase_names[0])) {
				fprintf(stderr,
					"mc-bench-pages: bad --phase '%s': use write, read, "
					"stat, all, create-empty, stat-hit or unlink\n",
					optarg);
				exit(2);
			}
			o->phase = (enum bench_phase)i;
			break;
		case O_SETTLE:
			o->settle_ms = opt_size("--settle-ms", optarg);
			break;
		case O_MISSES:
			o->misses = opt_size("--misses", optarg);
			misses_set = true;
			break;
		case O_SAMPLE:
			o->sample = opt_size("--sample", optarg);
			break;
		case O_SEED:
			o->seed = opt_size("--seed", optarg);
			break;
		case O_LABEL:
			o->label = optarg;
			break;
		case O_KEEP:
			o->keep = true;
			break;
		case O_JSON:
			o->json = true;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mc-bench-pages: unexpected argument '%s'\n",
			argv[optind]);
		exit(2);
	}
	if (!o->dir || !o->pages) {
		fprintf(stderr,
			"mc-bench-pages: --dir and a nonzero --pages are required "
			"(see --help)\n");
		exit(2);
	}
	if (!o->page_size && o->phase != PHASE_CREATE_EMPTY &&
	    o->phase != PHASE_STAT && o->phase != PHASE_STAT_HIT &&
	    o->phase != PHASE_UNLINK) {
		fprintf(stderr,
			"mc-bench-pages: --page-size must be nonzero for --phase %s\n",
			phase_names[o->phase]);
		exit(2);
	}
	if (o->page_size > SIZE_MAX / 2 || !o->rounds) {
		fprintf(stderr,
			"mc-bench-pages: --page-size too big or --rounds 0\n");
		exit(2);
	}
	if (stat(o->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"mc-bench-pages: --dir '%s' is not a directory\n",
			o->dir);
		exit(2);
	}
	if (!misses_set)
		o->misses = o->pages;
	if (!o->label)
		o->label = o->dir;
}

int main(int argc, char **argv)
{
	struct bench_round rd;
	struct bench_opts o;
	struct bench b;
	size_t off;

	parse_args(argc, argv, &o);
	b = (struct bench){ .opts = &o, .buf_len = (size_t)o.page_size };
	b.wbuf = buf_alloc(b.buf_len, 0);
	b.rbuf = buf_alloc(b.buf_len, 0xff);
	for (off = 0; off < b.buf_len; off++)
		b.wbuf[off] = background_byte(off);

	for (b.round = 0; b.round < o.rounds; b.round++) {
		round_init(&rd, &o);
		round_run(&b, &rd);
		if (o.json)
			round_print_json(&rd, &o, b.round);
		else
			round_print_text(&rd, &o, b.round);
		fflush(stdout);
		round_release(&rd);
	}
	free(b.wbuf);
	free(b.rbuf);
	return 0;
}
