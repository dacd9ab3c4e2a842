#!/bin/sh
# t_fuzz_corpus.sh - replay each seed corpus (tests/fuzz/corpus/<target>/)
# through its fuzz target, built with tests/fuzz/driver.c, and, in a build
# configured with --enable-fuzz, through the libFuzzer binary as well.  Any
# crash, broken property or sanitizer report fails the test.
# Exit 0 pass, 1 fail, 99 hard error (a target or corpus is missing).
set -u

srcdir=${MC_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${MC_BUILDDIR:-$srcdir}

out=$(mktemp "${TMPDIR:-/tmp}/t_fuzz_corpus.XXXXXX") || {
	echo "t_fuzz_corpus: cannot create a temporary file: set TMPDIR" >&2
	exit 99
}
trap 'rm -f "$out"' EXIT

fail=0

# run "$@" into $out, then judge its exit status and its sanitizer reports
replay() {
	"$@" >"$out" 2>&1
	rc=$?
	cat "$out"
	if [ "$rc" != 0 ]; then
		echo "t_fuzz_corpus: FAIL: '$1' exited $rc on the input named last above: replay it with '$1 FILE'" >&2
		fail=1
	elif grep -qE 'runtime error:|ERROR: [A-Za-z]*Sanitizer' "$out"; then
		echo "t_fuzz_corpus: FAIL: sanitizer report from '$1': see above" >&2
		fail=1
	fi
}

for t in config size name wire; do
	bin=$builddir/tests/fuzz/fuzz_$t
	corpus=$srcdir/tests/fuzz/corpus/$t
	if [ ! -x "$bin" ]; then
		echo "t_fuzz_corpus: '$bin' is not built: run 'make check'" >&2
		exit 99
	fi
	if [ ! -d "$corpus" ]; then
		echo "t_fuzz_corpus: no corpus '$corpus': set MC_SRCDIR to the source tree" >&2
		exit 99
	fi
	replay "$bin" "$corpus"
	# libFuzzer runs files once each; given a directory it would fuzz
	if [ -x "$bin-libfuzzer" ]; then
		replay "$bin-libfuzzer" "$corpus"/*
	fi
done

if [ "$fail" = 0 ]; then
	echo "t_fuzz_corpus: PASS"
fi
exit "$fail"
