/*
 * fuzz_size.c - mc_size_parse() and mc_size_format() on arbitrary bytes.
 *
 * The input up to its first NUL is the text.  mc_size_parse() must agree
 * with the small reference parser below (same verdict, same value), a value
 * it returns must read back the same when written as digits and in its
 * largest exact unit, and mc_size_format() must write a terminated "N B" or
 * "X.Y KiB".."EiB" text for it, and for the input's first 8 bytes taken as a
 * number, into buffers of every small length.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "size.h"
#include "fuzz.h"
#include "banned.h"

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/*
 * The grammar of size.h, written independently of size.c: blanks, digits,
 * blanks, an optional unit word, blanks.  Syntax is judged before range.
 */
static int ref_parse(const char *s, uint64_t *out)
{
	static const struct {
		const char *word;
		int shift;
	} units[] = {
		{ "", 0 },     { "b", 0 },    { "k", 10 },   { "kb", 10 },
		{ "kib", 10 }, { "m", 20 },   { "mb", 20 },  { "mib", 20 },
		{ "g", 30 },   { "gb", 30 },  { "gib", 30 }, { "t", 40 },
		{ "tb", 40 },  { "tib", 40 },
	};
	char word[4] = "";
	uint64_t n = 0;
	bool range = false;
	size_t w = 0;
	int shift = -1;

	*out = 0;
	while (is_blank(*s))
		s++;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			range = true;
		else
			n = n * 10 + d;
	}
	while (is_blank(*s))
		s++;
	for (; (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'); s++) {
		if (w == sizeof(word) - 1)
			return -EINVAL;
		word[w++] = lower(*s);
	}
	word[w] = '\0';
	while (is_blank(*s))
		s++;
	if (*s != '\0')
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(word, units[i].word) == 0)
			shift = units[i].shift;
	}
	if (shift < 0)
		return -EINVAL;
	if (range || (shift > 0 && n > (UINT64_MAX >> shift)))
		return -ERANGE;
	*out = n << shift;
	return 0;
}

static void check_reads_back(uint64_t v)
{
	static const char *const spelled[] = { "", "KiB", "MiB", "GiB", "TiB" };
	char text[64];
	uint64_t got;
	int i = 4;
	int r;

	snprintf(text, sizeof(text), "%" PRIu64, v);
	r = mc_size_parse(text, &got);
	FUZZ_CHECK(r == 0 && got == v, "'%s' reads back as %" PRIu64 " (%d)",
		   text, got, r);

	/* the largest unit that divides v exactly, as an operator writes it */
	while (i > 0 && (v & ((UINT64_C(1) << (10 * i)) - 1)) != 0)
		i--;
	snprintf(text, sizeof(text), " %" PRIu64 " %s ", v >> (10 * i),
		 spelled[i]);
	r = mc_size_parse(text, &got);
	FUZZ_CHECK(r == 0 && got == v, "'%s' reads back as %" PRIu64 " (%d)",
		   text, got, r);
}

static void check_format(uint64_t v)
{
	static const char *const units[] = { "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	char buf[40], want[40], unit[8];
	bool known = false;
	double x;
	int n = 0;

	memset(buf, 0x55, sizeof(buf));
	FUZZ_CHECK(mc_size_format(v, buf, sizeof(buf)) == buf, "returns buf");
	FUZZ_CHECK(memchr(buf, '\0', sizeof(buf)) != NULL,
		   "format of %" PRIu64 " is not terminated", v);
	if (v < 1024) {
		snprintf(want, sizeof(want), "%" PRIu64 " B", v);
		FUZZ_CHECK(strcmp(buf, want) == 0,
			   "format of %" PRIu64 " is '%s', want '%s'", v, buf,
			   want);
	} else {
		FUZZ_CHECK(sscanf(buf, "%lf %7s%n", &x, unit, &n) == 2 &&
				   buf[n] == '\0',
			   "format of %" PRIu64 " is '%s'", v, buf);
		for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			known = known || strcmp(unit, units[i]) == 0;
		/* 1023.96 KiB rounds to "1024.0 KiB"; UINT64_MAX is 16.0 EiB */
		FUZZ_CHECK(known && x >= 1.0 && x <= 1024.0,
			   "format of %" PRIu64 " is '%s'", v, buf);
	}

	/* any buffer length: truncated, terminated, nothing written past */
	for (size_t len = 1; len <= 12; len++) {
		memset(buf, 0x55, sizeof(buf));
		mc_size_format(v, buf, len);
		FUZZ_CHECK(memchr(buf, '\0', len) != NULL,
			   "format into %zu bytes is not terminated", len);
		for (size_t i = len; i < sizeof(buf); i++)
			FUZZ_CHECK(buf[i] == 0x55,
				   "format into %zu bytes wrote byte %zu", len,
				   i);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t got, want, raw = 0;
	int r, ref;
	char *s;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	r = mc_size_parse(s, &got);
	ref = ref_parse(s, &want);
	FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ERANGE, "returned %d", r);
	FUZZ_CHECK(r == ref, "'%s': returned %d, the reference says %d", s, r,
		   ref);
	if (r == 0) {
		FUZZ_CHECK(got == want,
			   "'%s' is %" PRIu64 ", the reference says %" PRIu64,
			   s, got, want);
		check_reads_back(got);
		check_format(got);
	}

	/* the formatter over the whole 64-bit range, not only parsed sizes */
	memcpy(&raw, data, size < sizeof(raw) ? size : sizeof(raw));
	check_format(raw);
	free(s);
	return 0;
}
