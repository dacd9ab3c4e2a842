/* test_id_counts.c - the count per id behind every pin table */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "id_counts.h"
#include "banned.h"

/* splitmix64: the same sequence on every host, for a given seed */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ------------------------------------------------------------ counting */

START_TEST(add_counts_up_and_down_and_zero_removes_the_id)
{
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	ck_assert_uint_eq(mc_id_counts_size(&m), 0);
	ck_assert_uint_eq(mc_id_counts_get(&m, 42), 0);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, 1), 1);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, 1), 2);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, 5), 7);
	ck_assert_int_eq(mc_id_counts_add(&m, 7, 1), 1);
	ck_assert_uint_eq(mc_id_counts_get(&m, 42), 7);
	ck_assert_uint_eq(mc_id_counts_get(&m, 7), 1);
	ck_assert_uint_eq(mc_id_counts_size(&m), 2);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, 0), 7);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, -6), 1);
	ck_assert_int_eq(mc_id_counts_add(&m, 42, -1), 0);
	ck_assert_uint_eq(mc_id_counts_get(&m, 42), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 1);
	ck_assert_uint_eq(mc_id_counts_get(&m, 7), 1);
	mc_id_counts_release(&m);
}
END_TEST

START_TEST(id_zero_is_refused_with_einval)
{
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	ck_assert_int_eq(mc_id_counts_add(&m, 0, 1), -EINVAL);
	ck_assert_int_eq(mc_id_counts_add(&m, 0, -1), -EINVAL);
	ck_assert_int_eq(mc_id_counts_add(&m, 0, 0), -EINVAL);
	ck_assert_int_eq(mc_id_counts_add(&m, 3, 1), 1);
	ck_assert_int_eq(mc_id_counts_add(&m, 0, 1), -EINVAL);
	ck_assert_uint_eq(mc_id_counts_get(&m, 0), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 1);
	mc_id_counts_release(&m);
}
END_TEST

START_TEST(a_decrement_of_an_absent_id_or_below_zero_changes_nothing)
{
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	/* before the table exists, and after */
	ck_assert_int_eq(mc_id_counts_add(&m, 9, -1), -ENOENT);
	ck_assert_int_eq(mc_id_counts_add(&m, 9, 0), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 0);
	ck_assert_int_eq(mc_id_counts_add(&m, 9, 2), 2);
	ck_assert_int_eq(mc_id_counts_add(&m, 10, -1), -ENOENT);
	ck_assert_int_eq(mc_id_counts_add(&m, 9, -3), -ERANGE);
	ck_assert_int_eq(mc_id_counts_add(&m, 9, INT64_MIN), -ERANGE);
	ck_assert_uint_eq(mc_id_counts_get(&m, 9), 2);
	ck_assert_uint_eq(mc_id_counts_get(&m, 10), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 1);
	mc_id_counts_release(&m);
}
END_TEST

START_TEST(counts_stop_at_int_max_with_eoverflow)
{
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	ck_assert_int_eq(mc_id_counts_add(&m, 5, INT_MAX), INT_MAX);
	ck_assert_int_eq(mc_id_counts_add(&m, 5, 1), -EOVERFLOW);
	ck_assert_uint_eq(mc_id_counts_get(&m, 5), INT_MAX);
	ck_assert_int_eq(mc_id_counts_add(&m, 6, (int64_t)INT_MAX + 1),
			 -EOVERFLOW);
	ck_assert_int_eq(mc_id_counts_add(&m, 6, INT64_MAX), -EOVERFLOW);
	ck_assert_uint_eq(mc_id_counts_get(&m, 6), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 1);
	ck_assert_int_eq(mc_id_counts_add(&m, 5, -INT_MAX), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), 0);
	mc_id_counts_release(&m);
}
END_TEST

/* ----------------------------------------------------- growth, deletion */

START_TEST(a_hundred_thousand_ids_survive_growth)
{
	const uint64_t n = 100000;
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	/* sequential inodes, as a store hands them out, and their counts */
	for (uint64_t id = 1; id <= n; id++)
		ck_assert_int_eq(mc_id_counts_add(&m, id,
						  (int64_t)(id % 3) + 1),
				 (int)(id % 3) + 1);
	ck_assert_uint_eq(mc_id_counts_size(&m), n);
	for (uint64_t id = 1; id <= n; id++)
		ck_assert_uint_eq(mc_id_counts_get(&m, id), id % 3 + 1);
	ck_assert_uint_eq(mc_id_counts_get(&m, n + 1), 0);
	/* drop the odd ones: the even ones are all still found */
	for (uint64_t id = 1; id <= n; id += 2)
		ck_assert_int_eq(
			mc_id_counts_add(&m, id, -(int64_t)(id % 3) - 1), 0);
	ck_assert_uint_eq(mc_id_counts_size(&m), n / 2);
	for (uint64_t id = 1; id <= n; id++)
		ck_assert_uint_eq(mc_id_counts_get(&m, id),
				  id % 2 ? 0 : id % 3 + 1);
	mc_id_counts_release(&m);
}
END_TEST

/*
 * An id whose home slot is `home` in a table of 2^bits slots: the inverse
 * of the table's Fibonacci hash, so that a test can build long runs of
 * colliding ids.  The table's correctness never depends on it; a changed
 * hash only makes the test below collide less.
 */
static uint64_t id_with_home(uint64_t home, unsigned bits, uint64_t *rnd)
{
	const uint64_t k = 0x9e3779b97f4a7c15ULL;
	uint64_t inv = k, id;

	/* Newton's iteration for k's inverse modulo 2^64 (k is odd) */
	for (int i = 0; i < 5; i++)
		inv *= 2 - k * inv;
	do {
		uint64_t low = next_random(rnd) >> bits;

		id = ((home << (64 - bits)) | low) * inv;
	} while (id == 0);
	return id;
}

/* 32 ids fill the first 64-slot table to its limit without growing */
#define COLLIDING_IDS 32

START_TEST(deletion_in_a_run_of_collisions_keeps_the_rest_findable)
{
	uint64_t rnd = 0x1d, ids[COLLIDING_IDS];
	struct mc_id_counts m;

	for (unsigned round = 0; round < 200; round++) {
		unsigned order[COLLIDING_IDS];

		mc_id_counts_init(&m);
		/* runs that start at the table's end and wrap to its start */
		for (unsigned i = 0; i < COLLIDING_IDS; i++) {
			ids[i] = id_with_home(i % 3 == 0 ? 1 : 62 + i % 2, 6,
					      &rnd);
			ck_assert_int_eq(mc_id_counts_add(&m, ids[i], 1), 1);
		}
		ck_assert_uint_eq(mc_id_counts_size(&m), COLLIDING_IDS);
		/* delete them all in a random order, checking the rest each time */
		for (unsigned i = 0; i < COLLIDING_IDS; i++)
			order[i] = i;
		for (unsigned i = COLLIDING_IDS - 1; i > 0; i--) {
			unsigned j = (unsigned)(next_random(&rnd) % (i + 1));
			unsigned t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (unsigned d = 0; d < COLLIDING_IDS; d++) {
			ck_assert_int_eq(
				mc_id_counts_add(&m, ids[order[d]], -1), 0);
			for (unsigned e = 0; e < COLLIDING_IDS; e++)
				ck_assert_uint_eq(
					mc_id_counts_get(&m, ids[order[e]]),
					e > d ? 1 : 0);
		}
		ck_assert_uint_eq(mc_id_counts_size(&m), 0);
		mc_id_counts_release(&m);
	}
}
END_TEST

/* few enough ids that they collide, are removed and come back */
#define NIDS 3000
#define OPS 300000

START_TEST(random_adds_and_removes_agree_with_a_plain_array)
{
	uint64_t rnd = 0xc0ffee, *ids, *want;
	struct mc_id_counts m;
	size_t live = 0;

	ids = calloc(NIDS, sizeof(*ids));
	want = calloc(NIDS, sizeof(*want));
	ck_assert_ptr_nonnull(ids);
	ck_assert_ptr_nonnull(want);
	/* half small sequential inodes, half anywhere in 64 bits */
	for (unsigned i = 0; i < NIDS; i++)
		ids[i] = i % 2 ? next_random(&rnd) | 1 : 16 + i;
	mc_id_counts_init(&m);
	for (unsigned op = 0; op < OPS; op++) {
		unsigned i = (unsigned)(next_random(&rnd) % NIDS);
		/* deltas in [-3, 3]: removals, refusals and no-ops too */
		int64_t delta = (int64_t)(next_random(&rnd) % 7) - 3;
		int r = mc_id_counts_add(&m, ids[i], delta);

		if (delta < 0 && want[i] == 0) {
			ck_assert_int_eq(r, -ENOENT);
		} else if (delta < 0 && (uint64_t)-delta > want[i]) {
			ck_assert_int_eq(r, -ERANGE);
		} else {
			uint64_t was = want[i];

			want[i] = (uint64_t)((int64_t)want[i] + delta);
			ck_assert_int_eq(r, (int)want[i]);
			live += (was == 0 && want[i] > 0);
			live -= (was > 0 && want[i] == 0);
		}
		ck_assert_uint_eq(mc_id_counts_size(&m), live);
		if (op % 10000 == 0)
			for (unsigned j = 0; j < NIDS; j++)
				ck_assert_uint_eq(mc_id_counts_get(&m, ids[j]),
						  want[j]);
	}
	for (unsigned j = 0; j < NIDS; j++)
		ck_assert_uint_eq(mc_id_counts_get(&m, ids[j]), want[j]);
	mc_id_counts_release(&m);
	free(ids);
	free(want);
}
END_TEST

/* ------------------------------------------------------------ iteration */

struct seen {
	uint64_t calls;
	uint64_t id_sum, count_sum;
	uint64_t stop_after; /* 0: never stop */
};

static int see(void *ctx, uint64_t id, uint64_t count)
{
	struct seen *s = ctx;

	s->calls++;
	s->id_sum += id;
	s->count_sum += count;
	return s->stop_after && s->calls == s->stop_after ? 77 : 0;
}

START_TEST(foreach_visits_each_id_once_with_its_count)
{
	struct mc_id_counts m;
	struct seen s = { 0 };

	mc_id_counts_init(&m);
	ck_assert_int_eq(mc_id_counts_foreach(&m, see, &s), 0);
	ck_assert_uint_eq(s.calls, 0);
	for (uint64_t id = 1; id <= 1000; id++)
		ck_assert_int_eq(mc_id_counts_add(&m, id, (int64_t)id),
				 (int)id);
	/* removed ids are not visited */
	for (uint64_t id = 1; id <= 1000; id += 10)
		ck_assert_int_eq(mc_id_counts_add(&m, id, -(int64_t)id), 0);
	ck_assert_int_eq(mc_id_counts_foreach(&m, see, &s), 0);
	ck_assert_uint_eq(s.calls, 900);
	/* 1..1000 less 1, 11, ..., 991 */
	ck_assert_uint_eq(s.id_sum, 500500 - 49600);
	ck_assert_uint_eq(s.count_sum, 500500 - 49600);
	mc_id_counts_release(&m);
}
END_TEST

START_TEST(foreach_stops_at_the_first_non_zero_return)
{
	struct mc_id_counts m;
	struct seen s = { .stop_after = 3 };

	mc_id_counts_init(&m);
	for (uint64_t id = 1; id <= 10; id++)
		ck_assert_int_eq(mc_id_counts_add(&m, id, 1), 1);
	ck_assert_int_eq(mc_id_counts_foreach(&m, see, &s), 77);
	ck_assert_uint_eq(s.calls, 3);
	mc_id_counts_release(&m);
}
END_TEST

START_TEST(release_empties_the_map_for_reuse)
{
	struct mc_id_counts m;

	mc_id_counts_init(&m);
	for (uint64_t id = 1; id <= 500; id++)
		ck_assert_int_eq(mc_id_counts_add(&m, id, 2), 2);
	mc_id_counts_release(&m);
	ck_assert_uint_eq(mc_id_counts_size(&m), 0);
	ck_assert_uint_eq(mc_id_counts_get(&m, 1), 0);
	ck_assert_int_eq(mc_id_counts_add(&m, 1, -1), -ENOENT);
	ck_assert_int_eq(mc_id_counts_add(&m, 1, 1), 1);
	mc_id_counts_release(&m);
	mc_id_counts_release(&m);
}
END_TEST

static void add(Suite *s, const char *behaviour, const TTest *test)
{
	TCase *tc = tcase_create(behaviour);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *id_counts_suite(void)
{
	Suite *s = suite_create("id_counts");

	add(s, "add counts up and down, and 0 removes the id",
	    add_counts_up_and_down_and_zero_removes_the_id);
	add(s, "id 0 is refused with EINVAL", id_zero_is_refused_with_einval);
	add(s, "a decrement of an absent id or below 0 changes nothing",
	    a_decrement_of_an_absent_id_or_below_zero_changes_nothing);
	add(s, "counts stop at INT_MAX with EOVERFLOW",
	    counts_stop_at_int_max_with_eoverflow);
	add(s, "a hundred thousand ids survive growth",
	    a_hundred_thousand_ids_survive_growth);
	add(s, "deletion in a run of collisions keeps the rest findable",
	    deletion_in_a_run_of_collisions_keeps_the_rest_findable);
	add(s, "random adds and removes agree with a plain array",
	    random_adds_and_removes_agree_with_a_plain_array);
	add(s, "foreach visits each id once with its count",
	    foreach_visits_each_id_once_with_its_count);
	add(s, "foreach stops at the first non-zero return",
	    foreach_stops_at_the_first_non_zero_return);
	add(s, "release empties the map for reuse",
	    release_empties_the_map_for_reuse);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(id_counts_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
