/*
 * fuzz.h - the contract between a fuzz target and what runs it: libFuzzer
 * (./configure --enable-fuzz) or tests/fuzz/driver.c (make check replays
 * the seed corpora under tests/fuzz/corpus/).
 */
#ifndef MC_FUZZ_H
#define MC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Called once before the first input; returns 0. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Run one input; returns 0.  A broken invariant aborts the process. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A property the parser promises: abort (a crash both runners report, with
 * the input that caused it) when it does not hold.  Not assert(): NDEBUG
 * must not turn the checks off.
 */
#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #cond);                              \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
