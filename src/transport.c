/*
 * transport.c - the one entry point every transport goes through, so the
 * contract in transport.h is enforced once rather than trusted per
 * implementation.
 */
#include <errno.h>
#include <stddef.h>

#include "transport.h"
#include "banned.h"

int mc_transport_read(struct mc_transport *t, const struct mc_ns_replica *peer,
		      const struct mc_wire_read_page *req, void *dst,
		      uint32_t *crc)
{
	/* the same bounds the data server's decoder applies, checked here so
	 * a request that cannot succeed never costs a round trip */
	if (!t || !peer || !req || (!dst && req->length) ||
	    req->length > MC_WIRE_MAX_DATA ||
	    req->offset > req->expected_size ||
	    req->length > req->expected_size - req->offset)
		return -EINVAL;
	return t->ops->read(t, peer, req, dst, crc);
}

const char *mc_transport_name(const struct mc_transport *t)
{
	return t ? t->ops->name : "none";
}

void mc_transport_free(struct mc_transport *t)
{
	if (t)
		t->ops->free(t);
}
