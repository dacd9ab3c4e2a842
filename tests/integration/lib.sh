# lib.sh - the integration tests' one library (sourced, never run)
#
# Every test starts with
#
#	[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
#	MC_TEST_TIMEOUT=90	# optional, seconds
#	. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"
#
# and ends with `mc_done`.  Sourcing this file runs the test twice over:
# an outer process makes the private directory, runs the test itself under
# timeout(1), and afterwards cleans up whatever the test left (a daemon, a
# FUSE mount, the pool tmpfs) even when the test hung or was killed, so a
# test never leaves a mount behind.  The inner process is the test.
#
# What a test gets:
#	$MC_TEST_DIR	private directory (mktemp under $TMPDIR or /tmp)
#	$MNT $STATE	mount point and state directory inside it
#	$MC_LOG		the daemon's output (every start appends to it)
#	$MC_PYTHON	a python3 with numpy; $SFB the SGLang backend replay
#	mc_start [args]	start mooncaked in the foreground, wait for the mount
#	mc_stop		SIGTERM, wait, check the mount went away
#	mc_kill9	SIGKILL (the FUSE mount stays behind, stale)
#	fail MSG, skip MSG, hard_error MSG, note MSG
#	mc_errno OP ARGS	print OK or the errno name of one system call
#	expect_errno ERRNAME OP ARGS
#	mc_expect_log ERE	an [err] line the test provokes on purpose
#	mc_scan_log	fail on sanitizer reports, crashes, unexpected [err] lines
#	mc_status KEY	one value from MNT/.mooncake/status
#	mc_done		scan the log and exit 0
#
# Exit status: 0 pass, 1 fail, 77 skip (missing capability), 99 hard error.
# MC_KEEP=1 keeps the private directory (with the daemon log) afterwards;
# MC_TEST_TRACE=1 traces the test with set -x; MC_TEST_LOG_LEVEL=debug
# passes --log-level to every daemon the test starts.

MC_BUILDDIR=${MC_BUILDDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MC_SRCDIR=${MC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MC_PYTHON=${MC_PYTHON:-/usr/bin/python3}
MC_DAEMON=${MC_DAEMON:-$MC_BUILDDIR/daemon/mooncaked}
MC_TEST_NAME=$(basename "$0" .sh)
MC_TEST_TIMEOUT=${MC_TEST_TIMEOUT:-120}
SFB=$MC_SRCDIR/tests/integration/sglang_file_backend.py
export MC_BUILDDIR MC_SRCDIR MC_PYTHON MC_DAEMON
# The daemon reads these; a test sets the ones it means.
unset MOONCAKE_MASTER MOONCAKE_LOCAL_HOSTNAME MOONCAKE_TE_META_DATA_SERVER \
	MOONCAKE_PROTOCOL MOONCAKE_DEVICE MOONCAKE_GLOBAL_SEGMENT_SIZE \
	MOONCAKE_LOCAL_BUFFER_SIZE MOONCAKE_CONFIG_PATH MOONCAKE_STATE_DIR \
	MC_STORE_USE_HUGEPAGE MC_STORE_HUGEPAGE_SIZE MC_LOG_LEVEL

note() { printf '%s: %s\n' "$MC_TEST_NAME" "$*" >&2; }
fail() { printf '%s: FAIL: %s\n' "$MC_TEST_NAME" "$*" >&2; exit 1; }
skip() { printf '%s: SKIP: %s\n' "$MC_TEST_NAME" "$*" >&2; exit 77; }
hard_error() { printf '%s: ERROR: %s\n' "$MC_TEST_NAME" "$*" >&2; exit 99; }

# --- mounts -----------------------------------------------------------------

# Mount IDs of every mount at path $1 (fstype $2, or any), one per line.
# mountinfo escapes blanks in paths; ours have none.
mc__mount_ids() {
	awk -v mp="$1" -v ty="${2:-}" '
		{ for (i = 7; $i != "-"; i++) ; }
		$5 == mp && (ty == "" || $(i + 1) == ty) { print $1 }
	' /proc/self/mountinfo
}

# The file system type of the topmost mount at path $1 (empty if none).
mc__top_fstype() {
	awk -v mp="$1" '
		{ for (i = 7; $i != "-"; i++) ; }
		$5 == mp { ty = $(i + 1) }
		END { print ty }
	' /proc/self/mountinfo
}

mc_is_mounted() { [ -n "$(mc__mount_ids "$1" "${2:-}")" ]; }

# Lazy-unmount every mount at or below $1, deepest first.
mc__umount_below() {
	local mp
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r | while read -r mp; do
		umount -l "$mp" 2>/dev/null ||
			fusermount3 -u -z "$mp" 2>/dev/null || true
	done
}

# --- the outer process: private directory, timeout, cleanup ---------------

if [ -z "${MC_TEST_INNER:-}" ]; then
	MC_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mc-$MC_TEST_NAME.XXXXXX") ||
		hard_error "cannot make a temporary directory"
	export MC_TEST_DIR
	# interrupted, the outer still cleans up (timeout passes the signal on)
	interrupted=
	trap 'interrupted=1' INT TERM HUP
	MC_TEST_INNER=1 timeout -k 10 "$MC_TEST_TIMEOUT" bash "$0" "$@"
	rc=$?
	[ -z "$interrupted" ] || rc=1
	case $rc in
	124 | 137)
		printf '%s: FAIL: timed out after %s s (hang?)\n' \
			"$MC_TEST_NAME" "$MC_TEST_TIMEOUT" >&2
		[ -f "$MC_TEST_DIR/daemon.log" ] &&
			tail -n 30 "$MC_TEST_DIR/daemon.log" >&2
		rc=1
		;;
	esac
	# Whatever the test left: daemons it started (pids it wrote down,
	# checked against the mount point so a reused pid is never hit),
	# then every mount under the private directory.
	for f in "$MC_TEST_DIR"/daemon.pid.*; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" |
			grep -qF "$MC_TEST_DIR/"; then
			kill -9 "$pid" 2>/dev/null
		fi
	done
	mc__umount_below "$MC_TEST_DIR"
	if [ -n "$(awk -v d="$MC_TEST_DIR" '$5 == d || index($5, d "/") == 1' \
		/proc/self/mountinfo)" ]; then
		printf '%s: ERROR: mounts left under %s\n' "$MC_TEST_NAME" \
			"$MC_TEST_DIR" >&2
		[ $rc -eq 0 ] && rc=99
	elif [ -n "${MC_KEEP:-}" ]; then
		printf '%s: kept %s\n' "$MC_TEST_NAME" "$MC_TEST_DIR" >&2
	else
		rm -rf --one-file-system "$MC_TEST_DIR"
	fi
	exit $rc
fi

# --- the inner process: the test ------------------------------------------

if [ -n "${MC_TEST_TRACE:-}" ]; then	# MC_TEST_TRACE=1 make check ...
	PS4='+ ${EPOCHREALTIME} '
	set -x
fi

MNT=$MC_TEST_DIR/mnt
STATE=$MC_TEST_DIR/state
MC_LOG=$MC_TEST_DIR/daemon.log
MC_PID=
MC_STARTS=0
MC_EXPECTED_ERRS=()
mkdir -p "$MNT" "$STATE" || hard_error "cannot make $MNT and $STATE"
: >"$MC_LOG"

mc__cleanup() {
	local rc=$?
	set +e
	if [ -n "$MC_PID" ] && ! kill -0 "$MC_PID" 2>/dev/null; then
		wait "$MC_PID"
		note "mooncaked died during the test (exit status $?)"
		MC_PID=
	fi
	if [ -n "$MC_PID" ] && kill -0 "$MC_PID" 2>/dev/null; then
		kill -TERM "$MC_PID" 2>/dev/null
		for _ in $(seq 50); do
			kill -0 "$MC_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$MC_PID" 2>/dev/null
	fi
	# helpers a test left running in the background
	local j
	for j in $(jobs -p); do
		kill -9 "$j" 2>/dev/null
		{ wait "$j"; } 2>/dev/null
	done
	mc__umount_below "$MNT"
	mc__umount_below "$STATE"
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -s "$MC_LOG" ]; then
		note "last lines of the daemon log ($MC_LOG):"
		tail -n 25 "$MC_LOG" >&2
	fi
	exit $rc
}
trap mc__cleanup EXIT
trap 'exit 1' TERM INT HUP

# --- capabilities -----------------------------------------------------------

mc_require_daemon() {
	[ -x "$MC_DAEMON" ] ||
		hard_error "no daemon at $MC_DAEMON (build it first: make)"
}

mc_require_root_fuse() {
	mc_require_daemon
	[ "$(id -u)" -eq 0 ] || skip "needs root (mounts FUSE and a tmpfs)"
	[ -c /dev/fuse ] || skip "no /dev/fuse"
	grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null ||
		skip "the fuse kernel module is not available"
	grep -qw fuse /proc/filesystems || skip "the kernel has no fuse"
}

# Every errno check runs a small python.
mc_require_python() {
	"$MC_PYTHON" -c 'import errno, json, os' 2>/dev/null ||
		skip "no python3 at $MC_PYTHON (set MC_PYTHON)"
}

# numpy is needed by the SGLang replay; fall back to the system python when
# the configured one lacks it (pyenv shims often do).
mc_require_numpy() {
	"$MC_PYTHON" -c 'import numpy' 2>/dev/null && return 0
	if [ "$MC_PYTHON" != /usr/bin/python3 ] &&
		/usr/bin/python3 -c 'import numpy' 2>/dev/null; then
		note "$MC_PYTHON has no numpy, using /usr/bin/python3"
		MC_PYTHON=/usr/bin/python3
		return 0
	fi
	skip "$MC_PYTHON has no numpy (apt-get install python3-numpy)"
}

sfb() { "$MC_PYTHON" "$SFB" "$@"; }

# --- the daemon -------------------------------------------------------------

# mc_start [daemon args...]: start mooncaked on $MNT with $STATE and wait
# until it serves: the topmost mount at $MNT is fuse.mooncake and answers
# statfs (a stale mount from a killed daemon answers ENOTCONN; its mount
# ID may be reused by the new mount, so IDs prove nothing).  Fails with the
# log tail if the daemon dies or does not serve within 10 s.
mc_start() {
	MC_STARTS=$((MC_STARTS + 1))
	echo "=== $MC_TEST_NAME: start $MC_STARTS: $*" >>"$MC_LOG"
	"$MC_DAEMON" --foreground --state-dir "$STATE" \
		${MC_TEST_LOG_LEVEL:+--log-level "$MC_TEST_LOG_LEVEL"} \
		"$@" "$MNT" >>"$MC_LOG" 2>&1 </dev/null &
	MC_PID=$!
	echo "$MC_PID" >"$MC_TEST_DIR/daemon.pid.$MC_STARTS"
	for _ in $(seq 100); do
		if ! kill -0 "$MC_PID" 2>/dev/null; then
			wait "$MC_PID"
			note "daemon exited with status $? before mounting:"
			tail -n 20 "$MC_LOG" >&2
			MC_PID=
			fail "mooncaked did not start"
		fi
		if [ "$(mc__top_fstype "$MNT")" = fuse.mooncake ] &&
			timeout 5 stat -f "$MNT" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	note "mooncaked is not serving $MNT after 10 s:"
	tail -n 20 "$MC_LOG" >&2
	fail "mooncaked did not mount"
}

# mc_stop: SIGTERM; the daemon must exit 0 within 10 s and take its mount
# with it.
mc_stop() {
	local rc
	[ -n "$MC_PID" ] || hard_error "mc_stop: no daemon running"
	kill -TERM "$MC_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$MC_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$MC_PID" 2>/dev/null; then
		kill -9 "$MC_PID"
		wait "$MC_PID" 2>/dev/null
		MC_PID=
		fail "mooncaked did not exit within 10 s of SIGTERM"
	fi
	wait "$MC_PID"
	rc=$?
	MC_PID=
	[ $rc -eq 0 ] || fail "mooncaked exited with status $rc on SIGTERM"
	if mc_is_mounted "$MNT" fuse.mooncake; then
		umount -l "$MNT"
		fail "mooncaked exited on SIGTERM but left its mount at $MNT"
	fi
}

# mc_kill9: SIGKILL, as a crash; the FUSE mount stays behind, stale.
mc_kill9() {
	[ -n "$MC_PID" ] || hard_error "mc_kill9: no daemon running"
	kill -9 "$MC_PID"
	wait "$MC_PID" 2>/dev/null
	MC_PID=
}

mc_daemon_alive() { [ -n "$MC_PID" ] && kill -0 "$MC_PID" 2>/dev/null; }

# mc_status KEY: the value of "KEY: value" in MNT/.mooncake/status.
mc_status() {
	sed -n "s/^$1:[[:space:]]*//p" "$MNT/.mooncake/status" | head -n 1
}

# --- errno checks -----------------------------------------------------------

# One system call from a fresh process; prints OK or the errno name.
MC__ERRNO_PY='
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
W = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
def write_file(path, size, flags):
    fd = os.open(path, flags, 0o644)
    try:
        chunk = b"\x5a" * (1 << 20)
        left = int(size)
        while left > 0:
            left -= os.write(fd, chunk[:min(left, len(chunk))])
    finally:
        os.close(fd)
def write_without_trunc(path, flags):
    fd = os.open(path, flags)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
ops = {
    "stat": lambda: os.stat(a[0]),
    "lstat": lambda: os.lstat(a[0]),
    "open_r": lambda: os.close(os.open(a[0], os.O_RDONLY)),
    "open_w": lambda: os.close(os.open(a[0], W, 0o644)),
    "open_wronly": lambda: os.close(os.open(a[0], os.O_WRONLY)),
    "open_rdwr": lambda: os.close(os.open(a[0], os.O_RDWR)),
    "open_append": lambda: os.close(os.open(a[0], os.O_WRONLY | os.O_APPEND)),
    "write_rdwr": lambda: write_without_trunc(a[0], os.O_RDWR),
    "write_wronly": lambda: write_without_trunc(a[0], os.O_WRONLY),
    "write_file": lambda: write_file(a[0], a[1], W),
    "mkdir": lambda: os.mkdir(a[0]),
    "rmdir": lambda: os.rmdir(a[0]),
    "unlink": lambda: os.unlink(a[0]),
    "rename": lambda: os.rename(a[0], a[1]),
    "link": lambda: os.link(a[0], a[1]),
    "symlink": lambda: os.symlink(a[0], a[1]),
    "mknod": lambda: os.mknod(a[0], 0o644 | 0o010000),
    "truncate": lambda: os.truncate(a[0], int(a[1])),
    "setxattr": lambda: os.setxattr(a[0], a[1], a[2].encode()),
    "getxattr": lambda: os.getxattr(a[0], a[1]),
    "listdir": lambda: os.listdir(a[0]),
}
try:
    ops[op]()
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
'
mc_errno() { "$MC_PYTHON" -c "$MC__ERRNO_PY" "$@"; }

# expect_errno ERRNAME OP ARGS: the call must fail with ERRNAME (or succeed
# when ERRNAME is OK).
expect_errno() {
	local want=$1 got
	shift
	got=$(mc_errno "$@") || hard_error "mc_errno $* did not run"
	[ "$got" = "$want" ] || fail "$* gave $got, expected $want"
}

# --- the log ----------------------------------------------------------------

# mc_expect_log ERE: an [err] line matching ERE is provoked on purpose.
mc_expect_log() { MC_EXPECTED_ERRS+=("$1"); }

mc_scan_log() {
	local bad errs re
	bad=$(grep -nE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|Segmentation|SIGSEGV|Assertion .* failed|double free|stack smashing' \
		"$MC_LOG")
	[ -z "$bad" ] || fail "the daemon log has crash or sanitizer reports:
$bad"
	errs=$(grep -n '\[err\]' "$MC_LOG")
	for re in "${MC_EXPECTED_ERRS[@]}"; do
		errs=$(printf '%s\n' "$errs" | grep -vE -- "$re")
	done
	errs=$(printf '%s\n' "$errs" | sed '/^$/d')
	[ -z "$errs" ] || fail "unexpected errors in the daemon log:
$errs"
}

mc_done() {
	if [ -n "$MC_PID" ] && ! mc_daemon_alive; then
		wait "$MC_PID"
		local st=$?
		MC_PID=
		fail "mooncaked died during the test (exit status $st)"
	fi
	if mc_daemon_alive; then mc_stop; fi
	mc_scan_log
	note "PASS"
	exit 0
}

# --- small helpers ----------------------------------------------------------

# mc_wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
mc_wait_for() {
	local n=$(($1 * 10))
	shift
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep 0.1
	done
	return 1
}

# mc_random_file PATH BYTES: incompressible test data outside the mount.
mc_random_file() {
	head -c "$2" /dev/urandom >"$1" || hard_error "cannot write $1"
}
