#!/bin/bash
# t_concurrent: four servers write pages while four others poll for them
# and read them as soon as they appear (both SGLang write eras, exists
# probes on pages nobody writes alongside): not one wrong byte, not one
# short read, nothing lost.  With FUSE passthrough and without.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=150
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_numpy

N=4 PAGES=16	# 4 writers x 16 pages x 4 MiB = 256 MiB, no eviction
KV=(--dir "$MNT/kv" --model conc --pages "$PAGES" --page-size 4MiB)
R=$MC_TEST_DIR/results

for mode in auto off; do
	mc_start --global-segment-size 512MiB --passthrough $mode
	mkdir "$MNT/kv" || fail "mkdir kv"
	rm -rf "$R" && mkdir "$R"

	pids=() names=()
	for w in $(seq 0 $((N - 1))); do
		r=$(((w + 1) % N))
		# reader w polls for writer r's pages, started before the writer
		sfb read "${KV[@]}" --seed "w$r" --wait 90 --expect-all >"$R/reader$w" 2>&1 &
		pids+=($!) names+=("reader $w (of writer $r's pages)")
	done
	# SGLang's exists thread: probes of pages that never come, until told
	sfb names "${KV[@]}" --seed nobody >"$R/nobody"
	"$MC_PYTHON" -c '
import os, sys
names = open(sys.argv[1]).read().split()
while not os.path.exists(sys.argv[2]):
    for n in names:
        if os.path.exists(n):
            sys.exit("a page nobody wrote exists: " + n)
' "$R/nobody" "$R/stop" >"$R/prober" 2>&1 &
	prober=$!
	for w in $(seq 0 $((N - 1))); do
		era=direct
		[ $((w % 2)) = 1 ] && era=rename
		sfb write "${KV[@]}" --seed "w$w" --era $era >"$R/writer$w" 2>&1 &
		pids+=($!) names+=("writer $w ($era era)")
	done

	failed=0
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}"; then
			note "$mode: ${names[$i]} failed"
			failed=1
		fi
	done
	: >"$R/stop"
	wait $prober || fail "$mode: the exists prober: $(cat "$R/prober")"
	for f in "$R"/reader* "$R"/writer*; do
		note "$mode: $(basename "$f"): $(tr '\n' ' ' <"$f")"
	done
	[ $failed = 0 ] || fail "$mode: a concurrent writer or reader failed (see above)"
	if cat "$R"/reader* | grep -q 'short read'; then
		fail "$mode: a reader got a short read"
	fi
	for w in $(seq 0 $((N - 1))); do
		grep -q "written=$PAGES skipped=0 failed=0" "$R/writer$w" ||
			fail "$mode: writer $w: $(cat "$R/writer$w")"
		grep -q "hits=$PAGES misses=0 wrong_bytes=0 short_reads=0" "$R/reader$w" ||
			fail "$mode: reader $w: $(cat "$R/reader$w")"
	done

	# afterwards, one process reads everything once more
	for w in $(seq 0 $((N - 1))); do
		sfb read "${KV[@]}" --seed "w$w" --expect-all >"$R/final" 2>&1 ||
			fail "$mode: final read of writer $w's pages: $(cat "$R/final")"
	done
	n=$(ls "$MNT/kv" | wc -l)
	[ "$n" = $((N * PAGES)) ] || fail "$mode: ls shows $n pages, expected $((N * PAGES))"
	[ "$(mc_status evictions)" = 0 ] ||
		fail "$mode: evictions with the pool half full: $(mc_status evictions)"

	rm -rf "$MNT/kv" || fail "$mode: rm -rf kv"
	mc_stop
done

mc_done
