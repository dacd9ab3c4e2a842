/*
 * driver.c - replay inputs through a fuzz target without libFuzzer.
 *
 *   tests/fuzz/fuzz_size FILE|DIR...
 *
 * Runs LLVMFuzzerTestOneInput() once on every file named, and on every
 * regular file in every directory named (sorted, not recursive), then prints
 * "N inputs ok".  A broken property aborts on the input that broke it (its
 * name is printed first), so `make check` replays the seed corpora in
 * tests/fuzz/corpus/ with gcc and any sanitizer the build has.  Exit 0, or 1
 * when an input cannot be read.
 *
 * To fuzz for real, build with clang's libFuzzer instead of this file:
 *
 *   ./configure --enable-fuzz && make
 *   tests/fuzz/fuzz_size-libfuzzer -max_total_time=60 \
 *	tests/fuzz/corpus/size
 *
 * or by hand, without configure (json-c only for the config target):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *	tests/fuzz/fuzz_config.c src/config.c src/size.c src/log.c \
 *	$(pkg-config --cflags --libs json-c) -o fuzz_config-libfuzzer
 *   mkdir -p /tmp/corpus && ./fuzz_config-libfuzzer -max_total_time=60 \
 *	/tmp/corpus tests/fuzz/corpus/config
 *
 * (The first directory given to libFuzzer is where it writes new inputs:
 * keep the seeds read-only by naming a scratch directory first.)  A crash
 * leaves crash-<sha1> behind; replay it with this driver or the -libfuzzer
 * binary, and add it to the corpus once fixed.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "banned.h"

/* Read a whole file into an exact-size heap buffer, so ASan sees overreads */
static int read_input(const char *path, uint8_t **outp, size_t *lenp)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t len;
	FILE *f;
	int r;

	*outp = NULL;
	*lenp = 0;
	f = fopen(path, "rbe");
	if (!f) {
		r = -errno;
		goto out;
	}
	if (fstat(fileno(f), &st) < 0) {
		r = -errno;
		goto out_close;
	}
	len = (size_t)st.st_size;
	/* malloc(0) may return NULL: always ask for one byte at least */
	buf = malloc(len ? len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	if (fread(buf, 1, len, f) != len || ferror(f)) {
		r = -EIO;
		goto out_free;
	}
	*outp = buf;
	*lenp = len;
	buf = NULL;
	r = 0;
out_free:
	free(buf);
out_close:
	fclose(f);
out:
	return r;
}

static int run_file(const char *path, unsigned long *count)
{
	uint8_t *data;
	size_t len;
	int r;

	r = read_input(path, &data, &len);
	if (r < 0) {
		fprintf(stderr, "driver: cannot read input '%s': %s\n", path,
			strerror(-r));
		return r;
	}
	/* named first, so that the line before a crash says which input */
	fprintf(stderr, "driver: running '%s' (%zu bytes)\n", path, len);
	LLVMFuzzerTestOneInput(data, len);
	free(data);
	(*count)++;
	return 0;
}

static int only_visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

static int run_dir(const char *dir, unsigned long *count)
{
	struct dirent **names;
	char path[4096];
	struct stat st;
	int n, r = 0;

	n = scandir(dir, &names, only_visible, alphasort);
	if (n < 0) {
		r = -errno;
		fprintf(stderr, "driver: cannot list directory '%s': %s\n", dir,
			strerror(-r));
		return r;
	}
	for (int i = 0; i < n; i++) {
		if (r == 0 && snprintf(path, sizeof(path), "%s/%s", dir,
				       names[i]->d_name) >= (int)sizeof(path)) {
			fprintf(stderr, "driver: path too long in '%s'\n", dir);
			r = -ENAMETOOLONG;
		}
		if (r == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			r = run_file(path, count);
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	unsigned long count = 0;
	struct stat st;
	int r = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc && r == 0; i++) {
		if (stat(argv[i], &st) < 0) {
			r = -errno;
			fprintf(stderr, "driver: cannot find input '%s': %s\n",
				argv[i], strerror(-r));
		} else if (S_ISDIR(st.st_mode)) {
			r = run_dir(argv[i], &count);
		} else {
			r = run_file(argv[i], &count);
		}
	}
	if (r < 0)
		return 1;
	printf("%lu inputs ok\n", count);
	return 0;
}
