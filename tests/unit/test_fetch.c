/*
 * test_fetch.c - fetching a page from its copies on other hosts: every
 * way a copy can fail sends the read to the next one, and no failure ever
 * comes back as success with wrong or partial bytes.  Peers are the fake
 * transport's (src/transport_fake.c), with faults injected per peer.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "fetch.h"
#include "transport.h"
#include "banned.h"

#define PAGE_ID 0x1234
#define SELF 7

static struct mc_transport_fake *fake;
static struct mc_transport *t;
static struct mc_ns_replicas reps;
static uint8_t *page;
static uint8_t *dst;
static uint64_t page_len;

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

static const struct mc_ns_replica *rep(unsigned i)
{
	return &reps.r[i];
}

/*
 * A page of len bytes and `copies` segments listed by the master, ids
 * 1..copies, every one holding a good copy.
 */
static void setup_page(uint64_t len, unsigned copies)
{
	ck_assert_int_eq(mc_transport_fake_new(&fake), 0);
	t = mc_transport_fake_transport(fake);
	page_len = len;
	page = malloc(len + 1);
	dst = malloc(len + 1);
	ck_assert_ptr_nonnull(page);
	ck_assert_ptr_nonnull(dst);
	fill(page, len, 42);
	memset(&reps, 0, sizeof(reps));
	reps.size = len;
	reps.crc32c = mc_crc32c(0, page, len);
	reps.count = copies;
	for (unsigned i = 0; i < copies; i++) {
		reps.r[i].segment_id = i + 1;
		snprintf(reps.r[i].address, sizeof(reps.r[i].address),
			 "10.0.0.%u", i + 1);
		reps.r[i].port = 7000;
		ck_assert_int_eq(mc_transport_fake_add_page(fake, rep(i),
							    PAGE_ID, page, len),
				 0);
	}
}

static void teardown_page(void)
{
	mc_transport_free(t);
	t = NULL;
	fake = NULL;
	free(page);
	free(dst);
	page = dst = NULL;
}

/* Fetch into a dst filled with a marker, so stale bytes would show. */
static int fetch(uint64_t *from)
{
	memset(dst, 0xee, page_len + 1);
	return mc_fetch_page(t, &reps, PAGE_ID, SELF, dst, from);
}

static void assert_exact(void)
{
	ck_assert_int_eq(memcmp(dst, page, page_len), 0);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

START_TEST(a_good_copy_is_fetched_byte_exact)
{
	uint64_t from;

	setup_page(300000, 1);
	ck_assert_int_eq(fetch(&from), 0);
	ck_assert_uint_eq(from, 1);
	assert_exact();
	/* nothing past the page is written */
	ck_assert_uint_eq(dst[page_len], 0xee);
	teardown_page();
}
END_TEST

START_TEST(reads_spread_over_the_copies)
{
	uint64_t from;

	setup_page(4096, 3);
	for (int i = 0; i < 64; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		assert_exact();
	}
	for (unsigned i = 0; i < 3; i++)
		ck_assert_uint_gt(mc_transport_fake_calls(fake, rep(i)), 0);
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(0)) +
				  mc_transport_fake_calls(fake, rep(1)) +
				  mc_transport_fake_calls(fake, rep(2)),
			  64);
	teardown_page();
}
END_TEST

START_TEST(a_refused_copy_sends_the_read_to_the_next)
{
	uint64_t from;

	setup_page(100000, 2);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_REFUSE, 0);
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 2);
		assert_exact();
	}
	/* the good copy is read once per fetch, the bad one at most once */
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(1)), 16);
	ck_assert_uint_gt(mc_transport_fake_calls(fake, rep(0)), 0);
	ck_assert_uint_le(mc_transport_fake_calls(fake, rep(0)), 16);
	teardown_page();
}
END_TEST

START_TEST(a_drop_mid_transfer_is_retried_and_the_bytes_are_exact)
{
	uint64_t from;

	setup_page(1 << 20, 2);
	/* half the page lands, then the connection dies */
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_DROP,
				    page_len / 2);
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 2);
		assert_exact();
	}
	ck_assert_uint_gt(mc_transport_fake_calls(fake, rep(0)), 0);
	teardown_page();
}
END_TEST

START_TEST(a_drop_on_the_only_copy_is_econnreset_not_partial_bytes)
{
	uint64_t from = 99;

	setup_page(1 << 20, 1);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_DROP,
				    page_len / 2);
	ck_assert_int_eq(fetch(&from), -ECONNRESET);
	ck_assert_uint_eq(from, 0);
	teardown_page();
}
END_TEST

START_TEST(a_corrupt_copy_is_retried_elsewhere)
{
	uint64_t from;

	setup_page(200000, 2);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_CORRUPT,
				    12345);
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 2);
		assert_exact();
	}
	ck_assert_uint_gt(mc_transport_fake_calls(fake, rep(0)), 0);
	teardown_page();
}
END_TEST

START_TEST(every_copy_corrupt_is_eio)
{
	uint64_t from = 99;

	setup_page(200000, 3);
	for (unsigned i = 0; i < 3; i++)
		mc_transport_fake_set_fault(fake, rep(i),
					    MC_TRANSPORT_FAULT_CORRUPT, i * 7);
	ck_assert_int_eq(fetch(&from), -EIO);
	ck_assert_uint_eq(from, 0);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(i)), 1);
	teardown_page();
}
END_TEST

START_TEST(a_copy_damaged_at_rest_is_refused_by_its_peer_with_eio)
{
	uint64_t from = 99;
	uint8_t *bad;

	setup_page(50000, 1);
	bad = malloc(page_len);
	memcpy(bad, page, page_len);
	bad[100] ^= 1;
	mc_transport_fake_add_page(fake, rep(0), PAGE_ID, bad, page_len);
	free(bad);
	ck_assert_int_eq(fetch(&from), -EIO);
	teardown_page();
}
END_TEST

START_TEST(a_truncated_transfer_is_an_error_never_a_short_page)
{
	uint64_t from = 99;

	setup_page(300000, 1);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_TRUNCATE,
				    1000);
	ck_assert_int_lt(fetch(&from), 0);
	ck_assert_uint_eq(from, 0);
	/* even one byte short is caught */
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_TRUNCATE,
				    1);
	ck_assert_int_lt(fetch(&from), 0);
	teardown_page();
}
END_TEST

START_TEST(a_truncated_copy_falls_back_to_a_whole_one)
{
	uint64_t from;

	setup_page(300000, 2);
	mc_transport_fake_set_fault(fake, rep(1), MC_TRANSPORT_FAULT_TRUNCATE,
				    4096);
	for (int i = 0; i < 16; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 1);
		assert_exact();
	}
	teardown_page();
}
END_TEST

START_TEST(a_copy_of_another_size_is_estale_and_skipped)
{
	uint64_t from = 99;

	setup_page(8192, 2);
	mc_transport_fake_add_page(fake, rep(0), PAGE_ID, page, page_len - 1);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 2);
	}
	mc_transport_fake_add_page(fake, rep(1), PAGE_ID, page, page_len + 1);
	ck_assert_int_eq(fetch(&from), -ESTALE);
	teardown_page();
}
END_TEST

START_TEST(a_peer_without_the_page_sends_the_read_on)
{
	uint64_t from;

	setup_page(8192, 1);
	/* segment 3 is listed, and up, but holds nothing */
	reps.r[1] = reps.r[0];
	reps.r[1].segment_id = 3;
	reps.count = 2;
	mc_transport_fake_set_fault(fake, rep(1), MC_TRANSPORT_FAULT_NONE, 0);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 1);
	}
	ck_assert_uint_gt(mc_transport_fake_calls(fake, rep(1)), 0);
	reps.r[0] = reps.r[1];
	ck_assert_int_eq(fetch(&from), -ENOENT);
	teardown_page();
}
END_TEST

START_TEST(a_delay_under_the_timeout_is_only_slow)
{
	uint64_t from;

	setup_page(4096, 1);
	mc_transport_fake_set_timeout(fake, 1000);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_DELAY, 20);
	ck_assert_int_eq(fetch(&from), 0);
	assert_exact();
	teardown_page();
}
END_TEST

START_TEST(a_delay_over_the_timeout_is_etimedout_within_the_bound)
{
	uint64_t from = 99, t0, elapsed;

	setup_page(4096, 2);
	mc_transport_fake_set_timeout(fake, 100);
	for (unsigned i = 0; i < 2; i++)
		mc_transport_fake_set_fault(fake, rep(i),
					    MC_TRANSPORT_FAULT_DELAY, 60000);
	t0 = now_ms();
	ck_assert_int_eq(fetch(&from), -ETIMEDOUT);
	elapsed = now_ms() - t0;
	ck_assert_uint_eq(from, 0);
	/* each copy costs the timeout, not the delay */
	ck_assert_uint_ge(elapsed, 200);
	ck_assert_uint_lt(elapsed, 1000);
	teardown_page();
}
END_TEST

START_TEST(a_dead_peer_fails_now_and_later)
{
	uint64_t from = 99;

	setup_page(65536, 1);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_DEAD, 100);
	ck_assert_int_eq(fetch(&from), -ECONNRESET);
	ck_assert_int_eq(fetch(&from), -EHOSTUNREACH);
	ck_assert_int_eq(fetch(&from), -EHOSTUNREACH);
	ck_assert_uint_eq(from, 0);
	teardown_page();
}
END_TEST

START_TEST(the_last_copys_error_is_returned)
{
	uint64_t from;

	setup_page(4096, 1);
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_REFUSE, 0);
	ck_assert_int_eq(fetch(&from), -ECONNREFUSED);
	teardown_page();
}
END_TEST

START_TEST(only_self_holding_the_page_is_enoent)
{
	uint64_t from = 99;

	setup_page(4096, 1);
	reps.r[0].segment_id = SELF;
	ck_assert_int_eq(fetch(&from), -ENOENT);
	ck_assert_uint_eq(from, 0);
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(0)), 0);
	teardown_page();
}
END_TEST

START_TEST(self_is_skipped_among_other_copies)
{
	uint64_t from;

	setup_page(4096, 2);
	reps.r[0].segment_id = SELF;
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(fetch(&from), 0);
		ck_assert_uint_eq(from, 2);
	}
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(0)), 0);
	teardown_page();
}
END_TEST

START_TEST(no_copies_is_enoent)
{
	uint64_t from = 99;

	setup_page(4096, 0);
	ck_assert_int_eq(fetch(&from), -ENOENT);
	ck_assert_uint_eq(from, 0);
	teardown_page();
}
END_TEST

START_TEST(an_empty_page_is_still_asked_for)
{
	uint64_t from;

	setup_page(0, 1);
	ck_assert_int_eq(fetch(&from), 0);
	ck_assert_uint_eq(from, 1);
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(0)), 1);
	teardown_page();
}
END_TEST

START_TEST(a_page_over_the_request_limit_is_read_in_pieces)
{
	uint64_t from;

	setup_page((uint64_t)MC_WIRE_MAX_DATA + 12345, 1);
	ck_assert_int_eq(fetch(&from), 0);
	assert_exact();
	ck_assert_uint_eq(mc_transport_fake_calls(fake, rep(0)), 2);
	/* the checksum spans the pieces: damage in the second one shows */
	mc_transport_fake_set_fault(fake, rep(0), MC_TRANSPORT_FAULT_CORRUPT,
				    100);
	ck_assert_int_eq(fetch(&from), -EIO);
	teardown_page();
}
END_TEST

static Suite *fetch_suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *tc = tcase_create("copies");
	TCase *tf = tcase_create("faults");

	tcase_add_test(tc, a_good_copy_is_fetched_byte_exact);
	tcase_add_test(tc, reads_spread_over_the_copies);
	tcase_add_test(tc, only_self_holding_the_page_is_enoent);
	tcase_add_test(tc, self_is_skipped_among_other_copies);
	tcase_add_test(tc, no_copies_is_enoent);
	tcase_add_test(tc, an_empty_page_is_still_asked_for);
	tcase_add_test(tc, a_page_over_the_request_limit_is_read_in_pieces);
	suite_add_tcase(s, tc);

	tcase_add_test(tf, a_refused_copy_sends_the_read_to_the_next);
	tcase_add_test(tf,
		       a_drop_mid_transfer_is_retried_and_the_bytes_are_exact);
	tcase_add_test(tf,
		       a_drop_on_the_only_copy_is_econnreset_not_partial_bytes);
	tcase_add_test(tf, a_corrupt_copy_is_retried_elsewhere);
	tcase_add_test(tf, every_copy_corrupt_is_eio);
	tcase_add_test(tf,
		       a_copy_damaged_at_rest_is_refused_by_its_peer_with_eio);
	tcase_add_test(tf, a_truncated_transfer_is_an_error_never_a_short_page);
	tcase_add_test(tf, a_truncated_copy_falls_back_to_a_whole_one);
	tcase_add_test(tf, a_copy_of_another_size_is_estale_and_skipped);
	tcase_add_test(tf, a_peer_without_the_page_sends_the_read_on);
	tcase_add_test(tf, a_delay_under_the_timeout_is_only_slow);
	tcase_add_test(tf,
		       a_delay_over_the_timeout_is_etimedout_within_the_bound);
	tcase_add_test(tf, a_dead_peer_fails_now_and_later);
	tcase_add_test(tf, the_last_copys_error_is_returned);
	suite_add_tcase(s, tf);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(fetch_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
