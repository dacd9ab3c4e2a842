#!/bin/sh
# t_style.sh - the tree keeps kernel style: no trailing whitespace, tabs for
# indentation, banned.h included last by every .c file; with
# MC_STRICT_FORMAT=1 also clang-format --dry-run -Werror (.clang-format).
# Exit 0 pass, 1 fail, 77 skip (strict asked for, clang-format missing),
# 99 hard error.
set -u

srcdir=${MC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$srcdir" || {
	echo "t_style: cannot enter source dir '$srcdir': set MC_SRCDIR" >&2
	exit 99
}

fail=0
tab=$(printf '\t')

# the directories that exist, so that find never complains
dirs=
for d in src fs daemon tests/unit; do
	[ -d "$d" ] && dirs="$dirs $d"
done
if [ -z "$dirs" ]; then
	echo "t_style: no src/ fs/ daemon/ tests/unit/ in '$srcdir': set MC_SRCDIR to the source tree" >&2
	exit 99
fi

# $dirs is a word list on purpose
# shellcheck disable=SC2086
if find $dirs -type f \( -name '*.c' -o -name '*.h' \) \
	-exec grep -nHE '[[:space:]]$' {} + ; then
	echo "t_style: FAIL: trailing whitespace on the lines above: delete it" >&2
	fail=1
fi

# shellcheck disable=SC2086
if find $dirs -type f \( -name '*.c' -o -name '*.h' \) \
	-exec grep -nHE "^$tab* {8}" {} + ; then
	echo "t_style: FAIL: indented with spaces on the lines above: indent with tabs" >&2
	fail=1
fi

# every .c file, tests and benchmarks too, includes banned.h after the rest
cdirs=
for d in src fs daemon tests; do
	[ -d "$d" ] && cdirs="$cdirs $d"
done
# shellcheck disable=SC2086
for f in $(find $cdirs -type f -name '*.c' | LC_ALL=C sort); do
	last=$(grep -nE "^[[:space:]]*#[[:space:]]*include" "$f" | tail -n 1)
	case $last in
	*'"banned.h"'*)
		;;
	'')
		echo "$f:1: no #include \"banned.h\": include it after all other headers" >&2
		fail=1
		;;
	*)
		if grep -q '^#include "banned.h"' "$f"; then
			echo "$f:${last%%:*}: #include after \"banned.h\": move \"banned.h\" to the end" >&2
		else
			echo "$f:${last%%:*}: no #include \"banned.h\": include it after this line" >&2
		fi
		fail=1
		;;
	esac
done

if [ "${MC_STRICT_FORMAT:-0}" = 1 ]; then
	if ! command -v clang-format >/dev/null 2>&1; then
		echo "t_style: MC_STRICT_FORMAT=1 but clang-format is not installed: apt-get install clang-format" >&2
		[ "$fail" = 0 ] && exit 77
	else
		files=$(ls src/*.c src/*.h fs/*.c fs/*.h daemon/*.c 2>/dev/null)
		# shellcheck disable=SC2086
		if [ -n "$files" ] && ! clang-format --dry-run -Werror $files; then
			echo "t_style: FAIL: not clang-formatted (lines above): run clang-format -i on those files" >&2
			fail=1
		fi
	fi
else
	echo "t_style: note: clang-format check is off: run with MC_STRICT_FORMAT=1 to turn it on"
fi

if [ "$fail" = 0 ]; then
	echo "t_style: PASS"
fi
exit "$fail"
