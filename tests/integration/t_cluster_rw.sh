#!/bin/bash
# t_cluster_rw: three hosts (network namespaces), one pool.  SGLang's file
# backend writes pages on host A (each visible on B a moment after close()
# returned on A); on B and C they exist (stat), list with
# their names and sizes, and read byte-exact with one read of the full
# size.  B's first read moves the bytes over B's link into a copy in B's own
# pool; B's second read is local (no page bytes cross the link).  Pages set
# on C in the rename era read on A and B; a plain file copied in on B reads
# the same on A and C; a page the master took but A has not yet moved out
# of pending/ reads on C; a page only A holds is replaced (O_TRUNC) on B and
# reads new on every host; unlink on B makes the page vanish on A and C, and
# SGLang's clear on B frees every copy on every host.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=100
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

MiB=1048576
PAGES=12
PAGE=$((8 * MiB))
KV=(--model meta-llama/Llama-3.1-8B-Instruct --pages "$PAGES" --page-size 8MiB)
OUT=$MC_TEST_DIR/out

mc_net_up 3
# shellcheck disable=SC2119 # no arguments: the defaults
mc_master_start
for h in a b c; do
	mc_host_start "$h"
done
A=$(mc_host_mnt a) B=$(mc_host_mnt b) C=$(mc_host_mnt c)
POOL_A=$(mc_host_state a)/pool/pages
POOL_B=$(mc_host_state b)/pool/pages
POOL_C=$(mc_host_state c)/pool/pages

# xattr PATH NAME: an extended attribute's value
xattr() {
	"$MC_PYTHON" -c 'import os, sys; print(os.getxattr(sys.argv[1], sys.argv[2]).decode())' "$1" "$2"
}
# page_id PATH: the pool id of a page (its file name in every pool)
page_id() { xattr "$1" user.mooncake.page_id; }

# --- a directory made on A is one on B and C ----------------------------------

mkdir "$A/kv" || fail "mkdir kv on A"
for h in b c; do
	mc_wait_for 3 test -d "$(mc_host_mnt $h)/kv" ||
		fail "the directory made on A is not a directory on $h: $(mc_errno stat "$(mc_host_mnt $h)/kv")"
done

# --- closed on A, visible on B within a moment ------------------------------
#
# A page commits at its last close: the RELEASE the kernel sends right after
# close(2) returns.  On A itself a lookup waits for that commit; another host
# sees the page once the commit reached the master, which must take well
# under a second (doc/cluster.md).

"$MC_PYTHON" - "$A" "$B" >"$OUT" 2>&1 <<'PY' || fail "pages closed on A, stat on B: $(cat "$OUT")"
import os, sys, time
a, b = sys.argv[1], sys.argv[2]
late, worst = [], 0.0
for i in range(20):
    name = "closed-%d.bin" % i
    fd = os.open(os.path.join(a, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bytes([i]) * 65536)
    os.close(fd)
    t0 = time.monotonic()
    while True:
        try:
            st = os.stat(os.path.join(b, name))
            if st.st_size != 65536:
                late.append(name + " (wrong size %d)" % st.st_size)
            break
        except FileNotFoundError:
            if time.monotonic() - t0 > 1.0:
                late.append(name + " (not there after 1 s)")
                break
            time.sleep(0.001)
    worst = max(worst, time.monotonic() - t0)
if late:
    sys.exit("%d of 20 pages closed on A not right on B: %s"
             % (len(late), ", ".join(late[:4])))
print("slowest page visible on B %.1f ms after close on A" % (worst * 1e3))
PY
note "$(cat "$OUT")"
rm -f "$A"/closed-*.bin

# --- set on A (SGLang's direct era) --------------------------------------------

sfb write --dir "$A/kv" "${KV[@]}" >"$OUT" 2>&1 || fail "set on A: $(cat "$OUT")"
grep -q "written=$PAGES skipped=0 failed=0" "$OUT" || fail "set on A: $(cat "$OUT")"
# a second server on B skips what exists (never overwrites)
sfb write --dir "$B/kv" "${KV[@]}" >"$OUT" 2>&1 || fail "set again on B: $(cat "$OUT")"
grep -q "written=0 skipped=$PAGES failed=0" "$OUT" ||
	fail "set on B of the pages A wrote did not skip them all: $(cat "$OUT")"

# --- exists, ls and stat on B and C --------------------------------------------

for h in b c; do
	sfb exists --dir "$(mc_host_mnt $h)/kv" "${KV[@]}" --expect "$PAGES" >"$OUT" 2>&1 ||
		fail "exists on $h: $(cat "$OUT")"
done
ls "$A/kv" >"$MC_TEST_DIR/ls.a" || fail "ls on A"
[ "$(wc -l <"$MC_TEST_DIR/ls.a")" = "$PAGES" ] || fail "ls on A lists $(wc -l <"$MC_TEST_DIR/ls.a") pages, expected $PAGES"
for h in b c; do
	ls "$(mc_host_mnt $h)/kv" >"$MC_TEST_DIR/ls.$h" || fail "ls on $h"
	cmp -s "$MC_TEST_DIR/ls.a" "$MC_TEST_DIR/ls.$h" ||
		fail "ls on $h differs from ls on A: $(diff "$MC_TEST_DIR/ls.a" "$MC_TEST_DIR/ls.$h" | head -5)"
	sizes=$(cd "$(mc_host_mnt $h)/kv" && stat -c %s -- * | sort -u)
	[ "$sizes" = "$PAGE" ] || fail "stat on $h gives sizes '$sizes', expected $PAGE"
	n=$(ls -l "$(mc_host_mnt $h)/kv" | grep -c "^-rw-r--r-- .* $PAGE ")
	[ "$n" = "$PAGES" ] || fail "ls -l on $h shows $n pages of $PAGE bytes with mode 644, expected $PAGES"
done

# --- B: the first read fetches, the second is local ----------------------------

mapfile -t NAMES <"$MC_TEST_DIR/ls.a"
IDS=()
for name in "${NAMES[@]}"; do
	id=$(page_id "$B/kv/$name") || fail "no user.mooncake.page_id on B for $name"
	[ "$(page_id "$A/kv/$name")" = "$id" ] || fail "$name has page id $id on B and $(page_id "$A/kv/$name") on A"
	[ -f "$POOL_A/$id" ] || fail "page $name ($id) is not in A's pool, where it was written"
	[ -e "$POOL_B/$id" ] && fail "page $name ($id) is in B's pool before B read it"
	IDS+=("$id")
done

# where the bytes are, as getfattr shows it: on A only
IP_A=$(mc_host_ip a) IP_B=$(mc_host_ip b)
loc=$(xattr "$C/kv/${NAMES[0]}" user.mooncake.location) || fail "no user.mooncake.location on C"
case $loc in
"$IP_A:"[0-9]*) ;;
*) fail "before any read, user.mooncake.location on C is '$loc', expected A's data server ($IP_A:port)" ;;
esac
[ "$(xattr "$C/kv/${NAMES[0]}" user.mooncake.replicas)" = 1 ] ||
	fail "before any read, user.mooncake.replicas is $(xattr "$C/kv/${NAMES[0]}" user.mooncake.replicas), expected 1"

rx0=$(mc_host_rx_bytes b)
f0=$(mc_host_status b fetches)
sfb read --dir "$B/kv" "${KV[@]}" --expect-all >"$OUT" 2>&1 || fail "first get on B: $(cat "$OUT")"
grep -q "hits=$PAGES misses=0 wrong_bytes=0 short_reads=0" "$OUT" || fail "first get on B: $(cat "$OUT")"
rx1=$(mc_host_rx_bytes b)
[ $((rx1 - rx0)) -ge $((PAGES * PAGE)) ] ||
	fail "B's first read of $((PAGES * PAGE)) bytes of A's pages received only $((rx1 - rx0)) bytes on its link"
note "B's first read: $((rx1 - rx0)) bytes over its link"

for i in "${!NAMES[@]}"; do
	[ -f "$POOL_B/${IDS[$i]}" ] || fail "after B's first read, ${NAMES[$i]} (${IDS[$i]}) has no copy in B's pool"
	cmp -s "$POOL_A/${IDS[$i]}" "$POOL_B/${IDS[$i]}" ||
		fail "B's pool copy of ${NAMES[$i]} differs from A's"
done

rx2=$(mc_host_rx_bytes b)
sfb read --dir "$B/kv" "${KV[@]}" --expect-all >"$OUT" 2>&1 || fail "second get on B: $(cat "$OUT")"
grep -q "hits=$PAGES misses=0 wrong_bytes=0 short_reads=0" "$OUT" || fail "second get on B: $(cat "$OUT")"
rx3=$(mc_host_rx_bytes b)
[ $((rx3 - rx2)) -lt $((PAGE / 8)) ] ||
	fail "B's second read of pages it holds received $((rx3 - rx2)) bytes on its link (not local)"
note "B's second read: $((rx3 - rx2)) bytes over its link"
# B's own count agrees: one fetch a page, the first time only
f2=$(mc_host_status b fetches)
if [ -n "$f0" ]; then
	[ "$((f2 - f0))" = "$PAGES" ] ||
		fail "B's status counts $((f2 - f0)) fetches for two reads of $PAGES of A's pages, expected $PAGES"
else
	note "B's .mooncake/status has no fetches counter"
fi
[ "$(mc_host_status b mode)" = cluster ] || fail "B's status says mode '$(mc_host_status b mode)'"
# B's copy is one the cluster knows of: two copies, one of them "here" on B
loc=$(xattr "$B/kv/${NAMES[0]}" user.mooncake.location)
case ",$loc," in
*",$IP_B:"[0-9]*"(here),"*) ;;
*) fail "after B's read, user.mooncake.location on B is '$loc': no copy on B ($IP_B) marked (here)" ;;
esac
case ",$loc," in
*",$IP_A:"[0-9]*) ;;
*) fail "after B's read, user.mooncake.location on B is '$loc': A's copy is not listed" ;;
esac
[ "$(xattr "$C/kv/${NAMES[0]}" user.mooncake.replicas)" = 2 ] ||
	fail "after B's read, user.mooncake.replicas on C is $(xattr "$C/kv/${NAMES[0]}" user.mooncake.replicas), expected 2 (A's and B's copy)"

# C reads them too (from A or from B's copy), byte-exact
sfb read --dir "$C/kv" "${KV[@]}" --expect-all >"$OUT" 2>&1 || fail "get on C: $(cat "$OUT")"
for name in "${NAMES[@]:0:3}"; do
	cmp "$A/kv/$name" "$C/kv/$name" || fail "$name differs between A and C (cmp)"
done

# --- set on C in the rename era, get on A and B -------------------------------

KV2=(--model qwen --tp-rank 1 --tp-size 2 --pages 6 --page-size 4MiB --seed c-prompt)
sfb write --dir "$C/kv" "${KV2[@]}" --era rename >"$OUT" 2>&1 || fail "rename-era set on C: $(cat "$OUT")"
grep -q "written=6 skipped=0 failed=0" "$OUT" || fail "rename-era set on C: $(cat "$OUT")"
for h in a b; do
	sfb read --dir "$(mc_host_mnt $h)/kv" "${KV2[@]}" --expect-all >"$OUT" 2>&1 ||
		fail "get on $h of C's rename-era pages: $(cat "$OUT")"
done
ls "$A/kv" | grep -q '\.tmp\.' && fail "a temporary file of the rename era is still listed on A"

# --- a plain file copied in on B --------------------------------------------------

SRC=$MC_TEST_DIR/src.bin
mc_random_file "$SRC" $((3 * MiB + 12345))
cp "$SRC" "$B/odd.bin" || fail "cp into B"
want=$(sha256sum <"$SRC")
for h in a c b; do
	got=$(sha256sum <"$(mc_host_mnt $h)/odd.bin") || fail "reading odd.bin on $h"
	[ "$got" = "$want" ] || fail "odd.bin on $h has sha256 $got, expected $want"
	[ "$(stat -c %s "$(mc_host_mnt $h)/odd.bin")" = $((3 * MiB + 12345)) ] ||
		fail "odd.bin on $h has size $(stat -c %s "$(mc_host_mnt $h)/odd.bin")"
done

# --- a page the master took, not yet moved out of its writer's pending/ ------
#
# A's daemon moves a page's file from pending/ to pages/ only once the master
# took the commit, so another host can be sent to it in between.  Held in
# that moment (the file put back in pending/), C's open must be served, not
# refused: refused, it failed with ESTALE, and the kernel's one look again
# could fall in the same moment (t_cluster_concurrent, 1 run in 5).

mc_random_file "$MC_TEST_DIR/moving.bin" $((MiB + 777))
cp "$MC_TEST_DIR/moving.bin" "$A/moving.bin" || fail "cp into A"
mc_wait_for 3 test -f "$C/moving.bin" || fail "moving.bin from A is not seen on C"
MOVING_ID=$(page_id "$A/moving.bin") || fail "no user.mooncake.page_id on A for moving.bin"
PENDING_A=$(mc_host_state a)/pool/pending
mv "$POOL_A/$MOVING_ID" "$PENDING_A/" ||
	hard_error "cannot move page $MOVING_ID back to A's pending/"
got=$(mc_errno read "$C/moving.bin")
[ "$got" = OK ] ||
	fail "read on C of a page the master took but A has not moved out of pending/ gave $got, expected the page"
cmp -s "$MC_TEST_DIR/moving.bin" "$C/moving.bin" ||
	fail "moving.bin read on C while in A's pending/ differs from what A wrote"
mv "$PENDING_A/$MOVING_ID" "$POOL_A/" ||
	hard_error "cannot move page $MOVING_ID back to A's pages/"
rm "$A/moving.bin" || fail "unlink moving.bin on A"

# --- replace on B (O_TRUNC) of a page only A holds ------------------------------

mc_random_file "$MC_TEST_DIR/old.bin" $((2 * MiB))
mc_random_file "$MC_TEST_DIR/new.bin" $((1 * MiB + 4321))
cp "$MC_TEST_DIR/old.bin" "$A/replaced.bin" || fail "cp into A"
mc_wait_for 3 test -f "$B/replaced.bin" || fail "replaced.bin from A is not seen on B"
OLD_ID=$(page_id "$B/replaced.bin")
# cp opens the existing name with O_WRONLY|O_TRUNC, as SGLang's direct era
# does when two servers race to set one page
cp "$MC_TEST_DIR/new.bin" "$B/replaced.bin" 2>"$OUT" ||
	fail "replacing (O_TRUNC) on B a page whose bytes only A holds: $(cat "$OUT"); B's log: $(grep -E '\[(err|warning)\]' "$(mc_host_log b)" | tail -n 2)"
for h in b a c; do
	# shellcheck disable=SC2317 # called through mc_wait_for
	replaced_on() { cmp -s "$MC_TEST_DIR/new.bin" "$(mc_host_mnt "$1")/replaced.bin"; }
	mc_wait_for 3 replaced_on "$h" ||
		fail "after the replace on B, replaced.bin on $h is not the new bytes (size $(stat -c %s "$(mc_host_mnt $h)/replaced.bin"))"
done
# shellcheck disable=SC2317 # called through mc_wait_for
old_gone() { [ ! -e "$POOL_A/$OLD_ID" ] && [ ! -e "$POOL_B/$OLD_ID" ]; }
mc_wait_for 5 old_gone || fail "5 s after the replace, the old page $OLD_ID still has a copy in A's or B's pool"

# --- unlink on B: gone on A and C ----------------------------------------------

# the first page of the key chain, so that exists stops at once after
FIRST=$(basename "$(sfb names --dir "$B/kv" "${KV[@]}" --pages 1)")
FIRST_ID=$(page_id "$B/kv/$FIRST")
# shellcheck disable=SC2317 # called through mc_wait_for
gone_on() { [ "$(mc_errno stat "$1")" = ENOENT ]; }
rm "$B/kv/$FIRST" || fail "unlink on B"
for h in a c; do
	mc_wait_for 3 gone_on "$(mc_host_mnt $h)/kv/$FIRST" ||
		fail "after unlink on B, stat on $h gives $(mc_errno stat "$(mc_host_mnt $h)/kv/$FIRST")"
	expect_errno ENOENT read "$(mc_host_mnt $h)/kv/$FIRST"
	ls "$(mc_host_mnt $h)/kv" | grep -qF "$FIRST" && fail "after unlink on B, ls on $h still lists $FIRST"
	sfb exists --dir "$(mc_host_mnt $h)/kv" "${KV[@]}" --expect 0 >"$OUT" 2>&1 ||
		fail "exists on $h after unlink of the first page: $(cat "$OUT")"
done
# its copies (A's, and B's from its reads) go from every pool
# shellcheck disable=SC2317 # called through mc_wait_for
no_copy() { [ ! -e "$POOL_A/$1" ] && [ ! -e "$POOL_B/$1" ] && [ ! -e "$POOL_C/$1" ]; }
mc_wait_for 5 no_copy "$FIRST_ID" ||
	fail "5 s after unlink, page $FIRST_ID still has a copy in a pool: $(ls -d "$POOL_A/$FIRST_ID" "$POOL_B/$FIRST_ID" "$POOL_C/$FIRST_ID" 2>/dev/null)"

# --- SGLang's clear on B: every copy everywhere is freed ------------------------

sfb clear --dir "$B/kv" >"$OUT" 2>&1 || fail "clear on B: $(cat "$OUT")"
grep -q "removed=$((PAGES - 1 + 6)) failed=0" "$OUT" || fail "clear on B: $(cat "$OUT")"
for h in a c; do
	# shellcheck disable=SC2317 # called through mc_wait_for
	empty() { [ -z "$(ls "$1")" ]; }
	mc_wait_for 3 empty "$(mc_host_mnt $h)/kv" || fail "after clear on B, ls on $h shows: $(ls "$(mc_host_mnt $h)/kv" | head -3)"
done
# shellcheck disable=SC2317 # called through mc_wait_for
all_freed() {
	local id
	for id in "${IDS[@]}"; do
		no_copy "$id" || return 1
	done
}
mc_wait_for 5 all_freed || fail "5 s after clear, copies of cleared pages remain in the pools: $(for id in "${IDS[@]}"; do ls -d "$POOL_A/$id" "$POOL_B/$id" "$POOL_C/$id" 2>/dev/null; done | head -5)"
cmp "$SRC" "$C/odd.bin" || fail "odd.bin changed on C after clearing kv"

mc_done
