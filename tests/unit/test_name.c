/* test_name.c - which path components the namespace accepts */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "name.h"
#include "banned.h"

START_TEST(ordinary_names_are_accepted)
{
	ck_assert_int_eq(mc_name_check("a"), 0);
	ck_assert_int_eq(mc_name_check("0123abcd_llama3-8b_0_1.bin"), 0);
	ck_assert_int_eq(mc_name_check("..."), 0);
	ck_assert_int_eq(mc_name_check(".hidden"), 0);
	ck_assert_int_eq(mc_name_check("..x"), 0);
	ck_assert_int_eq(mc_name_check("with space"), 0);
	ck_assert_int_eq(mc_name_check("caf\xc3\xa9"), 0);
}
END_TEST

START_TEST(empty_dot_and_dotdot_give_einval)
{
	ck_assert_int_eq(mc_name_check(""), -EINVAL);
	ck_assert_int_eq(mc_name_check("."), -EINVAL);
	ck_assert_int_eq(mc_name_check(".."), -EINVAL);
	ck_assert_int_eq(mc_name_check(NULL), -EINVAL);
}
END_TEST

START_TEST(a_slash_anywhere_gives_einval)
{
	ck_assert_int_eq(mc_name_check("/"), -EINVAL);
	ck_assert_int_eq(mc_name_check("a/b"), -EINVAL);
	ck_assert_int_eq(mc_name_check("/a"), -EINVAL);
	ck_assert_int_eq(mc_name_check("a/"), -EINVAL);
}
END_TEST

START_TEST(exactly_255_bytes_is_accepted_and_256_gives_enametoolong)
{
	char name[MC_NAME_MAX + 2];

	memset(name, 'x', sizeof(name));
	name[MC_NAME_MAX] = '\0';
	ck_assert_int_eq(mc_name_check(name), 0);
	name[MC_NAME_MAX] = 'x';
	name[MC_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(mc_name_check(name), -ENAMETOOLONG);
}
END_TEST

START_TEST(a_very_long_name_gives_enametoolong)
{
	char *name = malloc(100000);

	ck_assert_ptr_nonnull(name);
	memset(name, 'y', 99999);
	name[99999] = '\0';
	ck_assert_int_eq(mc_name_check(name), -ENAMETOOLONG);
	free(name);
}
END_TEST

/* One case per behaviour, so a failure names the behaviour it broke. */
static void add(Suite *s, const char *behaviour, const TTest *test)
{
	TCase *tc = tcase_create(behaviour);

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
}

static Suite *name_suite(void)
{
	Suite *s = suite_create("name");

	add(s, "ordinary names are accepted", ordinary_names_are_accepted);
	add(s, "empty, dot and dotdot give EINVAL",
	    empty_dot_and_dotdot_give_einval);
	add(s, "a slash anywhere gives EINVAL", a_slash_anywhere_gives_einval);
	add(s, "255 bytes is accepted and 256 gives ENAMETOOLONG",
	    exactly_255_bytes_is_accepted_and_256_gives_enametoolong);
	add(s, "a very long name gives ENAMETOOLONG",
	    a_very_long_name_gives_enametoolong);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(name_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
