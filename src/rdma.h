/* rdma.h - is there an RDMA device here?  The one question asked of verbs */
#ifndef MC_RDMA_H
#define MC_RDMA_H

#include <stddef.h>

/*
 * Why one prototype and two implementations, not inline stubs under
 * #ifdef HAVE_RDMA: HAVE_RDMA lives in autoconf's generated config.h, and
 * #include "config.h" from a file in src/ finds src/config.h (the tunables)
 * first.  So this header needs no configure result at all: Makefile.am builds
 * rdma.c (rdma-core found) or rdma_none.c (not found), never both.
 */

/*
 * Find the first RDMA device and copy its name ("mlx5_0") into devname
 * (len bytes, truncated to fit, always terminated when len > 0).  Returns 0,
 * -ENODEV when verbs finds no device or cannot ask the kernel (ENOSYS on a
 * kernel without RDMA support), -ENOTSUP when built without rdma-core.
 * Every error means the same thing to the caller: use TCP.
 */
int mc_rdma_probe(char *devname, size_t len);

#endif
