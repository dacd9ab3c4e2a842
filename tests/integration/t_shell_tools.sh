#!/bin/bash
# t_shell_tools: an operator's everyday tools work on the mount: mkdir -p,
# cp and cmp, ls -l, stat, du, df, find, mv, rm -rf, getfattr, the status
# file; and what the filesystem refuses it refuses with the errno the man
# page promises (ENAMETOOLONG, EPERM for links and appends, EFBIG).
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2010,SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=90
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_require_root_fuse
mc_require_python

MiB=1048576
POOL=$((128 * MiB))
SRC=$MC_TEST_DIR/src.bin
SRC2=$MC_TEST_DIR/src2.bin
mc_random_file "$SRC" $((8 * MiB))
mc_random_file "$SRC2" $((3 * MiB))

mc_start --global-segment-size 128MiB

# --- mkdir -p, cp, cmp, ls -l, stat, du -------------------------------------

D=$MNT/llama3-8b/tp0
mkdir -p "$D" || fail "mkdir -p $D"
[ -d "$D" ] || fail "mkdir -p: $D is not a directory"
[ "$(stat -c %F "$MNT/llama3-8b")" = directory ] || fail "stat: llama3-8b is not a directory"

cp "$SRC" "$D/page0.bin" || fail "cp into the mount"
cmp "$SRC" "$D/page0.bin" || fail "cmp: the copy differs"

size=$(ls -l "$D" | awk '$NF == "page0.bin" { print $5 }')
[ "$size" = $((8 * MiB)) ] || fail "ls -l shows size '$size' for an 8 MiB page"
[ "$(stat -c %s "$D/page0.bin")" = $((8 * MiB)) ] || fail "stat -c %s is not 8 MiB"
[ "$(stat -c %F "$D/page0.bin")" = "regular file" ] || fail "stat: the page is not a regular file"
[ "$(stat -c %h "$D/page0.bin")" = 1 ] || fail "stat: a page has link count $(stat -c %h "$D/page0.bin")"

du_k=$(du -k "$D/page0.bin" | cut -f1)
[ "$du_k" -ge 8192 ] || fail "du -k of an 8 MiB page is $du_k"
du_k=$(du -sk "$MNT/llama3-8b" | cut -f1)
[ "$du_k" -ge 8192 ] || fail "du -sk of the model's subtree is $du_k"

# --- df and the status file -------------------------------------------------

read -r fstype size used <<EOF
$(df -B1 --output=fstype,size,used "$MNT" | tail -n 1)
EOF
[ "$fstype" = fuse.mooncake ] || fail "df shows fstype '$fstype'"
if [ "$size" -lt $((POOL * 9 / 10)) ] || [ "$size" -gt $((POOL * 11 / 10)) ]; then
	fail "df shows capacity $size for a pool of $POOL"
fi
[ "$used" -ge $((8 * MiB)) ] || fail "df shows $used bytes used with an 8 MiB page in"

[ -d "$MNT/.mooncake" ] || fail "no $MNT/.mooncake directory"
cat "$MNT/.mooncake/status" >"$MC_TEST_DIR/status" || fail "cat .mooncake/status"
for key in capacity_bytes used_bytes pages hits misses evictions errors \
	passthrough pool_kind; do
	grep -qE "^$key: " "$MC_TEST_DIR/status" ||
		fail ".mooncake/status has no '$key:' line: $(cat "$MC_TEST_DIR/status")"
done
[ "$(mc_status capacity_bytes)" = $POOL ] ||
	fail "status capacity_bytes is $(mc_status capacity_bytes), expected $POOL"
[ "$(mc_status pages)" = 1 ] || fail "status pages is $(mc_status pages) with one page in"
case $(mc_status passthrough) in
yes | no) ;;
*) fail "status passthrough is '$(mc_status passthrough)', expected yes or no" ;;
esac
readonly_refused() {
	local got
	got=$(mc_errno "$@")
	case $got in
	EROFS | EACCES | EPERM) ;;
	*) fail ".mooncake/ is not read-only: $* gave $got" ;;
	esac
}
readonly_refused open_w "$MNT/.mooncake/mine"
readonly_refused mkdir "$MNT/.mooncake/d"
readonly_refused unlink "$MNT/.mooncake/status"
readonly_refused open_w "$MNT/.mooncake/status"

# --- getfattr ---------------------------------------------------------------

if command -v getfattr >/dev/null; then
	getfattr --absolute-names -d -m user.mooncake "$D/page0.bin" >"$MC_TEST_DIR/xattr" ||
		fail "getfattr -d -m user.mooncake failed"
	for attr in state location replicas; do
		grep -q "^user\.mooncake\.$attr=" "$MC_TEST_DIR/xattr" ||
			fail "getfattr shows no user.mooncake.$attr: $(cat "$MC_TEST_DIR/xattr")"
	done
	grep -q '^user\.mooncake\.state="committed"' "$MC_TEST_DIR/xattr" ||
		fail "user.mooncake.state of a closed page is not \"committed\": $(cat "$MC_TEST_DIR/xattr")"
	expect_errno ENOTSUP setxattr "$D/page0.bin" user.mine x
else
	note "getfattr not installed (apt-get install attr): xattr checks skipped"
fi

# A page being written, through its writer's descriptor: state "writing",
# local and page_id answer (the ID it commits under), location and replicas
# do not (nobody else can reach it yet), and listxattr lists only those
# that answer, so getfattr -d works on it.
"$MC_PYTHON" - "$D/writing.bin" >"$MC_TEST_DIR/wxattr" 2>&1 <<'PY' ||
import errno, os, sys
p = sys.argv[1]
def get(where, attr):
    try:
        return os.getxattr(where, "user.mooncake." + attr).decode()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
bad = []
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
try:
    os.write(fd, b"kv" * 4096)
    got = {a: get(fd, a) for a in
           ("state", "local", "page_id", "location", "replicas")}
    listed = sorted(os.listxattr(fd))
finally:
    os.close(fd)
want = {"state": "writing", "local": "yes", "location": "ENODATA",
        "replicas": "ENODATA"}
for a, v in want.items():
    if got[a] != v:
        bad.append("%s is %r, expected %r" % (a, got[a], v))
if len(got["page_id"]) != 16:
    bad.append("page_id is %r, expected 16 hex digits" % got["page_id"])
want_listed = ["user.mooncake.local", "user.mooncake.page_id",
               "user.mooncake.state"]
if listed != want_listed:
    bad.append("listxattr gives %r, expected %r" % (listed, want_listed))
if get(p, "state") != "committed":
    bad.append("after close, state is %r" % get(p, "state"))
if get(p, "page_id") != got["page_id"]:
    bad.append("committed as page %r, written as %r" %
               (get(p, "page_id"), got["page_id"]))
os.unlink(p)
if bad:
    sys.exit("; ".join(bad))
PY
	fail "user.mooncake.* through a writer's descriptor: $(cat "$MC_TEST_DIR/wxattr")"

# --- find, mv, rm -rf ---------------------------------------------------------

found=$(cd "$MNT" && find . -type f -name 'page*.bin')
[ "$found" = ./llama3-8b/tp0/page0.bin ] || fail "find -type f gives '$found'"
found=$(cd "$MNT" && find llama3-8b -type d | sort | tr '\n' ' ')
[ "$found" = "llama3-8b llama3-8b/tp0 " ] || fail "find -type d gives '$found'"

mv "$D/page0.bin" "$D/page1.bin" || fail "mv within a directory"
[ ! -e "$D/page0.bin" ] || fail "mv left the old name"
mkdir "$MNT/llama3-8b/tp1" || fail "mkdir tp1"
mv "$D/page1.bin" "$MNT/llama3-8b/tp1/" || fail "mv across directories"
cmp "$SRC" "$MNT/llama3-8b/tp1/page1.bin" || fail "the page changed when moved"
mv "$MNT/llama3-8b/tp1" "$MNT/llama3-8b/tp2" || fail "mv of a directory"
cmp "$SRC" "$MNT/llama3-8b/tp2/page1.bin" || fail "the page changed when its directory moved"

rmdir "$MNT/llama3-8b/tp2" 2>/dev/null && fail "rmdir of a non-empty directory succeeded"
expect_errno ENOTEMPTY rmdir "$MNT/llama3-8b/tp2"

mkdir -p "$MNT/scratch/a/b/c" || fail "mkdir -p scratch"
for f in a/1 a/b/2 a/b/c/3 4; do
	head -c $MiB "$SRC" >"$MNT/scratch/$f" || fail "write scratch/$f"
done
[ "$(mc_status pages)" = 5 ] || fail "status pages is $(mc_status pages), expected 5"
rm -rf "$MNT/scratch" || fail "rm -rf of a subtree"
[ ! -e "$MNT/scratch" ] || fail "rm -rf left $MNT/scratch"
[ "$(mc_status pages)" = 1 ] || fail "rm -rf did not free its pages: status pages is $(mc_status pages)"

# --- names ------------------------------------------------------------------

name255=$(printf 'k%.0s' $(seq 255))
echo page >"$MNT/$name255" || fail "a 255-byte name was refused"
[ "$(cat "$MNT/$name255")" = page ] || fail "the 255-byte name reads back wrong"
ls "$MNT" | grep -qx "$name255" || fail "ls does not list the 255-byte name"
expect_errno ENAMETOOLONG open_w "$MNT/${name255}x"
expect_errno ENAMETOOLONG stat "$MNT/${name255}x"
expect_errno ENAMETOOLONG mkdir "$MNT/${name255}x"
expect_errno ENAMETOOLONG rename "$MNT/$name255" "$MNT/${name255}x"
rm "$MNT/$name255" || fail "rm of the 255-byte name"

# --- what is refused: links, appends ----------------------------------------

P=$MNT/llama3-8b/tp2/page1.bin
out=$(ln "$P" "$MNT/hard" 2>&1) && fail "ln (hard link) succeeded"
case $out in *"Operation not permitted"*) ;; *) fail "ln: '$out', expected EPERM" ;; esac
out=$(ln -s "$P" "$MNT/soft" 2>&1) && fail "ln -s succeeded"
case $out in *"Operation not permitted"*) ;; *) fail "ln -s: '$out', expected EPERM" ;; esac
expect_errno EPERM mknod "$MNT/node"
if [ -e "$MNT/hard" ] || [ -L "$MNT/soft" ]; then
	fail "a refused link left a name behind"
fi

out=$( (echo more >>"$P") 2>&1) && fail "appending with >> to a committed page succeeded"
case $out in *"Operation not permitted"*) ;; *) fail ">>: '$out', expected EPERM" ;; esac
# without O_TRUNC an open for writing succeeds (the kernel sends O_TRUNC's
# truncate separately), and the first write is refused
expect_errno EPERM write_rdwr "$P"
expect_errno EPERM write_wronly "$P"
expect_errno EPERM open_append "$P"
cmp "$SRC" "$P" || fail "a refused write changed the page"

# --- replacing a committed page: cp over it, shell > ------------------------

cp "$SRC2" "$P" || fail "cp over a committed page"
cmp "$SRC2" "$P" || fail "cp over a committed page: content is not the new file's"
[ "$(stat -c %s "$P")" = $((3 * MiB)) ] || fail "cp over: size is $(stat -c %s "$P")"
printf 'x' >"$P" || fail "shell > over a committed page"
[ "$(cat "$P")" = x ] || fail "shell > over a committed page: content is '$(head -c 20 "$P")'"

# --- a page over --max-page-size: EFBIG, nothing left visible ---------------

mc_stop
mc_start --global-segment-size 128MiB --max-page-size 4MiB
[ "$(cat "$P")" = x ] || fail "after a restart the page reads '$(head -c 20 "$P")'"

head -c $((4 * MiB)) "$SRC" >"$MNT/four.bin" || fail "a page of exactly --max-page-size was refused"
cmp -n $((4 * MiB)) "$SRC" "$MNT/four.bin" || fail "the 4 MiB page differs"

head -c $((5 * MiB)) "$SRC" >"$MC_TEST_DIR/five.bin"
out=$(cp "$MC_TEST_DIR/five.bin" "$MNT/five.bin" 2>&1) && fail "cp of 5 MiB with --max-page-size 4MiB succeeded"
case $out in *"File too large"*) ;; *) fail "cp of an oversized page: '$out', expected EFBIG" ;; esac
[ ! -e "$MNT/five.bin" ] || fail "the oversized page is visible: $(ls -l "$MNT/five.bin")"
ls "$MNT" | grep -q five && fail "ls lists the refused oversized page"
expect_errno EFBIG write_file "$MNT/five-py.bin" $((5 * MiB))
expect_errno ENOENT stat "$MNT/five-py.bin"

mc_done
