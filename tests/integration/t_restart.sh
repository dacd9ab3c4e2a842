#!/bin/bash
# t_restart: the pool outlives the daemon.  After kill -9 a new daemon on
# the same mount point and state directory clears the stale mount itself
# and brings back every committed page byte-exact, but not a page that was
# still being written; a clean stop and start does the same; a second
# daemon on a state directory in use refuses to start.  A restart while the
# killed daemon's connection is still being torn down waits for it instead
# of mounting on top of it.  Started without --foreground, it detaches
# once it serves, with the -o options on its mount.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_numpy

MiB=1048576
SRC=$MC_TEST_DIR/src.bin
mc_random_file "$SRC" $((3 * MiB + 12345))
KV=(--dir "$MNT/kv" --model restart --pages 8 --page-size 4MiB)
OUT=$MC_TEST_DIR/out

# all_there WHEN: every committed page is back, byte-exact
all_there() {
	sfb read "${KV[@]}" --expect-all >"$OUT" 2>&1 || fail "$1: pages lost or wrong: $(cat "$OUT")"
	cmp "$SRC" "$MNT/deep/a/b/odd.bin" || fail "$1: deep/a/b/odd.bin differs"
	[ -d "$MNT/deep/a/empty" ] || fail "$1: the empty directory is gone"
	[ "$(stat -c %a "$MNT/deep/a/b/odd.bin")" = 640 ] || fail "$1: the page's mode was not kept"
}

# one_mount WHEN: exactly one live fuse.mooncake mount at $MNT
one_mount() {
	local n
	n=$(mc__mount_ids "$MNT" fuse.mooncake | wc -l)
	[ "$n" = 1 ] || fail "$1: $n fuse.mooncake mounts at $MNT"
	ls "$MNT" >/dev/null || fail "$1: the mount does not answer"
}

mc_start --global-segment-size 256MiB
mkdir -p "$MNT/kv" "$MNT/deep/a/b" "$MNT/deep/a/empty" || fail "mkdir"
sfb write "${KV[@]}" >"$OUT" 2>&1 || fail "writing pages: $(cat "$OUT")"
cp "$SRC" "$MNT/deep/a/b/odd.bin" || fail "cp"
chmod 640 "$MNT/deep/a/b/odd.bin" || fail "chmod"
all_there "before any restart"

# --- kill -9 with a page half written ---------------------------------------

"$MC_PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"\xab" * (2 << 20))
open(sys.argv[2], "w").close()
time.sleep(600)' "$MNT/kv/unfinished.bin" "$MC_TEST_DIR/writing" &
WRITER=$!
mc_wait_for 10 test -e "$MC_TEST_DIR/writing" || fail "the writer did not start"

mc_kill9
kill -9 $WRITER
wait $WRITER 2>/dev/null
# the crash left a stale mount (stat may answer from the kernel's cache
# for a while; listing needs the daemon)
# shellcheck disable=SC2317 # called through mc_wait_for
stale() { [ "$(mc_errno listdir "$MNT")" = ENOTCONN ]; }
mc_wait_for 5 stale || fail "after kill -9 listing $MNT gives $(mc_errno listdir "$MNT"), expected ENOTCONN"

mc_start --global-segment-size 256MiB
all_there "after kill -9 and restart"
one_mount "after kill -9 and restart"
expect_errno ENOENT stat "$MNT/kv/unfinished.bin"
ls "$MNT/kv" | grep -q unfinished && fail "ls lists the page that was being written at the kill"
[ "$(mc_status pages)" = 9 ] || fail "status pages is $(mc_status pages) after restart, expected 9"

# new pages after a restart do not collide with re-adopted ones
sfb write "${KV[@]}" --first 8 --pages 4 >"$OUT" 2>&1 || fail "writing after restart: $(cat "$OUT")"
sfb read "${KV[@]}" --pages 12 --expect-all >"$OUT" 2>&1 || fail "old and new pages after restart: $(cat "$OUT")"

# --- clean stop and start -----------------------------------------------------

mc_stop
mc_is_mounted "$STATE/pool" || fail "the pool tmpfs did not outlive a clean stop"
mc_start --global-segment-size 256MiB
one_mount "after a clean restart"
all_there "after a clean restart"
sfb read "${KV[@]}" --pages 12 --expect-all >"$OUT" 2>&1 || fail "after a clean restart: $(cat "$OUT")"

# --- a restart with a bigger pool keeps the pages ----------------------------

mc_stop
mc_start --global-segment-size 320MiB
all_there "after a restart with a bigger pool"
size=$(df -B1 --output=size "$MNT" | tail -n 1)
[ "$size" -ge $((300 * MiB)) ] || fail "df shows $size after growing the pool to 320 MiB"

# --- kill -9 and a restart while the old connection is still going away -----
# With FUSE over io_uring the kernel aborts a killed daemon's connection
# when its rings are torn down, in a worker, after the daemon was reaped: a
# statfs in between fails with ECONNABORTED or ECANCELED, not ENOTCONN, and
# the new daemon once mounted on top of the stale mount, which its clean
# stop then revealed.  A copy of the dead daemon's /dev/fuse descriptors
# (pidfd_getfd) holds that moment open for half a second.

"$MC_PYTHON" - "$MC_PID" "$MC_TEST_DIR/held" <<'EOF' &
import ctypes, os, select, sys, time
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
pidfd = os.pidfd_open(pid)
held = 0
for n in os.listdir("/proc/%d/fd" % pid):
    try:
        if os.readlink("/proc/%d/fd/%s" % (pid, n)) != "/dev/fuse":
            continue
    except OSError:
        continue
    if libc.syscall(438, pidfd, int(n), 0) >= 0:  # pidfd_getfd
        held += 1
with open(sys.argv[2], "w") as f:
    f.write("%d\n" % held)
select.select([pidfd], [], [])
time.sleep(0.5)
EOF
HOLDER=$!
mc_wait_for 5 test -s "$MC_TEST_DIR/held" || fail "the /dev/fuse holder did not start"
[ "$(cat "$MC_TEST_DIR/held")" -gt 0 ] ||
	fail "the holder could not copy the daemon's /dev/fuse descriptor"
mc_kill9
mc_start --global-segment-size 320MiB
wait $HOLDER
one_mount "after kill -9 and a restart during the teardown"
all_there "after kill -9 and a restart during the teardown"
mc_stop
mc_start --global-segment-size 320MiB

# --- a second daemon on the same state directory ----------------------------

mkdir "$MC_TEST_DIR/mnt2"
timeout 20 "$MC_DAEMON" --foreground --state-dir "$STATE" --global-segment-size 256MiB \
	"$MC_TEST_DIR/mnt2" >"$OUT" 2>&1
rc=$?
[ $rc -eq 1 ] || fail "a second daemon on a state directory in use exited $rc, expected 1: $(cat "$OUT")"
[ -s "$OUT" ] || fail "a second daemon on a state directory in use said nothing"
note "second daemon: $(tail -n 1 "$OUT")"
grep -qE "$MNT([^0-9]|\$)" "$OUT" ||
	fail "the refusal does not name the mount point in use ($MNT): $(cat "$OUT")"
mc_is_mounted "$MC_TEST_DIR/mnt2" && fail "the refused second daemon left a mount"
mc_daemon_alive || fail "the first daemon died when a second one tried the state directory"
all_there "after a second daemon was refused"

# --- without --foreground: the daemon detaches once it serves, -o options
# reach the mount, and unmounting it stops the daemon

mc_stop
"$MC_DAEMON" --state-dir "$STATE" --global-segment-size 320MiB -o allow_other \
	"$MNT" >"$OUT" 2>&1 </dev/null
rc=$?
[ $rc -eq 0 ] || fail "mooncaked without --foreground exited $rc: $(tail -n 5 "$OUT")"
# what it said before it detached (after, it logs to syslog)
grep -E '\[(err|crit|alert|emerg)\]' "$OUT" && fail "mooncaked logged errors while starting in the background"
MC_PID=$(pgrep -f -- "--state-dir $STATE ")
[ "$(echo "$MC_PID" | wc -w)" = 1 ] ||
	fail "expected one daemon left running after a start in the background, found '$MC_PID'"
[ "$(ps -o sid= -p "$MC_PID")" != "$(ps -o sid= -p $$)" ] ||
	fail "the daemon started in the background did not leave the caller's session"
mc__serving "$MNT" || fail "mooncaked returned but does not serve $MNT"
grep -F " $MNT fuse.mooncake " /proc/mounts | grep -q 'allow_other' ||
	fail "-o allow_other did not reach the mount: $(grep -F " $MNT " /proc/mounts)"
all_there "after a start in the background"
umount "$MNT" || fail "umount of the mount of a daemon in the background"
stopped() { ! kill -0 "$MC_PID" 2>/dev/null; }
mc_wait_for 10 stopped || fail "the daemon in the background did not exit within 10 s of umount"
MC_PID=

mc_done
