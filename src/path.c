/* path.c - mkdir -p, and the one mountinfo parser */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Undo mountinfo's \ooo escapes (space, tab, newline, backslash) in place. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
					(s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

static void copy_field(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
	unescape_octal(dst);
}

/*
 * Mounts stacked on one point are listed in mount order, so the last
 * match is the one a lookup of path sees.
 */
int mc_mountinfo_find(const char *path, const char *fstype,
		      struct mc_mountinfo *m)
{
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int found = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* id parent maj:min root point opts [optional...] - type src sopts */
		char *head[5], *tail[3] = { NULL };
		char *save = NULL, *tok, *sep;
		char point[PATH_MAX], type[sizeof(m->fstype)];
		unsigned int major, minor;
		int n = 0, k = 0;

		line[strcspn(line, "\n")] = '\0';
		sep = strstr(line, " - ");
		if (!sep)
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok && n < 5;
		     tok = strtok_r(NULL, " ", &save))
			head[n++] = tok;
		save = NULL;
		for (tok = strtok_r(sep + 3, " ", &save); tok && k < 3;
		     tok = strtok_r(NULL, " ", &save))
			tail[k++] = tok;
		if (n < 5 || k < 2 ||
		    sscanf(head[2], "%u:%u", &major, &minor) != 2)
			continue;
		copy_field(point, sizeof(point), head[4]);
		copy_field(type, sizeof(type), tail[0]);
		if (strcmp(point, path) != 0 ||
		    (fstype && strcmp(type, fstype) != 0))
			continue;
		m->id = (int)strtol(head[0], NULL, 10);
		m->major = major;
		m->minor = minor;
		memcpy(m->point, point, sizeof(point));
		memcpy(m->fstype, type, sizeof(type));
		copy_field(m->source, sizeof(m->source), tail[1]);
		copy_field(m->opts, sizeof(m->opts), k > 2 ? tail[2] : "");
		found = 1;
	}
	free(line);
	fclose(f);
	return found;
}
