#!/bin/bash
# t_unprivileged: mooncaked run by a user, not root.  FUSE mounts through
# fusermount3; the pool's tmpfs cannot be mounted, so its pages live in a
# private directory on /dev/shm, with one warning that says so; the kernel
# refuses backing files, so the daemon serves reads and writes itself, with
# one warning too, and the status file says so.  Pages are written, read
# back byte-exact, and kept across a restart.  Without --state-dir, the
# user's daemon keeps its state under $XDG_RUNTIME_DIR.
#
# The test runs in a mount namespace of its own, where /dev/fuse is open to
# everyone (as Debian's udev makes it; this VM leaves it 0600): a user's
# daemon opens it before it calls fusermount3.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
if [ -n "${MC_TEST_INNER:-}" ] && [ -z "${MC_IN_MNTNS:-}" ] &&
	[ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
	MC_IN_MNTNS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
[ -n "${MC_IN_MNTNS:-}" ] || skip "needs unshare(1) for a mount namespace"
command -v fusermount3 >/dev/null || skip "no fusermount3 (Debian package fuse3)"
[ -u "$(command -v fusermount3)" ] || skip "fusermount3 is not setuid root"
command -v setpriv >/dev/null || skip "no setpriv (Debian package util-linux)"
[ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] || skip "/dev/shm is not a tmpfs"
[ "$(stat -f -c %T "$MC_TEST_DIR")" != tmpfs ] ||
	skip "$MC_TEST_DIR is on a tmpfs: the pool would stay there, not move to /dev/shm"

NOBODY=65534
U=(setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups)
"${U[@]}" test -x "$MC_DAEMON" ||
	skip "user $NOBODY cannot run $MC_DAEMON (a build directory only root can enter)"

# a /dev/fuse everyone may open, in this namespace only
mkdir "$MC_TEST_DIR/dev" &&
	mount -t tmpfs -o mode=0755,size=64k mc-dev "$MC_TEST_DIR/dev" &&
	mknod -m 0666 "$MC_TEST_DIR/dev/fuse" c 10 229 &&
	mount --bind "$MC_TEST_DIR/dev/fuse" /dev/fuse ||
	hard_error "cannot give this namespace a /dev/fuse open to everyone"

chmod 0755 "$MC_TEST_DIR" || hard_error "chmod $MC_TEST_DIR"
chown "$NOBODY:$NOBODY" "$MNT" "$STATE" || hard_error "chown $MNT $STATE"

# root may not enter a user's FUSE mount (no allow_other): look as the user
userving() {
	[ "$(mc__top_fstype "$MNT")" = fuse.mooncake ] &&
		"${U[@]}" timeout 5 stat -f "$MNT" >/dev/null 2>&1
}
ustatus() {
	"${U[@]}" cat "$MNT/.mooncake/status" | sed -n "s/^$1: //p"
}
# ustart [ARGS...]: start the daemon as the user, by default on $STATE
ustart() {
	[ $# -gt 0 ] || set -- --state-dir "$STATE"
	MC_STARTS=$((MC_STARTS + 1))
	echo "=== $MC_TEST_NAME: start $MC_STARTS as user $NOBODY: $*" >>"$MC_LOG"
	"${U[@]}" "$MC_DAEMON" --foreground "$@" \
		--global-segment-size 64MiB "$MNT" >>"$MC_LOG" 2>&1 </dev/null &
	MC_PID=$!
	echo "$MC_PID" >"$MC_TEST_DIR/daemon.pid.$MC_STARTS"
	mc__await_start "$MC_PID" "$MC_LOG" mooncaked userving ||
		fail "mooncaked run by user $NOBODY does not serve $MNT"
}
# count ERE: lines of the daemon log that match
count() { grep -cE "$1" "$MC_LOG"; }

# The directory the daemon will make on /dev/shm, named before it starts
# (by mc_pool_shm_name(), through test_pool), so that one that made it and
# then failed leaves nothing behind.  The name holds this test's unique
# directory: it exists before the start only by a mistake, never removed.
TEST_POOL=$MC_BUILDDIR/tests/unit/test_pool
[ -x "$TEST_POOL" ] || hard_error "no $TEST_POOL: build it with make check"
name=$("$TEST_POOL" --shm-name "$(realpath -m "$STATE/pool")") ||
	hard_error "test_pool cannot name the /dev/shm directory of $STATE/pool"
dir=$(realpath /dev/shm)/$name
[ ! -e "$dir" ] || hard_error "$dir exists before the daemon started"
MC_REMOVE_ON_EXIT+=("$dir")

ustart
[ "$(ustatus pool_dir)" = "$dir" ] ||
	fail "the pool of a daemon that cannot mount tmpfs is at '$(ustatus pool_dir)', not '$dir'"
[ "$(ustatus pool_kind)" = directory ] || fail "pool_kind is '$(ustatus pool_kind)', expected directory"
[ "$(count "warning.*cannot mount tmpfs.*$dir")" = 1 ] ||
	fail "expected one warning naming $dir: $(grep -F warning "$MC_LOG")"
[ "$(stat -c %u:%a "$dir")" = "$NOBODY:700" ] ||
	fail "$dir is $(stat -c %u:%a "$dir"), expected $NOBODY:700"

for i in 1 2 3; do
	mc_random_file "$MC_TEST_DIR/src$i" $((8 << 20))
	chmod 0644 "$MC_TEST_DIR/src$i"
	"${U[@]}" cp "$MC_TEST_DIR/src$i" "$MNT/p$i" || fail "user $NOBODY cannot write page $i"
	"${U[@]}" cmp "$MC_TEST_DIR/src$i" "$MNT/p$i" || fail "page $i reads back wrong"
done
[ "$(ustatus passthrough)" = no ] ||
	fail "passthrough is '$(ustatus passthrough)' though the kernel refuses a user's backing files"
[ "$(count 'warning.*passthrough.*EPERM')" = 1 ] ||
	fail "expected one passthrough warning after 3 pages: $(grep -F passthrough "$MC_LOG")"
[ "$(find "$dir/pages" -type f | wc -l)" = 3 ] ||
	fail "$dir/pages holds $(find "$dir/pages" -type f | wc -l) files for 3 pages"
[ -z "$(find "$STATE" -path "$STATE/pool/*" -type f 2>/dev/null)" ] ||
	fail "pages were written under $STATE/pool, not only on /dev/shm"

mc_stop
ustart
[ "$(ustatus pool_dir)" = "$dir" ] || fail "a restart moved the pool from $dir to $(ustatus pool_dir)"
for i in 1 2 3; do
	"${U[@]}" cmp "$MC_TEST_DIR/src$i" "$MNT/p$i" || fail "page $i is not byte-exact after a restart"
done
mc_stop
rm -rf --one-file-system "$dir" || fail "cannot remove $dir"

# --- no --state-dir: a user's daemon keeps its state in $XDG_RUNTIME_DIR -----

XDG=$MC_TEST_DIR/xdg
mkdir -m 0700 "$XDG" && chown "$NOBODY:$NOBODY" "$XDG" || hard_error "mkdir $XDG"
xstate=$XDG/mooncake/$(echo "${MNT#/}" | tr / _)
name=$("$TEST_POOL" --shm-name "$xstate/pool") ||
	hard_error "test_pool cannot name the /dev/shm directory of $xstate/pool"
MC_REMOVE_ON_EXIT+=("$(realpath /dev/shm)/$name")
U=(env XDG_RUNTIME_DIR="$XDG" "${U[@]}")
ustart --log-level notice	# any argument: no --state-dir
[ -f "$xstate/namespace.db" ] ||
	fail "a user's daemon without --state-dir did not keep its state in $xstate: $(find "$XDG" | head)"
mc_stop
mc_done
