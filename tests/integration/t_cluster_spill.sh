#!/bin/bash
# t_cluster_spill: a host whose pool is full places pages on another host
# instead of evicting them.  Host A has a small pool (128 MiB), B a large
# one (512 MiB).  SGLang's file backend writes three times A's pool on A,
# in 8 MiB pages, as fast as it can.  Each time A passes its high
# watermark the master moves A's oldest pages to B (B fetches them, then A
# frees its copy) rather than evicting them, since B has room:
#   - no write fails and nothing is evicted (the master's count is 0);
#   - every page has exactly one copy, the ones that did not fit on A in
#     B's pool;
#   - every page reads byte-exact on B and on A (each read on A of a page
#     that moved makes a copy there, and those copies make room for the
#     next ones: still nothing is evicted).
# ls is one of the tools under test here, so it is used on purpose:
# shellcheck disable=SC2012
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
MC_TEST_TIMEOUT=60
# shellcheck source=SCRIPTDIR/lib.sh
. "${MC_SRCDIR:-$(dirname "$0")/../..}/tests/integration/lib.sh"

mc_netns_require
mc_require_numpy

MiB=1048576
PAGES=48			# 384 MiB: three times A's pool
PAGE_MIB=8
KV=(--model spill --seed spill --pages "$PAGES" --page-size "${PAGE_MIB}MiB")
OUT=$MC_TEST_DIR/out

mc_net_up 2
# shellcheck disable=SC2119 # no arguments: the defaults
mc_master_start
mc_host_start a --global-segment-size 128MiB
mc_host_start b --global-segment-size 512MiB
A=$(mc_host_mnt a) B=$(mc_host_mnt b)
POOL_A=$(mc_host_state a)/pool/pages
POOL_B=$(mc_host_state b)/pool/pages

# pages H: committed pages in host H's pool
pages() { ls "$(mc_host_state "$1")/pool/pages" | wc -l; }
# evictions H: pages the cluster evicted, as host H's status reports it
# (the master's count)
evictions() { mc_host_status "$1" evictions; }

mkdir "$A/kv" || fail "mkdir kv on A"
mc_wait_for 3 test -d "$B/kv" || fail "kv made on A is not on B"
# the master moves pages only to a host whose heartbeat said how full it
# is: B's first comes a quarter of the client ttl after it registered
sleep 1

# --- three pools' worth written on A ----------------------------------------

t0=$(mc_now_ms)
sfb write --dir "$A/kv" "${KV[@]}" >"$OUT" 2>&1 ||
	fail "writing $PAGES pages of $PAGE_MIB MiB on A (a 128 MiB pool): $(cat "$OUT")"
note "$PAGES pages of $PAGE_MIB MiB written on A in $(($(mc_now_ms) - t0)) ms"
ev=$(evictions a)
[ "$ev" = 0 ] ||
	fail "$ev pages were evicted while B had room (B holds $(pages b) pages, A $(pages a))"
for k in enospc errors; do
	[ "$(mc_host_status a $k)" = 0 ] || fail "A's status says $k: $(mc_host_status a $k)"
done

# the last moves land a moment after the last close
# shellcheck disable=SC2317 # called through mc_wait_for
settled() { [ $(($(pages a) + $(pages b))) -eq "$PAGES" ]; }
mc_wait_for 10 settled ||
	fail "10 s after the writes, A holds $(pages a) pages and B $(pages b): expected $PAGES in all, each once"
na=$(pages a) nb=$(pages b)
note "A holds $na pages, B $nb"
# A keeps at most its pool below the watermark (0.9 x 128 MiB)
[ "$na" -le $((128 * 9 / 10 / PAGE_MIB)) ] || fail "A holds $na pages of $PAGE_MIB MiB in a 128 MiB pool"
[ "$nb" -ge $((PAGES - 128 / PAGE_MIB)) ] ||
	fail "B holds only $nb of the $PAGES pages, A $na: the pages A had no room for are not on B"
used=$(mc_host_status b used_bytes)
[ "$used" -ge $((nb * PAGE_MIB * MiB)) ] ||
	fail "B's status says $used bytes used for $nb pages of $PAGE_MIB MiB"
# each page is in exactly one pool
for f in "$POOL_A"/*; do
	[ -e "$POOL_B/$(basename "$f")" ] && fail "page $(basename "$f") is in both pools after the moves"
done

# --- every page reads byte-exact, on B and on A ------------------------------

sfb read --dir "$B/kv" "${KV[@]}" --expect-all >"$OUT" 2>&1 ||
	fail "reading every page on B: $(cat "$OUT")"
sfb read --dir "$A/kv" "${KV[@]}" --expect-all >"$OUT" 2>&1 ||
	fail "reading every page on A: $(cat "$OUT")"
ev=$(evictions b)
[ "$ev" = 0 ] || fail "$ev pages were evicted by the reads, with room on B"
sfb exists --dir "$A/kv" "${KV[@]}" --expect "$PAGES" >"$OUT" 2>&1 ||
	fail "exists on A after the reads: $(cat "$OUT")"
for h in a b; do
	[ "$(mc_host_status $h fetch_errors)" = 0 ] ||
		fail "host $h had $(mc_host_status $h fetch_errors) fetch errors"
done

mc_done
