/*
 * fuzz_config.c - mc_config_load() on arbitrary bytes.
 *
 * Two modes, chosen by the first byte:
 *
 *  - anything but NUL: the whole input is the JSON config file, read by
 *    `mooncaked --config /proc/self/fd/N /mnt/x` from a memfd with an empty
 *    environment;
 *  - NUL: the rest, split on NUL bytes, is the command line after
 *    "mooncaked" (at most MAX_ARGS arguments).  Inputs holding a '/' are
 *    skipped in this mode, so that a fuzzed --config can never name
 *    /dev/stdin or a FIFO and hang the run.
 *
 * Either way the result must be 0, or -EINVAL with a one-line message in a
 * terminated err and *outp NULL.  A loaded configuration must hold what
 * config.h promises (absolute MOUNTPOINT and derived paths, or NULLs for
 * --help/--version; every value in its row's range), and its dump must be a
 * config file that loads again as the same configuration.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "fuzz.h"
#include "banned.h"

#define ERR_LEN 512
#define MAX_ARGS 64
#define MIB (UINT64_C(1) << 20)

/* A memfd holding the bytes; returns the fd (path names it) or -errno. */
static int memfd_with(const void *data, size_t size, char *path, size_t pathlen)
{
	const char *p = data;
	ssize_t n;
	int fd, r;

	fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (size > 0) {
		n = write(fd, p, size);
		if (n < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		p += n;
		size -= (size_t)n;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

/*
 * mc_config_load() and the promises every call keeps, success or not.  With
 * one_line the message must be printable: what the JSON file says reaches
 * it escaped (STYLE.md rule 14).  The command line is the operator's and is
 * quoted as typed (an unknown option with a newline gives two lines).
 */
static int load(struct mc_config **cfgp, int argc, char **argv, bool one_line)
{
	char *envp[] = { NULL };
	char err[ERR_LEN];
	int r;

	memset(err, 0x55, sizeof(err));
	*cfgp = (struct mc_config *)(uintptr_t)1; /* must be overwritten */
	r = mc_config_load(cfgp, argc, argv, envp, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == -EINVAL, "returned %d", r);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL,
		   "err is not terminated");
	if (r < 0) {
		FUZZ_CHECK(*cfgp == NULL, "*outp not NULL on failure");
		FUZZ_CHECK(err[0] != '\0', "failed without a message");
		for (const char *c = err; one_line && *c; c++)
			FUZZ_CHECK((unsigned char)*c >= 0x20 && *c != 0x7f,
				   "control character 0x%02x in message '%s'",
				   (unsigned char)*c, err);
	} else {
		FUZZ_CHECK(*cfgp != NULL, "NULL config on success");
	}
	return r;
}

/* What config.h and the tunables table promise about a loaded config */
static void check_config(const struct mc_config *cfg)
{
	if (cfg->help || cfg->version) {
		FUZZ_CHECK(!cfg->mountpoint && !cfg->state_dir &&
				   !cfg->db_path && !cfg->local_hostname,
			   "--help/--version config has paths");
	} else {
		FUZZ_CHECK(cfg->mountpoint && cfg->mountpoint[0] == '/',
			   "MOUNTPOINT '%s' is not absolute",
			   cfg->mountpoint ? cfg->mountpoint : "(null)");
		FUZZ_CHECK(cfg->state_dir && cfg->db_path &&
				   cfg->local_hostname,
			   "derived paths are not set");
	}
	FUZZ_CHECK(cfg->protocol && (strcmp(cfg->protocol, "tcp") == 0 ||
				     strcmp(cfg->protocol, "rdma") == 0),
		   "protocol '%s'", cfg->protocol ? cfg->protocol : "(null)");
	FUZZ_CHECK(cfg->global_segment_size >= 16 * MIB, "global_segment_size");
	FUZZ_CHECK(cfg->hugepage_size == 2 * MIB, "hugepage_size");
	FUZZ_CHECK(cfg->max_page_size > 0, "max_page_size");
	FUZZ_CHECK(cfg->high_watermark > 0.0 && cfg->high_watermark <= 1.0,
		   "high watermark %g", cfg->high_watermark);
	FUZZ_CHECK(cfg->eviction_ratio > 0.0 && cfg->eviction_ratio < 1.0,
		   "eviction ratio %g", cfg->eviction_ratio);
	FUZZ_CHECK(cfg->threads >= 1 && cfg->threads <= 256, "threads %u",
		   cfg->threads);
	FUZZ_CHECK(isfinite(cfg->entry_timeout_s) &&
			   cfg->entry_timeout_s >= 0.0,
		   "entry timeout %g", cfg->entry_timeout_s);
	FUZZ_CHECK(cfg->passthrough == MC_PASSTHROUGH_AUTO ||
			   cfg->passthrough == MC_PASSTHROUGH_ON ||
			   cfg->passthrough == MC_PASSTHROUGH_OFF,
		   "passthrough %d", (int)cfg->passthrough);
	FUZZ_CHECK(cfg->log_level >= MC_LOG_ERR &&
			   cfg->log_level <= MC_LOG_DEBUG,
		   "log level %d", (int)cfg->log_level);
}

/* mc_config_dump() into a heap string */
static char *dump(const struct mc_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&text, &len);
	FUZZ_CHECK(f != NULL, "open_memstream");
	mc_config_dump(cfg, f);
	FUZZ_CHECK(fclose(f) == 0, "writing the dump");
	FUZZ_CHECK(len >= 3 && text[0] == '{' && text[len - 2] == '}' &&
			   text[len - 1] == '\n',
		   "dump is not one JSON object: '%s'", text);
	return text;
}

/* Load the JSON text as the config file of `mooncaked ... /mnt/x` */
static int load_json(struct mc_config **cfgp, const void *text, size_t len)
{
	char path[64];
	char *argv[] = { "mooncaked", "--config", path, "/mnt/x", NULL };
	int fd, r;

	*cfgp = NULL;
	fd = memfd_with(text, len, path, sizeof(path));
	FUZZ_CHECK(fd >= 0, "memfd_create: %s", strerror(-fd));
	r = load(cfgp, 4, argv, true);
	close(fd);
	return r;
}

static bool same_string(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* Every field the dump carries (the JSON keys) holds the same value */
static void check_same(const struct mc_config *a, const struct mc_config *b,
		       const char *text)
{
	FUZZ_CHECK(a->standalone == b->standalone &&
			   same_string(a->master, b->master) &&
			   same_string(a->metadata_server,
				       b->metadata_server) &&
			   same_string(a->local_hostname, b->local_hostname) &&
			   same_string(a->protocol, b->protocol) &&
			   same_string(a->device_name, b->device_name) &&
			   a->global_segment_size == b->global_segment_size &&
			   a->local_buffer_size == b->local_buffer_size &&
			   a->use_hugepage == b->use_hugepage &&
			   a->hugepage_size == b->hugepage_size &&
			   same_string(a->state_dir, b->state_dir) &&
			   same_string(a->db_path, b->db_path) &&
			   a->max_page_size == b->max_page_size &&
			   a->high_watermark == b->high_watermark &&
			   a->eviction_ratio == b->eviction_ratio &&
			   a->passthrough == b->passthrough &&
			   a->threads == b->threads &&
			   a->entry_timeout_s == b->entry_timeout_s &&
			   a->log_level == b->log_level,
		   "the dump reads back as another configuration:\n%s", text);
}

/*
 * The dump is a config file mooncaked reads, and it reads back as the same
 * configuration ("-0" may come back as 0: the same number).
 */
static void check_dump(const struct mc_config *cfg)
{
	struct mc_config *again;
	char *text;
	int r;

	text = dump(cfg);
	if (cfg->help || cfg->version) {
		free(text);
		return;
	}
	r = load_json(&again, text, strlen(text));
	FUZZ_CHECK(r == 0, "the dump does not load:\n%s", text);
	check_config(again);
	check_same(cfg, again, text);
	mc_config_free(again);
	free(text);
}

static void fuzz_json(const uint8_t *data, size_t size)
{
	struct mc_config *cfg;

	if (load_json(&cfg, data, size) < 0)
		return;
	check_config(cfg);
	check_dump(cfg);
	mc_config_free(cfg);
}

static void fuzz_cli(const uint8_t *data, size_t size)
{
	char *argv[MAX_ARGS + 2];
	struct mc_config *cfg;
	char *text;
	int argc = 0;

	if (memchr(data, '/', size))
		return;
	text = malloc(size + 1);
	if (!text)
		return;
	memcpy(text, data, size);
	text[size] = '\0';
	argv[argc++] = "mooncaked";
	for (char *p = text; size > 0 && argc <= MAX_ARGS; p += strlen(p) + 1) {
		argv[argc++] = p;
		if (p + strlen(p) == text + size)
			break;
	}
	argv[argc] = NULL;
	if (load(&cfg, argc, argv, false) == 0) {
		check_config(cfg);
		check_dump(cfg);
		mc_config_free(cfg);
	}
	free(text);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* unknown keys are warnings: keep them off the fuzzer's output */
	mc_log_init("fuzz_config", MC_LOG_ERR, 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == '\0')
		fuzz_cli(data + 1, size - 1);
	else
		fuzz_json(data, size);
	return 0;
}
