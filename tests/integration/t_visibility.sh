#!/bin/bash
# t_visibility: a page is invisible to everyone else until its writer's
# LAST close, and complete the moment that close returns: no other process
# ever sees a half-written page (the short read that kills SGLang's
# prefetch thread), neither by stat, open nor readdir.  A page replaced
# (O_TRUNC rewrite, or temp file and rename) shows its old bytes until the
# replacing close and its new ones after; its name never vanishes on the
# way.  An unlinked page keeps its bytes for the descriptors open on it,
# and an open for writing of a page held open is ETXTBSY.  With FUSE
# passthrough and without.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_python

MiB=1048576
SRC=$MC_TEST_DIR/src.bin

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

# replace.py trunc|rename PATH N: replace PATH N times (O_TRUNC rewrite,
# or SGLang's temp file + os.replace) while a second process stats it (and,
# for rename, reads it) without pause.  Version i is 1 MiB of the byte i.
cat >"$MC_TEST_DIR/replace.py" <<'EOF'
import errno, multiprocessing as mp, os, sys
how, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
SIZE = 1 << 20

def write(fname, i):
    fd = os.open(fname, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, bytes([i % 250 + 1]) * SIZE)
    finally:
        os.close(fd)

def prober(stop, out):
    c = dict(probes=0)
    def bad(what, detail=None):
        c[what] = c.get(what, 0) + 1
        if detail is not None and len(c.setdefault(what + "_seen", [])) < 5:
            c[what + "_seen"].append(detail)
    while not stop.is_set():
        c["probes"] += 1
        try:
            size = os.stat(path).st_size
            if size != SIZE:
                bad("stat_wrong_size", size)
        except OSError as e:
            bad("stat_" + errno.errorcode.get(e.errno, str(e.errno)))
        if how != "rename":
            continue  # an O_TRUNC open of a page being read is ETXTBSY
        try:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                b = f.read(SIZE + 1)
            if len(b) != SIZE or size != SIZE or b.count(b[:1]) != SIZE:
                bad("torn_read", "st_size %d, read %d bytes, %d distinct"
                    % (size, len(b), len(set(b))))
        except OSError as e:
            bad("open_" + errno.errorcode.get(e.errno, str(e.errno)))
    out.put(c)

write(path, 0)
stop, q = mp.Event(), mp.Queue()
p = mp.Process(target=prober, args=(stop, q))
p.start()
errors = []
try:
    for i in range(1, n + 1):
        try:
            if how == "trunc":
                write(path, i)
            else:
                tmp = "%s.tmp.%d.%d" % (path, os.getpid(), i)
                write(tmp, i)
                os.replace(tmp, path)
        except OSError as e:
            errors.append("%d: %s" % (i, errno.errorcode.get(e.errno, e.errno)))
finally:
    stop.set()
c = q.get(timeout=30)
p.join()
try:
    with open(path, "rb") as f:
        if f.read() != bytes([n % 250 + 1]) * SIZE:
            errors.append("the last version reads back wrong")
except OSError as e:
    errors.append("after the last replacement: %s" % e)
print("%s: %d replacements, writer errors %s, prober %s" % (how, n, errors[:5], c))
sys.exit(0 if not errors and list(c) == ["probes"] else 1)
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
	local r
	# O_PATH, then a read-only reopen through /proc: never the bytes
	r=$(mc_errno opath_read "$F")
	[ "$r" = ENOENT ] || [ "$r" = ESTALE ] ||
		fail "$1: an O_PATH open reopened through /proc gave $r, expected ENOENT or ESTALE"
	expect_errno ENOENT stat "$F"
	expect_errno ENOENT open_r "$F"
	ls "$MNT/pages" | grep -qxF "$(basename "$F")" && fail "$1: ls lists the unfinished page"
	[ -z "$(find "$MNT/pages" -name "$(basename "$F")")" ] ||
		fail "$1: find lists the unfinished page"
	return 0
}

# complete: the full size and the exact bytes, at once
complete() {
	local size
	size=$(stat -c %s "$F" 2>&1)
	[ "$size" = $((8 * MiB)) ] || fail "$1: right after close, stat says: $size"
	cmp "$SRC" "$F" || fail "$1: right after close the bytes differ"
	ls "$MNT/pages" | grep -qxF "$(basename "$F")" || fail "$1: ls does not list the page"
}

for mode in auto off; do
	mc_start --global-segment-size 64MiB --passthrough $mode
	mkdir "$MNT/pages" || fail "mkdir pages"
	mc_random_file "$SRC" $((8 * MiB))

	# --- one fd: invisible while half written, complete after close ---------

	F=$MNT/pages/one.bin
	expect_errno ENOENT stat "$F"	# primes the kernel's negative cache, if any
	writer open! half! rest! close
	at open
	invisible "$mode: after open"
	go open
	at half
	invisible "$mode: after half the page"
	go half
	at rest
	invisible "$mode: after the whole page, before close"
	go rest
	wait $WPID || fail "$mode: the writer failed"
	complete "$mode: one fd"

	# --- the dup'ed fd (numpy's tofile): the first close does not commit ---

	F=$MNT/pages/dup.bin
	writer open dup half rest close!
	at close
	invisible "$mode: after the first of two closes"
	go close
	wait $WPID || fail "$mode: the writer failed"
	complete "$mode: dup'ed fd"
	[ "$(find "$MNT/pages" -name dup.bin | wc -l)" = 1 ] || fail "$mode: the dup'ed page shows up twice"

	# --- a writer that reads its page back and holds it open: the commit
	# does not wait for that reader, and others see the page at once
	"$MC_PYTHON" - "$MNT/pages" <<'PY' || fail "$mode: read back and held open: $(cat "$MC_TEST_DIR/held.err")"
import os, subprocess, sys
d = sys.argv[1]
for i in range(100):
    p = os.path.join(d, "held-%d.bin" % i)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, bytes([i]) * 65536)
    os.close(fd)
    r = os.open(p, os.O_RDONLY)
    out = subprocess.run(["stat", "-c", "%s", p], capture_output=True,
                         text=True, timeout=10)
    os.close(r)
    os.unlink(p)	# the pool is small: leave the later pages their room
    if out.stdout.strip() != "65536":
        open(os.environ["MC_TEST_DIR"] + "/held.err", "w").write(
            "page %d: another process's stat said %r %r" % (i, out.stdout, out.stderr))
        sys.exit(1)
PY

	# --- a descriptor handed to a child (a shell's exec 3>, subprocess
	# with stdout= a file): the child writes and fstats it, while others
	# still see nothing; the writer's own fstat must not let the kernel
	# cache the page's attributes for them
	F=$MNT/pages/inherited.bin
	exec {wfd}>"$F" || fail "$mode: exec {fd}> on the mount"
	cat "$SRC" >&"$wfd" || fail "$mode: a child could not write (and fstat) an inherited descriptor"
	stat -c %s "/proc/self/fd/$wfd" >/dev/null || fail "$mode: fstat through /proc of an inherited descriptor"
	# (the probes must not inherit the descriptor themselves)
	invisible "$mode: written through an inherited descriptor, before close" {wfd}>&-
	expect_errno ENOENT getxattr "$F" user.mooncake.state {wfd}>&-
	exec {wfd}>&-
	complete "$mode: inherited descriptor"

	# --- replacing a committed page: readers see the old bytes until close

	F=$MNT/pages/one.bin
	cp "$MC_TEST_DIR/src.bin" "$MC_TEST_DIR/old.bin"
	mc_random_file "$SRC" $((8 * MiB))	# new content for the writer
	writer open! half! rest close
	at open
	cmp "$MC_TEST_DIR/old.bin" "$F" || fail "$mode: O_TRUNC on a committed page truncated it before close"
	go open
	at half
	cmp "$MC_TEST_DIR/old.bin" "$F" || fail "$mode: a reader saw a page being replaced change before close"
	[ "$(stat -c %s "$F")" = $((8 * MiB)) ] || fail "$mode: the page being replaced changed size"
	go half
	wait $WPID || fail "$mode: the replacing writer failed"
	complete "$mode: replaced page"

	# --- read your own write: the writer reopens each page the moment its
	# last close returns (the RELEASE that commits may still be queued)

	"$MC_PYTHON" -c '
import errno, os, sys
d, n, size = sys.argv[1], 300, 1 << 20
bad = []
for i in range(n):
    p = os.path.join(d, "own%03d.bin" % i)
    data = bytes([i % 250 + 1]) * size
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd2 = os.dup(fd)
    os.write(fd2, data)
    os.close(fd2)
    os.close(fd)
    try:
        r = os.open(p, os.O_RDONLY)
        try:
            got = os.pread(r, size + 1, 0)
        finally:
            os.close(r)
        if got != data:
            bad.append("%d: read %d bytes, wrong" % (i, len(got)))
    except OSError as e:
        bad.append("%d: %s" % (i, errno.errorcode.get(e.errno, e.errno)))
    os.unlink(p)
print("%d of %d pages did not read back: %s" % (len(bad), n, bad[:5]))
sys.exit(1 if bad else 0)
' "$MNT/pages" >"$MC_TEST_DIR/own.out" 2>&1 ||
		fail "$mode: reading back pages right after writing them: $(cat "$MC_TEST_DIR/own.out")"

	# --- replaced again and again while another process looks: the name
	# never vanishes, a reader never sees a torn or short page

	for how in trunc rename; do
		"$MC_PYTHON" "$MC_TEST_DIR/replace.py" "$how" "$MNT/pages/hot.bin" 200 \
			>"$MC_TEST_DIR/replace.out" 2>&1 ||
			fail "$mode: replacing a page ($how) under a prober: $(cat "$MC_TEST_DIR/replace.out")"
	done

	# --- unlink of a page held open: the name goes at once, and the
	# descriptor opened before keeps reading every byte of it

	F=$MNT/pages/gone.bin
	cp "$SRC" "$F" || fail "$mode: cp"
	exec {rfd}<"$F" || fail "$mode: open for reading"
	rm "$F" || fail "$mode: unlink of a page open for reading failed"
	expect_errno ENOENT stat "$F"
	expect_errno ENOENT unlink "$F"
	cmp "$SRC" - <&"$rfd" || fail "$mode: a descriptor opened before the unlink did not read the page's bytes"
	exec {rfd}<&-
	ls "$MNT/pages" | grep -qxF gone.bin && fail "$mode: ls lists an unlinked page"

	# --- a page being written does not exist for anyone else: their
	# unlink is ENOENT, and the page commits at its writer's close

	F=$MNT/pages/writing.bin
	writer open! half rest close
	at open
	expect_errno ENOENT unlink "$F"
	go open
	wait $WPID || fail "$mode: the writer failed"
	complete "$mode: a page someone tried to unlink while it was written"

	# --- an open for writing of a page open on this host: ETXTBSY, and
	# the page is untouched; once it is closed, the rewrite goes through

	exec {rfd}<"$F" || fail "$mode: open for reading"
	expect_errno ETXTBSY open_w "$F"
	expect_errno ETXTBSY open_wronly "$F"
	cmp "$SRC" - <&"$rfd" || fail "$mode: a refused open for writing changed the page"
	exec {rfd}<&-
	complete "$mode: a page after a refused open for writing"
	expect_errno OK write_file "$F" 4096
	[ "$(stat -c %s "$F")" = 4096 ] || fail "$mode: the rewrite after the reader closed did not replace the page"

	rm -rf "$MNT/pages" || fail "rm -rf pages"
	mc_stop
done

mc_done
