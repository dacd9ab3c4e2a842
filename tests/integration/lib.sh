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
#			(OP read: open, fstat, one read of st_size; SHORT when short)
#	expect_errno ERRNAME OP ARGS
#	mc_expect_log ERE	an [err] line the test provokes on purpose
#	mc_scan_log	fail on sanitizer reports, crashes, unexpected [err] lines
#	mc_status KEY	one value from MNT/.mooncake/status
#	mc_done		scan the log and exit 0
#
# Several hosts (the cluster tests, t_cluster_*.sh): each host is a network
# namespace of its own, mc<id>-<host> (<id> the test's pid), joined to the
# others by a veth pair to a bridge in a hub namespace (mc<id>-hub), on a
# private 10.<n>.<m>.0/24 of its own (made from the pid as well, so tests
# run under make -j never share a name or a subnet).  The master lives in
# mc<id>-m.  Daemons run under `nsenter --net` only (and a UTS namespace,
# for a host name of their own), never `ip netns exec`: the mount namespace
# stays the test's, so every host's mount is a directory the test reads and
# writes directly.  Every host and the master listen on the default ports
# (50051, 50052): each namespace has its own.  Everything the test made
# (processes, mounts, pool tmpfs, namespaces) goes at the end, hang or not.
# Host H keeps its mount point, state directory (pool tmpfs at state/pool,
# pages in state/pool/pages/<page id>) and daemon log in $MC_TEST_DIR/host-H;
# the master its store and log in $MC_MASTER_DIR.
#	mc_netns_require	skip unless root, ip, nsenter, netns, veth, bridge,
#				FUSE; hard error without the two programs
#	mc_net_up N		hosts a, b, c... (and m, the master): $MC_HOSTS
#	mc_host_ip H, mc_master_ip, $MC_MASTER_ADDR (ip:port)
#	mc_in H CMD...		run CMD in host H's network namespace
#	mc_master_start [args]	start mooncake_master in mc<id>-m, wait (10 s)
#				until it serves; unless args say otherwise
#				--db $MC_MASTER_DB, --client_ttl $MC_CLIENT_TTL
#				(2), --port 50051, --rpc_address its address
#	mc_master_stop		SIGTERM; it must exit 0 within 10 s
#	mc_master_kill9, mc_master_alive
#	mc_host_start [-n] H [args]	start mooncaked on host H in the
#				foreground, wait (10 s) for its mount and, unless
#				-n, for one more registration with the master;
#				unless args say otherwise --master $MC_MASTER_ADDR,
#				--local-hostname its address, --global-segment-size
#				$MC_HOST_SEGMENT (256MiB)
#	mc_host_stop H		SIGTERM; exit 0 within 10 s, its mount gone
#	mc_host_kill9 H, mc_host_alive H
#	mc_host_mnt H, mc_host_state H, mc_host_log H, mc_host_status H KEY
#	mc_host_registrations H	registrations so far (its log's notice lines:
#				keep MC_TEST_LOG_LEVEL at notice or above)
#	mc_host_wait_registered H SECONDS [AFTER]	until more than AFTER
#	mc_host_rx_bytes H	bytes host H has received on its link
#	mc_link_down H / mc_link_up H	pull / replug H's cable (its port on
#				the hub's bridge: packets vanish, nobody is told;
#				H may be m, the master)
#	mc_now_ms		a wall clock in ms, for bounds
#	mc_errno_timed S OP ARGS	mc_errno under a limit of S seconds:
#				prints "RESULT MS" (RESULT HANG when it did not
#				return)
#	mc_scan_log and mc_done cover every host's log and the master's;
#	mc_done stops every live host and then the master, each must exit 0.
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
	MOONCAKE_DATA_PORT MC_STORE_USE_HUGEPAGE MC_STORE_HUGEPAGE_SIZE \
	MC_LOG_LEVEL

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

# mc_abort_mount PATH: fail every request of the FUSE connection of the
# topmost mount at PATH, so that callers a deadlocked daemon keeps in the
# kernel return (killing the daemon does not free them: a thread of it
# waits in the kernel too).  A hard error when it cannot: the cleanup
# would hang on those callers.
mc_abort_mount() {
	local dev
	mountpoint -q /sys/fs/fuse/connections ||
		mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
	dev=$(awk -v mp="$1" '$5 == mp { split($3, d, ":"); n = d[2] }
		END { print n }' /proc/self/mountinfo)
	[ -n "$dev" ] ||
		hard_error "mc_abort_mount: no mount at '$1' in /proc/self/mountinfo (not mounted, or a path mountinfo escapes): cannot abort its FUSE connection"
	echo 1 2>/dev/null >"/sys/fs/fuse/connections/$dev/abort" ||
		hard_error "mc_abort_mount: cannot write /sys/fs/fuse/connections/$dev/abort for '$1' (fusectl mounted? a FUSE mount?)"
}

# Lazy-unmount every mount at or below $1, deepest first.
mc__umount_below() {
	local mp
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r | while read -r mp; do
		umount -l "$mp" 2>/dev/null ||
			fusermount3 -u -z "$mp" 2>/dev/null || true
	done
}

# mc__netns_sweep LIST: kill every process in the network namespaces named
# in the file LIST, then delete the namespaces (their veths go with them)
mc__netns_sweep() {
	local ns pid
	while read -r ns; do
		if [ -z "$ns" ] || [ ! -e "/run/netns/$ns" ]; then
			continue
		fi
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -9 "$pid" 2>/dev/null
		done
	done <"$1"
	while read -r ns; do
		if [ -z "$ns" ] || [ ! -e "/run/netns/$ns" ]; then
			continue
		fi
		ip netns del "$ns" 2>/dev/null
	done <"$1"
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
		for f in "$MC_TEST_DIR"/host-*/daemon.log \
			"$MC_TEST_DIR"/master/master.log; do
			[ -s "$f" ] || continue
			printf '%s: last lines of %s:\n' "$MC_TEST_NAME" "$f" >&2
			tail -n 12 "$f" >&2
		done
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
	# the network namespaces of a cluster test (their veths go with them)
	if [ -f "$MC_TEST_DIR/netns" ]; then
		mc__netns_sweep "$MC_TEST_DIR/netns"
		while read -r ns; do
			if [ -z "$ns" ] || [ ! -e "/run/netns/$ns" ]; then
				continue
			fi
			printf '%s: ERROR: network namespace %s left behind\n' \
				"$MC_TEST_NAME" "$ns" >&2
			[ $rc -eq 0 ] && rc=99
		done <"$MC_TEST_DIR/netns"
	fi
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
MC_REMOVE_ON_EXIT=()	# paths outside MC_TEST_DIR to remove on any exit
MC_NET_ID=	# set by mc_net_up: the cluster's namespaces exist
MC_HOSTS=()
MC_MASTER_PID=
MC_MASTER_DIR=$MC_TEST_DIR/master
MC_MASTER_LOG=$MC_MASTER_DIR/master.log
MC_MASTER_DB=$MC_MASTER_DIR/master.db
declare -A MC_HOST_PID=()
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
	# a cluster test's hosts, master and namespaces
	declare -F mc__cluster_cleanup >/dev/null && mc__cluster_cleanup
	# what the test made outside MC_TEST_DIR (a pool on /dev/shm)
	local p
	for p in "${MC_REMOVE_ON_EXIT[@]}"; do
		rm -rf --one-file-system -- "$p"
	done
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
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] &&
		declare -F mc__cluster_log_tails >/dev/null; then
		mc__cluster_log_tails
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

# mc_why_no_root_fuse: prints why this run cannot mount (status 0), or
# nothing with status 1 when it can; loads the fuse module if it must.
mc_why_no_root_fuse() {
	[ "$(id -u)" -eq 0 ] || { echo "needs root (mounts FUSE and a tmpfs)"; return 0; }
	[ -c /dev/fuse ] || { echo "no /dev/fuse"; return 0; }
	grep -qw fuse /proc/filesystems || modprobe fuse 2>/dev/null ||
		{ echo "the fuse kernel module is not available"; return 0; }
	grep -qw fuse /proc/filesystems || { echo "the kernel has no fuse"; return 0; }
	return 1
}

mc_require_root_fuse() {
	local why

	mc_require_daemon
	why=$(mc_why_no_root_fuse) && skip "$why"
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

# mc__serving MNT: the topmost mount at MNT is fuse.mooncake and answers
# statfs (a stale mount from a killed daemon answers ENOTCONN).
mc__serving() {
	[ "$(mc__top_fstype "$1")" = fuse.mooncake ] &&
		timeout 5 stat -f "$1" >/dev/null 2>&1
}

# mc__await_start PID LOG WHAT CMD...: run CMD every 0.1 s for 10 s while
# PID lives.  0 once CMD succeeds; 2 when PID exited (its status and LOG's
# tail told); 1 when CMD never succeeded (LOG's tail told).
mc__await_start() {
	local pid=$1 log=$2 what=$3
	shift 3
	for _ in $(seq 100); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			note "$what exited with status $? at start:"
			tail -n 20 "$log" >&2
			return 2
		fi
		"$@" && return 0
		sleep 0.1
	done
	tail -n 20 "$log" >&2
	return 1
}

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
	mc__await_start "$MC_PID" "$MC_LOG" mooncaked mc__serving "$MNT"
	case $? in
	0) return 0 ;;
	2) MC_PID=
	   fail "mooncaked did not start" ;;
	esac
	note "mooncaked is not serving $MNT after 10 s"
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
class Short(Exception):
    pass
def read_whole(path):
    # as SGLang gets a page: open, fstat, one read() of st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if len(os.read(fd, size)) != size:
            raise Short()
    finally:
        os.close(fd)
def write_without_trunc(path, flags):
    fd = os.open(path, flags)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
def opath_read(path):
    o = os.open(path, os.O_PATH)
    try:
        os.close(os.open("/proc/self/fd/%d" % o, os.O_RDONLY))
    finally:
        os.close(o)
ops = {
    "stat": lambda: os.stat(a[0]),
    "opath_read": lambda: opath_read(a[0]),
    "lstat": lambda: os.lstat(a[0]),
    "open_r": lambda: os.close(os.open(a[0], os.O_RDONLY)),
    "read": lambda: read_whole(a[0]),
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
except Short:
    print("SHORT")
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

# mc__scan_file LOG WHAT: crash and sanitizer reports, unexpected [err] lines
mc__scan_file() {
	local bad errs re
	bad=$(grep -nE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:|Segmentation|SIGSEGV|Assertion .* failed|double free|stack smashing' \
		"$1")
	[ -z "$bad" ] || fail "$2 has crash or sanitizer reports:
$bad"
	errs=$(grep -n '\[err\]' "$1")
	for re in "${MC_EXPECTED_ERRS[@]}"; do
		errs=$(printf '%s\n' "$errs" | grep -vE -- "$re")
	done
	errs=$(printf '%s\n' "$errs" | sed '/^$/d')
	[ -z "$errs" ] || fail "unexpected errors in $2:
$errs"
}

mc_scan_log() {
	local h
	mc__scan_file "$MC_LOG" "the daemon log"
	for h in "${MC_HOSTS[@]}"; do
		[ -f "$(mc_host_log "$h")" ] &&
			mc__scan_file "$(mc_host_log "$h")" "host $h's daemon log"
	done
	if [ -f "$MC_MASTER_LOG" ]; then
		mc__scan_file "$MC_MASTER_LOG" "the master's log"
	fi
}

mc_done() {
	if [ -n "$MC_PID" ] && ! mc_daemon_alive; then
		wait "$MC_PID"
		local st=$?
		MC_PID=
		fail "mooncaked died during the test (exit status $st)"
	fi
	if mc_daemon_alive; then mc_stop; fi
	mc__cluster_done
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

# --- several hosts: network namespaces, a master, a daemon per host ---------

MC_MASTER=${MC_MASTER:-$MC_BUILDDIR/daemon/mooncake_master}
MC_CLIENT_TTL=${MC_CLIENT_TTL:-2}		# the master's default here, seconds
MC_HOST_SEGMENT=${MC_HOST_SEGMENT:-256MiB}	# each host's pool by default
MC_MASTER_PORT=50051
MC_MASTER_ADDR=
MC_MASTER_STARTS=0
MC__SUBNET=
declare -A MC__HOST_IP=() MC__HOST_STARTS=()

# mc__ns H: the name of host H's network namespace (hub: the bridge's)
mc__ns() { printf 'mc%s-%s' "$MC_NET_ID" "$1"; }

mc_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# mc_errno_timed SECONDS OP ARGS: mc_errno with a time limit; prints the
# result (OK, an errno name, SHORT, or HANG when the call did not return in
# SECONDS) and the milliseconds it took, python's start included.
mc_errno_timed() {
	local lim=$1 t0 t1 out rc
	shift
	t0=$(mc_now_ms)
	out=$(timeout -k 2 "$lim" "$MC_PYTHON" -c "$MC__ERRNO_PY" "$@" 2>/dev/null)
	rc=$?
	t1=$(mc_now_ms)
	case $rc in
	124 | 137) out=HANG ;;
	esac
	echo "${out:-FAILED($rc)} $((t1 - t0))"
}

mc_netns_require() {
	local probe=mc$$-probe
	mc_require_root_fuse
	mc_require_python
	[ -x "$MC_MASTER" ] ||
		hard_error "no master at $MC_MASTER (build it first: make)"
	command -v ip >/dev/null ||
		skip "needs ip (iproute2) to make network namespaces"
	command -v nsenter >/dev/null || skip "needs nsenter (util-linux)"
	ip netns del "$probe" 2>/dev/null
	ip netns add "$probe" 2>/dev/null ||
		skip "cannot make a network namespace (ip netns add): a kernel without CONFIG_NET_NS, or a container that forbids it"
	if ! ip -n "$probe" link add p0 type veth peer name p1 2>/dev/null; then
		ip netns del "$probe"
		skip "cannot make a veth pair: no veth support in the kernel"
	fi
	if ! ip -n "$probe" link add pb0 type bridge 2>/dev/null; then
		ip netns del "$probe"
		skip "cannot make a bridge: no bridge support in the kernel"
	fi
	if ! nsenter --net="/run/netns/$probe" true 2>/dev/null; then
		ip netns del "$probe"
		skip "nsenter --net cannot enter a network namespace here"
	fi
	ip netns del "$probe"
}

# mc__netns_add H: make host H's namespace, written down first so that the
# clean-up (inner or outer) finds it whatever happens next
mc__netns_add() {
	local ns
	ns=$(mc__ns "$1")
	# a namespace of ours left by an earlier run whose pid was this one
	[ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	echo "$ns" >>"$MC_TEST_DIR/netns"
	ip netns add "$ns" || hard_error "cannot make network namespace $ns"
	ip -n "$ns" link set dev lo up || hard_error "cannot bring up lo in $ns"
}

# mc__plug H ADDR: host H's namespace and its cable (a veth pair) to the hub
mc__plug() {
	local ns hub
	ns=$(mc__ns "$1")
	hub=$(mc__ns hub)
	mc__netns_add "$1"
	ip link add eth0 netns "$ns" type veth peer name "port-$1" netns "$hub" ||
		hard_error "cannot make the veth pair of host $1"
	if ! ip -n "$hub" link set dev "port-$1" master br0 up ||
		! ip -n "$ns" addr add "$2/24" dev eth0 ||
		! ip -n "$ns" link set dev eth0 up; then
		hard_error "cannot plug host $1 ($2) into the hub"
	fi
	MC__HOST_IP[$1]=$2
}

# mc_net_up N: the hub, the master's namespace (m) and N hosts named a, b,
# c, ... in $MC_HOSTS, each with a mount point, state directory and log
# under $MC_TEST_DIR/host-H.
mc_net_up() {
	local n=$1 i h names=(a b c d e f g h i j k l)
	[ -z "$MC_NET_ID" ] || hard_error "mc_net_up: the network is up already"
	if ! [ "$n" -ge 1 ] 2>/dev/null || [ "$n" -gt ${#names[@]} ]; then
		hard_error "mc_net_up: 1 to ${#names[@]} hosts, not '$n'"
	fi
	MC_NET_ID=$$
	MC__SUBNET=10.$(((MC_NET_ID >> 8) & 255)).$((MC_NET_ID & 255))
	mc__netns_add hub
	if ! ip -n "$(mc__ns hub)" link add br0 type bridge ||
		! ip -n "$(mc__ns hub)" link set dev br0 up; then
		hard_error "cannot make the hub's bridge"
	fi
	mc__plug m "$MC__SUBNET.2"
	MC_MASTER_ADDR=$MC__SUBNET.2:$MC_MASTER_PORT
	mkdir -p "$MC_MASTER_DIR" || hard_error "cannot make $MC_MASTER_DIR"
	: >>"$MC_MASTER_LOG"
	for i in $(seq 0 $((n - 1))); do
		h=${names[$i]}
		mc__plug "$h" "$MC__SUBNET.$((11 + i))"
		mkdir -p "$MC_TEST_DIR/host-$h/mnt" "$MC_TEST_DIR/host-$h/state" ||
			hard_error "cannot make host $h's directories"
		: >>"$MC_TEST_DIR/host-$h/daemon.log"
		MC_HOSTS+=("$h")
		MC__HOST_STARTS[$h]=0
	done
	note "network: $MC__SUBNET.0/24, master $MC_MASTER_ADDR, hosts $(for h in "${MC_HOSTS[@]}"; do printf '%s=%s ' "$h" "${MC__HOST_IP[$h]}"; done)"
}

mc__host_known() {
	[ -n "${MC__HOST_IP[$1]:-}" ] || hard_error "no host '$1' (mc_net_up first)"
}

mc_host_ip() { mc__host_known "$1"; echo "${MC__HOST_IP[$1]}"; }
mc_master_ip() { echo "${MC__HOST_IP[m]}"; }
mc_host_mnt() { echo "$MC_TEST_DIR/host-$1/mnt"; }
mc_host_state() { echo "$MC_TEST_DIR/host-$1/state"; }
mc_host_log() { echo "$MC_TEST_DIR/host-$1/daemon.log"; }

# mc_in H CMD...: CMD in host H's network namespace (and the test's mounts)
mc_in() {
	local ns
	ns=$(mc__ns "$1")
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# mc_host_status H KEY: "KEY: value" from host H's .mooncake/status
mc_host_status() {
	sed -n "s/^$2:[[:space:]]*//p" "$(mc_host_mnt "$1")/.mooncake/status" |
		head -n 1
}

# mc_host_rx_bytes H: bytes received on host H's cable so far
mc_host_rx_bytes() {
	mc_in "$1" cat /proc/net/dev | awk -F'[: ]+' '$2 == "eth0" { print $3 }'
}

mc_link_down() {
	ip -n "$(mc__ns hub)" link set dev "port-$1" down ||
		hard_error "cannot pull host $1's cable"
}

mc_link_up() {
	ip -n "$(mc__ns hub)" link set dev "port-$1" up ||
		hard_error "cannot plug host $1's cable back"
}

# --- the master ----------------------------------------------------------------

mc_master_alive() {
	[ -n "$MC_MASTER_PID" ] && kill -0 "$MC_MASTER_PID" 2>/dev/null
}

# mc_master_start [args]: mooncake_master in mc<id>-m on port 50051 of its
# address, the store $MC_MASTER_DB, --client_ttl $MC_CLIENT_TTL, unless args
# say otherwise.  Waits until it prints that it serves (10 s at most).
mc_master_start() {
	local a args=() before pid has_db='' has_ttl='' has_port='' has_addr=''
	[ -n "$MC_NET_ID" ] || hard_error "mc_master_start: mc_net_up first"
	[ -z "$MC_MASTER_PID" ] || hard_error "mc_master_start: the master runs already"
	for a in "$@"; do
		case $a in
		--db | --db=*) has_db=1 ;;
		--client[_-]ttl | --client[_-]ttl=*) has_ttl=1 ;;
		--port | --port=*) has_port=1 ;;
		--rpc[_-]address | --rpc[_-]address=*) has_addr=1 ;;
		esac
	done
	[ -n "$has_db" ] || args+=(--db "$MC_MASTER_DB")
	[ -n "$has_ttl" ] || args+=(--client_ttl "$MC_CLIENT_TTL")
	[ -n "$has_port" ] || args+=(--port "$MC_MASTER_PORT")
	[ -n "$has_addr" ] || args+=(--rpc_address "$(mc_master_ip)")
	[ -n "${MC_TEST_LOG_LEVEL:-}" ] && args+=(--log-level "$MC_TEST_LOG_LEVEL")
	MC_MASTER_STARTS=$((MC_MASTER_STARTS + 1))
	echo "=== $MC_TEST_NAME: master start $MC_MASTER_STARTS: ${args[*]} $*" >>"$MC_MASTER_LOG"
	before=$(grep -c 'serving on' "$MC_MASTER_LOG")
	nsenter --net="/run/netns/$(mc__ns m)" "$MC_MASTER" "${args[@]}" "$@" \
		>>"$MC_MASTER_LOG" 2>&1 </dev/null &
	pid=$!
	MC_MASTER_PID=$pid
	echo "$pid" >"$MC_TEST_DIR/daemon.pid.master.$MC_MASTER_STARTS"
	# shellcheck disable=SC2317 # called through mc__await_start
	mc__master_serving() { [ "$(grep -c 'serving on' "$MC_MASTER_LOG")" -gt "$before" ]; }
	mc__await_start "$pid" "$MC_MASTER_LOG" mooncake_master mc__master_serving
	case $? in
	0) return 0 ;;
	2) MC_MASTER_PID=
	   fail "mooncake_master did not start" ;;
	esac
	fail "mooncake_master is not serving after 10 s"
}

# mc_master_stop: SIGTERM; it must exit 0 within 10 s.
mc_master_stop() {
	local pid=$MC_MASTER_PID rc
	[ -n "$pid" ] || hard_error "mc_master_stop: no master running"
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	MC_MASTER_PID=
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		fail "mooncake_master did not exit within 10 s of SIGTERM"
	fi
	wait "$pid"
	rc=$?
	[ $rc -eq 0 ] || fail "mooncake_master exited with status $rc on SIGTERM"
}

mc_master_kill9() {
	[ -n "$MC_MASTER_PID" ] || hard_error "mc_master_kill9: no master running"
	kill -9 "$MC_MASTER_PID"
	wait "$MC_MASTER_PID" 2>/dev/null
	MC_MASTER_PID=
}

# --- the daemons ---------------------------------------------------------------

mc_host_alive() {
	local pid=${MC_HOST_PID[$1]:-}
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# mc_host_registrations H: how many times host H's daemon registered with a
# master (its log says so at notice level, the default)
mc_host_registrations() {
	grep -c 'master: registered with' "$(mc_host_log "$1")" 2>/dev/null ||
		true
}

# mc_host_wait_registered H SECONDS [AFTER]: until host H has registered
# more than AFTER (default 0) times; 1 when SECONDS pass first.
mc_host_wait_registered() {
	local h=$1 n=$(($2 * 10)) after=${3:-0}
	for _ in $(seq "$n"); do
		[ "$(mc_host_registrations "$h")" -gt "$after" ] && return 0
		sleep 0.1
	done
	return 1
}

# mc_host_start [-n] H [args]: mooncaked on host H, in the foreground, with
# its own state directory, --master $MC_MASTER_ADDR, --local-hostname its
# address and --global-segment-size $MC_HOST_SEGMENT unless args say
# otherwise.  Waits (10 s at most) until its mount serves and, unless -n,
# until it has registered with the master once more.
mc_host_start() {
	local wait_reg=1 h a args=() before pid dir mnt log uts=()
	local has_seg='' has_master='' has_local=''
	if [ "$1" = -n ]; then
		wait_reg=
		shift
	fi
	h=$1
	shift
	mc__host_known "$h"
	[ -z "${MC_HOST_PID[$h]:-}" ] || hard_error "mc_host_start: host $h runs already"
	for a in "$@"; do
		case $a in
		--global[_-]segment[_-]size | --global[_-]segment[_-]size=*) has_seg=1 ;;
		--master | --master=*) has_master=1 ;;
		--local[_-]hostname | --local[_-]hostname=*) has_local=1 ;;
		esac
	done
	[ -n "$has_seg" ] || args+=(--global-segment-size "$MC_HOST_SEGMENT")
	[ -n "$has_master" ] || args+=(--master "$MC_MASTER_ADDR")
	[ -n "$has_local" ] || args+=(--local-hostname "$(mc_host_ip "$h")")
	[ -n "${MC_TEST_LOG_LEVEL:-}" ] && args+=(--log-level "$MC_TEST_LOG_LEVEL")
	dir=$MC_TEST_DIR/host-$h
	mnt=$dir/mnt
	log=$dir/daemon.log
	MC__HOST_STARTS[$h]=$((MC__HOST_STARTS[$h] + 1))
	echo "=== $MC_TEST_NAME: host $h start ${MC__HOST_STARTS[$h]}: ${args[*]} $*" >>"$log"
	before=$(mc_host_registrations "$h")
	# a host name of its own (a UTS namespace: no new mount namespace)
	# shellcheck disable=SC2016 # expanded by that sh
	command -v unshare >/dev/null && command -v hostname >/dev/null &&
		uts=(unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "mc$MC_NET_ID-$h")
	nsenter --net="/run/netns/$(mc__ns "$h")" "${uts[@]}" \
		"$MC_DAEMON" --foreground --state-dir "$dir/state" "${args[@]}" "$@" \
		"$mnt" >>"$log" 2>&1 </dev/null &
	pid=$!
	MC_HOST_PID[$h]=$pid
	echo "$pid" >"$MC_TEST_DIR/daemon.pid.$h.${MC__HOST_STARTS[$h]}"
	mc__await_start "$pid" "$log" "host $h: mooncaked" mc__serving "$mnt"
	case $? in
	2) MC_HOST_PID[$h]=
	   fail "host $h: mooncaked did not start" ;;
	1) fail "host $h: mooncaked is not serving $mnt after 10 s (top mount: '$(mc__top_fstype "$mnt")', statfs: $(mc_errno listdir "$mnt"))" ;;
	esac
	[ -n "$wait_reg" ] || return 0
	mc_host_wait_registered "$h" 10 "$before" && return 0
	tail -n 20 "$log" >&2
	fail "host $h: mooncaked did not register with the master ($MC_MASTER_ADDR) within 10 s"
}

# mc_host_stop H: SIGTERM; exit 0 within 10 s, the mount gone with it.
mc_host_stop() {
	local h=$1 pid=${MC_HOST_PID[$1]:-} rc mnt
	[ -n "$pid" ] || hard_error "mc_host_stop: host $h runs no daemon"
	mnt=$(mc_host_mnt "$h")
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	MC_HOST_PID[$h]=
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
		wait "$pid" 2>/dev/null
		fail "host $h: mooncaked did not exit within 10 s of SIGTERM"
	fi
	wait "$pid"
	rc=$?
	[ $rc -eq 0 ] || fail "host $h: mooncaked exited with status $rc on SIGTERM"
	if mc_is_mounted "$mnt" fuse.mooncake; then
		umount -l "$mnt"
		fail "host $h: mooncaked exited on SIGTERM but left its mount at $mnt"
	fi
}

# mc_host_kill9 H: SIGKILL, a crash; the mount stays behind, stale.
mc_host_kill9() {
	local pid=${MC_HOST_PID[$1]:-}
	[ -n "$pid" ] || hard_error "mc_host_kill9: host $1 runs no daemon"
	kill -9 "$pid"
	wait "$pid" 2>/dev/null
	MC_HOST_PID[$1]=
}

# --- their end -------------------------------------------------------------------

# from mc_done: every live host, then the master, stops cleanly
mc__cluster_done() {
	local h pid st
	[ -n "$MC_NET_ID" ] || return 0
	for h in "${MC_HOSTS[@]}"; do
		pid=${MC_HOST_PID[$h]:-}
		[ -n "$pid" ] || continue
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			st=$?
			MC_HOST_PID[$h]=
			fail "host $h: mooncaked died during the test (exit status $st)"
		fi
	done
	if [ -n "$MC_MASTER_PID" ] && ! mc_master_alive; then
		wait "$MC_MASTER_PID"
		st=$?
		MC_MASTER_PID=
		fail "mooncake_master died during the test (exit status $st)"
	fi
	for h in "${MC_HOSTS[@]}"; do
		[ -n "${MC_HOST_PID[$h]:-}" ] && mc_host_stop "$h"
	done
	[ -n "$MC_MASTER_PID" ] && mc_master_stop
	return 0
}

# from mc__cleanup: whatever is left, however the test ended
mc__cluster_cleanup() {
	local h pid pids=() alive ns
	[ -n "$MC_NET_ID" ] || return 0
	for h in "${MC_HOSTS[@]}"; do
		pid=${MC_HOST_PID[$h]:-}
		[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
	done
	[ -n "$MC_MASTER_PID" ] && kill -TERM "$MC_MASTER_PID" 2>/dev/null &&
		pids+=("$MC_MASTER_PID")
	for _ in $(seq 50); do
		alive=
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		kill -9 "$pid" 2>/dev/null
		{ wait "$pid"; } 2>/dev/null
	done
	MC_HOST_PID=()
	MC_MASTER_PID=
	for h in "${MC_HOSTS[@]}"; do
		mc__umount_below "$MC_TEST_DIR/host-$h"
	done
	# then anything else still running in our namespaces (helpers a test
	# started with mc_in in the background)
	mc__netns_sweep "$MC_TEST_DIR/netns"
	MC_NET_ID=
}

mc__cluster_log_tails() {
	local f
	for f in "$MC_TEST_DIR"/host-*/daemon.log "$MC_MASTER_LOG"; do
		[ -s "$f" ] || continue
		note "last lines of $f:"
		tail -n 15 "$f" >&2
	done
}
