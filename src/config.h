/* config.h - the daemon's tunables: one table drives CLI, JSON, env, help */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

enum mc_passthrough_mode {
	MC_PASSTHROUGH_AUTO = 0,	/* use it when the kernel allows, else warn */
	MC_PASSTHROUGH_ON,		/* refuse to start without it */
	MC_PASSTHROUGH_OFF,		/* the daemon serves every read and write */
};

/* Same spelling and parser as the passthrough mode. */
enum mc_fuse_ring_mode {
	MC_FUSE_RING_AUTO = MC_PASSTHROUGH_AUTO, /* when the kernel offers it */
	MC_FUSE_RING_ON = MC_PASSTHROUGH_ON,	/* also turn the kernel's on */
	MC_FUSE_RING_OFF = MC_PASSTHROUGH_OFF,	/* /dev/fuse only */
};

/* The effective configuration of mooncaked.  Strings are owned (heap). */
struct mc_config {
	char *mountpoint;		/* positional MOUNTPOINT */
	bool standalone;		/* --standalone: in-process master */
	bool foreground;		/* --foreground / -f */
	char *config_path;		/* --config, MOONCAKE_CONFIG_PATH */
	char *fuse_opts;		/* -o a,b,c (comma joined, may be NULL) */
	char *master;			/* master_server_address, MOONCAKE_MASTER */
	char *metadata_server;		/* metadata_server, MOONCAKE_TE_META_DATA_SERVER */
	char *local_hostname;		/* local_hostname, MOONCAKE_LOCAL_HOSTNAME */
	char *protocol;			/* "tcp" | "rdma", MOONCAKE_PROTOCOL */
	uint32_t data_port;		/* --data-port: serves pages to peers */
	double transfer_timeout_s;	/* --transfer-timeout: one page fetch */
	double rpc_timeout_s;		/* --rpc-timeout: one master call */
	char *device_name;		/* device_name, MOONCAKE_DEVICE */
	uint64_t global_segment_size;	/* pool bytes, MOONCAKE_GLOBAL_SEGMENT_SIZE */
	uint64_t local_buffer_size;	/* MOONCAKE_LOCAL_BUFFER_SIZE */
	bool use_hugepage;		/* MC_STORE_USE_HUGEPAGE */
	bool resident;			/* --resident: keep free pool memory allocated */
	uint64_t hugepage_size;		/* MC_STORE_HUGEPAGE_SIZE, 2 MiB */
	char *state_dir;		/* --state-dir: pool mount, db, lock */
	char *db_path;			/* --db: default <state_dir>/namespace.db */
	uint64_t max_page_size;		/* --max-page-size, EFBIG above */
	double high_watermark;		/* --eviction-high-watermark-ratio */
	double eviction_ratio;		/* --eviction-ratio */
	enum mc_passthrough_mode passthrough; /* --passthrough auto|on|off */
	enum mc_fuse_ring_mode fuse_ring; /* --fuse-ring auto|on|off */
	uint32_t threads;		/* --threads: FUSE worker threads */
	double entry_timeout_s;		/* --entry-timeout: kernel name cache */
	enum mc_log_level log_level;	/* --log-level, MC_LOG_LEVEL */
	bool dump_config;		/* --dump-config: print JSON and exit */
	bool help;			/* --help */
	bool version;			/* --version */
};

/*
 * Build the effective configuration: defaults, then the JSON file (from
 * --config or MOONCAKE_CONFIG_PATH), then environment variables from envp,
 * then the command line: the command line wins.  On error returns -EINVAL
 * (-ENOMEM when out of memory) and writes one message naming the bad flag,
 * key or variable and what it accepts into err (errlen bytes).  *outp is
 * NULL on failure; free with mc_config_free().  Unknown JSON keys are logged
 * as warnings, not errors.  With --help or --version the result holds only
 * defaults and those flags (no MOUNTPOINT needed: mountpoint, state_dir,
 * db_path and local_hostname are NULL); otherwise MOUNTPOINT is required
 * and made absolute, and state_dir, db_path and local_hostname are set.
 */
int mc_config_load(struct mc_config **outp, int argc, char **argv,
		   char **envp, char *err, size_t errlen);

void mc_config_free(struct mc_config *cfg);

/* Print --help text (every tunable with its default, alias and variable). */
void mc_config_print_help(FILE *out, const char *progname);

/* Print the effective configuration as one JSON object. */
void mc_config_dump(const struct mc_config *cfg, FILE *out);

/*
 * Walk the table: calls fn once per tunable with its long flag (without
 * "--"), JSON key (or NULL), environment variable (or NULL).  Used by the
 * man page test.
 */
void mc_config_foreach(void (*fn)(const char *flag, const char *json_key,
				  const char *env, void *ctx),
		       void *ctx);

#endif
