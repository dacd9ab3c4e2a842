/* size.c - byte sizes as operators write them */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "size.h"
#include "banned.h"

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* Returns the shift for a unit word ("", "k", "KiB", "gb", ...) or -1. */
static int unit_shift(const char *u, size_t len)
{
	static const char letters[] = "bkmgt";
	const char *p;

	if (len == 0)
		return 0;
	p = memchr(letters, tolower((unsigned char)u[0]), sizeof(letters) - 1);
	if (!p)
		return -1;
	if (p == letters)	/* a bare "b": plain bytes */
		return len == 1 ? 0 : -1;
	if (len == 1 || (len == 2 && tolower((unsigned char)u[1]) == 'b') ||
	    (len == 3 && strncasecmp(u + 1, "ib", 2) == 0))
		return (int)(p - letters) * 10;
	return -1;
}

int mc_size_parse(const char *s, uint64_t *out)
{
	unsigned long long n;
	const char *unit;
	bool range;
	size_t ulen;
	char *end;
	int shift;

	*out = 0;
	s = skip_blanks(s);
	/* strtoull takes "-1" and "+1" and wraps the first: digits only */
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	/* judged after the unit: text that is not a size is -EINVAL */
	range = errno == ERANGE;
	unit = skip_blanks(end);
	ulen = 0;
	while (isalpha((unsigned char)unit[ulen]))
		ulen++;
	if (*skip_blanks(unit + ulen) != '\0')
		return -EINVAL;
	shift = unit_shift(unit, ulen);
	if (shift < 0)
		return -EINVAL;
	if (range || (shift > 0 && n > (UINT64_MAX >> shift)))
		return -ERANGE;
	*out = (uint64_t)n << shift;
	return 0;
}

const char *mc_size_format(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	unsigned int i = 0;

	if (n < 1024) {
		snprintf(buf, len, "%llu B", (unsigned long long)n);
		return buf;
	}
	while (i + 1 < sizeof(units) / sizeof(units[0]) &&
	       n >= (UINT64_C(1024) << (10 * (i + 1))))
		i++;
	snprintf(buf, len, "%.1f %s",
		 (double)n / (double)(UINT64_C(1024) << (10 * i)), units[i]);
	return buf;
}
