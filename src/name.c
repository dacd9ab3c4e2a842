/* name.c - the one place a file name from a client is judged */
#include <errno.h>
#include <string.h>

#include "name.h"
#include "banned.h"

int mc_name_check(const char *name)
{
	size_t len;

	if (!name || name[0] == '\0')
		return -EINVAL;
	/* bounded: a hostile name need not be terminated anywhere near */
	len = strnlen(name, MC_NAME_MAX + 1);
	if (len > MC_NAME_MAX)
		return -ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (memchr(name, '/', len))
		return -EINVAL;
	return 0;
}
