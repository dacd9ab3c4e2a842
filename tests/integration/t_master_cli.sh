#!/bin/bash
# t_master_cli: mooncake_master's command line: --help and --version, exit
# status 2 with a message naming what is wrong (bad values, unknown flags,
# the Mooncake options this version refuses), the man page lists every
# option --help prints, and a master binds its port, answers a HELLO and
# stops on SIGTERM within a second with exit status 0.
# Needs no root: nothing here mounts.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

MASTER=$MC_BUILDDIR/daemon/mooncake_master
PAGE=$MC_SRCDIR/man/mooncake_master.8
[ -x "$MASTER" ] || hard_error "no master at $MASTER (build it first: make)"
mc_require_python

OUT=$MC_TEST_DIR/out
ERR=$MC_TEST_DIR/err

# run ARGS...: the master with a safety-net timeout; sets $rc, $OUT, $ERR.
run() {
	timeout 10 "$MASTER" "$@" >"$OUT" 2>"$ERR"
	rc=$?
}

# expect_usage_error WORD ARGS...: exit 2, and stderr names WORD.
expect_usage_error() {
	local word=$1
	shift
	run "$@"
	[ $rc -eq 2 ] || fail "mooncake_master $* exited $rc, expected 2 (stderr: $(head -c 400 "$ERR"))"
	grep -qF -- "$word" "$ERR" ||
		fail "mooncake_master $*: the message does not name '$word': $(head -c 400 "$ERR")"
	[ "$(wc -l <"$ERR")" -eq 1 ] ||
		fail "mooncake_master $*: expected one line on stderr, got: $(cat "$ERR")"
}

# --- help and version ---------------------------------------------------------

run --help
[ $rc -eq 0 ] || fail "--help exited $rc"
for opt in --db --rpc_address --port --client_ttl --replica_num --log-level \
	--eviction_high_watermark_ratio --eviction_ratio \
	--default_kv_lease_ttl --enable_http_metadata_server --metrics_port \
	--foreground --version; do
	grep -qF -- "$opt" "$OUT" || fail "--help does not mention $opt"
done
grep -qi 'foreground' "$OUT" || fail "--help does not say the master runs in the foreground"
grep -qi 'own watermarks' "$OUT" ||
	fail "--help does not say daemons evict at their own watermarks"

# every option --help prints is in the man page
mapfile -t flags < <(grep -E '^[[:space:]]+-' "$OUT" |
	grep -oE -- '--[a-z0-9][a-z0-9_-]*' | sort -u)
[ ${#flags[@]} -ge 10 ] || fail "found only ${#flags[@]} options in --help"
for f in "${flags[@]}"; do
	grep -qE -- "(^|[^A-Za-z0-9_-])$f([^A-Za-z0-9_-]|\$)|Fl -${f#--}([^A-Za-z0-9_-]|\$)" "$PAGE" ||
		fail "man/mooncake_master.8 does not document $f"
done
if command -v mandoc >/dev/null 2>&1; then
	mandoc -Tlint "$PAGE" >"$MC_TEST_DIR/lint" 2>&1
	[ $? -lt 3 ] || fail "mandoc -Tlint finds errors in $PAGE: $(cat "$MC_TEST_DIR/lint")"
fi

run --version
[ $rc -eq 0 ] || fail "--version exited $rc"
grep -qE '^mooncake_master .*[0-9]+\.[0-9]+' "$OUT" ||
	fail "--version prints no version: $(cat "$OUT")"

# --- bad usage: exit 2, naming the culprit -------------------------------------

expect_usage_error --no-such-flag --no-such-flag
expect_usage_error stray stray
expect_usage_error port --port 70000
expect_usage_error port --port=abc
expect_usage_error port --port
expect_usage_error client_ttl --client_ttl 0
expect_usage_error client_ttl --client_ttl=-1
expect_usage_error client_ttl --client_ttl soon
expect_usage_error replica_num --replica_num 0
expect_usage_error replica_num --replica_num 9
expect_usage_error log-level --log-level chatty
expect_usage_error eviction_high_watermark_ratio --eviction_high_watermark_ratio 1.5
expect_usage_error eviction_ratio --eviction_ratio 0
expect_usage_error default_kv_lease_ttl --default_kv_lease_ttl -5
expect_usage_error db --db ''
expect_usage_error foreground --foreground=yes

# Mooncake options this version does not implement: refused, not ignored
for args in --enable_http_metadata_server --enable_http_metadata_server=true \
	"--http_metadata_server_port 8080" "--metrics_port=9003" --enable_ha; do
	# shellcheck disable=SC2086
	set -- $args
	word=${1%%=*}
	expect_usage_error "$word" "$@"
	grep -qi 'not implemented' "$ERR" ||
		fail "mooncake_master $args: the refusal does not say it is not implemented: $(cat "$ERR")"
done

# --- it serves and stops ----------------------------------------------------------

# a high port picked at random, retried if taken
DB=$MC_TEST_DIR/master.db
LOG=$MC_TEST_DIR/master.log
started=
for _ in 1 2 3 4 5; do
	PORT=$((20000 + RANDOM % 40000))
	: >"$LOG"
	"$MASTER" --db "$DB" --rpc_address 127.0.0.1 --port="$PORT" \
		--client_ttl 0.5 --replica_num 2 --eviction_ratio 0.05 \
		--default_kv_lease_ttl 5000 --enable_http_metadata_server=false \
		--log-level info >>"$LOG" 2>&1 &
	pid=$!
	echo "$pid" >"$MC_TEST_DIR/daemon.pid.master"
	if mc_wait_for 5 grep -q 'serving on' "$LOG"; then
		started=1
		break
	fi
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	grep -q 'cannot listen' "$LOG" || break
done
[ -n "$started" ] || fail "mooncake_master did not start: $(tail -n 5 "$LOG")"
grep -qF "127.0.0.1:$PORT" "$LOG" || fail "the start line does not name the port: $(head -n 3 "$LOG")"

# it answers HELLO on that port
"$MC_PYTHON" - "$PORT" <<'EOF' || fail "the master did not answer HELLO on port $PORT"
import socket, struct, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
name = b"t_master_cli"
payload = struct.pack("<HHH", 1, 1, len(name)) + name
s.sendall(struct.pack("<IHHIIQ", 0x3146434d, 1, 1, 0, len(payload), 9) + payload)
h = b""
while len(h) < 24:
    b = s.recv(24 - len(h))
    if not b:
        sys.exit(1)
    h += b
magic, ver, typ, flags, length, rid = struct.unpack("<IHHIIQ", h)
body = b""
while len(body) < length:
    body += s.recv(length - len(body))
status, version = struct.unpack("<iH", body[:6])
sys.exit(0 if magic == 0x3146434d and typ == 0x8001 and rid == 9 and status == 0 and version == 1 else 1)
EOF

# a second master on the same port fails with exit status 1, saying why
timeout 10 "$MASTER" --db :memory: --rpc_address 127.0.0.1 --port "$PORT" \
	>"$OUT" 2>"$ERR"
rc=$?
[ $rc -eq 1 ] || fail "a second master on port $PORT exited $rc, expected 1"
grep -q 'cannot listen' "$ERR" || fail "the second master does not say why: $(cat "$ERR")"

t0=$(date +%s%N)
kill -TERM "$pid"
for _ in $(seq 20); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
	kill -9 "$pid"
	fail "mooncake_master did not stop within a second of SIGTERM"
fi
wait "$pid"
rc=$?
t1=$(date +%s%N)
[ $rc -eq 0 ] || fail "mooncake_master exited $rc on SIGTERM: $(tail -n 5 "$LOG")"
note "stopped in $(((t1 - t0) / 1000000)) ms"
if grep -nE '\[err\]|Sanitizer|runtime error' "$LOG"; then
	fail "unexpected errors in the master's log"
fi
[ -f "$DB" ] || fail "no store at $DB"

mc_done
