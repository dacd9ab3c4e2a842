/*
 * data_server.h - serves this host's committed pages to its peers: the
 * server side of READ_PAGE (doc/wire-protocol.md, data plane).
 *
 * A thread accepts, and one thread per connection answers HELLO, then
 * READ_PAGE requests in order, each with a status and the page bytes sent
 * straight from the pool file (sendfile: no copy through user space).
 * Every copy is checked against what the reader says was committed (size,
 * CRC-32C) before a byte leaves; a page's checksum is computed once and
 * remembered, since a page id's bytes never change.
 */
#ifndef MC_DATA_SERVER_H
#define MC_DATA_SERVER_H

#include <stdbool.h>
#include <stdint.h>

/* Where the server finds pages: the pool, or a directory in tests. */
struct mc_page_source {
	/*
	 * Open committed page page_id read-only: 0 with *fd (the server
	 * closes it) and *size, or -ENOENT when this host holds no committed
	 * copy (other -errno are sent to the reader as they are).  Called
	 * from many threads at once.
	 */
	int (*open)(void *ctx, uint64_t page_id, int *fd, uint64_t *size);
	/*
	 * Optional: the CRC-32C recorded for the page open on fd, 0 when it
	 * is known, else -errno and the server computes it (one read pass,
	 * remembered).
	 */
	int (*crc)(void *ctx, int fd, uint32_t *crc32c);
	/*
	 * True when a page's file never shrinks while open (a pool of
	 * write-once pages): the server may then send from a mapping.
	 */
	bool immutable;
	void *ctx;
};

struct mc_data_server_params {
	const char *address; /* IP to listen on; NULL or "": every address */
	uint16_t port; /* 0: an ephemeral one (mc_data_server_port()) */
	unsigned max_conns; /* connections served at once; 0: 64 */
	unsigned timeout_ms; /* any wait inside a frame or a send; 0: 2000 */
	unsigned idle_timeout_ms; /* between requests; 0: 60000 */
};

struct mc_data_server;

/*
 * Listen as p says and start serving pages from src (copied; its ctx must
 * outlive the server).  Returns 0, or -errno: -EADDRINUSE (logged with
 * what to do), -EACCES, -EINVAL for a bad address, -ENOMEM, -EAGAIN (no
 * thread).  Close with mc_data_server_close().
 */
int mc_data_server_open(struct mc_data_server **sp,
			const struct mc_data_server_params *p,
			const struct mc_page_source *src);

/* The port it listens on (the ephemeral one when params said 0). */
uint16_t mc_data_server_port(const struct mc_data_server *s);

/* Counters since open, for status files and tests. */
struct mc_data_server_stats {
	uint64_t accepted; /* connections served */
	uint64_t refused; /* connections turned away at max_conns */
	uint64_t requests; /* READ_PAGE requests answered, errors included */
	uint64_t pages_sent; /* ... of which answered with bytes */
	uint64_t bytes_sent; /* page bytes sent (or being sent) */
	unsigned open; /* connections open now */
};

void mc_data_server_get_stats(struct mc_data_server *s,
			      struct mc_data_server_stats *st);

/*
 * Stop accepting, cut every connection (a reader mid-page sees
 * -ECONNRESET), wait for every thread, free s.  NULL is fine.
 */
void mc_data_server_close(struct mc_data_server *s);

#endif
