/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every committed page.
 *
 * Reflected polynomial 0x82f63b78, as iSCSI, ext4 and SCTP use it; the
 * checksum of "123456789" is 0xe3069283.  The remote-read path checksums
 * whole pages, so mc_crc32c() uses the SSE4.2 crc32 instruction when the
 * CPU has it and a table (slicing by 8) otherwise; both give the same
 * value.  No set-up call: the first call picks the implementation.
 */
#ifndef MC_CRC32C_H
#define MC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * The CRC-32C of len bytes at p, continuing from crc: start from 0, and
 * mc_crc32c(mc_crc32c(0, a, n), b, m) is the checksum of a then b.
 * Thread safe.
 */
uint32_t mc_crc32c(uint32_t crc, const void *p, size_t len);

/*
 * The checksum of a then b from the checksums of each, crc_a and crc_b
 * (each started from 0), and b's length: for pieces checksummed apart.
 */
uint32_t mc_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* The table-driven version, whatever the CPU: tests compare against it. */
uint32_t mc_crc32c_sw(uint32_t crc, const void *p, size_t len);

/* The implementation mc_crc32c() uses, for logs: "sse4.2" or "table". */
const char *mc_crc32c_impl(void);

#endif
