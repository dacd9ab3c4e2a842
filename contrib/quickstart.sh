#!/bin/bash
# quickstart.sh - from a fresh Debian 12 machine to a running pool at
# /mnt/mooncake: install the dependencies, build, install, start mooncaked,
# print its status.  Run as root from the top of the source tree:
#
#	sudo contrib/quickstart.sh [MOUNTPOINT]
#
# Safe to run again: when a pool is already mounted there it only prints
# the status.  A stale mount left by a killed daemon is replaced.
set -euo pipefail

MNT=${1:-/mnt/mooncake}
PREFIX=/usr/local
ME=quickstart

die() {
	printf '%s: %s\n' "$ME" "$*" >&2
	exit 1
}
step() { printf '\n=== %s: %s\n' "$ME" "$*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and mounts): run 'sudo $0'"
if [ ! -f configure.ac ] || [ ! -f daemon/mooncaked.c ]; then
	die "run it from the top of the mooncakefs source tree: cd there and run 'sudo contrib/quickstart.sh'"
fi

# The fstype of the topmost mount at $1, or nothing.
fstype_at() {
	awk -v mp="$1" '{ for (i = 7; $i != "-"; i++) ; }
		$5 == mp { t = $(i + 1) } END { if (t) print t }' /proc/self/mountinfo
}

show_status() {
	step "status ($MNT/.mooncake/status)"
	cat "$MNT/.mooncake/status"
	cat <<EOF

The pool is mounted at $MNT.  Next:
  mkdir -p $MNT/llama3-8b          # one directory per model
  SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR=$MNT/llama3-8b python3 -m sglang.launch_server ... \\
      --enable-hierarchical-cache --hicache-storage-backend file
  man mooncaked                    # options, semantics, errors
  umount $MNT                      # stop (the pages stay for a restart)
EOF
}

if [ "$(fstype_at "$MNT")" = fuse.mooncake ]; then
	if [ -r "$MNT/.mooncake/status" ]; then
		printf '%s: a mooncakefs pool is already mounted at %s\n' "$ME" "$MNT"
		show_status
		exit 0
	fi
	printf '%s: %s is a stale mount of a daemon that died: mooncaked will replace it\n' \
		"$ME" "$MNT"
elif [ -n "$(fstype_at "$MNT")" ]; then
	die "something else ($(fstype_at "$MNT")) is mounted at $MNT: unmount it or pass another mount point"
fi

step "installing the build dependencies (contrib/install-deps.sh)"
contrib/install-deps.sh

step "building (./autogen.sh && ./configure && make -j2)"
./autogen.sh
./configure --prefix="$PREFIX"
make -j2

step "installing (make install)"
make install

step "starting: mooncaked --standalone $MNT"
"$PREFIX/sbin/mooncaked" --standalone "$MNT"

show_status
