/*
 * test_crc32c.c - CRC-32C: the known vectors, the fast path equal to the
 * table on every length and alignment, chaining and combining.
 *
 *   tests/unit/test_crc32c                 run the suite
 *   tests/unit/test_crc32c --bench [MiB]   checksum a buffer of MiB (8)
 *                                          over and over; print GB/s
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32c.h"
#include "banned.h"

/* xorshift64: the same bytes on every run */
static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(rng() >> 56);
}

START_TEST(known_vectors_hold_on_every_implementation)
{
	static const char check[] = "123456789";
	uint32_t (*const fns[])(uint32_t, const void *, size_t) = {
		mc_crc32c,
		mc_crc32c_sw,
	};
	uint8_t buf[64];

	for (size_t f = 0; f < sizeof(fns) / sizeof(fns[0]); f++) {
		ck_assert_uint_eq(fns[f](0, check, 9), 0xe3069283U);
		ck_assert_uint_eq(fns[f](0, "", 0), 0);
		ck_assert_uint_eq(fns[f](0, NULL, 0), 0);
		ck_assert_uint_eq(fns[f](0, "a", 1), 0xc1d04330U);
		/* RFC 3720 (iSCSI) B.4 */
		memset(buf, 0, 32);
		ck_assert_uint_eq(fns[f](0, buf, 32), 0x8a9136aaU);
		memset(buf, 0xff, 32);
		ck_assert_uint_eq(fns[f](0, buf, 32), 0x62a8ab43U);
		for (int i = 0; i < 32; i++)
			buf[i] = (uint8_t)i;
		ck_assert_uint_eq(fns[f](0, buf, 32), 0x46dd794eU);
		for (int i = 0; i < 32; i++)
			buf[i] = (uint8_t)(31 - i);
		ck_assert_uint_eq(fns[f](0, buf, 32), 0x113fdb5cU);
	}
}
END_TEST

START_TEST(the_instruction_is_used_where_the_cpu_has_it)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		ck_assert_str_eq(mc_crc32c_impl(), "sse4.2");
	else
		ck_assert_str_eq(mc_crc32c_impl(), "table");
#else
	ck_assert_str_eq(mc_crc32c_impl(), "table");
#endif
}
END_TEST

/*
 * Lengths around every boundary of the fast path (8-byte words, rounds of
 * 3 * 256 and 3 * 8192 bytes), at every alignment, from random states.
 */
START_TEST(fast_path_equals_the_table_on_every_length_and_alignment)
{
	/* clang-format off */
	static const size_t lengths[] = {
		0, 1, 7, 8, 9, 15, 16, 63, 64,		/* words */
		255, 256, 767, 768, 769, 1023,		/* short rounds */
		1536, 2303, 2304, 4096, 8191,		/* long rounds */
		24575, 24576, 24577, 25344, 25345,
		49151, 49152,
		65536, 100000, 1 << 20, (1 << 20) + 3,	/* bulk */
	};
	/* clang-format on */
	const size_t max = (1 << 20) + 3 + 16;
	uint8_t *buf = malloc(max);
	uint32_t seed, a, b;

	ck_assert_ptr_nonnull(buf);
	rng_state = 0x9e3779b97f4a7c15ULL;
	fill_random(buf, max);
	for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		for (size_t align = 0; align < 16; align++) {
			seed = (uint32_t)rng();
			a = mc_crc32c(seed, buf + align, lengths[i]);
			b = mc_crc32c_sw(seed, buf + align, lengths[i]);
			ck_assert_msg(a == b,
				      "length %zu at +%zu: fast 0x%08x, table "
				      "0x%08x",
				      lengths[i], align, a, b);
		}
	}
	/* and random lengths at random places */
	for (int i = 0; i < 2000; i++) {
		size_t len = rng() % 70000, off = rng() % 64;

		seed = (uint32_t)rng();
		ck_assert_uint_eq(mc_crc32c(seed, buf + off, len),
				  mc_crc32c_sw(seed, buf + off, len));
	}
	free(buf);
}
END_TEST

START_TEST(checksums_chain_across_any_split)
{
	static uint8_t buf[3 * 8192 * 2 + 100];
	uint32_t whole, part;
	size_t len;

	rng_state = 42;
	fill_random(buf, sizeof(buf));
	for (size_t start_at = 0; start_at < 9; start_at++) {
		whole = mc_crc32c(0, buf + start_at, 256);
		for (size_t cut = 0; cut <= 256; cut++) {
			part = mc_crc32c(0, buf + start_at, cut);
			part = mc_crc32c(part, buf + start_at + cut, 256 - cut);
			ck_assert_uint_eq(part, whole);
		}
	}
	/* splits across the long rounds too */
	len = sizeof(buf) - 16;
	whole = mc_crc32c(0, buf + 3, len);
	for (size_t cut = 0; cut <= len; cut += 997) {
		part = mc_crc32c(0, buf + 3, cut);
		part = mc_crc32c(part, buf + 3 + cut, len - cut);
		ck_assert_uint_eq(part, whole);
	}
	/* the 9 bytes of the check value, unaligned */
	memcpy(buf + 3, "123456789", 9);
	ck_assert_uint_eq(mc_crc32c(0, buf + 3, 9), 0xe3069283U);
}
END_TEST

START_TEST(checksums_of_pieces_combine_into_the_whole)
{
	static uint8_t buf[100000];
	uint32_t whole, a, b;

	rng_state = 7;
	fill_random(buf, sizeof(buf));
	whole = mc_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut += 4999) {
		a = mc_crc32c(0, buf, cut);
		b = mc_crc32c(0, buf + cut, sizeof(buf) - cut);
		ck_assert_uint_eq(mc_crc32c_combine(a, b, sizeof(buf) - cut),
				  whole);
	}
	ck_assert_uint_eq(mc_crc32c_combine(whole, 0, 0), whole);
	ck_assert_uint_eq(mc_crc32c_combine(0xe3069283U, 0, 0), 0xe3069283U);
	ck_assert_uint_eq(mc_crc32c_combine(mc_crc32c(0, "1234", 4),
					    mc_crc32c(0, "56789", 5), 5),
			  0xe3069283U);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Checksum one buffer until a second passed, for each implementation */
static int bench(size_t mib)
{
	size_t len = mib << 20;
	uint8_t *buf = malloc(len);
	uint32_t sink = 0;
	double t0, t;
	int rounds;

	if (mib == 0 || !buf) {
		fprintf(stderr,
			"test_crc32c: cannot allocate %zu MiB: pass a "
			"size in MiB from 1 up\n",
			mib);
		free(buf);
		return EXIT_FAILURE;
	}
	rng_state = 1;
	fill_random(buf, len);
	for (int sw = 0; sw <= 1; sw++) {
		rounds = 0;
		t0 = now_s();
		do {
			sink ^= sw ? mc_crc32c_sw(0, buf, len) :
				     mc_crc32c(0, buf, len);
			rounds++;
			t = now_s() - t0;
		} while (t < 1.0);
		printf("%-7s %zu MiB x %d: %.2f GB/s\n",
		       sw ? "table" : mc_crc32c_impl(), mib, rounds,
		       (double)len * rounds / t / 1e9);
	}
	free(buf);
	return sink == 0x12345678 ? EXIT_FAILURE : EXIT_SUCCESS;
}

static Suite *crc32c_suite(void)
{
	Suite *s = suite_create("crc32c");
	TCase *tc = tcase_create("crc32c");

	tcase_add_test(tc, known_vectors_hold_on_every_implementation);
	tcase_add_test(tc, the_instruction_is_used_where_the_cpu_has_it);
	tcase_add_test(
		tc, fast_path_equals_the_table_on_every_length_and_alignment);
	tcase_add_test(tc, checksums_chain_across_any_split);
	tcase_add_test(tc, checksums_of_pieces_combine_into_the_whole);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	if (argc >= 2 && strcmp(argv[1], "--bench") == 0)
		return bench(argc >= 3 ? strtoul(argv[2], NULL, 10) : 8);
	sr = srunner_create(crc32c_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
