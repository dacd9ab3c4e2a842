/* test_size.c - sizes as operators write them */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "size.h"
#include "banned.h"

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

static void check_size(const char *text, uint64_t want)
{
	uint64_t got = 12345;
	int r = mc_size_parse(text, &got);

	ck_assert_msg(r == 0, "'%s' was refused with %d", text, r);
	ck_assert_msg(got == want, "'%s' gave %llu, want %llu", text,
		      (unsigned long long)got, (unsigned long long)want);
}

static void check_refused(const char *text, int want_r)
{
	uint64_t got = 12345;
	int r = mc_size_parse(text, &got);

	ck_assert_msg(r == want_r, "'%s' gave %d, want %d", text, r, want_r);
	ck_assert_msg(got == 0, "'%s' left %llu in the out-parameter", text,
		      (unsigned long long)got);
}

START_TEST(plain_byte_counts_are_exact)
{
	check_size("0", 0);
	check_size("4096", 4096);
	check_size("4294967296", 4 * GIB);
	check_size("18446744073709551615", UINT64_MAX);
	check_size("4096b", 4096);
}
END_TEST

START_TEST(mooncake_units_are_powers_of_1024_in_any_case)
{
	check_size("1k", KIB);
	check_size("1K", KIB);
	check_size("1kb", KIB);
	check_size("1KiB", KIB);
	check_size("512m", 512 * MIB);
	check_size("512MiB", 512 * MIB);
	check_size("512mb", 512 * MIB);
	check_size("4gb", 4 * GIB);
	check_size("4GiB", 4 * GIB);
	check_size("4G", 4 * GIB);
	check_size("4GB", 4 * GIB);
	check_size("2t", 2 * TIB);
	check_size("16777215TiB", 16777215 * TIB);
}
END_TEST

START_TEST(blanks_around_and_before_the_unit_are_allowed)
{
	check_size(" 8 MiB ", 8 * MIB);
	check_size("\t4gb", 4 * GIB);
	check_size("4 g", 4 * GIB);
	check_size("1024   ", 1024);
}
END_TEST

START_TEST(text_that_is_not_a_size_is_einval)
{
	check_refused("", -EINVAL);
	check_refused("   ", -EINVAL);
	check_refused("abc", -EINVAL);
	check_refused("gb", -EINVAL);
	check_refused("4xb", -EINVAL);
	check_refused("4gbb", -EINVAL);
	check_refused("4gib5", -EINVAL);
	/* found by fuzz_size: garbage after an overflowing number is -EINVAL */
	check_refused("99999999999999999999999xyz", -EINVAL);
	check_refused("4 4", -EINVAL);
	check_refused("4bb", -EINVAL);
}
END_TEST

START_TEST(signs_and_decimals_are_refused)
{
	check_refused("-1", -EINVAL);
	check_refused("+1", -EINVAL);
	check_refused("4.5gb", -EINVAL);
	check_refused("0x10", -EINVAL);
}
END_TEST

START_TEST(sizes_beyond_64_bits_are_erange)
{
	check_refused("99999999999999999999", -ERANGE);
	check_refused("18446744073709551616", -ERANGE);
	check_refused("16777216TiB", -ERANGE);
	check_refused("17179869184g", -ERANGE);
}
END_TEST

START_TEST(format_picks_the_largest_unit)
{
	char buf[32];

	ck_assert_str_eq(mc_size_format(0, buf, sizeof(buf)), "0 B");
	ck_assert_str_eq(mc_size_format(1023, buf, sizeof(buf)), "1023 B");
	ck_assert_str_eq(mc_size_format(KIB, buf, sizeof(buf)), "1.0 KiB");
	ck_assert_str_eq(mc_size_format(2 * MIB, buf, sizeof(buf)), "2.0 MiB");
	ck_assert_str_eq(mc_size_format(4 * GIB, buf, sizeof(buf)), "4.0 GiB");
	ck_assert_str_eq(mc_size_format(3 * GIB / 2, buf, sizeof(buf)),
			 "1.5 GiB");
	ck_assert_str_eq(mc_size_format(UINT64_MAX, buf, sizeof(buf)),
			 "16.0 EiB");
}
END_TEST

static Suite *size_suite(void)
{
	Suite *s = suite_create("size");
	TCase *tc = tcase_create("parse and format");

	tcase_add_test(tc, plain_byte_counts_are_exact);
	tcase_add_test(tc, mooncake_units_are_powers_of_1024_in_any_case);
	tcase_add_test(tc, blanks_around_and_before_the_unit_are_allowed);
	tcase_add_test(tc, text_that_is_not_a_size_is_einval);
	tcase_add_test(tc, signs_and_decimals_are_refused);
	tcase_add_test(tc, sizes_beyond_64_bits_are_erange);
	tcase_add_test(tc, format_picks_the_largest_unit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(size_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
