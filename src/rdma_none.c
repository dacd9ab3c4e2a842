/* rdma_none.c - mc_rdma_probe() for builds without rdma-core: always TCP */
#include <errno.h>

#include "rdma.h"
#include "banned.h"

int mc_rdma_probe(char *devname, size_t len)
{
	if (len > 0)
		devname[0] = '\0';
	return -ENOTSUP;
}
