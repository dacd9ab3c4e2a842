#!/bin/bash
# t_cluster_concurrent: three hosts, each with two SGLang servers writing
# pages (direct and rename era) while every host polls for the other hosts'
# pages and reads each as soon as it appears (two readers of the same pages
# at once on one host), SGLang's exists thread probes pages nobody writes,
# and three servers on three hosts race to set the same shared prefix.  Not
# one wrong byte, not one short read, nothing lost, and afterwards every
# page reads byte-exact on every host.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=150
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

# 6 writers x 8 pages x 4 MiB = 192 MiB in all, plus the shared prefix; a
# host holds its own pages and copies of everything it reads: no eviction
# in 384 MiB pools
PAGES=8
KV=(--model conc --pages "$PAGES" --page-size 4MiB)
SHARED=(--model conc --seed shared --pages 12 --page-size 2MiB)
R=$MC_TEST_DIR/results
mkdir -p "$R"

mc_net_up 3
# shellcheck disable=SC2119 # no arguments: the defaults
mc_master_start
for h in a b c; do
	mc_host_start "$h" --global-segment-size 384MiB
done
mkdir "$(mc_host_mnt a)/kv" || fail "mkdir kv on A"
for h in b c; do
	mc_wait_for 3 test -d "$(mc_host_mnt $h)/kv" || fail "kv is not a directory on $h"
done
dir() { echo "$(mc_host_mnt "$1")/kv"; }

pids=() names=()
# readers first: on each host, one per writer on the other hosts
for h in a b c; do
	for w in a b c; do
		[ "$w" = "$h" ] && continue
		for k in 0 1; do
			sfb read --dir "$(dir "$h")" "${KV[@]}" --seed "w$w$k" --wait 90 \
				--expect-all >"$R/reader-$h-w$w$k" 2>&1 &
			pids+=($!) names+=("reader on $h of writer $w$k")
		done
	done
done
# a second reader of the same pages on one host, at the same time
sfb read --dir "$(dir c)" "${KV[@]}" --seed wa0 --wait 90 --expect-all \
	>"$R/reader-c-wa0-twin" 2>&1 &
pids+=($!) names+=("second reader on c of writer a0")

# SGLang's exists threads: probes of pages that never come, on every host
for h in a b c; do
	sfb names --dir "$(dir "$h")" "${KV[@]}" --seed nobody >"$R/nobody-$h"
	"$MC_PYTHON" -c '
import os, sys
names = open(sys.argv[1]).read().split()
probes = 0
while not os.path.exists(sys.argv[2]):
    for n in names:
        probes += 1
        if os.path.exists(n):
            sys.exit("a page nobody wrote exists: " + n)
print("probes: %d" % probes)
' "$R/nobody-$h" "$R/stop" >"$R/prober-$h" 2>&1 &
	eval "prober_$h=$!"
done

# the writers, and the racers on the shared prefix
for h in a b c; do
	sfb write --dir "$(dir "$h")" "${KV[@]}" --seed "w${h}0" --era direct \
		>"$R/writer-${h}0" 2>&1 &
	pids+=($!) names+=("writer ${h}0 (direct era)")
	sfb write --dir "$(dir "$h")" "${KV[@]}" --seed "w${h}1" --era rename \
		>"$R/writer-${h}1" 2>&1 &
	pids+=($!) names+=("writer ${h}1 (rename era)")
done
era=(direct rename direct)
i=0
for h in a b c; do
	sfb write --dir "$(dir "$h")" "${SHARED[@]}" --era "${era[$i]}" \
		>"$R/racer-$h" 2>&1 &
	pids+=($!) names+=("racer on $h (${era[$i]} era)")
	i=$((i + 1))
done

failed=0
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then
		note "${names[$i]} failed"
		failed=1
	fi
done
: >"$R/stop"
for h in a b c; do
	p=prober_$h
	wait "${!p}" || fail "the exists prober on $h: $(cat "$R/prober-$h")"
done
for f in "$R"/reader-* "$R"/writer-* "$R"/racer-*; do
	note "$(basename "$f"): $(tr '\n' ' ' <"$f")"
done
[ $failed = 0 ] || fail "a concurrent writer or reader failed (see above)"
if cat "$R"/reader-* | grep -q 'short read'; then
	fail "a reader got a short read"
fi
for f in "$R"/writer-*; do
	grep -q "written=$PAGES skipped=0 failed=0" "$f" || fail "$(basename "$f"): $(cat "$f")"
done
for f in "$R"/reader-*; do
	grep -q "hits=$PAGES misses=0 wrong_bytes=0 short_reads=0" "$f" ||
		fail "$(basename "$f"): $(cat "$f")"
done
# racers: each page set or skipped, none failed, and at least 12 sets in all
sets=0
for h in a b c; do
	grep -q "failed=0" "$R/racer-$h" || fail "racer on $h: $(cat "$R/racer-$h")"
	n=$(sed -n 's/.*written=\([0-9]*\) skipped=\([0-9]*\).*/\1 \2/p' "$R/racer-$h")
	[ "$(( ${n% *} + ${n#* } ))" = 12 ] || fail "racer on $h: $(cat "$R/racer-$h")"
	sets=$((sets + ${n% *}))
done
[ "$sets" -ge 12 ] || fail "the racers set $sets pages of a 12-page prefix"

# afterwards every page, every host, byte-exact; one listing everywhere
for h in a b c; do
	for w in a b c; do
		for k in 0 1; do
			sfb read --dir "$(dir "$h")" "${KV[@]}" --seed "w$w$k" --expect-all \
				>"$R/final" 2>&1 || fail "final read on $h of writer $w$k: $(cat "$R/final")"
		done
	done
	sfb read --dir "$(dir "$h")" "${SHARED[@]}" --expect-all >"$R/final" 2>&1 ||
		fail "final read on $h of the shared prefix: $(cat "$R/final")"
	n=$(ls "$(dir "$h")" | wc -l)
	[ "$n" = $((6 * PAGES + 12)) ] || fail "ls on $h shows $n pages, expected $((6 * PAGES + 12))"
	ls "$(dir "$h")" | grep -q '\.tmp\.' && fail "a rename-era temporary file is listed on $h"
	ev=$(mc_host_status "$h" evictions)
	[ -z "$ev" ] || [ "$ev" = 0 ] || fail "host $h evicted $ev pages in a pool far from full"
done

mc_done
