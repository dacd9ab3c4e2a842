/*
 * wire.c - frames and messages of the binary protocol: the one place bytes
 * from a socket are judged.  doc/wire-protocol.md is the specification.
 *
 * Each message type is one row of ops[]: its name, and the encoder and
 * decoder of its request and of its reply body.  A reply's leading status
 * is written and read here, around them, so a per-message function never
 * sees a failed reply (which has no body, HELLO's excepted).  Writers and
 * readers carry a sticky error, so the per-message functions are straight
 * lists of fields; each bound is checked right where its field is read,
 * before anything is allocated or copied on its word.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "banned.h"

/* statuses are 0 or -errno, and errno numbers stop here (Linux's MAX_ERRNO) */
#define MAX_ERRNO 4095

/* ------------------------------------------------------------------ writer */

void mc_wire_writer_init(struct mc_wire_writer *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf ? cap : 0;
	w->len = 0;
	w->err = 0;
}

/* First error sticks: later puts write nothing. */
static void writer_fail(struct mc_wire_writer *w, int err)
{
	if (!w->err)
		w->err = err;
}

/* Room for n more bytes at the end, or NULL with the error set. */
static uint8_t *writer_room(struct mc_wire_writer *w, size_t n)
{
	uint8_t *p;

	if (w->err)
		return NULL;
	if (n > w->cap - w->len) {
		writer_fail(w, -EMSGSIZE);
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

static void store_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t load_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void put_le(struct mc_wire_writer *w, uint64_t v, size_t n)
{
	uint8_t *p = writer_room(w, n);

	if (p)
		store_le(p, v, n);
}

void mc_wire_put_u8(struct mc_wire_writer *w, uint8_t v)
{
	put_le(w, v, 1);
}

void mc_wire_put_u16(struct mc_wire_writer *w, uint16_t v)
{
	put_le(w, v, 2);
}

void mc_wire_put_u32(struct mc_wire_writer *w, uint32_t v)
{
	put_le(w, v, 4);
}

void mc_wire_put_u64(struct mc_wire_writer *w, uint64_t v)
{
	put_le(w, v, 8);
}

void mc_wire_put_i32(struct mc_wire_writer *w, int32_t v)
{
	put_le(w, (uint32_t)v, 4);
}

void mc_wire_put_bytes(struct mc_wire_writer *w, const void *p, size_t len)
{
	uint8_t *dst = writer_room(w, len);

	if (dst && len)
		memcpy(dst, p, len);
}

void mc_wire_put_str(struct mc_wire_writer *w, const char *s, size_t len)
{
	if (len > UINT16_MAX) {
		writer_fail(w, -EINVAL);
		return;
	}
	mc_wire_put_u16(w, (uint16_t)len);
	mc_wire_put_bytes(w, s, len);
}

int mc_wire_writer_done(const struct mc_wire_writer *w)
{
	return w->err;
}

/* A NUL-terminated field of size bytes: -EINVAL when it is not terminated */
static void put_field(struct mc_wire_writer *w, const char *s, size_t size)
{
	size_t len = strnlen(s, size);

	if (len == size)
		writer_fail(w, -EINVAL);
	else
		mc_wire_put_str(w, s, len);
}

/* A batch count, refused locally when the peer would refuse it */
static void put_count(struct mc_wire_writer *w, uint32_t count, uint32_t max)
{
	if (count > max)
		writer_fail(w, -EINVAL);
	else
		mc_wire_put_u32(w, count);
}

/* ------------------------------------------------------------------ reader */

void mc_wire_reader_init(struct mc_wire_reader *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = buf ? len : 0;
	r->off = 0;
	r->err = 0;
}

static int reader_fail(struct mc_wire_reader *r, int err)
{
	if (!r->err)
		r->err = err;
	return r->err;
}

/* The next n bytes, or NULL with the error set: nothing reads past len */
static const uint8_t *reader_take(struct mc_wire_reader *r, size_t n)
{
	const uint8_t *p;

	if (r->err)
		return NULL;
	if (n > r->len - r->off) {
		reader_fail(r, -EBADMSG);
		return NULL;
	}
	p = r->buf + r->off;
	r->off += n;
	return p;
}

static int get_le(struct mc_wire_reader *r, uint64_t *v, size_t n)
{
	const uint8_t *p = reader_take(r, n);

	*v = p ? load_le(p, n) : 0;
	return p ? 0 : r->err;
}

int mc_wire_get_u8(struct mc_wire_reader *r, uint8_t *v)
{
	uint64_t x;
	int e = get_le(r, &x, 1);

	*v = (uint8_t)x;
	return e;
}

int mc_wire_get_u16(struct mc_wire_reader *r, uint16_t *v)
{
	uint64_t x;
	int e = get_le(r, &x, 2);

	*v = (uint16_t)x;
	return e;
}

int mc_wire_get_u32(struct mc_wire_reader *r, uint32_t *v)
{
	uint64_t x;
	int e = get_le(r, &x, 4);

	*v = (uint32_t)x;
	return e;
}

int mc_wire_get_u64(struct mc_wire_reader *r, uint64_t *v)
{
	return get_le(r, v, 8);
}

int mc_wire_get_i32(struct mc_wire_reader *r, int32_t *v)
{
	uint64_t x;
	int e = get_le(r, &x, 4);

	/* two's complement by arithmetic: no implementation-defined cast */
	if (x & 0x80000000U)
		*v = -(int32_t)(0xffffffffU - (uint32_t)x) - 1;
	else
		*v = (int32_t)x;
	return e;
}

int mc_wire_get_bytes(struct mc_wire_reader *r, void *out, size_t len)
{
	const uint8_t *p = reader_take(r, len);

	if (!p) {
		memset(out, 0, len);
		return r->err;
	}
	if (len)
		memcpy(out, p, len);
	return 0;
}

/* A str's bytes, in place: the length is checked against what is left */
static int get_raw_str(struct mc_wire_reader *r, const uint8_t **sp,
		       size_t *lenp)
{
	uint16_t n;

	*sp = NULL;
	*lenp = 0;
	if (mc_wire_get_u16(r, &n) < 0)
		return r->err;
	*sp = reader_take(r, n);
	if (!*sp)
		return r->err;
	*lenp = n;
	return 0;
}

int mc_wire_get_str(struct mc_wire_reader *r, char *out, size_t size)
{
	const uint8_t *s;
	size_t n;

	if (size)
		out[0] = '\0';
	if (get_raw_str(r, &s, &n) < 0)
		return r->err;
	if (n >= size || (n && memchr(s, '\0', n)))
		return reader_fail(r, -EBADMSG);
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int mc_wire_get_name(struct mc_wire_reader *r, char *out)
{
	const uint8_t *s;
	size_t n;
	int e;

	out[0] = '\0';
	if (get_raw_str(r, &s, &n) < 0)
		return r->err;
	if (n > MC_NAME_MAX)
		return reader_fail(r, -ENAMETOOLONG);
	if (n && memchr(s, '\0', n))
		return reader_fail(r, -EINVAL);
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
	e = mc_name_check(out);
	if (e < 0) {
		out[0] = '\0';
		return reader_fail(r, e);
	}
	return 0;
}

int mc_wire_reader_done(const struct mc_wire_reader *r)
{
	if (r->err)
		return r->err;
	return r->off == r->len ? 0 : -EBADMSG;
}

/* A field that broke a rule of the protocol: the message is malformed */
static void reader_bad(struct mc_wire_reader *r)
{
	reader_fail(r, -EBADMSG);
}

static bool status_ok(int32_t status)
{
	return status <= 0 && status >= -MAX_ERRNO;
}

/* An item's status: 0 or -errno */
static void put_status(struct mc_wire_writer *w, int32_t status)
{
	if (!status_ok(status))
		writer_fail(w, -EINVAL);
	mc_wire_put_i32(w, status);
}

static void get_status(struct mc_wire_reader *r, int32_t *status)
{
	if (mc_wire_get_i32(r, status) == 0 && !status_ok(*status))
		reader_bad(r);
}

/* An IPv4 or IPv6 address as text, nothing else (no host names) */
static void get_address(struct mc_wire_reader *r, char *out)
{
	struct in6_addr a;

	if (mc_wire_get_str(r, out, MC_WIRE_ADDR_MAX + 1) == 0 &&
	    inet_pton(AF_INET, out, &a) != 1 &&
	    inet_pton(AF_INET6, out, &a) != 1)
		reader_bad(r);
}

static uint32_t get_count(struct mc_wire_reader *r, uint32_t max)
{
	uint32_t n;

	if (mc_wire_get_u32(r, &n) == 0 && n > max)
		reader_bad(r);
	return r->err ? 0 : n;
}

/*
 * Room for count decoded items of item_size bytes, owned by m.  Each item
 * takes at least min_wire bytes on the wire, so a count the bytes left
 * cannot hold is refused before anything is allocated.
 */
static void *get_items(struct mc_wire_reader *r, struct mc_wire_msg *m,
		       uint32_t count, size_t item_size, size_t min_wire)
{
	void *items;

	if (r->err || count == 0)
		return NULL;
	if (count > (r->len - r->off) / min_wire) {
		reader_bad(r);
		return NULL;
	}
	items = calloc(count, item_size);
	if (!items) {
		reader_fail(r, -ENOMEM);
		return NULL;
	}
	m->owned = items;
	return items;
}

/* ----------------------------------------------------------- shared shapes */

static void put_attr(struct mc_wire_writer *w, const struct mc_ns_attr *a)
{
	mc_wire_put_u64(w, a->ino);
	mc_wire_put_u64(w, a->parent);
	mc_wire_put_u32(w, a->mode);
	mc_wire_put_u32(w, a->uid);
	mc_wire_put_u32(w, a->gid);
	mc_wire_put_u32(w, a->nlink);
	mc_wire_put_u64(w, a->size);
	mc_wire_put_u64(w, a->page_id);
	mc_wire_put_u64(w, a->mtime_ns);
	mc_wire_put_u64(w, a->ctime_ns);
	mc_wire_put_u64(w, a->atime_ns);
}

static void get_attr(struct mc_wire_reader *r, struct mc_ns_attr *a)
{
	mc_wire_get_u64(r, &a->ino);
	mc_wire_get_u64(r, &a->parent);
	mc_wire_get_u32(r, &a->mode);
	mc_wire_get_u32(r, &a->uid);
	mc_wire_get_u32(r, &a->gid);
	mc_wire_get_u32(r, &a->nlink);
	mc_wire_get_u64(r, &a->size);
	mc_wire_get_u64(r, &a->page_id);
	mc_wire_get_u64(r, &a->mtime_ns);
	mc_wire_get_u64(r, &a->ctime_ns);
	mc_wire_get_u64(r, &a->atime_ns);
}

#define ATTR_WIRE_SIZE 72

#define DROPPED_FLAGS MC_NS_DROPPED_COPY

/*
 * The wire fields of a dropped entry (not attr, nsegments, segments, which
 * are the master's own).  ino 0 is "nothing", with no name and no flags.
 */
static void put_dropped(struct mc_wire_writer *w, const struct mc_ns_dropped *d)
{
	if ((d->flags & ~(uint32_t)DROPPED_FLAGS) ||
	    (d->ino == 0 && (d->flags != 0 || d->name[0] != '\0')))
		writer_fail(w, -EINVAL);
	mc_wire_put_u64(w, d->ino);
	mc_wire_put_u64(w, d->parent);
	mc_wire_put_u64(w, d->page_id);
	mc_wire_put_u64(w, d->size);
	put_field(w, d->name, sizeof(d->name));
	mc_wire_put_u32(w, d->flags);
}

static void get_dropped(struct mc_wire_reader *r, struct mc_ns_dropped *d)
{
	mc_wire_get_u64(r, &d->ino);
	mc_wire_get_u64(r, &d->parent);
	mc_wire_get_u64(r, &d->page_id);
	mc_wire_get_u64(r, &d->size);
	if (r->err)
		return;
	if (d->ino != 0)
		mc_wire_get_name(r, d->name);
	else if (mc_wire_get_str(r, d->name, sizeof(d->name)) == 0 &&
		 d->name[0] != '\0')
		reader_bad(r);
	if (mc_wire_get_u32(r, &d->flags) == 0 &&
	    ((d->flags & ~(uint32_t)DROPPED_FLAGS) ||
	     (d->ino == 0 && d->flags != 0)))
		reader_bad(r);
}

#define DROPPED_MIN_WIRE_SIZE (4 * 8 + 2 + 4)

/*
 * A list of dropped entries (EVICT reply, DROP request): each one is
 * something that left, so none has ino 0.
 */
static void put_dropped_items(struct mc_wire_writer *w,
			      const struct mc_wire_dropped_list *l)
{
	put_count(w, l->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < l->count && !w->err; i++) {
		if (l->items[i].ino == 0)
			writer_fail(w, -EINVAL);
		put_dropped(w, &l->items[i]);
	}
}

static void get_dropped_items(struct mc_wire_reader *r, struct mc_wire_msg *m,
			      struct mc_wire_dropped_list *l)
{
	l->count = get_count(r, MC_WIRE_MAX_BATCH);
	l->items = get_items(r, m, l->count, sizeof(*l->items),
			     DROPPED_MIN_WIRE_SIZE);
	for (uint32_t i = 0; i < l->count && !r->err; i++) {
		get_dropped(r, &l->items[i]);
		if (!r->err && l->items[i].ino == 0)
			reader_bad(r);
	}
}

/* ---------------------------------------------------------------- session */

static void put_hello(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_hello *h = &m->u.hello;

	mc_wire_put_u16(w, h->min_version);
	mc_wire_put_u16(w, h->max_version);
	put_field(w, h->name, sizeof(h->name));
}

static void get_hello(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_hello *h = &m->u.hello;

	mc_wire_get_u16(r, &h->min_version);
	if (mc_wire_get_u16(r, &h->max_version) == 0 &&
	    (h->min_version < 1 || h->min_version > h->max_version))
		reader_bad(r);
	mc_wire_get_name(r, h->name);
}

static void put_hello_reply(struct mc_wire_writer *w,
			    const struct mc_wire_msg *m)
{
	const struct mc_wire_hello_reply *h = &m->u.hello_reply;

	mc_wire_put_u16(w, h->version);
	mc_wire_put_u16(w, h->min_version);
	mc_wire_put_u16(w, h->max_version);
}

/* Refused: version 0; agreed: a version inside the answering side's range */
static void get_hello_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_hello_reply *h = &m->u.hello_reply;

	mc_wire_get_u16(r, &h->version);
	mc_wire_get_u16(r, &h->min_version);
	if (mc_wire_get_u16(r, &h->max_version) < 0)
		return;
	if (h->min_version < 1 || h->min_version > h->max_version)
		reader_bad(r);
	else if (m->status < 0 && h->version != 0)
		reader_bad(r);
	else if (m->status == 0 &&
		 (h->version < h->min_version || h->version > h->max_version))
		reader_bad(r);
}

static void put_register(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_register *g = &m->u.reg;

	mc_wire_put_bytes(w, g->segment, sizeof(g->segment));
	put_field(w, g->host, sizeof(g->host));
	put_field(w, g->address, sizeof(g->address));
	mc_wire_put_u16(w, g->port);
	mc_wire_put_u64(w, g->capacity);
	put_field(w, g->protocol, sizeof(g->protocol));
	mc_wire_put_u32(w, g->flags);
}

static void get_register(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	static const uint8_t zero[sizeof(m->u.reg.segment)];
	struct mc_wire_register *g = &m->u.reg;

	if (mc_wire_get_bytes(r, g->segment, sizeof(g->segment)) == 0 &&
	    memcmp(g->segment, zero, sizeof(zero)) == 0)
		reader_bad(r);
	mc_wire_get_name(r, g->host);
	get_address(r, g->address);
	if (mc_wire_get_u16(r, &g->port) == 0 && g->port == 0)
		reader_bad(r);
	mc_wire_get_u64(r, &g->capacity);
	if (mc_wire_get_str(r, g->protocol, sizeof(g->protocol)) == 0 &&
	    strcmp(g->protocol, "tcp") != 0 && strcmp(g->protocol, "rdma") != 0)
		reader_bad(r);
	if (mc_wire_get_u32(r, &g->flags) == 0 &&
	    (g->flags & ~(uint32_t)MC_WIRE_REGISTER_POOL_LOST))
		reader_bad(r);
}

static void put_register_reply(struct mc_wire_writer *w,
			       const struct mc_wire_msg *m)
{
	const struct mc_wire_register_reply *g = &m->u.reg_reply;

	mc_wire_put_u64(w, g->segment_id);
	mc_wire_put_u64(w, g->heartbeat_ms);
	mc_wire_put_u64(w, g->client_ttl_ms);
}

static void get_register_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_register_reply *g = &m->u.reg_reply;

	if (mc_wire_get_u64(r, &g->segment_id) == 0 && g->segment_id == 0)
		reader_bad(r);
	mc_wire_get_u64(r, &g->heartbeat_ms);
	mc_wire_get_u64(r, &g->client_ttl_ms);
}

static void put_heartbeat(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.heartbeat.segment_id);
	mc_wire_put_u64(w, m->u.heartbeat.used_bytes);
	mc_wire_put_u64(w, m->u.heartbeat.pages);
}

static void get_heartbeat(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.heartbeat.segment_id);
	mc_wire_get_u64(r, &m->u.heartbeat.used_bytes);
	mc_wire_get_u64(r, &m->u.heartbeat.pages);
}

static void put_id_list(struct mc_wire_writer *w, uint32_t count,
			const uint64_t *ids)
{
	put_count(w, count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < count && !w->err; i++)
		mc_wire_put_u64(w, ids[i]);
}

static uint64_t *get_id_list(struct mc_wire_reader *r, struct mc_wire_msg *m,
			     uint32_t *count)
{
	uint64_t *ids;

	*count = get_count(r, MC_WIRE_MAX_BATCH);
	ids = get_items(r, m, *count, sizeof(*ids), 8);
	for (uint32_t i = 0; i < *count && !r->err; i++)
		mc_wire_get_u64(r, &ids[i]);
	return ids;
}

static void put_holdings(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_holdings *h = &m->u.holdings;

	if (h->last > 1)
		writer_fail(w, -EINVAL);
	mc_wire_put_u8(w, h->last);
	put_id_list(w, h->count, h->ids);
}

static void get_holdings(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_holdings *h = &m->u.holdings;

	if (mc_wire_get_u8(r, &h->last) == 0 && h->last > 1)
		reader_bad(r);
	h->ids = get_id_list(r, m, &h->count);
}

/* ------------------------------------------------------------- namespace */

/* replies of LOOKUP, GETATTR, MKDIR, SETATTR */
static void put_attr_reply(struct mc_wire_writer *w,
			   const struct mc_wire_msg *m)
{
	put_attr(w, &m->u.attr);
}

static void get_attr_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	get_attr(r, &m->u.attr);
}

/* replies of UNLINK, RENAME */
static void put_dropped_reply(struct mc_wire_writer *w,
			      const struct mc_wire_msg *m)
{
	put_dropped(w, &m->u.dropped);
}

static void get_dropped_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	get_dropped(r, &m->u.dropped);
}

/* requests of LOOKUP, RMDIR, UNLINK */
static void put_entry(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.entry.parent);
	put_field(w, m->u.entry.name, sizeof(m->u.entry.name));
}

static void get_entry(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.entry.parent);
	mc_wire_get_name(r, m->u.entry.name);
}

/* requests of GETATTR, NAME_OF */
static void put_ino(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.ino);
}

static void get_ino(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.ino);
}

static void put_mkdir(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_mkdir *d = &m->u.mkdir;

	mc_wire_put_u64(w, d->parent);
	put_field(w, d->name, sizeof(d->name));
	mc_wire_put_u32(w, d->mode);
	mc_wire_put_u32(w, d->uid);
	mc_wire_put_u32(w, d->gid);
}

static void get_mkdir(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_mkdir *d = &m->u.mkdir;

	mc_wire_get_u64(r, &d->parent);
	mc_wire_get_name(r, d->name);
	mc_wire_get_u32(r, &d->mode);
	mc_wire_get_u32(r, &d->uid);
	mc_wire_get_u32(r, &d->gid);
}

static void put_reserve(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	put_count(w, m->u.reserve_count, MC_WIRE_MAX_BATCH);
}

static void get_reserve(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	m->u.reserve_count = get_count(r, MC_WIRE_MAX_BATCH);
}

static void put_reserve_reply(struct mc_wire_writer *w,
			      const struct mc_wire_msg *m)
{
	const struct mc_wire_reserve_reply *v = &m->u.reserve_reply;

	put_count(w, v->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < v->count && !w->err; i++) {
		mc_wire_put_u64(w, v->items[i].ino);
		mc_wire_put_u64(w, v->items[i].page_id);
	}
}

static void get_reserve_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_reserve_reply *v = &m->u.reserve_reply;

	v->count = get_count(r, MC_WIRE_MAX_BATCH);
	v->items = get_items(r, m, v->count, sizeof(*v->items), 16);
	for (uint32_t i = 0; i < v->count && !r->err; i++) {
		mc_wire_get_u64(r, &v->items[i].ino);
		mc_wire_get_u64(r, &v->items[i].page_id);
	}
}

static void put_commit_item(struct mc_wire_writer *w,
			    const struct mc_wire_commit_item *c)
{
	mc_wire_put_u64(w, c->parent);
	put_field(w, c->name, sizeof(c->name));
	mc_wire_put_u64(w, c->ino);
	mc_wire_put_u64(w, c->page_id);
	mc_wire_put_u32(w, c->mode);
	mc_wire_put_u32(w, c->uid);
	mc_wire_put_u32(w, c->gid);
	mc_wire_put_u64(w, c->size);
	mc_wire_put_u64(w, c->mtime_ns);
	mc_wire_put_u32(w, c->crc32c);
	if (c->nsegments < 1 || c->nsegments > MC_WIRE_MAX_REPLICAS) {
		writer_fail(w, -EINVAL);
		return;
	}
	mc_wire_put_u8(w, c->nsegments);
	for (unsigned i = 0; i < c->nsegments; i++)
		mc_wire_put_u64(w, c->segments[i]);
}

static void get_commit_item(struct mc_wire_reader *r,
			    struct mc_wire_commit_item *c)
{
	mc_wire_get_u64(r, &c->parent);
	mc_wire_get_name(r, c->name);
	mc_wire_get_u64(r, &c->ino);
	mc_wire_get_u64(r, &c->page_id);
	mc_wire_get_u32(r, &c->mode);
	mc_wire_get_u32(r, &c->uid);
	mc_wire_get_u32(r, &c->gid);
	mc_wire_get_u64(r, &c->size);
	mc_wire_get_u64(r, &c->mtime_ns);
	mc_wire_get_u32(r, &c->crc32c);
	if (mc_wire_get_u8(r, &c->nsegments) == 0 &&
	    (c->nsegments < 1 || c->nsegments > MC_WIRE_MAX_REPLICAS))
		reader_bad(r);
	for (unsigned i = 0; i < c->nsegments && !r->err; i++)
		mc_wire_get_u64(r, &c->segments[i]);
}

/* parent, a 1-byte name, ino ... nsegments, one segment */
#define COMMIT_ITEM_MIN_WIRE_SIZE (8 + 3 + 8 + 8 + 12 + 8 + 8 + 4 + 1 + 8)

static void put_commit(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_commit *c = &m->u.commit;

	put_count(w, c->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < c->count && !w->err; i++)
		put_commit_item(w, &c->items[i]);
}

static void get_commit(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_commit *c = &m->u.commit;

	c->count = get_count(r, MC_WIRE_MAX_BATCH);
	c->items = get_items(r, m, c->count, sizeof(*c->items),
			     COMMIT_ITEM_MIN_WIRE_SIZE);
	for (uint32_t i = 0; i < c->count && !r->err; i++)
		get_commit_item(r, &c->items[i]);
}

static void put_commit_reply(struct mc_wire_writer *w,
			     const struct mc_wire_msg *m)
{
	const struct mc_wire_commit_reply *c = &m->u.commit_reply;

	put_count(w, c->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < c->count && !w->err; i++) {
		put_status(w, c->items[i].status);
		put_dropped(w, &c->items[i].replaced);
	}
}

static void get_commit_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_commit_reply *c = &m->u.commit_reply;

	c->count = get_count(r, MC_WIRE_MAX_BATCH);
	c->items = get_items(r, m, c->count, sizeof(*c->items),
			     4 + DROPPED_MIN_WIRE_SIZE);
	for (uint32_t i = 0; i < c->count && !r->err; i++) {
		get_status(r, &c->items[i].status);
		get_dropped(r, &c->items[i].replaced);
	}
}

static void put_rename(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_rename *n = &m->u.rename;

	mc_wire_put_u64(w, n->parent);
	put_field(w, n->name, sizeof(n->name));
	mc_wire_put_u64(w, n->newparent);
	put_field(w, n->newname, sizeof(n->newname));
	mc_wire_put_u32(w, n->flags);
}

static void get_rename(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_rename *n = &m->u.rename;

	mc_wire_get_u64(r, &n->parent);
	mc_wire_get_name(r, n->name);
	mc_wire_get_u64(r, &n->newparent);
	mc_wire_get_name(r, n->newname);
	if (mc_wire_get_u32(r, &n->flags) == 0 &&
	    (n->flags & ~(uint32_t)MC_NS_RENAME_NOREPLACE))
		reader_bad(r);
}

#define SETATTR_FLAGS                                                       \
	(MC_NS_SET_MODE | MC_NS_SET_UID | MC_NS_SET_GID | MC_NS_SET_MTIME | \
	 MC_NS_SET_ATIME)

static void put_setattr(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.setattr.ino);
	mc_wire_put_u32(w, m->u.setattr.flags);
	put_attr(w, &m->u.setattr.in);
}

static void get_setattr(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_setattr *s = &m->u.setattr;

	mc_wire_get_u64(r, &s->ino);
	if (mc_wire_get_u32(r, &s->flags) == 0 &&
	    (s->flags & ~(uint32_t)SETATTR_FLAGS))
		reader_bad(r);
	get_attr(r, &s->in);
}

static void put_touch(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_touch *t = &m->u.touch;

	put_count(w, t->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < t->count && !w->err; i++) {
		mc_wire_put_u64(w, t->items[i].ino);
		mc_wire_put_u64(w, t->items[i].now_ns);
	}
}

static void get_touch(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_touch *t = &m->u.touch;

	t->count = get_count(r, MC_WIRE_MAX_BATCH);
	t->items = get_items(r, m, t->count, sizeof(*t->items), 16);
	for (uint32_t i = 0; i < t->count && !r->err; i++) {
		mc_wire_get_u64(r, &t->items[i].ino);
		mc_wire_get_u64(r, &t->items[i].now_ns);
	}
}

static void put_touch_reply(struct mc_wire_writer *w,
			    const struct mc_wire_msg *m)
{
	const struct mc_wire_touch_reply *t = &m->u.touch_reply;

	put_count(w, t->count, MC_WIRE_MAX_BATCH);
	for (uint32_t i = 0; i < t->count && !w->err; i++)
		put_status(w, t->status[i]);
}

static void get_touch_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_touch_reply *t = &m->u.touch_reply;

	t->count = get_count(r, MC_WIRE_MAX_BATCH);
	t->status = get_items(r, m, t->count, sizeof(*t->status), 4);
	for (uint32_t i = 0; i < t->count && !r->err; i++)
		get_status(r, &t->status[i]);
}

/*
 * PIN, UNPIN requests (inodes); REPLICATE request, HOLDINGS reply (page
 * ids)
 */
static void put_ids(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	put_id_list(w, m->u.ids.count, m->u.ids.ids);
}

static void get_ids(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	m->u.ids.ids = get_id_list(r, m, &m->u.ids.count);
}

static void put_readdir(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_readdir *d = &m->u.readdir;

	mc_wire_put_u64(w, d->dir);
	mc_wire_put_u64(w, d->after);
	if (d->max < 1)
		writer_fail(w, -EINVAL);
	put_count(w, d->max, MC_WIRE_MAX_BATCH);
}

static void get_readdir(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_readdir *d = &m->u.readdir;

	mc_wire_get_u64(r, &d->dir);
	mc_wire_get_u64(r, &d->after);
	d->max = get_count(r, MC_WIRE_MAX_BATCH);
	if (!r->err && d->max < 1)
		reader_bad(r);
}

static void put_readdir_reply(struct mc_wire_writer *w,
			      const struct mc_wire_msg *m)
{
	const struct mc_wire_readdir_reply *d = &m->u.readdir_reply;

	put_count(w, d->count, MC_WIRE_MAX_BATCH);
	if (d->eof > 1)
		writer_fail(w, -EINVAL);
	mc_wire_put_u8(w, d->eof);
	for (uint32_t i = 0; i < d->count && !w->err; i++) {
		put_field(w, d->items[i].name, sizeof(d->items[i].name));
		put_attr(w, &d->items[i].attr);
	}
}

static void get_readdir_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_readdir_reply *d = &m->u.readdir_reply;

	d->count = get_count(r, MC_WIRE_MAX_BATCH);
	if (mc_wire_get_u8(r, &d->eof) == 0 && d->eof > 1)
		reader_bad(r);
	d->items = get_items(r, m, d->count, sizeof(*d->items),
			     3 + ATTR_WIRE_SIZE);
	for (uint32_t i = 0; i < d->count && !r->err; i++) {
		mc_wire_get_name(r, d->items[i].name);
		get_attr(r, &d->items[i].attr);
	}
}

static void put_name_of_reply(struct mc_wire_writer *w,
			      const struct mc_wire_msg *m)
{
	const struct mc_wire_name_of_reply *n = &m->u.name_of_reply;

	mc_wire_put_u64(w, n->parent);
	put_field(w, n->name, sizeof(n->name));
}

static void get_name_of_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.name_of_reply.parent);
	mc_wire_get_name(r, m->u.name_of_reply.name);
}

static void put_stats_reply(struct mc_wire_writer *w,
			    const struct mc_wire_msg *m)
{
	const struct mc_ns_stats *s = &m->u.stats;

	mc_wire_put_u64(w, s->pages);
	mc_wire_put_u64(w, s->dirs);
	mc_wire_put_u64(w, s->bytes);
	mc_wire_put_u64(w, s->evictions);
	mc_wire_put_u64(w, s->evicted_bytes);
}

static void get_stats_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_ns_stats *s = &m->u.stats;

	mc_wire_get_u64(r, &s->pages);
	mc_wire_get_u64(r, &s->dirs);
	mc_wire_get_u64(r, &s->bytes);
	mc_wire_get_u64(r, &s->evictions);
	mc_wire_get_u64(r, &s->evicted_bytes);
}

/* ------------------------------------------------------------- placement */

static void put_page_id(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.page_id);
}

static void get_page_id(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.page_id);
}

static void put_replicas_reply(struct mc_wire_writer *w,
			       const struct mc_wire_msg *m)
{
	const struct mc_wire_replicas_reply *p = &m->u.replicas_reply;

	mc_wire_put_u64(w, p->size);
	mc_wire_put_u32(w, p->crc32c);
	if (p->count > MC_WIRE_MAX_REPLICAS) {
		writer_fail(w, -EINVAL);
		return;
	}
	mc_wire_put_u8(w, p->count);
	for (unsigned i = 0; i < p->count; i++) {
		mc_wire_put_u64(w, p->replicas[i].segment_id);
		put_field(w, p->replicas[i].address,
			  sizeof(p->replicas[i].address));
		mc_wire_put_u16(w, p->replicas[i].port);
	}
}

static void get_replicas_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_replicas_reply *p = &m->u.replicas_reply;

	mc_wire_get_u64(r, &p->size);
	mc_wire_get_u32(r, &p->crc32c);
	if (mc_wire_get_u8(r, &p->count) == 0 &&
	    p->count > MC_WIRE_MAX_REPLICAS)
		reader_bad(r);
	for (unsigned i = 0; i < p->count && !r->err; i++) {
		mc_wire_get_u64(r, &p->replicas[i].segment_id);
		get_address(r, p->replicas[i].address);
		if (mc_wire_get_u16(r, &p->replicas[i].port) == 0 &&
		    p->replicas[i].port == 0)
			reader_bad(r);
	}
}

static void put_evict(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.evict.bytes);
	if (m->u.evict.unit < 1)
		writer_fail(w, -EINVAL);
	mc_wire_put_u64(w, m->u.evict.unit);
}

static void get_evict(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.evict.bytes);
	if (mc_wire_get_u64(r, &m->u.evict.unit) == 0 && m->u.evict.unit < 1)
		reader_bad(r);
}

static void put_evict_reply(struct mc_wire_writer *w,
			    const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.dropped_list.freed);
	put_dropped_items(w, &m->u.dropped_list);
}

static void get_evict_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	mc_wire_get_u64(r, &m->u.dropped_list.freed);
	get_dropped_items(r, m, &m->u.dropped_list);
}

/* DROP sends the list without freed, which decodes as 0 */
static void put_drop(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	put_dropped_items(w, &m->u.dropped_list);
}

static void get_drop(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	get_dropped_items(r, m, &m->u.dropped_list);
}

/* ------------------------------------------------------------- data plane */

static void put_read_page(struct mc_wire_writer *w, const struct mc_wire_msg *m)
{
	const struct mc_wire_read_page *p = &m->u.read_page;

	mc_wire_put_u64(w, p->page_id);
	mc_wire_put_u64(w, p->offset);
	mc_wire_put_u64(w, p->length);
	mc_wire_put_u64(w, p->expected_size);
	mc_wire_put_u32(w, p->expected_crc32c);
}

/* The range lies inside the page as committed: no overflow, no past-end */
static void get_read_page(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	struct mc_wire_read_page *p = &m->u.read_page;

	mc_wire_get_u64(r, &p->page_id);
	mc_wire_get_u64(r, &p->offset);
	mc_wire_get_u64(r, &p->length);
	mc_wire_get_u64(r, &p->expected_size);
	mc_wire_get_u32(r, &p->expected_crc32c);
	if (!r->err &&
	    (p->length > MC_WIRE_MAX_DATA || p->offset > p->expected_size ||
	     p->length > p->expected_size - p->offset))
		reader_bad(r);
}

static void put_read_page_reply(struct mc_wire_writer *w,
				const struct mc_wire_msg *m)
{
	mc_wire_put_u64(w, m->u.read_page_reply.length);
}

static void get_read_page_reply(struct mc_wire_reader *r, struct mc_wire_msg *m)
{
	if (mc_wire_get_u64(r, &m->u.read_page_reply.length) == 0 &&
	    m->u.read_page_reply.length > MC_WIRE_MAX_DATA)
		reader_bad(r);
}

/* ------------------------------------------------------------ the table */

typedef void put_fn(struct mc_wire_writer *w, const struct mc_wire_msg *m);
typedef void get_fn(struct mc_wire_reader *r, struct mc_wire_msg *m);

/* NULL functions: an empty body */
struct wire_op {
	uint16_t type;
	const char *name;
	put_fn *put_request;
	get_fn *get_request;
	put_fn *put_reply;
	get_fn *get_reply;
};

static const struct wire_op ops[] = {
	{ MC_WIRE_HELLO, "HELLO", put_hello, get_hello, put_hello_reply,
	  get_hello_reply },
	{ MC_WIRE_REGISTER, "REGISTER", put_register, get_register,
	  put_register_reply, get_register_reply },
	{ MC_WIRE_HEARTBEAT, "HEARTBEAT", put_heartbeat, get_heartbeat, NULL,
	  NULL },
	{ MC_WIRE_HOLDINGS, "HOLDINGS", put_holdings, get_holdings, put_ids,
	  get_ids },
	{ MC_WIRE_LOOKUP, "LOOKUP", put_entry, get_entry, put_attr_reply,
	  get_attr_reply },
	{ MC_WIRE_GETATTR, "GETATTR", put_ino, get_ino, put_attr_reply,
	  get_attr_reply },
	{ MC_WIRE_MKDIR, "MKDIR", put_mkdir, get_mkdir, put_attr_reply,
	  get_attr_reply },
	{ MC_WIRE_RMDIR, "RMDIR", put_entry, get_entry, NULL, NULL },
	{ MC_WIRE_RESERVE, "RESERVE", put_reserve, get_reserve,
	  put_reserve_reply, get_reserve_reply },
	{ MC_WIRE_COMMIT, "COMMIT", put_commit, get_commit, put_commit_reply,
	  get_commit_reply },
	{ MC_WIRE_UNLINK, "UNLINK", put_entry, get_entry, put_dropped_reply,
	  get_dropped_reply },
	{ MC_WIRE_RENAME, "RENAME", put_rename, get_rename, put_dropped_reply,
	  get_dropped_reply },
	{ MC_WIRE_SETATTR, "SETATTR", put_setattr, get_setattr, put_attr_reply,
	  get_attr_reply },
	{ MC_WIRE_TOUCH, "TOUCH", put_touch, get_touch, put_touch_reply,
	  get_touch_reply },
	{ MC_WIRE_PIN, "PIN", put_ids, get_ids, NULL, NULL },
	{ MC_WIRE_UNPIN, "UNPIN", put_ids, get_ids, NULL, NULL },
	{ MC_WIRE_READDIR, "READDIR", put_readdir, get_readdir,
	  put_readdir_reply, get_readdir_reply },
	{ MC_WIRE_NAME_OF, "NAME_OF", put_ino, get_ino, put_name_of_reply,
	  get_name_of_reply },
	{ MC_WIRE_STATS, "STATS", NULL, NULL, put_stats_reply,
	  get_stats_reply },
	{ MC_WIRE_EVICT, "EVICT", put_evict, get_evict, put_evict_reply,
	  get_evict_reply },
	{ MC_WIRE_REPLICAS, "REPLICAS", put_page_id, get_page_id,
	  put_replicas_reply, get_replicas_reply },
	{ MC_WIRE_DROP, "DROP", put_drop, get_drop, NULL, NULL },
	{ MC_WIRE_ADD_REPLICA, "ADD_REPLICA", put_page_id, get_page_id, NULL,
	  NULL },
	{ MC_WIRE_REPLICATE, "REPLICATE", put_ids, get_ids, NULL, NULL },
	{ MC_WIRE_READ_PAGE, "READ_PAGE", put_read_page, get_read_page,
	  put_read_page_reply, get_read_page_reply },
};

static const struct wire_op *find_op(uint16_t type)
{
	type &= (uint16_t)~MC_WIRE_REPLY;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (ops[i].type == type)
			return &ops[i];
	}
	return NULL;
}

const char *mc_wire_type_name(uint16_t type)
{
	const struct wire_op *op = find_op(type);

	return op ? op->name : NULL;
}

/* --------------------------------------------------------------- messages */

/* A reply whose status is an error carries nothing else, HELLO's excepted */
static bool has_body(uint16_t type, int32_t status)
{
	return !(type & MC_WIRE_REPLY) || status == 0 ||
	       (type & (uint16_t)~MC_WIRE_REPLY) == MC_WIRE_HELLO;
}

int mc_wire_msg_encode(const struct mc_wire_msg *m, struct mc_wire_writer *w)
{
	const struct wire_op *op = find_op(m->type);
	bool reply = m->type & MC_WIRE_REPLY;
	put_fn *put;

	if (w->err)
		return w->err;
	if (!op && !(reply && m->status < 0))
		return -ENOSYS;
	if (reply && !status_ok(m->status))
		return -EINVAL;
	if (reply)
		mc_wire_put_i32(w, m->status);
	if (op && has_body(m->type, m->status)) {
		put = reply ? op->put_reply : op->put_request;
		if (put)
			put(w, m);
	}
	return mc_wire_writer_done(w);
}

int mc_wire_frame_encode(const struct mc_wire_msg *m, uint64_t id, void *buf,
			 size_t cap, size_t *lenp)
{
	return mc_wire_frame_encode_version(m, MC_WIRE_VERSION, id, buf, cap,
					    lenp);
}

int mc_wire_frame_encode_version(const struct mc_wire_msg *m, uint16_t version,
				 uint64_t id, void *buf, size_t cap,
				 size_t *lenp)
{
	struct mc_wire_header h = { 0 };
	struct mc_wire_writer w;
	int r;

	*lenp = 0;
	if (cap < MC_WIRE_HEADER_SIZE)
		return -EMSGSIZE;
	mc_wire_writer_init(&w, (uint8_t *)buf + MC_WIRE_HEADER_SIZE,
			    cap - MC_WIRE_HEADER_SIZE);
	r = mc_wire_msg_encode(m, &w);
	if (r < 0)
		return r;
	if (w.len > MC_WIRE_MAX_PAYLOAD)
		return -EMSGSIZE;
	h.version = version;
	h.type = m->type;
	h.length = (uint32_t)w.len;
	h.id = id;
	r = mc_wire_header_encode(&h, buf);
	if (r < 0)
		return r;
	*lenp = MC_WIRE_HEADER_SIZE + w.len;
	return 0;
}

int mc_wire_msg_decode(struct mc_wire_msg *m, uint16_t type, const void *buf,
		       size_t len)
{
	const struct wire_op *op = find_op(type);
	bool reply = type & MC_WIRE_REPLY;
	struct mc_wire_reader r;
	get_fn *get;
	int e;

	memset(m, 0, sizeof(*m));
	if (!op)
		return -ENOSYS;
	m->type = type;
	mc_wire_reader_init(&r, buf, len);
	if (reply)
		get_status(&r, &m->status);
	if (!r.err && has_body(type, m->status)) {
		get = reply ? op->get_reply : op->get_request;
		if (get)
			get(&r, m);
	}
	e = mc_wire_reader_done(&r);
	if (e < 0)
		mc_wire_msg_release(m);
	return e;
}

void mc_wire_msg_release(struct mc_wire_msg *m)
{
	free(m->owned);
	memset(m, 0, sizeof(*m));
}

/* ----------------------------------------------------------------- header */

int mc_wire_header_encode(const struct mc_wire_header *h, void *buf)
{
	uint8_t *p = buf;

	if (h->length > MC_WIRE_MAX_PAYLOAD)
		return -EINVAL;
	store_le(p, MC_WIRE_MAGIC, 4);
	store_le(p + 4, h->version, 2);
	store_le(p + 6, h->type, 2);
	store_le(p + 8, h->flags, 4);
	store_le(p + 12, h->length, 4);
	store_le(p + 16, h->id, 8);
	return 0;
}

int mc_wire_header_decode(const void *buf, size_t len,
			  struct mc_wire_header *out)
{
	const uint8_t *p = buf;
	struct mc_wire_header h;

	memset(out, 0, sizeof(*out));
	if (len < MC_WIRE_HEADER_SIZE)
		return -EAGAIN;
	if (load_le(p, 4) != MC_WIRE_MAGIC)
		return -EBADMSG;
	h.version = (uint16_t)load_le(p + 4, 2);
	h.type = (uint16_t)load_le(p + 6, 2);
	h.flags = (uint32_t)load_le(p + 8, 4);
	h.length = (uint32_t)load_le(p + 12, 4);
	h.id = load_le(p + 16, 8);
	if (h.length > MC_WIRE_MAX_PAYLOAD)
		return -EBADMSG;
	*out = h;
	if (h.version < MC_WIRE_VERSION_MIN || h.version > MC_WIRE_VERSION)
		return -EPROTO;
	return 0;
}
