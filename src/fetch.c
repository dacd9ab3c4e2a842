/*
 * fetch.c - the policy above the transports: which copy, in what order,
 * and when the bytes are good enough to hand to a reader.
 *
 * The transport checksums the bytes as they arrive and returns the running
 * CRC-32C, so verifying an 8 MiB page costs no second pass over it here.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "fetch.h"
#include "log.h"
#include "banned.h"

/*
 * Where to start among n copies.  Spreading readers needs no good
 * randomness, only variety across readers and pages: the clock's
 * nanoseconds and the page id through a mixer (splitmix64) give that
 * without any shared state.
 */
static unsigned first_copy(uint64_t page_id, unsigned n)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = page_id ^
	    ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	x ^= x >> 31;
	return (unsigned)(x % n);
}

/* "ECONNRESET" for -ECONNRESET: the log grammar's (ENAME) */
/* The whole page from one copy, in requests of at most MC_WIRE_MAX_DATA. */
static int fetch_from(struct mc_transport *t, const struct mc_ns_replicas *r,
		      const struct mc_ns_replica *peer, uint64_t page_id,
		      void *dst)
{
	struct mc_wire_read_page req = {
		.page_id = page_id,
		.expected_size = r->size,
		.expected_crc32c = r->crc32c,
	};
	uint32_t crc = 0;
	int ret;

	/* at least one request, so an empty page is still asked for: the
	 * peer says whether it holds it */
	do {
		req.length = r->size - req.offset;
		if (req.length > MC_WIRE_MAX_DATA)
			req.length = MC_WIRE_MAX_DATA;
		ret = mc_transport_read(t, peer, &req,
					(uint8_t *)dst + req.offset, &crc);
		req.offset += req.length;
	} while (ret == 0 && req.offset < r->size);
	/* a lower layer that lost or changed bytes shows up here */
	if (ret == 0 && crc != r->crc32c)
		ret = -EIO;
	return ret;
}

int mc_fetch_page(struct mc_transport *t, const struct mc_ns_replicas *r,
		  uint64_t page_id, uint64_t self, void *dst, uint64_t *from)
{
	const struct mc_ns_replica *copies[MC_NS_MAX_REPLICAS];
	unsigned n = 0, i, start, count;
	int ret = -ENOENT;

	*from = 0;
	count = r->count < MC_NS_MAX_REPLICAS ? r->count : MC_NS_MAX_REPLICAS;
	for (i = 0; i < count; i++)
		if (r->r[i].segment_id != self)
			copies[n++] = &r->r[i];
	if (n == 0)
		goto out;
	start = first_copy(page_id, n);
	for (i = 0; i < n; i++) {
		const struct mc_ns_replica *peer = copies[(start + i) % n];

		ret = fetch_from(t, r, peer, page_id, dst);
		if (ret == 0) {
			*from = peer->segment_id;
			break;
		}
		mc_log_ratelimited(MC_LOG_WARNING,
				   "fetch: cannot read page %016" PRIx64
				   " from segment %" PRIu64
				   " at '%s' port %u (%s): %s",
				   page_id, peer->segment_id, peer->address,
				   peer->port, mc_errname(ret),
				   i + 1 < n ? "trying the next copy" :
					       "no copy left, the read fails");
	}
out:
	return ret;
}
