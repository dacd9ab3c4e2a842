/*
 * transport.h - how page bytes move from a peer's data server into this
 * host's pool memory: one ops table (STYLE.md rule 2), a TCP implementation
 * over io_uring, and an in-process fake with fault injection for tests.
 *
 * A transport moves bytes and nothing more: which copy to read, and whether
 * the page as a whole is right, is src/fetch.c's business.  To spare it a
 * second pass over the bytes, a read checksums what it receives as it
 * arrives and hands back the running CRC-32C.
 *
 * Errors, the same for every transport:
 *   -ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -ETIMEDOUT
 *			the peer is unreachable, or went silent
 *   -ECONNRESET	it died in the middle of a transfer
 *   -ENOENT		it does not hold the page
 *   -ESTALE		its copy's size is not req->expected_size
 *   -EIO		its copy's checksum is not req->expected_crc32c
 *   -EBADMSG		it spoke garbage (the connection was dropped)
 *   -EPROTONOSUPPORT	it speaks no protocol version we speak
 *   -EINVAL		a request that cannot be sent (range past the end)
 *   -ENOMEM
 * On any error the bytes in dst are unspecified: never use them.
 */
#ifndef MC_TRANSPORT_H
#define MC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ns.h"
#include "wire.h"

struct mc_transport;

struct mc_transport_ops {
	const char *name; /* "tcp", "fake" (later "rdma") */
	/* mc_transport_read(), below */
	int (*read)(struct mc_transport *t, const struct mc_ns_replica *peer,
		    const struct mc_wire_read_page *req, void *dst,
		    uint32_t *crc);
	void (*free)(struct mc_transport *t);
};

/* Embedded first in each implementation's own struct. */
struct mc_transport {
	const struct mc_transport_ops *ops;
};

/*
 * Read req->length bytes of page req->page_id, from req->offset, off peer
 * into dst (req->length bytes).  req->expected_size and expected_crc32c
 * are the page's as committed; the peer refuses a copy that disagrees.
 * crc: NULL, or on entry the CRC-32C of the page's bytes before req->offset
 * (0 at offset 0) and on success that CRC continued over the bytes read.
 * Returns 0 with exactly req->length bytes in dst, or -errno (above); never
 * a short read that returns 0.  Thread safe.
 */
int mc_transport_read(struct mc_transport *t, const struct mc_ns_replica *peer,
		      const struct mc_wire_read_page *req, void *dst,
		      uint32_t *crc);

/* "tcp", "fake": for logs. */
const char *mc_transport_name(const struct mc_transport *t);

/* Free t and everything it holds; NULL is fine.  No read may be running. */
void mc_transport_free(struct mc_transport *t);

/* ------------------------------------------------------------------ TCP */

enum mc_transport_tcp_flags {
	/* receive page bytes with recv(2), not io_uring: for measurements */
	MC_TRANSPORT_TCP_PLAIN_RECV = 1 << 0,
};

struct mc_transport_tcp_params {
	unsigned timeout_ms; /* connect, and each wait: for a frame, for a
			      * receive step of page bytes; 0: 2000 */
	unsigned conns_per_peer; /* idle connections kept per peer; 0: 4 */
	const char *name; /* sent in HELLO; NULL: "mooncaked" */
	size_t recv_chunk; /* bytes per receive (and checksum) step; 0: best
			    * measured, 512 KiB; at least 64 KiB */
	unsigned flags; /* enum mc_transport_tcp_flags */
};

/*
 * A transport that reads from data servers (src/data_server.h) over TCP:
 * a pool of connections per peer address and port, each opened with HELLO
 * and reused until an error drops it.  p may be NULL (every default).
 * 0, or -ENOMEM.  Free with mc_transport_free().
 */
int mc_transport_tcp_new(struct mc_transport **tp,
			 const struct mc_transport_tcp_params *p);

/* ----------------------------------------------------------------- fake */

/*
 * An in-process table of peers, each known by its segment id (address and
 * port are not looked at), holding copies of pages, with one fault each.
 * It judges requests as a data server does (-ENOENT, -ESTALE, -EIO), then
 * applies the fault.
 */
struct mc_transport_fake;

enum mc_transport_fault {
	MC_TRANSPORT_FAULT_NONE,
	/* every read: -ECONNREFUSED */
	MC_TRANSPORT_FAULT_REFUSE,
	/* write arg bytes (at most the request's) into dst, then -ECONNRESET */
	MC_TRANSPORT_FAULT_DROP,
	/*
	 * sleep arg ms before answering; at or past the fake's timeout sleep
	 * the timeout and fail -ETIMEDOUT instead
	 */
	MC_TRANSPORT_FAULT_DELAY,
	/*
	 * a lower layer that loses the last arg (at least 1) bytes and says
	 * nothing: dst and the CRC cover the shorter range, and 0 is returned.
	 * Only the end-to-end checksum can catch it.
	 */
	MC_TRANSPORT_FAULT_TRUNCATE,
	/* flip byte arg % length of what was sent, on the way (CRC included) */
	MC_TRANSPORT_FAULT_CORRUPT,
	/*
	 * the peer dies at the next read (after arg bytes into dst, then
	 * -ECONNRESET); every later read: -EHOSTUNREACH
	 */
	MC_TRANSPORT_FAULT_DEAD,
};

/* An empty fake: 0 or -ENOMEM.  Free with mc_transport_fake_free(). */
int mc_transport_fake_new(struct mc_transport_fake **fp);

/* Free f and its pages; NULL is fine.  Also what mc_transport_free() does. */
void mc_transport_fake_free(struct mc_transport_fake *f);

/* The transport to hand to callers; owned by f. */
struct mc_transport *mc_transport_fake_transport(struct mc_transport_fake *f);

/* The longest a read waits (MC_TRANSPORT_FAULT_DELAY); 2000 at first. */
void mc_transport_fake_set_timeout(struct mc_transport_fake *f,
				   unsigned timeout_ms);

/*
 * Give peer a copy of page_id: len bytes copied from data (replacing any
 * copy it held).  Its committed checksum is taken from the bytes.  0 or
 * -ENOMEM.
 */
int mc_transport_fake_add_page(struct mc_transport_fake *f,
			       const struct mc_ns_replica *peer,
			       uint64_t page_id, const void *data,
			       uint64_t len);

/* Set peer's fault (replacing the last one); 0 or -ENOMEM. */
int mc_transport_fake_set_fault(struct mc_transport_fake *f,
				const struct mc_ns_replica *peer,
				enum mc_transport_fault fault, uint64_t arg);

/* Reads addressed to peer so far, failed ones included. */
unsigned mc_transport_fake_calls(struct mc_transport_fake *f,
				 const struct mc_ns_replica *peer);

#endif
