#!/bin/bash
# t_cli: mooncaked's command line, environment and JSON config: help and
# version, exit status 2 with a message naming what is wrong, and the
# precedence command line > environment > config file > default.
# Needs no root: nothing here mounts.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_daemon
mc_require_python

OUT=$MC_TEST_DIR/out
ERR=$MC_TEST_DIR/err

# run ARGS...: mooncaked in the foreground on the private mount point (as a
# safety net should a bad configuration be accepted: it then dies by
# timeout rather than leaving a daemon behind); sets $rc, $OUT, $ERR.
run() {
	timeout 10 "$MC_DAEMON" "$@" >"$OUT" 2>"$ERR"
	rc=$?
}

# expect_usage_error WORD ARGS...: exit 2, and stderr names WORD.
expect_usage_error() {
	local word=$1
	shift
	run "$@"
	[ $rc -eq 2 ] || fail "mooncaked $* exited $rc, expected 2 (stderr: $(head -c 400 "$ERR"))"
	grep -qF -- "$word" "$ERR" ||
		fail "mooncaked $*: the message does not name '$word': $(head -c 400 "$ERR")"
}

# dumped KEY ARGS...: the value of KEY in --dump-config's JSON, sizes in bytes.
dumped() {
	local key=$1
	shift
	run --dump-config "$@" "$MNT"
	[ $rc -eq 0 ] || fail "mooncaked --dump-config $* exited $rc: $(cat "$ERR")"
	"$MC_PYTHON" -c '
import json, re, sys
cfg = json.load(open(sys.argv[1]))
v = cfg[sys.argv[2]]
if isinstance(v, str):
    m = re.fullmatch(r"(\d+)\s*([kmgt]?)(i?b)?", v.strip().lower())
    if m:
        v = int(m.group(1)) << (10 * " kmgt".index(m.group(2) or " "))
print(v)' "$OUT" "$key" || fail "--dump-config did not print JSON with '$key': $(head -c 400 "$OUT")"
}

# --- help and version ---------------------------------------------------------

run --help
[ $rc -eq 0 ] || fail "--help exited $rc"
for opt in --global-segment-size --state-dir --max-page-size --foreground \
	--config --passthrough --log-level --dump-config \
	--eviction-high-watermark-ratio MOONCAKE_GLOBAL_SEGMENT_SIZE; do
	grep -qF -- "$opt" "$OUT" "$ERR" || fail "--help does not mention $opt"
done

run --version
[ $rc -eq 0 ] || fail "--version exited $rc"
grep -qE '[0-9]+\.[0-9]+' "$OUT" || fail "--version prints no version: $(cat "$OUT")"

# --- bad usage: exit 2, naming the culprit ------------------------------------

expect_usage_error --no-such-flag --foreground --state-dir "$STATE" --no-such-flag "$MNT"
expect_usage_error global-segment-size --foreground --state-dir "$STATE" \
	--global-segment-size 4xb "$MNT"
expect_usage_error global-segment-size --foreground --state-dir "$STATE" \
	--global-segment-size 8MiB "$MNT"	# below the 16 MiB minimum
expect_usage_error max-page-size --foreground --state-dir "$STATE" \
	--max-page-size -1 "$MNT"
expect_usage_error passthrough --foreground --state-dir "$STATE" \
	--passthrough sometimes "$MNT"
expect_usage_error log-level --foreground --state-dir "$STATE" \
	--log-level chatty "$MNT"

run --foreground --state-dir "$STATE"	# no mount point
[ $rc -eq 2 ] || fail "mooncaked without a mount point exited $rc, expected 2"
grep -qi 'mount' "$ERR" || fail "no mount point: the message does not say so: $(cat "$ERR")"

BADJSON=$MC_TEST_DIR/bad.json
printf '{ "global_segment_size": "1gb", \n' >"$BADJSON"
expect_usage_error "$BADJSON" --foreground --state-dir "$STATE" -c "$BADJSON" "$MNT"

BADKEY=$MC_TEST_DIR/badkey.json
printf '{ "global_segment_size": "lots" }\n' >"$BADKEY"
expect_usage_error global_segment_size --foreground --state-dir "$STATE" \
	-c "$BADKEY" "$MNT"

expect_usage_error no-such-file.json --foreground --state-dir "$STATE" \
	-c "$MC_TEST_DIR/no-such-file.json" "$MNT"

MOONCAKE_PROTOCOL=carrier-pigeon \
	expect_usage_error MOONCAKE_PROTOCOL --foreground --state-dir "$STATE" "$MNT"
MOONCAKE_GLOBAL_SEGMENT_SIZE=many \
	expect_usage_error MOONCAKE_GLOBAL_SEGMENT_SIZE --foreground --state-dir "$STATE" "$MNT"
MC_STORE_HUGEPAGE_SIZE=1GiB \
	expect_usage_error MC_STORE_HUGEPAGE_SIZE --foreground --state-dir "$STATE" "$MNT"

# --- precedence: command line > environment > config file > default --------

GiB=1073741824
CONF=$MC_TEST_DIR/store.json
cat >"$CONF" <<'EOF'
{
	"local_hostname": "localhost",
	"metadata_server": "P2PHANDSHAKE",
	"protocol": "tcp",
	"device_name": "",
	"global_segment_size": "1gb",
	"local_buffer_size": 0
}
EOF

v=$(dumped global_segment_size) || exit 1
[ "$v" = $((4 * GiB)) ] || fail "default global_segment_size is $v, expected 4 GiB"

v=$(dumped global_segment_size -c "$CONF") || exit 1
[ "$v" = $GiB ] || fail "config file: global_segment_size is $v, expected 1gb"

v=$(MOONCAKE_CONFIG_PATH=$CONF dumped global_segment_size) || exit 1
[ "$v" = $GiB ] || fail "MOONCAKE_CONFIG_PATH: global_segment_size is $v, expected 1gb"

v=$(MOONCAKE_GLOBAL_SEGMENT_SIZE=2gb dumped global_segment_size -c "$CONF") || exit 1
[ "$v" = $((2 * GiB)) ] || fail "environment over file: global_segment_size is $v, expected 2gb"

v=$(MOONCAKE_GLOBAL_SEGMENT_SIZE=2gb dumped global_segment_size -c "$CONF" \
	--global-segment-size 3GiB) || exit 1
[ "$v" = $((3 * GiB)) ] || fail "command line over environment: global_segment_size is $v, expected 3GiB"

v=$(dumped global_segment_size --global-segment-size 4294967296) || exit 1
[ "$v" = $((4 * GiB)) ] || fail "--global-segment-size 4294967296 gives $v"

v=$(MOONCAKE_PROTOCOL=rdma dumped protocol -c "$CONF") || exit 1
[ "$v" = rdma ] || fail "MOONCAKE_PROTOCOL=rdma over the file's tcp gives '$v'"

mc_done
