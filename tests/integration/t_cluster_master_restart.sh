#!/bin/bash
# t_cluster_master_restart: kill -9 of mooncake_master.  While it is away,
# files already open on the hosts keep reading byte-exact, and a new open or
# create fails fast with EHOSTDOWN (within the rpc timeout), never a hang;
# a daemon restarted meanwhile mounts and fails the same way.  Restarted on
# the same store, the master reloads the namespace; every daemon reconnects
# by itself; every committed page (one committed just
# before the kill included) reads byte-exact from every host, and new pages
# work.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=100
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

RPC_MS=2000
DAEMON_ARGS=(--transfer-timeout 1 --rpc-timeout 2)
FAST_MS=$((RPC_MS + 1000))	# the rpc timeout, and python's start
ON_A=(--model mr --seed m-a --pages 8 --page-size 2MiB)
ON_B=(--model mr --seed m-b --pages 8 --page-size 2MiB)
ON_C=(--model mr --seed m-c --pages 4 --page-size 2MiB)
R=$MC_TEST_DIR/r
OUT=$MC_TEST_DIR/out
mkdir -p "$R"

mc_net_up 3
mc_master_start --client_ttl 2
for h in a b c; do
	mc_host_start "$h" "${DAEMON_ARGS[@]}"
done
A=$(mc_host_mnt a) B=$(mc_host_mnt b) C=$(mc_host_mnt c)
kv() { echo "$(mc_host_mnt "$1")/kv"; }

mkdir "$A/kv" || fail "mkdir kv"
mc_wait_for 3 test -d "$B/kv" || fail "kv made on A is not on B"
sfb write --dir "$A/kv" "${ON_A[@]}" >"$OUT" 2>&1 || fail "set on A: $(cat "$OUT")"
sfb write --dir "$B/kv" "${ON_B[@]}" >"$OUT" 2>&1 || fail "set on B: $(cat "$OUT")"
SRC=$MC_TEST_DIR/src.bin
mc_random_file "$SRC" $((5 * 1048576 + 777))
cp "$SRC" "$C/plain.bin" || fail "cp into C"

# readers that hold pages open across the outage: B holds A's first four
# pages, C holds B's; each verifies its pages at open and again, through
# the same descriptors, when its stdin closes
HOLD_FDS=()
hold() {	# HOST NAME ARGS...
	local h=$1 name=$2
	shift 2
	mkfifo "$R/$name.fifo"
	# without the other holders' fifos: each must see its own EOF
	(
		for fd in "${HOLD_FDS[@]}"; do
			eval "exec $fd>&-"
		done
		exec "$MC_PYTHON" "$SFB" hold --dir "$(kv "$h")" "$@"
	) <"$R/$name.fifo" >"$R/$name" 2>&1 &
	eval "${name}_pid=$!"
	exec {fd}>"$R/$name.fifo"
	eval "${name}_fd=$fd"
	HOLD_FDS+=("$fd")
	# shellcheck disable=SC2317 # called through mc_wait_for
	holding() { grep -q 'hold: holding' "$R/$1"; }
	mc_wait_for 10 holding "$name" || fail "$name did not open its pages: $(cat "$R/$name")"
}
# release NAME: close its stdin; it re-reads what it holds and must pass
release() {
	local fd pid n
	fd=${1}_fd pid=${1}_pid
	n=${!fd}
	exec {n}>&-
	wait "${!pid}" || fail "$1: the pages it held open did not read back: $(cat "$R/$1")"
	grep -q 'released [0-9]* pages, 0 bad' "$R/$1" || fail "$1: $(cat "$R/$1")"
}
hold b holder_b "${ON_A[@]}" --pages 4
hold c holder_c "${ON_B[@]}" --pages 4

# the last commit just before the kill is kept (the kill waits until B
# sees it: a page is committed when another host can see it, and
# t_cluster_rw checks that this is so when close() returns)
cp "$SRC" "$A/last.bin" || fail "cp last.bin into A"
mc_wait_for 3 test -f "$B/last.bin" || fail "last.bin closed on A is not seen on B within 3 s"
# and one written while the master lives but closed after its kill: its
# commit finds no master, so it is kept and made when the master is back
exec {late_fd}>"$A/late.bin" || fail "create late.bin on A"
cat "$SRC" >&"$late_fd" || fail "write late.bin on A"
mc_master_kill9
note "master killed"
exec {late_fd}>&-

# --- the master is away ----------------------------------------------------------

# first opens on each host of pages held elsewhere, and creates
mapfile -t A_PAGES_C < <(sfb names --dir "$C/kv" "${ON_A[@]}")
mapfile -t B_PAGES_A < <(sfb names --dir "$A/kv" "${ON_B[@]}")
for probe in "c read ${A_PAGES_C[6]}" "a read ${B_PAGES_A[7]}" \
	"b write_file $B/kv/new-while-away.bin 4096" "a mkdir $A/dir-while-away"; do
	read -r h op path size <<<"$probe"
	read -r res ms < <(mc_errno_timed 10 "$op" "$path" ${size:+"$size"})
	note "master away: $op on $h gave $res in $ms ms"
	[ "$res" = EHOSTDOWN ] ||
		fail "with the master away, $op on $h of $(basename "$path") gave $res, expected EHOSTDOWN"
	[ "$ms" -le "$FAST_MS" ] ||
		fail "with the master away, $op on $h took $ms ms, more than $FAST_MS"
done
# open files keep reading
release holder_b
release holder_c
# a daemon (re)started while the master is away mounts and serves what it
# can: its opens fail fast the same way
mc_host_stop c
t0=$(mc_now_ms)
mc_host_start -n c "${DAEMON_ARGS[@]}"
note "C restarted without a master: its mount served after $(($(mc_now_ms) - t0)) ms"
read -r res ms < <(mc_errno_timed 10 read "${A_PAGES_C[4]}")
if [ "$res" != EHOSTDOWN ] || [ "$ms" -gt "$FAST_MS" ]; then
	fail "C started with the master away: a first open gave $res in $ms ms (expected EHOSTDOWN within $FAST_MS ms)"
fi
# still away a while later (past the client ttl): the same, and no hang
sleep 1.5
read -r res ms < <(mc_errno_timed 10 read "${A_PAGES_C[5]}")
if [ "$res" != EHOSTDOWN ] || [ "$ms" -gt "$FAST_MS" ]; then
	fail "3 s into the outage, a first open on C gave $res in $ms ms (expected EHOSTDOWN within $FAST_MS ms)"
fi

# --- the master comes back on the same store -------------------------------------

declare -A before
for h in a b c; do
	before[$h]=$(mc_host_registrations "$h")
done
t0=$(mc_now_ms)
mc_master_start --client_ttl 2
for h in a b c; do
	mc_host_wait_registered "$h" 10 "${before[$h]}" ||
		fail "host $h did not register again within 10 s of the master's restart"
done
note "every daemon registered again $(($(mc_now_ms) - t0)) ms after the master was started"
# B holds its 8 pages and copies of the 4 of A's it held open
held=$(grep 'registered with' "$(mc_host_log b)" | tail -n 1 | sed -n 's/.*(\([0-9]*\) pages held here).*/\1/p')
[ "${held:-0}" -ge 8 ] ||
	fail "B did not declare its pages again: $(grep 'registered with' "$(mc_host_log b)" | tail -n 1)"

# nothing committed is lost, everywhere
for h in a b c; do
	sfb read --dir "$(kv "$h")" "${ON_A[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "after the master's restart, A's pages on $h: $(cat "$OUT")"
	sfb read --dir "$(kv "$h")" "${ON_B[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "after the master's restart, B's pages on $h: $(cat "$OUT")"
	cmp "$SRC" "$(mc_host_mnt "$h")/plain.bin" || fail "plain.bin differs on $h after the master's restart"
	cmp "$SRC" "$(mc_host_mnt "$h")/last.bin" ||
		fail "last.bin, committed just before the master's kill, differs or is gone on $h: $(grep last.bin "$(mc_host_log a)" | tail -n 1)"
	mc_wait_for 5 test -f "$(mc_host_mnt "$h")/late.bin" ||
		fail "late.bin, closed while the master was away, is not on $h 5 s after the restart: $(grep late.bin "$(mc_host_log a)" | tail -n 2)"
	cmp "$SRC" "$(mc_host_mnt "$h")/late.bin" || fail "late.bin differs on $h"
	[ ! -e "$(kv "$h")/new-while-away.bin" ] || fail "the create refused while the master was away exists on $h"
done
# and new pages work
sfb write --dir "$C/kv" "${ON_C[@]}" >"$OUT" 2>&1 || fail "set on C after the master's restart: $(cat "$OUT")"
for h in a b; do
	sfb read --dir "$(kv "$h")" "${ON_C[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "C's new pages on $h: $(cat "$OUT")"
done

# --- a clean restart of the master, the same ------------------------------------------

for h in a b c; do
	before[$h]=$(mc_host_registrations "$h")
done
mc_master_stop
mc_master_start --client_ttl 2
for h in a b c; do
	mc_host_wait_registered "$h" 10 "${before[$h]}" ||
		fail "host $h did not register again after a clean restart of the master"
done
for h in a b c; do
	sfb read --dir "$(kv "$h")" "${ON_C[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "after a clean restart of the master, ON_C on $h: $(cat "$OUT")"
done

mc_done
