/* name.h - the one place a file name from a client is judged */
#ifndef MC_NAME_H
#define MC_NAME_H

#include <stddef.h>

#define MC_NAME_MAX 255

/*
 * Check one path component: 0 when usable; -ENAMETOOLONG over MC_NAME_MAX
 * bytes; -EINVAL when empty, "." or "..", or holding '/' or NUL.
 */
int mc_name_check(const char *name);

#endif
