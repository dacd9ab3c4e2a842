/* log.h - one logging API with syslog levels for every program */
#ifndef MC_LOG_H
#define MC_LOG_H

#include <stdarg.h>

enum mc_log_level {
	MC_LOG_ERR = 3,
	MC_LOG_WARNING = 4,
	MC_LOG_NOTICE = 5,
	MC_LOG_INFO = 6,
	MC_LOG_DEBUG = 7,
};

enum mc_log_flags {
	MC_LOG_SYSLOG = 1 << 0,	/* also send lines to syslog(3) */
};

/*
 * Set the process-wide threshold, program name and sink.  Called once by
 * main() before any thread starts; the sink is the one piece of process-wide
 * state the programs share, like the stderr it writes to.
 */
void mc_log_init(const char *progname, enum mc_log_level level, unsigned flags);

/* Parse "err", "warning", "notice", "info", "debug"; 0 or -EINVAL. */
int mc_log_level_parse(const char *s, enum mc_log_level *out);

/* Current threshold; lines above it cost one comparison. */
enum mc_log_level mc_log_threshold(void);

/* Write one line (no trailing newline in fmt) at level. */
void mc_log_write(enum mc_log_level level, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define mc_log(level, ...)                                                     \
	do {                                                                   \
		if ((level) <= mc_log_threshold())                             \
			mc_log_write((level), 0, __VA_ARGS__);                 \
	} while (0)

/* Like mc_log, appending ": <strerror(errnum)>"; errnum may be negative. */
#define mc_log_errno(level, errnum, ...)                                       \
	do {                                                                   \
		if ((level) <= mc_log_threshold())                             \
			mc_log_write((level), (errnum), __VA_ARGS__);          \
	} while (0)

/*
 * Rate-limited variant for hot paths: at most one line per second per call
 * site, counting what it dropped.
 */
#define mc_log_ratelimited(level, ...)                                         \
	do {                                                                   \
		static _Atomic unsigned long mc__last_s_;                      \
		if ((level) <= mc_log_threshold() &&                           \
		    mc_log_ratelimit_ok(&mc__last_s_))                         \
			mc_log_write((level), 0, __VA_ARGS__);                 \
	} while (0)

/* True when a second has passed since *last_s (updates it). */
int mc_log_ratelimit_ok(_Atomic unsigned long *last_s);

/*
 * Copy an untrusted string (a file name, bytes from a socket) into out as
 * printable ASCII with \xNN escapes, truncated to fit; returns out.
 */
const char *mc_log_escape(const char *s, char *out, size_t outlen);

/* "ECONNRESET" for -ECONNRESET (or ECONNRESET), for log lines. */
const char *mc_errname(int err);

#endif
