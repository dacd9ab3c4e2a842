# shellcheck shell=bash
# bench-lib.sh - helpers shared by the benchmark scripts in tests/bench,
# sourced (bash): run-bench.sh, run-cluster-bench.sh, scale-1m.sh.

# size_bytes SIZE: 4294967296, 8MiB, 8m, 4gb, 64KiB in bytes (powers of 1024)
size_bytes() {
	local s=${1,,} n
	[[ $s =~ ^([0-9]+)([kmgt]?)(i?b)?$ ]] || return 1
	n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	k) n=$((n << 10)) ;;
	m) n=$((n << 20)) ;;
	g) n=$((n << 30)) ;;
	t) n=$((n << 40)) ;;
	esac
	echo "$n"
}

# is_mounted MOUNTPOINT FSTYPE: true when MOUNTPOINT is a mount of FSTYPE
is_mounted() {
	awk -v mp="$1" -v ty="$2" '
		{ for (i = 7; $i != "-"; i++) ; }
		$5 == mp && $(i + 1) == ty { found = 1 }
		END { exit !found }' /proc/self/mountinfo
}

# mountpoints at or below $1, deepest first (our paths have no blanks)
mounts_below() {
	awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
		/proc/self/mountinfo | sort -r
}
