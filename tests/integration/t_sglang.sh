#!/bin/bash
# t_sglang: SGLang's `file` HiCache backend, replayed syscall for syscall
# (sglang_file_backend.py), works on the mount with no change: both write
# eras (direct write with dup and two closes; temp file and os.replace),
# exists probes, a second server reading every page byte-exact in one read
# each, two servers racing to publish the same pages, and clear.  All of
# it with FUSE passthrough (where the kernel allows) and without.
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=120
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_numpy

# SGLang takes its directory from this variable; the replay does too.
SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR=$MNT/hicache
export SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR
DIR=$SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR

LLAMA=(--model meta-llama/Llama-3.1-8B-Instruct --pages 16 --page-size 8MiB)
QWEN=(--model Qwen/Qwen3-14B --pages 16 --page-size 8MiB)
RACE=(--model shared --pages 8 --page-size 8MiB --seed race)
OUT=$MC_TEST_DIR/out

# check WHAT PATTERN ARGS...: run the replay, which must exit 0 and print a
# summary line matching PATTERN.
check() {
	local what="$mode: $1" pattern=$2
	shift 2
	sfb "$@" >"$OUT" || fail "$what: exit $? ($(cat "$OUT"))"
	grep -qE -- "$pattern" "$OUT" || fail "$what: '$(cat "$OUT")' does not match '$pattern'"
}

for mode in auto off; do
	mc_start --global-segment-size 512MiB --passthrough $mode
	note "--passthrough $mode: status says passthrough: $(mc_status passthrough)"
	if [ $mode = off ] && [ "$(mc_status passthrough)" != no ]; then
		fail "--passthrough off, and status says passthrough: $(mc_status passthrough)"
	fi
	mkdir "$DIR" || fail "mkdir $DIR"

	# --- direct era: open, dup, one write, two closes -------------------

	check "exists on an empty directory" '^exists: 0/16$' exists "${LLAMA[@]}" --expect 0
	check "direct-era write" 'written=16 skipped=0 failed=0' write --era direct "${LLAMA[@]}"
	check "exists after write" '^exists: 16/16$' exists "${LLAMA[@]}" --expect 16
	check "a second server reads every page" 'hits=16 misses=0 wrong_bytes=0 short_reads=0' \
		read "${LLAMA[@]}" --expect-all
	check "set skips pages that exist" 'written=0 skipped=16 failed=0' \
		write --era direct "${LLAMA[@]}"
	n=$(ls "$DIR" | grep -cE '^[0-9a-f]{64}_meta-llama-Llama-3.1-8B-Instruct_0_1\.bin$')
	[ "$n" = 16 ] || fail "$mode: ls shows $n llama pages, expected 16"

	# --- tmp + rename era: <final>.tmp.<pid>.<tid>.<uuid>, os.replace --

	check "rename-era write" 'written=16 skipped=0 failed=0' write --era rename "${QWEN[@]}"
	check "exists after rename-era write" '^exists: 16/16$' exists "${QWEN[@]}" --expect 16
	check "a second server reads the renamed pages" \
		'hits=16 misses=0 wrong_bytes=0 short_reads=0' read "${QWEN[@]}" --expect-all
	if ls "$DIR" | grep -q '\.tmp\.'; then
		fail "$mode: temp files left behind: $(ls "$DIR" | grep '\.tmp\.' | head -3)"
	fi

	# a longer prompt shares the first 16 pages' keys: exists stops at
	# the first miss, set skips what is there
	check "exists stops at the first miss" '^exists: 16/24$' \
		exists "${QWEN[@]}" --pages 24 --expect 16
	check "set of a longer prompt writes only the new pages" \
		'written=8 skipped=16 failed=0' write --era rename "${QWEN[@]}" --pages 24

	# --- two servers publish the same pages at once ---------------------

	sfb write --era rename "${RACE[@]}" >"$MC_TEST_DIR/race1" 2>&1 &
	p1=$!
	sfb write --era rename "${RACE[@]}" >"$MC_TEST_DIR/race2" 2>&1 &
	p2=$!
	wait $p1 || fail "$mode: racing writer 1 failed: $(cat "$MC_TEST_DIR/race1")"
	wait $p2 || fail "$mode: racing writer 2 failed: $(cat "$MC_TEST_DIR/race2")"
	check "pages two servers raced to publish" \
		'hits=8 misses=0 wrong_bytes=0 short_reads=0' read "${RACE[@]}" --expect-all

	# the first model is still whole (nothing evicted: 384 of 512 MiB)
	check "llama pages after the other models" 'hits=16 misses=0 wrong_bytes=0' \
		read "${LLAMA[@]}" --expect-all

	# --- clear: listdir + unlink of every file ---------------------------

	check "clear" '^clear: removed=48 failed=0$' clear
	[ -z "$(ls -A "$DIR")" ] || fail "$mode: clear left: $(ls -A "$DIR" | head -3)"
	check "exists after clear" '^exists: 0/16$' exists "${LLAMA[@]}" --expect 0
	check "get after clear is a clean miss" 'hits=0 misses=16' read "${QWEN[@]}" --expect-none
	[ "$(mc_status pages)" = 0 ] || fail "$mode: status pages is $(mc_status pages) after clear"

	rmdir "$DIR" || fail "$mode: rmdir of the cleared directory"
	mc_stop
done

mc_done
