/*
 * wire.h - the binary protocol: frames, messages, and the one place their
 * bytes are judged.
 *
 * doc/wire-protocol.md is the specification: every message, every field,
 * the errno each malformed input gets, and the versioning rule.  This module
 * does no I/O: it turns a struct mc_wire_msg into payload bytes and back,
 * and a struct mc_wire_header into its 24 bytes and back.  Decoders never
 * read past the buffer they are given, bound every count and string, and
 * check every name with mc_name_check().
 */
#ifndef MC_WIRE_H
#define MC_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"
#include "name.h"
#include "ns.h"

#define MC_WIRE_MAGIC 0x3146434dU /* the bytes "MCF1" */
#define MC_WIRE_VERSION_MIN 1
#define MC_WIRE_VERSION 1 /* the highest version spoken */
#define MC_WIRE_HEADER_SIZE 24
#define MC_WIRE_MAX_PAYLOAD (1U << 20) /* control part of any frame */
#define MC_WIRE_MAX_DATA (64U << 20) /* page bytes after a READ_PAGE reply */
#define MC_WIRE_MAX_BATCH 1024 /* items in any batched message */
#define MC_WIRE_MAX_REPLICAS 8 /* segments holding one page */
#define MC_WIRE_ADDR_MAX 45 /* address text, INET6_ADDRSTRLEN - 1 */
#define MC_WIRE_PROTO_MAX 7 /* "tcp" or "rdma" */
#define MC_WIRE_CONTROL_PORT 50051
#define MC_WIRE_REPLY 0x8000 /* or-ed into a reply's type */

enum mc_wire_type {
	/* control plane: session */
	MC_WIRE_HELLO = 0x0001,
	MC_WIRE_REGISTER = 0x0002,
	MC_WIRE_HEARTBEAT = 0x0003,
	MC_WIRE_HOLDINGS = 0x0004,
	/* control plane: one per src/ns.h call */
	MC_WIRE_LOOKUP = 0x0010,
	MC_WIRE_GETATTR = 0x0011,
	MC_WIRE_MKDIR = 0x0012,
	MC_WIRE_RMDIR = 0x0013,
	MC_WIRE_RESERVE = 0x0014,
	MC_WIRE_COMMIT = 0x0015,
	MC_WIRE_UNLINK = 0x0016,
	MC_WIRE_RENAME = 0x0017,
	MC_WIRE_SETATTR = 0x0018,
	MC_WIRE_TOUCH = 0x0019,
	MC_WIRE_PIN = 0x001a,
	MC_WIRE_UNPIN = 0x001b,
	MC_WIRE_READDIR = 0x001c,
	MC_WIRE_NAME_OF = 0x001d,
	MC_WIRE_STATS = 0x001e,
	/* control plane: placement */
	MC_WIRE_EVICT = 0x0020,
	MC_WIRE_REPLICAS = 0x0021,
	MC_WIRE_DROP = 0x0022,
	MC_WIRE_ADD_REPLICA = 0x0023,
	MC_WIRE_REPLICATE = 0x0024,
	/* data plane */
	MC_WIRE_READ_PAGE = 0x0040,
};

enum mc_wire_register_flags {
	MC_WIRE_REGISTER_POOL_LOST = 1 << 0, /* drop this segment's pages */
};

/* The 24-byte header; the magic is implied. */
struct mc_wire_header {
	uint16_t version;
	uint16_t type; /* enum mc_wire_type, | MC_WIRE_REPLY */
	uint32_t flags; /* none in version 1: send 0, ignore */
	uint32_t length; /* payload bytes after the header */
	uint64_t id; /* request id; a reply repeats it */
};

/* HELLO request */
struct mc_wire_hello {
	uint16_t min_version;
	uint16_t max_version;
	char name[MC_NAME_MAX + 1]; /* the sender */
};

/* HELLO reply: always whole, also when refused (-EPROTONOSUPPORT) */
struct mc_wire_hello_reply {
	uint16_t version; /* chosen; 0 when refused */
	uint16_t min_version; /* what the answering side speaks */
	uint16_t max_version;
};

struct mc_wire_register {
	uint8_t segment[16]; /* persistent uuid, not all zero */
	char host[MC_NAME_MAX + 1];
	char address[MC_WIRE_ADDR_MAX + 1]; /* data server, IP as text */
	uint16_t port; /* data server, not 0 */
	uint64_t capacity;
	char protocol[MC_WIRE_PROTO_MAX + 1]; /* "tcp" or "rdma" */
	uint32_t flags; /* enum mc_wire_register_flags */
};

struct mc_wire_register_reply {
	uint64_t segment_id; /* not 0 */
	uint64_t heartbeat_ms;
	uint64_t client_ttl_ms;
};

struct mc_wire_heartbeat {
	uint64_t segment_id;
	uint64_t used_bytes;
	uint64_t pages;
};

/* HOLDINGS request: one batch of the committed pages the pool holds */
struct mc_wire_holdings {
	uint8_t last; /* 1 on the final batch, else 0 */
	uint32_t count; /* 0..MC_WIRE_MAX_BATCH */
	uint64_t *ids; /* page ids */
};

/* LOOKUP, RMDIR, UNLINK requests */
struct mc_wire_entry {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
};

struct mc_wire_mkdir {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
};

struct mc_wire_reserved {
	uint64_t ino;
	uint64_t page_id;
};

struct mc_wire_reserve_reply {
	uint32_t count;
	struct mc_wire_reserved *items;
};

/* One COMMIT item: struct mc_ns_commit, where the bytes are, their crc32c */
struct mc_wire_commit_item {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
	uint64_t ino;
	uint64_t page_id;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t mtime_ns;
	uint32_t crc32c; /* of the page's size bytes */
	uint8_t nsegments; /* 1..MC_WIRE_MAX_REPLICAS */
	uint64_t segments[MC_WIRE_MAX_REPLICAS];
};

struct mc_wire_commit {
	uint32_t count;
	struct mc_wire_commit_item *items;
};

struct mc_wire_commit_result {
	int32_t status; /* 0 or -errno of this item */
	struct mc_ns_dropped replaced; /* ino 0 when nothing was replaced */
};

struct mc_wire_commit_reply {
	uint32_t count;
	struct mc_wire_commit_result *items;
};

struct mc_wire_rename {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
	uint64_t newparent;
	char newname[MC_NAME_MAX + 1];
	uint32_t flags; /* enum mc_ns_rename_flags */
};

struct mc_wire_setattr {
	uint64_t ino;
	uint32_t flags; /* enum mc_ns_setattr_flags */
	struct mc_ns_attr in;
};

struct mc_wire_touch_item {
	uint64_t ino;
	uint64_t now_ns;
};

struct mc_wire_touch {
	uint32_t count;
	struct mc_wire_touch_item *items;
};

struct mc_wire_touch_reply {
	uint32_t count;
	int32_t *status; /* one per item, in order */
};

/*
 * PIN, UNPIN requests (inode numbers); REPLICATE request and HOLDINGS
 * reply (page ids)
 */
struct mc_wire_ids {
	uint32_t count;
	uint64_t *ids;
};

struct mc_wire_readdir {
	uint64_t dir;
	uint64_t after; /* inode to continue after; 0 from the start */
	uint32_t max; /* 1..MC_WIRE_MAX_BATCH */
};

struct mc_wire_dirent {
	char name[MC_NAME_MAX + 1];
	struct mc_ns_attr attr;
};

struct mc_wire_readdir_reply {
	uint32_t count;
	uint8_t eof; /* 1 when the directory has no more entries */
	struct mc_wire_dirent *items;
};

struct mc_wire_name_of_reply {
	uint64_t parent;
	char name[MC_NAME_MAX + 1];
};

struct mc_wire_replica {
	uint64_t segment_id;
	char address[MC_WIRE_ADDR_MAX + 1];
	uint16_t port;
};

struct mc_wire_replicas_reply {
	uint64_t size; /* as committed */
	uint32_t crc32c; /* as committed */
	uint8_t count; /* 0..MC_WIRE_MAX_REPLICAS */
	struct mc_wire_replica replicas[MC_WIRE_MAX_REPLICAS];
};

/* EVICT request: make room in the sender's segment */
struct mc_wire_evict {
	uint64_t bytes; /* footprint to free */
	uint64_t unit; /* >= 1: a page's footprint is its size rounded up */
};

/*
 * EVICT reply and DROP request: pages (or the receiver's copy of them,
 * MC_NS_DROPPED_COPY) that left, each with ino != 0.  Only the wire
 * fields of struct mc_ns_dropped travel (not attr, nsegments, segments).
 * `freed` belongs to the EVICT reply; DROP does not send it (it is
 * ignored when encoding and 0 when decoded).
 */
struct mc_wire_dropped_list {
	uint64_t freed; /* footprint the EVICT freed, in bytes */
	uint32_t count; /* 0..MC_WIRE_MAX_BATCH */
	struct mc_ns_dropped *items;
};

struct mc_wire_read_page {
	uint64_t page_id;
	uint64_t offset;
	uint64_t length; /* <= MC_WIRE_MAX_DATA */
	uint64_t expected_size; /* offset + length <= expected_size */
	uint32_t expected_crc32c;
};

/* READ_PAGE reply: `length` page bytes follow the frame */
struct mc_wire_read_page_reply {
	uint64_t length; /* <= MC_WIRE_MAX_DATA */
};

/*
 * One message, request or reply.  `type` says which union member holds it
 * (doc/wire-protocol.md has the table); types whose body is empty (STATS
 * request; HEARTBEAT, RMDIR, PIN, UNPIN, DROP, ADD_REPLICA, REPLICATE
 * replies) use none.  A reply with a negative status carries no body,
 * except HELLO's.
 *
 * Batches point at their items.  For a message you build, point them at
 * your own arrays; a decoded message owns its items until
 * mc_wire_msg_release().
 */
struct mc_wire_msg {
	uint16_t type; /* enum mc_wire_type, | MC_WIRE_REPLY */
	int32_t status; /* replies: 0 or -errno (Linux numbers) */
	union {
		uint64_t ino; /* GETATTR, NAME_OF requests */
		uint64_t page_id; /* REPLICAS, ADD_REPLICA requests */
		struct mc_wire_hello hello;
		struct mc_wire_hello_reply hello_reply;
		struct mc_wire_register reg;
		struct mc_wire_register_reply reg_reply;
		struct mc_wire_heartbeat heartbeat;
		struct mc_wire_holdings holdings;
		struct mc_wire_entry entry;
		struct mc_wire_mkdir mkdir;
		struct mc_wire_reserve_reply reserve_reply;
		uint32_t reserve_count; /* RESERVE request */
		struct mc_wire_commit commit;
		struct mc_wire_commit_reply commit_reply;
		struct mc_wire_rename rename;
		struct mc_wire_setattr setattr;
		struct mc_wire_touch touch;
		struct mc_wire_touch_reply touch_reply;
		/* PIN, UNPIN, REPLICATE requests; HOLDINGS reply */
		struct mc_wire_ids ids;
		struct mc_wire_readdir readdir;
		struct mc_wire_readdir_reply readdir_reply;
		struct mc_wire_name_of_reply name_of_reply;
		struct mc_wire_replicas_reply replicas_reply;
		struct mc_wire_evict evict;
		/* EVICT reply, DROP request */
		struct mc_wire_dropped_list dropped_list;
		struct mc_wire_read_page read_page;
		struct mc_wire_read_page_reply read_page_reply;
		/* LOOKUP, GETATTR, MKDIR, SETATTR replies */
		struct mc_ns_attr attr;
		/* UNLINK, RENAME replies */
		struct mc_ns_dropped dropped;
		/* STATS reply */
		struct mc_ns_stats stats;
	} u;
	void *owned; /* private: the items decode allocated */
};

/*
 * A bounded writer over a caller's buffer.  The put functions never write
 * past cap; the first one that does not fit sets a sticky -EMSGSIZE and
 * writes nothing more (a str longer than UINT16_MAX sets -EINVAL).
 */
struct mc_wire_writer {
	uint8_t *buf;
	size_t cap;
	size_t len; /* bytes written so far */
	int err; /* 0, or the first error */
};

void mc_wire_writer_init(struct mc_wire_writer *w, void *buf, size_t cap);
void mc_wire_put_u8(struct mc_wire_writer *w, uint8_t v);
void mc_wire_put_u16(struct mc_wire_writer *w, uint16_t v);
void mc_wire_put_u32(struct mc_wire_writer *w, uint32_t v);
void mc_wire_put_u64(struct mc_wire_writer *w, uint64_t v);
void mc_wire_put_i32(struct mc_wire_writer *w, int32_t v);
void mc_wire_put_bytes(struct mc_wire_writer *w, const void *p, size_t len);
/* u16 length, then len bytes of s */
void mc_wire_put_str(struct mc_wire_writer *w, const char *s, size_t len);
/* 0 when everything fitted, else the sticky error. */
int mc_wire_writer_done(const struct mc_wire_writer *w);

/*
 * A bounded reader over received bytes.  Each get returns 0, or -EBADMSG
 * (zeroing *v) when the bytes run out; the first error sticks and every
 * later get fails with it.
 */
struct mc_wire_reader {
	const uint8_t *buf;
	size_t len;
	size_t off; /* bytes consumed */
	int err; /* 0, or the first error */
};

void mc_wire_reader_init(struct mc_wire_reader *r, const void *buf, size_t len);
int mc_wire_get_u8(struct mc_wire_reader *r, uint8_t *v);
int mc_wire_get_u16(struct mc_wire_reader *r, uint16_t *v);
int mc_wire_get_u32(struct mc_wire_reader *r, uint32_t *v);
int mc_wire_get_u64(struct mc_wire_reader *r, uint64_t *v);
int mc_wire_get_i32(struct mc_wire_reader *r, int32_t *v);
int mc_wire_get_bytes(struct mc_wire_reader *r, void *out, size_t len);
/*
 * A str into out (size bytes, NUL-terminated on success): -EBADMSG when it
 * is cut short, holds a NUL or does not fit (length >= size).
 */
int mc_wire_get_str(struct mc_wire_reader *r, char *out, size_t size);
/*
 * A str that must be a name (out holds MC_NAME_MAX + 1 bytes): -EBADMSG
 * when cut short, -ENAMETOOLONG over MC_NAME_MAX bytes, else what
 * mc_name_check() says (-EINVAL for "", ".", "..", '/' or NUL inside).
 */
int mc_wire_get_name(struct mc_wire_reader *r, char *out);
/* The sticky error, or -EBADMSG when bytes are left over; else 0. */
int mc_wire_reader_done(const struct mc_wire_reader *r);

/*
 * Write h (its version, type, flags, length and id) and the magic as 24
 * bytes into buf, which holds at least MC_WIRE_HEADER_SIZE.  Returns 0, or
 * -EINVAL when h->length is over MC_WIRE_MAX_PAYLOAD.
 */
int mc_wire_header_encode(const struct mc_wire_header *h, void *buf);

/*
 * Read a header from the first 24 of len bytes.  Returns 0; -EAGAIN when
 * len < MC_WIRE_HEADER_SIZE (read more); -EBADMSG for a wrong magic or a
 * length over MC_WIRE_MAX_PAYLOAD (framing is lost: close); -EPROTO for a
 * version outside MC_WIRE_VERSION_MIN..MC_WIRE_VERSION, with *out filled in
 * all the same.  *out is zeroed on the other errors.
 */
int mc_wire_header_decode(const void *buf, size_t len,
			  struct mc_wire_header *out);

/*
 * Append m's payload to w.  Returns 0; -EINVAL when m cannot be sent (a
 * count over its maximum, a string not terminated inside its field, a
 * status outside -4095..0); -ENOSYS for an unknown type, except that a
 * reply with a negative status can be encoded for any type (the answer to
 * a request whose type we do not know); -EMSGSIZE when w is full.
 */
int mc_wire_msg_encode(const struct mc_wire_msg *m, struct mc_wire_writer *w);

/*
 * Encode a whole frame (header with MC_WIRE_VERSION and id, then m's
 * payload) into buf.  *lenp gets the frame's size.  Returns 0 or what
 * mc_wire_msg_encode() returns; -EMSGSIZE also when the payload is over
 * MC_WIRE_MAX_PAYLOAD.
 */
int mc_wire_frame_encode(const struct mc_wire_msg *m, uint64_t id, void *buf,
			 size_t cap, size_t *lenp);

/* The same with the header's version given (a connection's agreed one). */
int mc_wire_frame_encode_version(const struct mc_wire_msg *m, uint16_t version,
				 uint64_t id, void *buf, size_t cap,
				 size_t *lenp);

/*
 * Decode the payload (len bytes) of a frame of the given type into *m,
 * which is overwritten (release what it held first).  Returns 0; -EBADMSG,
 * -ENAMETOOLONG or -EINVAL as doc/wire-protocol.md tabulates; -ENOSYS for
 * an unknown type; -ENOMEM.  On error *m holds nothing to release.
 */
int mc_wire_msg_decode(struct mc_wire_msg *m, uint16_t type, const void *buf,
		       size_t len);

/* Free the items a decode allocated; m is zeroed.  Safe on any message. */
void mc_wire_msg_release(struct mc_wire_msg *m);

/* "HELLO", "COMMIT" ... for logs (replies too); NULL for unknown types. */
const char *mc_wire_type_name(uint16_t type);

#endif
