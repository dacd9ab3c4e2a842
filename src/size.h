/* size.h - byte sizes as operators write them: 4294967296, 4gb, 4GiB, 512m */
#ifndef MC_SIZE_H
#define MC_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a size: digits with an optional unit k, m, g, t (optionally followed
 * by "b" or "ib", any case) or a bare "b", all powers of 1024 as Mooncake
 * reads them.  Blanks are allowed around the text and between the number and
 * the unit (" 8 MiB ").  Decimals ("4.5gb") and signs are refused so that a
 * size is always an exact byte count: write 4608m.  Returns 0, -EINVAL for
 * text that is not a size, -ERANGE when it does not fit in 64 bits.
 */
int mc_size_parse(const char *s, uint64_t *out);

/* Format n as "4.0 GiB" style text into buf; returns buf. */
const char *mc_size_format(uint64_t n, char *buf, size_t len);

#endif
