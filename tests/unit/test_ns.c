/* test_ns.c - the namespace and placement store, as the fs layer sees it */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ns.h"
#include "banned.h"

#define ROOT MC_NS_ROOT_INO

static struct mc_ns *open_mem(void)
{
	struct mc_ns *ns = (struct mc_ns *)1;

	ck_assert_int_eq(mc_ns_open(&ns, ":memory:"), 0);
	ck_assert_ptr_nonnull(ns);
	return ns;
}

/* Commit a page of size bytes at (parent, name); returns its inode. */
static uint64_t put(struct mc_ns *ns, uint64_t parent, const char *name,
		    uint64_t size, uint64_t mtime_ns, struct mc_ns_dropped *d)
{
	struct mc_ns_commit c = {
		.parent = parent,
		.name = name,
		.mode = S_IFREG | 0644,
		.uid = 1000,
		.gid = 100,
		.size = size,
		.mtime_ns = mtime_ns,
	};

	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_commit(ns, &c, d), 0);
	return c.ino;
}

static uint64_t mkd(struct mc_ns *ns, uint64_t parent, const char *name)
{
	struct mc_ns_attr a;

	ck_assert_int_eq(mc_ns_mkdir(ns, parent, name, 0755, 0, 0, &a), 0);
	return a.ino;
}

/* ------------------------------------------------------------ lookups */

START_TEST(root_is_a_directory_after_open)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a;
	struct mc_ns_stats s;

	ck_assert_int_eq(mc_ns_getattr(ns, ROOT, &a), 0);
	ck_assert_uint_eq(a.ino, ROOT);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_uint_eq(a.nlink, 2);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.dirs, 1);
	ck_assert_uint_eq(s.pages, 0);
	mc_ns_close(ns);
}
END_TEST

START_TEST(lookup_errors_name_their_cause)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a;
	uint64_t page = put(ns, ROOT, "p", 10, 1, NULL);

	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "missing", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, page, "x", &a), -ENOTDIR);
	ck_assert_int_eq(mc_ns_lookup(ns, 999999, "x", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "..", &a), -EINVAL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "", &a), -EINVAL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "a/b", &a), -EINVAL);
	ck_assert_int_eq(mc_ns_getattr(ns, 999999, &a), -ENOENT);
	ck_assert_int_eq(mc_ns_getattr(ns, 0, &a), -ENOENT);
	mc_ns_close(ns);
}
END_TEST

START_TEST(a_name_over_255_bytes_gives_enametoolong_everywhere)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a;
	struct mc_ns_dropped d;
	struct mc_ns_commit c = { .parent = ROOT, .mode = S_IFREG | 0644 };
	char name[257];

	memset(name, 'n', 256);
	name[256] = '\0';

	put(ns, ROOT, "p", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, name, &a), -ENAMETOOLONG);
	ck_assert_int_eq(mc_ns_mkdir(ns, ROOT, name, 0755, 0, 0, &a),
			 -ENAMETOOLONG);
	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, name), -ENAMETOOLONG);
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, name, &d), -ENAMETOOLONG);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "p", ROOT, name, 0, &d),
			 -ENAMETOOLONG);
	c.name = name;
	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -ENAMETOOLONG);
	/* 255 bytes is still a name */
	name[255] = '\0';
	put(ns, ROOT, name, 1, 1, NULL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, name, &a), 0);
	mc_ns_close(ns);
}
END_TEST

/* ------------------------------------------------------ directories */

START_TEST(mkdir_makes_a_directory_and_twice_gives_eexist)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a, b;

	ck_assert_int_eq(mc_ns_mkdir(ns, ROOT, "llama", 0750, 7, 8, &a), 0);
	ck_assert_uint_ge(a.ino, MC_NS_FIRST_INO);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "llama", &b), 0);
	ck_assert_uint_eq(b.ino, a.ino);
	ck_assert_uint_eq(b.parent, ROOT);
	ck_assert_uint_eq(b.mode, S_IFDIR | 0750);
	ck_assert_uint_eq(b.uid, 7);
	ck_assert_uint_eq(b.gid, 8);
	ck_assert_uint_eq(b.page_id, 0);
	ck_assert_int_eq(mc_ns_mkdir(ns, ROOT, "llama", 0755, 0, 0, &a),
			 -EEXIST);
	put(ns, ROOT, "page", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_mkdir(ns, ROOT, "page", 0755, 0, 0, &a),
			 -EEXIST);
	mc_ns_close(ns);
}
END_TEST

START_TEST(mkdir_under_a_page_gives_enotdir_and_under_nothing_enoent)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a;
	uint64_t page = put(ns, ROOT, "p", 1, 1, NULL);

	ck_assert_int_eq(mc_ns_mkdir(ns, page, "d", 0755, 0, 0, &a), -ENOTDIR);
	ck_assert_int_eq(mc_ns_mkdir(ns, 424242, "d", 0755, 0, 0, &a),
			 -ENOENT);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rmdir_refuses_pages_missing_names_and_non_empty_directories)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr a;
	struct mc_ns_stats s;
	uint64_t d = mkd(ns, ROOT, "d");

	put(ns, ROOT, "p", 1, 1, NULL);
	put(ns, d, "inside", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, "p"), -ENOTDIR);
	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, "nope"), -ENOENT);
	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, "d"), -ENOTEMPTY);
	ck_assert_int_eq(mc_ns_unlink(ns, d, "inside", NULL), 0);
	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, "d"), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "d", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_getattr(ns, d, &a), -ENOENT);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.dirs, 1);
	mc_ns_close(ns);
}
END_TEST

/* ------------------------------------------------------------ commit */

START_TEST(commit_makes_a_page_visible_with_its_attributes)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_commit c = {
		.parent = ROOT,
		.name = "abc_llama_0_1.bin",
		.mode = S_IFREG | 0600,
		.uid = 5,
		.gid = 6,
		.size = 2 << 20,
		.mtime_ns = 123456789,
	};
	struct mc_ns_dropped d = { .ino = 77 };
	struct mc_ns_attr a;

	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, c.name, &a), -ENOENT);
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), 0);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, c.name, &a), 0);
	ck_assert_uint_eq(a.ino, c.ino);
	ck_assert_uint_eq(a.parent, ROOT);
	ck_assert_uint_eq(a.page_id, c.page_id);
	ck_assert_uint_eq(a.size, 2 << 20);
	ck_assert_uint_eq(a.mode, S_IFREG | 0600);
	ck_assert_uint_eq(a.uid, 5);
	ck_assert_uint_eq(a.gid, 6);
	ck_assert_uint_eq(a.nlink, 1);
	ck_assert_uint_eq(a.mtime_ns, 123456789);
	ck_assert_uint_eq(a.atime_ns, 123456789);
	mc_ns_close(ns);
}
END_TEST

START_TEST(commit_over_a_page_replaces_it_and_reports_the_old_page)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr old, a;
	struct mc_ns_stats s;
	uint64_t ino;

	put(ns, ROOT, "kv", 100, 1, &d);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "kv", &old), 0);
	ino = put(ns, ROOT, "kv", 300, 2, &d);
	ck_assert_uint_eq(d.ino, old.ino);
	ck_assert_uint_eq(d.parent, ROOT);
	ck_assert_uint_eq(d.page_id, old.page_id);
	ck_assert_uint_eq(d.size, 100);
	ck_assert_str_eq(d.name, "kv");
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "kv", &a), 0);
	ck_assert_uint_eq(a.ino, ino);
	ck_assert_uint_eq(a.size, 300);
	ck_assert_int_eq(mc_ns_getattr(ns, old.ino, &a), -ENOENT);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 1);
	ck_assert_uint_eq(s.bytes, 300);
	mc_ns_close(ns);
}
END_TEST

START_TEST(commit_into_a_missing_parent_gives_enoent)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_commit c = { .name = "x", .mode = S_IFREG | 0644 };
	struct mc_ns_dropped d;
	struct mc_ns_stats s;
	uint64_t dir = mkd(ns, ROOT, "gone");

	ck_assert_int_eq(mc_ns_rmdir(ns, ROOT, "gone"), 0);
	c.parent = dir;
	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -ENOENT);
	ck_assert_uint_eq(d.ino, 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 0);
	mc_ns_close(ns);
}
END_TEST

START_TEST(commit_over_a_directory_gives_eisdir_and_under_a_page_enotdir)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_commit c = { .name = "d", .mode = S_IFREG | 0644 };
	struct mc_ns_dropped d;
	struct mc_ns_attr a;

	mkd(ns, ROOT, "d");
	c.parent = ROOT;
	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -EISDIR);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "d", &a), 0);
	ck_assert(S_ISDIR(a.mode));
	c.parent = put(ns, ROOT, "p", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -ENOTDIR);
	mc_ns_close(ns);
}
END_TEST

START_TEST(commit_of_an_inode_already_committed_gives_eexist)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_commit c = { .parent = ROOT, .mode = S_IFREG | 0644 };
	struct mc_ns_dropped d;
	struct mc_ns_attr a;
	struct mc_ns_stats s;

	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	c.name = "first";
	c.size = 10;
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), 0);
	c.name = "second";
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -EEXIST);
	c.name = "first";
	ck_assert_int_eq(mc_ns_commit(ns, &c, &d), -EEXIST);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "second", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "first", &a), 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 1);
	ck_assert_uint_eq(s.bytes, 10);
	mc_ns_close(ns);
}
END_TEST

/* ------------------------------------------------------------ unlink */

START_TEST(unlink_removes_a_page_and_reports_it)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a, p;

	put(ns, ROOT, "p", 42, 1, NULL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p", &p), 0);
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, "p", &d), 0);
	ck_assert_uint_eq(d.ino, p.ino);
	ck_assert_uint_eq(d.page_id, p.page_id);
	ck_assert_uint_eq(d.size, 42);
	ck_assert_str_eq(d.name, "p");
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, "p", &d), -ENOENT);
	ck_assert_uint_eq(d.ino, 0);
	mc_ns_close(ns);
}
END_TEST

START_TEST(unlink_of_a_directory_gives_eisdir)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a;

	mkd(ns, ROOT, "d");
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, "d", &d), -EISDIR);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "d", &a), 0);
	mc_ns_close(ns);
}
END_TEST

/* ------------------------------------------------------------ rename */

START_TEST(rename_over_a_page_replaces_it_and_reports_the_old_page)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a, old;
	struct mc_ns_stats s;
	uint64_t dir = mkd(ns, ROOT, "d");
	uint64_t src = put(ns, ROOT, "src", 10, 1, NULL);

	put(ns, dir, "dst", 20, 1, NULL);
	ck_assert_int_eq(mc_ns_lookup(ns, dir, "dst", &old), 0);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "src", dir, "dst", 0, &d), 0);
	ck_assert_uint_eq(d.ino, old.ino);
	ck_assert_uint_eq(d.page_id, old.page_id);
	ck_assert_uint_eq(d.size, 20);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "src", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, dir, "dst", &a), 0);
	ck_assert_uint_eq(a.ino, src);
	ck_assert_uint_eq(a.parent, dir);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 1);
	ck_assert_uint_eq(s.bytes, 10);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rename_with_noreplace_onto_an_existing_name_gives_eexist)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a;
	uint64_t src = put(ns, ROOT, "a", 1, 1, NULL);
	uint64_t dst = put(ns, ROOT, "b", 2, 1, NULL);

	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "a", ROOT, "b",
				      MC_NS_RENAME_NOREPLACE, &d),
			 -EEXIST);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "a", &a), 0);
	ck_assert_uint_eq(a.ino, src);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "b", &a), 0);
	ck_assert_uint_eq(a.ino, dst);
	/* to a free name it is an ordinary rename */
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "a", ROOT, "c",
				      MC_NS_RENAME_NOREPLACE, &d),
			 0);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "c", &a), 0);
	ck_assert_uint_eq(a.ino, src);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rename_of_a_directory_over_a_non_empty_directory_gives_enotempty)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a;
	struct mc_ns_stats s;
	uint64_t a_dir = mkd(ns, ROOT, "a");
	uint64_t b_dir = mkd(ns, ROOT, "b");

	put(ns, b_dir, "x", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "a", ROOT, "b", 0, &d),
			 -ENOTEMPTY);
	ck_assert_int_eq(mc_ns_unlink(ns, b_dir, "x", NULL), 0);
	/* an empty directory is replaced, and reported */
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "a", ROOT, "b", 0, &d), 0);
	ck_assert_uint_eq(d.ino, b_dir);
	ck_assert_uint_eq(d.page_id, 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "b", &a), 0);
	ck_assert_uint_eq(a.ino, a_dir);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.dirs, 2);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rename_of_a_directory_into_its_own_subtree_gives_einval)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a;
	uint64_t top = mkd(ns, ROOT, "top");
	uint64_t mid = mkd(ns, top, "mid");
	uint64_t low = mkd(ns, mid, "low");

	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "top", low, "x", 0, &d),
			 -EINVAL);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "top", top, "x", 0, &d),
			 -EINVAL);
	ck_assert_int_eq(mc_ns_rename(ns, top, "mid", mid, "x", 0, &d),
			 -EINVAL);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "top", &a), 0);
	ck_assert_uint_eq(a.ino, top);
	/* moving up and sideways is fine */
	ck_assert_int_eq(mc_ns_rename(ns, mid, "low", ROOT, "low", 0, &d), 0);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "top", low, "top", 0, &d), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, low, "top", &a), 0);
	ck_assert_uint_eq(a.ino, top);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rename_between_a_page_and_a_directory_gives_eisdir_or_enotdir)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;

	mkd(ns, ROOT, "d");
	put(ns, ROOT, "p", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "p", ROOT, "d", 0, &d),
			 -EISDIR);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "d", ROOT, "p", 0, &d),
			 -ENOTDIR);
	mc_ns_close(ns);
}
END_TEST

START_TEST(rename_onto_itself_is_a_no_op_and_of_nothing_gives_enoent)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_dropped d;
	struct mc_ns_attr a;
	uint64_t p = put(ns, ROOT, "p", 1, 1, NULL);

	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "p", ROOT, "p", 0, &d), 0);
	ck_assert_uint_eq(d.ino, 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p", &a), 0);
	ck_assert_uint_eq(a.ino, p);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "q", ROOT, "r", 0, &d),
			 -ENOENT);
	ck_assert_int_eq(mc_ns_rename(ns, 999, "p", ROOT, "r", 0, &d),
			 -ENOENT);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "p", 999, "r", 0, &d),
			 -ENOENT);
	ck_assert_int_eq(mc_ns_rename(ns, ROOT, "p", p, "r", 0, &d),
			 -ENOTDIR);
	mc_ns_close(ns);
}
END_TEST

/* ----------------------------------------------------------- readdir */

struct seen {
	unsigned char *hits;	/* indexed by inode */
	size_t cap;
	size_t count;
	size_t stop_every;	/* stop after this many per call */
	size_t this_call;
	uint64_t last;
	bool saw_root;
};

static int seen_fn(void *ctx, const char *name, const struct mc_ns_attr *a)
{
	struct seen *s = ctx;

	if (a->ino == ROOT)
		s->saw_root = true;
	ck_assert_uint_lt(a->ino, s->cap);
	ck_assert_uint_gt(a->ino, s->last);
	ck_assert_str_ne(name, "");
	s->hits[a->ino]++;
	s->count++;
	s->last = a->ino;
	if (s->stop_every && ++s->this_call == s->stop_every)
		return 1;
	return 0;
}

START_TEST(readdir_pages_through_2500_entries_returning_each_exactly_once)
{
	struct mc_ns *ns = open_mem();
	struct seen s = { .stop_every = 100 };
	uint64_t dir = mkd(ns, ROOT, "flat");
	uint64_t first = 0, last = 0;
	int r, calls = 0;

	mkd(ns, ROOT, "other");
	for (int i = 0; i < 2500; i++) {
		char name[32];
		uint64_t ino;

		snprintf(name, sizeof(name), "%08x_llama_0_1.bin", i * 7919);
		/* every tenth is a directory: both kinds are listed */
		if (i % 10 == 0)
			ino = mkd(ns, dir, name);
		else
			ino = put(ns, dir, name, 1, 1, NULL);
		if (!first)
			first = ino;
		last = ino;
	}
	put(ns, ROOT, "sibling", 1, 1, NULL);
	s.cap = last + 1;
	s.hits = calloc(s.cap, 1);
	ck_assert_ptr_nonnull(s.hits);
	do {
		s.this_call = 0;
		r = mc_ns_readdir(ns, dir, s.last, seen_fn, &s);
		ck_assert(r == 0 || r == 1);
		calls++;
	} while (r == 1);
	ck_assert_uint_eq(s.count, 2500);
	ck_assert_int_eq(calls, 26);
	for (uint64_t i = first; i <= last; i++)
		ck_assert_uint_eq(s.hits[i], 1);

	/* and all at once, without stopping */
	memset(s.hits, 0, s.cap);
	s.count = 0;
	s.last = 0;
	s.stop_every = 0;
	ck_assert_int_eq(mc_ns_readdir(ns, dir, 0, seen_fn, &s), 0);
	ck_assert_uint_eq(s.count, 2500);
	free(s.hits);
	mc_ns_close(ns);
}
END_TEST

START_TEST(readdir_of_the_root_does_not_list_the_root)
{
	struct mc_ns *ns = open_mem();
	struct seen s = { 0 };

	s.cap = 1024;
	s.hits = calloc(s.cap, 1);
	ck_assert_ptr_nonnull(s.hits);
	ck_assert_int_eq(mc_ns_readdir(ns, ROOT, 0, seen_fn, &s), 0);
	ck_assert_uint_eq(s.count, 0);
	mkd(ns, ROOT, "a");
	put(ns, ROOT, "b", 1, 1, NULL);
	ck_assert_int_eq(mc_ns_readdir(ns, ROOT, 0, seen_fn, &s), 0);
	ck_assert_uint_eq(s.count, 2);
	ck_assert(!s.saw_root);
	free(s.hits);
	mc_ns_close(ns);
}
END_TEST

START_TEST(readdir_of_a_page_gives_enotdir_and_of_nothing_enoent)
{
	struct mc_ns *ns = open_mem();
	struct seen s = { 0 };
	uint64_t p = put(ns, ROOT, "p", 1, 1, NULL);

	ck_assert_int_eq(mc_ns_readdir(ns, p, 0, seen_fn, &s), -ENOTDIR);
	ck_assert_int_eq(mc_ns_readdir(ns, 5555, 0, seen_fn, &s), -ENOENT);
	ck_assert_uint_eq(s.count, 0);
	mc_ns_close(ns);
}
END_TEST

/* ---------------------------------------------------------- eviction */

struct evicted {
	uint64_t ino[4096];
	size_t n;
	struct mc_ns *ns;
};

static void evict_fn(void *ctx, const struct mc_ns_dropped *d)
{
	struct evicted *e = ctx;
	struct mc_ns_attr a;

	ck_assert_uint_lt(e->n, 4096);
	ck_assert_uint_ne(d->page_id, 0);
	/* called after the row is gone, and without the lock held */
	ck_assert_int_eq(mc_ns_getattr(e->ns, d->ino, &a), -ENOENT);
	e->ino[e->n++] = d->ino;
}

START_TEST(eviction_takes_the_least_recently_touched_pages_first)
{
	struct mc_ns *ns = open_mem();
	struct evicted *e = calloc(1, sizeof(*e));
	struct mc_ns_stats s;
	struct mc_ns_attr a;
	uint64_t ino[5];

	e->ns = ns;
	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		ino[i] = put(ns, ROOT, name, 1000, 100 + (uint64_t)i, NULL);
	}
	/* touch order now: 1, 3 old; then 4, 0, 2 */
	ck_assert_int_eq(mc_ns_touch(ns, ino[4], 1000), 0);
	ck_assert_int_eq(mc_ns_touch(ns, ino[0], 1001), 0);
	ck_assert_int_eq(mc_ns_touch(ns, ino[2], 1002), 0);
	/* lookups and getattr are probes: they must not refresh */
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p1", &a), 0);
	ck_assert_int_eq(mc_ns_getattr(ns, ino[3], &a), 0);
	/* touches are batched: one of a page gone since is dropped quietly */
	ck_assert_int_eq(mc_ns_touch(ns, 987654, 5), 0);

	/* 2500 bytes at unit 1000 takes three pages */
	ck_assert_int_eq(mc_ns_evict(ns, 2500, 1000, evict_fn, e), 3000);
	ck_assert_uint_eq(e->n, 3);
	ck_assert_uint_eq(e->ino[0], ino[1]);
	ck_assert_uint_eq(e->ino[1], ino[3]);
	ck_assert_uint_eq(e->ino[2], ino[4]);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p0", &a), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "p2", &a), 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 2);
	ck_assert_uint_eq(s.bytes, 2000);
	ck_assert_uint_eq(s.evictions, 3);
	ck_assert_uint_eq(s.evicted_bytes, 3000);
	free(e);
	mc_ns_close(ns);
}
END_TEST

START_TEST(eviction_rounds_each_page_up_to_the_unit)
{
	struct mc_ns *ns = open_mem();
	struct evicted *e = calloc(1, sizeof(*e));

	e->ns = ns;
	put(ns, ROOT, "a", 1, 1, NULL);
	put(ns, ROOT, "b", 4097, 2, NULL);
	put(ns, ROOT, "c", 10, 3, NULL);
	/* a is 4096 of footprint: not enough; b adds 8192 */
	ck_assert_int_eq(mc_ns_evict(ns, 5000, 4096, evict_fn, e), 12288);
	ck_assert_uint_eq(e->n, 2);
	/* unit 0 means bytes */
	ck_assert_int_eq(mc_ns_evict(ns, 1, 0, evict_fn, e), 10);
	ck_assert_uint_eq(e->n, 3);
	/* nothing left */
	ck_assert_int_eq(mc_ns_evict(ns, 1, 0, evict_fn, e), 0);
	ck_assert_int_eq(mc_ns_evict(ns, 0, 0, evict_fn, e), 0);
	free(e);
	mc_ns_close(ns);
}
END_TEST

START_TEST(pinned_pages_are_never_evicted)
{
	struct mc_ns *ns = open_mem();
	struct evicted *e = calloc(1, sizeof(*e));
	struct mc_ns_attr a;
	uint64_t ino[300];

	e->ns = ns;
	/* more pinned pages than one eviction batch, oldest first */
	for (int i = 0; i < 300; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		ino[i] = put(ns, ROOT, name, 10, (uint64_t)i + 1, NULL);
		if (i < 200 || i % 2 == 0)
			mc_ns_pin(ns, ino[i]);
	}
	mc_ns_pin(ns, ino[201]);
	mc_ns_unpin(ns, ino[201]);
	mc_ns_pin(ns, ino[203]);
	mc_ns_pin(ns, ino[203]);
	mc_ns_unpin(ns, ino[203]);

	/* odd 201..299 except 203, which still holds one of its two pins */
	ck_assert_int_eq(mc_ns_evict(ns, UINT64_MAX, 1, evict_fn, e), 490);
	ck_assert_uint_eq(e->n, 49);
	for (size_t i = 0; i < e->n; i++) {
		uint64_t k = e->ino[i] - ino[0];

		ck_assert_uint_ge(k, 200);
		ck_assert_uint_eq(k % 2, 1);
		ck_assert_uint_ne(k, 203);
	}
	for (int i = 0; i < 300; i++) {
		bool pinned = i < 200 || i % 2 == 0 || i == 203;

		ck_assert_int_eq(mc_ns_getattr(ns, ino[i], &a),
				 pinned ? 0 : -ENOENT);
	}
	/* unpinning makes a page evictable again */
	mc_ns_unpin(ns, ino[0]);
	ck_assert_int_eq(mc_ns_evict(ns, 1, 1, evict_fn, e), 10);
	ck_assert_uint_eq(e->ino[e->n - 1], ino[0]);
	free(e);
	mc_ns_close(ns);
}
END_TEST

START_TEST(evict_with_every_page_pinned_returns_0_and_ends)
{
	struct mc_ns *ns = open_mem();
	struct evicted *e = calloc(1, sizeof(*e));
	struct mc_ns_stats s;

	e->ns = ns;
	for (int i = 0; i < 500; i++) {
		char name[16];

		snprintf(name, sizeof(name), "p%d", i);
		/* equal atimes: the cursor must page on by inode */
		mc_ns_pin(ns, put(ns, ROOT, name, 4096, 7, NULL));
	}
	ck_assert_int_eq(mc_ns_evict(ns, 1 << 30, 4096, evict_fn, e), 0);
	ck_assert_uint_eq(e->n, 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 500);
	ck_assert_uint_eq(s.evictions, 0);
	free(e);
	mc_ns_close(ns);
}
END_TEST

START_TEST(pins_of_thousands_of_inodes_survive_table_growth)
{
	struct mc_ns *ns = open_mem();
	struct evicted *e = calloc(1, sizeof(*e));
	uint64_t first = 0;

	e->ns = ns;
	for (int i = 0; i < 3000; i++) {
		char name[16];
		uint64_t ino;

		snprintf(name, sizeof(name), "p%d", i);
		ino = put(ns, ROOT, name, 1, (uint64_t)i, NULL);
		if (!first)
			first = ino;
		mc_ns_pin(ns, ino);
	}
	/* unpin every third: removal must keep the others findable */
	for (int i = 0; i < 3000; i += 3)
		mc_ns_unpin(ns, first + (uint64_t)i);
	ck_assert_int_eq(mc_ns_evict(ns, UINT64_MAX, 1, evict_fn, e), 1000);
	for (size_t i = 0; i < e->n; i++)
		ck_assert_uint_eq((e->ino[i] - first) % 3, 0);
	free(e);
	mc_ns_close(ns);
}
END_TEST

/* ------------------------------------------------------- totals, misc */

START_TEST(stats_count_pages_dirs_and_bytes_across_changes)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_stats s;
	uint64_t d = mkd(ns, ROOT, "d");

	mkd(ns, d, "e");
	put(ns, ROOT, "a", 100, 1, NULL);
	put(ns, d, "b", 200, 1, NULL);
	put(ns, d, "c", 300, 1, NULL);
	put(ns, d, "c", 50, 1, NULL);		/* replaces 300 */
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, "a", NULL), 0);
	ck_assert_int_eq(mc_ns_rename(ns, d, "b", d, "c", 0, NULL), 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 1);
	ck_assert_uint_eq(s.dirs, 3);
	ck_assert_uint_eq(s.bytes, 200);
	ck_assert_int_eq(mc_ns_rmdir(ns, d, "e"), 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.dirs, 2);
	mc_ns_close(ns);
}
END_TEST

START_TEST(forget_pages_drops_pages_and_keeps_directories)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_stats s;
	struct mc_ns_attr a;
	uint64_t d = mkd(ns, ROOT, "d");

	put(ns, ROOT, "a", 100, 1, NULL);
	put(ns, d, "b", 200, 1, NULL);
	ck_assert_int_eq(mc_ns_forget_pages(ns), 2);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "a", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, d, "b", &a), -ENOENT);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "d", &a), 0);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 0);
	ck_assert_uint_eq(s.bytes, 0);
	ck_assert_uint_eq(s.dirs, 2);
	ck_assert_int_eq(mc_ns_forget_pages(ns), 0);
	mc_ns_close(ns);
}
END_TEST

START_TEST(setattr_changes_only_what_the_flags_name)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_attr in = { .mode = S_IFDIR | 04711, .uid = 9, .gid = 9,
				 .mtime_ns = 555, .atime_ns = 666 };
	struct mc_ns_attr out, a;
	uint64_t p = put(ns, ROOT, "p", 1, 1, NULL);

	ck_assert_int_eq(mc_ns_setattr(ns, p, MC_NS_SET_MODE | MC_NS_SET_MTIME,
				       &in, &out), 0);
	/* the file type never changes */
	ck_assert_uint_eq(out.mode, S_IFREG | 04711);
	ck_assert_uint_eq(out.mtime_ns, 555);
	ck_assert_uint_eq(out.uid, 1000);
	ck_assert_uint_eq(out.atime_ns, 1);
	ck_assert_int_eq(mc_ns_getattr(ns, p, &a), 0);
	ck_assert_uint_eq(a.mode, S_IFREG | 04711);
	ck_assert_uint_eq(a.mtime_ns, 555);
	ck_assert_uint_eq(a.gid, 100);
	ck_assert_int_eq(mc_ns_setattr(ns, 31337, MC_NS_SET_UID, &in, &out),
			 -ENOENT);
	mc_ns_close(ns);
}
END_TEST

START_TEST(a_reopened_store_keeps_its_tree_and_never_reuses_a_number)
{
	char dir[] = "/tmp/test_ns.XXXXXX";
	char path[64], wal[80], shm[80];
	struct mc_ns *ns;
	struct mc_ns_attr a;
	struct mc_ns_stats s;
	uint64_t max_ino = 0, max_page = 0, ino, page, d;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ns.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	snprintf(shm, sizeof(shm), "%s-shm", path);

	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(mc_ns_open(&ns, path), 0);
		/* cross a persisted block boundary in each round */
		for (int i = 0; i < 1500; i++) {
			ck_assert_int_eq(mc_ns_reserve(ns, &ino, &page), 0);
			ck_assert_uint_gt(ino, max_ino);
			ck_assert_uint_gt(page, max_page);
			ck_assert_uint_ge(ino, MC_NS_FIRST_INO);
			ck_assert_uint_ge(page, 1);
			max_ino = ino;
			max_page = page;
		}
		if (round == 0) {
			d = mkd(ns, ROOT, "model");
			ck_assert_uint_gt(d, max_ino);
			max_ino = d;
			ino = put(ns, d, "page.bin", 4096, 77, NULL);
			ck_assert_uint_gt(ino, max_ino);
			max_ino = ino;
		}
		mc_ns_close(ns);
	}

	ck_assert_int_eq(mc_ns_open(&ns, path), 0);
	ck_assert_int_eq(mc_ns_lookup(ns, ROOT, "model", &a), 0);
	ck_assert(S_ISDIR(a.mode));
	ck_assert_int_eq(mc_ns_lookup(ns, a.ino, "page.bin", &a), 0);
	ck_assert_uint_eq(a.size, 4096);
	ck_assert_uint_eq(a.mtime_ns, 77);
	mc_ns_get_stats(ns, &s);
	ck_assert_uint_eq(s.pages, 1);
	ck_assert_uint_eq(s.dirs, 2);
	ck_assert_uint_eq(s.bytes, 4096);
	ck_assert_int_eq(mc_ns_reserve(ns, &ino, &page), 0);
	ck_assert_uint_gt(ino, max_ino);
	ck_assert_uint_gt(page, max_page);
	mc_ns_close(ns);

	unlink(wal);
	unlink(shm);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(standalone_pages_live_in_the_one_local_segment)
{
	struct mc_ns *ns = open_mem();
	struct mc_ns_commit c = {
		.parent = ROOT,
		.name = "p",
		.mode = S_IFREG | 0644,
		.size = 4096,
		.mtime_ns = 1,
		.crc32c = 0x12345678,
	};
	struct mc_ns_replicas r;

	ck_assert(!mc_ns_is_cluster(ns));
	ck_assert_uint_eq(mc_ns_segment(ns), MC_NS_LOCAL_SEGMENT);
	ck_assert_int_eq(mc_ns_reserve(ns, &c.ino, &c.page_id), 0);
	ck_assert_int_eq(mc_ns_commit(ns, &c, NULL), 0);
	ck_assert_int_eq(mc_ns_replicas(ns, c.page_id, &r), 0);
	ck_assert_uint_eq(r.size, 4096);
	ck_assert_uint_eq(r.crc32c, 0x12345678);
	ck_assert_uint_eq(r.count, 1);
	ck_assert_uint_eq(r.r[0].segment_id, MC_NS_LOCAL_SEGMENT);
	/* the copy it has already */
	ck_assert_int_eq(mc_ns_add_replica(ns, c.page_id), 0);
	ck_assert_int_eq(mc_ns_unlink(ns, ROOT, "p", NULL), 0);
	ck_assert_int_eq(mc_ns_replicas(ns, c.page_id, &r), -ENOENT);
	ck_assert_int_eq(mc_ns_add_replica(ns, c.page_id), -ENOENT);
	mc_ns_close(ns);
}
END_TEST

START_TEST(open_of_an_unwritable_path_gives_eio)
{
	struct mc_ns *ns = (struct mc_ns *)1;

	ck_assert_int_eq(mc_ns_open(&ns, "/nonexistent-dir/x/ns.db"), -EIO);
	ck_assert_ptr_null(ns);
}
END_TEST

/* One case per behaviour, so a failure names the behaviour it broke. */
static void add(Suite *s, const char *behaviour, const TTest *test)
{
	TCase *tc = tcase_create(behaviour);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *ns_suite(void)
{
	Suite *s = suite_create("ns");

	add(s, "the root is a directory after open",
	    root_is_a_directory_after_open);
	add(s, "lookup errors name their cause", lookup_errors_name_their_cause);
	add(s, "a name over 255 bytes gives ENAMETOOLONG everywhere",
	    a_name_over_255_bytes_gives_enametoolong_everywhere);
	add(s, "mkdir makes a directory and twice gives EEXIST",
	    mkdir_makes_a_directory_and_twice_gives_eexist);
	add(s, "mkdir under a page gives ENOTDIR and under nothing ENOENT",
	    mkdir_under_a_page_gives_enotdir_and_under_nothing_enoent);
	add(s, "rmdir refuses pages, missing names and non-empty directories",
	    rmdir_refuses_pages_missing_names_and_non_empty_directories);
	add(s, "commit makes a page visible with its attributes",
	    commit_makes_a_page_visible_with_its_attributes);
	add(s, "commit over a page replaces it and reports the old page",
	    commit_over_a_page_replaces_it_and_reports_the_old_page);
	add(s, "commit into a missing parent gives ENOENT",
	    commit_into_a_missing_parent_gives_enoent);
	add(s, "commit over a directory gives EISDIR, under a page ENOTDIR",
	    commit_over_a_directory_gives_eisdir_and_under_a_page_enotdir);
	add(s, "commit of an inode already committed gives EEXIST",
	    commit_of_an_inode_already_committed_gives_eexist);
	add(s, "unlink removes a page and reports it",
	    unlink_removes_a_page_and_reports_it);
	add(s, "unlink of a directory gives EISDIR",
	    unlink_of_a_directory_gives_eisdir);
	add(s, "rename over a page replaces it and reports the old page",
	    rename_over_a_page_replaces_it_and_reports_the_old_page);
	add(s, "rename with NOREPLACE onto an existing name gives EEXIST",
	    rename_with_noreplace_onto_an_existing_name_gives_eexist);
	add(s, "rename of a directory over a non-empty one gives ENOTEMPTY",
	    rename_of_a_directory_over_a_non_empty_directory_gives_enotempty);
	add(s, "rename of a directory into its own subtree gives EINVAL",
	    rename_of_a_directory_into_its_own_subtree_gives_einval);
	add(s, "rename between a page and a directory gives EISDIR or ENOTDIR",
	    rename_between_a_page_and_a_directory_gives_eisdir_or_enotdir);
	add(s, "rename onto itself is a no-op, of nothing gives ENOENT",
	    rename_onto_itself_is_a_no_op_and_of_nothing_gives_enoent);
	add(s, "readdir pages through 2500 entries returning each exactly once",
	    readdir_pages_through_2500_entries_returning_each_exactly_once);
	add(s, "readdir of the root does not list the root",
	    readdir_of_the_root_does_not_list_the_root);
	add(s, "readdir of a page gives ENOTDIR and of nothing ENOENT",
	    readdir_of_a_page_gives_enotdir_and_of_nothing_enoent);
	add(s, "eviction takes the least recently touched pages first",
	    eviction_takes_the_least_recently_touched_pages_first);
	add(s, "eviction rounds each page up to the unit",
	    eviction_rounds_each_page_up_to_the_unit);
	add(s, "pinned pages are never evicted", pinned_pages_are_never_evicted);
	add(s, "evict with every page pinned returns 0 and ends",
	    evict_with_every_page_pinned_returns_0_and_ends);
	add(s, "pins of thousands of inodes survive table growth",
	    pins_of_thousands_of_inodes_survive_table_growth);
	add(s, "stats count pages, dirs and bytes across changes",
	    stats_count_pages_dirs_and_bytes_across_changes);
	add(s, "forget_pages drops pages and keeps directories",
	    forget_pages_drops_pages_and_keeps_directories);
	add(s, "setattr changes only what the flags name",
	    setattr_changes_only_what_the_flags_name);
	add(s, "a reopened store keeps its tree and never reuses a number",
	    a_reopened_store_keeps_its_tree_and_never_reuses_a_number);
	add(s, "standalone pages live in the one local segment",
	    standalone_pages_live_in_the_one_local_segment);
	add(s, "open of an unwritable path gives EIO",
	    open_of_an_unwritable_path_gives_eio);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ns_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
