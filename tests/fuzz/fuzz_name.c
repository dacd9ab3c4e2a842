/*
 * fuzz_name.c - mc_name_check() on arbitrary bytes.
 *
 * The input up to its first NUL is one name, judged against the rules of
 * name.h written out below.  An input longer than MC_NAME_MAX is also passed
 * unterminated, in a buffer of exactly MC_NAME_MAX + 1 bytes: name.c
 * promises to stay inside it (ASan sees any read past the end).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "name.h"
#include "fuzz.h"
#include "banned.h"

/* name.h's rules: empty, too long, ".", "..", '/' (a C string has no NUL) */
static int ref_check(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return -EINVAL;
	if (len > MC_NAME_MAX)
		return -ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name;
	int r, ref;

	name = malloc(size + 1);
	if (!name)
		return 0;
	memcpy(name, data, size);
	name[size] = '\0';
	r = mc_name_check(name);
	ref = ref_check(name);
	FUZZ_CHECK(r == ref, "name of %zu bytes: returned %d, want %d",
		   strlen(name), r, ref);
	free(name);

	/* a hostile name need not be terminated anywhere near */
	if (size > MC_NAME_MAX && !memchr(data, '\0', MC_NAME_MAX + 1)) {
		name = malloc(MC_NAME_MAX + 1);
		if (!name)
			return 0;
		memcpy(name, data, MC_NAME_MAX + 1);
		r = mc_name_check(name);
		FUZZ_CHECK(r == -ENAMETOOLONG,
			   "unterminated name: returned %d, want %d", r,
			   -ENAMETOOLONG);
		free(name);
	}
	return 0;
}
