#!/usr/bin/env bash
# scale-1m.sh - a million pages in one flat directory, as SGLang's file
# backend makes them: how fast they are created, how fast a hit is found,
# how long a listing takes, and what the daemon holds for them.
#
# usage: tests/bench/scale-1m.sh [-n N] [--page-size BYTES] [--sample S]
#            [--segment-size SIZE] [--passthrough auto|on|off]
#
# Run as root from the build directory (or set MC_BUILDDIR).  It starts
# `daemon/mooncaked --foreground` on a private mount point, then
#
#	creates N pages (default 1000000) of --page-size bytes (default 0)
#	    in one directory: open(O_CREAT|O_WRONLY) + close each
#	stats S of them drawn at random (default 10000): all must exist
#	times `ls -f DIR | wc -l`: the listing must hold exactly the N pages
#	reads the daemon's VmRSS and VmHWM and the size of its sqlite db
#
# prints the figures as a table and removes everything it made (daemon,
# FUSE mount, the pool tmpfs at STATE/pool, the directory), Ctrl-C included.
# Not part of make check.
#
# Environment: MC_BUILDDIR (default: . when it holds daemon/mooncaked, else
# this script's ../..), MC_DAEMON, MC_BENCH (the two programs).
# Exit status: 0 success, 1 a page missing or a wrong listing, 2 bad usage,
# 77 not root or no FUSE, 99 the daemon or the benchmark failed.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
set -u

ME=scale-1m
N=1000000
PAGE_SIZE=0
SAMPLE=10000
SEGMENT=4GiB
PASSTHROUGH=

note() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { printf '%s: %s\n' "$ME" "$*" >&2; exit 99; }
usage_error() { printf '%s: %s (see --help)\n' "$ME" "$*" >&2; exit 2; }
# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

while [ $# -gt 0 ]; do
	case $1 in
	-n | --pages | --page-size | --sample | --segment-size | --passthrough)
		[ $# -ge 2 ] || usage_error "$1 needs a value"
		case $1 in
		-n | --pages) N=$2 ;;
		--page-size) PAGE_SIZE=$2 ;;
		--sample) SAMPLE=$2 ;;
		--segment-size) SEGMENT=$2 ;;
		--passthrough) PASSTHROUGH=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		# the header comment, up to the first line of code
		sed -n '2,/^\[ -n /{/^#/s/^# \{0,1\}//p}' "$0"
		exit 0
		;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || usage_error "bad -n '$N': give a number >= 1"
[[ $SAMPLE =~ ^[0-9]+$ ]] || usage_error "bad --sample '$SAMPLE'"
[[ $PAGE_SIZE =~ ^[0-9]+$ ]] || usage_error "bad --page-size '$PAGE_SIZE': give bytes"
case $PASSTHROUGH in
"" | auto | on | off) ;;
*) usage_error "bad --passthrough '$PASSTHROUGH': use auto, on or off" ;;
esac

if [ -z "${MC_BUILDDIR:-}" ]; then
	MC_BUILDDIR=.
	[ -x ./daemon/mooncaked ] || MC_BUILDDIR=$(dirname "$0")/../..
fi
MC_BUILDDIR=$(cd "$MC_BUILDDIR" && pwd) || usage_error "no build directory '$MC_BUILDDIR'"
MC_DAEMON=${MC_DAEMON:-$MC_BUILDDIR/daemon/mooncaked}
MC_BENCH=${MC_BENCH:-$MC_BUILDDIR/tests/bench/mc-bench-pages}
[ -x "$MC_DAEMON" ] || die "no daemon at $MC_DAEMON: build it (make) or set MC_BUILDDIR"
[ -x "$MC_BENCH" ] || die "no benchmark at $MC_BENCH: build it (make tests/bench/mc-bench-pages)"
if [ "$(id -u)" -ne 0 ]; then
	note "needs root (mounts FUSE and a tmpfs)"
	exit 77
fi
[ -c /dev/fuse ] || { note "no /dev/fuse"; exit 77; }

# --- the private directory and its clean-up -----------------------------------

WORK=
DAEMON_PID=
BENCH_PID=
STOP_S=

# stop_daemon: SIGTERM and wait (a minute: it may have a million pages to
# put away); sets STOP_S.  Returns 1 when it had to be killed or failed.
# shellcheck disable=SC2317 # called from the trap
stop_daemon() {
	local i rc=0 t0
	[ -n "$DAEMON_PID" ] || return 0
	t0=$(date +%s.%N)
	kill -TERM "$DAEMON_PID" 2>/dev/null
	for i in $(seq 600); do
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		note "mooncaked did not exit within 60 s of SIGTERM: killing it"
		kill -9 "$DAEMON_PID" 2>/dev/null
		rc=1
	fi
	wait "$DAEMON_PID" 2>/dev/null
	i=$?
	STOP_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	if [ "$i" -ne 0 ] && [ $rc -eq 0 ]; then
		note "mooncaked exited with status $i on SIGTERM"
		rc=1
	fi
	DAEMON_PID=
	return $rc
}

# shellcheck disable=SC2317 # the trap
cleanup() {
	local rc=$? mp
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "$BENCH_PID" ]; then
		kill -TERM "$BENCH_PID" 2>/dev/null
		wait "$BENCH_PID" 2>/dev/null
	fi
	stop_daemon || { [ "$rc" -eq 0 ] && rc=99; }
	if [ -n "$WORK" ]; then
		for mp in $(mounts_below "$WORK"); do
			umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
				fusermount3 -u -z "$mp" 2>/dev/null
		done
		if [ -n "$(mounts_below "$WORK")" ]; then
			note "could not unmount: $(mounts_below "$WORK" | tr '\n' ' ')"
			[ "$rc" -eq 0 ] && rc=99
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT
trap 'exit 143' TERM HUP

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mc-scale.XXXXXX") || die "cannot make a private directory"
MNT=$WORK/mnt
STATE=$WORK/state
LOG=$WORK/daemon.log
mkdir -p "$MNT" "$STATE" || die "cannot make directories under $WORK"

# --- the daemon ---------------------------------------------------------------

daemon_args=(--foreground --state-dir "$STATE" --global-segment-size "$SEGMENT")
[ -n "$PASSTHROUGH" ] && daemon_args+=(--passthrough "$PASSTHROUGH")
"$MC_DAEMON" "${daemon_args[@]}" "$MNT" </dev/null >"$LOG" 2>&1 &
DAEMON_PID=$!
for i in $(seq 300); do
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		wait "$DAEMON_PID"
		rc=$?
		DAEMON_PID=
		tail -n 20 "$LOG" >&2
		die "mooncaked exited with status $rc before mounting"
	fi
	is_mounted "$MNT" fuse.mooncake && break
	sleep 0.1
done
is_mounted "$MNT" fuse.mooncake || { tail -n 20 "$LOG" >&2; die "no fuse.mooncake mount at $MNT after 30 s"; }
DIR=$MNT/flat
mkdir "$DIR" || die "cannot mkdir $DIR on the mount"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
field() { printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
proc_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$DAEMON_PID/status"; }
daemon_alive() {
	kill -0 "$DAEMON_PID" 2>/dev/null && return 0
	tail -n 20 "$LOG" >&2
	die "mooncaked is no longer running"
}

# bench PHASE OUT [args]: one mc-bench-pages phase on DIR, its JSON into
# OUT.  It runs in the background and is waited for, so that a signal to
# this script is handled at once (the trap stops it).
bench() {
	local phase=$1 out=$2 rc
	shift 2
	"$MC_BENCH" --dir "$DIR" --pages "$N" --page-size "$PAGE_SIZE" --phase "$phase" \
		--keep --json "$@" >"$out" &
	BENCH_PID=$!
	wait "$BENCH_PID"
	rc=$?
	BENCH_PID=
	[ $rc -eq 0 ] && return 0
	daemon_alive
	[ "$phase" = stat-hit ] && exit 1
	die "mc-bench-pages --phase $phase failed (exit $rc)"
}

RSS0=$(proc_kb VmRSS)

note "creating $N pages of $PAGE_SIZE bytes in $DIR"
t0=$(now)
bench create-empty "$WORK/create.json"
create=$(cat "$WORK/create.json")
CREATE_S=$(elapsed "$t0" "$(now)")
daemon_alive
RSS1=$(proc_kb VmRSS)

note "stat of $SAMPLE pages drawn at random"
bench stat-hit "$WORK/hit.json" --sample "$SAMPLE"
hit=$(cat "$WORK/hit.json")

note "ls -f | wc -l"
t0=$(now)
# `ls -f DIR | wc -l` in one pass that also counts . and .. among the lines
# shellcheck disable=SC2012 # ls is what is timed
read -r LS_LINES LS_DOTS < <(ls -f "$DIR" | awk '$0 == "." || $0 == ".." { d++ } END { print NR, d + 0 }')
LS_S=$(elapsed "$t0" "$(now)")
daemon_alive
RSS2=$(proc_kb VmRSS)
HWM=$(proc_kb VmHWM)
DB_BYTES=$(du -cb "$STATE"/namespace.db* 2>/dev/null | tail -n 1 | cut -f 1)
POOL_INODES=$(df --output=iused "$STATE/pool" 2>/dev/null | tail -n 1 | tr -d ' ')
STATUS_PAGES=$(sed -n 's/^pages:[[:space:]]*//p' "$MNT/.mooncake/status" 2>/dev/null)
ERRS=$(grep -c '\[err\]' "$LOG")

stop_daemon || die "mooncaked did not stop cleanly (log: tail above)"

mb() { awk -v k="$1" 'BEGIN { if (k == "") print "-"; else printf "%.1f MiB", k / 1024 }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f /s", (s > 0 ? n / s : 0) }'; }

echo
printf 'scale: %d pages of %d bytes in one directory (mooncakefs, passthrough %s)\n\n' \
	"$N" "$PAGE_SIZE" "${PASSTHROUGH:-default}"
{
	printf 'create: wall time\t%s s\n' "$CREATE_S"
	printf 'create: rate, wall\t%s\n' "$(rate "$N" "$CREATE_S")"
	printf 'create: rate, timed calls\t%s /s\n' "$(field "$create" create_ops)"
	printf 'create: p50 / p99\t%s / %s us\n' "$(field "$create" create_p50_us)" \
		"$(field "$create" create_p99_us)"
	printf 'stat hit (%s random): p50 / p99\t%s / %s us\n' "$(field "$hit" stat_hit_n)" \
		"$(field "$hit" stat_hit_p50_us)" "$(field "$hit" stat_hit_p99_us)"
	printf 'ls -f | wc -l: time\t%s s\n' "$LS_S"
	printf 'ls -f | wc -l: lines\t%s (%s of them . and ..)\n' "$LS_LINES" "$LS_DOTS"
	printf 'daemon VmRSS: at start\t%s\n' "$(mb "$RSS0")"
	printf 'daemon VmRSS: after creates\t%s\n' "$(mb "$RSS1")"
	printf 'daemon VmRSS: after stat and ls\t%s\n' "$(mb "$RSS2")"
	printf 'daemon VmHWM (peak)\t%s\n' "$(mb "$HWM")"
	printf 'sqlite db (namespace.db*)\t%s\n' "$(awk -v b="${DB_BYTES:-0}" 'BEGIN { printf "%.1f MiB", b / 1048576 }')"
	printf 'pool tmpfs inodes used\t%s\n' "${POOL_INODES:--}"
	printf '.mooncake/status pages\t%s\n' "${STATUS_PAGES:--}"
	printf 'daemon stop (SIGTERM to exit)\t%s s\n' "$STOP_S"
	printf 'daemon [err] log lines\t%s\n' "$ERRS"
} | awk -F'\t' '{ printf "  %-36s %s\n", $1, $2 }'

rc=0
if [ $((LS_LINES - LS_DOTS)) -ne "$N" ]; then
	note "MISMATCH: ls -f listed $((LS_LINES - LS_DOTS)) pages, $N were created"
	rc=1
fi
[ "$ERRS" -eq 0 ] || { note "the daemon logged errors:"; grep '\[err\]' "$LOG" | head -n 10 >&2; }
exit $rc
