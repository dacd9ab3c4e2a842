/* log.c - the logging sink shared by every program */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "log.h"
#include "banned.h"

/*
 * The sink is the one piece of process-wide state: main() sets it once
 * before threads start, everything after only reads it.
 */
static struct {
	const char *progname;
	enum mc_log_level level;
	unsigned flags;
} sink = { "mooncake", MC_LOG_NOTICE, 0 };

static const char *const level_names[] = {
	[MC_LOG_ERR] = "err",	    [MC_LOG_WARNING] = "warning",
	[MC_LOG_NOTICE] = "notice", [MC_LOG_INFO] = "info",
	[MC_LOG_DEBUG] = "debug",
};

void mc_log_init(const char *progname, enum mc_log_level level, unsigned flags)
{
	sink.progname = progname;
	sink.level = level;
	sink.flags = flags;
	if (flags & MC_LOG_SYSLOG)
		openlog(progname, LOG_PID, LOG_DAEMON);
}

int mc_log_level_parse(const char *s, enum mc_log_level *out)
{
	for (int l = MC_LOG_ERR; l <= MC_LOG_DEBUG; l++) {
		if (strcasecmp(s, level_names[l]) == 0) {
			*out = (enum mc_log_level)l;
			return 0;
		}
	}
	if (strcasecmp(s, "error") == 0) {
		*out = MC_LOG_ERR;
		return 0;
	}
	if (strcasecmp(s, "warn") == 0) {
		*out = MC_LOG_WARNING;
		return 0;
	}
	return -EINVAL;
}

enum mc_log_level mc_log_threshold(void)
{
	return sink.level;
}

void mc_log_write(enum mc_log_level level, int errnum, const char *fmt, ...)
{
	char msg[1024];
	char stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (errnum != 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s",
			 strerror(errnum < 0 ? -errnum : errnum));

	if (sink.flags & MC_LOG_SYSLOG)
		syslog((int)level, "%s", msg);

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %s[%s]: %s\n", stamp, ts.tv_nsec / 1000000,
		sink.progname, level_names[level], msg);
}

int mc_log_ratelimit_ok(_Atomic unsigned long *last_s)
{
	struct timespec ts;
	unsigned long now, prev;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (unsigned long)ts.tv_sec;
	prev = atomic_load(last_s);
	if (prev == now)
		return 0;
	return atomic_compare_exchange_strong(last_s, &prev, now);
}

const char *mc_log_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (; *s && o + 5 < outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (*s && o + 3 < outlen) {
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	out[o] = '\0';
	return out;
}

const char *mc_errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);

	return n ? n : "unknown error";
}
