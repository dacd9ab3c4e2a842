#!/bin/bash
# t_cluster_daemon_loss: a host's daemon dies.
#  replica_num 1:
#   - restarted within the client ttl (after kill -9, and after a clean
#     stop), it registers again with the pages it holds: nothing is lost;
#   - killed for good, its pages give ENOENT on the other hosts within the
#     client ttl and a little slack, and never EIO, a short read or a hang
#     on the way there; the pages held elsewhere read on, new pages work.
#  replica_num 2: each page committed on A gets a second copy on another
#   host shortly after; with A killed every page still reads byte-exact on
#   B and C, before and after the master declares A dead.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

TTL=2.5			# the master's client ttl, seconds
TTL_MS=2500
ENTRY_MS=1000		# the kernel may answer stat from its cache this long
DAEMON_ARGS=(--transfer-timeout 1 --rpc-timeout 2)
OP_LIMIT_MS=4000	# one call: rpc + transfer timeouts and python's start
ON_A=(--model loss --seed on-a --pages 8 --page-size 1MiB)
ON_B=(--model loss --seed on-b --pages 8 --page-size 1MiB)
ON_C=(--model loss --seed on-c --pages 4 --page-size 1MiB)
OUT=$MC_TEST_DIR/out

mc_net_up 3
A=$(mc_host_mnt a) B=$(mc_host_mnt b) C=$(mc_host_mnt c)
kv() { echo "$(mc_host_mnt "$1")/kv"; }
kv2() { echo "$(mc_host_mnt "$1")/kv2"; }

# fresh_pools: every daemon stopped, every pool's memory given back, so the
# next daemons start with new pools (new identities) for a new master
fresh_pools() {
	local h
	for h in a b c; do
		mc_host_alive "$h" && mc_host_stop "$h"
		umount "$(mc_host_state "$h")/pool" 2>/dev/null ||
			umount -l "$(mc_host_state "$h")/pool" 2>/dev/null
		# a stale FUSE mount of a killed daemon
		mc__umount_below "$(mc_host_mnt "$h")"
	done
	MC_HOST_PID=()
}

# all_read H ARGS...: every page of ARGS reads byte-exact on host H
all_read() {
	local h=$1
	shift
	sfb read --dir "$(kv "$h")" "$@" --expect-all >"$OUT" 2>&1 ||
		fail "$* on $h: $(cat "$OUT")"
}

# ====== replica_num 1 ==========================================================

mc_master_start --client_ttl "$TTL"
for h in a b c; do
	mc_host_start "$h" "${DAEMON_ARGS[@]}"
done
mkdir "$A/kv" || fail "mkdir kv"
mc_wait_for 3 test -d "$B/kv" || fail "kv made on A is not on B"
sfb write --dir "$A/kv" "${ON_A[@]}" >"$OUT" 2>&1 || fail "set on A: $(cat "$OUT")"
sfb write --dir "$B/kv" "${ON_B[@]}" >"$OUT" 2>&1 || fail "set on B: $(cat "$OUT")"
# B and C only probe A's pages: a copy made by a read would outlive A
for h in b c; do
	sfb exists --dir "$(kv $h)" "${ON_A[@]}" --expect 8 >"$OUT" 2>&1 ||
		fail "exists on $h of A's pages: $(cat "$OUT")"
done

# --- kill -9 and restart within the ttl ------------------------------------------

regs=$(mc_host_registrations a)
t0=$(mc_now_ms)
mc_host_kill9 a
mc_host_start a "${DAEMON_ARGS[@]}"
took=$(($(mc_now_ms) - t0))
note "kill -9 of A and restart: registered again after $took ms"
[ "$(mc_host_registrations a)" -gt "$regs" ] || fail "A did not register again after its restart"
[ "$took" -lt "$TTL_MS" ] ||
	fail "A's restart took $took ms, not within the client ttl ($TTL_MS ms): this test cannot tell loss from restart"
grep -q 'registered with .* (8 pages held here)' "$(mc_host_log a)" ||
	fail "A did not declare its 8 pages when it registered again: $(grep 'registered with' "$(mc_host_log a)" | tail -n 1)"
sleep "$TTL"	# past the ttl counted from the kill
for h in c b a; do
	all_read "$h" "${ON_A[@]}"
done

# --- clean stop and start within the ttl --------------------------------------------

t0=$(mc_now_ms)
mc_host_stop a
mc_host_start a "${DAEMON_ARGS[@]}"
took=$(($(mc_now_ms) - t0))
note "clean stop of A and start: registered again after $took ms"
[ "$took" -lt "$TTL_MS" ] || fail "A's clean restart took $took ms, more than the client ttl"
sleep "$TTL"
for h in c b a; do
	all_read "$h" "${ON_A[@]}"
done
# B's copies of A's pages were made by the reads above; make A's pages ones
# that only A holds again, under new names
sfb write --dir "$A/kv" "${ON_A[@]}" --seed on-a-2 >"$OUT" 2>&1 || fail "set on A: $(cat "$OUT")"
ON_A=(--model loss --seed on-a-2 --pages 8 --page-size 1MiB)
sfb exists --dir "$B/kv" "${ON_A[@]}" --expect 8 >"$OUT" 2>&1 || fail "exists on B: $(cat "$OUT")"
mapfile -t A_PAGES_B < <(sfb names --dir "$B/kv" "${ON_A[@]}")
mapfile -t A_PAGES_C < <(sfb names --dir "$C/kv" "${ON_A[@]}")

# --- kill -9 for good: A's pages go, cleanly -------------------------------------

t0=$(mc_now_ms)
mc_host_kill9 a
limit=$((TTL_MS + ENTRY_MS + 2500))
seen=()
gone_ms=
while :; do
	now=$(($(mc_now_ms) - t0))
	for p in "${A_PAGES_B[0]}" "${A_PAGES_B[7]}"; do
		for op in stat read; do
			read -r res ms < <(mc_errno_timed 10 "$op" "$p")
			case $res in
			OK | ENOENT) ;;
			EIO | ENOTCONN | SHORT | HANG | FAILED*)
				fail "$op on B of a page of the killed host gave $res after $now ms (${ms} ms for the call)" ;;
			esac
			[ "$ms" -le "$OP_LIMIT_MS" ] ||
				fail "$op on B of a page of the killed host took $ms ms ($res), more than $OP_LIMIT_MS"
			[ "$op" = read ] && [ "$res" = OK ] &&
				fail "a read on B of a page only the killed host held returned bytes"
			case " ${seen[*]} " in
			*" $op:$res "*) ;;
			*) seen+=("$op:$res") ;;
			esac
		done
	done
	if [ "$(mc_errno stat "${A_PAGES_B[0]}")" = ENOENT ] &&
		[ "$(mc_errno stat "${A_PAGES_B[7]}")" = ENOENT ]; then
		gone_ms=$(($(mc_now_ms) - t0))
		break
	fi
	[ "$now" -le "$limit" ] || break
	sleep 0.2
done
note "after kill -9 of A, B saw: ${seen[*]}"
[ -n "$gone_ms" ] ||
	fail "A's pages still exist on B $limit ms after A was killed (client ttl $TTL_MS ms): stat gives $(mc_errno stat "${A_PAGES_B[0]}")"
note "A's pages gave ENOENT on B $gone_ms ms after the kill (client ttl $TTL_MS ms)"
for i in 0 1 2 3 4 5 6 7; do
	expect_errno ENOENT stat "${A_PAGES_B[$i]}"
	expect_errno ENOENT read "${A_PAGES_C[$i]}"
done
for h in b c; do
	sfb read --dir "$(kv $h)" "${ON_A[@]}" --expect-none >"$OUT" 2>&1 ||
		fail "A's pages after A's loss, on $h: $(cat "$OUT")"
	sfb exists --dir "$(kv $h)" "${ON_A[@]}" --expect 0 >"$OUT" 2>&1 ||
		fail "exists on $h after A's loss: $(cat "$OUT")"
	n=$(ls "$(kv $h)" | wc -l)
	# B's 8, and the 8 of A's first set, which B and C hold copies of
	# since they read them
	[ "$n" = 16 ] || fail "ls on $h after A's loss shows $n pages, expected 16 (B's, and A's first 8 that B and C have read)"
done
# what is held elsewhere reads on; new pages work
all_read c "${ON_B[@]}"
all_read b "${ON_B[@]}"
sfb write --dir "$C/kv" "${ON_C[@]}" >"$OUT" 2>&1 || fail "set on C after A's loss: $(cat "$OUT")"
all_read b "${ON_C[@]}"

mc_host_stop b
mc_host_stop c
mc_master_stop
fresh_pools

# ====== replica_num 2 ==========================================================

note "replica_num 2"
mc_master_start --db "$MC_MASTER_DIR/replica2.db" --client_ttl "$TTL" --replica_num 2
for h in a b c; do
	mc_host_start "$h" "${DAEMON_ARGS[@]}"
done
mkdir "$A/kv2" || fail "mkdir kv2"
R2=(--model r2 --seed two --pages 16 --page-size 2MiB)
sfb write --dir "$A/kv2" "${R2[@]}" >"$OUT" 2>&1 || fail "set on A (replica_num 2): $(cat "$OUT")"
mapfile -t R2_PAGES < <(sfb names --dir "$A/kv2" "${R2[@]}")
IDS=()
for p in "${R2_PAGES[@]}"; do
	IDS+=("$("$MC_PYTHON" -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.mooncake.page_id").decode())' "$p")") ||
		fail "no page id for $p"
done
# copies (hosts holding page id I): each page on A and on one other host
copies() {
	local n=0 h
	for h in a b c; do
		[ -f "$(mc_host_state $h)/pool/pages/$1" ] && n=$((n + 1))
	done
	echo $n
}
# shellcheck disable=SC2317 # called through mc_wait_for
all_twice() {
	local id
	for id in "${IDS[@]}"; do
		[ "$(copies "$id")" -ge 2 ] || return 1
	done
}
t0=$(mc_now_ms)
mc_wait_for 10 all_twice || {
	for i in "${!IDS[@]}"; do
		note "page ${IDS[$i]}: $(copies "${IDS[$i]}") copies"
	done
	fail "10 s after commit, not every page has copies on two hosts (replica_num 2)"
}
note "every page had two copies $(($(mc_now_ms) - t0)) ms after the last commit"
for id in "${IDS[@]}"; do
	[ -f "$(mc_host_state a)/pool/pages/$id" ] || fail "page $id written on A has no copy on A"
done
# and the master says so (getfattr on another host)
for p in "${R2_PAGES[@]}"; do
	q=$(kv2 c)/$(basename "$p")
	n=$("$MC_PYTHON" -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.mooncake.replicas").decode())' "$q") ||
		fail "no user.mooncake.replicas on C for $(basename "$p")"
	[ "$n" -ge 2 ] || fail "user.mooncake.replicas of $(basename "$p") on C is $n with replica_num 2"
done

mc_host_kill9 a
t0=$(mc_now_ms)
# at once (the master still thinks A lives: readers skip its dead copy) ...
sfb read --dir "$(kv2 b)" "${R2[@]}" --expect-all >"$OUT" 2>&1 ||
	fail "replica_num 2: read on B right after A's kill: $(cat "$OUT")"
note "replica_num 2: every page read on B $(($(mc_now_ms) - t0)) ms after A's kill"
# ... and after the master declared A dead.  B holds every page now (its
# replicas, and copies of C's made by the read); the pages whose second
# copy was on B have one copy left unless the master makes another on C.
sleep "$TTL"
sleep 1
if mc_wait_for 4 all_twice; then
	note "replica_num 2: every page has two copies again after A's loss"
else
	n=0
	for id in "${IDS[@]}"; do
		[ "$(copies "$id")" -ge 2 ] && n=$((n + 1))
	done
	note "replica_num 2: only $n of ${#IDS[@]} pages have two copies again 4 s after A was declared dead (not re-replicated)"
fi
for h in c b; do
	sfb read --dir "$(kv2 "$h")" "${R2[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "replica_num 2: read on $h after A was declared dead: $(cat "$OUT")"
	n=$(ls "$(kv2 "$h")" | wc -l)
	[ "$n" = 16 ] || fail "replica_num 2: ls on $h shows $n pages after A's loss, expected 16"
done

mc_done
