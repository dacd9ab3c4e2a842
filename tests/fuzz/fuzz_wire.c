/*
 * fuzz_wire.c - the protocol's decoders (src/wire.c) on arbitrary bytes.
 *
 * An input that starts with the magic "MCF1" is a stream of frames: each
 * header is decoded, and each payload it frames is decoded as its type.
 * Any other input is one message: the first byte picks the type (its low 7
 * bits; 0x80 for the reply) and the rest is the payload.  Both ways, for
 * every message that decodes:
 *
 *   - encoding it again gives back exactly the bytes it came from (the
 *     encoding is canonical), into a buffer of exactly that size, and a
 *     buffer one byte short is -EMSGSIZE with nothing written past it;
 *   - decoding that gives the same message, field for field: decode(encode
 *     (x)) == x;
 *   - as a frame, its header decodes to the same type, id and length.
 *
 * A decoder may only refuse with the errnos doc/wire-protocol.md lists, and
 * leaves nothing allocated when it does.  ASan and the driver's exact-size
 * buffers catch any read past the input.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "fuzz.h"
#include "banned.h"

/*
 * A message's batch items and the bytes they take; the pointer is cleared,
 * so that the rest of the message compares with memcmp.  Decoded messages
 * start from zeroed memory and their items from calloc, so padding agrees.
 */
static const void *take_items(struct mc_wire_msg *m, size_t *bytes)
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
		m->u.reserve_reply.items = NULL;
		break;
	case MC_WIRE_COMMIT:
		p = m->u.commit.items;
		*bytes = m->u.commit.count * sizeof(*m->u.commit.items);
		m->u.commit.items = NULL;
		break;
	case MC_WIRE_COMMIT | MC_WIRE_REPLY:
		p = m->u.commit_reply.items;
		*bytes = m->u.commit_reply.count *
			 sizeof(*m->u.commit_reply.items);
		m->u.commit_reply.items = NULL;
		break;
	case MC_WIRE_TOUCH:
		p = m->u.touch.items;
		*bytes = m->u.touch.count * sizeof(*m->u.touch.items);
		m->u.touch.items = NULL;
		break;
	case MC_WIRE_TOUCH | MC_WIRE_REPLY:
		p = m->u.touch_reply.status;
		*bytes = m->u.touch_reply.count *
			 sizeof(*m->u.touch_reply.status);
		m->u.touch_reply.status = NULL;
		break;
	case MC_WIRE_PIN:
	case MC_WIRE_UNPIN:
	case MC_WIRE_REPLICATE:
	case MC_WIRE_HOLDINGS | MC_WIRE_REPLY:
		p = m->u.ids.ids;
		*bytes = m->u.ids.count * sizeof(*m->u.ids.ids);
		m->u.ids.ids = NULL;
		break;
	case MC_WIRE_HOLDINGS:
		p = m->u.holdings.ids;
		*bytes = m->u.holdings.count * sizeof(*m->u.holdings.ids);
		m->u.holdings.ids = NULL;
		break;
	case MC_WIRE_EVICT | MC_WIRE_REPLY:
	case MC_WIRE_DROP:
		p = m->u.dropped_list.items;
		*bytes = m->u.dropped_list.count *
			 sizeof(*m->u.dropped_list.items);
		m->u.dropped_list.items = NULL;
		break;
	case MC_WIRE_READDIR | MC_WIRE_REPLY:
		p = m->u.readdir_reply.items;
		*bytes = m->u.readdir_reply.count *
			 sizeof(*m->u.readdir_reply.items);
		m->u.readdir_reply.items = NULL;
		break;
	default:
		break;
	}
	FUZZ_CHECK(*bytes == 0 || p != NULL, "a batch without its items");
	return p;
}

static void check_same(const struct mc_wire_msg *a, const struct mc_wire_msg *b)
{
	struct mc_wire_msg ca = *a, cb = *b;
	const void *pa, *pb;
	size_t na, nb;

	FUZZ_CHECK(a->type == b->type && a->status == b->status,
		   "type 0x%04x status %d became type 0x%04x status %d",
		   a->type, a->status, b->type, b->status);
	pa = take_items(&ca, &na);
	pb = take_items(&cb, &nb);
	FUZZ_CHECK(na == nb, "%zu bytes of items became %zu", na, nb);
	FUZZ_CHECK(na == 0 || memcmp(pa, pb, na) == 0,
		   "type 0x%04x: the items changed", a->type);
	FUZZ_CHECK(memcmp(&ca.u, &cb.u, sizeof(ca.u)) == 0,
		   "type 0x%04x: the fields changed", a->type);
}

static bool allowed_error(int r)
{
	return r == -EBADMSG || r == -ENAMETOOLONG || r == -EINVAL ||
	       r == -ENOSYS || r == -ENOMEM;
}

/* Re-encode into exactly len bytes (buf NULL when len is 0) */
static int encode_into(const struct mc_wire_msg *m, size_t cap, uint8_t **outp,
		       size_t *lenp)
{
	struct mc_wire_writer w;
	uint8_t *buf;
	int r;

	/* malloc(0) may be NULL; the writer takes (NULL, 0) */
	buf = cap ? malloc(cap) : NULL;
	if (cap && !buf)
		abort();
	mc_wire_writer_init(&w, buf, cap);
	r = mc_wire_msg_encode(m, &w);
	FUZZ_CHECK(w.len <= cap, "wrote %zu bytes into %zu", w.len, cap);
	*outp = buf;
	*lenp = w.len;
	return r;
}

static void check_message(uint16_t type, const uint8_t *p, size_t len)
{
	struct mc_wire_msg m, again;
	struct mc_wire_header h;
	uint8_t *buf, *frame;
	size_t n, flen;
	int r;

	r = mc_wire_msg_decode(&m, type, p, len);
	FUZZ_CHECK(r == 0 || allowed_error(r), "type 0x%04x: returned %d", type,
		   r);
	FUZZ_CHECK(r != 0 || mc_wire_type_name(type) != NULL,
		   "type 0x%04x is unknown but decoded", type);
	FUZZ_CHECK(r != -ENOSYS || mc_wire_type_name(type) == NULL,
		   "type 0x%04x is known but -ENOSYS", type);
	if (r < 0) {
		FUZZ_CHECK(m.owned == NULL, "left %p allocated", m.owned);
		return;
	}

	/* canonical: the same bytes, into exactly that many */
	r = encode_into(&m, len, &buf, &n);
	FUZZ_CHECK(r == 0, "type 0x%04x: re-encoding returned %d", type, r);
	FUZZ_CHECK(n == len && (len == 0 || memcmp(buf, p, len) == 0),
		   "type 0x%04x: %zu bytes re-encode as %zu other bytes", type,
		   len, n);

	/* decode(encode(x)) == x */
	r = mc_wire_msg_decode(&again, type, buf, n);
	FUZZ_CHECK(r == 0, "type 0x%04x: decoding again returned %d", type, r);
	check_same(&m, &again);
	mc_wire_msg_release(&again);
	free(buf);

	if (len > 0) {
		r = encode_into(&m, len - 1, &buf, &n);
		FUZZ_CHECK(r == -EMSGSIZE, "one byte short: returned %d", r);
		free(buf);
	}

	/* and as a frame */
	flen = MC_WIRE_HEADER_SIZE + len;
	frame = malloc(flen);
	if (!frame)
		abort();
	r = mc_wire_frame_encode(&m, UINT64_C(0x0123456789abcdef), frame, flen,
				 &n);
	FUZZ_CHECK(r == 0 && n == flen, "frame encode returned %d", r);
	r = mc_wire_header_decode(frame, flen, &h);
	FUZZ_CHECK(r == 0 && h.type == type && h.length == len &&
			   h.id == UINT64_C(0x0123456789abcdef) &&
			   h.version == MC_WIRE_VERSION && h.flags == 0,
		   "frame header decodes as %d", r);
	r = mc_wire_msg_decode(&again, h.type, frame + MC_WIRE_HEADER_SIZE,
			       h.length);
	FUZZ_CHECK(r == 0, "frame payload decodes as %d", r);
	check_same(&m, &again);
	mc_wire_msg_release(&again);
	free(frame);

	mc_wire_msg_release(&m);
	FUZZ_CHECK(m.owned == NULL, "release left items");
}

/* A stream of frames, as a receiver reads them */
static void check_frames(const uint8_t *data, size_t size)
{
	struct mc_wire_header h;
	uint8_t again[MC_WIRE_HEADER_SIZE];
	int r;

	for (;;) {
		r = mc_wire_header_decode(data, size, &h);
		FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -EBADMSG ||
				   r == -EPROTO,
			   "header: returned %d", r);
		if (r == -EAGAIN || r == -EBADMSG) {
			FUZZ_CHECK(h.type == 0 && h.length == 0 && h.id == 0,
				   "header: %d left fields behind", r);
			FUZZ_CHECK(r != -EAGAIN || size < MC_WIRE_HEADER_SIZE,
				   "-EAGAIN with %zu bytes", size);
			return;
		}
		/* a header read also when refused, and written back the same */
		FUZZ_CHECK(h.length <= MC_WIRE_MAX_PAYLOAD, "length %u",
			   h.length);
		FUZZ_CHECK(mc_wire_header_encode(&h, again) == 0 &&
				   memcmp(again, data, sizeof(again)) == 0,
			   "header does not encode back to its bytes");
		if (h.length > size - MC_WIRE_HEADER_SIZE)
			return;
		if (r == 0)
			check_message(h.type, data + MC_WIRE_HEADER_SIZE,
				      h.length);
		data += MC_WIRE_HEADER_SIZE + h.length;
		size -= MC_WIRE_HEADER_SIZE + h.length;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t magic[4] = { 'M', 'C', 'F', '1' };
	uint16_t type;
	uint8_t *payload;

	if (size >= sizeof(magic) && memcmp(data, magic, sizeof(magic)) == 0) {
		check_frames(data, size);
		return 0;
	}
	/* the header decoder sees every input, framed or not */
	check_frames(data, size);
	if (size == 0)
		return 0;
	type = (uint16_t)((data[0] & 0x7f) |
			  (data[0] & 0x80 ? MC_WIRE_REPLY : 0));
	/* an exact-size copy, so that ASan sees a read past the payload */
	payload = malloc(size - 1 ? size - 1 : 1);
	if (!payload)
		abort();
	memcpy(payload, data + 1, size - 1);
	check_message(type, payload, size - 1);
	free(payload);
	return 0;
}
