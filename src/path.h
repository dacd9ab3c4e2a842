/* path.h - small filesystem path helpers shared by the pool and the daemon */
#ifndef MC_PATH_H
#define MC_PATH_H

#include <sys/types.h>

/*
 * mkdir -p: make dir and its missing parents with mode.  0 (also when it
 * exists), -EINVAL for "", -ENAMETOOLONG, or mkdir(2)'s -errno.
 */
int mc_mkdir_p(const char *dir, mode_t mode);

#endif
