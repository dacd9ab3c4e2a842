#!/bin/sh
# install-deps.sh - install what mooncakefs needs to build and to run its
# tests on Debian 12 (bookworm).  Run as root; CI runs it before every build.
set -eu

PACKAGES="
	build-essential autoconf automake libtool pkg-config
	libfuse3-dev fuse3
	libsqlite3-dev sqlite3
	liburing-dev
	libcurl4-openssl-dev
	libjson-c-dev
	check
	libibverbs-dev librdmacm-dev
	python3 python3-numpy
	attr iproute2 procps psmisc util-linux kmod
	clang-format shellcheck mandoc
"

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps.sh: must run as root to install packages: run 'sudo $0'" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps.sh: apt-get not found: install the packages listed in $0 by hand" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
	echo "install-deps.sh: 'apt-get update' failed: check the network and /etc/apt/sources.list" >&2
	exit 1
fi
# shellcheck disable=SC2086 # the list is meant to split into words
if ! apt-get install -y -qq --no-install-recommends $PACKAGES; then
	echo "install-deps.sh: 'apt-get install' failed: see the apt output above" >&2
	exit 1
fi
