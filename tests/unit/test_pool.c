/* test_pool.c - the pool memory: tmpfs mounts, adoption, page life cycle */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <linux/magic.h>
#include <unistd.h>

#include "pool.h"
#include "banned.h"

#define MiB (1ull << 20)
#define NOBODY 65534
/* a user that is neither the tests nor nobody: whoever took a name first */
#define STRANGER 65533

/*
 * Set by the unchecked fixture in the runner process, so the teardown
 * there still unmounts and removes the pools of a test that failed.
 */
static char base[PATH_MAX];

/* True when path is on a filesystem that keeps its files in memory. */
static bool on_memory(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 &&
	       (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC);
}

/*
 * Checks a test cannot make here are not passed in silence: it says so in
 * the log, on stderr (unbuffered, there even if the test dies next).
 */
static void note_skipped(const char *test, const char *what)
{
	fprintf(stderr, "NOTE: %s: %s\n", test, what);
}

/*
 * The base is on disk when the machine has one: a pool there that cannot
 * mount moves to /dev/shm, which the /dev/shm checks are about, while one
 * on memory stays.  /tmp is often a tmpfs; /var/tmp rarely.
 */
static void base_setup(void)
{
	static const char *const parents[] = { "/tmp", "/var/tmp" };
	const char *parent = parents[0];
	char tmpl[PATH_MAX];
	char *canon;

	for (size_t i = 0; i < sizeof(parents) / sizeof(parents[0]); i++) {
		if (access(parents[i], W_OK) == 0 && !on_memory(parents[i])) {
			parent = parents[i];
			break;
		}
	}
	snprintf(tmpl, sizeof(tmpl), "%s/mc-test-pool-XXXXXX", parent);
	/* canonical, as the pool keeps its directory and names /dev/shm */
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	canon = realpath(tmpl, NULL);
	ck_assert_ptr_nonnull(canon);
	snprintf(base, sizeof(base), "%s", canon);
	free(canon);
}

static void path_in_base(char *buf, size_t len, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", base, name);

	ck_assert(n > 0 && (size_t)n < len);
}

static const char *const pool_names[] = { "pool", "other", "state/pool" };

/*
 * The /dev/shm directory the pool under base called name would fall back
 * to; false when there is no /dev/shm.
 */
static bool shm_path_of(const char *name, char *buf, size_t len)
{
	char dir[PATH_MAX], shm_name[MC_POOL_SHM_NAME_MAX + 1];
	char *root = realpath("/dev/shm", NULL);
	int n;

	if (!root)
		return false;
	path_in_base(dir, sizeof(dir), name);
	ck_assert_int_eq(mc_pool_shm_name(dir, shm_name, sizeof(shm_name)), 0);
	n = snprintf(buf, len, "%s/%s", root, shm_name);
	ck_assert(n > 0 && (size_t)n < len);
	free(root);
	return true;
}

/* Unmount and remove every pool a test may have made under base. */
static int destroy_pools(void)
{
	char path[PATH_MAX];
	int failed = 0;

	for (size_t i = 0; i < sizeof(pool_names) / sizeof(pool_names[0]);
	     i++) {
		path_in_base(path, sizeof(path), pool_names[i]);
		if (mc_pool_destroy(path) != 0) {
			printf("cannot destroy test pool '%s': unmount it by hand\n",
			       path);
			failed++;
		}
	}
	return failed;
}

static void base_teardown(void)
{
	char path[PATH_MAX];

	destroy_pools();
	/* what a test put in the way on /dev/shm (destroy leaves it) */
	for (size_t i = 0; i < sizeof(pool_names) / sizeof(pool_names[0]);
	     i++)
		if (shm_path_of(pool_names[i], path, sizeof(path)) &&
		    unlink(path) < 0)
			rmdir(path);
	path_in_base(path, sizeof(path), "state");
	umount2(path, MNT_DETACH);
	rmdir(path);
	path_in_base(path, sizeof(path), "decoy");
	rmdir(path);
	path_in_base(path, sizeof(path), "ballast");
	unlink(path);
	rmdir(base);
}

static bool have_root(const char *test)
{
	if (geteuid() == 0)
		return true;
	note_skipped(test, "tmpfs checks skipped: mounting needs root");
	return false;
}

/* Mounts at path, and the superblock options of the topmost into opts. */
static int mounts_at(const char *path, char *opts, size_t len)
{
	char line[4096];
	int count = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char point[PATH_MAX], type[64], source[256], sopts[1024];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
		    strcmp(point, path) != 0)
			continue;
		ck_assert_int_eq(sscanf(sep + 3, "%63s %255s %1023s", type,
					source, sopts),
				 3);
		ck_assert_str_eq(type, "tmpfs");
		ck_assert_str_eq(source, "mooncake-pool");
		if (opts)
			snprintf(opts, len, "%s", sopts);
		count++;
	}
	fclose(f);
	return count;
}

static void fill(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 31 + seed);
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Create, write and commit page id holding len bytes made from seed. */
static void put_page(struct mc_pool *pool, uint64_t id, size_t len,
		     unsigned seed)
{
	unsigned char *buf = malloc(len);
	int fd;

	ck_assert_ptr_nonnull(buf);
	fill(buf, len, seed);
	fd = mc_pool_create(pool, id);
	ck_assert_int_ge(fd, 0);
	write_all(fd, buf, len);
	close(fd);
	ck_assert_int_eq(mc_pool_commit(pool, id), 0);
	free(buf);
}

/* Check the bytes readable from fd are the ones put_page() wrote. */
static void check_fd_bytes(int fd, size_t len, unsigned seed)
{
	unsigned char *want = malloc(len), *got = malloc(len + 1);
	ssize_t n;

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	fill(want, len, seed);
	n = pread(fd, got, len + 1, 0);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert_int_eq(memcmp(want, got, len), 0);
	free(want);
	free(got);
}

static void check_page(struct mc_pool *pool, uint64_t id, size_t len,
		       unsigned seed)
{
	int fd = mc_pool_open_page(pool, id, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	check_fd_bytes(fd, len, seed);
	close(fd);
}

static bool pending_exists(const char *dir, uint64_t id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/pending/%016llx", dir,
		 (unsigned long long)id);
	return access(path, F_OK) == 0;
}

static int remember_id(void *ctx, uint64_t id)
{
	*(uint64_t *)ctx = id;
	return 0;
}

START_TEST(fresh_open_mounts_huge_tmpfs)
{
	struct mc_pool *pool;
	char dir[PATH_MAX], opts[1024];
	bool adopted = true;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "state/pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(!adopted);
	ck_assert_int_eq(mc_pool_kind(pool), MC_POOL_TMPFS_HUGE);
	ck_assert_str_eq(mc_pool_kind_name(mc_pool_kind(pool)),
			 "tmpfs huge=always");
	ck_assert_str_eq(mc_pool_dir(pool), dir);
	ck_assert_int_eq(mounts_at(dir, opts, sizeof(opts)), 1);
	ck_assert_ptr_nonnull(strstr(opts, "huge=always"));
	ck_assert_ptr_nonnull(strstr(opts, "size=16384k"));
	mc_pool_close(pool);
}
END_TEST

START_TEST(a_page_keeps_its_checksum_and_the_pool_its_identity)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	uint8_t uuid[16], again[16], zero[16] = { 0 };
	bool adopted;
	uint32_t crc = 0;
	uint64_t seen = 0;
	int fd;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "state/pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted), 0);
	fd = mc_pool_create(pool, 7);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mc_pool_get_crc(fd, &crc), -ENODATA);
	ck_assert_int_eq(mc_pool_set_crc(fd, 0xe3069283), 0);
	ck_assert_int_eq(mc_pool_get_crc(fd, &crc), 0);
	ck_assert_uint_eq(crc, 0xe3069283);
	close(fd);
	ck_assert_int_eq(mc_pool_commit(pool, 7), 0);
	ck_assert_int_eq(mc_pool_foreach_page(pool, remember_id, &seen), 0);
	ck_assert_uint_eq(seen, 7);
	ck_assert_int_eq(mc_pool_segment_uuid(pool, uuid), 0);
	ck_assert(memcmp(uuid, zero, sizeof(zero)) != 0);
	mc_pool_close(pool);
	/* the same memory is the same segment after a restart */
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted), 0);
	ck_assert(adopted);
	ck_assert_int_eq(mc_pool_segment_uuid(pool, again), 0);
	ck_assert(memcmp(uuid, again, sizeof(uuid)) == 0);
	mc_pool_close(pool);
}
END_TEST

START_TEST(committed_page_survives_reopen)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted = true;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(!adopted);
	put_page(pool, 0xabcdef, MiB + 17, 3);
	ck_assert(mc_pool_has_page(pool, 0xabcdef));
	mc_pool_close(pool);

	/* still mounted after close: the memory outlives the daemon */
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 1);
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(adopted);
	ck_assert_int_eq(mc_pool_kind(pool), MC_POOL_TMPFS_HUGE);
	/* adopted, not mounted over */
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 1);
	ck_assert(mc_pool_has_page(pool, 0xabcdef));
	check_page(pool, 0xabcdef, MiB + 17, 3);
	mc_pool_close(pool);
}
END_TEST

static void pending_discarded(unsigned flags)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;
	int fd;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, flags, &adopted),
			 0);
	fd = mc_pool_create(pool, 7);
	ck_assert_int_ge(fd, 0);
	write_all(fd, "half a page", 11);
	close(fd);
	ck_assert_int_eq(mc_pool_create(pool, 7), -EEXIST);
	ck_assert(pending_exists(mc_pool_dir(pool), 7));
	mc_pool_close(pool);

	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, flags, &adopted),
			 0);
	ck_assert(!pending_exists(mc_pool_dir(pool), 7));
	ck_assert(!mc_pool_has_page(pool, 7));
	fd = mc_pool_create(pool, 7);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(mc_pool_discard(pool, 7), 0);
	ck_assert(!pending_exists(mc_pool_dir(pool), 7));
	mc_pool_close(pool);
}

START_TEST(pending_pages_are_discarded_at_reopen)
{
	pending_discarded(MC_POOL_NO_MOUNT);
	if (have_root(__func__)) {
		ck_assert_int_eq(destroy_pools(), 0);
		pending_discarded(MC_POOL_HUGE);
	}
}
END_TEST

/*
 * In a cluster a written page stays in pending/ until the master took its
 * commit, and the master may send a reader to it before the move.
 */
static void final_pages_served(unsigned flags)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	unsigned char buf[8192];
	bool adopted;
	int fd, rfd;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, flags, &adopted),
			 0);
	fill(buf, sizeof(buf), 5);
	fd = mc_pool_create(pool, 5);
	ck_assert_int_ge(fd, 0);
	write_all(fd, buf, sizeof(buf));
	/* still being written (no checksum): nobody reads it */
	ck_assert_int_eq(mc_pool_open_final(pool, 5), -ENOENT);
	if (mc_pool_set_crc(fd, 0x5eed) == -ENOTSUP) {
		printf("%s: the filesystem of '%s' keeps no checksums\n",
		       __func__, dir);
		close(fd);
		mc_pool_close(pool);
		return;
	}
	close(fd);
	/* checksummed, as before the commit goes to the master: final */
	rfd = mc_pool_open_final(pool, 5);
	ck_assert_int_ge(rfd, 0);
	check_fd_bytes(rfd, sizeof(buf), 5);
	/* moved to pages/ while served: the same bytes, and found there */
	ck_assert_int_eq(mc_pool_commit(pool, 5), 0);
	check_fd_bytes(rfd, sizeof(buf), 5);
	close(rfd);
	rfd = mc_pool_open_final(pool, 5);
	ck_assert_int_ge(rfd, 0);
	check_fd_bytes(rfd, sizeof(buf), 5);
	close(rfd);
	/* freed, or discarded before its move: gone at once */
	ck_assert_int_eq(mc_pool_free(pool, 5), 0);
	ck_assert_int_eq(mc_pool_open_final(pool, 5), -ENOENT);
	fd = mc_pool_create(pool, 6);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mc_pool_set_crc(fd, 0x5eed), 0);
	close(fd);
	ck_assert_int_eq(mc_pool_discard(pool, 6), 0);
	ck_assert_int_eq(mc_pool_open_final(pool, 6), -ENOENT);
	mc_pool_close(pool);
}

START_TEST(a_final_page_on_its_way_to_pages_is_served)
{
	final_pages_served(MC_POOL_NO_MOUNT);
	if (have_root(__func__)) {
		ck_assert_int_eq(destroy_pools(), 0);
		final_pages_served(MC_POOL_HUGE);
	}
}
END_TEST

static void free_keeps_reader(unsigned flags)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;
	int fd;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, flags, &adopted),
			 0);
	put_page(pool, 42, 3 * MiB, 9);
	fd = mc_pool_open_page(pool, 42, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(mc_pool_free(pool, 42), 0);
	ck_assert(!mc_pool_has_page(pool, 42));
	ck_assert_int_eq(mc_pool_open_page(pool, 42, O_RDONLY), -ENOENT);
	check_fd_bytes(fd, 3 * MiB, 9);
	close(fd);
	mc_pool_close(pool);
}

START_TEST(free_of_an_open_page_keeps_the_readers_bytes)
{
	free_keeps_reader(MC_POOL_NO_MOUNT);
	if (have_root(__func__)) {
		ck_assert_int_eq(destroy_pools(), 0);
		free_keeps_reader(MC_POOL_HUGE);
	}
}
END_TEST

START_TEST(usage_reports_capacity_and_grows_in_huge_pages)
{
	struct mc_pool_usage u0, u1, u2;
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u0), 0);
	ck_assert_uint_eq(u0.capacity, 16 * MiB);
	ck_assert_uint_eq(u0.unit, 2 * MiB);
	ck_assert_uint_eq(u0.used, 0);

	/* one byte takes a whole 2 MiB page */
	put_page(pool, 1, 1, 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u1), 0);
	ck_assert_uint_eq(u1.used, u0.used + 2 * MiB);

	/* 3 MiB round up to two huge pages */
	put_page(pool, 2, 3 * MiB, 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u2), 0);
	ck_assert_uint_eq(u2.used, u1.used + 4 * MiB);
	ck_assert_uint_eq(u2.capacity, 16 * MiB);

	ck_assert_int_eq(mc_pool_free(pool, 2), 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u2), 0);
	ck_assert_uint_eq(u2.used, u1.used);
	mc_pool_close(pool);
}
END_TEST

/* A stop predicate that lets one 64 KiB step through, then stops. */
static bool stop_after_one(void *ctx)
{
	int *calls = ctx;

	return ++*calls > 1;
}

START_TEST(the_reserve_holds_memory_without_counting_as_use)
{
	struct mc_pool_usage u0, u1;
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;
	int fd;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u0), 0);
	ck_assert_int_eq(mc_pool_reserve_resize(pool, 9 * MiB, NULL, NULL), 0);
	/* rounded down to whole huge pages */
	ck_assert_uint_eq(mc_pool_reserve_size(pool), 8 * MiB);
	ck_assert_int_eq(mc_pool_usage(pool, &u1), 0);
	ck_assert_uint_eq(u1.used, u0.used);

	/* the reserve is real memory: 8 MiB of pages no longer fit... */
	fd = mc_pool_create(pool, 1);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_lt(fallocate(fd, 0, 0, 10 * MiB), 0);
	ck_assert_int_eq(errno, ENOSPC);
	/* ...until the reserve lends it */
	ck_assert_int_eq(mc_pool_reserve_resize(pool, 2 * MiB, NULL, NULL), 0);
	ck_assert_int_eq(fallocate(fd, 0, 0, 10 * MiB), 0);
	close(fd);
	/* a growth told to stop gives up and leaves the size as it was */
	ck_assert_int_eq(mc_pool_reserve_resize(pool, 4 * MiB, stop_after_one,
						&(int){ 0 }),
			 -EAGAIN);
	ck_assert_uint_eq(mc_pool_reserve_size(pool), 2 * MiB);
	/* and it survives a reopen with the mount */
	mc_pool_close(pool);
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(adopted);
	ck_assert_uint_eq(mc_pool_reserve_size(pool), 2 * MiB);
	mc_pool_close(pool);
}
END_TEST

START_TEST(writing_past_capacity_fails_with_enospc)
{
	static char chunk[MiB];
	struct mc_pool *pool;
	char dir[PATH_MAX];
	size_t written = 0;
	bool adopted;
	ssize_t n = 0;
	int fd;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 4 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	memset(chunk, 0x5a, sizeof(chunk));
	fd = mc_pool_create(pool, 3);
	ck_assert_int_ge(fd, 0);
	while (written < 8 * MiB) {
		n = write(fd, chunk, sizeof(chunk));
		if (n < 0)
			break;
		written += (size_t)n;
	}
	ck_assert_int_eq(n, -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_uint_le(written, 4 * MiB);
	close(fd);
	mc_pool_close(pool);
}
END_TEST

START_TEST(discard_and_free_of_a_missing_page_succeed)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 0);
	ck_assert_int_eq(mc_pool_discard(pool, 99), 0);
	ck_assert_int_eq(mc_pool_free(pool, 99), 0);
	ck_assert(!mc_pool_has_page(pool, 99));
	ck_assert_int_eq(mc_pool_commit(pool, 99), -ENOENT);
	ck_assert_int_eq(mc_pool_open_page(pool, 99, O_RDONLY), -ENOENT);
	mc_pool_close(pool);
}
END_TEST

START_TEST(no_mount_uses_the_directory_as_it_is)
{
	struct mc_pool_usage u;
	struct mc_pool *pool;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	bool adopted = true;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 64 * MiB, MC_POOL_NO_MOUNT |
							MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(!adopted);
	ck_assert_int_eq(mc_pool_kind(pool), MC_POOL_DIR);
	ck_assert_str_eq(mc_pool_kind_name(MC_POOL_DIR), "directory");
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 0);
	ck_assert_int_eq(mc_pool_usage(pool, &u), 0);
	ck_assert_uint_eq(u.capacity, 64 * MiB);
	ck_assert_uint_eq(u.unit, 4096);
	ck_assert_uint_le(u.used, u.capacity);

	put_page(pool, 0xff, 4096, 5);
	snprintf(path, sizeof(path), "%s/pages/00000000000000ff", dir);
	ck_assert_str_eq(mc_pool_page_path(pool, 0xff, path, sizeof(path)),
			 path);
	ck_assert_int_eq(access(path, F_OK), 0);
	mc_pool_close(pool);

	ck_assert_int_eq(mc_pool_open(&pool, dir, 64 * MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 0);
	ck_assert(adopted);
	check_page(pool, 0xff, 4096, 5);
	mc_pool_close(pool);

	ck_assert_int_eq(mc_pool_destroy(dir), 0);
	ck_assert_int_eq(access(dir, F_OK), -1);
}
END_TEST

static uint64_t used_of(struct mc_pool *pool)
{
	struct mc_pool_usage u;

	ck_assert_int_eq(mc_pool_usage(pool, &u), 0);
	return u.used;
}

/* Write len bytes of ballast at the end of fd. */
static void append(int fd, size_t len)
{
	static char chunk[MiB];

	memset(chunk, 0x33, sizeof(chunk));
	while (len > 0) {
		size_t n = len < sizeof(chunk) ? len : sizeof(chunk);

		write_all(fd, chunk, n);
		len -= n;
	}
}

/*
 * Issue: a directory pool's use was the free space its filesystem lost
 * since open, so on /dev/shm other programs' memory (NCCL, PyTorch) was
 * pool use, and every create evicted everything.
 */
START_TEST(a_directory_pool_counts_only_its_own_files_as_used)
{
	struct mc_pool *pool;
	char dir[PATH_MAX], other[PATH_MAX];
	uint64_t pages;
	bool adopted;
	int fd;

	path_in_base(dir, sizeof(dir), "pool");
	path_in_base(other, sizeof(other), "ballast");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 64 * MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 0);
	ck_assert_uint_eq(used_of(pool), 0);

	/* someone else's 16 MiB on the pool's filesystem */
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	append(fd, 16 * MiB);
	ck_assert_int_eq(fsync(fd), 0);
	close(fd);
	ck_assert_uint_eq(used_of(pool), 0);

	/* committed pages: each its size in whole 4 KiB pages, as evicted */
	put_page(pool, 1, 1000, 1);
	put_page(pool, 2, 3 * MiB + 1, 2);
	pages = 4096 + 3 * MiB + 4096;
	ck_assert_uint_eq(used_of(pool), pages);

	/* a write in flight counts as it grows, and once when committed */
	fd = mc_pool_create(pool, 3);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(used_of(pool), pages);
	append(fd, 10000);
	ck_assert_uint_eq(used_of(pool), pages + 12288);
	append(fd, MiB);
	ck_assert_uint_eq(used_of(pool), pages + MiB + 12288);
	close(fd);
	ck_assert_int_eq(mc_pool_commit(pool, 3), 0);
	pages += MiB + 12288;
	ck_assert_uint_eq(used_of(pool), pages);

	/* a write given up no longer counts */
	fd = mc_pool_create(pool, 4);
	ck_assert_int_ge(fd, 0);
	append(fd, 5000);
	ck_assert_uint_eq(used_of(pool), pages + 8192);
	ck_assert_int_eq(mc_pool_discard(pool, 4), 0);
	close(fd);
	ck_assert_uint_eq(used_of(pool), pages);

	/* a page freed counts no more, and a second free takes nothing */
	ck_assert_int_eq(mc_pool_free(pool, 2), 0);
	pages -= 3 * MiB + 4096;
	ck_assert_uint_eq(used_of(pool), pages);
	ck_assert_int_eq(mc_pool_free(pool, 2), 0);
	ck_assert_uint_eq(used_of(pool), pages);
	ck_assert_int_eq(mc_pool_commit(pool, 2), -ENOENT);
	ck_assert_uint_eq(used_of(pool), pages);
	mc_pool_close(pool);
	ck_assert_int_eq(unlink(other), 0);
}
END_TEST

/*
 * Issue: the pages a restarted daemon adopted in a directory pool were not
 * counted, so a restart into a full pool could grow past its capacity.
 */
START_TEST(a_reopened_directory_pool_counts_its_pages_as_used)
{
	struct mc_pool_usage u;
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;
	int fd;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 8 * MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 0);
	put_page(pool, 1, 1000, 1);
	put_page(pool, 2, 2 * MiB, 2);
	put_page(pool, 3, 5 * MiB, 3);
	/* never closed by its writer: gone at reopen */
	fd = mc_pool_create(pool, 4);
	ck_assert_int_ge(fd, 0);
	append(fd, MiB);
	close(fd);
	mc_pool_close(pool);

	/* a smaller pool now: use past the capacity is reported as it is */
	ck_assert_int_eq(mc_pool_open(&pool, dir, 4 * MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 0);
	ck_assert(adopted);
	ck_assert_int_eq(mc_pool_usage(pool, &u), 0);
	ck_assert_uint_eq(u.capacity, 4 * MiB);
	ck_assert_uint_eq(u.used, 4096 + 7 * MiB);
	ck_assert_int_eq(mc_pool_free(pool, 3), 0);
	ck_assert_uint_eq(used_of(pool), 4096 + 2 * MiB);
	mc_pool_close(pool);
}
END_TEST

static void two_pools(unsigned flags)
{
	struct mc_pool *a, *b;
	char da[PATH_MAX], db[PATH_MAX];
	bool adopted;

	path_in_base(da, sizeof(da), "pool");
	path_in_base(db, sizeof(db), "other");
	ck_assert_int_eq(mc_pool_open(&a, da, 8 * MiB, flags, &adopted), 0);
	ck_assert_int_eq(mc_pool_open(&b, db, 8 * MiB, flags, &adopted), 0);
	put_page(a, 5, 1000, 1);
	put_page(b, 5, 2000, 2);
	ck_assert_int_eq(mc_pool_free(a, 5), 0);
	ck_assert(!mc_pool_has_page(a, 5));
	check_page(b, 5, 2000, 2);
	mc_pool_close(a);
	mc_pool_close(b);
}

START_TEST(two_pools_in_one_process_stay_apart)
{
	two_pools(MC_POOL_NO_MOUNT);
	if (have_root(__func__)) {
		ck_assert_int_eq(destroy_pools(), 0);
		two_pools(MC_POOL_HUGE);
	}
}
END_TEST

START_TEST(adopted_tmpfs_is_resized_to_the_new_capacity)
{
	struct mc_pool_usage u;
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 8 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	put_page(pool, 1, 6 * MiB, 4);
	mc_pool_close(pool);

	ck_assert_int_eq(mc_pool_open(&pool, dir, 16 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(adopted);
	ck_assert_int_eq(mc_pool_usage(pool, &u), 0);
	ck_assert_uint_eq(u.capacity, 16 * MiB);
	mc_pool_close(pool);

	/* shrinking below what the pages use keeps the old size */
	ck_assert_int_eq(mc_pool_open(&pool, dir, 4 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	ck_assert(adopted);
	ck_assert_int_eq(mc_pool_usage(pool, &u), 0);
	ck_assert_uint_eq(u.capacity, 16 * MiB);
	check_page(pool, 1, 6 * MiB, 4);
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 1);
	mc_pool_close(pool);
}
END_TEST

START_TEST(destroy_unmounts_and_removes_the_pool)
{
	struct mc_pool *pool;
	char dir[PATH_MAX];
	bool adopted;

	if (!have_root(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 8 * MiB, MC_POOL_HUGE,
				      &adopted),
			 0);
	put_page(pool, 1, 4096, 0);
	mc_pool_close(pool);
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 1);
	ck_assert_int_eq(mc_pool_destroy(dir), 0);
	ck_assert_int_eq(mounts_at(dir, NULL, 0), 0);
	ck_assert_int_eq(access(dir, F_OK), -1);
	/* destroying what is gone is not an error */
	ck_assert_int_eq(mc_pool_destroy(dir), 0);
}
END_TEST

START_TEST(shm_names_are_stable_distinct_safe_and_bounded)
{
	/* pairs a plain '/' to '-' or '_' mapping would merge */
	static const char *const fixed[] = {
		"/run/mooncake/_mnt_kv/pool", "/run/mooncake/-mnt-kv/pool",
		"/run/mooncake/.mnt.kv/pool", "/run/mooncake/_mnt_kv/pool/",
		"/a/b", "/a-b", "/a_b", "/a.b", "/a.2fb", "/a..b", "/a b",
		"/a\xc3\xa9", "/A/B", "/",
	};
	enum { NFIXED = sizeof(fixed) / sizeof(fixed[0]), NLONG = 5 };
	char longs[NLONG][PATH_MAX];
	char names[NFIXED + NLONG][MC_POOL_SHM_NAME_MAX + 1];
	char again[MC_POOL_SHM_NAME_MAX + 1], small[16];
	const size_t body = MC_POOL_SHM_NAME_MAX - strlen("mooncake-pool-");
	size_t i, j;

	/* the longest name spelled out, one byte more, and long paths
	 * that differ only at the end, past where the name is cut */
	memset(longs, 0, sizeof(longs));
	longs[0][0] = longs[1][0] = '/';
	memset(longs[0] + 1, 'a', body);
	memset(longs[1] + 1, 'a', body + 1);
	for (i = 2; i < NLONG; i++) {
		longs[i][0] = '/';
		memset(longs[i] + 1, 'x', sizeof(longs[i]) - 3);
	}
	longs[3][sizeof(longs[3]) - 3] = 'y';
	longs[4][300] = '\0';

	for (i = 0; i < NFIXED + NLONG; i++) {
		const char *dir = i < NFIXED ? fixed[i] : longs[i - NFIXED];
		const char *name = names[i];

		ck_assert_int_eq(mc_pool_shm_name(dir, names[i],
						  sizeof(names[i])),
				 0);
		/* stable: the same directory gives the same name */
		ck_assert_int_eq(mc_pool_shm_name(dir, again, sizeof(again)),
				 0);
		ck_assert_str_eq(again, name);
		/* safe: portable file name characters, no leading '.' or '-' */
		ck_assert_uint_le(strlen(name), MC_POOL_SHM_NAME_MAX);
		ck_assert(strncmp(name, "mooncake-pool-", 14) == 0);
		for (const char *p = name; *p; p++)
			ck_assert_msg((*p >= 'a' && *p <= 'z') ||
					      (*p >= 'A' && *p <= 'Z') ||
					      (*p >= '0' && *p <= '9') ||
					      strchr("._-", *p),
				      "name '%s' holds byte 0x%02x", name,
				      (unsigned char)*p);
		/* a cut name is marked, and only a cut one */
		ck_assert_int_eq(strstr(name, "..") != NULL,
				 strlen(dir) - 1 > body);
	}
	/* distinct directories, distinct names */
	for (i = 0; i < NFIXED + NLONG; i++)
		for (j = i + 1; j < NFIXED + NLONG; j++)
			ck_assert_msg(strcmp(names[i], names[j]) != 0,
				      "directories %zu and %zu share '%s'", i,
				      j, names[i]);
	/* the spelling is a promise: restarts after an upgrade find it */
	ck_assert_str_eq(names[0], "mooncake-pool-run-mooncake-_mnt_kv-pool");
	ck_assert_str_eq(names[10], "mooncake-pool-a.20b");
	ck_assert_uint_eq(strlen(names[NFIXED]), MC_POOL_SHM_NAME_MAX);
	ck_assert_uint_eq(strlen(names[NFIXED + 1]), MC_POOL_SHM_NAME_MAX);

	ck_assert_int_eq(mc_pool_shm_name("run/mooncake", again, sizeof(again)),
			 -EINVAL);
	ck_assert_int_eq(mc_pool_shm_name(NULL, again, sizeof(again)),
			 -EINVAL);
	ck_assert_int_eq(mc_pool_shm_name("/run/mooncake", small,
					  sizeof(small)),
			 -ENAMETOOLONG);
}
END_TEST

/* True when a pool under base that cannot mount goes to /dev/shm. */
static bool shm_fallback_applies(const char *test)
{
	struct statfs sf;

	if (on_memory(base)) {
		note_skipped(test,
			     "/dev/shm checks skipped: they need a test base on disk, and /tmp and /var/tmp are memory");
		return false;
	}
	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC) {
		note_skipped(test,
			     "/dev/shm checks skipped: /dev/shm is not a tmpfs");
		return false;
	}
	return true;
}

/*
 * Run fn(arg) in a child as nobody, for whom mounting fails with EPERM.
 * Returns its exit status: 0 when fn found what it expected.
 */
static int as_nobody(int (*fn)(const void *arg), const void *arg)
{
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 ||
		    setuid(NOBODY) < 0)
			_exit(100);
		_exit(fn(arg));
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

struct fallback {
	char dir[PATH_MAX];	/* the pool directory asked for */
	char want[PATH_MAX];	/* the one it should use */
};

/* As nobody: open, write a page, reopen; 0 or the step that failed. */
static int fall_back_as_nobody(const void *arg)
{
	const struct fallback *fb = arg;
	struct mc_pool_usage u;
	struct mc_pool *pool;
	bool adopted = true;
	int fd;

	if (mc_pool_open(&pool, fb->dir, 32 * MiB, MC_POOL_HUGE, &adopted) != 0)
		return 1;
	if (adopted || mc_pool_kind(pool) != MC_POOL_DIR)
		return 2;
	if (strcmp(mc_pool_dir(pool), fb->want) != 0)
		return 3;
	if (mc_pool_usage(pool, &u) != 0 || u.capacity != 32 * MiB)
		return 4;
	fd = mc_pool_create(pool, 0x42);
	if (fd < 0 || write(fd, "kv", 2) != 2 || close(fd) < 0 ||
	    mc_pool_commit(pool, 0x42) != 0)
		return 5;
	mc_pool_close(pool);
	/* a restart finds the same directory and the page in it */
	if (mc_pool_open(&pool, fb->dir, 32 * MiB, MC_POOL_HUGE, &adopted) != 0)
		return 6;
	if (!adopted || strcmp(mc_pool_dir(pool), fb->want) != 0 ||
	    !mc_pool_has_page(pool, 0x42))
		return 7;
	mc_pool_close(pool);
	return 0;
}

START_TEST(open_without_mount_permission_keeps_pages_on_dev_shm)
{
	struct fallback fb;
	char page[PATH_MAX + 32];
	struct stat st;
	bool shm;

	if (!have_root(__func__))
		return;
	shm = shm_fallback_applies(__func__);
	path_in_base(fb.dir, sizeof(fb.dir), "pool");
	if (!shm || !shm_path_of("pool", fb.want, sizeof(fb.want)))
		snprintf(fb.want, sizeof(fb.want), "%s", fb.dir);
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	ck_assert_int_eq(as_nobody(fall_back_as_nobody, &fb), 0);
	ck_assert_int_eq(mounts_at(fb.dir, NULL, 0), 0);
	if (shm) {
		ck_assert_int_eq(lstat(fb.want, &st), 0);
		ck_assert(S_ISDIR(st.st_mode));
		ck_assert_uint_eq(st.st_uid, NOBODY);
		ck_assert_uint_eq(st.st_mode & 07777, 0700);
		/* nothing went to the state directory on disk */
		snprintf(page, sizeof(page), "%s/pages/0000000000000042",
			 fb.dir);
		ck_assert_int_eq(access(page, F_OK), -1);
	}
	snprintf(page, sizeof(page), "%s/pages/0000000000000042", fb.want);
	ck_assert_int_eq(access(page, F_OK), 0);
	/* freeing the pool frees the /dev/shm directory too */
	ck_assert_int_eq(mc_pool_destroy(fb.dir), 0);
	ck_assert_int_eq(access(fb.want, F_OK), -1);
	ck_assert_int_eq(access(fb.dir, F_OK), -1);
}
END_TEST

/* As nobody: open the pool at arg; 200 if it opened, else its -errno. */
static int open_refused_as_nobody(const void *arg)
{
	struct mc_pool *pool;
	bool adopted;
	int r;

	r = mc_pool_open(&pool, arg, 32 * MiB, MC_POOL_HUGE, &adopted);
	if (r == 0) {
		mc_pool_close(pool);
		return 200;
	}
	return -r;
}

START_TEST(a_dev_shm_name_taken_by_someone_else_is_refused)
{
	static const struct {
		const char *what;
		int err;
	} taken[] = {
		{ "a symlink to a directory nobody could use", ENOTDIR },
		{ "a file", ENOTDIR },
		{ "a directory of another user, open to read", EPERM },
		{ "a directory of another user, closed", EACCES },
		{ "a directory of nobody's, open to others", EPERM },
	};
	char dir[PATH_MAX], shm[PATH_MAX], decoy[PATH_MAX];
	char path[PATH_MAX + 16];
	struct stat st;
	int fd;

	if (!have_root(__func__) || !shm_fallback_applies(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	path_in_base(decoy, sizeof(decoy), "decoy");
	ck_assert(shm_path_of("pool", shm, sizeof(shm)));
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	ck_assert_int_eq(mkdir(decoy, 0700), 0);
	ck_assert_int_eq(chown(decoy, NOBODY, NOBODY), 0);

	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		switch (i) {
		case 0:
			ck_assert_int_eq(symlink(decoy, shm), 0);
			break;
		case 1:
			fd = open(shm, O_WRONLY | O_CREAT | O_EXCL, 0600);
			ck_assert_int_ge(fd, 0);
			close(fd);
			break;
		case 2:
		case 3:
			ck_assert_int_eq(mkdir(shm, i == 2 ? 0755 : 0700), 0);
			ck_assert_int_eq(chown(shm, STRANGER, STRANGER), 0);
			break;
		case 4:
			ck_assert_int_eq(mkdir(shm, 0700), 0);
			ck_assert_int_eq(chmod(shm, 0777), 0);
			ck_assert_int_eq(chown(shm, NOBODY, NOBODY), 0);
			break;
		}
		ck_assert_msg(as_nobody(open_refused_as_nobody, dir) ==
				      taken[i].err,
			      "/dev/shm name taken by %s: want %s",
			      taken[i].what, strerror(taken[i].err));
		/* no pages anywhere: not in the decoy, not on disk */
		snprintf(path, sizeof(path), "%s/pages", decoy);
		ck_assert_int_eq(access(path, F_OK), -1);
		snprintf(path, sizeof(path), "%s/pages", dir);
		ck_assert_int_eq(access(path, F_OK), -1);
		/*
		 * Freeing the pool leaves what is not the pool's, and
		 * removes the directory of its owner's
		 */
		ck_assert_int_eq(mc_pool_destroy(dir), 0);
		if (i == 4) {
			ck_assert_int_eq(lstat(shm, &st), -1);
			continue;
		}
		ck_assert_int_eq(lstat(shm, &st), 0);
		ck_assert(i != 0 || S_ISLNK(st.st_mode));
		if (unlink(shm) < 0)
			ck_assert_int_eq(rmdir(shm), 0);
	}
}
END_TEST

/*
 * Open the pool at dir, which cannot mount: 0 when it is a directory pool
 * kept at dir itself, 1 when the open failed, 2 when it went elsewhere.
 */
static int opens_in_place(const char *dir, uint64_t capacity)
{
	struct mc_pool *pool;
	bool adopted;
	int r = 0;

	if (mc_pool_open(&pool, dir, capacity, MC_POOL_HUGE, &adopted) != 0)
		return 1;
	if (mc_pool_kind(pool) != MC_POOL_DIR ||
	    strcmp(mc_pool_dir(pool), dir) != 0)
		r = 2;
	mc_pool_close(pool);
	return r;
}

/* As nobody: the pool at arg stays where it is; 0 or a step number. */
static int stay_as_nobody(const void *arg)
{
	return opens_in_place(arg, 32 * MiB);
}

START_TEST(a_state_dir_on_tmpfs_keeps_the_pages_there)
{
	char state[PATH_MAX], dir[PATH_MAX], shm[PATH_MAX];

	if (!have_root(__func__))
		return;
	path_in_base(state, sizeof(state), "state");
	path_in_base(dir, sizeof(dir), "state/pool");
	ck_assert_int_eq(mkdir(state, 0700), 0);
	/* like /run: memory, but not the pool's own mount */
	ck_assert_int_eq(mount("mc-test-state", state, "tmpfs",
			       MS_NOSUID | MS_NODEV, "size=64m,mode=0700"),
			 0);
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	ck_assert_int_eq(chown(state, NOBODY, NOBODY), 0);
	ck_assert_int_eq(as_nobody(stay_as_nobody, dir), 0);
	if (shm_path_of("state/pool", shm, sizeof(shm)))
		ck_assert_int_eq(access(shm, F_OK), -1);
	ck_assert_int_eq(mc_pool_destroy(dir), 0);
	ck_assert_int_eq(umount2(state, 0), 0);
}
END_TEST

struct few_fds {
	const char *dir;
	int limit;	/* the fds the open may use are those below it */
};

/* As nobody, with few fds: 0 when the pool at arg opened, else 1. */
static int open_with_few_fds_as_nobody(const void *arg)
{
	const struct few_fds *f = arg;
	struct rlimit rl = { (rlim_t)f->limit, (rlim_t)f->limit };
	struct mc_pool *pool;
	bool adopted;

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 100;
	if (mc_pool_open(&pool, f->dir, 32 * MiB, MC_POOL_HUGE, &adopted) != 0)
		return 1;
	mc_pool_close(pool);
	return 0;
}

/*
 * Issue: an open that failed after the fallback made its /dev/shm
 * directory left it there, and the daemon, with no pool, never destroyed
 * it.  The fds run out at each step of the open in turn.
 */
START_TEST(a_failed_open_leaves_no_dev_shm_directory_behind)
{
	char dir[PATH_MAX], shm[PATH_MAX];
	int lowest, failed = 0, opened = 0;
	struct few_fds f;

	if (!have_root(__func__) || !shm_fallback_applies(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert(shm_path_of("pool", shm, sizeof(shm)));
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(lowest, 0);
	close(lowest);
	f.dir = dir;
	for (f.limit = lowest; f.limit < lowest + 16; f.limit++) {
		if (as_nobody(open_with_few_fds_as_nobody, &f) == 0) {
			opened++;
			ck_assert_int_eq(mc_pool_destroy(dir), 0);
			continue;
		}
		failed++;
		ck_assert_msg(access(shm, F_OK) < 0,
			      "an open with fds below %d failed and left '%s'",
			      f.limit, shm);
	}
	ck_assert_int_gt(failed, 0);
	ck_assert_int_gt(opened, 0);
}
END_TEST

/*
 * In a mount namespace of its own, with a /dev/shm of user STRANGER
 * (sticky, open to all), open the pool at dir as nobody: 0 when it stays
 * at dir, 77 when no namespace can be made, else the step that failed.
 */
static int open_beside_a_strangers_dev_shm(const char *dir)
{
	int r;

	if (unshare(CLONE_NEWNS) < 0 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return 77;
	if (mount("mc-test-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
		  "size=16m,mode=1777,uid=65533,gid=65533") < 0)
		return 1;
	if (setgroups(0, NULL) < 0 || setgid(NOBODY) < 0 || setuid(NOBODY) < 0)
		return 2;
	r = opens_in_place(dir, 8 * MiB);
	return r ? r + 2 : 0;	/* 3: the open failed, 4: it went elsewhere */
}

/*
 * The owner of a sticky directory may rename what is in it: a /dev/shm
 * that is neither root's nor ours could move our directory away between
 * its check and its use.
 */
START_TEST(a_dev_shm_of_another_user_is_not_used)
{
	char dir[PATH_MAX];
	int status;
	pid_t pid;

	if (!have_root(__func__) || !shm_fallback_applies(__func__))
		return;
	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(chown(base, NOBODY, NOBODY), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(open_beside_a_strangers_dev_shm(dir));
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77) {
		note_skipped(__func__,
			     "skipped: no mount namespace can be made here");
		return;
	}
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_int_eq(mc_pool_destroy(dir), 0);
}
END_TEST

START_TEST(bad_arguments_are_refused)
{
	struct mc_pool *pool = (struct mc_pool *)1;
	char dir[PATH_MAX];
	bool adopted = true;

	path_in_base(dir, sizeof(dir), "pool");
	ck_assert_int_eq(mc_pool_open(&pool, dir, 0, MC_POOL_NO_MOUNT,
				      &adopted),
			 -EINVAL);
	ck_assert_ptr_null(pool);
	ck_assert(!adopted);
	ck_assert_int_eq(mc_pool_open(&pool, "", MiB, MC_POOL_NO_MOUNT,
				      &adopted),
			 -EINVAL);
	mc_pool_close(NULL);
	ck_assert_str_eq(mc_pool_kind_name(MC_POOL_TMPFS), "tmpfs");
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *test)
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *pool_suite(void)
{
	Suite *s = suite_create("pool");

	add_case(s, "fresh open mounts a huge tmpfs and adopts nothing",
		 fresh_open_mounts_huge_tmpfs);
	add_case(s, "a committed page survives close and reopen",
		 committed_page_survives_reopen);
	add_case(s, "a page keeps its checksum and the pool its identity",
		 a_page_keeps_its_checksum_and_the_pool_its_identity);
	add_case(s, "pending pages are discarded at reopen",
		 pending_pages_are_discarded_at_reopen);
	add_case(s, "a final page on its way to pages/ is served",
		 a_final_page_on_its_way_to_pages_is_served);
	add_case(s, "free of an open page keeps the reader's bytes",
		 free_of_an_open_page_keeps_the_readers_bytes);
	add_case(s, "usage reports capacity and grows in 2 MiB pages",
		 usage_reports_capacity_and_grows_in_huge_pages);
	add_case(s, "the reserve holds memory without counting as use",
		 the_reserve_holds_memory_without_counting_as_use);
	add_case(s, "writing past the capacity fails with ENOSPC",
		 writing_past_capacity_fails_with_enospc);
	add_case(s, "discard and free of a missing page succeed",
		 discard_and_free_of_a_missing_page_succeed);
	add_case(s, "no-mount uses the directory as it is",
		 no_mount_uses_the_directory_as_it_is);
	add_case(s, "a directory pool counts only its own files as used",
		 a_directory_pool_counts_only_its_own_files_as_used);
	add_case(s, "a reopened directory pool counts its pages as used",
		 a_reopened_directory_pool_counts_its_pages_as_used);
	add_case(s, "two pools in one process stay apart",
		 two_pools_in_one_process_stay_apart);
	add_case(s, "an adopted tmpfs is resized to the new capacity",
		 adopted_tmpfs_is_resized_to_the_new_capacity);
	add_case(s, "destroy unmounts and removes the pool",
		 destroy_unmounts_and_removes_the_pool);
	add_case(s, "shm names are stable, distinct, safe and bounded",
		 shm_names_are_stable_distinct_safe_and_bounded);
	add_case(s, "open without mount permission keeps pages on /dev/shm",
		 open_without_mount_permission_keeps_pages_on_dev_shm);
	add_case(s, "a /dev/shm name taken by someone else is refused",
		 a_dev_shm_name_taken_by_someone_else_is_refused);
	add_case(s, "a state directory on tmpfs keeps the pages there",
		 a_state_dir_on_tmpfs_keeps_the_pages_there);
	add_case(s, "a failed open leaves no /dev/shm directory behind",
		 a_failed_open_leaves_no_dev_shm_directory_behind);
	add_case(s, "a /dev/shm of another user is not used",
		 a_dev_shm_of_another_user_is_not_used);
	add_case(s, "bad arguments are refused", bad_arguments_are_refused);
	return s;
}

/*
 * `test_pool --shm-name DIR` prints the /dev/shm name of the pool at DIR
 * (absolute, canonical) and runs no test: t_unprivileged.sh knows the
 * directory a user's daemon will make before it starts.
 */
int main(int argc, char **argv)
{
	char name[MC_POOL_SHM_NAME_MAX + 1];
	SRunner *sr;
	int failed;

	if (argc == 3 && strcmp(argv[1], "--shm-name") == 0) {
		if (mc_pool_shm_name(argv[2], name, sizeof(name)) < 0) {
			fprintf(stderr, "test_pool: '%s' is not absolute\n",
				argv[2]);
			return EXIT_FAILURE;
		}
		printf("%s\n", name);
		return EXIT_SUCCESS;
	}
	sr = srunner_create(pool_suite());

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
