#!/bin/bash
# run-cluster-bench.sh - remote page reads between two hosts against raw TCP
# over the same link.
#
# usage: tests/bench/run-cluster-bench.sh [--pages N] [--page-size SIZE]
#            [--rounds R] [--segment-size SIZE]
#
# Run as root from the build directory (or set MC_BUILDDIR).  Two hosts are
# two network namespaces on one veth bridge (tests/integration/lib.sh makes
# them, with mooncake_master in a third; everything is removed at the end,
# Ctrl-C included).  Each round, on host A, mc-bench-pages writes N pages
# (SGLang's pattern: open, one write, close) into A's mount; then on host B,
# mc-bench-pages reads them (open, fstat, one read of st_size, close,
# verified): the first read of each page is remote (B fetches it over TCP
# from A's data server into a copy in B's pool), the second is local.  Then
# mc-bench-tcp, between the same two namespaces, gives the anchor: raw TCP
# (one recv of a whole page into a warm buffer) and the transport alone
# (mc_fetch_page).  Before each round it waits for both daemons to have
# filled their reserves (the free pool memory they keep written, so that
# pages land in warm memory), and one discarded warm-up round runs first:
# this VM's first touch of fresh memory is slow.  It prints the medians over the rounds:
#
#	write on A, first (remote) read on B, second (local) read on B:
#	    GB/s, p50 and p99 ms per page
#	raw TCP and fetch from mc-bench-tcp
#	target: first read on B >= 0.8 x raw TCP                  PASS or MISS
#
# B's link counters check that the first read crossed the link and the
# second did not.
# Environment: MC_BUILDDIR, MC_DAEMON, MC_MASTER (the programs).
# Exit status: 0 the target PASS, 1 MISS or a failure, 2 bad usage, 77 not
# root or no network namespaces or FUSE, 99 the programs are missing.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
PAGES=32
PAGE_SIZE=8MiB
ROUNDS=3
SEGMENT=
ARGS=("$@")

# shellcheck source=SCRIPTDIR/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
usage() { sed -n '2,/^\[ -n /{/^#/s/^# \{0,1\}//p}' "$0"; }
while [ $# -gt 0 ]; do
	case $1 in
	--pages | --page-size | --rounds | --segment-size)
		[ $# -ge 2 ] || { echo "run-cluster-bench: $1 needs a value" >&2; exit 2; }
		case $1 in
		--pages) PAGES=$2 ;;
		--page-size) PAGE_SIZE=$2 ;;
		--rounds) ROUNDS=$2 ;;
		--segment-size) SEGMENT=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		echo "run-cluster-bench: unknown argument '$1' (see --help)" >&2
		exit 2
		;;
	esac
done

if ! [[ $PAGES =~ ^[0-9]+$ && $ROUNDS =~ ^[0-9]+$ ]] || [ "$PAGES" -lt 2 ] ||
	[ "$ROUNDS" -lt 1 ]; then
	echo "run-cluster-bench: --pages must be >= 2 and --rounds >= 1" >&2
	exit 2
fi
PAGE_BYTES=$(size_bytes "$PAGE_SIZE") || PAGE_BYTES=0
if [ "$PAGE_BYTES" -le 0 ]; then
	echo "run-cluster-bench: bad --page-size '$PAGE_SIZE'" >&2
	exit 2
fi
ROUND_BYTES=$((PAGES * PAGE_BYTES))
# Each host's pool holds every round's pages (A writes them, B copies them),
# with room to spare: unlinked pages may give their memory back late.
if [ -n "$SEGMENT" ]; then
	SEGMENT_BYTES=$(size_bytes "$SEGMENT") ||
		{ echo "run-cluster-bench: bad --segment-size '$SEGMENT'" >&2; exit 2; }
else
	SEGMENT_BYTES=$(((ROUNDS + 1) * ROUND_BYTES * 3 / 2 + (256 << 20)))
fi
[ $((SEGMENT_BYTES * 2)) -le $((12 << 30)) ] ||
	{ echo "run-cluster-bench: two pools of $SEGMENT_BYTES bytes are too much for this machine: fewer --pages or --rounds" >&2; exit 2; }

MC_TEST_TIMEOUT=$((300 + ROUNDS * PAGES))
# the library runs this script again as the inner process, with the same
# arguments; it makes the private directory and cleans up after it
set -- "${ARGS[@]}"
# shellcheck source=SCRIPTDIR/../integration/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

MC_BENCH=${MC_BENCH:-$MC_BUILDDIR/tests/bench/mc-bench-pages}
MC_BENCH_TCP=${MC_BENCH_TCP:-$MC_BUILDDIR/tests/bench/mc-bench-tcp}
mc_netns_require
[ -x "$MC_BENCH" ] || hard_error "no $MC_BENCH: build it (make)"
[ -x "$MC_BENCH_TCP" ] || hard_error "no $MC_BENCH_TCP: build it (make)"
RES=$MC_TEST_DIR/results
mkdir -p "$RES"

mc_net_up 2
# shellcheck disable=SC2119 # no arguments: the defaults
mc_master_start
for h in a b; do
	mc_host_start "$h" --global-segment-size "$SEGMENT_BYTES"
done
A=$(mc_host_mnt a)/bench B=$(mc_host_mnt b)/bench
mkdir "$A" || fail "mkdir on A's mount"
mc_wait_for 3 test -d "$B" || fail "the directory made on A is not on B"

# bench HOST PHASE SEED [args]: mc-bench-pages on HOST's mount, its JSON line
bench() {
	local h=$1 phase=$2 seed=$3 dir
	shift 3
	dir=$(mc_host_mnt "$h")/bench
	mc_in "$h" "$MC_BENCH" --dir "$dir" --pages "$PAGES" --page-size "$PAGE_BYTES" \
		--phase "$phase" --seed "$seed" --keep --settle-ms 0 --json \
		--label "$h-$phase" "$@" 2>"$RES/bench.err" ||
		fail "mc-bench-pages --phase $phase on $h (seed $seed): $(cat "$RES/bench.err")"
}

# settle: wait until both daemons' reserves stopped growing.  A daemon
# writes its free pool memory once in the background (the reserve), so
# that writes and fetches never fault in memory the host took back; a
# measurement started before that is done measures this VM's first touch.
settle() {
	local h prev cur same t0=$SECONDS
	for h in a b; do
		prev=-1 same=0
		while [ $((SECONDS - t0)) -lt 120 ]; do
			cur=$(mc_host_status "$h" reserve_bytes)
			if [ "$cur" = "$prev" ]; then
				same=$((same + 1))
				[ "$same" -ge 3 ] && break
			else
				same=0
			fi
			prev=$cur
			sleep 0.5
		done
	done
}

# round SEED OUT: write on A, read on B twice, remove; JSON lines into OUT
round() {
	local seed=$1 out=$2 rx0 rx1 rx2
	bench a write "$seed" >"$out" || exit 1
	rx0=$(mc_host_rx_bytes b)
	bench b read "$seed" >>"$out" || exit 1
	rx1=$(mc_host_rx_bytes b)
	[ $((rx1 - rx0)) -ge "$ROUND_BYTES" ] ||
		fail "B read $ROUND_BYTES bytes of A's pages but received only $((rx1 - rx0)) on its link"
	# one more local read of every page, to see that it stays local
	bench b read "$seed" >"$RES/again" || exit 1
	rx2=$(mc_host_rx_bytes b)
	[ $((rx2 - rx1)) -lt $((ROUND_BYTES / 8)) ] ||
		fail "B's reads of pages it holds received $((rx2 - rx1)) bytes on its link"
	bench a unlink "$seed" >/dev/null || exit 1
	settle
}

note "$PAGES pages x $PAGE_BYTES bytes, $ROUNDS rounds, pools of $SEGMENT_BYTES bytes"
note "waiting for the pools' reserves to fill"
settle
note "warm-up round"
round 999 /dev/null
: >"$RES/fs.jsonl"
for r in $(seq "$ROUNDS"); do
	round "$r" "$RES/round"
	cat "$RES/round" >>"$RES/fs.jsonl"
	note "round $r: $(tr '\n' ' ' <"$RES/round" | sed 's/"label"/\n  "label"/g' | grep -o '"label":"[^"]*"\|"[a-z_]*gbps":[0-9.]*' | tr '\n' ' ')"
done

# --- the anchor: raw TCP between the same namespaces -------------------------------

TCP_SRC=$MC_TEST_DIR/tcp-src TCP_DST=$MC_TEST_DIR/tcp-dst
mkdir -p "$TCP_SRC" "$TCP_DST"
mount -t tmpfs -o "huge=always,size=$((ROUND_BYTES + (64 << 20)))" mc-bench-src "$TCP_SRC" ||
	hard_error "cannot mount a tmpfs at $TCP_SRC"
mount -t tmpfs -o "huge=always,size=$((4 * PAGE_BYTES + (64 << 20)))" mc-bench-dst "$TCP_DST" ||
	hard_error "cannot mount a tmpfs at $TCP_DST"
mc_in a "$MC_BENCH_TCP" serve --dir "$TCP_SRC" --port 7000 --pages "$PAGES" \
	--size "$PAGE_BYTES" >"$RES/tcp-serve" 2>&1 &
SERVE=$!
# shellcheck disable=SC2317 # called through mc_wait_for
serving() { grep -q '^serving' "$RES/tcp-serve"; }
mc_wait_for 30 serving || fail "mc-bench-tcp serve did not start: $(cat "$RES/tcp-serve")"
mc_in b "$MC_BENCH_TCP" client --peer "$(mc_host_ip a)" --port 7000 --pages "$PAGES" \
	--size "$PAGE_BYTES" --rounds "$ROUNDS" --pool-dir "$TCP_DST" >"$RES/tcp" 2>&1 ||
	fail "mc-bench-tcp client: $(cat "$RES/tcp")"
kill "$SERVE" 2>/dev/null
wait "$SERVE" 2>/dev/null

# --- the table -------------------------------------------------------------------------

echo
printf 'mooncakefs between two hosts (network namespaces on a veth bridge, TCP)\n'
printf '%d rounds x %d pages x %d bytes; medians over rounds\n\n' "$ROUNDS" "$PAGES" "$PAGE_BYTES"
awk -v tcp="$RES/tcp" '
function val(line, key,    m) {
	if (!match(line, "\"" key "\":[^,}]*"))
		return ""
	m = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	return m == "null" ? "" : m + 0
}
function median(key,    n, v, i, j, x) {
	n = cnt[key]
	if (!n)
		return ""
	for (i = 1; i <= n; i++)
		v[i] = vals[key, i]
	for (i = 2; i <= n; i++) {
		x = v[i]
		for (j = i - 1; j >= 1 && v[j] > x; j--)
			v[j + 1] = v[j]
		v[j + 1] = x
	}
	return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function add(key, x) { if (x != "") vals[key, ++cnt[key]] = x }
function row(title, g, p50, p99) {
	printf "  %-34s %9s %9s %9s\n", title, g == "" ? "-" : sprintf("%.2f", g),
		p50 == "" ? "-" : sprintf("%.3f", p50), p99 == "" ? "-" : sprintf("%.3f", p99)
}
/"label":"a-write"/ {
	add("w_g", val($0, "write_gbps"))
	add("w_50", val($0, "write_p50_us") / 1000); add("w_99", val($0, "write_p99_us") / 1000)
}
/"label":"b-read"/ {
	# the first read of every page: even pages (read-now) and odd pages
	# (read-settled, with no pause); GB/s over both halves
	n1 = val($0, "read_now_n"); g1 = val($0, "read_now_gbps")
	n2 = val($0, "read_settled_n"); g2 = val($0, "read_settled_gbps")
	if (g1 > 0 && g2 > 0)
		add("f_g", (n1 + n2) / (n1 / g1 + n2 / g2))
	p = val($0, "read_now_p50_us"); q = val($0, "read_settled_p50_us")
	add("f_50", (p + q) / 2000)
	p = val($0, "read_now_p99_us"); q = val($0, "read_settled_p99_us")
	add("f_99", (p > q ? p : q) / 1000)
	add("s_g", val($0, "read_warm_gbps"))
	add("s_50", val($0, "read_warm_p50_us") / 1000); add("s_99", val($0, "read_warm_p99_us") / 1000)
}
END {
	while ((getline line < tcp) > 0) {
		split(line, col, " ")
		if (col[1] == "raw" || col[1] == "fetch" || col[1] == "fetch-fresh") {
			tg[col[1]] = col[2]; t50[col[1]] = col[3]; t99[col[1]] = col[4]
		}
	}
	printf "  %-34s %9s %9s %9s\n", "", "GB/s", "p50 ms", "p99 ms"
	row("write on A", median("w_g"), median("w_50"), median("w_99"))
	row("first read on B (remote)", median("f_g"), median("f_50"), median("f_99"))
	row("second read on B (local copy)", median("s_g"), median("s_50"), median("s_99"))
	row("raw TCP, same link (anchor)", tg["raw"], t50["raw"], t99["raw"])
	row("transport alone (mc_fetch_page)", tg["fetch"], t50["fetch"], t99["fetch"])
	row("transport into a fresh file", tg["fetch-fresh"], t50["fetch-fresh"], t99["fetch-fresh"])
	print ""
	f = median("f_g")
	if (f == "" || tg["raw"] + 0 <= 0) {
		printf "  %-52s %8s   MISS (not measured)\n", "first read on B >= 0.8x raw TCP", "-"
		exit 1
	}
	ok = f / tg["raw"] >= 0.8
	printf "  %-52s %7.2fx   %s\n", "first read on B >= 0.8x raw TCP", f / tg["raw"],
		ok ? "PASS" : "MISS"
	exit !ok
}' "$RES/fs.jsonl"
verdict=$?
echo
echo "mc-bench-tcp, every mode:"
sed 's/^/  /' "$RES/tcp"
[ $verdict -eq 0 ] || fail "the target was missed"
mc_done
