/* rdma.c - the verbs side of mc_rdma_probe(); built when rdma-core is found */
#include <errno.h>
#include <stdio.h>

#include <infiniband/verbs.h>

#include "rdma.h"
#include "banned.h"

int mc_rdma_probe(char *devname, size_t len)
{
	struct ibv_device **list;
	int n = 0;
	int r;

	if (len > 0)
		devname[0] = '\0';
	/*
	 * NULL with errno ENOSYS is the usual answer on a host without RDMA
	 * kernel support, and no worse than an empty list: both mean TCP.
	 */
	list = ibv_get_device_list(&n);
	if (!list)
		return -ENODEV;
	if (n <= 0 || !list[0]) {
		r = -ENODEV;
		goto out_free;
	}
	snprintf(devname, len, "%s", ibv_get_device_name(list[0]));
	r = 0;
out_free:
	ibv_free_device_list(list);
	return r;
}
