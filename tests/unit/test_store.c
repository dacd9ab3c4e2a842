/*
 * test_store.c - the store as the master sees it: copies in segments,
 * eviction per segment, moving copies, lost segments, holdings, the
 * segment registry, re-replication and the migration from schema
 * version 1.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "banned.h"

#define ROOT MC_NS_ROOT_INO
#define SEG_A 2
#define SEG_B 3
#define SEG_C 4

static struct mc_store *open_mem(void)
{
	struct mc_store *st = (struct mc_store *)1;

	ck_assert_int_eq(mc_store_open(&st, ":memory:"), 0);
	ck_assert_ptr_nonnull(st);
	return st;
}

/* A page committed in segment; its attributes in *a when a is not NULL. */
static uint64_t put(struct mc_store *st, uint64_t segment, const char *name,
		    uint64_t size, uint64_t mtime_ns, struct mc_ns_attr *a)
{
	struct mc_ns_commit c = {
		.parent = ROOT,
		.name = name,
		.mode = S_IFREG | 0644,
		.size = size,
		.mtime_ns = mtime_ns,
		.crc32c = 0xc0ffee00u + (uint32_t)size,
	};

	ck_assert_int_eq(mc_store_reserve(st, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_store_commit(st, &c, segment, NULL), 0);
	if (a)
		ck_assert_int_eq(mc_store_getattr(st, c.ino, a), 0);
	return c.page_id;
}

static uint64_t page_of(struct mc_store *st, const char *name)
{
	struct mc_ns_attr a;

	ck_assert_int_eq(mc_store_lookup(st, ROOT, name, &a), 0);
	return a.page_id;
}

static bool visible(struct mc_store *st, const char *name)
{
	struct mc_ns_attr a;
	int r = mc_store_lookup(st, ROOT, name, &a);

	ck_assert(r == 0 || r == -ENOENT);
	return r == 0;
}

/* The segments holding page_id, sorted, in seg[]; returns how many. */
static unsigned copies(struct mc_store *st, uint64_t page_id,
		       uint64_t seg[MC_NS_MAX_REPLICAS])
{
	uint64_t size;
	uint32_t crc;
	unsigned n = 99;
	int r = mc_store_replicas(st, page_id, &size, &crc, seg,
				  MC_NS_MAX_REPLICAS, &n);

	if (r == -ENOENT) {
		ck_assert_uint_eq(n, 0);
		return 0;
	}
	ck_assert_int_eq(r, 0);
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && seg[j - 1] > seg[j]; j--) {
			uint64_t t = seg[j];

			seg[j] = seg[j - 1];
			seg[j - 1] = t;
		}
	return n;
}

/* What callbacks were given. */
struct seen {
	size_t n;
	struct mc_ns_dropped d[64];
	struct mc_store *st;
};

static void seen_fn(void *ctx, const struct mc_ns_dropped *d)
{
	struct seen *s = ctx;

	ck_assert_uint_lt(s->n, 64);
	s->d[s->n++] = *d;
}

struct ids {
	size_t n;
	uint64_t id[64];
	unsigned copies[64];
};

static void unknown_fn(void *ctx, uint64_t page_id)
{
	struct ids *u = ctx;

	ck_assert_uint_lt(u->n, 64);
	u->id[u->n++] = page_id;
}

/* --------------------------------------------------------------- copies */

START_TEST(commit_records_one_copy_in_its_segment_and_the_checksum)
{
	struct mc_store *st = open_mem();
	struct mc_ns_commit c = {
		.parent = ROOT,
		.name = "p",
		.mode = S_IFREG | 0600,
		.size = 4096,
		.mtime_ns = 5,
		.crc32c = 0xdeadbeef,
	};
	uint64_t seg[MC_NS_MAX_REPLICAS], size = 0;
	uint32_t crc = 0;
	unsigned n = 0;

	ck_assert_int_eq(mc_store_reserve(st, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_store_commit(st, &c, SEG_A, NULL), 0);
	ck_assert_int_eq(mc_store_replicas(st, c.page_id, &size, &crc, seg,
					   MC_NS_MAX_REPLICAS, &n),
			 0);
	ck_assert_uint_eq(size, 4096);
	ck_assert_uint_eq(crc, 0xdeadbeef);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(seg[0], SEG_A);
	mc_store_close(st);
}
END_TEST

START_TEST(commit_in_segment_0_gives_einval)
{
	struct mc_store *st = open_mem();
	struct mc_ns_commit c = { .parent = ROOT, .name = "p" };

	ck_assert_int_eq(mc_store_reserve(st, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_store_commit(st, &c, 0, NULL), -EINVAL);
	ck_assert(!visible(st, "p"));
	ck_assert_int_eq(mc_store_add_replica(st, 1, 0), -EINVAL);
	mc_store_close(st);
}
END_TEST

START_TEST(replicas_lists_every_segment_holding_a_copy)
{
	struct mc_store *st = open_mem();
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);
	uint64_t seg[MC_NS_MAX_REPLICAS];
	unsigned n;

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_C), 0);
	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	/* a copy it already has is no error and no second row */
	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_uint_eq(copies(st, p, seg), 3);
	ck_assert_uint_eq(seg[0], SEG_A);
	ck_assert_uint_eq(seg[1], SEG_B);
	ck_assert_uint_eq(seg[2], SEG_C);
	/* at most max of them */
	ck_assert_int_eq(mc_store_replicas(st, p, NULL, NULL, seg, 2, &n), 0);
	ck_assert_uint_eq(n, 2);
	mc_store_close(st);
}
END_TEST

START_TEST(add_replica_of_a_gone_page_gives_enoent)
{
	struct mc_store *st = open_mem();
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);
	uint64_t seg[MC_NS_MAX_REPLICAS];

	ck_assert_int_eq(mc_store_unlink(st, ROOT, "p", NULL), 0);
	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), -ENOENT);
	ck_assert_uint_eq(copies(st, p, seg), 0);
	/* nor of one never committed */
	ck_assert_int_eq(mc_store_add_replica(st, 123456, SEG_B), -ENOENT);
	mc_store_close(st);
}
END_TEST

START_TEST(unlink_rename_and_commit_report_every_segment_of_the_dropped_page)
{
	struct mc_store *st = open_mem();
	struct mc_ns_dropped d = { .nsegments = 7 };
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_commit c = { .parent = ROOT, .name = "q", .size = 3 };

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_int_eq(mc_store_unlink(st, ROOT, "p", &d), 0);
	ck_assert_uint_eq(d.page_id, p);
	ck_assert_uint_eq(d.flags, 0);
	ck_assert_uint_eq(d.nsegments, 2);
	ck_assert_uint_eq(d.segments[0] + d.segments[1], SEG_A + SEG_B);
	ck_assert_uint_eq(copies(st, p, seg), 0);

	/* rename over a page */
	p = put(st, SEG_C, "p", 10, 1, NULL);
	put(st, SEG_A, "x", 10, 1, NULL);
	ck_assert_int_eq(mc_store_rename(st, ROOT, "x", ROOT, "p", 0, &d), 0);
	ck_assert_uint_eq(d.page_id, p);
	ck_assert_uint_eq(d.nsegments, 1);
	ck_assert_uint_eq(d.segments[0], SEG_C);
	ck_assert_uint_eq(copies(st, p, seg), 0);

	/* commit over a page */
	p = page_of(st, "p");
	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_C), 0);
	c.name = "p";
	ck_assert_int_eq(mc_store_reserve(st, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_store_commit(st, &c, SEG_B, &d), 0);
	ck_assert_uint_eq(d.page_id, p);
	ck_assert_uint_eq(d.nsegments, 2);
	ck_assert_uint_eq(d.segments[0] + d.segments[1], SEG_A + SEG_C);
	ck_assert_uint_eq(copies(st, p, seg), 0);
	ck_assert_uint_eq(copies(st, c.page_id, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);

	/* nothing dropped: nothing named */
	ck_assert_int_eq(mc_store_unlink(st, ROOT, "nope", &d), -ENOENT);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_uint_eq(d.nsegments, 0);
	mc_store_close(st);
}
END_TEST

/* ------------------------------------------------------- batched commits */

/* An item for name under parent in segment, with fresh numbers from st. */
static struct mc_store_commit_item item(struct mc_store *st, uint64_t parent,
					const char *name, uint64_t segment,
					uint64_t size)
{
	struct mc_store_commit_item it = {
		.c = {
			.parent = parent,
			.name = name,
			.mode = S_IFREG | 0644,
			.size = size,
			.mtime_ns = size,
			.crc32c = (uint32_t)size,
		},
		.segment = segment,
		.status = 99,
		.replaced = { .ino = 77, .nsegments = 5 },
	};

	ck_assert_int_eq(mc_store_reserve(st, &it.c.ino, &it.c.page_id), 0);
	return it;
}

START_TEST(a_batch_commits_good_items_around_refused_ones)
{
	struct mc_store *st = open_mem();
	struct mc_store_commit_item it[8];
	struct mc_ns_attr d, pg, a;
	struct mc_ns_stats stats;
	uint64_t seg[MC_NS_MAX_REPLICAS];

	ck_assert_int_eq(mc_store_mkdir(st, ROOT, "dir", 0755, 0, 0, &d), 0);
	put(st, SEG_A, "page", 5, 1, &pg);
	it[0] = item(st, ROOT, "a", SEG_A, 10);
	it[1] = item(st, ROOT, "dir", SEG_A, 10);
	it[2] = item(st, 999999, "b", SEG_A, 10);
	it[3] = item(st, pg.ino, "c", SEG_A, 10);
	it[4] = it[0];
	it[5] = item(st, d.ino, "e", 0, 10);
	it[6] = item(st, ROOT, "..", SEG_A, 10);
	it[7] = item(st, d.ino, "f", SEG_B, 20);
	ck_assert_uint_eq(mc_store_commit_batch(st, it, 8), 2);
	ck_assert_int_eq(it[0].status, 0);
	ck_assert_int_eq(it[1].status, -EISDIR);
	ck_assert_int_eq(it[2].status, -ENOENT);
	ck_assert_int_eq(it[3].status, -ENOTDIR);
	/* the same inode again, as a retried COMMIT would send it */
	ck_assert_int_eq(it[4].status, -EEXIST);
	ck_assert_int_eq(it[5].status, -EINVAL);
	ck_assert_int_eq(it[6].status, -EINVAL);
	ck_assert_int_eq(it[7].status, 0);
	for (int i = 0; i < 8; i++) {
		ck_assert_uint_eq(it[i].replaced.ino, 0);
		ck_assert_uint_eq(it[i].replaced.nsegments, 0);
	}
	ck_assert_int_eq(mc_store_lookup(st, ROOT, "a", &a), 0);
	ck_assert_uint_eq(a.ino, it[0].c.ino);
	ck_assert_int_eq(mc_store_lookup(st, d.ino, "f", &a), 0);
	ck_assert_uint_eq(copies(st, a.page_id, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	ck_assert(!visible(st, "b"));
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 3);
	ck_assert_uint_eq(stats.bytes, 35);
	ck_assert_uint_eq(stats.dirs, 2);
	mc_store_close(st);
}
END_TEST

START_TEST(a_batch_reports_what_each_item_replaced_earlier_items_included)
{
	struct mc_store *st = open_mem();
	struct mc_store_commit_item it[3];
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_stats stats;
	struct mc_ns_attr a;

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	it[0] = item(st, ROOT, "p", SEG_C, 20);
	it[1] = item(st, ROOT, "p", SEG_A, 30);
	it[2] = item(st, ROOT, "q", SEG_A, 40);
	ck_assert_uint_eq(mc_store_commit_batch(st, it, 3), 3);
	ck_assert_uint_eq(it[0].replaced.page_id, p);
	ck_assert_uint_eq(it[0].replaced.flags, 0);
	ck_assert_uint_eq(it[0].replaced.nsegments, 2);
	ck_assert_uint_eq(it[0].replaced.segments[0] +
				  it[0].replaced.segments[1],
			  SEG_A + SEG_B);
	/* the second replaced the first, made in the same transaction */
	ck_assert_uint_eq(it[1].replaced.ino, it[0].c.ino);
	ck_assert_uint_eq(it[1].replaced.page_id, it[0].c.page_id);
	ck_assert_uint_eq(it[1].replaced.size, 20);
	ck_assert_str_eq(it[1].replaced.name, "p");
	ck_assert_uint_eq(it[1].replaced.nsegments, 1);
	ck_assert_uint_eq(it[1].replaced.segments[0], SEG_C);
	ck_assert_uint_eq(it[2].replaced.ino, 0);
	ck_assert_uint_eq(copies(st, p, seg), 0);
	ck_assert_uint_eq(copies(st, it[0].c.page_id, seg), 0);
	ck_assert_int_eq(mc_store_lookup(st, ROOT, "p", &a), 0);
	ck_assert_uint_eq(a.ino, it[1].c.ino);
	ck_assert_uint_eq(copies(st, a.page_id, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_A);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 2);
	ck_assert_uint_eq(stats.bytes, 70);
	mc_store_close(st);
}
END_TEST

#define SCRIPT_N 300

/* The script of a_batch_ends_as_n_single_commits_would: item i. */
static struct mc_store_commit_item
script_item(struct mc_store *st, int i, uint64_t dir, char *name, size_t len,
	    const struct mc_store_commit_item *prev)
{
	static const uint64_t segs[] = { SEG_A, SEG_B, SEG_C, 0 };
	uint64_t parent = i % 5 == 0 ? dir : i % 41 == 0 ? 424242 : ROOT;

	/* names collide often, so items replace pages, earlier ones too */
	snprintf(name, len, "n%d", i % 37);
	/* now and then a retry of the item before: EEXIST */
	if (prev && i % 11 == 0)
		return *prev;
	return item(st, parent, i % 53 == 0 ? "d" : name, segs[i % 23 % 4],
		    (uint64_t)i + 1);
}

START_TEST(a_batch_ends_as_n_single_commits_would)
{
	struct mc_store *one = open_mem(), *all = open_mem();
	struct mc_store_commit_item *it = calloc(SCRIPT_N, sizeof(*it));
	char (*names)[16] = calloc(SCRIPT_N, sizeof(*names));
	struct mc_ns_stats s1, s2;
	struct mc_ns_attr d1, d2, a1, a2;
	struct mc_ns_dropped d;
	size_t ok = 0;

	ck_assert_int_eq(mc_store_mkdir(one, ROOT, "d", 0755, 0, 0, &d1), 0);
	ck_assert_int_eq(mc_store_mkdir(all, ROOT, "d", 0755, 0, 0, &d2), 0);
	ck_assert_uint_eq(d1.ino, d2.ino);
	put(one, SEG_A, "n1", 1, 1, NULL);
	put(all, SEG_A, "n1", 1, 1, NULL);
	/* the same script, numbers from `all`: both stores hand out alike */
	for (int i = 0; i < SCRIPT_N; i++)
		it[i] = script_item(all, i, d2.ino, names[i], sizeof(names[i]),
				    i ? &it[i - 1] : NULL);
	ck_assert_uint_gt(mc_store_commit_batch(all, it, SCRIPT_N), 0);
	for (int i = 0; i < SCRIPT_N; i++) {
		int r = mc_store_commit(one, &it[i].c, it[i].segment, &d);

		ck_assert_int_eq(it[i].status, r);
		ck_assert_uint_eq(it[i].replaced.ino, d.ino);
		ck_assert_uint_eq(it[i].replaced.page_id, d.page_id);
		ck_assert_uint_eq(it[i].replaced.nsegments, d.nsegments);
		if (d.nsegments)
			ck_assert_uint_eq(it[i].replaced.segments[0],
					  d.segments[0]);
		ok += r == 0;
	}
	/* the script has every kind of outcome */
	ck_assert_uint_gt(ok, SCRIPT_N / 2);
	ck_assert_uint_lt(ok, SCRIPT_N);
	for (int i = 0; i < 37; i++) {
		char name[16];

		snprintf(name, sizeof(name), "n%d", i);
		for (int k = 0; k < 2; k++) {
			uint64_t parent = k ? d1.ino : ROOT;
			int r1 = mc_store_lookup(one, parent, name, &a1);
			int r2 = mc_store_lookup(all, parent, name, &a2);

			ck_assert_int_eq(r1, r2);
			if (r1 == 0) {
				ck_assert_uint_eq(a1.ino, a2.ino);
				ck_assert_uint_eq(a1.page_id, a2.page_id);
				ck_assert_uint_eq(a1.size, a2.size);
			}
		}
	}
	mc_store_get_stats(one, &s1);
	mc_store_get_stats(all, &s2);
	ck_assert_uint_eq(s1.pages, s2.pages);
	ck_assert_uint_eq(s1.bytes, s2.bytes);
	ck_assert_uint_eq(s1.dirs, s2.dirs);
	free(names);
	free(it);
	mc_store_close(one);
	mc_store_close(all);
}
END_TEST

START_TEST(a_write_failing_mid_batch_rolls_back_only_that_item)
{
	struct mc_store *st = open_mem();
	struct mc_store_commit_item it[4];
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_stats stats;
	struct mc_ns_attr p, a;

	put(st, SEG_A, "p", 10, 1, &p);
	it[0] = item(st, ROOT, "a", SEG_A, 1);
	/*
	 * Over "p" with the inode of "a": the old page is gone before the
	 * insert finds the inode taken, so only a rollback brings "p" back.
	 */
	it[1] = item(st, ROOT, "p", SEG_A, 2);
	it[1].c.ino = it[0].c.ino;
	it[2] = item(st, ROOT, "b", SEG_B, 3);
	/* the page id of "b" again, in its segment: the copy's key is taken */
	it[3] = item(st, ROOT, "c", SEG_B, 4);
	it[3].c.page_id = it[2].c.page_id;
	ck_assert_uint_eq(mc_store_commit_batch(st, it, 4), 2);
	ck_assert_int_eq(it[0].status, 0);
	ck_assert_int_eq(it[1].status, -EEXIST);
	ck_assert_uint_eq(it[1].replaced.ino, 0);
	ck_assert_int_eq(it[2].status, 0);
	ck_assert_int_eq(it[3].status, -EEXIST);
	ck_assert_int_eq(mc_store_lookup(st, ROOT, "p", &a), 0);
	ck_assert_uint_eq(a.ino, p.ino);
	ck_assert_uint_eq(copies(st, p.page_id, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_A);
	ck_assert(visible(st, "a") && visible(st, "b") && !visible(st, "c"));
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 3);
	ck_assert_uint_eq(stats.bytes, 14);
	mc_store_close(st);
}
END_TEST

START_TEST(a_new_store_root_belongs_to_the_owner_asked_for)
{
	struct mc_store *st;
	struct mc_ns_attr a;

	ck_assert_int_eq(mc_store_open_owned(&st, ":memory:", 1234, 5678), 0);
	ck_assert_int_eq(mc_store_getattr(st, MC_NS_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.uid, 1234);
	ck_assert_uint_eq(a.gid, 5678);
	mc_store_close(st);
	/* a master's store: root's, whoever runs it */
	st = open_mem();
	ck_assert_int_eq(mc_store_getattr(st, MC_NS_ROOT_INO, &a), 0);
	ck_assert_uint_eq(a.uid, 0);
	ck_assert_uint_eq(a.gid, 0);
	mc_store_close(st);
}
END_TEST

START_TEST(an_empty_batch_commits_nothing)
{
	struct mc_store *st = open_mem();
	struct mc_ns_stats stats;

	ck_assert_uint_eq(mc_store_commit_batch(st, NULL, 0), 0);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 0);
	mc_store_close(st);
}
END_TEST

/* ------------------------------------------------------------- eviction */

START_TEST(evict_in_one_segment_leaves_another_segments_pages_alone)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_stats stats;

	/* B's pages are the oldest: a global LRU would take them first */
	put(st, SEG_B, "b0", 100, 1, NULL);
	put(st, SEG_B, "b1", 100, 2, NULL);
	put(st, SEG_A, "a0", 100, 10, NULL);
	put(st, SEG_A, "a1", 100, 11, NULL);
	put(st, SEG_A, "a2", 100, 12, NULL);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 150, 1, seen_fn, s), 200);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_str_eq(s->d[0].name, "a0");
	ck_assert_str_eq(s->d[1].name, "a1");
	ck_assert_uint_eq(s->d[0].nsegments, 1);
	ck_assert_uint_eq(s->d[0].segments[0], SEG_A);
	ck_assert(visible(st, "b0") && visible(st, "b1") && visible(st, "a2"));
	/* everything of A, and nothing more */
	ck_assert_int_eq(mc_store_evict(st, SEG_A, UINT64_MAX, 1, seen_fn, s),
			 100);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, UINT64_MAX, 1, seen_fn, s),
			 0);
	ck_assert(visible(st, "b0") && visible(st, "b1"));
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 2);
	ck_assert_uint_eq(stats.evictions, 3);
	ck_assert_uint_eq(stats.evicted_bytes, 300);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(evicting_one_of_two_copies_drops_only_the_copy)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_stats stats;
	struct mc_ns_attr a, b;
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t p = put(st, SEG_A, "p", 1000, 7, &a);

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 1, 4096, seen_fn, s), 4096);
	ck_assert_uint_eq(s->n, 1);
	ck_assert_uint_eq(s->d[0].flags, MC_NS_DROPPED_COPY);
	/* filled in all the same: the caller frees memory and caches by it */
	ck_assert_uint_eq(s->d[0].ino, a.ino);
	ck_assert_uint_eq(s->d[0].parent, ROOT);
	ck_assert_uint_eq(s->d[0].page_id, p);
	ck_assert_uint_eq(s->d[0].size, 1000);
	ck_assert_uint_eq(s->d[0].attr.mtime_ns, 7);
	ck_assert_str_eq(s->d[0].name, "p");
	ck_assert_uint_eq(s->d[0].nsegments, 1);
	ck_assert_uint_eq(s->d[0].segments[0], SEG_A);
	/* the page stays, held by B only */
	ck_assert_int_eq(mc_store_getattr(st, a.ino, &b), 0);
	ck_assert_uint_eq(copies(st, p, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 1);
	ck_assert_uint_eq(stats.evictions, 0);
	/* A has nothing left to give */
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 1, 1, seen_fn, s), 0);

	/* the last copy's eviction takes the page */
	ck_assert_int_eq(mc_store_evict(st, SEG_B, 1, 1, seen_fn, s), 1000);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_uint_eq(s->d[1].flags, 0);
	ck_assert_uint_eq(s->d[1].segments[0], SEG_B);
	ck_assert_int_eq(mc_store_getattr(st, a.ino, &b), -ENOENT);
	ck_assert_uint_eq(copies(st, p, seg), 0);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 0);
	ck_assert_uint_eq(stats.bytes, 0);
	ck_assert_uint_eq(stats.evictions, 1);
	ck_assert_uint_eq(stats.evicted_bytes, 1000);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(eviction_skips_pinned_pages_in_the_segment)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_attr a;

	put(st, SEG_A, "old", 10, 1, &a);
	mc_store_pin(st, a.ino);
	put(st, SEG_A, "new", 10, 2, NULL);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, UINT64_MAX, 1, seen_fn, s),
			 10);
	ck_assert_uint_eq(s->n, 1);
	ck_assert_str_eq(s->d[0].name, "new");
	ck_assert(visible(st, "old"));
	mc_store_unpin(st, a.ino);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, UINT64_MAX, 1, seen_fn, s),
			 10);
	ck_assert(!visible(st, "old"));
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(touches_and_utimes_move_every_copy_in_its_segments_lru)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_attr a0, a1, in = { .atime_ns = 500 };
	uint64_t p0 = put(st, SEG_A, "p0", 10, 1, &a0);
	uint64_t p1 = put(st, SEG_A, "p1", 10, 2, &a1);

	ck_assert_int_eq(mc_store_add_replica(st, p0, SEG_B), 0);
	ck_assert_int_eq(mc_store_add_replica(st, p1, SEG_B), 0);
	/* p0 was oldest; now p1 is, in both segments */
	ck_assert_int_eq(mc_store_touch(st, a0.ino, 100), 0);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 1, 1, seen_fn, s), 10);
	ck_assert_uint_eq(s->d[0].page_id, p1);
	ck_assert_int_eq(mc_store_evict(st, SEG_B, 1, 1, seen_fn, s), 10);
	ck_assert_uint_eq(s->d[1].page_id, p1);
	ck_assert_uint_eq(s->d[1].flags, 0);

	/* setattr of atime moves the copies too */
	put(st, SEG_A, "p2", 10, 50, NULL);
	ck_assert_int_eq(mc_store_setattr(st, a0.ino, MC_NS_SET_ATIME, &in,
					  &a0),
			 0);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 1, 1, seen_fn, s), 10);
	ck_assert_str_eq(s->d[2].name, "p2");
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(pins_and_touches_of_a_dropped_page_are_harmless)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_attr a;

	put(st, SEG_A, "p", 10, 1, &a);
	mc_store_pin(st, a.ino);
	ck_assert_int_eq(mc_store_unlink(st, ROOT, "p", NULL), 0);
	ck_assert_int_eq(mc_store_touch(st, a.ino, 99), 0);
	ck_assert_int_eq(mc_store_flush_touches(st), 0);
	put(st, SEG_A, "q", 10, 2, NULL);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, UINT64_MAX, 1, seen_fn, s),
			 10);
	ck_assert_uint_eq(s->n, 1);
	ck_assert_str_eq(s->d[0].name, "q");
	mc_store_unpin(st, a.ino);
	free(s);
	mc_store_close(st);
}
END_TEST

/* ----------------------------------------------- copies, and moving them */

START_TEST(evicting_copies_only_leaves_every_last_copy_alone)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_stats stats;
	struct mc_ns_attr pinned;
	/* oldest first: the sole copies are the oldest of A */
	uint64_t sole = put(st, SEG_A, "sole", 100, 1, NULL);
	uint64_t both1 = put(st, SEG_A, "both1", 100, 2, NULL);
	uint64_t open = put(st, SEG_A, "open", 100, 3, &pinned);
	uint64_t both2 = put(st, SEG_A, "both2", 100, 4, NULL);
	uint64_t onb = put(st, SEG_B, "onb", 100, 5, NULL);

	ck_assert_int_eq(mc_store_add_replica(st, both1, SEG_B), 0);
	ck_assert_int_eq(mc_store_add_replica(st, open, SEG_B), 0);
	ck_assert_int_eq(mc_store_add_replica(st, both2, SEG_C), 0);
	mc_store_pin(st, pinned.ino);
	ck_assert_int_eq(mc_store_evict_copies(st, SEG_A, 150, 1, seen_fn, s),
			 200);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_uint_eq(s->d[0].page_id, both1);
	ck_assert_uint_eq(s->d[1].page_id, both2);
	for (size_t i = 0; i < s->n; i++) {
		ck_assert_uint_eq(s->d[i].flags, MC_NS_DROPPED_COPY);
		ck_assert_uint_eq(s->d[i].nsegments, 1);
		ck_assert_uint_eq(s->d[i].segments[0], SEG_A);
	}
	ck_assert_str_eq(s->d[0].name, "both1");
	/* nothing more to give, however much is asked */
	ck_assert_int_eq(
		mc_store_evict_copies(st, SEG_A, UINT64_MAX, 1, seen_fn, s), 0);
	ck_assert_uint_eq(copies(st, sole, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_A);
	ck_assert_uint_eq(copies(st, open, seg), 2);
	ck_assert_uint_eq(copies(st, both1, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	ck_assert_uint_eq(copies(st, both2, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_C);
	ck_assert_uint_eq(copies(st, onb, seg), 1);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 5);
	ck_assert_uint_eq(stats.evictions, 0);
	/* unpinned, the open page's copy on A may go too */
	mc_store_unpin(st, pinned.ino);
	ck_assert_int_eq(mc_store_evict_copies(st, SEG_A, UINT64_MAX, 4096,
					       seen_fn, s),
			 4096);
	ck_assert_uint_eq(s->d[2].page_id, open);
	free(s);
	mc_store_close(st);
}
END_TEST

/* What mc_store_sole_copies() offered, and what to answer. */
struct offers {
	size_t n;
	struct mc_ns_dropped d[16];
	uint64_t footprint[16];
	int answer[16]; /* by offer; 0 unless set: see take_fn */
	bool take_all;
};

static int take_fn(void *ctx, const struct mc_ns_dropped *d, uint64_t footprint)
{
	struct offers *o = ctx;
	int r;

	ck_assert_uint_lt(o->n, 16);
	r = o->take_all ? 1 : o->answer[o->n];
	o->d[o->n] = *d;
	o->footprint[o->n++] = footprint;
	return r;
}

START_TEST(sole_copies_are_offered_oldest_first_without_pinned_or_shared_ones)
{
	struct mc_store *st = open_mem();
	struct offers *o = calloc(1, sizeof(*o));
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_stats stats;
	struct mc_ns_attr pinned, a1;
	uint64_t p1 = put(st, SEG_A, "p1", 1000, 5, &a1);
	uint64_t shared = put(st, SEG_A, "shared", 1000, 1, NULL);
	uint64_t open = put(st, SEG_A, "open", 1000, 2, &pinned);
	uint64_t p0 = put(st, SEG_A, "p0", 1000, 3, NULL);
	uint64_t p2 = put(st, SEG_A, "p2", 1000, 9, NULL);

	put(st, SEG_B, "onb", 1000, 0, NULL);
	ck_assert_int_eq(mc_store_add_replica(st, shared, SEG_B), 0);
	mc_store_pin(st, pinned.ino);
	/* p1 opened after p2: the order is p0, p2, p1 */
	ck_assert_int_eq(mc_store_touch(st, a1.ino, 20), 0);

	o->take_all = true;
	ck_assert_int_eq(mc_store_sole_copies(st, SEG_A, UINT64_MAX, 4096,
					      take_fn, o),
			 3 * 4096);
	ck_assert_uint_eq(o->n, 3);
	ck_assert_uint_eq(o->d[0].page_id, p0);
	ck_assert_uint_eq(o->d[1].page_id, p2);
	ck_assert_uint_eq(o->d[2].page_id, p1);
	ck_assert_str_eq(o->d[2].name, "p1");
	ck_assert_uint_eq(o->d[2].ino, a1.ino);
	ck_assert_uint_eq(o->d[2].size, 1000);
	ck_assert_uint_eq(o->d[2].flags, 0);
	ck_assert_uint_eq(o->d[2].nsegments, 1);
	ck_assert_uint_eq(o->d[2].segments[0], SEG_A);
	ck_assert_uint_eq(o->footprint[0], 4096);
	/* listed, not dropped */
	ck_assert_uint_eq(copies(st, p0, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_A);
	ck_assert_uint_eq(copies(st, p1, seg), 1);
	ck_assert_uint_eq(copies(st, shared, seg), 2);
	ck_assert_uint_eq(copies(st, open, seg), 1);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 6);
	ck_assert_uint_eq(stats.evictions, 0);

	/* a page passed over does not count; the walk goes on to the next */
	memset(o, 0, sizeof(*o));
	o->answer[0] = 0;
	o->answer[1] = 1;
	ck_assert_int_eq(mc_store_sole_copies(st, SEG_A, 1, 1, take_fn, o),
			 1000);
	ck_assert_uint_eq(o->n, 2);
	ck_assert_uint_eq(o->d[1].page_id, p2);
	/* -1 ends the walk with what was taken */
	memset(o, 0, sizeof(*o));
	o->answer[0] = 1;
	o->answer[1] = -1;
	ck_assert_int_eq(mc_store_sole_copies(st, SEG_A, UINT64_MAX, 1, take_fn,
					      o),
			 1000);
	ck_assert_uint_eq(o->n, 2);
	/* a segment with nothing of its own offers nothing */
	memset(o, 0, sizeof(*o));
	o->take_all = true;
	ck_assert_int_eq(
		mc_store_sole_copies(st, SEG_C, UINT64_MAX, 1, take_fn, o), 0);
	ck_assert_uint_eq(o->n, 0);
	mc_store_unpin(st, pinned.ino);
	free(o);
	mc_store_close(st);
}
END_TEST

START_TEST(dropping_one_copy_keeps_the_page_on_its_other_segments)
{
	struct mc_store *st = open_mem();
	uint64_t seg[MC_NS_MAX_REPLICAS];
	struct mc_ns_stats stats;
	struct mc_ns_dropped d;
	struct ids u = { 0 };
	struct mc_ns_attr a, q;
	uint64_t p = put(st, SEG_A, "p", 1000, 7, &a);
	uint64_t pq = put(st, SEG_A, "q", 10, 8, &q);

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_int_eq(mc_store_drop_copy(st, p, SEG_A, &d), 0);
	ck_assert_uint_eq(d.flags, MC_NS_DROPPED_COPY);
	ck_assert_uint_eq(d.ino, a.ino);
	ck_assert_uint_eq(d.page_id, p);
	ck_assert_uint_eq(d.size, 1000);
	ck_assert_str_eq(d.name, "p");
	ck_assert_uint_eq(d.nsegments, 1);
	ck_assert_uint_eq(d.segments[0], SEG_A);
	ck_assert(visible(st, "p"));
	ck_assert_uint_eq(copies(st, p, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	/* no copy there any more; the last one is never dropped this way */
	ck_assert_int_eq(mc_store_drop_copy(st, p, SEG_A, &d), -ENOENT);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_int_eq(mc_store_drop_copy(st, p, SEG_B, &d), -EBUSY);
	ck_assert_int_eq(mc_store_drop_copy(st, 999999, SEG_B, &d), -ENOENT);
	ck_assert(visible(st, "p"));

	/* an open page keeps its copies */
	ck_assert_int_eq(mc_store_add_replica(st, pq, SEG_C), 0);
	mc_store_pin(st, q.ino);
	ck_assert_int_eq(mc_store_drop_copy(st, pq, SEG_A, &d), -EBUSY);
	ck_assert_uint_eq(copies(st, pq, seg), 2);
	mc_store_unpin(st, q.ino);
	/* a reconcile under way hears that the copy went */
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_drop_copy(st, pq, SEG_A, &d), 0);
	ck_assert_int_eq(
		mc_store_holdings_add(st, SEG_A, &pq, 1, unknown_fn, &u), 0);
	ck_assert_uint_eq(u.n, 1);
	ck_assert_uint_eq(u.id[0], pq);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, NULL, NULL), 0);
	ck_assert_uint_eq(copies(st, pq, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_C);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 2);
	ck_assert_uint_eq(stats.evictions, 0);
	mc_store_close(st);
}
END_TEST

/* -------------------------------------------------------- lost segments */

START_TEST(a_lost_segment_drops_pages_only_it_held_and_keeps_the_others)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct mc_ns_stats stats;
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t x = put(st, SEG_A, "x", 10, 1, NULL);
	uint64_t y = put(st, SEG_A, "y", 20, 2, NULL);
	uint64_t z = put(st, SEG_B, "z", 30, 3, NULL);

	ck_assert_int_eq(mc_store_add_replica(st, y, SEG_B), 0);
	ck_assert_int_eq(mc_store_segment_lost(st, SEG_A, seen_fn, s), 2);
	/* fn hears only of the page that left the namespace */
	ck_assert_uint_eq(s->n, 1);
	ck_assert_uint_eq(s->d[0].page_id, x);
	ck_assert_uint_eq(s->d[0].flags, 0);
	ck_assert(!visible(st, "x"));
	ck_assert(visible(st, "y") && visible(st, "z"));
	ck_assert_uint_eq(copies(st, y, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	ck_assert_uint_eq(copies(st, z, seg), 1);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 2);
	ck_assert_uint_eq(stats.bytes, 50);
	/* not an eviction */
	ck_assert_uint_eq(stats.evictions, 0);
	ck_assert_int_eq(mc_store_segment_lost(st, SEG_A, seen_fn, s), 0);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(a_lost_segment_of_thousands_of_pages_is_swept_in_batches)
{
	struct mc_store *st = open_mem();
	struct mc_ns_stats stats;
	char name[32];

	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		put(st, i % 3 ? SEG_A : SEG_B, name, 1, (uint64_t)i % 7, NULL);
	}
	ck_assert_int_eq(mc_store_segment_lost(st, SEG_A, NULL, NULL), 2000);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 1000);
	ck_assert(visible(st, "p0") && !visible(st, "p1"));
	mc_store_close(st);
}
END_TEST

/* ---------------------------------------------------------------- holdings */

START_TEST(holdings_reconcile_what_a_segment_holds_with_the_store)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct ids u = { 0 };
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t p1 = put(st, SEG_A, "p1", 10, 1, NULL);
	uint64_t p2 = put(st, SEG_A, "p2", 10, 2, NULL);
	uint64_t p3 = put(st, SEG_A, "p3", 10, 3, NULL);
	uint64_t q = put(st, SEG_B, "q", 10, 4, NULL);
	uint64_t held[] = { p1, q, 987654321 };
	uint64_t fresh;

	ck_assert_int_eq(mc_store_add_replica(st, p3, SEG_B), 0);
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, held, 3, unknown_fn,
					       &u),
			 0);
	/* the daemon frees what the store never heard of */
	ck_assert_uint_eq(u.n, 1);
	ck_assert_uint_eq(u.id[0], 987654321);
	/* a page committed meanwhile is not swept with the unconfirmed */
	fresh = put(st, SEG_A, "fresh", 10, 5, NULL);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, seen_fn, s), 2);
	/* p2 had no other copy: gone; p3 lives on in B */
	ck_assert_uint_eq(s->n, 1);
	ck_assert_uint_eq(s->d[0].page_id, p2);
	ck_assert(!visible(st, "p2"));
	ck_assert_uint_eq(copies(st, p3, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	ck_assert_uint_eq(copies(st, p1, seg), 1);
	ck_assert_uint_eq(copies(st, fresh, seg), 1);
	/* q, held by A without the store knowing, got a copy there */
	ck_assert_uint_eq(copies(st, q, seg), 2);
	ck_assert_uint_eq(seg[0], SEG_A);
	ck_assert_uint_eq(seg[1], SEG_B);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(a_copy_evicted_during_a_reconcile_is_reported_unknown)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct ids u = { 0 };
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_evict(st, SEG_A, 1, 1, seen_fn, s), 10);
	ck_assert_uint_eq(s->d[0].flags, MC_NS_DROPPED_COPY);
	/* the daemon's list was made before it heard of the eviction */
	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, &p, 1, unknown_fn,
					       &u),
			 0);
	ck_assert_uint_eq(u.n, 1);
	ck_assert_uint_eq(u.id[0], p);
	ck_assert_uint_eq(copies(st, p, seg), 1);
	ck_assert_uint_eq(seg[0], SEG_B);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, seen_fn, s), 0);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(a_second_begin_starts_the_reconcile_over)
{
	struct mc_store *st = open_mem();
	struct seen *s = calloc(1, sizeof(*s));
	struct ids u = { 0 };
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t old = put(st, SEG_A, "old", 10, 1, NULL);
	uint64_t held = put(st, SEG_A, "held", 10, 2, NULL);
	uint64_t made;

	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, &old, 1, unknown_fn,
					       &u),
			 0);
	made = put(st, SEG_A, "made", 10, 3, NULL);
	/* the daemon registered again: its new list is the whole truth */
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, &held, 1,
					       unknown_fn, &u),
			 0);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, seen_fn, s), 2);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_uint_eq(s->d[0].page_id + s->d[1].page_id, old + made);
	ck_assert_uint_eq(copies(st, held, seg), 1);
	ck_assert_uint_eq(u.n, 0);
	free(s);
	mc_store_close(st);
}
END_TEST

START_TEST(holdings_without_a_begin_give_einval_and_drop_nothing)
{
	struct mc_store *st = open_mem();
	struct ids u = { 0 };
	uint64_t p = put(st, SEG_A, "p", 10, 1, NULL);
	uint64_t seg[MC_NS_MAX_REPLICAS];

	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, &p, 1, unknown_fn,
					       &u),
			 -EINVAL);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, NULL, NULL),
			 -EINVAL);
	ck_assert_uint_eq(copies(st, p, seg), 1);
	/* a lost segment ends its reconcile */
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_segment_lost(st, SEG_A, NULL, NULL), 1);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, NULL, NULL),
			 -EINVAL);
	mc_store_close(st);
}
END_TEST

START_TEST(holdings_of_20000_pages_confirm_in_batches_and_sweep_the_rest)
{
	struct mc_store *st = open_mem();
	struct mc_ns_stats stats;
	struct ids u = { 0 };
	uint64_t *held = calloc(20000, sizeof(*held));
	size_t n = 0;
	char name[32];

	for (int i = 0; i < 20000; i++) {
		uint64_t p;

		snprintf(name, sizeof(name), "p%d", i);
		p = put(st, SEG_A, name, 1, (uint64_t)i, NULL);
		/* the daemon lost every tenth */
		if (i % 10)
			held[n++] = p;
	}
	ck_assert_int_eq(mc_store_holdings_begin(st, SEG_A), 0);
	ck_assert_int_eq(mc_store_holdings_add(st, SEG_A, held, n, unknown_fn,
					       &u),
			 0);
	ck_assert_uint_eq(u.n, 0);
	ck_assert_int_eq(mc_store_holdings_end(st, SEG_A, NULL, NULL), 2000);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 18000);
	ck_assert(!visible(st, "p0") && visible(st, "p1"));
	free(held);
	mc_store_close(st);
}
END_TEST

/* ---------------------------------------------------------------- segments */

START_TEST(segment_ids_are_stable_for_a_uuid_across_a_reopen)
{
	char dir[] = "/tmp/test_store.XXXXXX";
	char path[64], wal[80];
	struct mc_store *st;
	struct mc_store_segment a = { .uuid = { 0xa1, 2, 3 },
				      .host = "host-a",
				      .address = "10.0.0.1",
				      .port = 12345,
				      .capacity = 1 << 30,
				      .protocol = "tcp" };
	struct mc_store_segment b = { .uuid = { 0xb1, 2, 3 },
				      .host = "host-b",
				      .address = "10.0.0.2",
				      .port = 12346,
				      .capacity = 2ull << 30,
				      .protocol = "rdma" };
	struct mc_store_segment z = { .host = "zero" }, got;
	uint64_t ida, idb;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ns.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);

	ck_assert_int_eq(mc_store_open(&st, path), 0);
	ck_assert_int_eq(mc_store_segment_register(st, &z), -EINVAL);
	ck_assert_int_eq(mc_store_segment_register(st, &a), 0);
	ck_assert_int_eq(mc_store_segment_register(st, &b), 0);
	ida = a.id;
	idb = b.id;
	ck_assert_uint_ne(ida, 0);
	ck_assert_uint_ne(idb, 0);
	ck_assert_uint_ne(ida, idb);
	/* the local segment is taken */
	ck_assert_uint_ne(ida, MC_NS_LOCAL_SEGMENT);
	ck_assert_uint_ne(idb, MC_NS_LOCAL_SEGMENT);
	/* a restart of host a: a new address, the same id */
	snprintf(a.address, sizeof(a.address), "10.0.0.9");
	a.port = 4000;
	a.id = 0;
	ck_assert_int_eq(mc_store_segment_register(st, &a), 0);
	ck_assert_uint_eq(a.id, ida);
	mc_store_close(st);

	ck_assert_int_eq(mc_store_open(&st, path), 0);
	b.id = 0;
	ck_assert_int_eq(mc_store_segment_register(st, &b), 0);
	ck_assert_uint_eq(b.id, idb);
	ck_assert_int_eq(mc_store_segment_get(st, ida, &got), 0);
	ck_assert_uint_eq(got.id, ida);
	ck_assert_mem_eq(got.uuid, a.uuid, sizeof(a.uuid));
	ck_assert_str_eq(got.host, "host-a");
	ck_assert_str_eq(got.address, "10.0.0.9");
	ck_assert_uint_eq(got.port, 4000);
	ck_assert_uint_eq(got.capacity, 1 << 30);
	ck_assert_str_eq(got.protocol, "tcp");
	ck_assert_int_eq(mc_store_segment_get(st, MC_NS_LOCAL_SEGMENT, &got),
			 0);
	ck_assert_str_eq(got.protocol, "local");
	ck_assert_int_eq(mc_store_segment_get(st, 9999, &got), -ENOENT);
	mc_store_close(st);

	unlink(wal);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

struct seg_list {
	size_t n, stop_at;
	struct mc_store_segment s[8];
};

static int seg_list_fn(void *ctx, const struct mc_store_segment *seg)
{
	struct seg_list *l = ctx;

	ck_assert_uint_lt(l->n, 8);
	l->s[l->n++] = *seg;
	return l->n == l->stop_at ? 42 : 0;
}

START_TEST(segment_foreach_lists_every_segment_in_id_order)
{
	struct mc_store *st = open_mem();
	struct mc_store_segment a = { .uuid = { 0xa1 },
				      .host = "host-a",
				      .address = "10.0.0.1",
				      .port = 1,
				      .protocol = "tcp" };
	struct mc_store_segment b = { .uuid = { 0xb1 },
				      .host = "host-b",
				      .address = "10.0.0.2",
				      .port = 2,
				      .protocol = "rdma" };
	struct seg_list l = { 0 };

	ck_assert_int_eq(mc_store_segment_register(st, &b), 0);
	ck_assert_int_eq(mc_store_segment_register(st, &a), 0);
	ck_assert_int_eq(mc_store_segment_foreach(st, seg_list_fn, &l), 0);
	ck_assert_uint_eq(l.n, 3);
	/* the local segment is listed too: the caller tells it by its id */
	ck_assert_uint_eq(l.s[0].id, MC_NS_LOCAL_SEGMENT);
	ck_assert_str_eq(l.s[0].protocol, "local");
	ck_assert_uint_eq(l.s[1].id, b.id);
	ck_assert_str_eq(l.s[1].host, "host-b");
	ck_assert_mem_eq(l.s[1].uuid, b.uuid, sizeof(b.uuid));
	ck_assert_uint_eq(l.s[2].id, a.id);
	ck_assert_str_eq(l.s[2].address, "10.0.0.1");
	ck_assert_uint_eq(l.s[2].port, 1);
	/* a non-zero return stops the walk and is passed on */
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	ck_assert_int_eq(mc_store_segment_foreach(st, seg_list_fn, &l), 42);
	ck_assert_uint_eq(l.n, 2);
	mc_store_close(st);
}
END_TEST

START_TEST(the_local_segments_uuid_cannot_be_registered)
{
	struct mc_store *st = open_mem();
	struct mc_store_segment local = { .uuid = { [15] = 1 },
					  .host = "impostor",
					  .address = "10.0.0.9",
					  .protocol = "tcp" };
	struct mc_store_segment got;

	ck_assert_int_eq(mc_store_segment_register(st, &local), -EINVAL);
	ck_assert_uint_eq(local.id, 0);
	ck_assert_int_eq(mc_store_segment_get(st, MC_NS_LOCAL_SEGMENT, &got),
			 0);
	ck_assert_str_eq(got.host, "localhost");
	mc_store_close(st);
}
END_TEST

/* ---------------------------------------------------------- re-replication */

static void under_fn(void *ctx, uint64_t page_id, unsigned n)
{
	struct ids *u = ctx;

	ck_assert_uint_lt(u->n, 64);
	u->id[u->n] = page_id;
	u->copies[u->n++] = n;
}

START_TEST(under_replicated_lists_pages_with_too_few_copies_in_order)
{
	struct mc_store *st = open_mem();
	struct ids u = { 0 };
	uint64_t p1 = put(st, SEG_A, "p1", 1, 1, NULL);
	uint64_t p2 = put(st, SEG_A, "p2", 1, 1, NULL);
	uint64_t p3 = put(st, SEG_B, "p3", 1, 1, NULL);
	uint64_t p4 = put(st, SEG_A, "p4", 1, 1, NULL);

	ck_assert_int_eq(mc_store_add_replica(st, p2, SEG_B), 0);
	ck_assert_int_eq(mc_store_add_replica(st, p4, SEG_B), 0);
	ck_assert_int_eq(mc_store_add_replica(st, p4, SEG_C), 0);
	ck_assert_int_eq(mc_store_under_replicated(st, 2, 0, 100, under_fn,
						   &u),
			 2);
	ck_assert_uint_eq(u.id[0], p1);
	ck_assert_uint_eq(u.copies[0], 1);
	ck_assert_uint_eq(u.id[1], p3);
	u.n = 0;
	ck_assert_int_eq(mc_store_under_replicated(st, 3, p1, 100, under_fn,
						   &u),
			 2);
	ck_assert_uint_eq(u.id[0], p2);
	ck_assert_uint_eq(u.copies[0], 2);
	ck_assert_uint_eq(u.id[1], p3);
	u.n = 0;
	ck_assert_int_eq(mc_store_under_replicated(st, 3, 0, 1, under_fn, &u),
			 1);
	ck_assert_uint_eq(u.id[0], p1);
	ck_assert_int_eq(mc_store_under_replicated(st, 1, 0, 100, under_fn,
						   &u),
			 0);
	mc_store_close(st);
}
END_TEST

struct under_count {
	uint64_t last;
	size_t n;
};

static void under_count_fn(void *ctx, uint64_t page_id, unsigned n)
{
	struct under_count *c = ctx;

	ck_assert_uint_gt(page_id, c->last);
	ck_assert_uint_eq(n, 1);
	c->last = page_id;
	c->n++;
}

START_TEST(under_replicated_pages_through_chunks_without_losing_a_page)
{
	struct mc_store *st = open_mem();
	struct under_count c = { 0 };
	char name[32];

	/* every third page has three copies, so runs straddle the chunks */
	for (int i = 0; i < 9000; i++) {
		uint64_t p;

		snprintf(name, sizeof(name), "p%d", i);
		p = put(st, SEG_A, name, 1, 1, NULL);
		if (i % 3 == 0) {
			ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
			ck_assert_int_eq(mc_store_add_replica(st, p, SEG_C), 0);
		}
	}
	ck_assert_int_eq(mc_store_under_replicated(st, 2, 0, 100000,
						   under_count_fn, &c),
			 6000);
	ck_assert_uint_eq(c.n, 6000);
	mc_store_close(st);
}
END_TEST

START_TEST(forget_pages_drops_every_copy)
{
	struct mc_store *st = open_mem();
	struct ids u = { 0 };
	uint64_t seg[MC_NS_MAX_REPLICAS];
	uint64_t p = put(st, SEG_A, "p", 1, 1, NULL);

	ck_assert_int_eq(mc_store_add_replica(st, p, SEG_B), 0);
	ck_assert_int_eq(mc_store_forget_pages(st), 1);
	ck_assert_uint_eq(copies(st, p, seg), 0);
	ck_assert_int_eq(mc_store_under_replicated(st, 9, 0, 10, under_fn, &u),
			 0);
	ck_assert_int_eq(mc_store_evict(st, SEG_B, UINT64_MAX, 1, NULL, NULL),
			 0);
	mc_store_close(st);
}
END_TEST

/* --------------------------------------------------------------- migration */

/* Version 1 as the single-host release wrote it (doc/namespace-store.md). */
static const char v1_schema[] =
	"CREATE TABLE inodes ("
	"    ino INTEGER PRIMARY KEY,"
	"    parent INTEGER NOT NULL,"
	"    name TEXT NOT NULL,"
	"    mode INTEGER NOT NULL,"
	"    uid INTEGER NOT NULL,"
	"    gid INTEGER NOT NULL,"
	"    size INTEGER NOT NULL,"
	"    page_id INTEGER NOT NULL,"
	"    mtime_ns INTEGER NOT NULL,"
	"    ctime_ns INTEGER NOT NULL,"
	"    atime_ns INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX inodes_by_name ON inodes (parent, name);"
	"CREATE INDEX inodes_by_parent ON inodes (parent, ino);"
	"CREATE INDEX inodes_lru ON inodes (atime_ns, ino) WHERE page_id != 0;"
	"CREATE TABLE counters ("
	"    id INTEGER PRIMARY KEY CHECK (id = 1),"
	"    next_ino INTEGER NOT NULL,"
	"    next_page_id INTEGER NOT NULL,"
	"    pages INTEGER NOT NULL,"
	"    dirs INTEGER NOT NULL,"
	"    bytes INTEGER NOT NULL);"
	"PRAGMA user_version = 1;"
	/* the root, a directory, and three pages: b is the oldest */
	"INSERT INTO inodes VALUES (1, 1, '', 16877, 0, 0, 0, 0, 1, 1, 1);"
	"INSERT INTO inodes VALUES (16, 1, 'model', 16877, 0, 0, 0, 0, 1, 1, 1);"
	"INSERT INTO inodes VALUES (17, 16, 'a', 33188, 0, 0, 100, 5, 1, 1, 30);"
	"INSERT INTO inodes VALUES (18, 16, 'b', 33188, 0, 0, 200, 6, 1, 1, 10);"
	"INSERT INTO inodes VALUES (19, 1, 'c', 33188, 0, 0, 300, 7, 1, 1, 20);"
	"INSERT INTO counters VALUES (1, 1040, 1030, 3, 2, 600);";

static int user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	int v = -1;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q,
					    NULL),
			 SQLITE_OK);
	if (sqlite3_step(q) == SQLITE_ROW)
		v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

START_TEST(a_version_1_store_opens_with_each_page_one_local_copy)
{
	char dir[] = "/tmp/test_store.XXXXXX";
	char path[64], wal[80];
	struct mc_store *st;
	struct mc_store_segment seg1;
	struct mc_ns_stats stats;
	struct mc_ns_attr a;
	struct seen *s = calloc(1, sizeof(*s));
	uint64_t seg[MC_NS_MAX_REPLICAS], size, ino, page;
	uint32_t crc = 1;
	unsigned n;
	sqlite3 *db;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/namespace.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, v1_schema, NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	ck_assert_int_eq(mc_store_open(&st, path), 0);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 3);
	ck_assert_uint_eq(stats.dirs, 2);
	ck_assert_uint_eq(stats.bytes, 600);
	ck_assert_int_eq(mc_store_lookup(st, 16, "a", &a), 0);
	ck_assert_uint_eq(a.page_id, 5);
	ck_assert_int_eq(mc_store_replicas(st, 5, &size, &crc, seg,
					   MC_NS_MAX_REPLICAS, &n),
			 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(seg[0], MC_NS_LOCAL_SEGMENT);
	ck_assert_uint_eq(size, 100);
	ck_assert_uint_eq(crc, 0);	/* never taken: unknown */
	ck_assert_int_eq(mc_store_segment_get(st, MC_NS_LOCAL_SEGMENT, &seg1),
			 0);
	/* numbers go on from the old counters */
	ck_assert_int_eq(mc_store_reserve(st, &ino, &page), 0);
	ck_assert_uint_ge(ino, 1040);
	ck_assert_uint_ge(page, 1030);
	/* the LRU came along: b, c, then a */
	ck_assert_int_eq(mc_store_evict(st, MC_NS_LOCAL_SEGMENT, 450, 1,
					seen_fn, s),
			 500);
	ck_assert_uint_eq(s->n, 2);
	ck_assert_str_eq(s->d[0].name, "b");
	ck_assert_str_eq(s->d[1].name, "c");
	mc_store_close(st);
	ck_assert_int_eq(user_version(path), 2);

	/* and it opens again as a version 2 store, unchanged */
	ck_assert_int_eq(mc_store_open(&st, path), 0);
	ck_assert_int_eq(mc_store_lookup(st, 16, "a", &a), 0);
	ck_assert_int_eq(mc_store_lookup(st, 16, "b", &a), -ENOENT);
	mc_store_get_stats(st, &stats);
	ck_assert_uint_eq(stats.pages, 1);
	mc_store_close(st);

	free(s);
	unlink(wal);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(a_store_from_a_newer_version_is_refused)
{
	char dir[] = "/tmp/test_store.XXXXXX";
	char path[64], wal[80];
	struct mc_store *st = (struct mc_store *)1;
	sqlite3 *db;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/namespace.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(mc_store_open(&st, path), -EIO);
	ck_assert_ptr_null(st);
	ck_assert_int_eq(user_version(path), 99);
	unlink(wal);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* One case per behaviour, so a failure names the behaviour it broke. */
static void add(Suite *s, const char *behaviour, const TTest *test)
{
	TCase *tc = tcase_create(behaviour);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");

	add(s, "commit records one copy in its segment and the checksum",
	    commit_records_one_copy_in_its_segment_and_the_checksum);
	add(s, "commit in segment 0 gives EINVAL",
	    commit_in_segment_0_gives_einval);
	add(s, "replicas lists every segment holding a copy",
	    replicas_lists_every_segment_holding_a_copy);
	add(s, "add_replica of a gone page gives ENOENT",
	    add_replica_of_a_gone_page_gives_enoent);
	add(s, "unlink, rename and commit report every segment of the dropped page",
	    unlink_rename_and_commit_report_every_segment_of_the_dropped_page);
	add(s, "a batch commits good items around refused ones",
	    a_batch_commits_good_items_around_refused_ones);
	add(s, "a batch reports what each item replaced, earlier items included",
	    a_batch_reports_what_each_item_replaced_earlier_items_included);
	add(s, "a batch ends as n single commits would",
	    a_batch_ends_as_n_single_commits_would);
	add(s, "a write failing mid-batch rolls back only that item",
	    a_write_failing_mid_batch_rolls_back_only_that_item);
	add(s, "an empty batch commits nothing", an_empty_batch_commits_nothing);
	add(s, "a new store's root belongs to the owner asked for",
	    a_new_store_root_belongs_to_the_owner_asked_for);
	add(s, "evict in one segment leaves another segment's pages alone",
	    evict_in_one_segment_leaves_another_segments_pages_alone);
	add(s, "evicting one of two copies drops only the copy",
	    evicting_one_of_two_copies_drops_only_the_copy);
	add(s, "eviction skips pinned pages in the segment",
	    eviction_skips_pinned_pages_in_the_segment);
	add(s, "touches and utimes move every copy in its segment's LRU",
	    touches_and_utimes_move_every_copy_in_its_segments_lru);
	add(s, "pins and touches of a dropped page are harmless",
	    pins_and_touches_of_a_dropped_page_are_harmless);
	add(s, "evicting copies only leaves every last copy alone",
	    evicting_copies_only_leaves_every_last_copy_alone);
	add(s, "sole copies are offered oldest first, without pinned or shared ones",
	    sole_copies_are_offered_oldest_first_without_pinned_or_shared_ones);
	add(s, "dropping one copy keeps the page on its other segments",
	    dropping_one_copy_keeps_the_page_on_its_other_segments);
	add(s, "a lost segment drops pages only it held and keeps the others",
	    a_lost_segment_drops_pages_only_it_held_and_keeps_the_others);
	add(s, "a lost segment of thousands of pages is swept in batches",
	    a_lost_segment_of_thousands_of_pages_is_swept_in_batches);
	add(s, "holdings reconcile what a segment holds with the store",
	    holdings_reconcile_what_a_segment_holds_with_the_store);
	add(s, "a copy evicted during a reconcile is reported unknown",
	    a_copy_evicted_during_a_reconcile_is_reported_unknown);
	add(s, "a second begin starts the reconcile over",
	    a_second_begin_starts_the_reconcile_over);
	add(s, "holdings without a begin give EINVAL and drop nothing",
	    holdings_without_a_begin_give_einval_and_drop_nothing);
	add(s, "holdings of 20000 pages confirm in batches and sweep the rest",
	    holdings_of_20000_pages_confirm_in_batches_and_sweep_the_rest);
	add(s, "segment ids are stable for a uuid across a reopen",
	    segment_ids_are_stable_for_a_uuid_across_a_reopen);
	add(s, "segment_foreach lists every segment in id order",
	    segment_foreach_lists_every_segment_in_id_order);
	add(s, "the local segment's uuid cannot be registered",
	    the_local_segments_uuid_cannot_be_registered);
	add(s, "under_replicated lists pages with too few copies in order",
	    under_replicated_lists_pages_with_too_few_copies_in_order);
	add(s, "under_replicated pages through chunks without losing a page",
	    under_replicated_pages_through_chunks_without_losing_a_page);
	add(s, "forget_pages drops every copy", forget_pages_drops_every_copy);
	add(s, "a version 1 store opens with each page one local copy",
	    a_version_1_store_opens_with_each_page_one_local_copy);
	add(s, "a store from a newer version is refused",
	    a_store_from_a_newer_version_is_refused);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
