#!/bin/bash
# t_visibility: a page is invisible to everyone else until its writer's
# LAST close, and complete the moment that close returns: no other process
# ever sees a half-written page (the short read that kills SGLang's
# prefetch thread), neither by stat, open nor readdir.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse

MiB=1048576
SRC=$MC_TEST_DIR/src.bin
mc_random_file "$SRC" $((8 * MiB))

# A writer that stops at named points and waits to be told to go on:
#	writer.py SRC DST STEP...    STEP is one of
#	open (O_WRONLY|O_CREAT|O_TRUNC)  dup  half (first half of SRC)
#	rest (second half)  close (the first fd)  close2 (the dup)
# After each step it touches MC_TEST_DIR/at.<step> and waits for
# MC_TEST_DIR/go.<step> when the step is followed by a '!'.
cat >"$MC_TEST_DIR/writer.py" <<'EOF'
import os, sys, time
src, dst, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
tdir = os.environ["MC_TEST_DIR"]
data = open(src, "rb").read()
half = len(data) // 2
fds = []
for step in steps:
    name = step.rstrip("!")
    if name == "open":
        fds.append(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
    elif name == "dup":
        fds.append(os.dup(fds[0]))
    elif name == "half":
        assert os.write(fds[-1], data[:half]) == half
    elif name == "rest":
        assert os.write(fds[-1], data[half:]) == len(data) - half
    elif name == "close":
        os.close(fds.pop(0))
    elif name == "close2":
        os.close(fds.pop())
    open(os.path.join(tdir, "at." + name), "w").close()
    if step.endswith("!"):
        go = os.path.join(tdir, "go." + name)
        while not os.path.exists(go):
            time.sleep(0.02)
EOF

# writer STEPS...: start the writer on $F in the background
writer() {
	rm -f "$MC_TEST_DIR"/at.* "$MC_TEST_DIR"/go.*
	"$MC_PYTHON" "$MC_TEST_DIR/writer.py" "$SRC" "$F" "$@" &
	WPID=$!
}
at() {
	mc_wait_for 10 test -e "$MC_TEST_DIR/at.$1" || fail "the writer did not reach '$1'"
}
go() { : >"$MC_TEST_DIR/go.$1"; }

# invisible NAME: from other processes, NAME does not exist in any way
invisible() {
	expect_errno ENOENT stat "$F"
	expect_errno ENOENT open_r "$F"
	ls "$MNT/pages" | grep -qxF "$(basename "$F")" && fail "$1: ls lists the unfinished page"
	find "$MNT/pages" -type f | grep -q . && fail "$1: find lists the unfinished page"
	return 0
}

# complete: the full size and the exact bytes, at once
complete() {
	[ "$(stat -c %s "$F")" = $((8 * MiB)) ] ||
		fail "$1: right after close the size is $(stat -c %s "$F" 2>&1)"
	cmp "$SRC" "$F" || fail "$1: right after close the bytes differ"
	ls "$MNT/pages" | grep -qxF "$(basename "$F")" || fail "$1: ls does not list the page"
}

mc_start --global-segment-size 64MiB
mkdir "$MNT/pages" || fail "mkdir pages"

# --- one fd: invisible while half written, complete after close -------------

F=$MNT/pages/one.bin
expect_errno ENOENT stat "$F"	# primes the kernel's negative cache, if any
writer open! half! rest! close
at open
invisible "after open"
go open
at half
invisible "after half the page"
go half
at rest
invisible "after the whole page, before close"
go rest
wait $WPID || fail "the writer failed"
complete "one fd"

# --- the dup'ed fd (numpy's tofile): the first close does not commit -------

F=$MNT/pages/dup.bin
writer open dup half rest close!
at close
invisible "after the first of two closes"
go close
wait $WPID || fail "the writer failed"
complete "dup'ed fd"
[ "$(find "$MNT/pages" -name dup.bin | wc -l)" = 1 ] || fail "the dup'ed page shows up twice"

# --- replacing a committed page: readers see the old bytes until close ----

F=$MNT/pages/one.bin
cp "$MC_TEST_DIR/src.bin" "$MC_TEST_DIR/old.bin"
mc_random_file "$SRC" $((8 * MiB))	# new content for the writer
writer open! half! rest close
at open
cmp "$MC_TEST_DIR/old.bin" "$F" || fail "O_TRUNC on a committed page truncated it before close"
go open
at half
cmp "$MC_TEST_DIR/old.bin" "$F" || fail "a reader saw a page being replaced change before close"
[ "$(stat -c %s "$F")" = $((8 * MiB)) ] || fail "the page being replaced changed size"
go half
wait $WPID || fail "the replacing writer failed"
complete "replaced page"

mc_done
