#!/bin/bash
# t_limits: the daemon stays within its means.  An idle daemon uses no CPU
# once its reserve is filled (its keeper once spun on a wrong clock), the
# keeper waits while pages are read, small pages get room past a full
# reserve, the first page after a restart into a full pool gets room, the
# first page after a start may be bigger than the slack, and a low
# open-file limit does not wedge it: idle pages keep descriptors, and
# more pages than the limit allows are written and read back (it once
# failed every open with EMFILE after ~1012 pages).
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_python

# cpu_ticks PID: user + system clock ticks the process has used
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# --- idle means idle ----------------------------------------------------------

# a hard limit of 512 descriptors, for the daemon too: it cannot raise
# its soft limit past that
ulimit -Sn 512 && ulimit -Hn 512 || hard_error "cannot lower the open file limit"
mc_start --global-segment-size 256MiB
sleep 3		# the reserve fills first
t0=$(cpu_ticks "$MC_PID")
sleep 2
t1=$(cpu_ticks "$MC_PID")
hz=$(getconf CLK_TCK)
# 10% of a core over 2 s is 0.2 s: a spinning thread shows 2 s
[ $((t1 - t0)) -le $((hz / 5)) ] ||
	fail "an idle daemon used $((t1 - t0)) ticks of CPU in 2 s (CLK_TCK $hz)"
grep -q '^Max open files  *[0-9]* *512 ' "/proc/$MC_PID/limits" ||
	hard_error "the daemon did not get the 512 descriptor hard limit"

# --- the keeper leaves the memory bandwidth to readers -----------------------

# Removing 96 MiB of pages leaves the keeper 96 MiB to zero, more than its
# 64 MiB slack; it starts once nothing was written or opened for 100 ms
# (passthrough: the daemon sees only the reads' opens).  While two readers
# open a page over and over it must wait; after, refill.  Two, so that one
# reader's stall on a busy machine leaves no quiet 100 ms.
mkdir "$MNT/big" || fail "mkdir big"
for i in 0 1 2 3 4; do
	dd if=/dev/urandom of="$MNT/big/p$i" bs=1M count=24 status=none ||
		fail "writing 24 MiB page $i"
done
READERS=()
for i in 1 2; do
	"$MC_PYTHON" -c '
import os, sys
path, started, stop = sys.argv[1:4]
open(started, "w").close()
while not os.path.exists(stop):
    with open(path, "rb") as f:
        if len(f.read(1 << 20)) != 1 << 20:
            sys.exit("short read of " + path)
' "$MNT/big/p0" "$MC_TEST_DIR/reading$i" "$MC_TEST_DIR/stop-reading" &
	READERS+=($!)
done
for i in 1 2; do
	mc_wait_for 10 test -e "$MC_TEST_DIR/reading$i" || fail "reader $i did not start"
done
rm "$MNT/big/p1" "$MNT/big/p2" "$MNT/big/p3" "$MNT/big/p4" || fail "removing four pages"
r0=$(mc_status reserve_bytes)
sleep 3
r1=$(mc_status reserve_bytes)
touch "$MC_TEST_DIR/stop-reading"
for pid in "${READERS[@]}"; do
	wait "$pid" || fail "a reader failed"
done
[ "$r1" -le "$r0" ] ||
	fail "the keeper grew the reserve from $r0 to $r1 bytes while the pool was being read"
reserve_above() { [ "$(mc_status reserve_bytes)" -gt "$1" ]; }
mc_wait_for 10 reserve_above "$r1" ||
	fail "the keeper did not refill the reserve ($r1 bytes) within 10 s of the last read"
rm -r "$MNT/big" || fail "removing the big pages"

# --- small pages do not starve behind the reserve ---------------------------

# pages under 1 MiB borrow nothing from the reserve, yet each takes a 2 MiB
# huge page: the reserve must still give way (it once held its memory and
# every create past the slack got ENOSPC)
[ "$(mc_status reserve_bytes)" -gt 0 ] || hard_error "the reserve did not fill"
mkdir "$MNT/small" || fail "mkdir"
for i in $(seq 300); do
	printf 'small %d\n' "$i" >"$MNT/small/s$i" ||
		fail "small page $i of 300 (600 MiB of huge pages in a 256 MiB pool) was refused"
done
[ "$(cat "$MNT/small/s300")" = "small 300" ] || fail "the newest small page reads back wrong"
[ "$(mc_status evictions)" -gt 0 ] || fail "no evictions while writing 300 small pages"

# --- the first page after a restart into a full pool --------------------------

# Eviction at create makes room for twice the largest page seen.  A
# restart once forgot that size, so the first page into a pool filled to
# its watermark got only the free memory left: a page a little bigger than
# that, yet less than twice the pages already there, failed with ENOSPC.
rm -r "$MNT/small" || fail "removing the small pages"
mkdir "$MNT/full" || fail "mkdir"
for i in $(seq 8); do
	head -c $((40 << 20)) /dev/zero >"$MNT/full/f$i" ||
		fail "40 MiB page $i of 8 (320 MiB in a 256 MiB pool) was refused"
done
[ "$(mc_status evictions)" -gt 0 ] || fail "no evictions while writing 320 MiB into 256 MiB"
mc_stop
mc_start --global-segment-size 256MiB
# what a writer gets without eviction: the free memory and the reserve
room=$(($(mc_status capacity_bytes) - $(mc_status used_bytes)))
size=$((room + (4 << 20)))
# eviction makes room for twice the largest page and the slack above the
# watermark: 4 pages of 40 MiB stay, and 98 MiB is within reach
[ "$size" -le $(((80 + 24) << 20)) ] ||
	hard_error "$room bytes were free after 320 MiB of 40 MiB pages: too many to test"
head -c "$size" /dev/urandom >"$MC_TEST_DIR/after" || hard_error "cannot make $size bytes of test data"
cp "$MC_TEST_DIR/after" "$MNT/full/after" ||
	fail "the first page after a restart ($size bytes, $room free, 40 MiB pages) was refused"
cmp -s "$MC_TEST_DIR/after" "$MNT/full/after" || fail "the first page after a restart reads back wrong"
rm -r "$MNT/full" "$MC_TEST_DIR/after" || fail "removing the full pool's pages"

# --- the first page after a start may be big ---------------------------------

# Under passthrough a write goes straight to the pool's tmpfs, where a full
# reserve leaves free only the slack above the high watermark (about 26 MiB
# of 256 MiB) and the create's loan.  The first page after a start, of a
# size nobody has seen yet, once got no loan: 80 MiB in an empty pool
# failed with ENOSPC.
mc_stop
mc_start --global-segment-size 256MiB
mc_wait_for 30 reserve_above $((160 << 20)) ||
	hard_error "the reserve did not refill after a restart ($(mc_status reserve_bytes) bytes)"
head -c $((80 << 20)) /dev/urandom >"$MC_TEST_DIR/first" || hard_error "cannot make 80 MiB of test data"
cp "$MC_TEST_DIR/first" "$MNT/first" ||
	fail "the first page since the start (80 MiB, empty 256 MiB pool) was refused"
cmp -s "$MC_TEST_DIR/first" "$MNT/first" || fail "the first page since the start reads back wrong"
rm "$MNT/first" "$MC_TEST_DIR/first" || fail "removing the first page"

# --- more pages than descriptors ----------------------------------------------

# every tiny page takes a 2 MiB huge page: a bigger pool, fresh, no reserve
mc_stop
umount "$STATE/pool" || hard_error "cannot unmount the pool"
mc_start --global-segment-size 2GiB --no-resident
mkdir "$MNT/many" || fail "mkdir"
for i in $(seq 700); do
	printf 'page %d\n' "$i" >"$MNT/many/p$i" || fail "writing page $i of 700 failed"
done
for i in $(seq 700); do
	[ "$(cat "$MNT/many/p$i")" = "page $i" ] || fail "page $i of 700 reads back wrong"
done
[ "$(ls "$MNT/many" | wc -l)" = 700 ] || fail "ls does not list 700 pages"

mc_done
