/*
 * fetch.h - read a page this host does not hold from a host that does:
 * pick a copy, move the bytes with a transport, check them end to end,
 * and try the next copy when anything goes wrong.
 */
#ifndef MC_FETCH_H
#define MC_FETCH_H

#include <stdint.h>

#include "ns.h"
#include "transport.h"

/*
 * Fetch page_id into dst (r->size bytes), where r is what the master's
 * REPLICAS said, skipping segment self.  Copies are tried in turn, each
 * once, starting at a pseudo-random one so readers spread over them; a
 * page over MC_WIRE_MAX_DATA is read in several requests.  Each copy's
 * bytes are checked for length and against r->crc32c.
 * Returns 0 with *from the segment the bytes came from; -ENOENT when r
 * lists no copy but self; else the last copy's error (-EIO for a checksum
 * mismatch, -ETIMEDOUT, -ECONNRESET ...; transport.h), with *from 0 and
 * dst unspecified.  Never 0 with wrong or partial bytes.  Thread safe as t
 * is.
 */
int mc_fetch_page(struct mc_transport *t, const struct mc_ns_replicas *r,
		  uint64_t page_id, uint64_t self, void *dst, uint64_t *from);

#endif
