/*
 * test_wire.c - the binary protocol: every message survives a round trip,
 * and every malformed input is refused with the errno the specification
 * (doc/wire-protocol.md) gives.
 *
 *   tests/unit/test_wire                      run the suite
 *   tests/unit/test_wire --write-corpus DIR   write one valid encoding of
 *                                             every message into DIR (the
 *                                             seeds of tests/fuzz/fuzz_wire)
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "banned.h"

static const uint16_t all_types[] = {
	MC_WIRE_HELLO,	   MC_WIRE_REGISTER,	MC_WIRE_HEARTBEAT,
	MC_WIRE_HOLDINGS,  MC_WIRE_LOOKUP,	MC_WIRE_GETATTR,
	MC_WIRE_MKDIR,	   MC_WIRE_RMDIR,	MC_WIRE_RESERVE,
	MC_WIRE_COMMIT,	   MC_WIRE_UNLINK,	MC_WIRE_RENAME,
	MC_WIRE_SETATTR,   MC_WIRE_TOUCH,	MC_WIRE_PIN,
	MC_WIRE_UNPIN,	   MC_WIRE_READDIR,	MC_WIRE_NAME_OF,
	MC_WIRE_STATS,	   MC_WIRE_EVICT,	MC_WIRE_REPLICAS,
	MC_WIRE_DROP,	   MC_WIRE_ADD_REPLICA, MC_WIRE_REPLICATE,
	MC_WIRE_READ_PAGE,
};
#define NTYPES (sizeof(all_types) / sizeof(all_types[0]))

/* Three samples per type: the request, a reply, a failed reply */
#define NSAMPLES (3 * NTYPES)

/* Item storage for the samples' batches (static: a commit batch is big) */
static struct mc_wire_reserved s_reserved[3];
static struct mc_wire_commit_item s_commit[2];
static struct mc_wire_commit_result s_results[2];
static struct mc_wire_touch_item s_touch[3];
static int32_t s_touch_status[3];
static uint64_t s_ids[4];
static struct mc_wire_dirent s_dirents[2];
static struct mc_ns_dropped s_dropped[3];

static void fill_attr(struct mc_ns_attr *a, uint64_t ino, bool dir)
{
	a->ino = ino;
	a->parent = 1;
	a->mode = dir ? 040755 : 0100644;
	a->uid = 1000;
	a->gid = 1001;
	a->nlink = dir ? 2 : 1;
	a->size = dir ? 0 : 8 << 20;
	a->page_id = dir ? 0 : ino + 0x1000;
	a->mtime_ns = UINT64_C(1767225600123456789);
	a->ctime_ns = a->mtime_ns + 1;
	a->atime_ns = UINT64_MAX;
}

/*
 * Sample i of NSAMPLES, built on zeroed memory (so decoded copies compare
 * with memcmp): request, reply, then a reply failing with -ENOENT.
 */
static void sample(size_t i, struct mc_wire_msg *m)
{
	uint16_t type = all_types[i / 3];
	int kind = (int)(i % 3);

	memset(m, 0, sizeof(*m));
	memset(s_reserved, 0, sizeof(s_reserved));
	memset(s_commit, 0, sizeof(s_commit));
	memset(s_results, 0, sizeof(s_results));
	memset(s_touch, 0, sizeof(s_touch));
	memset(s_touch_status, 0, sizeof(s_touch_status));
	memset(s_ids, 0, sizeof(s_ids));
	memset(s_dirents, 0, sizeof(s_dirents));
	memset(s_dropped, 0, sizeof(s_dropped));
	m->type = kind == 0 ? type : type | MC_WIRE_REPLY;
	if (kind == 2) {
		/* HELLO is refused one way only, and keeps its body */
		if (type == MC_WIRE_HELLO) {
			m->status = -EPROTONOSUPPORT;
			m->u.hello_reply.min_version = 2;
			m->u.hello_reply.max_version = 3;
		} else {
			m->status = -ENOENT;
		}
		return;
	}
	switch (m->type) {
	case MC_WIRE_HELLO:
		m->u.hello.min_version = 1;
		m->u.hello.max_version = 1;
		snprintf(m->u.hello.name, sizeof(m->u.hello.name),
			 "mooncaked@host-a");
		break;
	case MC_WIRE_HELLO | MC_WIRE_REPLY:
		m->u.hello_reply.version = 1;
		m->u.hello_reply.min_version = 1;
		m->u.hello_reply.max_version = 1;
		break;
	case MC_WIRE_REGISTER:
		for (size_t k = 0; k < sizeof(m->u.reg.segment); k++)
			m->u.reg.segment[k] = (uint8_t)(0xa0 + k);
		snprintf(m->u.reg.host, sizeof(m->u.reg.host), "host-a");
		snprintf(m->u.reg.address, sizeof(m->u.reg.address),
			 "10.77.0.2");
		m->u.reg.port = 50052;
		m->u.reg.capacity = UINT64_C(4) << 30;
		snprintf(m->u.reg.protocol, sizeof(m->u.reg.protocol), "tcp");
		m->u.reg.flags = MC_WIRE_REGISTER_POOL_LOST;
		break;
	case MC_WIRE_REGISTER | MC_WIRE_REPLY:
		m->u.reg_reply.segment_id = 7;
		m->u.reg_reply.heartbeat_ms = 1000;
		m->u.reg_reply.client_ttl_ms = 5000;
		break;
	case MC_WIRE_HEARTBEAT:
		m->u.heartbeat.segment_id = 7;
		m->u.heartbeat.used_bytes = UINT64_C(3) << 30;
		m->u.heartbeat.pages = 384;
		break;
	case MC_WIRE_HOLDINGS:
		for (uint64_t k = 0; k < 4; k++)
			s_ids[k] = 5242 + k;
		m->u.holdings.last = 1;
		m->u.holdings.count = 4;
		m->u.holdings.ids = s_ids;
		break;
	case MC_WIRE_HOLDINGS | MC_WIRE_REPLY:
		s_ids[0] = 5243;
		s_ids[1] = 5245;
		m->u.ids.count = 2;
		m->u.ids.ids = s_ids;
		break;
	case MC_WIRE_LOOKUP:
	case MC_WIRE_RMDIR:
	case MC_WIRE_UNLINK:
		m->u.entry.parent = 17;
		snprintf(m->u.entry.name, sizeof(m->u.entry.name),
			 "0123abcd_llama3-8b_0_1.bin");
		break;
	case MC_WIRE_GETATTR:
	case MC_WIRE_NAME_OF:
		m->u.ino = 4242;
		break;
	case MC_WIRE_LOOKUP | MC_WIRE_REPLY:
	case MC_WIRE_GETATTR | MC_WIRE_REPLY:
	case MC_WIRE_SETATTR | MC_WIRE_REPLY:
		fill_attr(&m->u.attr, 4242, false);
		break;
	case MC_WIRE_MKDIR:
		m->u.mkdir.parent = 1;
		snprintf(m->u.mkdir.name, sizeof(m->u.mkdir.name), "tp0");
		m->u.mkdir.mode = 040750;
		m->u.mkdir.uid = 1000;
		m->u.mkdir.gid = 1001;
		break;
	case MC_WIRE_MKDIR | MC_WIRE_REPLY:
		fill_attr(&m->u.attr, 18, true);
		break;
	case MC_WIRE_RMDIR | MC_WIRE_REPLY:
	case MC_WIRE_HEARTBEAT | MC_WIRE_REPLY:
	case MC_WIRE_PIN | MC_WIRE_REPLY:
	case MC_WIRE_UNPIN | MC_WIRE_REPLY:
	case MC_WIRE_DROP | MC_WIRE_REPLY:
	case MC_WIRE_ADD_REPLICA | MC_WIRE_REPLY:
	case MC_WIRE_REPLICATE | MC_WIRE_REPLY:
	case MC_WIRE_STATS:
		break;
	case MC_WIRE_RESERVE:
		m->u.reserve_count = 3;
		break;
	case MC_WIRE_RESERVE | MC_WIRE_REPLY:
		for (uint64_t k = 0; k < 3; k++) {
			s_reserved[k].ino = 100 + k;
			s_reserved[k].page_id = 200 + k;
		}
		m->u.reserve_reply.count = 3;
		m->u.reserve_reply.items = s_reserved;
		break;
	case MC_WIRE_COMMIT:
		for (uint64_t k = 0; k < 2; k++) {
			struct mc_wire_commit_item *c = &s_commit[k];

			c->parent = 17;
			snprintf(c->name, sizeof(c->name), "page_%llu.bin",
				 (unsigned long long)k);
			c->ino = 100 + k;
			c->page_id = 200 + k;
			c->mode = 0100644;
			c->uid = 1000;
			c->gid = 1001;
			c->size = (k + 1) << 20;
			c->mtime_ns = UINT64_C(1767225600000000000) + k;
			c->crc32c = 0xe3069283U ^ (uint32_t)k;
			c->nsegments = (uint8_t)(k + 1);
			c->segments[0] = 7;
			c->segments[k] = 9;
		}
		m->u.commit.count = 2;
		m->u.commit.items = s_commit;
		break;
	case MC_WIRE_COMMIT | MC_WIRE_REPLY:
		s_results[0].status = 0;
		s_results[0].replaced.ino = 90;
		s_results[0].replaced.parent = 17;
		s_results[0].replaced.page_id = 190;
		s_results[0].replaced.size = 4096;
		snprintf(s_results[0].replaced.name,
			 sizeof(s_results[0].replaced.name), "page_0.bin");
		s_results[1].status = -EISDIR;
		m->u.commit_reply.count = 2;
		m->u.commit_reply.items = s_results;
		break;
	case MC_WIRE_UNLINK | MC_WIRE_REPLY:
	case MC_WIRE_RENAME | MC_WIRE_REPLY:
		m->u.dropped.ino = 4242;
		m->u.dropped.parent = 17;
		m->u.dropped.page_id = 5242;
		m->u.dropped.size = 8 << 20;
		snprintf(m->u.dropped.name, sizeof(m->u.dropped.name),
			 "old.bin");
		break;
	case MC_WIRE_RENAME:
		m->u.rename.parent = 17;
		snprintf(m->u.rename.name, sizeof(m->u.rename.name), "a.tmp");
		m->u.rename.newparent = 18;
		snprintf(m->u.rename.newname, sizeof(m->u.rename.newname),
			 "a.bin");
		m->u.rename.flags = MC_NS_RENAME_NOREPLACE;
		break;
	case MC_WIRE_SETATTR:
		m->u.setattr.ino = 4242;
		m->u.setattr.flags = MC_NS_SET_MODE | MC_NS_SET_ATIME;
		fill_attr(&m->u.setattr.in, 4242, false);
		break;
	case MC_WIRE_TOUCH:
		for (uint64_t k = 0; k < 3; k++) {
			s_touch[k].ino = 4242 + k;
			s_touch[k].now_ns = UINT64_C(1767225600000000000) + k;
		}
		m->u.touch.count = 3;
		m->u.touch.items = s_touch;
		break;
	case MC_WIRE_TOUCH | MC_WIRE_REPLY:
		s_touch_status[1] = -ENOENT;
		m->u.touch_reply.count = 3;
		m->u.touch_reply.status = s_touch_status;
		break;
	case MC_WIRE_PIN:
	case MC_WIRE_UNPIN:
	case MC_WIRE_REPLICATE:
		for (uint64_t k = 0; k < 4; k++)
			s_ids[k] = 4242 + 3 * k;
		m->u.ids.count = 4;
		m->u.ids.ids = s_ids;
		break;
	case MC_WIRE_READDIR:
		m->u.readdir.dir = 17;
		m->u.readdir.after = 4000;
		m->u.readdir.max = 128;
		break;
	case MC_WIRE_READDIR | MC_WIRE_REPLY:
		snprintf(s_dirents[0].name, sizeof(s_dirents[0].name), "tp0");
		fill_attr(&s_dirents[0].attr, 18, true);
		snprintf(s_dirents[1].name, sizeof(s_dirents[1].name), "x.bin");
		fill_attr(&s_dirents[1].attr, 4242, false);
		m->u.readdir_reply.count = 2;
		m->u.readdir_reply.eof = 1;
		m->u.readdir_reply.items = s_dirents;
		break;
	case MC_WIRE_NAME_OF | MC_WIRE_REPLY:
		m->u.name_of_reply.parent = 17;
		snprintf(m->u.name_of_reply.name,
			 sizeof(m->u.name_of_reply.name), "x.bin");
		break;
	case MC_WIRE_STATS | MC_WIRE_REPLY:
		m->u.stats.pages = 1000;
		m->u.stats.dirs = 3;
		m->u.stats.bytes = UINT64_C(8) << 30;
		m->u.stats.evictions = 12;
		m->u.stats.evicted_bytes = UINT64_C(96) << 20;
		break;
	case MC_WIRE_REPLICAS:
	case MC_WIRE_ADD_REPLICA:
		m->u.page_id = 5242;
		break;
	case MC_WIRE_EVICT:
		m->u.evict.bytes = UINT64_C(64) << 20;
		m->u.evict.unit = UINT64_C(2) << 20;
		break;
	case MC_WIRE_EVICT | MC_WIRE_REPLY:
	case MC_WIRE_DROP:
		for (uint64_t k = 0; k < 3; k++) {
			struct mc_ns_dropped *d = &s_dropped[k];

			d->ino = 4242 + k;
			d->parent = 17;
			d->page_id = 5242 + k;
			d->size = (k + 1) << 20;
			snprintf(d->name, sizeof(d->name), "evicted_%llu.bin",
				 (unsigned long long)k);
			d->flags = k == 1 ? MC_NS_DROPPED_COPY : 0;
		}
		if (m->type == MC_WIRE_DROP) {
			m->u.dropped_list.count = 3;
		} else {
			m->u.dropped_list.freed = UINT64_C(8) << 20;
			m->u.dropped_list.count = 2;
		}
		m->u.dropped_list.items = s_dropped;
		break;
	case MC_WIRE_REPLICAS | MC_WIRE_REPLY:
		m->u.replicas_reply.size = 8 << 20;
		m->u.replicas_reply.crc32c = 0xdeadbeef;
		m->u.replicas_reply.count = 2;
		m->u.replicas_reply.replicas[0].segment_id = 7;
		snprintf(m->u.replicas_reply.replicas[0].address,
			 sizeof(m->u.replicas_reply.replicas[0].address),
			 "10.77.0.2");
		m->u.replicas_reply.replicas[0].port = 50052;
		m->u.replicas_reply.replicas[1].segment_id = 9;
		snprintf(m->u.replicas_reply.replicas[1].address,
			 sizeof(m->u.replicas_reply.replicas[1].address),
			 "fd00:77::3");
		m->u.replicas_reply.replicas[1].port = 50053;
		break;
	case MC_WIRE_READ_PAGE:
		m->u.read_page.page_id = 5242;
		m->u.read_page.offset = 2 << 20;
		m->u.read_page.length = 6 << 20;
		m->u.read_page.expected_size = 8 << 20;
		m->u.read_page.expected_crc32c = 0xdeadbeef;
		break;
	case MC_WIRE_READ_PAGE | MC_WIRE_REPLY:
		m->u.read_page_reply.length = 6 << 20;
		break;
	default:
		ck_abort_msg("no sample for type 0x%04x", m->type);
	}
}

/* The sample of the given type (request or reply) */
static void sample_of(uint16_t type, struct mc_wire_msg *m)
{
	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, m);
		if (m->type == type && m->status == 0)
			return;
	}
	ck_abort_msg("no sample of type 0x%04x", type);
}

/*
 * A message's batch items and the bytes they take (NULL, 0 for a message
 * without a batch); with clear, also forget the pointer, so that the rest
 * of the message can be compared with memcmp.
 */
static const void *items_of(struct mc_wire_msg *m, size_t *bytes, bool clear)
{
	const void *p = NULL;

	*bytes = 0;
	if (m->status != 0)
		return NULL;
	switch (m->type) {
	case MC_WIRE_RESERVE | MC_WIRE_REPLY:
		p = m->u.reserve_reply.items;
		*bytes = m->u.reserve_reply.count *
			 sizeof(*m->u.reserve_reply.items);
		if (clear)
			m->u.reserve_reply.items = NULL;
		break;
	case MC_WIRE_COMMIT:
		p = m->u.commit.items;
		*bytes = m->u.commit.count * sizeof(*m->u.commit.items);
		if (clear)
			m->u.commit.items = NULL;
		break;
	case MC_WIRE_COMMIT | MC_WIRE_REPLY:
		p = m->u.commit_reply.items;
		*bytes = m->u.commit_reply.count *
			 sizeof(*m->u.commit_reply.items);
		if (clear)
			m->u.commit_reply.items = NULL;
		break;
	case MC_WIRE_TOUCH:
		p = m->u.touch.items;
		*bytes = m->u.touch.count * sizeof(*m->u.touch.items);
		if (clear)
			m->u.touch.items = NULL;
		break;
	case MC_WIRE_TOUCH | MC_WIRE_REPLY:
		p = m->u.touch_reply.status;
		*bytes = m->u.touch_reply.count *
			 sizeof(*m->u.touch_reply.status);
		if (clear)
			m->u.touch_reply.status = NULL;
		break;
	case MC_WIRE_PIN:
	case MC_WIRE_UNPIN:
	case MC_WIRE_REPLICATE:
	case MC_WIRE_HOLDINGS | MC_WIRE_REPLY:
		p = m->u.ids.ids;
		*bytes = m->u.ids.count * sizeof(*m->u.ids.ids);
		if (clear)
			m->u.ids.ids = NULL;
		break;
	case MC_WIRE_HOLDINGS:
		p = m->u.holdings.ids;
		*bytes = m->u.holdings.count * sizeof(*m->u.holdings.ids);
		if (clear)
			m->u.holdings.ids = NULL;
		break;
	case MC_WIRE_EVICT | MC_WIRE_REPLY:
	case MC_WIRE_DROP:
		p = m->u.dropped_list.items;
		*bytes = m->u.dropped_list.count *
			 sizeof(*m->u.dropped_list.items);
		if (clear)
			m->u.dropped_list.items = NULL;
		break;
	case MC_WIRE_READDIR | MC_WIRE_REPLY:
		p = m->u.readdir_reply.items;
		*bytes = m->u.readdir_reply.count *
			 sizeof(*m->u.readdir_reply.items);
		if (clear)
			m->u.readdir_reply.items = NULL;
		break;
	default:
		break;
	}
	return p;
}

/* Field for field, items included (both built on zeroed memory) */
static void check_same(const struct mc_wire_msg *a, const struct mc_wire_msg *b)
{
	struct mc_wire_msg ca = *a, cb = *b;
	const void *pa, *pb;
	size_t na, nb;

	ck_assert_uint_eq(a->type, b->type);
	ck_assert_int_eq(a->status, b->status);
	pa = items_of(&ca, &na, true);
	pb = items_of(&cb, &nb, true);
	ck_assert_uint_eq(na, nb);
	if (na)
		ck_assert_msg(memcmp(pa, pb, na) == 0, "%s: batch items differ",
			      mc_wire_type_name(a->type));
	ck_assert_msg(memcmp(&ca.u, &cb.u, sizeof(ca.u)) == 0,
		      "%s%s: decoded fields differ", mc_wire_type_name(a->type),
		      a->type & MC_WIRE_REPLY ? " reply" : "");
}

/* A payload buffer large enough for any sample */
static uint8_t payload[4096];

static size_t encode(const struct mc_wire_msg *m, uint8_t *buf, size_t cap)
{
	struct mc_wire_writer w;
	int r;

	mc_wire_writer_init(&w, buf, cap);
	r = mc_wire_msg_encode(m, &w);
	ck_assert_msg(r == 0, "encoding %s gave %d", mc_wire_type_name(m->type),
		      r);
	return w.len;
}

/* Decode len bytes of buf as type: the status, and nothing to free after */
static int decode(uint16_t type, const void *buf, size_t len)
{
	struct mc_wire_msg m;
	int r;

	memset(&m, 0x5a, sizeof(m));
	r = mc_wire_msg_decode(&m, type, buf, len);
	if (r < 0)
		ck_assert_ptr_null(m.owned);
	mc_wire_msg_release(&m);
	return r;
}

START_TEST(every_message_round_trips_through_a_frame)
{
	static uint8_t frame[MC_WIRE_HEADER_SIZE + sizeof(payload)];
	struct mc_wire_msg m, got;
	struct mc_wire_header h;
	size_t len, again;

	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		ck_assert_ptr_nonnull(mc_wire_type_name(m.type));
		ck_assert_int_eq(mc_wire_frame_encode(&m, 1000 + i, frame,
						      sizeof(frame), &len),
				 0);
		ck_assert_int_eq(mc_wire_header_decode(frame, len, &h), 0);
		ck_assert_uint_eq(h.version, MC_WIRE_VERSION);
		ck_assert_uint_eq(h.type, m.type);
		ck_assert_uint_eq(h.flags, 0);
		ck_assert_uint_eq(h.id, 1000 + i);
		ck_assert_uint_eq(h.length, len - MC_WIRE_HEADER_SIZE);
		ck_assert_int_eq(mc_wire_msg_decode(&got, h.type,
						    frame + MC_WIRE_HEADER_SIZE,
						    h.length),
				 0);
		check_same(&m, &got);
		/* canonical: the decoded message encodes to the same bytes */
		again = encode(&got, payload, sizeof(payload));
		ck_assert_uint_eq(again, h.length);
		ck_assert(memcmp(payload, frame + MC_WIRE_HEADER_SIZE, again) ==
			  0);
		mc_wire_msg_release(&got);
		ck_assert_ptr_null(got.owned);
	}
}
END_TEST

START_TEST(failed_replies_carry_only_their_status)
{
	struct mc_wire_msg m;

	for (size_t i = 2; i < NSAMPLES; i += 3) {
		sample(i, &m);
		if ((m.type & ~MC_WIRE_REPLY) == MC_WIRE_HELLO)
			ck_assert_uint_eq(encode(&m, payload, sizeof(payload)),
					  10);
		else
			ck_assert_uint_eq(encode(&m, payload, sizeof(payload)),
					  4);
	}
}
END_TEST

START_TEST(every_strict_prefix_of_a_message_is_ebadmsg)
{
	struct mc_wire_msg m;
	size_t len;

	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		len = encode(&m, payload, sizeof(payload));
		for (size_t cut = 0; cut < len; cut++)
			ck_assert_msg(decode(m.type, payload, cut) == -EBADMSG,
				      "%s (sample %zu) cut to %zu of %zu bytes "
				      "was not refused",
				      mc_wire_type_name(m.type), i, cut, len);
	}
}
END_TEST

START_TEST(trailing_bytes_after_a_message_are_ebadmsg)
{
	struct mc_wire_msg m;
	size_t len;

	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		len = encode(&m, payload, sizeof(payload));
		payload[len] = 0;
		ck_assert_int_eq(decode(m.type, payload, len + 1), -EBADMSG);
		ck_assert_int_eq(decode(m.type, payload, len), 0);
	}
}
END_TEST

START_TEST(header_is_24_little_endian_bytes_starting_with_mcf1)
{
	static const uint8_t want[MC_WIRE_HEADER_SIZE] = {
		'M',  'C',  'F',  '1',	1,    0,    0x15, 0x80,
		0x04, 0x03, 0x02, 0x01, 0x10, 0x00, 0x00, 0x00,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
	};
	struct mc_wire_header h = {
		.version = 1,
		.type = MC_WIRE_COMMIT | MC_WIRE_REPLY,
		.flags = 0x01020304,
		.length = 16,
		.id = UINT64_C(0x0102030405060708),
	};
	struct mc_wire_header got;
	uint8_t buf[MC_WIRE_HEADER_SIZE];

	ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
	ck_assert(memcmp(buf, want, sizeof(want)) == 0);
	ck_assert_int_eq(mc_wire_header_decode(buf, sizeof(buf), &got), 0);
	ck_assert_uint_eq(got.version, h.version);
	ck_assert_uint_eq(got.type, h.type);
	ck_assert_uint_eq(got.flags, h.flags);
	ck_assert_uint_eq(got.length, h.length);
	ck_assert_uint_eq(got.id, h.id);
}
END_TEST

START_TEST(header_short_of_24_bytes_is_eagain)
{
	struct mc_wire_msg m;
	struct mc_wire_header h;
	uint8_t frame[64];
	size_t len;

	sample(0, &m);
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	for (size_t cut = 0; cut < MC_WIRE_HEADER_SIZE; cut++)
		ck_assert_int_eq(mc_wire_header_decode(frame, cut, &h),
				 -EAGAIN);
	ck_assert_int_eq(mc_wire_header_decode(frame, MC_WIRE_HEADER_SIZE, &h),
			 0);
}
END_TEST

START_TEST(header_with_bad_magic_or_oversize_length_is_ebadmsg)
{
	struct mc_wire_header h = { .version = 1, .type = MC_WIRE_STATS };
	struct mc_wire_header got;
	uint8_t buf[MC_WIRE_HEADER_SIZE], bad[MC_WIRE_HEADER_SIZE];

	ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
	/* any flipped bit of the magic */
	for (int bit = 0; bit < 32; bit++) {
		memcpy(bad, buf, sizeof(buf));
		bad[bit / 8] ^= (uint8_t)(1 << (bit % 8));
		ck_assert_int_eq(mc_wire_header_decode(bad, sizeof(bad), &got),
				 -EBADMSG);
		ck_assert_uint_eq(got.type, 0);
	}
	/* a length over 1 MiB: a flipped high bit, or one byte too many */
	for (int bit = 20; bit < 32; bit++) {
		memcpy(bad, buf, sizeof(buf));
		bad[12 + bit / 8] ^= (uint8_t)(1 << (bit % 8));
		ck_assert_int_eq(mc_wire_header_decode(bad, sizeof(bad), &got),
				 bit == 20 ? 0 : -EBADMSG);
	}
	h.length = MC_WIRE_MAX_PAYLOAD + 1;
	ck_assert_int_eq(mc_wire_header_encode(&h, buf), -EINVAL);
	h.length = MC_WIRE_MAX_PAYLOAD;
	ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
	ck_assert_int_eq(mc_wire_header_decode(buf, sizeof(buf), &got), 0);
	buf[12] = 1; /* MAX_PAYLOAD + 1 */
	ck_assert_int_eq(mc_wire_header_decode(buf, sizeof(buf), &got),
			 -EBADMSG);
}
END_TEST

START_TEST(header_with_an_unknown_version_is_eproto_and_still_read)
{
	struct mc_wire_header h = { .type = MC_WIRE_HELLO,
				    .length = 12,
				    .id = 99 };
	struct mc_wire_header got;
	uint8_t buf[MC_WIRE_HEADER_SIZE];
	static const uint16_t versions[] = { 0, 2, 0x100, 0xffff };

	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		h.version = versions[i];
		ck_assert_int_eq(mc_wire_header_encode(&h, buf), 0);
		ck_assert_int_eq(mc_wire_header_decode(buf, sizeof(buf), &got),
				 -EPROTO);
		ck_assert_uint_eq(got.version, versions[i]);
		ck_assert_uint_eq(got.id, 99);
		ck_assert_uint_eq(got.length, 12);
	}
}
END_TEST

START_TEST(a_length_that_disagrees_with_the_payload_is_ebadmsg)
{
	struct mc_wire_msg m;
	struct mc_wire_header h;
	uint8_t frame[512];
	size_t len;

	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		ck_assert_int_eq(mc_wire_frame_encode(&m, 5, frame,
						      sizeof(frame) - 1, &len),
				 0);
		frame[len] = 0;
		ck_assert_int_eq(mc_wire_header_decode(frame, len, &h), 0);
		/* the receiver reads what the header says: one more, one less */
		ck_assert_int_eq(decode(h.type, frame + MC_WIRE_HEADER_SIZE,
					h.length + 1),
				 -EBADMSG);
		if (h.length > 0)
			ck_assert_int_eq(decode(h.type,
						frame + MC_WIRE_HEADER_SIZE,
						h.length - 1),
					 -EBADMSG);
	}
}
END_TEST

/* A COMMIT of max items, every name 255 bytes, every item on 8 segments */
static size_t biggest_commit(struct mc_wire_msg *m, uint32_t count)
{
	static struct mc_wire_commit_item items[MC_WIRE_MAX_BATCH + 1];

	memset(m, 0, sizeof(*m));
	memset(items, 0, sizeof(items));
	for (uint32_t i = 0; i < count; i++) {
		memset(items[i].name, 'n', MC_NAME_MAX);
		items[i].ino = i + 16;
		items[i].nsegments = MC_WIRE_MAX_REPLICAS;
	}
	m->type = MC_WIRE_COMMIT;
	m->u.commit.count = count;
	m->u.commit.items = items;
	return count;
}

START_TEST(the_largest_batches_fit_one_payload)
{
	static uint8_t frame[MC_WIRE_HEADER_SIZE + MC_WIRE_MAX_PAYLOAD];
	static struct mc_wire_dirent dirents[MC_WIRE_MAX_BATCH];
	static struct mc_wire_commit_result results[MC_WIRE_MAX_BATCH];
	static struct mc_ns_dropped dropped[MC_WIRE_MAX_BATCH];
	static uint64_t ids[MC_WIRE_MAX_BATCH];
	struct mc_wire_msg m, got;
	size_t len;

	biggest_commit(&m, MC_WIRE_MAX_BATCH);
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	ck_assert_int_eq(mc_wire_msg_decode(&got, m.type,
					    frame + MC_WIRE_HEADER_SIZE,
					    len - MC_WIRE_HEADER_SIZE),
			 0);
	check_same(&m, &got);
	mc_wire_msg_release(&got);

	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < MC_WIRE_MAX_BATCH; i++) {
		memset(dirents[i].name, 'd', MC_NAME_MAX);
		memset(results[i].replaced.name, 'r', MC_NAME_MAX);
		results[i].replaced.ino = i + 16;
	}
	m.type = MC_WIRE_READDIR | MC_WIRE_REPLY;
	m.u.readdir_reply.count = MC_WIRE_MAX_BATCH;
	m.u.readdir_reply.items = dirents;
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	m.type = MC_WIRE_COMMIT | MC_WIRE_REPLY;
	m.u.commit_reply.count = MC_WIRE_MAX_BATCH;
	m.u.commit_reply.items = results;
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);

	/* a DROP or an EVICT reply of 1024 pages, every name 255 bytes */
	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < MC_WIRE_MAX_BATCH; i++) {
		memset(dropped[i].name, 'e', MC_NAME_MAX);
		dropped[i].ino = i + 16;
		dropped[i].flags = MC_NS_DROPPED_COPY;
		ids[i] = i + 0x1000;
	}
	m.type = MC_WIRE_DROP;
	m.u.dropped_list.count = MC_WIRE_MAX_BATCH;
	m.u.dropped_list.items = dropped;
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	ck_assert_int_eq(mc_wire_msg_decode(&got, m.type,
					    frame + MC_WIRE_HEADER_SIZE,
					    len - MC_WIRE_HEADER_SIZE),
			 0);
	check_same(&m, &got);
	mc_wire_msg_release(&got);
	m.type = MC_WIRE_EVICT | MC_WIRE_REPLY;
	m.u.dropped_list.freed = UINT64_MAX;
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_HOLDINGS;
	m.u.holdings.count = MC_WIRE_MAX_BATCH;
	m.u.holdings.ids = ids;
	ck_assert_int_eq(
		mc_wire_frame_encode(&m, 1, frame, sizeof(frame), &len), 0);
	ck_assert_int_eq(mc_wire_msg_decode(&got, m.type,
					    frame + MC_WIRE_HEADER_SIZE,
					    len - MC_WIRE_HEADER_SIZE),
			 0);
	check_same(&m, &got);
	mc_wire_msg_release(&got);
}
END_TEST

START_TEST(encoding_into_a_short_buffer_is_emsgsize_and_stays_inside)
{
	static uint8_t buf[8192];
	struct mc_wire_writer w;
	struct mc_wire_msg m;
	size_t len;

	for (size_t i = 0; i < NSAMPLES; i++) {
		sample(i, &m);
		len = encode(&m, payload, sizeof(payload));
		for (size_t cap = 0; cap < len; cap++) {
			memset(buf, 0xee, sizeof(buf));
			mc_wire_writer_init(&w, buf, cap);
			ck_assert_int_eq(mc_wire_msg_encode(&m, &w), -EMSGSIZE);
			ck_assert_int_eq(mc_wire_writer_done(&w), -EMSGSIZE);
			ck_assert_uint_le(w.len, cap);
			for (size_t k = cap; k < len; k++)
				ck_assert_uint_eq(buf[k], 0xee);
		}
	}
	ck_assert_int_eq(mc_wire_frame_encode(&m, 1, buf, 23, &len), -EMSGSIZE);
	ck_assert_uint_eq(len, 0);
}
END_TEST

/* A request built field by field with the writer: what a hostile peer sends */
static struct mc_wire_writer w;

static void start(void)
{
	mc_wire_writer_init(&w, payload, sizeof(payload));
}

static int finish(uint16_t type)
{
	ck_assert_int_eq(mc_wire_writer_done(&w), 0);
	return decode(type, payload, w.len);
}

static void put_name_of_len(size_t len, char fill)
{
	char name[300];

	memset(name, fill, len);
	mc_wire_put_str(&w, name, len);
}

START_TEST(counts_over_their_maximum_are_ebadmsg)
{
	struct mc_wire_writer cw;
	struct mc_wire_msg m;

	start();
	mc_wire_put_u32(&w, MC_WIRE_MAX_BATCH);
	ck_assert_int_eq(finish(MC_WIRE_RESERVE), 0);
	start();
	mc_wire_put_u32(&w, MC_WIRE_MAX_BATCH + 1);
	ck_assert_int_eq(finish(MC_WIRE_RESERVE), -EBADMSG);

	/* a huge count with no items behind it allocates nothing */
	static const uint16_t batched[] = { MC_WIRE_COMMIT, MC_WIRE_TOUCH,
					    MC_WIRE_PIN,    MC_WIRE_UNPIN,
					    MC_WIRE_DROP,   MC_WIRE_REPLICATE };
	for (size_t i = 0; i < sizeof(batched) / sizeof(batched[0]); i++) {
		start();
		mc_wire_put_u32(&w, MC_WIRE_MAX_BATCH + 1);
		ck_assert_int_eq(finish(batched[i]), -EBADMSG);
		start();
		mc_wire_put_u32(&w, UINT32_MAX);
		ck_assert_int_eq(finish(batched[i]), -EBADMSG);
		start();
		mc_wire_put_u32(&w, MC_WIRE_MAX_BATCH);
		ck_assert_int_eq(finish(batched[i]), -EBADMSG);
	}
	static const uint16_t replies[] = { MC_WIRE_RESERVE, MC_WIRE_COMMIT,
					    MC_WIRE_TOUCH, MC_WIRE_READDIR,
					    MC_WIRE_HOLDINGS };
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		start();
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u32(&w, MC_WIRE_MAX_BATCH + 1);
		mc_wire_put_u8(&w, 0); /* READDIR's eof */
		ck_assert_int_eq(finish(replies[i] | MC_WIRE_REPLY), -EBADMSG);
	}

	/* the batches that do not start with their count */
	static const uint32_t over[] = { MC_WIRE_MAX_BATCH + 1, UINT32_MAX };
	for (size_t i = 0; i < sizeof(over) / sizeof(over[0]); i++) {
		start();
		mc_wire_put_u8(&w, 0);
		mc_wire_put_u32(&w, over[i]);
		ck_assert_int_eq(finish(MC_WIRE_HOLDINGS), -EBADMSG);
		start();
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u64(&w, 0);
		mc_wire_put_u32(&w, over[i]);
		ck_assert_int_eq(finish(MC_WIRE_EVICT | MC_WIRE_REPLY),
				 -EBADMSG);
	}

	/* READDIR asks for 1..1024 entries */
	static const uint32_t maxes[][2] = {
		{ 0, 0 },
		{ 1, 1 },
		{ MC_WIRE_MAX_BATCH, 1 },
		{ MC_WIRE_MAX_BATCH + 1, 0 },
	};
	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		start();
		mc_wire_put_u64(&w, 17);
		mc_wire_put_u64(&w, 0);
		mc_wire_put_u32(&w, maxes[i][0]);
		ck_assert_int_eq(finish(MC_WIRE_READDIR),
				 maxes[i][1] ? 0 : -EBADMSG);
	}

	/* a page on 9 segments, or on none */
	for (int nseg = 0; nseg <= MC_WIRE_MAX_REPLICAS + 1; nseg++) {
		start();
		mc_wire_put_u32(&w, 1);
		mc_wire_put_u64(&w, 17);
		mc_wire_put_str(&w, "p", 1);
		mc_wire_put_u64(&w, 100); /* ino */
		mc_wire_put_u64(&w, 200); /* page_id */
		for (int k = 0; k < 3; k++)
			mc_wire_put_u32(&w, 0); /* mode, uid, gid */
		mc_wire_put_u64(&w, 4096); /* size */
		mc_wire_put_u64(&w, 0); /* mtime_ns */
		mc_wire_put_u32(&w, 0); /* crc32c */
		mc_wire_put_u8(&w, (uint8_t)nseg);
		for (int k = 0; k < nseg; k++)
			mc_wire_put_u64(&w, 7);
		ck_assert_int_eq(finish(MC_WIRE_COMMIT),
				 nseg >= 1 && nseg <= MC_WIRE_MAX_REPLICAS ?
					 0 :
					 -EBADMSG);
	}

	/* REPLICAS lists at most 8 */
	start();
	mc_wire_put_i32(&w, 0);
	mc_wire_put_u64(&w, 4096);
	mc_wire_put_u32(&w, 0);
	mc_wire_put_u8(&w, MC_WIRE_MAX_REPLICAS + 1);
	for (int k = 0; k <= MC_WIRE_MAX_REPLICAS; k++) {
		mc_wire_put_u64(&w, 7);
		mc_wire_put_str(&w, "10.0.0.1", 8);
		mc_wire_put_u16(&w, 1);
	}
	ck_assert_int_eq(finish(MC_WIRE_REPLICAS | MC_WIRE_REPLY), -EBADMSG);

	/* and the encoder refuses to send what the peer would refuse */
	biggest_commit(&m, MC_WIRE_MAX_BATCH + 1);
	mc_wire_writer_init(&cw, NULL, 0);
	ck_assert_int_eq(mc_wire_msg_encode(&m, &cw), -EINVAL);
}
END_TEST

START_TEST(names_are_judged_as_mc_name_check_judges_them)
{
	start();
	mc_wire_put_u64(&w, 1);
	put_name_of_len(MC_NAME_MAX, 'a');
	ck_assert_int_eq(finish(MC_WIRE_LOOKUP), 0);

	start();
	mc_wire_put_u64(&w, 1);
	put_name_of_len(MC_NAME_MAX + 1, 'a');
	ck_assert_int_eq(finish(MC_WIRE_LOOKUP), -ENAMETOOLONG);

	/* cut short is judged first */
	start();
	mc_wire_put_u64(&w, 1);
	mc_wire_put_u16(&w, UINT16_MAX);
	mc_wire_put_bytes(&w, "abc", 3);
	ck_assert_int_eq(finish(MC_WIRE_LOOKUP), -EBADMSG);

	static const struct {
		const char *name;
		size_t len;
	} bad[] = {
		{ "", 0 },  { ".", 1 },	   { "..", 2 }, { "a/b", 3 },
		{ "/", 1 }, { "a\0b", 3 }, { "\0", 1 },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		start();
		mc_wire_put_u64(&w, 1);
		mc_wire_put_str(&w, bad[i].name, bad[i].len);
		ck_assert_int_eq(finish(MC_WIRE_UNLINK), -EINVAL);
	}

	/* in every message that carries one */
	start();
	mc_wire_put_u16(&w, 1);
	mc_wire_put_u16(&w, 1);
	put_name_of_len(MC_NAME_MAX + 1, 'h');
	ck_assert_int_eq(finish(MC_WIRE_HELLO), -ENAMETOOLONG);

	start();
	mc_wire_put_u64(&w, 1);
	mc_wire_put_str(&w, "ok", 2);
	mc_wire_put_u64(&w, 1);
	put_name_of_len(MC_NAME_MAX + 1, 'z');
	mc_wire_put_u32(&w, 0);
	ck_assert_int_eq(finish(MC_WIRE_RENAME), -ENAMETOOLONG);

	start();
	mc_wire_put_i32(&w, 0);
	mc_wire_put_u32(&w, 1);
	mc_wire_put_u8(&w, 1);
	mc_wire_put_str(&w, "..", 2);
	for (int k = 0; k < 18; k++)
		mc_wire_put_u32(&w, 0); /* the attr */
	ck_assert_int_eq(finish(MC_WIRE_READDIR | MC_WIRE_REPLY), -EINVAL);
}
END_TEST

/* One dropped entry, field by field */
static void put_dropped(uint64_t ino, const char *name, uint32_t flags)
{
	mc_wire_put_u64(&w, ino);
	mc_wire_put_u64(&w, ino ? 17 : 0);
	mc_wire_put_u64(&w, ino ? ino + 0x1000 : 0);
	mc_wire_put_u64(&w, ino ? 4096 : 0);
	mc_wire_put_str(&w, name, strlen(name));
	mc_wire_put_u32(&w, flags);
}

/* dropped: ino 0 means nothing, and nothing has no name and no flags */
START_TEST(a_dropped_entry_of_inode_0_has_no_name)
{
	for (int named = 0; named <= 1; named++) {
		start();
		mc_wire_put_i32(&w, 0);
		for (int k = 0; k < 4; k++)
			mc_wire_put_u64(&w, 0);
		mc_wire_put_str(&w, "x", named ? 1 : 0);
		mc_wire_put_u32(&w, 0);
		ck_assert_int_eq(finish(MC_WIRE_UNLINK | MC_WIRE_REPLY),
				 named ? -EBADMSG : 0);
	}
	start();
	mc_wire_put_i32(&w, 0);
	mc_wire_put_u64(&w, 99);
	for (int k = 0; k < 3; k++)
		mc_wire_put_u64(&w, 0);
	mc_wire_put_str(&w, "", 0);
	mc_wire_put_u32(&w, 0);
	ck_assert_int_eq(finish(MC_WIRE_UNLINK | MC_WIRE_REPLY), -EINVAL);

	start();
	mc_wire_put_i32(&w, 0);
	put_dropped(0, "", MC_NS_DROPPED_COPY);
	ck_assert_int_eq(finish(MC_WIRE_RENAME | MC_WIRE_REPLY), -EBADMSG);
}
END_TEST

START_TEST(dropped_flags_are_copy_or_nothing)
{
	struct mc_wire_writer ew;
	struct mc_wire_msg m;
	uint8_t buf[512];

	for (uint32_t bit = 0; bit < 32; bit++) {
		start();
		mc_wire_put_i32(&w, 0);
		put_dropped(4242, "x.bin", UINT32_C(1) << bit);
		ck_assert_int_eq(finish(MC_WIRE_UNLINK | MC_WIRE_REPLY),
				 bit == 0 ? 0 : -EBADMSG);
		/* in every message that carries a dropped entry */
		start();
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u32(&w, 1);
		mc_wire_put_i32(&w, 0);
		put_dropped(4242, "x.bin", UINT32_C(1) << bit);
		ck_assert_int_eq(finish(MC_WIRE_COMMIT | MC_WIRE_REPLY),
				 bit == 0 ? 0 : -EBADMSG);
		start();
		mc_wire_put_u32(&w, 1);
		put_dropped(4242, "x.bin", UINT32_C(1) << bit);
		ck_assert_int_eq(finish(MC_WIRE_DROP), bit == 0 ? 0 : -EBADMSG);
	}

	/* and the encoder refuses to send them */
	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_UNLINK | MC_WIRE_REPLY;
	m.u.dropped.ino = 4242;
	snprintf(m.u.dropped.name, sizeof(m.u.dropped.name), "x.bin");
	m.u.dropped.flags = 2;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
	memset(&m.u.dropped, 0, sizeof(m.u.dropped));
	m.u.dropped.flags = MC_NS_DROPPED_COPY;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
}
END_TEST

/* EVICT replies and DROPs list what left: never "nothing" (inode 0) */
START_TEST(a_list_of_dropped_pages_never_holds_inode_0)
{
	struct mc_ns_dropped items[2];
	struct mc_wire_writer ew;
	struct mc_wire_msg m;
	uint8_t buf[512];

	start();
	mc_wire_put_u32(&w, 2);
	put_dropped(4242, "a.bin", 0);
	put_dropped(0, "", 0);
	ck_assert_int_eq(finish(MC_WIRE_DROP), -EBADMSG);
	start();
	mc_wire_put_i32(&w, 0);
	mc_wire_put_u64(&w, 4096);
	mc_wire_put_u32(&w, 1);
	put_dropped(0, "", 0);
	ck_assert_int_eq(finish(MC_WIRE_EVICT | MC_WIRE_REPLY), -EBADMSG);

	memset(&m, 0, sizeof(m));
	memset(items, 0, sizeof(items));
	items[0].ino = 4242;
	snprintf(items[0].name, sizeof(items[0].name), "a.bin");
	m.type = MC_WIRE_DROP;
	m.u.dropped_list.count = 2;
	m.u.dropped_list.items = items;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
	m.type = MC_WIRE_EVICT | MC_WIRE_REPLY;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
	m.u.dropped_list.count = 1;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), 0);
}
END_TEST

START_TEST(drop_sends_no_freed_and_evict_reply_does)
{
	struct mc_wire_msg m, got;
	uint8_t a[1024], b[1024];
	size_t la, lb;

	sample_of(MC_WIRE_DROP, &m);
	la = encode(&m, a, sizeof(a));
	m.u.dropped_list.freed = 12345;
	lb = encode(&m, b, sizeof(b));
	ck_assert_uint_eq(la, lb);
	ck_assert(memcmp(a, b, la) == 0);
	ck_assert_int_eq(mc_wire_msg_decode(&got, MC_WIRE_DROP, b, lb), 0);
	ck_assert_uint_eq(got.u.dropped_list.freed, 0);
	ck_assert_uint_eq(got.u.dropped_list.count, 3);
	ck_assert_uint_eq(got.u.dropped_list.items[1].flags,
			  MC_NS_DROPPED_COPY);
	mc_wire_msg_release(&got);

	m.type = MC_WIRE_EVICT | MC_WIRE_REPLY;
	lb = encode(&m, b, sizeof(b));
	ck_assert_uint_eq(lb, 4 + 8 + la);
	ck_assert_int_eq(mc_wire_msg_decode(&got, m.type, b, lb), 0);
	ck_assert_uint_eq(got.u.dropped_list.freed, 12345);
	mc_wire_msg_release(&got);
}
END_TEST

START_TEST(evict_asks_for_a_unit_of_at_least_one_byte)
{
	struct mc_wire_writer ew;
	struct mc_wire_msg m;
	uint8_t buf[32];

	for (uint64_t unit = 0; unit <= 2; unit++) {
		start();
		mc_wire_put_u64(&w, 1 << 20);
		mc_wire_put_u64(&w, unit);
		ck_assert_int_eq(finish(MC_WIRE_EVICT), unit ? 0 : -EBADMSG);
	}
	start();
	mc_wire_put_u64(&w, 0);
	mc_wire_put_u64(&w, UINT64_MAX);
	ck_assert_int_eq(finish(MC_WIRE_EVICT), 0);

	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_EVICT;
	m.u.evict.bytes = 1;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
}
END_TEST

START_TEST(holdings_say_last_as_0_or_1_and_may_be_empty)
{
	struct mc_wire_writer ew;
	struct mc_wire_msg m;
	uint8_t buf[32];

	for (uint8_t last = 0; last < 4; last++) {
		start();
		mc_wire_put_u8(&w, last);
		mc_wire_put_u32(&w, 1);
		mc_wire_put_u64(&w, 5242);
		ck_assert_int_eq(finish(MC_WIRE_HOLDINGS),
				 last <= 1 ? 0 : -EBADMSG);
	}
	/* an empty pool says so in one message */
	start();
	mc_wire_put_u8(&w, 1);
	mc_wire_put_u32(&w, 0);
	ck_assert_int_eq(finish(MC_WIRE_HOLDINGS), 0);
	ck_assert_uint_eq(w.len, 5);
	/* the reply: the ids the master has no page for, maybe none */
	start();
	mc_wire_put_i32(&w, 0);
	mc_wire_put_u32(&w, 0);
	ck_assert_int_eq(finish(MC_WIRE_HOLDINGS | MC_WIRE_REPLY), 0);

	memset(&m, 0, sizeof(m));
	m.type = MC_WIRE_HOLDINGS;
	m.u.holdings.last = 2;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -EINVAL);
}
END_TEST

START_TEST(statuses_are_zero_or_a_linux_errno)
{
	static const int32_t statuses[] = { 1, -4096, INT32_MIN, INT32_MAX };

	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		start();
		mc_wire_put_i32(&w, statuses[i]);
		ck_assert_int_eq(finish(MC_WIRE_RMDIR | MC_WIRE_REPLY),
				 -EBADMSG);
		/* per item too */
		start();
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u32(&w, 1);
		mc_wire_put_i32(&w, statuses[i]);
		ck_assert_int_eq(finish(MC_WIRE_TOUCH | MC_WIRE_REPLY),
				 -EBADMSG);
	}
	start();
	mc_wire_put_i32(&w, -4095);
	ck_assert_int_eq(finish(MC_WIRE_RMDIR | MC_WIRE_REPLY), 0);
}
END_TEST

START_TEST(unknown_types_are_enosys_and_get_an_enosys_reply)
{
	struct mc_wire_msg m = { .type = 0x0abc };
	struct mc_wire_writer ew;
	uint8_t buf[16];

	ck_assert_int_eq(decode(0x0abc, NULL, 0), -ENOSYS);
	ck_assert_int_eq(decode(0x0abc | MC_WIRE_REPLY, NULL, 0), -ENOSYS);
	ck_assert_ptr_null(mc_wire_type_name(0x0abc));
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -ENOSYS);

	/* the server answers what it cannot read with -ENOSYS ... */
	m.type = 0x0abc | MC_WIRE_REPLY;
	m.status = -ENOSYS;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), 0);
	ck_assert_uint_eq(ew.len, 4);
	/* ... which a sender of a known type reads as a plain failure */
	ck_assert_int_eq(mc_wire_msg_decode(&m,
					    MC_WIRE_READ_PAGE | MC_WIRE_REPLY,
					    buf, ew.len),
			 0);
	ck_assert_int_eq(m.status, -ENOSYS);
	/* a success needs a body, which an unknown type has not */
	m.type = 0x0abc | MC_WIRE_REPLY;
	m.status = 0;
	mc_wire_writer_init(&ew, buf, sizeof(buf));
	ck_assert_int_eq(mc_wire_msg_encode(&m, &ew), -ENOSYS);
}
END_TEST

START_TEST(hello_agrees_on_a_version_or_says_what_it_speaks)
{
	/* a request range must be 1 <= min <= max */
	static const uint16_t ranges[][3] = {
		/* min, max, ok */
		{ 1, 1, 1 }, { 1, 9, 1 }, { 0, 1, 0 }, { 2, 1, 0 }, { 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		start();
		mc_wire_put_u16(&w, ranges[i][0]);
		mc_wire_put_u16(&w, ranges[i][1]);
		mc_wire_put_str(&w, "d", 1);
		ck_assert_int_eq(finish(MC_WIRE_HELLO),
				 ranges[i][2] ? 0 : -EBADMSG);
	}
	/* reply: status, version, min, max */
	static const int32_t replies[][5] = {
		{ 0, 1, 1, 1, 0 },
		{ 0, 2, 1, 3, 0 },
		{ 0, 0, 1, 1, -EBADMSG }, /* agreed on nothing */
		{ 0, 4, 1, 3, -EBADMSG }, /* outside its own range */
		{ -EPROTONOSUPPORT, 0, 2, 3, 0 },
		{ -EPROTONOSUPPORT, 2, 2, 3, -EBADMSG },
		{ -EPROTONOSUPPORT, 0, 3, 2, -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		start();
		mc_wire_put_i32(&w, replies[i][0]);
		for (int k = 1; k <= 3; k++)
			mc_wire_put_u16(&w, (uint16_t)replies[i][k]);
		ck_assert_int_eq(finish(MC_WIRE_HELLO | MC_WIRE_REPLY),
				 replies[i][4]);
	}
	/* a refused HELLO without its body is cut short */
	start();
	mc_wire_put_i32(&w, -EPROTONOSUPPORT);
	ck_assert_int_eq(finish(MC_WIRE_HELLO | MC_WIRE_REPLY), -EBADMSG);
}
END_TEST

static void put_register(const uint8_t *uuid, const char *addr, uint16_t port,
			 const char *proto, uint32_t flags)
{
	start();
	mc_wire_put_bytes(&w, uuid, 16);
	mc_wire_put_str(&w, "host-a", 6);
	mc_wire_put_str(&w, addr, strlen(addr));
	mc_wire_put_u16(&w, port);
	mc_wire_put_u64(&w, 1 << 30);
	mc_wire_put_str(&w, proto, strlen(proto));
	mc_wire_put_u32(&w, flags);
}

START_TEST(register_takes_an_ip_a_port_and_tcp_or_rdma)
{
	static const uint8_t zero[16], uuid[16] = { 1 };

	put_register(uuid, "10.77.0.2", 1, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), 0);
	put_register(uuid, "fd00::2", 65535, "rdma", 1);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), 0);
	put_register(uuid, "0000:0000:0000:0000:0000:ffff:255.255.255.255", 1,
		     "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), 0);

	put_register(zero, "10.77.0.2", 1, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "host-b.example", 1, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "10.77.0", 1, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "", 1, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "0000:0000:0000:0000:0000:ffff:255.255.255.2555", 1,
		     "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG); /* 46 bytes */
	put_register(uuid, "10.77.0.2", 0, "tcp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "10.77.0.2", 1, "udp", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "10.77.0.2", 1, "TCP", 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);
	put_register(uuid, "10.77.0.2", 1, "tcp", 2);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER), -EBADMSG);

	/* the master never hands out segment 0 */
	start();
	mc_wire_put_i32(&w, 0);
	for (int k = 0; k < 3; k++)
		mc_wire_put_u64(&w, 0);
	ck_assert_int_eq(finish(MC_WIRE_REGISTER | MC_WIRE_REPLY), -EBADMSG);
}
END_TEST

START_TEST(flags_and_booleans_outside_their_set_are_ebadmsg)
{
	start(); /* RENAME with an unknown flag */
	mc_wire_put_u64(&w, 1);
	mc_wire_put_str(&w, "a", 1);
	mc_wire_put_u64(&w, 1);
	mc_wire_put_str(&w, "b", 1);
	mc_wire_put_u32(&w, 2);
	ck_assert_int_eq(finish(MC_WIRE_RENAME), -EBADMSG);

	for (uint32_t bit = 0; bit < 32; bit++) {
		start(); /* SETATTR: MC_NS_SET_* are bits 0..4 */
		mc_wire_put_u64(&w, 16);
		mc_wire_put_u32(&w, UINT32_C(1) << bit);
		for (int k = 0; k < 18; k++)
			mc_wire_put_u32(&w, 0);
		ck_assert_int_eq(finish(MC_WIRE_SETATTR),
				 bit <= 4 ? 0 : -EBADMSG);
	}

	for (uint8_t eof = 0; eof < 3; eof++) {
		start(); /* READDIR reply: eof is 0 or 1 */
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u32(&w, 0);
		mc_wire_put_u8(&w, eof);
		ck_assert_int_eq(finish(MC_WIRE_READDIR | MC_WIRE_REPLY),
				 eof <= 1 ? 0 : -EBADMSG);
	}
}
END_TEST

static int read_page(uint64_t offset, uint64_t length, uint64_t size)
{
	start();
	mc_wire_put_u64(&w, 5242);
	mc_wire_put_u64(&w, offset);
	mc_wire_put_u64(&w, length);
	mc_wire_put_u64(&w, size);
	mc_wire_put_u32(&w, 0);
	return finish(MC_WIRE_READ_PAGE);
}

START_TEST(read_page_ranges_stay_inside_the_page_and_the_data_bound)
{
	const uint64_t max = MC_WIRE_MAX_DATA;

	ck_assert_int_eq(read_page(0, 8 << 20, 8 << 20), 0);
	ck_assert_int_eq(read_page(8 << 20, 0, 8 << 20), 0);
	ck_assert_int_eq(read_page(0, max, UINT64_MAX), 0);
	ck_assert_int_eq(read_page(UINT64_MAX - max, max, UINT64_MAX), 0);
	ck_assert_int_eq(read_page(1, 8 << 20, 8 << 20), -EBADMSG);
	ck_assert_int_eq(read_page(8 << 20, 1, 8 << 20), -EBADMSG);
	ck_assert_int_eq(read_page(0, max + 1, UINT64_MAX), -EBADMSG);
	ck_assert_int_eq(read_page(UINT64_MAX, 2, UINT64_MAX), -EBADMSG);
	ck_assert_int_eq(read_page(2, UINT64_MAX - 1, UINT64_MAX), -EBADMSG);

	for (uint64_t len = max; len <= max + 1; len++) {
		start();
		mc_wire_put_i32(&w, 0);
		mc_wire_put_u64(&w, len);
		ck_assert_int_eq(finish(MC_WIRE_READ_PAGE | MC_WIRE_REPLY),
				 len == max ? 0 : -EBADMSG);
	}
}
END_TEST

START_TEST(writer_and_reader_are_little_endian_and_bounded)
{
	static const uint8_t want[] = {
		0xab, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01, 0x08,
		0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0xfe,
		0xff, 0xff, 0xff, 0x02, 0x00, 'h',  'i',  'x',
	};
	struct mc_wire_reader r;
	char s[3], small[2];
	uint8_t u8, x;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int32_t i32;

	start();
	mc_wire_put_u8(&w, 0xab);
	mc_wire_put_u16(&w, 0x0102);
	mc_wire_put_u32(&w, 0x01020304);
	mc_wire_put_u64(&w, UINT64_C(0x0102030405060708));
	mc_wire_put_i32(&w, -2);
	mc_wire_put_str(&w, "hi", 2);
	mc_wire_put_bytes(&w, "x", 1);
	ck_assert_int_eq(mc_wire_writer_done(&w), 0);
	ck_assert_uint_eq(w.len, sizeof(want));
	ck_assert(memcmp(payload, want, sizeof(want)) == 0);

	mc_wire_reader_init(&r, want, sizeof(want));
	ck_assert_int_eq(mc_wire_get_u8(&r, &u8), 0);
	ck_assert_int_eq(mc_wire_get_u16(&r, &u16), 0);
	ck_assert_int_eq(mc_wire_get_u32(&r, &u32), 0);
	ck_assert_int_eq(mc_wire_get_u64(&r, &u64), 0);
	ck_assert_int_eq(mc_wire_get_i32(&r, &i32), 0);
	ck_assert_int_eq(mc_wire_reader_done(&r), -EBADMSG); /* bytes left */
	ck_assert_int_eq(mc_wire_get_str(&r, s, sizeof(s)), 0);
	ck_assert_uint_eq(u8, 0xab);
	ck_assert_uint_eq(u16, 0x0102);
	ck_assert_uint_eq(u32, 0x01020304);
	ck_assert_uint_eq(u64, UINT64_C(0x0102030405060708));
	ck_assert_int_eq(i32, -2);
	ck_assert_str_eq(s, "hi");
	ck_assert_int_eq(mc_wire_get_bytes(&r, &x, 1), 0);
	ck_assert_int_eq(mc_wire_reader_done(&r), 0);
	/* past the end: -EBADMSG, zeroed, and it sticks */
	ck_assert_int_eq(mc_wire_get_u64(&r, &u64), -EBADMSG);
	ck_assert_uint_eq(u64, 0);
	ck_assert_int_eq(mc_wire_reader_done(&r), -EBADMSG);

	/* a string that does not fit its field */
	mc_wire_reader_init(&r, want + 19, 4);
	ck_assert_int_eq(mc_wire_get_str(&r, small, sizeof(small)), -EBADMSG);
	ck_assert_int_eq(mc_wire_get_u8(&r, &u8), -EBADMSG);

	/* the writer: a str over 64 KiB, and a full buffer, both stick */
	start();
	mc_wire_put_str(&w, (const char *)payload, UINT16_MAX + 1);
	mc_wire_put_u8(&w, 1);
	ck_assert_int_eq(mc_wire_writer_done(&w), -EINVAL);
	ck_assert_uint_eq(w.len, 0);
	mc_wire_writer_init(&w, payload, 3);
	mc_wire_put_u16(&w, 1);
	mc_wire_put_u16(&w, 2);
	mc_wire_put_u8(&w, 3);
	ck_assert_int_eq(mc_wire_writer_done(&w), -EMSGSIZE);
	ck_assert_uint_eq(w.len, 2);
}
END_TEST

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc = tcase_create("messages");
	TCase *th = tcase_create("header");
	TCase *tr = tcase_create("malformed input");

	tcase_add_test(tc, every_message_round_trips_through_a_frame);
	tcase_add_test(tc, failed_replies_carry_only_their_status);
	tcase_add_test(tc, drop_sends_no_freed_and_evict_reply_does);
	tcase_add_test(tc, the_largest_batches_fit_one_payload);
	tcase_add_test(
		tc, encoding_into_a_short_buffer_is_emsgsize_and_stays_inside);
	tcase_add_test(tc, writer_and_reader_are_little_endian_and_bounded);
	suite_add_tcase(s, tc);

	tcase_add_test(th, header_is_24_little_endian_bytes_starting_with_mcf1);
	tcase_add_test(th, header_short_of_24_bytes_is_eagain);
	tcase_add_test(th, header_with_bad_magic_or_oversize_length_is_ebadmsg);
	tcase_add_test(th,
		       header_with_an_unknown_version_is_eproto_and_still_read);
	suite_add_tcase(s, th);

	tcase_add_test(tr, every_strict_prefix_of_a_message_is_ebadmsg);
	tcase_add_test(tr, trailing_bytes_after_a_message_are_ebadmsg);
	tcase_add_test(tr, a_length_that_disagrees_with_the_payload_is_ebadmsg);
	tcase_add_test(tr, counts_over_their_maximum_are_ebadmsg);
	tcase_add_test(tr, names_are_judged_as_mc_name_check_judges_them);
	tcase_add_test(tr, a_dropped_entry_of_inode_0_has_no_name);
	tcase_add_test(tr, dropped_flags_are_copy_or_nothing);
	tcase_add_test(tr, a_list_of_dropped_pages_never_holds_inode_0);
	tcase_add_test(tr, evict_asks_for_a_unit_of_at_least_one_byte);
	tcase_add_test(tr, holdings_say_last_as_0_or_1_and_may_be_empty);
	tcase_add_test(tr, statuses_are_zero_or_a_linux_errno);
	tcase_add_test(tr, unknown_types_are_enosys_and_get_an_enosys_reply);
	tcase_add_test(tr, hello_agrees_on_a_version_or_says_what_it_speaks);
	tcase_add_test(tr, register_takes_an_ip_a_port_and_tcp_or_rdma);
	tcase_add_test(tr, flags_and_booleans_outside_their_set_are_ebadmsg);
	tcase_add_test(
		tr, read_page_ranges_stay_inside_the_page_and_the_data_bound);
	suite_add_tcase(s, tr);
	return s;
}

/*
 * The fuzz target's seeds: for each sample, a file "<type>_<kind>" holding
 * one selector byte (the type's low 7 bits, 0x80 for a reply) and the
 * payload, and a file "frame_<type>_<kind>" holding the whole frame.
 */
static int write_file(const char *dir, const char *name, uint8_t selector,
		      const uint8_t *buf, size_t len, bool with_selector)
{
	char path[4096];
	FILE *f;
	int ok;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "wbe");
	if (!f)
		return -errno;
	ok = (!with_selector || fputc(selector, f) != EOF) &&
	     fwrite(buf, 1, len, f) == len;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -EIO;
}

/*
 * A control connection as it goes: HELLO, REGISTER, HOLDINGS, HEARTBEAT,
 * the master's DROP and REPLICATE, an EVICT and its reply, in one stream.
 */
static int write_session(const char *dir)
{
	static const uint16_t flow[] = {
		MC_WIRE_HELLO,	   MC_WIRE_REGISTER,
		MC_WIRE_HOLDINGS,  MC_WIRE_HOLDINGS | MC_WIRE_REPLY,
		MC_WIRE_HEARTBEAT, MC_WIRE_DROP,
		MC_WIRE_REPLICATE, MC_WIRE_ADD_REPLICA,
		MC_WIRE_EVICT,	   MC_WIRE_EVICT | MC_WIRE_REPLY,
	};
	static uint8_t stream[16384];
	struct mc_wire_msg m;
	size_t len, used = 0;
	int r;

	for (size_t i = 0; i < sizeof(flow) / sizeof(flow[0]); i++) {
		sample_of(flow[i], &m);
		r = mc_wire_frame_encode(&m, i, stream + used,
					 sizeof(stream) - used, &len);
		if (r < 0)
			return r;
		used += len;
	}
	return write_file(dir, "stream_session", 0, stream, used, false);
}

static int write_corpus(const char *dir)
{
	static const char *const kinds[] = { "request", "reply", "error" };
	static uint8_t frame[MC_WIRE_HEADER_SIZE + sizeof(payload)];
	struct mc_wire_msg m;
	char name[64], lower[32];
	const char *tn;
	size_t len, k;
	int r = 0;

	for (size_t i = 0; i < NSAMPLES && r == 0; i++) {
		sample(i, &m);
		tn = mc_wire_type_name(m.type);
		for (k = 0; tn[k] && k < sizeof(lower) - 1; k++)
			lower[k] = (char)(tn[k] >= 'A' && tn[k] <= 'Z' ?
						  tn[k] - 'A' + 'a' :
						  tn[k]);
		lower[k] = '\0';
		r = mc_wire_frame_encode(&m, i + 1, frame, sizeof(frame), &len);
		if (r == 0) {
			snprintf(name, sizeof(name), "%s_%s", lower,
				 kinds[i % 3]);
			r = write_file(
				dir, name,
				(uint8_t)((m.type & 0x7f) |
					  (m.type & MC_WIRE_REPLY ? 0x80 : 0)),
				frame + MC_WIRE_HEADER_SIZE,
				len - MC_WIRE_HEADER_SIZE, true);
		}
		if (r == 0) {
			snprintf(name, sizeof(name), "frame_%s_%s", lower,
				 kinds[i % 3]);
			r = write_file(dir, name, 0, frame, len, false);
		}
	}
	if (r == 0)
		r = write_session(dir);
	if (r < 0)
		fprintf(stderr,
			"test_wire: cannot write the corpus into '%s': %s\n",
			dir, strerror(-r));
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	SRunner *sr;
	int failed;

	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		return write_corpus(argv[2]);
	sr = srunner_create(wire_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
