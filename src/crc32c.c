/*
 * crc32c.c - CRC-32C, fast where the CPU helps, a table elsewhere.
 *
 * The state of a reflected CRC is a polynomial over GF(2) of degree < 32,
 * bit 31 holding the coefficient of x^0 and bit 0 that of x^31.  Feeding
 * one zero bit multiplies the state by x modulo P; feeding n zero bytes
 * multiplies it by x^(8n) mod P.  Two facts follow, and everything below
 * rests on them:
 *
 *   raw(s, A || B) = raw(s, A) * x^(8|B|)  xor  raw(0, B)
 *   raw(s, A)      = s * x^(8|A|)          xor  raw(0, A)
 *
 * where raw(s, D) is the state after feeding D from state s (no inversion).
 * So a block may be split into three streams that run side by side, the
 * last two started from 0, and joined afterwards by two multiplications
 * by a constant.  The crc32 instruction of SSE4.2 takes 3 cycles but
 * starts one every cycle: one stream leaves it idle two cycles in three,
 * three streams keep it busy (8 bytes a cycle).  Multiplying by a fixed
 * constant is linear in the state, so it is four table lookups, one per
 * state byte (shift_long, shift_short: x^(8n) mod P times each byte value
 * in each position), built once; no PCLMULQDQ needed.
 *
 * Without SSE4.2 (or off x86-64) the same function runs on tables,
 * slicing by 8: slice[k][b] is the CRC of byte b followed by k zero bytes,
 * so eight bytes cost eight lookups.
 *
 * The choice is made on the first call, under pthread_once(), which also
 * builds the tables.  Not a GCC ifunc: a resolver runs while the program
 * is still being relocated, before the sanitizers of --enable-asan and
 * the fuzz builds are set up, and cannot safely build tables; the once
 * costs one load on every later call.  The tables and the chosen function
 * are the module's only state, written inside the once and read-only
 * after it.
 */
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HAVE_CRC32_INSN 1
#endif

#include "crc32c.h"
#include "banned.h"

#define POLY 0x82f63b78U /* x^32 mod P, reflected */
#define X0 0x80000000U /* the polynomial 1, reflected */
#define X8 0x00800000U /* the polynomial x^8, reflected */

/*
 * Bytes per stream of a three-stream round: long rounds for the bulk, short
 * ones for what is left, each paying two joins (eight lookups).
 */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

typedef uint32_t crc32c_fn(uint32_t crc, const void *p, size_t len);

/* written once, under crc32c_once; read-only afterwards */
static struct {
	crc32c_fn *fn;
	const char *name;
	uint32_t slice[8][256];
	uint32_t shift_long[4][256]; /* times x^(8 * LONG_BLOCK) */
	uint32_t shift_short[4][256]; /* times x^(8 * SHORT_BLOCK) */
} tab;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------ GF(2) math */

/* a * b mod P, both reflected */
static uint32_t gf_mul(uint32_t a, uint32_t b)
{
	uint32_t prod = 0;

	for (uint32_t bit = X0; bit; bit >>= 1) {
		if (a & bit)
			prod ^= b;
		b = (b >> 1) ^ (b & 1 ? POLY : 0); /* b *= x */
	}
	return prod;
}

/* x^(8 * len) mod P: what moves a state past len zero bytes */
static uint32_t x_pow_bytes(uint64_t len)
{
	uint32_t result = X0, sq = X8;

	for (; len; len >>= 1) {
		if (len & 1)
			result = gf_mul(result, sq);
		sq = gf_mul(sq, sq);
	}
	return result;
}

/* The table of multiplying by k, one 256-entry part per state byte */
static void build_shift(uint32_t t[4][256], uint32_t k)
{
	for (unsigned i = 0; i < 4; i++) {
		for (uint32_t b = 0; b < 256; b++)
			t[i][b] = gf_mul(b << (8 * i), k);
	}
}

static inline uint32_t shift_by(const uint32_t t[4][256], uint32_t s)
{
	return t[0][s & 0xff] ^ t[1][(s >> 8) & 0xff] ^ t[2][(s >> 16) & 0xff] ^
	       t[3][s >> 24];
}

uint32_t mc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
	/*
	 * With the inversions of the finished CRC, crc(A || B) is
	 * crc(A) * x^(8|B|) xor crc(B): the two ~0 terms cancel.
	 */
	return gf_mul(crc_a, x_pow_bytes(len_b)) ^ crc_b;
}

/* ------------------------------------------------------------- software */

static uint32_t load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint32_t crc32c_table(uint32_t crc, const void *buf, size_t len)
{
	const uint32_t(*t)[256] = tab.slice;
	const uint8_t *s = buf;
	uint32_t lo, hi;

	crc = ~crc;
	while (len >= 8) {
		lo = crc ^ load_le32(s);
		hi = load_le32(s + 4);
		crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
		      t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
		      t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
		      t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
		s += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ t[0][(crc ^ *s++) & 0xff];
	return ~crc;
}

/* ------------------------------------------------------------- SSE4.2 */

#ifdef HAVE_CRC32_INSN
#define SSE42 __attribute__((target("sse4.2")))

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v)); /* x86-64 is little-endian */
	return v;
}

/* A round of 3 * n bytes at p from state s: three streams, then joined */
SSE42 static inline uint32_t crc_3way(uint32_t s, const uint8_t *p, size_t n,
				      const uint32_t shift[4][256])
{
	uint64_t a = s, b = 0, c = 0;
	const uint8_t *end = p + n;

	for (; p < end; p += 8) {
		a = _mm_crc32_u64(a, load64(p));
		b = _mm_crc32_u64(b, load64(p + n));
		c = _mm_crc32_u64(c, load64(p + 2 * n));
	}
	s = shift_by(shift, (uint32_t)a) ^ (uint32_t)b;
	return shift_by(shift, s) ^ (uint32_t)c;
}

SSE42 static uint32_t crc32c_sse42(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t s = ~crc;

	/* aligned loads: no word of the streams straddles a cache line */
	for (; len && ((uintptr_t)p & 7); len--)
		s = _mm_crc32_u8(s, *p++);
	for (; len >= 3 * LONG_BLOCK; len -= 3 * LONG_BLOCK) {
		s = crc_3way(s, p, LONG_BLOCK, tab.shift_long);
		p += 3 * LONG_BLOCK;
	}
	for (; len >= 3 * SHORT_BLOCK; len -= 3 * SHORT_BLOCK) {
		s = crc_3way(s, p, SHORT_BLOCK, tab.shift_short);
		p += 3 * SHORT_BLOCK;
	}
	for (; len >= 8; len -= 8) {
		s = (uint32_t)_mm_crc32_u64(s, load64(p));
		p += 8;
	}
	for (; len; len--)
		s = _mm_crc32_u8(s, *p++);
	return ~s;
}
#endif

/* -------------------------------------------------------------- choice */

static void crc32c_init(void)
{
	uint32_t c;

	for (uint32_t b = 0; b < 256; b++) {
		c = b;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (c & 1 ? POLY : 0);
		tab.slice[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++) {
		for (int k = 1; k < 8; k++) {
			c = tab.slice[k - 1][b];
			tab.slice[k][b] = (c >> 8) ^ tab.slice[0][c & 0xff];
		}
	}
	tab.fn = crc32c_table;
	tab.name = "table";
#ifdef HAVE_CRC32_INSN
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2")) {
		build_shift(tab.shift_long, x_pow_bytes(LONG_BLOCK));
		build_shift(tab.shift_short, x_pow_bytes(SHORT_BLOCK));
		tab.fn = crc32c_sse42;
		tab.name = "sse4.2";
	}
#endif
}

uint32_t mc_crc32c(uint32_t crc, const void *p, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	return tab.fn(crc, p, len);
}

uint32_t mc_crc32c_sw(uint32_t crc, const void *p, size_t len)
{
	pthread_once(&crc32c_once, crc32c_init);
	return crc32c_table(crc, p, len);
}

const char *mc_crc32c_impl(void)
{
	pthread_once(&crc32c_once, crc32c_init);
	return tab.name;
}
