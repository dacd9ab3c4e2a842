/*
 * config.c - the daemon's tunables.
 *
 * One table (tunables[] below) is the whole list: the command line, the
 * Mooncake store-service JSON file, the environment, --help, --dump-config
 * and the man page test all walk it, so a tunable added to the table is
 * added everywhere.  Every value, defaults included, goes in as text through
 * one parser per type, so a default can never be a value the user could not
 * have typed.
 *
 * Layers, later wins: defaults, JSON file, environment, command line.  The
 * command line is read first for its syntax and for --config, applied last.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "size.h"
#include "banned.h"

#define MC_USAGE "usage: mooncaked [options] MOUNTPOINT"
#define MC_STATE_ROOT "/run/mooncake"
/* a config file is a few hundred bytes; anything huge is the wrong file */
#define MC_CONFIG_FILE_MAX (1024 * 1024)

enum mc_tunable_type {
	MC_T_BOOL,	/* bool */
	MC_T_STRING,	/* char *, owned */
	MC_T_SIZE,	/* uint64_t, mc_size_parse */
	MC_T_DOUBLE,	/* double */
	MC_T_UINT,	/* uint32_t */
	MC_T_ENUM,	/* any field, through the row's parse and name */
	MC_T_LIST,	/* char *, owned; each value appended after a comma */
};

struct mc_tunable {
	const char *flag;	/* long flag without "--", words joined by '-' */
	char short_flag;	/* or 0 */
	const char *metavar;	/* what --help shows after the flag */
	const char *json_key;	/* Mooncake's key where it has one, or NULL */
	const char *env;	/* environment variable, or NULL */
	enum mc_tunable_type type;
	const char *def;	/* default as text, or NULL */
	const char *def_help;	/* default as --help tells it, when computed */
	const char *unit;	/* after the default in --help, or NULL */
	const char *help;
	const char *accepts;	/* what a bad value is told the row takes */
	size_t offset;		/* of the field in struct mc_config */
	bool (*valid)(const void *field);		/* range, or NULL */
	int (*parse)(const char *s, void *field);	/* MC_T_ENUM */
	const char *(*name)(const void *field);		/* MC_T_ENUM */
};

#define MC_MIB (UINT64_C(1) << 20)

static bool valid_protocol(const void *field)
{
	const char *s = *(char *const *)field;

	return strcmp(s, "tcp") == 0 || strcmp(s, "rdma") == 0;
}

static bool valid_segment_size(const void *field)
{
	return *(const uint64_t *)field >= 16 * MC_MIB;
}

static bool valid_hugepage_size(const void *field)
{
	return *(const uint64_t *)field == 2 * MC_MIB;
}

static bool valid_page_size(const void *field)
{
	return *(const uint64_t *)field > 0;
}

static bool valid_watermark(const void *field)
{
	double d = *(const double *)field;

	return d > 0.0 && d <= 1.0;
}

static bool valid_eviction_ratio(const void *field)
{
	double d = *(const double *)field;

	return d > 0.0 && d < 1.0;
}

static bool valid_threads(const void *field)
{
	uint32_t n = *(const uint32_t *)field;

	return n >= 1 && n <= 256;
}

static bool valid_non_negative(const void *field)
{
	return *(const double *)field >= 0.0;
}

static bool valid_positive(const void *field)
{
	double d = *(const double *)field;

	return d > 0.0 && d <= 3600.0;
}

static bool valid_port(const void *field)
{
	return *(const uint32_t *)field <= 65535;
}

static const char *const passthrough_names[] = {
	[MC_PASSTHROUGH_AUTO] = "auto",
	[MC_PASSTHROUGH_ON] = "on",
	[MC_PASSTHROUGH_OFF] = "off",
};

/* auto|on|off, for every field of enum mc_passthrough_mode's values */
static int parse_auto_on_off(const char *s, void *field)
{
	for (size_t i = 0; i < sizeof(passthrough_names) / sizeof(char *); i++) {
		if (strcasecmp(s, passthrough_names[i]) == 0) {
			*(enum mc_passthrough_mode *)field =
				(enum mc_passthrough_mode)i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *name_auto_on_off(const void *field)
{
	return passthrough_names[*(const enum mc_passthrough_mode *)field];
}

static int parse_log_level(const char *s, void *field)
{
	return mc_log_level_parse(s, field);
}

/* mc_log_level_parse() stays the one mapping: find the name it accepts */
static const char *name_log_level(const void *field)
{
	static const char *const names[] = { "err", "warning", "notice",
					     "info", "debug" };
	enum mc_log_level want = *(const enum mc_log_level *)field;
	enum mc_log_level l;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (mc_log_level_parse(names[i], &l) == 0 && l == want)
			return names[i];
	}
	return "notice";
}

#define F(field) offsetof(struct mc_config, field)

static const struct mc_tunable tunables[] = {
	{ .flag = "standalone", .json_key = "standalone", .type = MC_T_BOOL,
	  .def = "true", .offset = F(standalone),
	  .help = "run the master logic in-process (the default unless --master is given)" },
	{ .flag = "foreground", .short_flag = 'f', .type = MC_T_BOOL,
	  .def = "false", .offset = F(foreground),
	  .help = "stay in the foreground and log to stderr" },
	{ .flag = "config", .short_flag = 'c', .metavar = "FILE",
	  .env = "MOONCAKE_CONFIG_PATH", .type = MC_T_STRING,
	  .offset = F(config_path), .def_help = "none",
	  .help = "the Mooncake store-service JSON config file" },
	{ .flag = "options", .short_flag = 'o', .metavar = "OPT[,OPT...]",
	  .type = MC_T_LIST, .offset = F(fuse_opts), .def_help = "none",
	  .help = "FUSE mount options, repeatable" },
	{ .flag = "master", .metavar = "ADDR",
	  .json_key = "master_server_address", .env = "MOONCAKE_MASTER",
	  .type = MC_T_STRING, .offset = F(master), .def_help = "none",
	  .help = "address of mooncake_master (host:port)" },
	{ .flag = "metadata-server", .metavar = "URL",
	  .json_key = "metadata_server", .env = "MOONCAKE_TE_META_DATA_SERVER",
	  .type = MC_T_STRING, .offset = F(metadata_server),
	  .def_help = "none",
	  .help = "metadata service where segments are published" },
	{ .flag = "local-hostname", .metavar = "NAME",
	  .json_key = "local_hostname", .env = "MOONCAKE_LOCAL_HOSTNAME",
	  .type = MC_T_STRING, .offset = F(local_hostname),
	  .def_help = "the host name",
	  .help = "name or address peers use to reach this host" },
	{ .flag = "protocol", .metavar = "tcp|rdma", .json_key = "protocol",
	  .env = "MOONCAKE_PROTOCOL", .type = MC_T_STRING, .def = "tcp",
	  .offset = F(protocol), .valid = valid_protocol,
	  .accepts = "tcp or rdma",
	  .help = "transport for page bytes between hosts" },
	{ .flag = "data-port", .metavar = "PORT", .json_key = "data_port",
	  .env = "MOONCAKE_DATA_PORT", .type = MC_T_UINT, .def = "50052",
	  .offset = F(data_port), .valid = valid_port,
	  .accepts = "a port number from 0 to 65535 (0: any free port)",
	  .help = "TCP port where this host serves its pages to peers (cluster mode)" },
	{ .flag = "transfer-timeout", .metavar = "SECONDS",
	  .json_key = "transfer_timeout", .type = MC_T_DOUBLE, .def = "2.0",
	  .unit = "s", .offset = F(transfer_timeout_s),
	  .valid = valid_positive,
	  .accepts = "a number of seconds > 0 such as 2.0",
	  .help = "longest wait for a peer while fetching a page; then the next copy is tried" },
	{ .flag = "rpc-timeout", .metavar = "SECONDS",
	  .json_key = "rpc_timeout", .type = MC_T_DOUBLE, .def = "5.0",
	  .unit = "s", .offset = F(rpc_timeout_s),
	  .valid = valid_positive,
	  .accepts = "a number of seconds > 0 such as 5.0",
	  .help = "longest wait for an answer from mooncake_master" },
	{ .flag = "device", .metavar = "NAME", .json_key = "device_name",
	  .env = "MOONCAKE_DEVICE", .type = MC_T_STRING,
	  .offset = F(device_name), .def_help = "the first RDMA device",
	  .help = "RDMA device to use with --protocol rdma" },
	{ .flag = "global-segment-size", .metavar = "SIZE",
	  .json_key = "global_segment_size",
	  .env = "MOONCAKE_GLOBAL_SEGMENT_SIZE", .type = MC_T_SIZE,
	  .def = "4GiB", .offset = F(global_segment_size),
	  .valid = valid_segment_size,
	  .accepts = "a size of at least 16MiB such as 4294967296, 4gb or 4GiB",
	  .help = "memory this host contributes to the pool" },
	{ .flag = "local-buffer-size", .metavar = "SIZE",
	  .json_key = "local_buffer_size", .env = "MOONCAKE_LOCAL_BUFFER_SIZE",
	  .type = MC_T_SIZE, .def = "0", .offset = F(local_buffer_size),
	  .help = "accepted for compatibility with Mooncake, unused" },
	{ .flag = "use-hugepage", .json_key = "use_hugepage",
	  .env = "MC_STORE_USE_HUGEPAGE", .type = MC_T_BOOL, .def = "true",
	  .offset = F(use_hugepage),
	  .help = "back the pool with huge pages" },
	{ .flag = "resident", .json_key = "resident",
	  .type = MC_T_BOOL, .def = "true", .offset = F(resident),
	  .help = "hold the pool's free memory allocated (like Mooncake's up-front segment) so writes never fault in cold memory" },
	{ .flag = "hugepage-size", .metavar = "SIZE", .json_key = "hugepage_size",
	  .env = "MC_STORE_HUGEPAGE_SIZE", .type = MC_T_SIZE, .def = "2MiB",
	  .offset = F(hugepage_size), .valid = valid_hugepage_size,
	  .accepts = "2MiB (only 2 MiB tmpfs huge pages are supported)",
	  .help = "huge page size of the pool" },
	{ .flag = "state-dir", .metavar = "DIR", .json_key = "state_dir",
	  .env = "MOONCAKE_STATE_DIR", .type = MC_T_STRING,
	  .offset = F(state_dir),
	  .def_help = MC_STATE_ROOT "/<mountpoint, '/' as '_'>, or for a user "
		      "$XDG_RUNTIME_DIR/mooncake/...",
	  .help = "pool mount, namespace database and lock" },
	{ .flag = "db", .metavar = "FILE", .json_key = "db_path",
	  .type = MC_T_STRING, .offset = F(db_path),
	  .def_help = "<state-dir>/namespace.db",
	  .help = "sqlite database of the namespace" },
	{ .flag = "max-page-size", .metavar = "SIZE", .json_key = "max_page_size",
	  .type = MC_T_SIZE, .def = "1GiB", .offset = F(max_page_size),
	  .valid = valid_page_size,
	  .accepts = "a size above 0 such as 64MiB or 1GiB",
	  .help = "largest file; writes beyond it fail with EFBIG" },
	{ .flag = "eviction-high-watermark-ratio", .metavar = "RATIO",
	  .json_key = "eviction_high_watermark_ratio", .type = MC_T_DOUBLE,
	  .def = "0.90", .offset = F(high_watermark), .valid = valid_watermark,
	  .accepts = "a ratio in (0, 1] such as 0.90",
	  .help = "pool use above which eviction starts" },
	{ .flag = "eviction-ratio", .metavar = "RATIO",
	  .json_key = "eviction_ratio", .type = MC_T_DOUBLE, .def = "0.05",
	  .offset = F(eviction_ratio), .valid = valid_eviction_ratio,
	  .accepts = "a ratio in (0, 1) such as 0.05",
	  .help = "share of the pool one eviction pass frees" },
	{ .flag = "passthrough", .metavar = "auto|on|off",
	  .json_key = "passthrough", .type = MC_T_ENUM, .def = "auto",
	  .offset = F(passthrough), .parse = parse_auto_on_off,
	  .name = name_auto_on_off, .accepts = "auto, on or off",
	  .help = "FUSE passthrough of local pages: on refuses to start without it" },
	{ .flag = "fuse-ring", .metavar = "auto|on|off",
	  .json_key = "fuse_ring", .type = MC_T_ENUM, .def = "auto",
	  .offset = F(fuse_ring), .parse = parse_auto_on_off,
	  .name = name_auto_on_off, .accepts = "auto, on or off",
	  .help = "FUSE requests over io_uring (Linux 6.14+), turning the kernel's switch on: on refuses to start without it" },
	{ .flag = "threads", .metavar = "N", .json_key = "threads",
	  .type = MC_T_UINT, .def = "16", .offset = F(threads),
	  .valid = valid_threads, .accepts = "a whole number from 1 to 256",
	  .help = "FUSE worker threads" },
	{ .flag = "entry-timeout", .metavar = "SECONDS",
	  .json_key = "entry_timeout", .type = MC_T_DOUBLE, .def = "10.0",
	  .unit = "s", .offset = F(entry_timeout_s),
	  .valid = valid_non_negative,
	  .accepts = "a number of seconds >= 0 such as 10.0",
	  .help = "how long the kernel caches names and attributes of committed pages (changes made through this daemon invalidate them at once)" },
	{ .flag = "log-level", .metavar = "LEVEL", .json_key = "log_level",
	  .env = "MC_LOG_LEVEL", .type = MC_T_ENUM, .def = "notice",
	  .offset = F(log_level), .parse = parse_log_level,
	  .name = name_log_level,
	  .accepts = "err, warning, notice, info or debug",
	  .help = "most verbose level logged" },
	{ .flag = "dump-config", .type = MC_T_BOOL, .def = "false",
	  .offset = F(dump_config),
	  .help = "print the effective configuration as JSON and exit" },
	{ .flag = "help", .short_flag = 'h', .type = MC_T_BOOL, .def = "false",
	  .offset = F(help), .help = "print this help and exit" },
	{ .flag = "version", .short_flag = 'V', .type = MC_T_BOOL,
	  .def = "false", .offset = F(version),
	  .help = "print the version and exit" },
};

#define N_TUNABLES (sizeof(tunables) / sizeof(tunables[0]))

/* One flag as it was written, kept until the command line is applied. */
struct mc_cli_arg {
	const struct mc_tunable *t;
	const char *value;
	char spelled[64];	/* "--global_segment_size", "-o": for errors */
};

struct mc_cli {
	struct mc_cli_arg *args;
	size_t n;
	const char *mountpoint;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/*
	 * Messages quote what the user typed; a control character in it must
	 * not forge a second line in a log or a terminal.
	 */
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* A heap string from a format: 0 or -ENOMEM; asprintf without _GNU_SOURCE */
static int str_printf(char **outp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int str_printf(char **outp, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	*outp = NULL;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	s = malloc((size_t)n + 1);
	if (!s)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	*outp = s;
	return 0;
}

static void *field_of(struct mc_config *cfg, const struct mc_tunable *t)
{
	return (char *)cfg + t->offset;
}

static const void *cfield_of(const struct mc_config *cfg,
			     const struct mc_tunable *t)
{
	return (const char *)cfg + t->offset;
}

static const char *type_accepts(const struct mc_tunable *t)
{
	if (t->accepts)
		return t->accepts;
	switch (t->type) {
	case MC_T_BOOL:
		return "true, false, yes, no, on, off, 1 or 0";
	case MC_T_SIZE:
		return "a size such as 4294967296, 4gb or 4GiB";
	case MC_T_DOUBLE:
		return "a number";
	case MC_T_UINT:
		return "a whole number";
	default:
		return "a string";
	}
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_double(const char *s, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE || !isfinite(d))
		return -EINVAL;
	*out = d;
	return 0;
}

static int parse_uint(const char *s, uint32_t *out)
{
	unsigned long long n;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || n > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)n;
	return 0;
}

static int replace_string(char **field, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int append_list(char **field, const char *s)
{
	char *joined;

	if (!*field)
		return replace_string(field, s);
	if (str_printf(&joined, "%s,%s", *field, s) < 0)
		return -ENOMEM;
	free(*field);
	*field = joined;
	return 0;
}

/*
 * Store text s in t's field.  -EINVAL when s is not a value of the row
 * (the caller names the source), -ENOMEM.
 */
static int set_value(struct mc_config *cfg, const struct mc_tunable *t,
		     const char *s)
{
	void *field = field_of(cfg, t);
	int r;

	switch (t->type) {
	case MC_T_BOOL:
		r = parse_bool(s, field);
		break;
	case MC_T_STRING:
		r = replace_string(field, s);
		break;
	case MC_T_SIZE:
		r = mc_size_parse(s, field) == 0 ? 0 : -EINVAL;
		break;
	case MC_T_DOUBLE:
		r = parse_double(s, field);
		break;
	case MC_T_UINT:
		r = parse_uint(s, field);
		break;
	case MC_T_ENUM:
		r = t->parse(s, field);
		break;
	case MC_T_LIST:
		r = append_list(field, s);
		break;
	default:
		r = -EINVAL;
		break;
	}
	if (r == 0 && t->valid && !t->valid(field))
		r = -EINVAL;
	return r;
}

/* set_value() with the error message: where names the source */
static int set_from(struct mc_config *cfg, const struct mc_tunable *t,
		    const char *s, const char *where, char *err, size_t errlen)
{
	char shown[80];
	int r;

	r = set_value(cfg, t, s);
	if (r == -ENOMEM)
		seterr(err, errlen, "out of memory setting %s: free memory and retry",
		       where);
	else if (r < 0)
		seterr(err, errlen, "bad value '%s' for %s: expected %s",
		       mc_log_escape(s, shown, sizeof(shown)), where,
		       type_accepts(t));
	return r;
}

static int apply_defaults(struct mc_config *cfg, char *err, size_t errlen)
{
	char where[96];
	int r;

	for (size_t i = 0; i < N_TUNABLES; i++) {
		if (!tunables[i].def)
			continue;
		snprintf(where, sizeof(where), "the default of '--%s'",
			 tunables[i].flag);
		r = set_from(cfg, &tunables[i], tunables[i].def, where, err,
			     errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Looks a long flag up; '_' and '-' are the same so Mooncake spellings work */
static const struct mc_tunable *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < N_TUNABLES; i++) {
		const char *f = tunables[i].flag;
		size_t k;

		if (strlen(f) != len)
			continue;
		for (k = 0; k < len; k++) {
			char c = name[k] == '_' ? '-' : name[k];

			if (c != f[k])
				break;
		}
		if (k == len)
			return &tunables[i];
	}
	return NULL;
}

static const struct mc_tunable *find_short(char c)
{
	for (size_t i = 0; i < N_TUNABLES; i++) {
		if (tunables[i].short_flag && tunables[i].short_flag == c)
			return &tunables[i];
	}
	return NULL;
}

static const struct mc_tunable *find_json(const char *key)
{
	for (size_t i = 0; i < N_TUNABLES; i++) {
		if (tunables[i].json_key && strcmp(tunables[i].json_key, key) == 0)
			return &tunables[i];
	}
	return NULL;
}

static int cli_push(struct mc_cli *cli, const struct mc_tunable *t,
		    const char *value, const char *spelled, size_t len)
{
	struct mc_cli_arg *args;

	args = realloc(cli->args, (cli->n + 1) * sizeof(*args));
	if (!args)
		return -ENOMEM;
	cli->args = args;
	args[cli->n].t = t;
	args[cli->n].value = value;
	snprintf(args[cli->n].spelled, sizeof(args[cli->n].spelled), "%.*s",
		 (int)len, spelled);
	cli->n++;
	return 0;
}

/* "--flag", "--flag=VALUE", "--flag VALUE", "--no-flag"; *i may advance */
static int parse_long(struct mc_cli *cli, int argc, char **argv, int *i,
		      char *err, size_t errlen)
{
	const char *arg = argv[*i];
	const char *name = arg + 2;
	const char *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	size_t spelled_len = (size_t)(name - arg) + len;
	const struct mc_tunable *t;
	const char *value = eq ? eq + 1 : NULL;

	t = find_long(name, len);
	if (!t && len > 3 && strncmp(name, "no", 2) == 0 &&
	    (name[2] == '-' || name[2] == '_')) {
		t = find_long(name + 3, len - 3);
		if (t && t->type != MC_T_BOOL)
			t = NULL;
		if (t && value) {
			seterr(err, errlen,
			       "option '%.*s' takes no value: write '--%s=%s' or '%.*s'",
			       (int)spelled_len, arg, t->flag, value,
			       (int)spelled_len, arg);
			return -EINVAL;
		}
		if (t)
			value = "false";
	}
	if (!t) {
		seterr(err, errlen,
		       "unknown option '%.*s': run 'mooncaked --help' for the list",
		       (int)spelled_len, arg);
		return -EINVAL;
	}
	if (!value && t->type == MC_T_BOOL)
		value = "true";
	if (!value) {
		if (*i + 1 >= argc) {
			seterr(err, errlen,
			       "option '%.*s' needs a value: write '--%s %s'",
			       (int)spelled_len, arg, t->flag, t->metavar);
			return -EINVAL;
		}
		value = argv[++*i];
	}
	return cli_push(cli, t, value, arg, spelled_len);
}

/* "-f", "-c FILE", "-cFILE", "-fo allow_other"; *i may advance */
static int parse_short(struct mc_cli *cli, int argc, char **argv, int *i,
		       char *err, size_t errlen)
{
	const char *arg = argv[*i];
	char spelled[3] = { '-', 0, 0 };
	int r;

	for (const char *p = arg + 1; *p; p++) {
		const struct mc_tunable *t = find_short(*p);
		const char *value;

		spelled[1] = *p;
		if (!t) {
			seterr(err, errlen,
			       "unknown option '%s': run 'mooncaked --help' for the list",
			       spelled);
			return -EINVAL;
		}
		if (t->type == MC_T_BOOL)
			value = "true";
		else if (p[1])
			value = p + 1;
		else if (*i + 1 < argc)
			value = argv[++*i];
		else {
			seterr(err, errlen,
			       "option '%s' needs a value: write '%s %s'",
			       spelled, spelled, t->metavar);
			return -EINVAL;
		}
		r = cli_push(cli, t, value, spelled, 2);
		if (r < 0 || t->type != MC_T_BOOL)
			return r;
	}
	return 0;
}

/* The command line's syntax only: nothing is applied yet. */
static int parse_cli(struct mc_cli *cli, int argc, char **argv, char *err,
		     size_t errlen)
{
	bool options_done = false;
	char shown[80];
	int r;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!options_done && strcmp(arg, "--") == 0) {
			options_done = true;
			continue;
		}
		if (!options_done && strncmp(arg, "--", 2) == 0)
			r = parse_long(cli, argc, argv, &i, err, errlen);
		else if (!options_done && arg[0] == '-' && arg[1] != '\0')
			r = parse_short(cli, argc, argv, &i, err, errlen);
		else if (cli->mountpoint) {
			seterr(err, errlen,
			       "unexpected argument '%s' after MOUNTPOINT '%s': " MC_USAGE,
			       mc_log_escape(arg, shown, sizeof(shown)),
			       cli->mountpoint);
			r = -EINVAL;
		} else {
			cli->mountpoint = arg;
			r = 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static const char *env_lookup(char **envp, const char *name)
{
	size_t len = strlen(name);

	for (char **e = envp; e && *e; e++) {
		if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
			return *e + len + 1;
	}
	return NULL;
}

static int apply_env(struct mc_config *cfg, char **envp, char *err,
		     size_t errlen)
{
	char where[96];
	int r;

	for (size_t i = 0; i < N_TUNABLES; i++) {
		const struct mc_tunable *t = &tunables[i];
		const char *v;

		if (!t->env)
			continue;
		v = env_lookup(envp, t->env);
		/* an empty variable is how templates and shells say "unset" */
		if (!v || !*v)
			continue;
		snprintf(where, sizeof(where), "environment variable '%s'",
			 t->env);
		r = set_from(cfg, t, v, where, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * The text of a JSON value for t's parser, or NULL when its JSON type is
 * wrong for the row: strings everywhere, numbers for numbers and sizes,
 * booleans for bools.
 */
static const char *json_text(const struct mc_tunable *t, json_object *v)
{
	enum json_type jt = json_object_get_type(v);

	if (jt == json_type_string)
		return json_object_get_string(v);
	switch (t->type) {
	case MC_T_BOOL:
		return jt == json_type_boolean || jt == json_type_int ?
			       json_object_get_string(v) : NULL;
	case MC_T_SIZE:
	case MC_T_UINT:
		/* 4.0 is refused by the parser: sizes are exact */
		return jt == json_type_int || jt == json_type_double ?
			       json_object_get_string(v) : NULL;
	case MC_T_DOUBLE:
		return jt == json_type_int || jt == json_type_double ?
			       json_object_get_string(v) : NULL;
	default:
		return NULL;
	}
}

static int read_file(const char *path, char **outp, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	*outp = NULL;
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		seterr(err, errlen,
		       "cannot open config file '%s': %s: check --config and MOONCAKE_CONFIG_PATH",
		       path, strerror(-r));
		goto out;
	}
	buf = malloc(MC_CONFIG_FILE_MAX + 1);
	if (!buf) {
		r = -ENOMEM;
		seterr(err, errlen, "out of memory reading config file '%s'",
		       path);
		goto out_close;
	}
	len = fread(buf, 1, MC_CONFIG_FILE_MAX + 1, f);
	if (ferror(f)) {
		r = -EIO;
		seterr(err, errlen,
		       "cannot read config file '%s': check that it is a readable file",
		       path);
		goto out_free;
	}
	if (len > MC_CONFIG_FILE_MAX) {
		r = -EFBIG;
		seterr(err, errlen,
		       "config file '%s' is larger than %d bytes: check that it is the JSON config",
		       path, MC_CONFIG_FILE_MAX);
		goto out_free;
	}
	buf[len] = '\0';
	*outp = buf;
	buf = NULL;
	r = 0;
out_free:
	free(buf);
out_close:
	fclose(f);
out:
	return r;
}

static unsigned line_of(const char *text, size_t offset)
{
	unsigned line = 1;

	for (size_t i = 0; i < offset && text[i]; i++)
		line += text[i] == '\n';
	return line;
}

/* Parse text as one JSON object; *outp is the object or NULL on error. */
static int parse_json(const char *path, const char *text, json_object **outp,
		      char *err, size_t errlen)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *obj = NULL;
	size_t len = strlen(text);
	size_t end;
	int r;

	*outp = NULL;
	tok = json_tokener_new();
	if (!tok) {
		r = -ENOMEM;
		seterr(err, errlen, "out of memory parsing '%s'", path);
		goto out;
	}
	/* the terminating NUL tells the tokener the input is complete */
	obj = json_tokener_parse_ex(tok, text, (int)len + 1);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	if (!obj || jerr != json_tokener_success) {
		r = -EINVAL;
		seterr(err, errlen,
		       "cannot parse config file '%s' at line %u: %s: fix the JSON syntax",
		       path, line_of(text, end),
		       json_tokener_error_desc(jerr));
		goto out_put;
	}
	end += strspn(text + end, " \t\r\n");
	if (end < len) {
		r = -EINVAL;
		seterr(err, errlen,
		       "cannot parse config file '%s' at line %u: text after the JSON object: remove it",
		       path, line_of(text, end));
		goto out_put;
	}
	if (!json_object_is_type(obj, json_type_object)) {
		r = -EINVAL;
		seterr(err, errlen,
		       "config file '%s' is not a JSON object: write {\"key\": value, ...}",
		       path);
		goto out_put;
	}
	*outp = obj;
	obj = NULL;
	r = 0;
out_put:
	json_object_put(obj);
	json_tokener_free(tok);
out:
	return r;
}

static int apply_json(struct mc_config *cfg, const char *path, char *err,
		      size_t errlen)
{
	json_object *root = NULL;
	char *text = NULL;
	char where[512], shown[128];
	int r;

	r = read_file(path, &text, err, errlen);
	if (r < 0)
		goto out;
	r = parse_json(path, text, &root, err, errlen);
	if (r < 0)
		goto out_free;
	json_object_object_foreach(root, key, v) {
		const struct mc_tunable *t = find_json(key);
		const char *s;

		if (!t) {
			/* Mooncake configs carry keys for services we replace */
			mc_log(MC_LOG_WARNING,
			       "config file '%s': ignoring unknown key '%s': mooncaked does not use it",
			       path, mc_log_escape(key, shown, sizeof(shown)));
			continue;
		}
		/* null is how JSON writes "not set": keep the default */
		if (json_object_is_type(v, json_type_null))
			continue;
		snprintf(where, sizeof(where), "key '%s' in config file '%s'",
			 key, path);
		s = json_text(t, v);
		if (!s) {
			r = -EINVAL;
			seterr(err, errlen,
			       "wrong type (%s) for %s: expected %s",
			       json_type_to_name(json_object_get_type(v)), where,
			       type_accepts(t));
			goto out_put;
		}
		r = set_from(cfg, t, s, where, err, errlen);
		if (r < 0)
			goto out_put;
	}
	r = 0;
out_put:
	json_object_put(root);
out_free:
	free(text);
out:
	return r;
}

static int apply_cli(struct mc_config *cfg, const struct mc_cli *cli,
		     char *err, size_t errlen)
{
	char where[96];
	int r;

	for (size_t i = 0; i < cli->n; i++) {
		snprintf(where, sizeof(where), "option '%s'",
			 cli->args[i].spelled);
		r = set_from(cfg, cli->args[i].t, cli->args[i].value, where, err,
			     errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The config file named on the command line, else by the environment. */
static const char *config_file(const struct mc_cli *cli, char **envp)
{
	const char *path = NULL;

	for (size_t i = 0; i < cli->n; i++) {
		if (cli->args[i].t->offset == offsetof(struct mc_config,
						       config_path))
			path = cli->args[i].value;
	}
	if (!path)
		path = env_lookup(envp, "MOONCAKE_CONFIG_PATH");
	return path && *path ? path : NULL;
}

/* Absolute, without trailing '/': realpath when it exists, else as given. */
static int resolve_mountpoint(struct mc_config *cfg, const char *given,
			      char *err, size_t errlen)
{
	char shown[160];
	char *abs;
	size_t len;

	abs = realpath(given, NULL);
	if (!abs && errno == ENOMEM)
		return -ENOMEM;
	if (!abs && given[0] != '/') {
		seterr(err, errlen,
		       "mountpoint '%s' does not exist and is not an absolute path: create it or give an absolute path",
		       mc_log_escape(given, shown, sizeof(shown)));
		return -EINVAL;
	}
	if (!abs) {
		abs = strdup(given);
		if (!abs)
			return -ENOMEM;
		len = strlen(abs);
		while (len > 1 && abs[len - 1] == '/')
			abs[--len] = '\0';
	}
	free(cfg->mountpoint);
	cfg->mountpoint = abs;
	return 0;
}

/*
 * <root>/<mountpoint with the leading '/' dropped, '/' as '_'>, root
 * /run/mooncake; for a user (who may not write there) their
 * $XDG_RUNTIME_DIR/mooncake when it is set, as a session leaves it.
 */
static int derive_state_dir(struct mc_config *cfg, char **envp)
{
	const char *mp = cfg->mountpoint + strspn(cfg->mountpoint, "/");
	const char *xdg = env_lookup(envp, "XDG_RUNTIME_DIR");
	const char *root = MC_STATE_ROOT, *sub = "";
	char *dir;

	if (geteuid() != 0 && xdg && xdg[0] == '/') {
		root = xdg;
		sub = "/mooncake";
	}
	if (str_printf(&dir, "%s%s/%s", root, sub, *mp ? mp : "_") < 0)
		return -ENOMEM;
	for (char *p = dir + strlen(root) + strlen(sub) + 1; *p; p++) {
		if (*p == '/')
			*p = '_';
	}
	cfg->state_dir = dir;
	return 0;
}

static int apply_derived(struct mc_config *cfg, char **envp, char *err,
			 size_t errlen)
{
	char host[HOST_NAME_MAX + 1];
	int r;

	if (!cfg->local_hostname) {
		if (gethostname(host, sizeof(host)) < 0) {
			r = -errno;
			seterr(err, errlen,
			       "cannot read the host name: %s: set MOONCAKE_LOCAL_HOSTNAME",
			       strerror(-r));
			return -EINVAL;
		}
		host[sizeof(host) - 1] = '\0';
		cfg->local_hostname = strdup(host);
		if (!cfg->local_hostname)
			return -ENOMEM;
	}
	if (!cfg->state_dir) {
		r = derive_state_dir(cfg, envp);
		if (r < 0)
			return r;
	}
	if (!cfg->db_path)
		return str_printf(&cfg->db_path, "%s/namespace.db",
				  cfg->state_dir);
	return 0;
}

/*
 * --help and --version answer without a mountpoint or a readable config.
 * The last of "--help" and "--no-help" wins, as for every flag.
 */
static bool cli_wants_info(struct mc_config *cfg, const struct mc_cli *cli)
{
	for (size_t i = 0; i < cli->n; i++) {
		const struct mc_tunable *t = cli->args[i].t;
		size_t off = t->offset;

		if (off != offsetof(struct mc_config, help) &&
		    off != offsetof(struct mc_config, version))
			continue;
		(void)set_value(cfg, t, cli->args[i].value);
	}
	return cfg->help || cfg->version;
}

int mc_config_load(struct mc_config **outp, int argc, char **argv,
		   char **envp, char *err, size_t errlen)
{
	struct mc_cli cli = { 0 };
	struct mc_config *cfg;
	const char *path;
	int r;

	*outp = NULL;
	seterr(err, errlen, "%s", "");
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		r = -ENOMEM;
		goto out_nomem;
	}
	r = apply_defaults(cfg, err, errlen);
	if (r < 0)
		goto out_free;
	r = parse_cli(&cli, argc, argv, err, errlen);
	if (r < 0)
		goto out_free;
	if (cli_wants_info(cfg, &cli))
		goto out_done;
	if (!cli.mountpoint) {
		r = -EINVAL;
		seterr(err, errlen, "missing MOUNTPOINT: " MC_USAGE);
		goto out_free;
	}
	path = config_file(&cli, envp);
	if (path) {
		r = apply_json(cfg, path, err, errlen);
		if (r < 0)
			goto out_free;
	}
	r = apply_env(cfg, envp, err, errlen);
	if (r < 0)
		goto out_free;
	r = apply_cli(cfg, &cli, err, errlen);
	if (r < 0)
		goto out_free;
	r = resolve_mountpoint(cfg, cli.mountpoint, err, errlen);
	if (r < 0)
		goto out_free;
	r = apply_derived(cfg, envp, err, errlen);
	if (r < 0)
		goto out_free;
out_done:
	*outp = cfg;
	cfg = NULL;
	r = 0;
out_free:
	mc_config_free(cfg);
out_nomem:
	free(cli.args);
	if (r == -ENOMEM)
		seterr(err, errlen,
		       "out of memory loading the configuration: free memory and retry");
	/* every failure the caller can act on is a bad input */
	return r < 0 && r != -ENOMEM ? -EINVAL : r;
}

void mc_config_free(struct mc_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < N_TUNABLES; i++) {
		if (tunables[i].type == MC_T_STRING ||
		    tunables[i].type == MC_T_LIST)
			free(*(char **)field_of(cfg, &tunables[i]));
	}
	free(cfg->mountpoint);
	free(cfg);
}

static void print_row(FILE *out, const struct mc_tunable *t)
{
	const char *sep = "";

	fputs("  ", out);
	if (t->short_flag)
		fprintf(out, "-%c, ", t->short_flag);
	fprintf(out, "--%s", t->flag);
	if (t->metavar)
		fprintf(out, " %s", t->metavar);
	if (t->type == MC_T_BOOL && t->def && strcmp(t->def, "true") == 0)
		fprintf(out, ", --no-%s", t->flag);
	fprintf(out, "\n      %s\n      ", t->help);
	if (t->def || t->def_help) {
		fprintf(out, "default: %s%s%s", t->def ? t->def : t->def_help,
			t->unit ? " " : "", t->unit ? t->unit : "");
		sep = " ";
	}
	if (t->json_key || t->env) {
		fprintf(out, "%s(", sep);
		sep = "";
		if (t->json_key) {
			fprintf(out, "json %s", t->json_key);
			sep = ", ";
		}
		if (t->env)
			fprintf(out, "%senv %s", sep, t->env);
		fputc(')', out);
	}
	fputc('\n', out);
}

void mc_config_print_help(FILE *out, const char *progname)
{
	fprintf(out,
		"usage: %s [options] MOUNTPOINT\n"
		"\n"
		"Mount a Mooncake-compatible KV-cache page pool at MOUNTPOINT.\n"
		"Later wins: defaults, JSON config file, environment, command line.\n"
		"Flags take '--flag VALUE' or '--flag=VALUE'; '_' may stand for '-'.\n"
		"Sizes take 4294967296, 4gb, 4GiB or 512m (powers of 1024).\n"
		"\n"
		"options:\n",
		progname ? progname : "mooncaked");
	for (size_t i = 0; i < N_TUNABLES; i++)
		print_row(out, &tunables[i]);
}

/* Shortest text that reads back as the same double: 0.9, not 0.90000000000000002 */
static json_object *new_double(double d)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, sizeof(buf), "%.17g", d);
	return json_object_new_double_s(d, buf);
}

static json_object *value_json(const struct mc_config *cfg,
			       const struct mc_tunable *t)
{
	const void *field = cfield_of(cfg, t);
	const char *s;

	switch (t->type) {
	case MC_T_BOOL:
		return json_object_new_boolean(*(const bool *)field);
	case MC_T_SIZE:
		return json_object_new_uint64(*(const uint64_t *)field);
	case MC_T_DOUBLE:
		return new_double(*(const double *)field);
	case MC_T_UINT:
		return json_object_new_uint64(*(const uint32_t *)field);
	case MC_T_ENUM:
		return json_object_new_string(t->name(field));
	default:
		s = *(char *const *)field;
		return s ? json_object_new_string(s) : NULL;
	}
}

void mc_config_dump(const struct mc_config *cfg, FILE *out)
{
	json_object *root = json_object_new_object();

	if (!root) {
		fputs("{}\n", out);
		return;
	}
	/* JSON keys only, so that the dump is a config file mooncaked reads */
	for (size_t i = 0; i < N_TUNABLES; i++) {
		if (tunables[i].json_key)
			json_object_object_add(root, tunables[i].json_key,
					       value_json(cfg, &tunables[i]));
	}
	fprintf(out, "%s\n",
		json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
						     JSON_C_TO_STRING_SPACED |
						     JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

void mc_config_foreach(void (*fn)(const char *flag, const char *json_key,
				  const char *env, void *ctx),
		       void *ctx)
{
	for (size_t i = 0; i < N_TUNABLES; i++)
		fn(tunables[i].flag, tunables[i].json_key, tunables[i].env, ctx);
}
