/* path.c - mkdir -p */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "path.h"
#include "banned.h"

int mc_mkdir_p(const char *dir, mode_t mode)
{
	char path[PATH_MAX];
	size_t len;

	len = strlen(dir);
	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
