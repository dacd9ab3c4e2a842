#!/bin/bash
# t_eviction: the pool is a cache.  Past the high watermark the least
# recently OPENED pages that nobody holds open are evicted (they vanish);
# stat probes neither pin nor refresh a page; a page held open by a reader
# is never evicted; and when everything is held open a new page gets
# ENOSPC quickly, never a hang and never a partial page left visible.
# Use stays under the high watermark, and eviction starts near it.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_numpy

mc_start --global-segment-size 64MiB
mkdir "$MNT/ev" || fail "mkdir ev"
PAGE=(--dir "$MNT/ev" --model ev --page-size 4MiB --seed ev)

# page I: the path of page number I of the chain
mapfile -t PATHS < <(sfb names "${PAGE[@]}" --pages 101)
[ ${#PATHS[@]} = 101 ] || hard_error "sglang_file_backend.py names failed"
page() { echo "${PATHS[$1]}"; }
present() { [ "$(mc_errno stat "$(page "$1")")" = OK ]; }
write_page() {
	sfb write "${PAGE[@]}" --first "$1" --pages 1 >/dev/null ||
		fail "writing page $1 failed (a full pool must evict, not refuse)"
}
read_page() {	# opens the page: this is use
	sfb read "${PAGE[@]}" --first "$1" --pages 1 --expect-all >/dev/null ||
		fail "page $1 is not byte-exact"
}

H=0 B=1 A=2 FIRST=6 LAST=25	# 20 flood pages of 4 MiB = 80 MiB

# --- H is held open by a reader for the whole flood -------------------------

write_page $H
mkfifo "$MC_TEST_DIR/hold.in"
sfb hold "${PAGE[@]}" --first $H --pages 1 <"$MC_TEST_DIR/hold.in" >"$MC_TEST_DIR/hold.out" 2>&1 &
HOLDER=$!
exec 7<>"$MC_TEST_DIR/hold.in"	# read-write: never blocks
mc_wait_for 10 grep -q 'holding 1 pages' "$MC_TEST_DIR/hold.out" ||
	fail "the holder did not open page $H: $(cat "$MC_TEST_DIR/hold.out")"

# --- B is opened after A and X3..X5 were written; A is only ever stat'ed --
# By last open the order is A X3 X4 X5 B, so A goes well before B (even if
# eviction frees a few pages at once); were stat a use, A would be the
# youngest and go last.

write_page $B
write_page $A
for x in 3 4 5; do write_page $x; done
sleep 0.1
read_page $B
PA=$(page $A)
for _ in $(seq 20); do
	stat "$PA" >/dev/null || fail "stat of page A"
	ls -l "$MNT/ev" >/dev/null
	sfb exists "${PAGE[@]}" --first $A --pages 1 >/dev/null
done
[ "$(mc_status evictions)" = 0 ] || fail "evictions before the pool filled: $(mc_status evictions)"

# --- the flood ----------------------------------------------------------------

a_gone='' b_gone='' used_at_first=''
pool_used() { df -B1 --output=used "$MNT" | tail -n 1; }
for i in $(seq $FIRST $LAST); do
	[ -n "$used_at_first" ] || before=$(pool_used)
	write_page "$i"
	if [ -z "$used_at_first" ] && [ "$(mc_status evictions)" -gt 0 ]; then
		used_at_first=$before
	fi
	read_page "$i"
	present $H || fail "page H, held open by a reader, was evicted (after page $i)"
	if [ -z "$b_gone" ] && ! present $B; then
		b_gone=$i
		[ -n "$a_gone" ] ||
			fail "page B (opened) was evicted no later than page A (only stat'ed): stat refreshed the LRU"
	fi
	if [ -z "$a_gone" ] && ! present $A; then a_gone=$i; fi
done
[ -n "$a_gone" ] || fail "80 MiB went into a 64 MiB pool and page A was never evicted"
[ -n "$b_gone" ] || fail "80 MiB went into a 64 MiB pool and page B was never evicted"
note "A evicted while writing page $a_gone, B while writing page $b_gone"

sfb read "${PAGE[@]}" --first $((LAST - 7)) --pages 8 --expect-all >"$MC_TEST_DIR/out" ||
	fail "the 8 newest pages are not all there and exact: $(cat "$MC_TEST_DIR/out")"
present $FIRST && fail "the oldest flood page survived 80 MiB through a 64 MiB pool"
expect_errno ENOENT open_r "$(page $FIRST)"
ev=$(mc_status evictions)
[ "${ev:-0}" -gt 0 ] || fail "status shows evictions '$ev' after evicting"

# ls lists exactly the pages that exist
n_ls=$(ls "$MNT/ev" | wc -l)
n_present=0
for i in $(seq $H $LAST); do
	present "$i" && n_present=$((n_present + 1))
done
[ "$n_ls" = "$n_present" ] || fail "ls lists $n_ls pages but $n_present can be stat'ed"
# eviction keeps the pool under its high watermark (0.9 by default), and
# starts only near it: a create makes room for twice the largest page
used=$(pool_used)
[ "$used" -le $((64 * 1048576 * 9 / 10)) ] ||
	fail "df shows $used bytes used in a 64 MiB pool: past the 0.9 high watermark"
[ "$used_at_first" -ge $((64 * 1048576 * 9 / 10 - 3 * 4 * 1048576)) ] ||
	fail "the first eviction came with only $used_at_first bytes of 64 MiB used: before the high watermark"

# the holder still reads its page's bytes; released, the page is intact
exec 7>&-
wait $HOLDER || fail "the held page changed under its reader: $(cat "$MC_TEST_DIR/hold.out")"
read_page $H

# --- ENOSPC: every page held open, nothing can be evicted --------------------

mc_expect_log 'ENOSPC|[Nn]o space|full'
rm -f "$MNT"/ev/* || fail "rm of the pages"
mkdir "$MNT/full" || fail "mkdir full"
cat >"$MC_TEST_DIR/fill.py" <<'EOF'
import errno, os, sys, time
sys.path.insert(0, os.environ["SFB_DIR"])
import numpy as np
import sglang_file_backend as sfb
d, size = sys.argv[1], 4 << 20
held = []
for i in range(40):
    path = os.path.join(d, "full%02d.bin" % i)
    t0 = time.monotonic()
    try:
        sfb.write_page_fd(path, sfb.page_bytes(path, size))
    except OSError as e:
        dt = time.monotonic() - t0
        name = errno.errorcode.get(e.errno, str(e.errno))
        print("page %d: %s after %.1f s, %d pages held" % (i, name, dt, len(held)))
        sys.stdout.flush()
        ok = e.errno == errno.ENOSPC and dt < 5
        if os.path.exists(path):
            print("the refused page is visible: %s" % path)
            ok = False
        for p, fd in held:  # the readers' pages are intact and readable
            buf = np.empty(size, dtype=np.uint8)
            try:
                n = os.preadv(fd, [buf], 0)
            except OSError as e:
                print("held page %s: read fails with %s"
                      % (os.path.basename(p), errno.errorcode.get(e.errno, e.errno)))
                ok = False
                continue
            if n != size or not np.array_equal(buf, sfb.page_bytes(p, size)):
                print("held page %s changed (read %d bytes)" % (os.path.basename(p), n))
                ok = False
        print(path)
        sys.exit(0 if ok else 1)
    try:
        held.append((path, os.open(path, os.O_RDONLY)))
    except FileNotFoundError:
        print("page %d: close returned success with %d pages held open, "
              "and the page is gone: a silent loss, not ENOSPC" % (i, len(held)))
        sys.exit(1)
print("40 pages of 4 MiB held open in a 64 MiB pool and no ENOSPC")
sys.exit(1)
EOF
SFB_DIR=$(dirname "$SFB") timeout 60 "$MC_PYTHON" "$MC_TEST_DIR/fill.py" "$MNT/full" \
	>"$MC_TEST_DIR/fill.out" 2>&1
rc=$?
[ $rc -ne 124 ] || fail "a write into a pool full of open pages hung: $(cat "$MC_TEST_DIR/fill.out")"
[ $rc -eq 0 ] || fail "pool full of open pages: $(cat "$MC_TEST_DIR/fill.out")"
note "$(head -n 1 "$MC_TEST_DIR/fill.out")"
refused=$(tail -n 1 "$MC_TEST_DIR/fill.out")
expect_errno ENOENT stat "$refused"
ls "$MNT/full" | grep -qxF "$(basename "$refused")" && fail "ls lists the refused page"

# released, the pages can be evicted again and writes succeed
write_page 100
read_page 100

# --- a high watermark of 0.5 holds the pool at half ----------------------------

# Pages of 2 MiB into 64 MiB: use never passes 32 MiB, and eviction starts
# near it, not before (room is made for twice the largest page); at the
# default 0.9, or evicting only when full, use would climb past 50 MiB.
rm -rf "$MNT/ev" "$MNT/full" || fail "removing the earlier pages"
mc_stop
mc_start --global-segment-size 64MiB --eviction-high-watermark-ratio 0.5
mkdir -p "$MNT/half" || fail "mkdir half"
ev0=$(mc_status evictions) max_used=0 used_at_first=''
for i in $(seq 40); do
	before=$(pool_used)
	head -c $((2 << 20)) /dev/zero >"$MNT/half/p$i" || fail "2 MiB page $i into a half-full pool was refused"
	used=$(pool_used)
	[ "$used" -le "$max_used" ] || max_used=$used
	if [ -z "$used_at_first" ] && [ "$(mc_status evictions)" -gt "$ev0" ]; then
		used_at_first=$before
	fi
done
[ -n "$used_at_first" ] || fail "80 MiB through a 64 MiB pool with a 0.5 watermark and no eviction"
[ "$max_used" -le $((32 << 20)) ] ||
	fail "use reached $max_used bytes of 64 MiB with a high watermark of 0.5"
[ "$used_at_first" -ge $(((32 - 3 * 2) << 20)) ] ||
	fail "the first eviction came at $used_at_first bytes used, well below a 0.5 watermark of 64 MiB"

mc_done
