#!/usr/bin/python3
"""Replay of SGLang's `file` HiCache storage backend, syscall for syscall.

SGLang (--hicache-storage-backend file) keeps one file per KV page in one flat
directory (SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR).  This script does to a
directory exactly what that backend does (research/sglang-file-backend.md),
so the integration tests can prove that the mount is a working SGLang L3
without SGLang or a GPU:

  exists  stat() per page, stopping at the first miss
  set     skipped when the page exists; otherwise
            direct era: open(O_WRONLY|O_CREAT|O_TRUNC), dup, one write() of
                        the whole page, close twice
            rename era: the same into <final>.tmp.<pid>.<tid>.<uuidhex>, then
                        os.replace(tmp, final); the temp file is removed on
                        failure
  get     open(O_RDONLY), fstat, ONE read() of the whole page into a
          preallocated buffer; a read shorter than st_size or a page of
          the wrong size is fatal (it kills SGLang's prefetch thread), a
          missing page is a clean miss
  clear   listdir + unlink of every regular file

Page names are <64-hex chained sha256>_<model>_<tp_rank>_<tp_size>.bin and
page bytes are a function of the key alone, so a second process (a second
"server") can verify every byte without sharing anything but the key seed.

Exit status: 0 success, 1 a check failed (wrong bytes, unexpected miss, a
failed write), 2 usage, 3 a short read (fatal, as in SGLang).
"""

import argparse
import errno
import hashlib
import os
import sys
import threading
import time
import uuid

import numpy as np

TOKENS_PER_PAGE = 64
MiB = 1 << 20
EXIT_FAIL = 1
EXIT_SHORT_READ = 3


class ShortRead(Exception):
    pass


def page_keys(seed, count):
    """Chained keys as SGLang's get_hash_str(token_ids, prior_hash) makes them.

    Each page's key hashes the previous key and the page's token ids, so a
    key names the whole prefix.  Token ids are derived from the seed.
    """
    keys = []
    prior = None
    base = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "little")
    for i in range(count):
        h = hashlib.sha256()
        if prior is not None:
            h.update(bytes.fromhex(prior))
        for t in range(TOKENS_PER_PAGE):
            tok = (base + i * TOKENS_PER_PAGE + t) % 128256
            h.update(tok.to_bytes(4, byteorder="little", signed=False))
        prior = h.hexdigest()
        keys.append(prior)
    return keys


def suffix(args):
    model = args.model.replace("/", "-")
    return "_%s_%d_%d" % (model, args.tp_rank, args.tp_size)


def page_name(key, args):
    return key + suffix(args) + ".bin"


def page_bytes(key, size):
    """Deterministic page content: every 8-byte word depends on the key and
    its position, so swapped, shifted or stale chunks are all detected."""
    k = hashlib.sha256(("content:" + key).encode()).digest()
    mul = np.uint64(int.from_bytes(k[:8], "little") | 1)
    add = np.uint64(int.from_bytes(k[8:16], "little"))
    words = (size + 7) // 8
    with np.errstate(over="ignore"):
        w = np.arange(words, dtype=np.uint64) * mul + add
    return w.view(np.uint8)[:size]


def selected(args):
    """(index, key, path) of the pages this invocation works on."""
    keys = page_keys(args.seed, args.first + args.pages)
    out = []
    for i in range(args.first, args.first + args.pages):
        out.append((i, keys[i], os.path.join(args.dir, page_name(keys[i], args))))
    return out


# --- the backend's operations ----------------------------------------------

def backend_exists(path):
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False


def write_page_fd(path, buf, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """open, dup, write the whole page, close the dup, close the original:
    what tensor.numpy().tofile(f) inside `with open(path, "wb")` does."""
    fd = os.open(path, flags, 0o644)
    try:
        fd2 = os.dup(fd)
        try:
            mv = memoryview(buf).cast("B")
            done = 0
            while done < len(mv):  # fwrite loops; one write() in practice
                n = os.write(fd2, mv[done:])
                if n <= 0:
                    raise OSError(errno.EIO, "write returned %d" % n)
                done += n
        finally:
            os.close(fd2)
    finally:
        os.close(fd)


def backend_set(path, buf, era):
    """Returns "skipped" or "written"; raises OSError on failure."""
    if backend_exists(path):
        return "skipped"
    if era == "direct":
        write_page_fd(path, buf)
        return "written"
    tmp = "%s.tmp.%d.%d.%s" % (path, os.getpid(), threading.get_native_id(),
                               uuid.uuid4().hex)
    try:
        write_page_fd(tmp, buf)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return "written"


def backend_get(path, expected_size):
    """One read of the full size into a preallocated buffer, or None on a
    clean miss.  Raises ShortRead when read() returns less than st_size."""
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        buf = np.empty(expected_size, dtype=np.uint8)
        n = f.readinto(memoryview(buf))
        if n < min(st.st_size, expected_size):
            raise ShortRead("%s: read returned %s of st_size %d bytes"
                            % (path, n, st.st_size))
        if n != expected_size or st.st_size != expected_size:
            raise ShortRead("%s: page has st_size %d (read %d), expected %d"
                            % (path, st.st_size, n, expected_size))
    return buf


def backend_clear(directory):
    removed = failed = 0
    for name in os.listdir(directory):
        p = os.path.join(directory, name)
        if not os.path.isfile(p):
            continue
        try:
            os.unlink(p)
            removed += 1
        except FileNotFoundError:
            pass
        except OSError as e:
            failed += 1
            print("clear: unlink %s: %s" % (p, e), file=sys.stderr)
    return removed, failed


# --- subcommands ------------------------------------------------------------

def cmd_write(args):
    written = skipped = failed = 0
    for i, key, path in selected(args):
        buf = page_bytes(key, args.page_size)
        try:
            r = backend_set(path, buf, args.era)
        except OSError as e:
            failed += 1
            print("write: page %d %s: %s" % (i, os.path.basename(path), e),
                  file=sys.stderr)
            if args.stop_on_error:
                break
            continue
        if r == "written":
            written += 1
        else:
            skipped += 1
    print("write: era=%s pages=%d written=%d skipped=%d failed=%d"
          % (args.era, args.pages, written, skipped, failed))
    return EXIT_FAIL if failed else 0


def cmd_read(args):
    """Get every page once and verify it; with --wait, keep retrying the
    missing ones (a prefetch that polls for another server's pages)."""
    hits = bad_pages = wrong_bytes = 0
    pending = selected(args)
    deadline = time.monotonic() + (args.wait or 0)
    while True:
        missing = []
        for i, key, path in pending:
            try:
                got = backend_get(path, args.page_size)
            except ShortRead as e:
                print("read: FATAL short read (kills SGLang's prefetch "
                      "thread): %s" % e, file=sys.stderr)
                print("read: pages=%d hits=%d misses=%d wrong_bytes=%d "
                      "short_reads=1" % (args.pages, hits, len(pending),
                                         wrong_bytes))
                return EXIT_SHORT_READ
            if got is None:
                missing.append((i, key, path))
                continue
            hits += 1
            want = page_bytes(key, args.page_size)
            bad = int(np.count_nonzero(got != want))
            if bad:
                first = int(np.flatnonzero(got != want)[0])
                print("read: page %d %s: %d wrong bytes, first at offset %d"
                      % (i, os.path.basename(path), bad, first),
                      file=sys.stderr)
                bad_pages += 1
                wrong_bytes += bad
        pending = missing
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    misses = len(pending)
    if args.expect_all:
        for i, _, path in pending:
            print("read: page %d missing: %s" % (i, path), file=sys.stderr)
    print("read: pages=%d hits=%d misses=%d wrong_bytes=%d short_reads=0"
          % (args.pages, hits, misses, wrong_bytes))
    if bad_pages or (args.expect_all and misses):
        return EXIT_FAIL
    if args.expect_none and hits:
        return EXIT_FAIL
    return 0


def cmd_exists(args):
    n = 0
    for _, _, path in selected(args):
        if not backend_exists(path):
            break
        n += 1
    print("exists: %d/%d" % (n, args.pages))
    if args.expect is not None and n != args.expect:
        print("exists: expected %d leading hits, got %d" % (args.expect, n),
              file=sys.stderr)
        return EXIT_FAIL
    return 0


def cmd_clear(args):
    removed, failed = backend_clear(args.dir)
    print("clear: removed=%d failed=%d" % (removed, failed))
    return EXIT_FAIL if failed else 0


def cmd_names(args):
    for _, _, path in selected(args):
        print(path)
    return 0


def cmd_hold(args):
    """Open pages for reading and keep them open (a reader mid-get), verify
    them, say so on stdout, then wait until stdin closes or --seconds."""
    fds = []
    for i, key, path in selected(args):
        got = backend_get(path, args.page_size)
        if got is None:
            print("hold: page %d missing: %s" % (i, path), file=sys.stderr)
            return EXIT_FAIL
        fds.append((i, key, os.open(path, os.O_RDONLY)))
    print("hold: holding %d pages" % len(fds), flush=True)
    if args.seconds is not None:
        time.sleep(args.seconds)
    else:
        sys.stdin.read()
    bad = 0
    for i, key, fd in fds:  # the held bytes are still the page's bytes
        buf = np.empty(args.page_size, dtype=np.uint8)
        n = os.preadv(fd, [buf], 0)
        if n != args.page_size or not np.array_equal(buf, page_bytes(key, args.page_size)):
            print("hold: page %d changed under its reader (read %d bytes)"
                  % (i, n), file=sys.stderr)
            bad += 1
        os.close(fd)
    print("hold: released %d pages, %d bad" % (len(fds), bad))
    return EXIT_FAIL if bad else 0


def parse_size(s):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": MiB, "mib": MiB,
             "g": 1 << 30, "gib": 1 << 30}
    t = s.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    return int(num) * units[t[len(num):]]


def main(argv):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=os.environ.get(
        "SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR", "/tmp/hicache"),
        help="storage directory (default: $SGLANG_HICACHE_FILE_BACKEND_STORAGE_DIR)")
    common.add_argument("--pages", type=int, default=16)
    common.add_argument("--first", type=int, default=0,
                        help="index of the first page in the key chain")
    common.add_argument("--page-size", type=parse_size, default=8 * MiB)
    common.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct")
    common.add_argument("--tp-rank", type=int, default=0)
    common.add_argument("--tp-size", type=int, default=1)
    common.add_argument("--seed", default="prompt-0",
                        help="names the token stream the page keys hash")

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", parents=[common], help="batch set")
    w.add_argument("--era", choices=["direct", "rename"], default="direct")
    w.add_argument("--stop-on-error", action="store_true")
    w.set_defaults(fn=cmd_write)
    r = sub.add_parser("read", parents=[common], help="batch get, verified")
    r.add_argument("--expect-all", action="store_true",
                   help="a missing page is a failure")
    r.add_argument("--expect-none", action="store_true",
                   help="a present page is a failure")
    r.add_argument("--wait", type=float, metavar="SECONDS",
                   help="retry missing pages until found or SECONDS pass")
    r.set_defaults(fn=cmd_read)
    e = sub.add_parser("exists", parents=[common], help="leading hit count")
    e.add_argument("--expect", type=int)
    e.set_defaults(fn=cmd_exists)
    c = sub.add_parser("clear", parents=[common], help="unlink every file")
    c.set_defaults(fn=cmd_clear)
    n = sub.add_parser("names", parents=[common], help="print page paths")
    n.set_defaults(fn=cmd_names)
    h = sub.add_parser("hold", parents=[common],
                       help="keep pages open until stdin closes")
    h.add_argument("--seconds", type=float)
    h.set_defaults(fn=cmd_hold)

    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
