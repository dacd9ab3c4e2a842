/* path.h - small filesystem path helpers shared by the pool and the daemon */
#ifndef MC_PATH_H
#define MC_PATH_H

#include <limits.h>
#include <sys/types.h>

/*
 * mkdir -p: make dir and its missing parents with mode.  0 (also when it
 * exists), -EINVAL for "", -ENAMETOOLONG, or mkdir(2)'s -errno.
 */
int mc_mkdir_p(const char *dir, mode_t mode);

/* One line of /proc/self/mountinfo, its \ooo escapes undone. */
struct mc_mountinfo {
	int id;			/* as /proc/<pid>/fdinfo's mnt_id names it */
	unsigned int major, minor;
	char point[PATH_MAX];
	char fstype[64];
	char source[256];
	char opts[1024];	/* superblock options: "rw,size=4096k,huge=always" */
};

/*
 * Find the topmost mount whose mount point is exactly path (as mountinfo
 * spells it: absolute, canonical) and, when fstype is not NULL, whose type
 * is fstype.  Reads mountinfo without touching the mount itself.  Returns
 * 1 with *m filled, 0 when there is none, or -errno.
 */
int mc_mountinfo_find(const char *path, const char *fstype,
		      struct mc_mountinfo *m);

#endif
