/*
 * mooncake_master - one per cluster: the namespace and placement authority.
 *
 * This file is the command line, the signals and the log; the service is
 * src/master.c.  Flags keep Mooncake's names where the meaning matches, so
 * an operator's existing command line either works or is refused with a
 * reason, never silently half-honoured.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autoconf.h"
#include "log.h"
#include "master.h"
#include "path.h"
#include "banned.h"

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2,
};

#define DEFAULT_DB "/var/lib/mooncake/master.db"
#define DEFAULT_RPC_ADDRESS "0.0.0.0"
#define DEFAULT_PORT 50051
#define DEFAULT_CLIENT_TTL_S 5.0
/* Below this a heartbeat (a quarter of the ttl, at least 100 ms) is too close. */
#define MIN_CLIENT_TTL_S 0.2
#define MAX_CLIENT_TTL_S 86400.0

enum opt_id {
	OPT_HELP,
	OPT_VERSION,
	OPT_FOREGROUND,
	OPT_DB,
	OPT_RPC_ADDRESS,
	OPT_PORT,
	OPT_CLIENT_TTL,
	OPT_REPLICA_NUM,
	OPT_LOG_LEVEL,
	OPT_HIGH_WATERMARK,
	OPT_EVICTION_RATIO,
	OPT_LEASE_TTL,
	OPT_HTTP_METADATA,
	OPT_HTTP_METADATA_PORT,
	OPT_HTTP_METADATA_HOST,
	OPT_METRICS_PORT,
	OPT_ENABLE_HA,
	OPT_ETCD_ENDPOINTS,
};

enum opt_arg {
	ARG_NONE, /* a switch: --flag (--flag=VALUE is an error) */
	ARG_BOOL, /* --flag, or --flag=true|false (gflags' spelling) */
	ARG_VALUE, /* --flag VALUE or --flag=VALUE */
};

struct opt_def {
	const char *name; /* as --help prints it; '_' and '-' match each other */
	char short_flag;
	enum opt_id id;
	enum opt_arg arg;
	const char *metavar;
	const char *def; /* default as --help prints it, or NULL */
	const char *help;
	bool refused; /* not implemented: refused with exit 2 */
};

static const struct opt_def opt_table[] = {
	{ "db", 0, OPT_DB, ARG_VALUE, "PATH", DEFAULT_DB,
	  "the sqlite store of the namespace and placement (WAL); ':memory:' keeps nothing",
	  false },
	{ "rpc_address", 0, OPT_RPC_ADDRESS, ARG_VALUE, "ADDR",
	  DEFAULT_RPC_ADDRESS,
	  "address the placement RPC binds to (IPv4 or IPv6)", false },
	{ "port", 0, OPT_PORT, ARG_VALUE, "PORT", "50051",
	  "TCP port of the placement RPC (0 picks a free one, printed at start)",
	  false },
	{ "client_ttl", 0, OPT_CLIENT_TTL, ARG_VALUE, "SECONDS", "5",
	  "a daemon silent this long is declared dead and its copies dropped; fractions allowed (0.5), 0.2 to 86400",
	  false },
	{ "replica_num", 0, OPT_REPLICA_NUM, ARG_VALUE, "N", "1",
	  "copies kept of every page, 1 to 8; above 1 the master asks other daemons to copy each committed page",
	  false },
	{ "log-level", 0, OPT_LOG_LEVEL, ARG_VALUE, "LEVEL", "notice",
	  "err, warning, notice, info or debug", false },
	{ "foreground", 'f', OPT_FOREGROUND, ARG_NONE, NULL, NULL,
	  "accepted for symmetry with mooncaked: the master always runs in the foreground (use a service manager to detach)",
	  false },
	{ "eviction_high_watermark_ratio", 0, OPT_HIGH_WATERMARK, ARG_VALUE,
	  "RATIO", "0.9",
	  "accepted for Mooncake compatibility, in (0,1], and not used: each mooncaked evicts at its own watermarks (mooncaked --eviction-high-watermark-ratio)",
	  false },
	{ "eviction_ratio", 0, OPT_EVICTION_RATIO, ARG_VALUE, "RATIO", "0.05",
	  "accepted for Mooncake compatibility, in (0,1], and not used: each mooncaked evicts at its own watermarks (mooncaked --eviction-ratio)",
	  false },
	{ "default_kv_lease_ttl", 0, OPT_LEASE_TTL, ARG_VALUE, "MS", "0",
	  "accepted for Mooncake compatibility and not used: readers pin a page while its bytes move and unpin after, so no lease times out under a slow transfer and probes pin nothing",
	  false },
	{ "enable_http_metadata_server", 0, OPT_HTTP_METADATA, ARG_BOOL, NULL,
	  "false",
	  "not implemented: refused (daemons learn peer addresses from the master's RPC)",
	  true },
	{ "http_metadata_server_port", 0, OPT_HTTP_METADATA_PORT, ARG_VALUE,
	  "PORT", NULL, "not implemented: refused", true },
	{ "http_metadata_server_host", 0, OPT_HTTP_METADATA_HOST, ARG_VALUE,
	  "ADDR", NULL, "not implemented: refused", true },
	{ "metrics_port", 0, OPT_METRICS_PORT, ARG_VALUE, "PORT", NULL,
	  "not implemented: refused (no Prometheus endpoint yet; see the STATS request)",
	  true },
	{ "enable_ha", 0, OPT_ENABLE_HA, ARG_BOOL, NULL, "false",
	  "not implemented: refused (one master per cluster; its store survives a restart)",
	  true },
	{ "etcd_endpoints", 0, OPT_ETCD_ENDPOINTS, ARG_VALUE, "LIST", NULL,
	  "not implemented: refused", true },
	{ "help", 'h', OPT_HELP, ARG_NONE, NULL, NULL,
	  "print this help and exit", false },
	{ "version", 'V', OPT_VERSION, ARG_NONE, NULL, NULL,
	  "print the version and exit", false },
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

struct master_opts {
	struct mc_master_params p;
	enum mc_log_level log_level;
	bool help;
	bool version;
	bool lease_given;
	bool watermarks_given;
};

static void print_help(FILE *out)
{
	fprintf(out,
		"usage: mooncake_master [options]\n"
		"\n"
		"The namespace and placement authority of a mooncakefs cluster: every\n"
		"mooncaked started with --master HOST:PORT asks it where pages are.\n"
		"Page bytes never pass through it.  It runs in the foreground and stops\n"
		"on SIGTERM or SIGINT.\n"
		"Flags take '--flag VALUE' or '--flag=VALUE'; '_' may stand for '-'.\n"
		"\n"
		"options:\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		const struct opt_def *o = &opt_table[i];

		fputs("  ", out);
		if (o->short_flag)
			fprintf(out, "-%c, ", o->short_flag);
		fprintf(out, "--%s", o->name);
		if (o->metavar)
			fprintf(out, " %s", o->metavar);
		fprintf(out, "\n      %s\n", o->help);
		if (o->def && !o->refused)
			fprintf(out, "      default: %s\n", o->def);
	}
}

/* Flag names compare with '_' and '-' as the same character. */
static bool name_matches(const char *want, const char *got, size_t len)
{
	size_t i;

	for (i = 0; i < len && want[i]; i++) {
		char a = want[i] == '_' ? '-' : want[i];
		char b = got[i] == '_' ? '-' : got[i];

		if (a != b)
			return false;
	}
	return i == len && want[i] == '\0';
}

static const struct opt_def *find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (name_matches(opt_table[i].name, name, len))
			return &opt_table[i];
	return NULL;
}

static const struct opt_def *find_short(char c)
{
	for (size_t i = 0; i < N_OPTS; i++)
		if (opt_table[i].short_flag && opt_table[i].short_flag == c)
			return &opt_table[i];
	return NULL;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A whole decimal number in [min, max]. */
static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A finite decimal (fractions allowed) in (min_excl, max]. */
static int parse_double(const char *s, double min_excl, double max, double *out)
{
	double v;
	char *end;

	if (*s == '\0' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || !(v > min_excl) ||
	    v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static const char *refusal(enum opt_id id)
{
	switch (id) {
	case OPT_HTTP_METADATA:
	case OPT_HTTP_METADATA_PORT:
	case OPT_HTTP_METADATA_HOST:
		return "the HTTP metadata server is not implemented in this version: daemons learn each other's addresses from the master's RPC, so drop the flag";
	case OPT_METRICS_PORT:
		return "the metrics endpoint is not implemented in this version: drop the flag (cat MOUNTPOINT/.mooncake/status on a host for counters)";
	default:
		return "high availability is not implemented in this version: run one master; its store survives a restart, so drop the flag";
	}
}

/*
 * Apply one option.  On a bad value writes the message (without the
 * program name) into err and returns -EINVAL.
 */
static int apply(struct master_opts *o, const struct opt_def *d,
		 const char *val, char *err, size_t errlen)
{
	uint64_t u;
	double x;
	bool b;

	if (d->refused) {
		/* gflags writes --enable_ha=false for "off": that is no request */
		if (d->arg == ARG_BOOL && val && parse_bool(val, &b) == 0 && !b)
			return 0;
		snprintf(err, errlen, "--%s: %s", d->name, refusal(d->id));
		return -EINVAL;
	}
	switch (d->id) {
	case OPT_HELP:
		o->help = true;
		return 0;
	case OPT_VERSION:
		o->version = true;
		return 0;
	case OPT_FOREGROUND:
		return 0;
	case OPT_DB:
		if (*val == '\0')
			break;
		o->p.db_path = val;
		return 0;
	case OPT_RPC_ADDRESS:
		if (*val == '\0')
			break;
		o->p.rpc_address = val;
		return 0;
	case OPT_PORT:
		if (parse_uint(val, 0, 65535, &u) < 0)
			break;
		o->p.port = (uint16_t)u;
		return 0;
	case OPT_CLIENT_TTL:
		if (parse_double(val, 0, MAX_CLIENT_TTL_S, &x) < 0 ||
		    x < MIN_CLIENT_TTL_S)
			break;
		o->p.client_ttl_ms = (uint64_t)llround(x * 1000.0);
		return 0;
	case OPT_REPLICA_NUM:
		if (parse_uint(val, 1, 8, &u) < 0)
			break;
		o->p.replica_num = (unsigned)u;
		return 0;
	case OPT_LOG_LEVEL:
		if (mc_log_level_parse(val, &o->log_level) < 0)
			break;
		return 0;
	case OPT_HIGH_WATERMARK:
	case OPT_EVICTION_RATIO:
		if (parse_double(val, 0, 1, &x) < 0)
			break;
		o->watermarks_given = true;
		return 0;
	case OPT_LEASE_TTL:
		if (parse_uint(val, 0, UINT64_MAX, &u) < 0)
			break;
		o->lease_given = true;
		return 0;
	default:
		break;
	}
	switch (d->id) {
	case OPT_PORT:
		snprintf(
			err, errlen,
			"--%s: '%s' is not a port: give a number from 0 to 65535",
			d->name, val);
		break;
	case OPT_CLIENT_TTL:
		snprintf(
			err, errlen,
			"--%s: '%s' is not a time in seconds from %.1f to %.0f: write e.g. 5 or 0.5",
			d->name, val, MIN_CLIENT_TTL_S, MAX_CLIENT_TTL_S);
		break;
	case OPT_REPLICA_NUM:
		snprintf(
			err, errlen,
			"--%s: '%s' is not a replica count: give a whole number from 1 to 8",
			d->name, val);
		break;
	case OPT_LOG_LEVEL:
		snprintf(
			err, errlen,
			"--%s: '%s' is not a level: give err, warning, notice, info or debug",
			d->name, val);
		break;
	case OPT_HIGH_WATERMARK:
	case OPT_EVICTION_RATIO:
		snprintf(err, errlen,
			 "--%s: '%s' is not a ratio in (0,1]: write e.g. 0.9",
			 d->name, val);
		break;
	case OPT_LEASE_TTL:
		snprintf(
			err, errlen,
			"--%s: '%s' is not a time in milliseconds: give a whole number",
			d->name, val);
		break;
	default:
		snprintf(err, errlen, "--%s: the value must not be empty",
			 d->name);
		break;
	}
	return -EINVAL;
}

/* Parse argv into o.  On error writes one line into err and returns -EINVAL. */
static int parse_args(struct master_opts *o, int argc, char **argv, char *err,
		      size_t errlen)
{
	const struct opt_def *d;
	const char *arg, *name, *val;
	size_t len;
	int i;

	memset(o, 0, sizeof(*o));
	o->p.db_path = DEFAULT_DB;
	o->p.rpc_address = DEFAULT_RPC_ADDRESS;
	o->p.port = DEFAULT_PORT;
	o->p.client_ttl_ms = (uint64_t)(DEFAULT_CLIENT_TTL_S * 1000);
	o->p.replica_num = 1;
	o->log_level = MC_LOG_NOTICE;

	for (i = 1; i < argc; i++) {
		arg = argv[i];
		val = NULL;
		if (strcmp(arg, "--") == 0) {
			if (i + 1 < argc) {
				snprintf(
					err, errlen,
					"unexpected argument '%s': the master takes options only (see --help)",
					argv[i + 1]);
				return -EINVAL;
			}
			break;
		}
		if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
			/* gflags also spells long flags with one dash: -port=1 */
			name = arg + 2;
		} else if (arg[0] == '-' && arg[1] && arg[2] == '\0') {
			d = find_short(arg[1]);
			if (!d) {
				snprintf(err, errlen,
					 "unknown option '%s': see --help",
					 arg);
				return -EINVAL;
			}
			name = NULL;
		} else if (arg[0] == '-' && arg[1]) {
			name = arg + 1;
		} else {
			snprintf(
				err, errlen,
				"unexpected argument '%s': the master takes options only (see --help)",
				arg);
			return -EINVAL;
		}
		if (name) {
			len = strcspn(name, "=");
			if (name[len] == '=')
				val = name + len + 1;
			d = find_long(name, len);
			if (!d) {
				snprintf(err, errlen,
					 "unknown option '--%.*s': see --help",
					 (int)len, name);
				return -EINVAL;
			}
		}
		if (d->arg == ARG_NONE && val) {
			snprintf(err, errlen, "--%s takes no value", d->name);
			return -EINVAL;
		}
		if (d->arg == ARG_BOOL && val && !d->refused) {
			bool b;

			if (parse_bool(val, &b) < 0) {
				snprintf(err, errlen,
					 "--%s: '%s' is not true or false",
					 d->name, val);
				return -EINVAL;
			}
		}
		if (d->arg == ARG_VALUE && !val) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value (%s)",
					 d->name, d->metavar);
				return -EINVAL;
			}
			val = argv[++i];
		}
		if (apply(o, d, val, err, errlen) < 0)
			return -EINVAL;
	}
	return 0;
}

/*
 * Make the store's directory, as mooncaked makes its state directory, so
 * the default path works on a fresh host.  ":memory:" and bare file names
 * need nothing.
 */
static int make_db_dir(const char *db)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(db, '/');
	int r;

	if (strcmp(db, ":memory:") == 0 || !slash || slash == db)
		return 0;
	if ((size_t)(slash - db) >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, db, (size_t)(slash - db));
	dir[slash - db] = '\0';
	r = mc_mkdir_p(dir, 0750);
	if (r < 0)
		mc_log_errno(
			MC_LOG_ERR, r,
			"cannot create the store's directory '%s': create it, or pass another --db",
			dir);
	return r;
}

/*
 * Signals are taken by sigwait() on a thread of their own rather than by a
 * handler, so no global is needed to reach the master: the thread owns the
 * pointer.  SIGUSR1 (sent by main) only ends the thread.
 */
struct signal_waiter {
	struct mc_master *m;
	sigset_t set;
};

static void *signal_thread(void *arg)
{
	struct signal_waiter *w = arg;
	bool told = false;
	int sig;

	for (;;) {
		if (sigwait(&w->set, &sig) != 0)
			continue;
		if (sig == SIGUSR1)
			break;
		/* timeout(1) and service managers often signal twice */
		if (!told)
			mc_log(MC_LOG_NOTICE, "stopping on SIG%s", sigabbrev_np(sig));
		told = true;
		mc_master_stop(w->m);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct master_opts o;
	struct mc_master *m = NULL;
	struct signal_waiter w;
	pthread_t sigthr;
	bool sig_started = false;
	char err[512];
	int status = EXIT_RUNTIME;
	int r;

	if (parse_args(&o, argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "mooncake_master: %s\n", err);
		return EXIT_USAGE;
	}
	if (o.help) {
		print_help(stdout);
		return 0;
	}
	if (o.version) {
		printf("mooncake_master (mooncakefs) %s\n", PACKAGE_VERSION);
		return 0;
	}
	mc_log_init("mooncake_master", o.log_level, 0);
	if (o.lease_given)
		mc_log(MC_LOG_NOTICE,
		       "--default_kv_lease_ttl has no effect: readers pin pages while bytes move instead of taking leases");
	if (o.watermarks_given)
		mc_log(MC_LOG_NOTICE,
		       "--eviction_high_watermark_ratio and --eviction_ratio have no effect here: set them on each mooncaked, which evicts at its own watermarks");

	/* before any thread starts, so every thread inherits the mask */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&w.set);
	sigaddset(&w.set, SIGTERM);
	sigaddset(&w.set, SIGINT);
	sigaddset(&w.set, SIGHUP);
	sigaddset(&w.set, SIGUSR1);
	r = pthread_sigmask(SIG_BLOCK, &w.set, NULL);
	if (r != 0) {
		mc_log_errno(MC_LOG_ERR, -r,
			     "cannot block signals: report a bug");
		goto out;
	}

	r = make_db_dir(o.p.db_path);
	if (r < 0)
		goto out;
	r = mc_master_new(&m, &o.p);
	if (r < 0)
		goto out;
	w.m = m;
	r = pthread_create(&sigthr, NULL, signal_thread, &w);
	if (r != 0) {
		mc_log_errno(
			MC_LOG_ERR, -r,
			"cannot start the signal thread: check the thread limit (ulimit -u)");
		goto out;
	}
	sig_started = true;

	printf("mooncake_master: serving on %s:%u (store '%s', client ttl %.3g s, replica_num %u)\n",
	       o.p.rpc_address, (unsigned)mc_master_port(m), o.p.db_path,
	       (double)o.p.client_ttl_ms / 1000.0, o.p.replica_num);
	printf("  stop: kill -TERM %ld\n", (long)getpid());
	fflush(stdout);

	r = mc_master_run(m);
	if (r < 0)
		mc_log_errno(
			MC_LOG_ERR, r,
			"the service stopped on an error: see the lines above");
	else
		status = 0;
	mc_log(MC_LOG_NOTICE, "stopped");
out:
	if (sig_started) {
		pthread_kill(sigthr, SIGUSR1);
		pthread_join(sigthr, NULL);
	}
	mc_master_free(m);
	return status;
}
