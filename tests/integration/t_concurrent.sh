#!/bin/bash
# t_concurrent: four servers write pages while four others poll for them
# and read them as soon as they appear (both SGLang write eras, exists
# probes on pages nobody writes alongside): not one wrong byte, not one
# short read, nothing lost.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=150
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_numpy

mc_start --global-segment-size 512MiB
mkdir "$MNT/kv" || fail "mkdir kv"
N=4 PAGES=16	# 4 writers x 16 pages x 4 MiB = 256 MiB, no eviction
KV=(--dir "$MNT/kv" --model conc --pages "$PAGES" --page-size 4MiB)

pids=() names=()
for w in $(seq 0 $((N - 1))); do
	r=$(((w + 1) % N))
	# reader w polls for writer r's pages, started before the writer
	sfb read "${KV[@]}" --seed "w$r" --wait 90 --expect-all >"$MC_TEST_DIR/reader$w" 2>&1 &
	pids+=($!) names+=("reader $w (of writer $r's pages)")
done
# SGLang's exists thread: probes of pages that never come, until told
sfb names "${KV[@]}" --seed nobody >"$MC_TEST_DIR/nobody"
"$MC_PYTHON" -c '
import os, sys
names = open(sys.argv[1]).read().split()
while not os.path.exists(sys.argv[2]):
    for n in names:
        if os.path.exists(n):
            sys.exit("a page nobody wrote exists: " + n)
' "$MC_TEST_DIR/nobody" "$MC_TEST_DIR/stop" >"$MC_TEST_DIR/prober" 2>&1 &
PROBER=$!
for w in $(seq 0 $((N - 1))); do
	era=direct
	[ $((w % 2)) = 1 ] && era=rename
	sfb write "${KV[@]}" --seed "w$w" --era $era >"$MC_TEST_DIR/writer$w" 2>&1 &
	pids+=($!) names+=("writer $w ($era era)")
done

failed=0
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then
		note "${names[$i]} failed"
		failed=1
	fi
done
for f in "$MC_TEST_DIR"/reader* "$MC_TEST_DIR"/writer*; do
	note "$(basename "$f"): $(tr '\n' ' ' <"$f")"
done
: >"$MC_TEST_DIR/stop"
wait $PROBER || fail "the exists prober: $(cat "$MC_TEST_DIR/prober")"
[ $failed = 0 ] || fail "a concurrent writer or reader failed (see above)"
cat "$MC_TEST_DIR"/reader* | grep -q 'short read' && fail "a reader got a short read"
for w in $(seq 0 $((N - 1))); do
	grep -q "written=$PAGES skipped=0 failed=0" "$MC_TEST_DIR/writer$w" ||
		fail "writer $w: $(cat "$MC_TEST_DIR/writer$w")"
	grep -q "hits=$PAGES misses=0 wrong_bytes=0 short_reads=0" "$MC_TEST_DIR/reader$w" ||
		fail "reader $w: $(cat "$MC_TEST_DIR/reader$w")"
done

# afterwards, one process reads everything once more
for w in $(seq 0 $((N - 1))); do
	sfb read "${KV[@]}" --seed "w$w" --expect-all >"$MC_TEST_DIR/final" 2>&1 ||
		fail "final read of writer $w's pages: $(cat "$MC_TEST_DIR/final")"
done
[ "$(ls "$MNT/kv" | wc -l)" = $((N * PAGES)) ] ||
	fail "ls shows $(ls "$MNT/kv" | wc -l) pages, expected $((N * PAGES))"
[ "$(mc_status evictions)" = 0 ] || fail "evictions with the pool half full: $(mc_status evictions)"

mc_done
