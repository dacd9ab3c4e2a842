#!/bin/bash
# t_cluster_partition: B's cable is pulled (its port on the hub goes down,
# so packets vanish without an answer, the worst case for timeouts).  On B,
# opens of pages held on A, lookups and creates fail within the rpc and
# transfer timeouts, never hang and never return bytes; on C, opens of
# pages only B holds fail as fast; A and C go on reading A's pages.  With
# the cable back, B registers again by itself (the master declared it dead
# meanwhile) and reads and writes work from and to B again; B's pages from
# before come back byte-exact or are cleanly gone, never wrong.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=100
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

TTL=2
RPC_MS=2000
XFER_MS=1000
DAEMON_ARGS=(--transfer-timeout 1 --rpc-timeout 2)
# one call may wait for the master twice (lookup, then where the copies
# are) and for one peer; python's start and a loaded machine on top
BOUND_MS=$((2 * RPC_MS + XFER_MS + 1500))
ON_A=(--model part --seed p-a --pages 8 --page-size 2MiB)
ON_B=(--model part --seed p-b --pages 4 --page-size 2MiB)
AFTER=(--model part --seed p-after --pages 4 --page-size 2MiB)
OUT=$MC_TEST_DIR/out

mc_net_up 3
mc_master_start --client_ttl "$TTL"
for h in a b c; do
	mc_host_start "$h" "${DAEMON_ARGS[@]}"
done
A=$(mc_host_mnt a) B=$(mc_host_mnt b) C=$(mc_host_mnt c)
kv() { echo "$(mc_host_mnt "$1")/kv"; }

mkdir "$A/kv" || fail "mkdir kv"
mc_wait_for 3 test -d "$B/kv" || fail "kv made on A is not on B"
sfb write --dir "$A/kv" "${ON_A[@]}" >"$OUT" 2>&1 || fail "set on A: $(cat "$OUT")"
sfb write --dir "$B/kv" "${ON_B[@]}" >"$OUT" 2>&1 || fail "set on B: $(cat "$OUT")"
sfb exists --dir "$B/kv" "${ON_A[@]}" --expect 8 >"$OUT" 2>&1 || fail "exists on B: $(cat "$OUT")"
mapfile -t A_ON_B < <(sfb names --dir "$B/kv" "${ON_A[@]}")
mapfile -t B_ON_C < <(sfb names --dir "$C/kv" "${ON_B[@]}")
B_IDS=()
for p in "${B_ON_C[@]}"; do
	B_IDS+=("$("$MC_PYTHON" -c 'import os, sys; print(os.getxattr(sys.argv[1], "user.mooncake.page_id").decode())' "$p")") ||
		fail "no page id for $p"
done

# bounded OP PATH [ARG]: the call fails, within BOUND_MS, and cleanly
bounded() {
	local what=$1 res ms
	shift
	read -r res ms < <(mc_errno_timed 20 "$@")
	note "cut: $what: $res in $ms ms"
	case $res in
	OK) fail "cut: $what succeeded" ;;
	HANG | SHORT | ENOTCONN | FAILED*) fail "cut: $what gave $res after $ms ms" ;;
	esac
	[ "$ms" -le "$BOUND_MS" ] || fail "cut: $what took $ms ms ($res), more than $BOUND_MS"
}

regs=$(mc_host_registrations b)
mc_link_down b
t0=$(mc_now_ms)

# --- B cut off --------------------------------------------------------------------

# first, while the master still counts B in: C tries B's data server
bounded "read on C of a page only B holds" read "${B_ON_C[1]}"
bounded "read on B of A's page" read "${A_ON_B[3]}"
bounded "read on B of another of A's pages" read "${A_ON_B[5]}"
bounded "stat on B of a name never seen" stat "$B/kv/never-seen.bin"
bounded "create on B" write_file "$B/kv/new-while-cut.bin" 65536
# the rest of the cluster goes on
sfb read --dir "$A/kv" "${ON_A[@]}" --expect-all >"$OUT" 2>&1 || fail "cut: A's pages on A: $(cat "$OUT")"
sfb read --dir "$C/kv" "${ON_A[@]}" --expect-all >"$OUT" 2>&1 || fail "cut: A's pages on C: $(cat "$OUT")"
note "cut: A and C read A's pages $(($(mc_now_ms) - t0)) ms into the cut"

# past the client ttl: the master declares B dead
sleep "$TTL"
bounded "read on B of A's page, past the ttl" read "${A_ON_B[6]}"

# --- the cable back ---------------------------------------------------------------

mc_link_up b
t0=$(mc_now_ms)
mc_host_wait_registered b 15 "$regs" ||
	fail "B did not register again within 15 s of its cable coming back"
note "B registered again $(($(mc_now_ms) - t0)) ms after its cable came back"

# reads on B work again (at once after the registration, or within a
# second or two while it sorts itself out)
sfb read --dir "$B/kv" "${ON_A[@]}" --wait 3 --expect-all >"$OUT" 2>&1 ||
	fail "after the cut: A's pages on B: $(cat "$OUT")"
# writes on B reach everyone
sfb write --dir "$B/kv" "${AFTER[@]}" >"$OUT" 2>&1 || fail "after the cut: set on B: $(cat "$OUT")"
for h in a c; do
	sfb read --dir "$(kv $h)" "${AFTER[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "after the cut: B's new pages on $h: $(cat "$OUT")"
done
[ ! -e "$A/kv/new-while-cut.bin" ] || fail "the create refused on B during the cut exists on A"
# B's pages from before the cut: byte-exact where they are, never wrong
for h in a c b; do
	sfb read --dir "$(kv $h)" "${ON_B[@]}" >"$OUT" 2>&1 ||
		fail "after the cut: B's old pages on $h: $(cat "$OUT")"
	note "after the cut: B's old pages on $h: $(cat "$OUT")"
done
# those the master dropped while B was away leave B's pool too
if grep -q 'hits=0 ' "$OUT"; then
	# shellcheck disable=SC2317 # called through mc_wait_for
	freed() {
		local id
		for id in "${B_IDS[@]}"; do
			[ ! -e "$(mc_host_state b)/pool/pages/$id" ] || return 1
		done
	}
	mc_wait_for 5 freed ||
		fail "B's pages that the master dropped during the cut still fill B's pool 5 s after B rejoined"
fi

mc_done
