#!/usr/bin/env bash
# run-bench.sh - mooncakefs against native memory filesystems, SGLang's page
# pattern (tests/bench/mc-bench-pages) on each, interleaved, medians.
#
# usage: tests/bench/run-bench.sh [--rounds R] [--pages N] [--page-size SIZE]
#            [--settle-ms MS] [--misses M] [--segment-size SIZE]
#            [--passthrough auto|on|off] [--log-level LEVEL]
#
# Run as root from the build directory (or set MC_BUILDDIR).  It makes a
# private directory, mounts a native `tmpfs -o huge=always` there, makes a
# private directory under /dev/shm, starts `daemon/mooncaked --foreground`
# on a mount point of its own, runs one discarded warm-up round on each
# target, then R rounds (9 by default) interleaved (mooncakefs, huge
# tmpfs, /dev/shm, mooncakefs, ...), each round writing, reading and removing
# its own pages so only one round's pages are held at a time.  Before each round it waits
# (up to 60 s) for the pool's keeper to refill the memory the last round
# freed, so no target is measured while the keeper zeroes memory.  It prints one table of medians
# over the rounds and the issue's targets, PASS or MISS:
#
#	write GB/s           >= 1.5 x /dev/shm
#	cold (first) read    >= 0.8 x native huge tmpfs, read at once after
#	                        the write and read after --settle-ms
#	stat miss p50        <= 60 us
#
# Writes on this VM depend on what memory did just before (research/
# fuse-memory-io.md): pages freed and reused within a second are fast, memory
# left idle is slow to touch again.  In this order the native huge tmpfs
# reuses the huge pages mooncakefs has just freed, and mooncakefs follows
# /dev/shm; a pool that keeps its memory resident does not care.
#
# Everything it made (daemon, FUSE mount, the pool tmpfs at STATE/pool, the
# native tmpfs, the directories) is removed on exit, Ctrl-C included.
#
# Environment: MC_BUILDDIR (default: . when it holds daemon/mooncaked, else
# this script's ../..), MC_DAEMON, MC_BENCH (the two programs).
# Exit status: 0 every target PASS, 1 a target MISSed, 2 bad usage, 77 not
# root or no FUSE, 99 the daemon or the benchmark failed (a short read, wrong
# bytes, a failed call) or the clean-up did not complete.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
set -u

ME=run-bench
ROUNDS=9
PAGES=64
PAGE_SIZE=8MiB
SETTLE_MS=2000
MISSES=2000
SEGMENT=
PASSTHROUGH=
LOG_LEVEL=
MEM_LIMIT=$((6 << 30))	# what may be held at once on a 24 GiB test VM

note() { printf '%s: %s\n' "$ME" "$*" >&2; }
die() { printf '%s: %s\n' "$ME" "$*" >&2; exit 99; }
usage_error() { printf '%s: %s (see --help)\n' "$ME" "$*" >&2; exit 2; }

usage() {
	# the header comment, up to the first line of code
	sed -n '2,/^\[ -n /{/^#/s/^# \{0,1\}//p}' "$0"
}

# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"

while [ $# -gt 0 ]; do
	case $1 in
	--rounds | --pages | --page-size | --settle-ms | --misses | --segment-size | \
		--passthrough | --log-level)
		[ $# -ge 2 ] || usage_error "$1 needs a value"
		case $1 in
		--rounds) ROUNDS=$2 ;;
		--pages) PAGES=$2 ;;
		--page-size) PAGE_SIZE=$2 ;;
		--settle-ms) SETTLE_MS=$2 ;;
		--misses) MISSES=$2 ;;
		--segment-size) SEGMENT=$2 ;;
		--passthrough) PASSTHROUGH=$2 ;;
		--log-level) LOG_LEVEL=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done

for v in ROUNDS PAGES SETTLE_MS MISSES; do
	[[ ${!v} =~ ^[0-9]+$ ]] || usage_error "bad --${v,,} '${!v}': give a number"
done
if [ "$ROUNDS" -lt 1 ] || [ "$PAGES" -lt 1 ]; then
	usage_error "--rounds and --pages must be >= 1"
fi
case $PASSTHROUGH in
"" | auto | on | off) ;;
*) usage_error "bad --passthrough '$PASSTHROUGH': use auto, on or off" ;;
esac
PAGE_BYTES=$(size_bytes "$PAGE_SIZE") || usage_error "bad --page-size '$PAGE_SIZE'"
[ "$PAGE_BYTES" -gt 0 ] || usage_error "--page-size must be nonzero"
ROUND_BYTES=$((PAGES * PAGE_BYTES))
if [ -n "$SEGMENT" ]; then
	SEGMENT_BYTES=$(size_bytes "$SEGMENT") || usage_error "bad --segment-size '$SEGMENT'"
else
	# room for a round under the default 0.9 eviction watermark, 4 GiB at least
	SEGMENT_BYTES=$((4 << 30))
	[ $((ROUND_BYTES * 2)) -le "$SEGMENT_BYTES" ] || SEGMENT_BYTES=$((ROUND_BYTES * 2))
fi
[ $((ROUND_BYTES * 10)) -lt $((SEGMENT_BYTES * 9)) ] ||
	usage_error "a round ($ROUND_BYTES bytes) does not fit under the pool's eviction watermark ($SEGMENT_BYTES bytes): raise --segment-size"
# The pool may keep its whole segment resident; add one round on a native target.
[ $((SEGMENT_BYTES + ROUND_BYTES)) -le $MEM_LIMIT ] ||
	usage_error "the pool ($SEGMENT_BYTES) and a round ($ROUND_BYTES bytes) would hold more than $MEM_LIMIT bytes at once"

# --- the programs -------------------------------------------------------------

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

# --- private directories, mounts and their clean-up ---------------------------

WORK=
SHM=
DAEMON_PID=
BENCH_PID=
CLEANUP_RC=0

# shellcheck disable=SC2317 # called from the trap
stop_daemon() {
	local i
	[ -n "$DAEMON_PID" ] || return 0
	if kill -0 "$DAEMON_PID" 2>/dev/null; then
		kill -TERM "$DAEMON_PID" 2>/dev/null
		for i in $(seq 100); do
			kill -0 "$DAEMON_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			note "mooncaked did not exit within 10 s of SIGTERM: killing it"
			kill -9 "$DAEMON_PID" 2>/dev/null
			CLEANUP_RC=99
		fi
	fi
	wait "$DAEMON_PID" 2>/dev/null
	i=$?
	# 143 is our own SIGTERM when the daemon does not handle it
	if [ "$i" -ne 0 ]; then
		note "mooncaked exited with status $i on SIGTERM"
		CLEANUP_RC=99
	fi
	DAEMON_PID=
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
	stop_daemon
	if [ -n "$WORK" ]; then
		if is_mounted "$WORK/mnt" fuse.mooncake; then
			note "mooncaked stopped but left its mount at $WORK/mnt"
			CLEANUP_RC=99
		fi
		# the FUSE mount if still there, the pool tmpfs (it outlives the
		# daemon on purpose) and the native tmpfs
		for mp in $(mounts_below "$WORK"); do
			umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
				fusermount3 -u -z "$mp" 2>/dev/null
		done
		if [ -n "$(mounts_below "$WORK")" ]; then
			note "could not unmount: $(mounts_below "$WORK" | tr '\n' ' ')"
			CLEANUP_RC=99
		else
			rm -rf --one-file-system "$WORK"
		fi
	fi
	[ -n "$SHM" ] && rm -rf --one-file-system "$SHM"
	[ "$rc" -eq 0 ] && rc=$CLEANUP_RC
	exit "$rc"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT
trap 'exit 143' TERM HUP

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mc-bench.XXXXXX") || die "cannot make a private directory"
SHM=$(mktemp -d /dev/shm/mc-bench.XXXXXX) || die "cannot make a directory under /dev/shm"
MNT=$WORK/mnt
STATE=$WORK/state
HUGE=$WORK/huge
LOG=$WORK/daemon.log
RESULTS=$WORK/results.jsonl
mkdir -p "$MNT" "$STATE" "$HUGE" || die "cannot make directories under $WORK"

# a native huge tmpfs with room for one round
mount -t tmpfs -o "huge=always,size=$((ROUND_BYTES + ROUND_BYTES / 4 + (64 << 20)))" \
	mc-bench-huge "$HUGE" || die "cannot mount tmpfs -o huge=always at $HUGE"

# --- the daemon ---------------------------------------------------------------

daemon_args=(--foreground --state-dir "$STATE" --global-segment-size "$SEGMENT_BYTES")
[ -n "$PASSTHROUGH" ] && daemon_args+=(--passthrough "$PASSTHROUGH")
[ -n "$LOG_LEVEL" ] && daemon_args+=(--log-level "$LOG_LEVEL")
"$MC_DAEMON" "${daemon_args[@]}" "$MNT" </dev/null >"$LOG" 2>&1 &
DAEMON_PID=$!
for i in $(seq 300); do
	if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
		wait "$DAEMON_PID"
		rc=$?
		DAEMON_PID=
		tail -n 20 "$LOG" >&2
		die "mooncaked exited with status $rc before mounting ($MC_DAEMON ${daemon_args[*]} $MNT)"
	fi
	is_mounted "$MNT" fuse.mooncake && break
	sleep 0.1
done
is_mounted "$MNT" fuse.mooncake || { tail -n 20 "$LOG" >&2; die "no fuse.mooncake mount at $MNT after 30 s"; }
DATA=$MNT/bench
mkdir "$DATA" || die "cannot mkdir $DATA on the mount"

status_value() {
	sed -n "s/^$1:[[:space:]]*//p" "$MNT/.mooncake/status" 2>/dev/null | head -n 1
}

# keeper_done: true once the pool's keeper has nothing left to zero, that
# is once pages + reserve are within its 64 MiB slack of the watermark
keeper_done() {
	awk '
		{ v[$1] = $2 }
		END {
			top = v["capacity_bytes:"] * v["high_watermark_ratio:"]
			exit !(v["used_bytes:"] + v["reserve_bytes:"] + (64 * 2 ^ 20) > top)
		}' "$MNT/.mooncake/status" 2>/dev/null
}

# wait_quiet: let the keeper finish refilling what the last round freed.
# Its zeroing runs at memory bandwidth; left running, it slows the native
# targets measured next and flatters the ratios.
# A reserve that stays put for 3 s is not being filled (--resident no, a
# pool without one): nothing to wait for.
wait_quiet() {
	local i last=-1 now still=0
	for i in $(seq 600); do
		keeper_done && return 0
		now=$(status_value reserve_bytes)
		if [ "$now" = "$last" ]; then
			still=$((still + 1))
			[ $still -ge 30 ] && return 0
		else
			still=0 last=$now
		fi
		sleep 0.1
	done
	note "the pool's reserve is still refilling after 60 s: measuring anyway"
}

# --- the rounds ---------------------------------------------------------------

TARGETS=(mooncakefs huge-tmpfs dev-shm)
declare -A DIR_OF=([mooncakefs]=$DATA [huge-tmpfs]=$HUGE [dev-shm]=$SHM)

# bench TARGET SEED OUT [extra args]: one round on TARGET, its JSON line
# into OUT.  It runs in the background and is waited for, so that a signal
# to this script is handled at once (the trap stops it).
bench() {
	local t=$1 seed=$2 out=$3 dir=${DIR_OF[$1]} rc
	shift 3
	"$MC_BENCH" --dir "$dir" --pages "$PAGES" --page-size "$PAGE_BYTES" \
		--misses "$MISSES" --seed "$seed" --label "$t" --json "$@" \
		>"$out" 2>"$WORK/bench.err" &
	BENCH_PID=$!
	wait "$BENCH_PID"
	rc=$?
	BENCH_PID=
	# belt and braces: a round leaves nothing behind, whatever happened
	find "$dir" -mindepth 1 -delete 2>/dev/null
	if [ $rc -ne 0 ]; then
		cat "$WORK/bench.err" >&2
		kill -0 "$DAEMON_PID" 2>/dev/null || note "mooncaked is no longer running"
		[ "$t" = mooncakefs ] && tail -n 20 "$LOG" >&2
		die "mc-bench-pages failed on $t (exit $rc)"
	fi
}

# field JSON KEY: one number from mc-bench-pages' flat JSON line
field() {
	printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"
}

note "$PAGES pages x $PAGE_BYTES bytes, $ROUNDS rounds, settle $SETTLE_MS ms, pool $SEGMENT_BYTES bytes"
note "warm-up (one discarded round per target)"
for t in "${TARGETS[@]}"; do
	wait_quiet
	bench "$t" 999 /dev/null --settle-ms 0
done
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
	for t in "${TARGETS[@]}"; do
		wait_quiet
		bench "$t" "$r" "$WORK/round.json" --settle-ms "$SETTLE_MS"
		line=$(cat "$WORK/round.json")
		printf '%s\n' "$line" >>"$RESULTS"
		note "$(printf 'round %d %-10s  write %6s GB/s  first-read %6s / %6s GB/s  steady %6s GB/s  stat-miss p50 %5s us' \
			"$r" "$t" "$(field "$line" write_gbps)" "$(field "$line" read_now_gbps)" \
			"$(field "$line" read_settled_gbps)" "$(field "$line" read_warm_gbps)" \
			"$(field "$line" stat_miss_p50_us)")"
	done
done

PT_STATUS=$(status_value passthrough)
POOL_KIND=$(status_value pool_kind)
ERRORS=$(status_value errors)
grep -n '\[err\]' "$LOG" >"$WORK/errs" && {
	note "the daemon logged errors:"
	head -n 20 "$WORK/errs" >&2
}

# --- the table ----------------------------------------------------------------

echo
printf 'mooncakefs (passthrough %s: %s, pool %s) vs native memory filesystems\n' \
	"${PASSTHROUGH:-default}" "${PT_STATUS:-?}" "${POOL_KIND:-?}"
printf '%d rounds x %d pages x %d bytes, settle %d ms, %d stat misses; medians over rounds\n\n' \
	"$ROUNDS" "$PAGES" "$PAGE_BYTES" "$SETTLE_MS" "$MISSES"

awk -v settle="$SETTLE_MS" '
function val(line, key,    m) {
	if (!match(line, "\"" key "\":[^,}]*"))
		return ""
	m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	return m == "null" ? "" : m
}
function median(t, key,    n, v, i, j, x) {
	n = cnt[t, key]
	if (!n)
		return ""
	for (i = 1; i <= n; i++)
		v[i] = vals[t, key, i]
	for (i = 2; i <= n; i++) {	# insertion sort: a handful of rounds
		x = v[i]
		for (j = i - 1; j >= 1 && v[j] > x; j--)
			v[j + 1] = v[j]
		v[j + 1] = x
	}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function cell(x, fmt) { return x == "" ? sprintf("%12s", "-") : sprintf(fmt, x) }
function ratio(a, b) {
	return (a == "" || b == "" || b + 0 == 0) ? sprintf("%9s", "-") : sprintf("%9.2f", a / b)
}
function row(title, key, fmt,    a, b, c) {
	a = median("mooncakefs", key)
	b = median("huge-tmpfs", key)
	c = median("dev-shm", key)
	printf "%-30s%s%s%s%s%s\n", title, cell(a, fmt), cell(b, fmt), cell(c, fmt),
		ratio(a, b), ratio(a, c)
}
# target(title, value, limit, op): one PASS/MISS line
function target(title, v, limit, op, unit,    ok) {
	if (v == "") {
		printf "  %-52s %10s   MISS (not measured)\n", title, "-"
		missed = 1
		return
	}
	ok = op == ">=" ? v + 0 >= limit : v + 0 <= limit
	printf "  %-52s %10s   %s\n", title, sprintf("%.2f%s", v, unit), ok ? "PASS" : "MISS"
	if (!ok)
		missed = 1
}
{
	if (!match($0, "\"label\":\"[^\"]*\""))
		next
	t = substr($0, RSTART + 9, RLENGTH - 10)
	split("write_gbps write_p50_us write_p99_us read_now_gbps read_settled_gbps read_warm_gbps read_now_p50_us read_now_p99_us read_settled_p50_us read_settled_p99_us read_warm_p50_us read_warm_p99_us stat_miss_p50_us stat_miss_p99_us", keys, " ")
	for (k in keys) {
		x = val($0, keys[k])
		if (x != "")
			vals[t, keys[k], ++cnt[t, keys[k]]] = x + 0
	}
}
END {
	printf "%-30s%12s%12s%12s%9s%9s\n", "", "mooncakefs", "huge tmpfs", "/dev/shm",
		"mc/huge", "mc/shm"
	row("write GB/s", "write_gbps", "%12.2f")
	row("write p50 us", "write_p50_us", "%12.0f")
	row("write p99 us", "write_p99_us", "%12.0f")
	row("first-read at once GB/s", "read_now_gbps", "%12.2f")
	row("first-read settled GB/s", "read_settled_gbps", "%12.2f")
	row("steady read GB/s", "read_warm_gbps", "%12.2f")
	row("first-read at once p50 us", "read_now_p50_us", "%12.0f")
	row("first-read at once p99 us", "read_now_p99_us", "%12.0f")
	row("first-read settled p50 us", "read_settled_p50_us", "%12.0f")
	row("first-read settled p99 us", "read_settled_p99_us", "%12.0f")
	row("steady read p50 us", "read_warm_p50_us", "%12.0f")
	row("steady read p99 us", "read_warm_p99_us", "%12.0f")
	row("stat-miss p50 us", "stat_miss_p50_us", "%12.1f")
	row("stat-miss p99 us", "stat_miss_p99_us", "%12.1f")

	print ""
	print "targets (mooncakefs, medians)"
	w = median("mooncakefs", "write_gbps"); ws = median("dev-shm", "write_gbps")
	target("write >= 1.5x /dev/shm", (w != "" && ws > 0) ? w / ws : "", 1.5, ">=", "x")
	a = median("mooncakefs", "read_now_gbps"); b = median("huge-tmpfs", "read_now_gbps")
	target("cold read (first, at once) >= 0.8x huge tmpfs",
		(a != "" && b > 0) ? a / b : "", 0.8, ">=", "x")
	a = median("mooncakefs", "read_settled_gbps"); b = median("huge-tmpfs", "read_settled_gbps")
	target("cold read (first, after " settle " ms) >= 0.8x huge tmpfs",
		(a != "" && b > 0) ? a / b : "", 0.8, ">=", "x")
	target("stat miss p50 <= 60 us", median("mooncakefs", "stat_miss_p50_us"), 60, "<=", " us")
	exit missed
}' "$RESULTS"
verdict=$?
[ -n "$ERRORS" ] && [ "$ERRORS" != 0 ] && note "the daemon counts $ERRORS errors in .mooncake/status"
exit $verdict
