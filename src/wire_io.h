/*
 * wire_io.h - the protocol's frames over a socket: dial, listen, and a
 * connection that receives and sends whole frames.
 *
 * Blocking I/O, one thread per direction: one reader per connection calls
 * the receive functions; any number of threads may send (frames never
 * interleave).  Every wait is bounded by the connection's timeout, if set.
 * Bytes are judged by src/wire.c; this module only moves them.  After a
 * connection-level error (any error from a receive, any error from a send
 * except the encoder's) the byte stream is lost: close the connection.
 */
#ifndef MC_WIRE_IO_H
#define MC_WIRE_IO_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/*
 * Connect to host:port (IPv4/IPv6 literal or a name, every address it
 * resolves to in turn) within timeout_ms in all (0: no limit), with
 * TCP_NODELAY on and close-on-exec.  Returns the fd, or -ETIMEDOUT,
 * -ECONNREFUSED, -EHOSTUNREACH (also a name that cannot be resolved right
 * now), -ENETUNREACH, -EINVAL for a bad host or port 0, -ENOMEM.
 */
int mc_wire_dial(const char *host, uint16_t port, unsigned timeout_ms);

/*
 * Listen on addr:port (addr NULL or "" = every address, IPv6 and IPv4;
 * port 0 = an ephemeral one, see mc_wire_local_port()) with SO_REUSEADDR
 * and close-on-exec.  Returns the fd, or -EINVAL for a bad addr,
 * -EADDRINUSE, -EACCES, -EADDRNOTAVAIL, ...
 */
int mc_wire_listen(const char *addr, uint16_t port, int backlog);

/* The port a socket is bound to.  0 or -errno (-ENOTSOCK, -EINVAL). */
int mc_wire_local_port(int fd, uint16_t *port);

/*
 * Split "host:port", "[v6]:port", "[v6]", a bare IPv6 literal ("fd00::1",
 * more than one ':') or "host" (the last three take *port = default_port)
 * into host (hostlen bytes, NUL-terminated) and port.  0, or -EINVAL: an
 * empty host, a port that is not 1..65535 in decimal, a stray bracket, or
 * a host that does not fit hostlen.
 */
int mc_wire_parse_hostport(const char *s, uint16_t default_port, char *host,
			   size_t hostlen, uint16_t *port);

/* One connected socket: a receive buffer, a send buffer, a send lock. */
struct mc_wire_conn;

/*
 * Take ownership of fd (closed by mc_wire_conn_close()).  0, or -ENOMEM
 * (-EBADF for fd < 0), and then the caller still owns fd.
 */
int mc_wire_conn_open(struct mc_wire_conn **cp, int fd);

/* Close the fd and free the connection; NULL is fine.  No thread may use it. */
void mc_wire_conn_close(struct mc_wire_conn *c);

int mc_wire_conn_fd(const struct mc_wire_conn *c);

/*
 * shutdown(SHUT_RDWR): a reader blocked in a receive wakes with
 * -ECONNRESET and senders fail.  Any thread, any time.
 */
void mc_wire_conn_shutdown(struct mc_wire_conn *c);

/*
 * Bound every wait of a receive or send to timeout_ms with no byte moving
 * (SO_RCVTIMEO, SO_SNDTIMEO); 0 = wait forever (the default).
 */
void mc_wire_conn_set_timeout(struct mc_wire_conn *c, unsigned timeout_ms);

/* The version agreed by HELLO; 0 before. */
uint16_t mc_wire_conn_version(const struct mc_wire_conn *c);

/*
 * Receive the next frame (one reader thread per conn).  Returns 0 when a
 * whole frame arrived: *h is its header and *decode_status is 0 with *m
 * decoded (release it with mc_wire_msg_release()), or the decoder's -errno
 * (*m then holds nothing; the connection is fine and a server answers
 * with that status).  Connection-level failures return < 0 and the conn
 * must be closed: -ECONNRESET (peer closed or reset, also a clean EOF),
 * -ETIMEDOUT, -EBADMSG (framing lost: bad magic or oversize length),
 * -EPROTO (a version this side does not speak, or not the agreed one; *h
 * is filled in for the log), -ENOMEM.
 */
int mc_wire_conn_recv(struct mc_wire_conn *c, struct mc_wire_header *h,
		      struct mc_wire_msg *m, int *decode_status);

/*
 * Receive len raw bytes that follow a frame (READ_PAGE reply data) into
 * dst: the buffered ones first, then straight from the socket.  0,
 * -ECONNRESET when the stream ends inside them, -ETIMEDOUT.
 */
int mc_wire_conn_recv_data(struct mc_wire_conn *c, void *dst, uint64_t len);

/*
 * Bytes received and buffered but not yet consumed (a server flushes its
 * queued replies when this is 0: no request is waiting).
 */
size_t mc_wire_conn_buffered(const struct mc_wire_conn *c);

/*
 * Encode and send one whole frame now, after any queued ones (thread safe:
 * frames never interleave).  0, an encoder error (-EINVAL, -ENOSYS,
 * -EMSGSIZE: nothing was sent, the conn is fine), or -EPIPE, -ECONNRESET,
 * -ETIMEDOUT (the conn is lost; so are later sends).
 */
int mc_wire_conn_send(struct mc_wire_conn *c, const struct mc_wire_msg *m,
		      uint64_t id);

/*
 * Append a frame to the send buffer (thread safe); it leaves with the next
 * mc_wire_conn_flush() or send, or when the buffer fills.  Errors as
 * mc_wire_conn_send().
 */
int mc_wire_conn_queue(struct mc_wire_conn *c, const struct mc_wire_msg *m,
		       uint64_t id);

/* Send what is queued.  0 or a send error as mc_wire_conn_send(). */
int mc_wire_conn_flush(struct mc_wire_conn *c);

/*
 * Send a frame, then len bytes of data_fd from offset off (sendfile(2)),
 * as one unit under the send lock (READ_PAGE reply).  Errors as
 * mc_wire_conn_send(), and -EIO when data_fd ends before off + len (the
 * conn is lost: the peer waits for bytes that will not come).
 */
int mc_wire_conn_send_data(struct mc_wire_conn *c, const struct mc_wire_msg *m,
			   uint64_t id, int data_fd, uint64_t off,
			   uint64_t len);

/*
 * The same with the bytes from memory (len bytes at data): a copy into
 * the socket, which beats sendfile(2) from files on huge pages (their
 * 2 MiB folios go out 4 KiB at a time).  Errors as mc_wire_conn_send().
 */
int mc_wire_conn_send_buf(struct mc_wire_conn *c, const struct mc_wire_msg *m,
			  uint64_t id, const void *data, uint64_t len);

/*
 * Client side of HELLO, first on a new connection: send it (id 0) with the
 * sender name, wait for the reply, set the version.  0; -EPROTONOSUPPORT
 * (logged with both ranges: close); -EPROTO when the peer answered with
 * something else; -EINVAL or -ENAMETOOLONG for a name mc_name_check()
 * refuses; or a connection error.
 */
int mc_wire_conn_hello(struct mc_wire_conn *c, const char *name);

/*
 * Server side: answer the HELLO request (h, m as received) and set the
 * version.  0; -EPROTONOSUPPORT (the refusal was sent: close); -EINVAL
 * when m is not a HELLO request; or a send error.
 */
int mc_wire_conn_answer_hello(struct mc_wire_conn *c,
			      const struct mc_wire_header *h,
			      const struct mc_wire_msg *m);

#endif
