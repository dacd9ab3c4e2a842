/*
 * store.c - the namespace and placement store over sqlite.
 *
 * One connection, one mutex: every public call takes st->lock, runs at most
 * one short transaction on prepared statements made at open, and lets go;
 * callbacks run without it.  The schema (user_version 2; the whole of it,
 * and why, in doc/namespace-store.md):
 *
 *   inodes(ino PK, parent, name, mode, uid, gid, size, page_id,
 *          mtime_ns, ctime_ns, atime_ns, crc32c)
 *     UNIQUE (parent, name)                       lookup
 *     (parent, ino)                               readdir in inode order
 *   counters(id = 1, next_ino, next_page_id, pages, dirs, bytes)
 *   segments(id PK, uuid UNIQUE, host, address, port, capacity, protocol)
 *   replicas(page_id, segment, atime_ns, ino), PK (page_id, segment)
 *     (segment, atime_ns, page_id, ino)           each segment's LRU
 *
 * A row of inodes is a page when page_id != 0, a directory otherwise.  The
 * root is ino 1 with parent 1 and the empty name, which no client name can
 * match.  A page has one replicas row per copy and always at least one:
 * whatever removes a page's last copy removes the page in the same
 * transaction, so "the page exists" and "it has a replicas row" are the
 * same question.  replicas repeats the page's atime_ns and ino so that
 * eviction in one segment is a walk of one index that reaches each page by
 * its primary key.
 *
 * counters holds the totals, kept in the same transaction as every change,
 * so opening a store of millions of rows reads one row and scans nothing.
 * next_ino and next_page_id are high-water marks persisted a block ahead
 * of what has been handed out: a restart skips the rest of the block but
 * never repeats a number.
 *
 * Durability: WAL with synchronous=OFF.  A killed process loses nothing
 * (the WAL is in the page cache); a power cut may lose the last
 * transactions, but it loses the pool memory too, and the first start
 * after a reboot calls mc_store_forget_pages().
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "id_counts.h"
#include "log.h"
#include "name.h"
#include "store.h"
#include "banned.h"

#define STORE_SCHEMA_VERSION 2
/* Numbers persisted per counters write; a restart skips at most this many. */
#define STORE_RESERVE_BLOCK 1024
/* Rows read per query by readdir (grows to the max). */
#define STORE_READDIR_FIRST 32
#define STORE_READDIR_MAX 1024
/*
 * Copies read per transaction by eviction, which stops as soon as it has
 * freed enough, and by the sweeps of a lost or reconciled segment, which
 * go to the end and so take bigger bites.
 */
#define STORE_EVICT_BATCH 64
#define STORE_SWEEP_BATCH 512
/* Page ids confirmed per transaction by mc_store_holdings_add(). */
#define STORE_HOLDINGS_BATCH 1024
/* Copies read per lock hold by mc_store_under_replicated(). */
#define STORE_UNDER_CHUNK 4096
/* Deeper than any real tree; past it the parent chain must be a loop. */
#define STORE_MAX_DEPTH 65536

#define STORE_COLS                                                             \
	"ino, parent, name, mode, uid, gid, size, page_id, mtime_ns, "         \
	"ctime_ns, atime_ns"
/* STORE_COLS of inodes joined as i */
#define STORE_ICOLS                                                            \
	"i.ino, i.parent, i.name, i.mode, i.uid, i.gid, i.size, i.page_id, "   \
	"i.mtime_ns, i.ctime_ns, i.atime_ns"
/* A segment's copies joined to their pages, oldest first; see Q_LRU_SAME. */
#define STORE_LRU_FROM                                                         \
	"SELECT " STORE_ICOLS ", r.atime_ns FROM replicas AS r "               \
	"CROSS JOIN inodes AS i ON i.ino = r.ino WHERE r.segment = ?1 "

enum store_query {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_BY_INO,
	Q_BY_NAME,
	Q_INSERT,
	Q_DELETE,
	Q_HAS_CHILD,
	Q_MOVE,
	Q_SETATTR,
	Q_TOUCH,
	Q_TOUCH_COPIES,
	Q_TOUCH_INO_COPIES,
	Q_READDIR,
	Q_TOTALS_GET,
	Q_TOTALS_ADD,
	Q_LIMITS_SET,
	Q_FORGET,
	Q_FORGET_COPIES,
	Q_FORGET_TOTALS,
	Q_COPY_ADD,
	Q_COPY_CLONE,
	Q_COPY_DROP,
	Q_COPIES_DROP,
	Q_COPIES_OF,
	Q_COPY_INO,
	Q_REPLICAS,
	Q_LRU_SAME,
	Q_LRU_NEXT,
	Q_UNDER,
	Q_SEG_REGISTER,
	Q_SEG_GET,
	Q_SEG_LIST,
	Q_HOLD_GET,
	Q_HOLD_SET,
	Q_HOLD_CLEAR,
	Q_COUNT
};

static const char *const store_sql[Q_COUNT] = {
	/* IMMEDIATE: take the write lock up front, never upgrade mid-way */
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_BY_INO] = "SELECT " STORE_COLS " FROM inodes WHERE ino = ?1",
	[Q_BY_NAME] = "SELECT " STORE_COLS
		      " FROM inodes WHERE parent = ?1 AND name = ?2",
	[Q_INSERT] = "INSERT INTO inodes (" STORE_COLS ", crc32c) VALUES "
		     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
	[Q_DELETE] = "DELETE FROM inodes WHERE ino = ?1",
	/* ino != parent: the root is its own parent, not its own child */
	[Q_HAS_CHILD] = "SELECT 1 FROM inodes "
			"WHERE parent = ?1 AND ino != ?1 LIMIT 1",
	[Q_MOVE] = "UPDATE inodes SET parent = ?2, name = ?3, ctime_ns = ?4 "
		   "WHERE ino = ?1",
	[Q_SETATTR] = "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, "
		      "mtime_ns = ?5, ctime_ns = ?6, atime_ns = ?7 "
		      "WHERE ino = ?1",
	[Q_TOUCH] = "UPDATE inodes SET atime_ns = ?2 WHERE ino = ?1",
	[Q_TOUCH_COPIES] = "UPDATE replicas SET atime_ns = ?2 "
			   "WHERE page_id = ?1",
	/*
	 * The copies of inode ?1, found by its page id.  Not RETURNING on
	 * Q_TOUCH: that costs sqlite an ephemeral table per row.
	 */
	[Q_TOUCH_INO_COPIES] = "UPDATE replicas SET atime_ns = ?2 WHERE "
			       "page_id = (SELECT page_id FROM inodes "
			       "WHERE ino = ?1)",
	[Q_READDIR] = "SELECT " STORE_COLS " FROM inodes "
		      "WHERE parent = ?1 AND ino > ?2 AND ino != ?1 "
		      "ORDER BY ino LIMIT ?3",
	[Q_TOTALS_GET] = "SELECT next_ino, next_page_id, pages, dirs, bytes "
			 "FROM counters WHERE id = 1",
	[Q_TOTALS_ADD] = "UPDATE counters SET pages = pages + ?1, "
			 "dirs = dirs + ?2, bytes = bytes + ?3 WHERE id = 1",
	[Q_LIMITS_SET] = "UPDATE counters SET next_ino = ?1, "
			 "next_page_id = ?2 WHERE id = 1",
	[Q_FORGET] = "DELETE FROM inodes WHERE page_id != 0",
	[Q_FORGET_COPIES] = "DELETE FROM replicas",
	[Q_FORGET_TOTALS] = "UPDATE counters SET pages = 0, bytes = 0 "
			    "WHERE id = 1",
	[Q_COPY_ADD] = "INSERT INTO replicas (page_id, segment, atime_ns, ino) "
		       "VALUES (?1, ?2, ?3, ?4)",
	/* a new copy of an existing page, its LRU time and inode taken along */
	[Q_COPY_CLONE] = "INSERT OR IGNORE INTO replicas "
			 "(page_id, segment, atime_ns, ino) "
			 "SELECT page_id, ?2, atime_ns, ino FROM replicas "
			 "WHERE page_id = ?1 LIMIT 1",
	[Q_COPY_DROP] = "DELETE FROM replicas "
			"WHERE page_id = ?1 AND segment = ?2",
	[Q_COPIES_DROP] = "DELETE FROM replicas WHERE page_id = ?1",
	[Q_COPIES_OF] = "SELECT segment FROM replicas WHERE page_id = ?1",
	[Q_COPY_INO] = "SELECT ino FROM replicas "
		       "WHERE page_id = ?1 AND segment = ?2",
	[Q_REPLICAS] = "SELECT r.segment, i.size, i.crc32c FROM replicas AS r "
		       "CROSS JOIN inodes AS i ON i.ino = r.ino "
		       "WHERE r.page_id = ?1",
	/*
	 * A segment's LRU after the cursor (atime_ns, page_id), in two parts
	 * because sqlite 3.40 seeks a row value on its first column only:
	 * ties on atime_ns, then later times.  CROSS JOIN keeps replicas
	 * (its index replicas_lru, which covers the walk) the outer loop.
	 * LRU_NEXT leaves ?3 unused so both bind alike.
	 */
	[Q_LRU_SAME] = STORE_LRU_FROM "AND r.atime_ns = ?2 AND r.page_id > ?3 "
				      "ORDER BY r.page_id LIMIT ?4",
	[Q_LRU_NEXT] = STORE_LRU_FROM "AND r.atime_ns > ?2 "
				      "ORDER BY r.atime_ns, r.page_id LIMIT ?4",
	[Q_UNDER] = "SELECT page_id FROM replicas WHERE page_id > ?1 "
		    "ORDER BY page_id LIMIT ?2",
	[Q_SEG_REGISTER] = "INSERT INTO segments "
			   "(uuid, host, address, port, capacity, protocol) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
			   "ON CONFLICT (uuid) DO UPDATE SET "
			   "host = excluded.host, address = excluded.address, "
			   "port = excluded.port, capacity = excluded.capacity, "
			   "protocol = excluded.protocol RETURNING id",
	[Q_SEG_GET] = "SELECT id, uuid, host, address, port, capacity, "
		      "protocol FROM segments WHERE id = ?1",
	[Q_SEG_LIST] = "SELECT id, uuid, host, address, port, capacity, "
		       "protocol FROM segments ORDER BY id",
	[Q_HOLD_GET] = "SELECT confirmed FROM temp.holdings "
		       "WHERE segment = ?1 AND page_id = ?2",
	[Q_HOLD_SET] = "INSERT OR REPLACE INTO temp.holdings "
		       "(segment, page_id, confirmed) VALUES (?1, ?2, ?3)",
	[Q_HOLD_CLEAR] = "DELETE FROM temp.holdings WHERE segment = ?1",
};

/* Version 2, all of it; also what a version 1 store grows into. */
static const char store_schema[] =
	"CREATE TABLE inodes ("
	" ino INTEGER PRIMARY KEY,"
	" parent INTEGER NOT NULL,"
	" name TEXT NOT NULL,"
	" mode INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" page_id INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL,"
	" ctime_ns INTEGER NOT NULL,"
	" atime_ns INTEGER NOT NULL,"
	" crc32c INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX inodes_by_name ON inodes (parent, name);"
	"CREATE INDEX inodes_by_parent ON inodes (parent, ino);"
	"CREATE TABLE counters ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" next_ino INTEGER NOT NULL,"
	" next_page_id INTEGER NOT NULL,"
	" pages INTEGER NOT NULL,"
	" dirs INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL);";

/* What version 2 adds to version 1's tables, beside inodes.crc32c. */
static const char store_schema_copies[] =
	"CREATE TABLE segments ("
	" id INTEGER PRIMARY KEY,"
	" uuid BLOB NOT NULL UNIQUE,"
	" host TEXT NOT NULL,"
	" address TEXT NOT NULL,"
	" port INTEGER NOT NULL,"
	" capacity INTEGER NOT NULL,"
	" protocol TEXT NOT NULL);"
	"CREATE TABLE replicas ("
	" page_id INTEGER NOT NULL,"
	" segment INTEGER NOT NULL,"
	" atime_ns INTEGER NOT NULL,"
	" ino INTEGER NOT NULL,"
	" PRIMARY KEY (page_id, segment)) WITHOUT ROWID;"
	"CREATE INDEX replicas_lru ON replicas (segment, atime_ns, page_id, ino);";

/* Version 1 to 2: the LRU moves from inodes to replicas. */
static const char store_migrate_1[] =
	"ALTER TABLE inodes ADD COLUMN crc32c INTEGER NOT NULL DEFAULT 0;"
	"DROP INDEX IF EXISTS inodes_lru;";

/*
 * Reconciling a segment's holdings (mc_store_holdings_begin() to _end())
 * keeps what it has heard in memory only: it is worth nothing after a
 * restart of the master, which starts the reconciling over.  confirmed is
 * an enum store_hold.
 */
static const char store_schema_temp[] =
	"CREATE TEMP TABLE holdings ("
	" segment INTEGER NOT NULL,"
	" page_id INTEGER NOT NULL,"
	" confirmed INTEGER NOT NULL,"
	" PRIMARY KEY (segment, page_id)) WITHOUT ROWID;";

/* What a reconcile knows of one copy in its segment (temp.holdings). */
enum store_hold {
	/*
	 * The store dropped the copy since begin (eviction): a report of it
	 * is stale, and the daemon must free it.
	 */
	HOLD_DROPPED = 0,
	/* the segment said it holds the copy, or the store made it since */
	HOLD_CONFIRMED = 1,
};

/*
 * The segment of --standalone, made by the schema so that a single host
 * needs no registration.  Its uuid is not a valid RFC 4122 uuid, so no
 * daemon's generated uuid is ever the same.
 */
static const uint8_t store_local_uuid[16] = { [15] = 1 };

/*
 * Opens move pages in the LRU; writing each to sqlite would cost a WAL
 * write per read.  They are kept here and written in one transaction when
 * the batch fills, before every eviction, on mc_store_flush_touches() and
 * at close.  A crash loses at most one batch of LRU order, never a page.
 */
#define STORE_TOUCH_BATCH 1024

struct mc_store {
	pthread_mutex_t lock;
	char *path;		/* for messages; set at open, then read-only */
	uid_t root_uid;		/* the owner a new store's root gets */
	gid_t root_gid;
	sqlite3 *db;		/* protected by st->lock */
	sqlite3_stmt *q[Q_COUNT]; /* protected by st->lock */
	/* [next, end) was persisted as reserved; protected by st->lock */
	uint64_t ino_next, ino_end;
	uint64_t page_next, page_end;
	struct mc_id_counts pins; /* pins by inode; protected by st->lock */
	uint64_t evictions;	/* protected by st->lock */
	uint64_t evicted_bytes;	/* protected by st->lock */
	/*
	 * Segments between mc_store_holdings_begin() and _end(): new copies
	 * there are recorded in temp.holdings as they are made, so that the
	 * sweep at the end never takes them.  Protected by st->lock.
	 */
	uint64_t *reconciling;
	size_t nreconciling, capreconciling;
	/* LRU touches not yet written; protected by st->lock */
	struct store_touch {
		uint64_t ino, atime_ns;
	} touches[STORE_TOUCH_BATCH];
	size_t ntouches;
};

/* One readdir row, copied out so fn runs without the lock. */
struct store_dirent {
	struct mc_ns_attr attr;
	char name[MC_NAME_MAX + 1];
};

static uint64_t store_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* --------------------------------------------------------- sqlite adapter */

/*
 * The one adapter from sqlite result codes to -errno.  A constraint
 * failure becomes -EEXIST, unlogged: only the caller knows what it means.
 */
static int store_err(struct mc_store *st, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		mc_log_ratelimited(MC_LOG_WARNING,
				   "store: '%s' is locked by another process: stop the other program using it",
				   st->path);
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	}
	mc_log(MC_LOG_ERR,
	       "store: cannot run '%s' on '%s': %s: check free space and permissions of the store",
	       what, st->path, sqlite3_errmsg(st->db));
	return -EIO;
}

/* 1 for a row, 0 when done, -errno.  The statement stays to be reset. */
static int q_step(struct mc_store *st, sqlite3_stmt *q)
{
	int rc = sqlite3_step(q);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_err(st, rc, sqlite3_sql(q));
}

static void q_reset(sqlite3_stmt *q)
{
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
}

/* Run a statement that returns no rows, and reset it: 0 or -errno. */
static int q_exec_locked(struct mc_store *st, sqlite3_stmt *q)
{
	int r = q_step(st, q);

	q_reset(q);
	return r < 0 ? r : 0;
}

static void bind_u64(sqlite3_stmt *q, int i, uint64_t v)
{
	sqlite3_bind_int64(q, i, (sqlite3_int64)v);
}

/* Bind at most len bytes of s, up to its NUL. */
static void bind_text(sqlite3_stmt *q, int i, const char *s, size_t len)
{
	sqlite3_bind_text(q, i, s, (int)strnlen(s, len), SQLITE_STATIC);
}

static uint64_t col_u64(sqlite3_stmt *q, int i)
{
	return (uint64_t)sqlite3_column_int64(q, i);
}

/* Copy text column i into out (len > 0), truncated to fit. */
static void col_text(sqlite3_stmt *q, int i, char *out, size_t len)
{
	const unsigned char *s = sqlite3_column_text(q, i);
	size_t n = s ? (size_t)sqlite3_column_bytes(q, i) : 0;

	if (n >= len)
		n = len - 1;
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
}

/* Copy the current STORE_COLS row into *a and, when name is not NULL, name. */
static void store_row(sqlite3_stmt *q, struct mc_ns_attr *a, char *name,
		      size_t namelen)
{
	a->ino = col_u64(q, 0);
	a->parent = col_u64(q, 1);
	a->mode = (uint32_t)sqlite3_column_int64(q, 3);
	a->uid = (uint32_t)sqlite3_column_int64(q, 4);
	a->gid = (uint32_t)sqlite3_column_int64(q, 5);
	a->size = col_u64(q, 6);
	a->page_id = col_u64(q, 7);
	a->mtime_ns = col_u64(q, 8);
	a->ctime_ns = col_u64(q, 9);
	a->atime_ns = col_u64(q, 10);
	a->nlink = S_ISDIR(a->mode) ? 2 : 1;
	if (name && namelen)
		col_text(q, 2, name, namelen);
}

/* A report of a, with no copies named yet. */
static void dropped_from(struct mc_ns_dropped *d, const struct mc_ns_attr *a,
			 const char *name)
{
	d->ino = a->ino;
	d->attr = *a;
	d->parent = a->parent;
	d->page_id = a->page_id;
	d->size = a->size;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->flags = 0;
	d->nsegments = 0;
}

/* Say nothing was dropped (d may be NULL). */
static void dropped_none(struct mc_ns_dropped *d)
{
	if (!d)
		return;
	d->ino = 0;
	d->page_id = 0;
	d->flags = 0;
	d->nsegments = 0;
}

/* ------------------------------------------------------- row operations */

/* At most one row from q: 0 with *a filled, -ENOENT, -errno; resets q. */
static int get_one_locked(struct mc_store *st, sqlite3_stmt *q,
			  struct mc_ns_attr *a, char *name, size_t namelen)
{
	int r = q_step(st, q);

	if (r == 1) {
		store_row(q, a, name, namelen);
		r = 0;
	} else if (r == 0) {
		r = -ENOENT;
	}
	q_reset(q);
	return r;
}

static int get_ino_locked(struct mc_store *st, uint64_t ino,
			  struct mc_ns_attr *a, char *name, size_t namelen)
{
	sqlite3_stmt *q = st->q[Q_BY_INO];

	bind_u64(q, 1, ino);
	return get_one_locked(st, q, a, name, namelen);
}

static int get_name_locked(struct mc_store *st, uint64_t parent,
			   const char *name, struct mc_ns_attr *a)
{
	sqlite3_stmt *q = st->q[Q_BY_NAME];

	bind_u64(q, 1, parent);
	sqlite3_bind_text(q, 2, name, -1, SQLITE_STATIC);
	return get_one_locked(st, q, a, NULL, 0);
}

/* 0 when ino is a directory, -ENOENT, -ENOTDIR, -errno. */
static int dir_check_locked(struct mc_store *st, uint64_t ino)
{
	struct mc_ns_attr a;
	int r = get_ino_locked(st, ino, &a, NULL, 0);

	if (r < 0)
		return r;
	return S_ISDIR(a.mode) ? 0 : -ENOTDIR;
}

/* 1 when directory dir has an entry, 0 when empty, -errno. */
static int has_child_locked(struct mc_store *st, uint64_t dir)
{
	sqlite3_stmt *q = st->q[Q_HAS_CHILD];
	int r;

	bind_u64(q, 1, dir);
	r = q_step(st, q);
	q_reset(q);
	return r;
}

static int insert_locked(struct mc_store *st, const struct mc_ns_attr *a,
			 const char *name, uint32_t crc32c)
{
	sqlite3_stmt *q = st->q[Q_INSERT];

	bind_u64(q, 1, a->ino);
	bind_u64(q, 2, a->parent);
	sqlite3_bind_text(q, 3, name, -1, SQLITE_STATIC);
	bind_u64(q, 4, a->mode);
	bind_u64(q, 5, a->uid);
	bind_u64(q, 6, a->gid);
	bind_u64(q, 7, a->size);
	bind_u64(q, 8, a->page_id);
	bind_u64(q, 9, a->mtime_ns);
	bind_u64(q, 10, a->ctime_ns);
	bind_u64(q, 11, a->atime_ns);
	bind_u64(q, 12, crc32c);
	return q_exec_locked(st, q);
}

static int delete_locked(struct mc_store *st, uint64_t ino)
{
	sqlite3_stmt *q = st->q[Q_DELETE];

	bind_u64(q, 1, ino);
	return q_exec_locked(st, q);
}

static int totals_add_locked(struct mc_store *st, int64_t pages, int64_t dirs,
			     int64_t bytes)
{
	sqlite3_stmt *q = st->q[Q_TOTALS_ADD];

	sqlite3_bind_int64(q, 1, pages);
	sqlite3_bind_int64(q, 2, dirs);
	sqlite3_bind_int64(q, 3, bytes);
	return q_exec_locked(st, q);
}

/* ------------------------------------------------------------------ copies */

static bool reconciling_locked(const struct mc_store *st, uint64_t segment)
{
	for (size_t i = 0; i < st->nreconciling; i++)
		if (st->reconciling[i] == segment)
			return true;
	return false;
}

static int hold_set_locked(struct mc_store *st, uint64_t segment,
			   uint64_t page_id, enum store_hold hold)
{
	sqlite3_stmt *q = st->q[Q_HOLD_SET];

	bind_u64(q, 1, segment);
	bind_u64(q, 2, page_id);
	sqlite3_bind_int(q, 3, hold);
	return q_exec_locked(st, q);
}

/* The enum store_hold of a copy, -ENOENT when it has none, -errno. */
static int hold_get_locked(struct mc_store *st, uint64_t segment,
			   uint64_t page_id)
{
	sqlite3_stmt *q = st->q[Q_HOLD_GET];
	int r;

	bind_u64(q, 1, segment);
	bind_u64(q, 2, page_id);
	r = q_step(st, q);
	if (r == 1)
		r = sqlite3_column_int(q, 0);
	else if (r == 0)
		r = -ENOENT;
	q_reset(q);
	return r;
}

/* A copy made in segment while it reconciles is one the sweep must keep. */
static int copy_made_locked(struct mc_store *st, uint64_t segment,
			    uint64_t page_id)
{
	if (!reconciling_locked(st, segment))
		return 0;
	return hold_set_locked(st, segment, page_id, HOLD_CONFIRMED);
}

/* Forget every mark of a reconcile of segment. */
static int hold_clear_locked(struct mc_store *st, uint64_t segment)
{
	sqlite3_stmt *q = st->q[Q_HOLD_CLEAR];

	bind_u64(q, 1, segment);
	return q_exec_locked(st, q);
}

static int copy_add_locked(struct mc_store *st, const struct mc_ns_attr *a,
			   uint64_t segment)
{
	sqlite3_stmt *q = st->q[Q_COPY_ADD];
	int r;

	bind_u64(q, 1, a->page_id);
	bind_u64(q, 2, segment);
	bind_u64(q, 3, a->atime_ns);
	bind_u64(q, 4, a->ino);
	r = q_exec_locked(st, q);
	if (r == 0)
		r = copy_made_locked(st, segment, a->page_id);
	return r;
}

/*
 * Whether page_id has a copy in segment (*here) and one elsewhere
 * (*other); with neither, the page does not exist.  0 or -errno.
 */
static int copies_of_locked(struct mc_store *st, uint64_t page_id,
			    uint64_t segment, bool *here, bool *other)
{
	sqlite3_stmt *q = st->q[Q_COPIES_OF];
	int r;

	*here = *other = false;
	bind_u64(q, 1, page_id);
	while ((r = q_step(st, q)) == 1) {
		if (col_u64(q, 0) == segment)
			*here = true;
		else
			*other = true;
	}
	q_reset(q);
	return r;
}

/*
 * Delete segment's copy of page_id; a holdings report of it made before
 * is stale now, so a reconcile of segment hears it was dropped.
 */
static int copy_drop_locked(struct mc_store *st, uint64_t page_id,
			    uint64_t segment)
{
	sqlite3_stmt *q = st->q[Q_COPY_DROP];
	int r;

	bind_u64(q, 1, page_id);
	bind_u64(q, 2, segment);
	r = q_exec_locked(st, q);
	if (r == 0 && reconciling_locked(st, segment))
		r = hold_set_locked(st, segment, page_id, HOLD_DROPPED);
	return r;
}

/* Give page_id, which exists, a copy in segment unless it has one. */
static int copy_clone_locked(struct mc_store *st, uint64_t page_id,
			     uint64_t segment)
{
	sqlite3_stmt *q = st->q[Q_COPY_CLONE];
	int r;

	bind_u64(q, 1, page_id);
	bind_u64(q, 2, segment);
	r = q_exec_locked(st, q);
	if (r == 0)
		r = copy_made_locked(st, segment, page_id);
	return r;
}

/*
 * Delete every copy of page_id, naming their segments in d (when not
 * NULL) for the caller to free.
 */
static int copies_drop_locked(struct mc_store *st, uint64_t page_id,
			      struct mc_ns_dropped *d)
{
	sqlite3_stmt *q = st->q[Q_COPIES_OF];
	unsigned n = 0;
	int r;

	/* read, then delete: DELETE ... RETURNING costs an ephemeral table */
	bind_u64(q, 1, page_id);
	while ((r = q_step(st, q)) == 1) {
		if (d && n < MC_NS_MAX_REPLICAS)
			d->segments[n] = col_u64(q, 0);
		n++;
	}
	q_reset(q);
	if (r < 0)
		return r;
	if (n > MC_NS_MAX_REPLICAS)
		mc_log_ratelimited(MC_LOG_WARNING,
				   "store: page %" PRIx64
				   " had %u copies, more than the %d reported: the others are freed when their segments reconcile",
				   page_id, n, MC_NS_MAX_REPLICAS);
	if (d)
		d->nsegments = (uint8_t)(n < MC_NS_MAX_REPLICAS ?
						 n : MC_NS_MAX_REPLICAS);
	q = st->q[Q_COPIES_DROP];
	bind_u64(q, 1, page_id);
	return q_exec_locked(st, q);
}

/*
 * Delete the row of a, with its copies (named in d when not NULL), and
 * take it off the totals.
 */
static int remove_locked(struct mc_store *st, const struct mc_ns_attr *a,
			 struct mc_ns_dropped *d)
{
	int r = delete_locked(st, a->ino);

	if (r < 0)
		return r;
	if (S_ISDIR(a->mode))
		return totals_add_locked(st, 0, -1, 0);
	r = copies_drop_locked(st, a->page_id, d);
	if (r < 0)
		return r;
	return totals_add_locked(st, -1, 0, -(int64_t)a->size);
}

/* ----------------------------------------------------------- transactions */

static int tx_begin_locked(struct mc_store *st)
{
	return q_exec_locked(st, st->q[Q_BEGIN]);
}

/*
 * End the open transaction: commit when r is 0, else roll back.  Returns
 * r, or the commit's error after rolling back.
 */
static int tx_end_locked(struct mc_store *st, int r)
{
	if (r == 0)
		r = q_exec_locked(st, st->q[Q_COMMIT]);
	/* sqlite may have rolled back already (SQLITE_FULL, SQLITE_IOERR) */
	if (r != 0 && !sqlite3_get_autocommit(st->db))
		q_exec_locked(st, st->q[Q_ROLLBACK]);
	return r;
}

/* ---------------------------------------------------------------- reserve */

/*
 * Hand out the next inode number and page id (either out-pointer may be
 * NULL), persisting a new block first when one runs out.  Runs in its own
 * autocommit statement: never call it inside a transaction, whose rollback
 * would un-persist numbers already handed out.
 */
static int reserve_locked(struct mc_store *st, uint64_t *ino, uint64_t *page_id)
{
	uint64_t ino_end = st->ino_end, page_end = st->page_end;
	sqlite3_stmt *q = st->q[Q_LIMITS_SET];
	int r;

	if (ino && st->ino_next >= ino_end)
		ino_end = st->ino_next + STORE_RESERVE_BLOCK;
	if (page_id && st->page_next >= page_end)
		page_end = st->page_next + STORE_RESERVE_BLOCK;
	if (ino_end != st->ino_end || page_end != st->page_end) {
		bind_u64(q, 1, ino_end);
		bind_u64(q, 2, page_end);
		r = q_exec_locked(st, q);
		if (r < 0)
			return r;
		st->ino_end = ino_end;
		st->page_end = page_end;
	}
	if (ino)
		*ino = st->ino_next++;
	if (page_id)
		*page_id = st->page_next++;
	return 0;
}

int mc_store_reserve(struct mc_store *st, uint64_t *ino, uint64_t *page_id)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = reserve_locked(st, ino, page_id);
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* ---------------------------------------------------------- open / close */

/* Run SQL text that needs no binding (set-up only); what names it in logs. */
static int store_exec_sql(struct mc_store *st, const char *sql,
			  const char *what)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_err(st, rc, what);
}

/*
 * Prepare sql (set-up only), bind ?1 to v1 and, when blob is not NULL, ?2
 * to it, and run it to the end.  0 or -errno.
 */
static int store_exec_bound(struct mc_store *st, const char *sql, uint64_t v1,
			    const void *blob, size_t bloblen)
{
	sqlite3_stmt *q = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, sql);
	bind_u64(q, 1, v1);
	if (blob)
		sqlite3_bind_blob(q, 2, blob, (int)bloblen, SQLITE_STATIC);
	while ((r = q_step(st, q)) == 1)
		;
	sqlite3_finalize(q);
	return r;
}

/* The user_version of the store, or -errno. */
static int store_schema_version(struct mc_store *st)
{
	sqlite3_stmt *q = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, "PRAGMA user_version");
	r = q_step(st, q);
	if (r == 1)
		r = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return r;
}

/* The root's owner: see mc_store_open_owned(). */
static int store_create_root(struct mc_store *st)
{
	static const char sql[] =
		"INSERT INTO inodes (" STORE_COLS ") VALUES "
		"(?1, ?1, '', ?2, ?4, ?5, 0, 0, ?3, ?3, ?3)";
	sqlite3_stmt *q = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &q, NULL);
	if (rc != SQLITE_OK)
		return store_err(st, rc, sql);
	bind_u64(q, 1, MC_NS_ROOT_INO);
	bind_u64(q, 2, S_IFDIR | 0755);
	bind_u64(q, 3, store_now_ns());
	bind_u64(q, 4, st->root_uid);
	bind_u64(q, 5, st->root_gid);
	r = q_step(st, q);
	sqlite3_finalize(q);
	return r < 0 ? r : 0;
}

/* The segments and replicas tables, with --standalone's segment. */
static int store_create_copies(struct mc_store *st)
{
	int r = store_exec_sql(st, store_schema_copies, "create the replicas");

	if (r < 0)
		return r;
	return store_exec_bound(st,
				"INSERT INTO segments (id, uuid, host, address,"
				" port, capacity, protocol) VALUES"
				" (?1, ?2, 'localhost', '', 0, 0, 'local')",
				MC_NS_LOCAL_SEGMENT, store_local_uuid,
				sizeof(store_local_uuid));
}

static int store_create(struct mc_store *st)
{
	char counters[160];
	int r;

	r = store_exec_sql(st, store_schema, "create the schema");
	if (r < 0)
		return r;
	r = store_create_copies(st);
	if (r < 0)
		return r;
	snprintf(counters, sizeof(counters),
		 "INSERT INTO counters VALUES (1, %d, 1, 0, 1, 0)",
		 MC_NS_FIRST_INO);
	r = store_exec_sql(st, counters, "create the counters");
	if (r < 0)
		return r;
	return store_create_root(st);
}

/*
 * Version 1 (the single-host release) to 2: every page it has is one copy
 * in the local segment, whose memory it is.  Checksums were never taken:
 * crc32c 0 says "unknown" (see doc/namespace-store.md).
 */
static int store_migrate_from_1(struct mc_store *st)
{
	int r = store_exec_sql(st, store_migrate_1, "add the page checksums");

	if (r < 0)
		return r;
	r = store_create_copies(st);
	if (r < 0)
		return r;
	/* in key order: the rows append to replicas instead of landing all over */
	return store_exec_bound(st,
				"INSERT INTO replicas (page_id, segment,"
				" atime_ns, ino) SELECT page_id, ?1, atime_ns,"
				" ino FROM inodes WHERE page_id != 0"
				" ORDER BY page_id",
				MC_NS_LOCAL_SEGMENT, NULL, 0);
}

/* Create the schema and the root, or bring an older store up to date. */
static int store_setup_schema(struct mc_store *st)
{
	char set_version[64];
	int r, version;

	r = store_exec_sql(st, "BEGIN IMMEDIATE", "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	version = store_schema_version(st);
	if (version < 0) {
		r = version;
		goto out_end;
	}
	if (version > STORE_SCHEMA_VERSION) {
		mc_log(MC_LOG_ERR,
		       "store: '%s' has schema version %d, newer than this program's %d: upgrade mooncake or move the store aside",
		       st->path, version, STORE_SCHEMA_VERSION);
		r = -EIO;
		goto out_end;
	}
	if (version == STORE_SCHEMA_VERSION)
		goto out_end;
	/* one step per older version, all in this one transaction */
	if (version == 0)
		r = store_create(st);
	else if (version == 1)
		r = store_migrate_from_1(st);
	if (r < 0)
		goto out_end;
	snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d",
		 STORE_SCHEMA_VERSION);
	r = store_exec_sql(st, set_version, "set the schema version");
out_end:
	if (r == 0)
		r = store_exec_sql(st, "COMMIT", "COMMIT");
	if (r != 0 && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	if (r == 0 && version > 0 && version < STORE_SCHEMA_VERSION)
		mc_log(MC_LOG_NOTICE,
		       "store: '%s' upgraded from schema version %d to %d: older versions of mooncake can no longer open it",
		       st->path, version, STORE_SCHEMA_VERSION);
	return r;
}

static int store_load_counters(struct mc_store *st)
{
	sqlite3_stmt *q = st->q[Q_TOTALS_GET];
	int r = q_step(st, q);

	if (r == 1) {
		st->ino_next = st->ino_end = col_u64(q, 0);
		st->page_next = st->page_end = col_u64(q, 1);
		r = 0;
	} else if (r == 0) {
		mc_log(MC_LOG_ERR,
		       "store: '%s' has no counters row: it is damaged, move it aside to start empty",
		       st->path);
		r = -EIO;
	}
	q_reset(q);
	return r;
}

int mc_store_open(struct mc_store **stp, const char *path)
{
	return mc_store_open_owned(stp, path, 0, 0);
}

int mc_store_open_owned(struct mc_store **stp, const char *path, uid_t uid,
			gid_t gid)
{
	struct mc_store *st;
	int rc, r;

	*stp = NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->root_uid = uid;
	st->root_gid = gid;
	pthread_mutex_init(&st->lock, NULL);
	mc_id_counts_init(&st->pins);
	st->path = strdup(path);
	if (!st->path) {
		r = -ENOMEM;
		goto out;
	}
	/* NOMUTEX: st->lock already serialises every use of the connection */
	rc = sqlite3_open_v2(path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		if (!st->db) {
			r = -ENOMEM;
			goto out;
		}
		mc_log(MC_LOG_ERR,
		       "store: cannot open '%s': %s: check the directory exists and is writable",
		       path, sqlite3_errmsg(st->db));
		r = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(st->db, 5000);
	/*
	 * Exclusive locking: one daemon owns the store (it holds the state
	 * directory lock), and it saves four fcntl() calls per transaction;
	 * set before WAL so the WAL index lives in heap memory.
	 */
	r = store_exec_sql(st, "PRAGMA locking_mode = EXCLUSIVE;"
			       "PRAGMA journal_mode = WAL;"
			       "PRAGMA synchronous = OFF;"
			       "PRAGMA cache_size = -65536;"
			       "PRAGMA temp_store = MEMORY;",
			   "set WAL mode");
	if (r < 0)
		goto out;
	r = store_setup_schema(st);
	if (r < 0)
		goto out;
	r = store_exec_sql(st, store_schema_temp, "create the holdings table");
	if (r < 0)
		goto out;
	for (int i = 0; i < Q_COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, store_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &st->q[i],
					NULL);
		if (rc != SQLITE_OK) {
			r = store_err(st, rc, store_sql[i]);
			goto out;
		}
	}
	r = store_load_counters(st);
	if (r < 0)
		goto out;

	*stp = st;
	st = NULL;
	r = 0;
out:
	mc_store_close(st);
	return r;
}

static int flush_touches_locked(struct mc_store *st);

void mc_store_close(struct mc_store *st)
{
	if (!st)
		return;
	if (st->db && st->q[Q_TOUCH_INO_COPIES])
		flush_touches_locked(st);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(st->q[i]);
	if (sqlite3_close(st->db) != SQLITE_OK)
		mc_log(MC_LOG_WARNING,
		       "store: cannot close '%s' cleanly: %s: the next open recovers it from the WAL",
		       st->path, sqlite3_errmsg(st->db));
	free(st->reconciling);
	mc_id_counts_release(&st->pins);
	free(st->path);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

/* ---------------------------------------------------------------- queries */

int mc_store_lookup(struct mc_store *st, uint64_t parent, const char *name,
		    struct mc_ns_attr *out)
{
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	r = get_name_locked(st, parent, name, out);
	/* a miss says why: no parent, or a parent that is a page */
	if (r == -ENOENT) {
		int d = dir_check_locked(st, parent);

		if (d < 0)
			r = d;
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

int mc_store_getattr(struct mc_store *st, uint64_t ino, struct mc_ns_attr *out)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = get_ino_locked(st, ino, out, NULL, 0);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int mc_store_name_of(struct mc_store *st, uint64_t ino, uint64_t *parent,
		     char *name, size_t len)
{
	struct mc_ns_attr a;
	int r;

	if (len <= MC_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&st->lock);
	r = get_ino_locked(st, ino, &a, name, len);
	pthread_mutex_unlock(&st->lock);
	if (r == 0)
		*parent = a.parent;
	return r;
}

int mc_store_readdir(struct mc_store *st, uint64_t dir, uint64_t after,
		     int (*fn)(void *ctx, const char *name,
			       const struct mc_ns_attr *attr),
		     void *ctx)
{
	struct store_dirent *batch;
	size_t want = STORE_READDIR_FIRST;
	int r;

	batch = calloc(STORE_READDIR_MAX, sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	pthread_mutex_lock(&st->lock);
	r = dir_check_locked(st, dir);
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		goto out_free;

	/*
	 * Copy a batch out under the lock, then call fn without it, so fn
	 * may call back into the store.  Entries made between batches show
	 * up if their inode is past the cursor, as readdir(3) allows.
	 * Batches start small because most callers stop after one buffer's
	 * worth.
	 */
	for (;;) {
		sqlite3_stmt *q = st->q[Q_READDIR];
		size_t n = 0;

		pthread_mutex_lock(&st->lock);
		bind_u64(q, 1, dir);
		bind_u64(q, 2, after);
		sqlite3_bind_int64(q, 3, (sqlite3_int64)want);
		while ((r = q_step(st, q)) == 1) {
			store_row(q, &batch[n].attr, batch[n].name,
				  sizeof(batch[n].name));
			n++;
		}
		q_reset(q);
		pthread_mutex_unlock(&st->lock);
		if (r < 0)
			goto out_free;

		for (size_t i = 0; i < n; i++) {
			r = fn(ctx, batch[i].name, &batch[i].attr);
			if (r != 0)
				goto out_free;
		}
		if (n < want)
			break;
		after = batch[n - 1].attr.ino;
		if (want < STORE_READDIR_MAX)
			want *= 2;
	}
	r = 0;
out_free:
	free(batch);
	return r;
}

/* ----------------------------------------------------------------- changes */

int mc_store_mkdir(struct mc_store *st, uint64_t parent, const char *name,
		   uint32_t mode, uint32_t uid, uint32_t gid,
		   struct mc_ns_attr *out)
{
	struct mc_ns_attr a = { 0 };
	struct mc_ns_attr old;
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	/* outside the transaction: see reserve_locked() */
	r = reserve_locked(st, &a.ino, NULL);
	if (r < 0)
		goto out_unlock;
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(st, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(st, parent, name, &old);
	if (r == 0)
		r = -EEXIST;
	if (r != -ENOENT)
		goto out_end;
	a.parent = parent;
	a.mode = S_IFDIR | (mode & 07777);
	a.uid = uid;
	a.gid = gid;
	a.nlink = 2;
	a.mtime_ns = a.ctime_ns = a.atime_ns = store_now_ns();
	r = insert_locked(st, &a, name, 0);
	if (r < 0)
		goto out_end;
	r = totals_add_locked(st, 0, 1, 0);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && out)
		*out = a;
	return r;
}

int mc_store_rmdir(struct mc_store *st, uint64_t parent, const char *name)
{
	struct mc_ns_attr a;
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(st, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(st, parent, name, &a);
	if (r < 0)
		goto out_end;
	if (!S_ISDIR(a.mode)) {
		r = -ENOTDIR;
		goto out_end;
	}
	/* the root has no name, so this is a guard against a damaged store */
	if (a.ino == MC_NS_ROOT_INO) {
		r = -EBUSY;
		goto out_end;
	}
	r = has_child_locked(st, a.ino);
	if (r > 0)
		r = -ENOTEMPTY;
	if (r < 0)
		goto out_end;
	r = remove_locked(st, &a, NULL);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* The checks of a commit that need no store: 0, -EINVAL, a name's error. */
static int commit_check(const struct mc_ns_commit *c, uint64_t segment)
{
	int r = mc_name_check(c->name);

	if (r < 0)
		return r;
	/* page_id 0 marks a directory row; inode and segment 0 do not exist */
	if (c->ino == 0 || c->page_id == 0 || segment == 0)
		return -EINVAL;
	return 0;
}

/*
 * A commit in the open transaction; what it replaced in *d (nothing
 * dropped: d->ino 0).  Every refusal the namespace gives (the parent,
 * -EISDIR, -EEXIST for the same inode) comes from reads made before the
 * first write, and leaves *wrote false: the transaction is as it was, so
 * a batch goes on.  *wrote true means a write failed half-way (a disk
 * error, or a client reusing an inode or page id, which only the insert
 * finds): only a rollback undoes it.
 */
static int commit_locked(struct mc_store *st, const struct mc_ns_commit *c,
			 uint64_t segment, struct mc_ns_dropped *d, bool *wrote)
{
	struct mc_ns_attr a = { 0 };
	struct mc_ns_attr old;
	int r;

	dropped_none(d);
	*wrote = false;
	r = dir_check_locked(st, c->parent);
	if (r < 0)
		return r;
	r = get_name_locked(st, c->parent, c->name, &old);
	if (r == 0) {
		if (S_ISDIR(old.mode))
			return -EISDIR;
		if (old.ino == c->ino)
			return -EEXIST;
	} else if (r != -ENOENT) {
		return r;
	}
	*wrote = true;
	if (r == 0) {
		dropped_from(d, &old, c->name);
		r = remove_locked(st, &old, d);
		if (r < 0)
			goto out;
	}
	a.ino = c->ino;
	a.parent = c->parent;
	a.mode = S_IFREG | (c->mode & 07777);
	a.uid = c->uid;
	a.gid = c->gid;
	a.nlink = 1;
	a.size = c->size;
	a.page_id = c->page_id;
	/* a fresh page starts at the young end of the LRU */
	a.mtime_ns = a.ctime_ns = a.atime_ns = c->mtime_ns;
	/* a constraint here is the primary key: c->ino is already a row */
	r = insert_locked(st, &a, c->name, c->crc32c);
	if (r < 0)
		goto out;
	r = copy_add_locked(st, &a, segment);
	if (r < 0)
		goto out;
	r = totals_add_locked(st, 1, 0, (int64_t)a.size);
out:
	if (r < 0)
		dropped_none(d);
	return r;
}

/* One commit in its own transaction. */
static int commit_one_locked(struct mc_store *st, const struct mc_ns_commit *c,
			     uint64_t segment, struct mc_ns_dropped *d)
{
	bool wrote;
	int r = tx_begin_locked(st);

	if (r < 0)
		return r;
	r = commit_locked(st, c, segment, d, &wrote);
	r = tx_end_locked(st, r);
	if (r < 0)
		dropped_none(d);
	return r;
}

int mc_store_commit(struct mc_store *st, const struct mc_ns_commit *c,
		    uint64_t segment, struct mc_ns_dropped *replaced)
{
	struct mc_ns_dropped d;
	int r;

	dropped_none(replaced);
	r = commit_check(c, segment);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	r = commit_one_locked(st, c, segment, &d);
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && replaced)
		*replaced = d;
	return r;
}

/*
 * Every item of a batch in a transaction of its own: the way back when
 * one transaction for all could not be kept.
 */
static void commit_each_locked(struct mc_store *st,
			       struct mc_store_commit_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct mc_store_commit_item *it = &items[i];

		dropped_none(&it->replaced);
		it->status = commit_check(&it->c, it->segment);
		if (it->status == 0)
			it->status = commit_one_locked(st, &it->c, it->segment,
						       &it->replaced);
	}
}

/*
 * Check before write: commit_locked() makes every refusal before its
 * first write, so a refused item needs no SAVEPOINT (which would copy
 * each page the item touches into a statement journal).  A write that
 * fails half-way, or a transaction sqlite rolled back by itself, is rare
 * (a disk error, a misbehaving client): then the batch is rolled back
 * and each item run in a transaction of its own, so the outcome is still
 * that of n mc_store_commit() calls.
 */
size_t mc_store_commit_batch(struct mc_store *st,
			     struct mc_store_commit_item *items, size_t n)
{
	bool wrote = false;
	size_t done = 0, i;
	int r;

	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	for (i = 0; r == 0 && i < n; i++) {
		struct mc_store_commit_item *it = &items[i];

		dropped_none(&it->replaced);
		it->status = commit_check(&it->c, it->segment);
		if (it->status < 0)
			continue;
		it->status = commit_locked(st, &it->c, it->segment,
					   &it->replaced, &wrote);
		/* a refusal leaves the transaction as it was; nothing else */
		if (it->status < 0 && (wrote || sqlite3_get_autocommit(st->db)))
			r = it->status;
	}
	if (r == 0) {
		r = tx_end_locked(st, 0);
		/* the COMMIT itself failed: nothing landed */
		for (i = 0; r < 0 && i < n; i++) {
			if (items[i].status < 0)
				continue;
			items[i].status = r;
			dropped_none(&items[i].replaced);
		}
	} else {
		tx_end_locked(st, r);
		commit_each_locked(st, items, n);
	}
	pthread_mutex_unlock(&st->lock);
	for (i = 0; i < n; i++)
		done += items[i].status == 0;
	return done;
}

int mc_store_unlink(struct mc_store *st, uint64_t parent, const char *name,
		    struct mc_ns_dropped *dropped)
{
	struct mc_ns_attr a;
	struct mc_ns_dropped d;
	int r;

	dropped_none(dropped);
	r = mc_name_check(name);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(st, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(st, parent, name, &a);
	if (r < 0)
		goto out_end;
	if (S_ISDIR(a.mode)) {
		r = -EISDIR;
		goto out_end;
	}
	dropped_from(&d, &a, name);
	r = remove_locked(st, &a, &d);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && dropped)
		*dropped = d;
	return r;
}

/* -EINVAL when directory ino is dir or one of dir's ancestors. */
static int ancestor_check_locked(struct mc_store *st, uint64_t ino,
				 uint64_t dir)
{
	struct mc_ns_attr a;
	int r;

	for (int depth = 0; depth < STORE_MAX_DEPTH; depth++) {
		if (dir == ino)
			return -EINVAL;
		if (dir == MC_NS_ROOT_INO)
			return 0;
		r = get_ino_locked(st, dir, &a, NULL, 0);
		if (r == -ENOENT)
			break;
		if (r < 0)
			return r;
		dir = a.parent;
	}
	mc_log(MC_LOG_ERR,
	       "store: '%s' has a broken parent chain at inode %" PRIu64
	       ": it is damaged, move it aside to start empty",
	       st->path, dir);
	return -EIO;
}

int mc_store_rename(struct mc_store *st, uint64_t parent, const char *name,
		    uint64_t newparent, const char *newname, unsigned flags,
		    struct mc_ns_dropped *dropped)
{
	sqlite3_stmt *q = st->q[Q_MOVE];
	struct mc_ns_attr src, dst;
	struct mc_ns_dropped d;
	bool replace = false;
	int r;

	dropped_none(dropped);
	r = mc_name_check(name);
	if (r == 0)
		r = mc_name_check(newname);
	if (r < 0)
		return r;
	if (flags & ~(unsigned)MC_NS_RENAME_NOREPLACE)
		return -EINVAL;
	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(st, parent);
	if (r == 0)
		r = dir_check_locked(st, newparent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(st, parent, name, &src);
	if (r < 0)
		goto out_end;
	r = get_name_locked(st, newparent, newname, &dst);
	if (r == 0) {
		replace = true;
	} else if (r != -ENOENT) {
		goto out_end;
	}
	/* the order of checks follows Linux's renameat2() */
	if (replace && (flags & MC_NS_RENAME_NOREPLACE)) {
		r = -EEXIST;
		goto out_end;
	}
	if (replace && dst.ino == src.ino) {
		replace = false;
		r = 0;
		goto out_end;
	}
	if (S_ISDIR(src.mode)) {
		r = ancestor_check_locked(st, src.ino, newparent);
		if (r < 0)
			goto out_end;
	}
	if (replace) {
		if (S_ISDIR(src.mode) && !S_ISDIR(dst.mode)) {
			r = -ENOTDIR;
			goto out_end;
		}
		if (!S_ISDIR(src.mode) && S_ISDIR(dst.mode)) {
			r = -EISDIR;
			goto out_end;
		}
		if (S_ISDIR(dst.mode)) {
			r = has_child_locked(st, dst.ino);
			if (r > 0)
				r = -ENOTEMPTY;
			if (r < 0)
				goto out_end;
		}
		dropped_from(&d, &dst, newname);
		r = remove_locked(st, &dst, &d);
		if (r < 0)
			goto out_end;
	}
	bind_u64(q, 1, src.ino);
	bind_u64(q, 2, newparent);
	sqlite3_bind_text(q, 3, newname, -1, SQLITE_STATIC);
	bind_u64(q, 4, store_now_ns());
	r = q_exec_locked(st, q);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && replace && dropped)
		*dropped = d;
	return r;
}

/* Move every copy of page_id to atime_ns in its segment's LRU. */
static int touch_copies_locked(struct mc_store *st, uint64_t page_id,
			       uint64_t atime_ns)
{
	sqlite3_stmt *q = st->q[Q_TOUCH_COPIES];

	bind_u64(q, 1, page_id);
	bind_u64(q, 2, atime_ns);
	return q_exec_locked(st, q);
}

int mc_store_setattr(struct mc_store *st, uint64_t ino, unsigned flags,
		     const struct mc_ns_attr *in, struct mc_ns_attr *out)
{
	sqlite3_stmt *q = st->q[Q_SETATTR];
	struct mc_ns_attr a;
	int r;

	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = get_ino_locked(st, ino, &a, NULL, 0);
	if (r < 0)
		goto out_end;
	if (flags & MC_NS_SET_MODE)
		a.mode = (a.mode & S_IFMT) | (in->mode & 07777);
	if (flags & MC_NS_SET_UID)
		a.uid = in->uid;
	if (flags & MC_NS_SET_GID)
		a.gid = in->gid;
	if (flags & MC_NS_SET_MTIME)
		a.mtime_ns = in->mtime_ns;
	if (flags & MC_NS_SET_ATIME)
		a.atime_ns = in->atime_ns;
	a.ctime_ns = store_now_ns();
	bind_u64(q, 1, a.ino);
	bind_u64(q, 2, a.mode);
	bind_u64(q, 3, a.uid);
	bind_u64(q, 4, a.gid);
	bind_u64(q, 5, a.mtime_ns);
	bind_u64(q, 6, a.ctime_ns);
	bind_u64(q, 7, a.atime_ns);
	r = q_exec_locked(st, q);
	/* utimes and touch -a set the LRU clock (doc/namespace-store.md) */
	if (r == 0 && (flags & MC_NS_SET_ATIME) && a.page_id)
		r = touch_copies_locked(st, a.page_id, a.atime_ns);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && out)
		*out = a;
	return r;
}

static int flush_touches_locked(struct mc_store *st)
{
	sqlite3_stmt *q = st->q[Q_TOUCH];
	sqlite3_stmt *copies = st->q[Q_TOUCH_INO_COPIES];
	int r;

	if (st->ntouches == 0)
		return 0;
	r = tx_begin_locked(st);
	/* a page gone since has no row, and so no copies to move */
	for (size_t i = 0; r == 0 && i < st->ntouches; i++) {
		bind_u64(q, 1, st->touches[i].ino);
		bind_u64(q, 2, st->touches[i].atime_ns);
		r = q_exec_locked(st, q);
		if (r < 0)
			break;
		bind_u64(copies, 1, st->touches[i].ino);
		bind_u64(copies, 2, st->touches[i].atime_ns);
		r = q_exec_locked(st, copies);
	}
	r = tx_end_locked(st, r);
	st->ntouches = 0;	/* on failure the LRU order is only older */
	return r;
}

int mc_store_touch(struct mc_store *st, uint64_t ino, uint64_t now_ns)
{
	int r = 0;

	pthread_mutex_lock(&st->lock);
	if (st->ntouches == STORE_TOUCH_BATCH)
		r = flush_touches_locked(st);
	st->touches[st->ntouches].ino = ino;
	st->touches[st->ntouches].atime_ns = now_ns;
	st->ntouches++;
	pthread_mutex_unlock(&st->lock);
	return r;
}

int mc_store_flush_touches(struct mc_store *st)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = flush_touches_locked(st);
	pthread_mutex_unlock(&st->lock);
	return r;
}

int64_t mc_store_forget_pages(struct mc_store *st)
{
	int64_t n = 0;
	int r;

	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = q_exec_locked(st, st->q[Q_FORGET]);
	if (r < 0)
		goto out_end;
	n = sqlite3_changes64(st->db);
	r = q_exec_locked(st, st->q[Q_FORGET_COPIES]);
	if (r < 0)
		goto out_end;
	r = q_exec_locked(st, st->q[Q_FORGET_TOTALS]);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return r < 0 ? r : n;
}

/* ------------------------------------------------------------------- pins */

void mc_store_pin(struct mc_store *st, uint64_t ino)
{
	int r;

	if (ino == 0)
		return;
	pthread_mutex_lock(&st->lock);
	r = mc_id_counts_add(&st->pins, ino, 1);
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		mc_log(MC_LOG_ERR,
		       "store: cannot pin inode %" PRIu64
		       " (%s): it may be evicted while open, free some memory",
		       ino, strerror(-r));
}

void mc_store_unpin(struct mc_store *st, uint64_t ino)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = mc_id_counts_add(&st->pins, ino, -1);
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		mc_log_ratelimited(MC_LOG_WARNING,
				   "store: unpin of inode %" PRIu64
				   " that is not pinned: a caller unpinned twice, report a bug",
				   ino);
}

/* ---------------------------------------------------------------- sweeps */

/*
 * Eviction, a lost segment and the end of a reconcile all walk one
 * segment's copies in LRU order and drop some; they differ in which copies
 * they leave alone and in when they stop.  The master's choice of pages to
 * move elsewhere walks the same way and drops nothing.
 */
enum sweep_mode {
	SWEEP_EVICT,		/* unpinned copies, until enough is freed */
	SWEEP_COPIES,		/* the same, but never a page's last copy */
	SWEEP_SOLE,		/* unpinned last copies, listed, not dropped */
	SWEEP_LOST,		/* every copy */
	SWEEP_UNCONFIRMED,	/* copies not confirmed since holdings_begin */
};

/* One copy chosen, with the footprint it frees. */
struct store_victim {
	struct mc_ns_dropped d;
	uint64_t footprint;
};

struct store_sweep {
	enum sweep_mode mode;
	uint64_t segment;
	int batch;		/* rows per query, and so victims per batch */
	uint64_t want;		/* footprint still to free */
	uint64_t unit;
	uint64_t cursor[2];	/* (atime_ns, page_id) of the last row read */
	/* this batch: victims v[0..n) and their footprint */
	struct store_victim *v;
	int n;
	uint64_t planned;
	/* every batch so far */
	uint64_t freed;
	int64_t copies;
};

/* 1 when the sweep leaves the copy of page a alone, 0 if not, -errno. */
static int sweep_skip_locked(struct mc_store *st, const struct store_sweep *s,
			     const struct mc_ns_attr *a)
{
	bool here, other;
	int r;

	switch (s->mode) {
	case SWEEP_EVICT:
		return mc_id_counts_get(&st->pins, a->ino) != 0;
	case SWEEP_COPIES:
	case SWEEP_SOLE:
		if (mc_id_counts_get(&st->pins, a->ino) != 0)
			return 1;
		r = copies_of_locked(st, a->page_id, s->segment, &here, &other);
		if (r < 0)
			return r;
		/* COPIES leaves last copies alone, SOLE all the others */
		return s->mode == SWEEP_COPIES ? !other : other;
	case SWEEP_LOST:
		return 0;
	case SWEEP_UNCONFIRMED:
		r = hold_get_locked(st, s->segment, a->page_id);
		if (r == -ENOENT)
			return 0;
		return r < 0 ? r : r == HOLD_CONFIRMED;
	}
	return 0;
}

/*
 * Read candidates from q (bound, and reset here) into the batch, oldest
 * first, until it holds enough.  Skipped rows still move the cursor, so a
 * run of them is read once, not once per batch.  Returns rows read.
 */
static int sweep_scan_locked(struct mc_store *st, sqlite3_stmt *q,
			     struct store_sweep *s)
{
	int rows = 0, r = 0;

	while (s->planned < s->want && s->n < s->batch &&
	       (r = q_step(st, q)) == 1) {
		struct store_victim *v = &s->v[s->n];
		struct mc_ns_attr a;
		char name[MC_NAME_MAX + 1];

		rows++;
		store_row(q, &a, name, sizeof(name));
		s->cursor[0] = col_u64(q, 11);
		s->cursor[1] = a.page_id;
		r = sweep_skip_locked(st, s, &a);
		if (r < 0)
			break;
		if (r)
			continue;
		dropped_from(&v->d, &a, name);
		v->footprint = (a.size + s->unit - 1) / s->unit * s->unit;
		s->planned += v->footprint;
		s->n++;
	}
	q_reset(q);
	return r < 0 ? r : rows;
}

/*
 * Drop victim v's copy in the sweep's segment; when it was the last, the
 * page goes too, but stays on the totals (the caller takes a batch off at
 * once).  Fills in v->d's flags and segment.
 */
static int sweep_take_locked(struct mc_store *st, const struct store_sweep *s,
			     struct store_victim *v)
{
	bool here, other;
	int r;

	r = copy_drop_locked(st, v->d.page_id, s->segment);
	if (r == 0)
		r = copies_of_locked(st, v->d.page_id, s->segment, &here,
				     &other);
	if (r < 0)
		return r;
	v->d.nsegments = 1;
	v->d.segments[0] = s->segment;
	if (other) {
		v->d.flags = MC_NS_DROPPED_COPY;
		return 0;
	}
	return delete_locked(st, v->d.ino);
}

/*
 * Choose up to s->batch copies after the cursor and drop them in one
 * transaction.  Returns the rows read (0: no candidate left) or -errno;
 * the victims are s->v[0..s->n).
 */
static int sweep_batch_locked(struct mc_store *st, struct store_sweep *s)
{
	sqlite3_stmt *same = st->q[Q_LRU_SAME];
	sqlite3_stmt *next = st->q[Q_LRU_NEXT];
	int64_t pages = 0, bytes = 0;
	int rows, r;

	s->n = 0;
	s->planned = 0;
	bind_u64(same, 1, s->segment);
	bind_u64(same, 2, s->cursor[0]);
	bind_u64(same, 3, s->cursor[1]);
	sqlite3_bind_int(same, 4, s->batch);
	rows = sweep_scan_locked(st, same, s);
	if (rows < 0)
		return rows;
	/* the ties ran out before the batch filled: go on to later times */
	if (rows < s->batch && s->planned < s->want && s->n < s->batch) {
		bind_u64(next, 1, s->segment);
		bind_u64(next, 2, s->cursor[0]);
		sqlite3_bind_int(next, 4, s->batch);
		r = sweep_scan_locked(st, next, s);
		if (r < 0)
			return r;
		rows += r;
	}
	if (s->n == 0)
		return rows;
	if (s->mode == SWEEP_SOLE) {
		/* a list for the caller: nothing changes */
		for (int i = 0; i < s->n; i++) {
			s->v[i].d.nsegments = 1;
			s->v[i].d.segments[0] = s->segment;
		}
		return rows;
	}

	r = tx_begin_locked(st);
	if (r < 0)
		return r;
	for (int i = 0; i < s->n && r == 0; i++) {
		r = sweep_take_locked(st, s, &s->v[i]);
		if (r == 0 && !(s->v[i].d.flags & MC_NS_DROPPED_COPY)) {
			pages++;
			bytes += s->v[i].d.size;
		}
	}
	if (r == 0 && pages)
		r = totals_add_locked(st, -pages, 0, -bytes);
	r = tx_end_locked(st, r);
	if (r < 0)
		return r;
	for (int i = 0; s->mode == SWEEP_EVICT && i < s->n; i++) {
		if (s->v[i].d.flags & MC_NS_DROPPED_COPY)
			continue;
		st->evictions++;
		st->evicted_bytes += s->v[i].d.size;
	}
	return rows;
}

/* Set s up to walk from the oldest copy: 0 or -ENOMEM (free s->v after). */
static int sweep_start(struct store_sweep *s)
{
	/* atimes are stored as int64: start below every one of them */
	s->cursor[0] = (uint64_t)INT64_MIN;
	s->cursor[1] = 0;
	s->unit = s->unit ? s->unit : 1;
	s->v = calloc((size_t)s->batch, sizeof(*s->v));
	return s->v ? 0 : -ENOMEM;
}

/*
 * Run the sweep until it has freed `bytes` of footprint or read every
 * copy, a batch at a time, calling fn for each victim (the evictions) or
 * each page gone with its copy (the others) without the lock.  0 or
 * -errno; what it did is in s->freed and s->copies.
 */
static int sweep_run(struct mc_store *st, struct store_sweep *s, uint64_t bytes,
		     mc_store_dropped_fn fn, void *ctx)
{
	bool each = s->mode == SWEEP_EVICT || s->mode == SWEEP_COPIES;
	int r;

	r = sweep_start(s);
	if (r < 0)
		return r;
	while (s->freed < bytes) {
		s->want = bytes - s->freed;
		pthread_mutex_lock(&st->lock);
		r = sweep_batch_locked(st, s);
		pthread_mutex_unlock(&st->lock);
		if (r <= 0)
			break;
		/* the rows are gone: now the caller may free the memory */
		for (int i = 0; i < s->n; i++) {
			const struct mc_ns_dropped *d = &s->v[i].d;

			if (fn && (each || d->flags == 0))
				fn(ctx, d);
			s->freed += s->v[i].footprint;
			s->copies++;
		}
	}
	free(s->v);
	s->v = NULL;
	return r < 0 ? r : 0;
}

static int64_t evict_as(struct mc_store *st, enum sweep_mode mode,
			uint64_t segment, uint64_t bytes, uint64_t unit,
			mc_store_dropped_fn fn, void *ctx)
{
	struct store_sweep s = {
		.mode = mode,
		.segment = segment,
		.batch = STORE_EVICT_BATCH,
		.unit = unit,
	};
	int r;

	mc_store_flush_touches(st);	/* the LRU order must be current */
	r = sweep_run(st, &s, bytes, fn, ctx);
	return r < 0 ? r : (int64_t)s.freed;
}

int64_t mc_store_evict(struct mc_store *st, uint64_t segment, uint64_t bytes,
		       uint64_t unit, mc_store_dropped_fn fn, void *ctx)
{
	return evict_as(st, SWEEP_EVICT, segment, bytes, unit, fn, ctx);
}

int64_t mc_store_evict_copies(struct mc_store *st, uint64_t segment,
			      uint64_t bytes, uint64_t unit,
			      mc_store_dropped_fn fn, void *ctx)
{
	return evict_as(st, SWEEP_COPIES, segment, bytes, unit, fn, ctx);
}

int64_t mc_store_sole_copies(struct mc_store *st, uint64_t segment,
			     uint64_t bytes, uint64_t unit,
			     mc_store_offer_fn fn, void *ctx)
{
	struct store_sweep s = {
		.mode = SWEEP_SOLE,
		.segment = segment,
		.batch = STORE_EVICT_BATCH,
		.unit = unit,
	};
	uint64_t taken = 0;
	int r;

	mc_store_flush_touches(st);	/* the LRU order must be current */
	r = sweep_start(&s);
	if (r < 0)
		return r;
	while (taken < bytes) {
		s.want = bytes - taken;
		pthread_mutex_lock(&st->lock);
		r = sweep_batch_locked(st, &s);
		pthread_mutex_unlock(&st->lock);
		if (r <= 0)
			break;
		/* offered without the lock: fn may take its caller's locks */
		for (int i = 0; i < s.n && taken < bytes; i++) {
			int took = fn(ctx, &s.v[i].d, s.v[i].footprint);

			if (took < 0)
				goto out;	/* fn stopped: no error */
			if (took > 0)
				taken += s.v[i].footprint;
		}
	}
out:
	free(s.v);
	/* what fn took stands even when the walk failed after it */
	return r < 0 && taken == 0 ? r : (int64_t)taken;
}

void mc_store_get_stats(struct mc_store *st, struct mc_ns_stats *out)
{
	sqlite3_stmt *q;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&st->lock);
	q = st->q[Q_TOTALS_GET];
	/* an error was logged by the adapter; the totals read as zero */
	if (q_step(st, q) == 1) {
		out->pages = col_u64(q, 2);
		out->dirs = col_u64(q, 3);
		out->bytes = col_u64(q, 4);
	}
	q_reset(q);
	out->evictions = st->evictions;
	out->evicted_bytes = st->evicted_bytes;
	pthread_mutex_unlock(&st->lock);
}

/* ---------------------------------------------------------------- segments */

int mc_store_segment_register(struct mc_store *st,
			      struct mc_store_segment *seg)
{
	static const uint8_t zero[sizeof(seg->uuid)];
	sqlite3_stmt *q = st->q[Q_SEG_REGISTER];
	uint64_t id = 0;
	int r;

	/* the local segment is made with the schema, for --standalone only */
	if (memcmp(seg->uuid, zero, sizeof(zero)) == 0 ||
	    memcmp(seg->uuid, store_local_uuid, sizeof(store_local_uuid)) == 0)
		return -EINVAL;
	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	sqlite3_bind_blob(q, 1, seg->uuid, sizeof(seg->uuid), SQLITE_STATIC);
	bind_text(q, 2, seg->host, sizeof(seg->host));
	bind_text(q, 3, seg->address, sizeof(seg->address));
	bind_u64(q, 4, seg->port);
	bind_u64(q, 5, seg->capacity);
	bind_text(q, 6, seg->protocol, sizeof(seg->protocol));
	/* RETURNING: the row inserted, or the one updated for this uuid */
	r = q_step(st, q);
	if (r == 1) {
		id = col_u64(q, 0);
		r = 0;
	} else if (r == 0) {
		r = store_err(st, SQLITE_INTERNAL, sqlite3_sql(q));
	}
	q_reset(q);
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	if (r == 0)
		seg->id = id;
	return r;
}

/* Copy the current row of Q_SEG_GET or Q_SEG_LIST into *s. */
static void segment_row(sqlite3_stmt *q, struct mc_store_segment *s)
{
	const void *uuid = sqlite3_column_blob(q, 1);
	size_t n = (size_t)sqlite3_column_bytes(q, 1);

	memset(s, 0, sizeof(*s));
	s->id = col_u64(q, 0);
	if (uuid)
		memcpy(s->uuid, uuid,
		       n < sizeof(s->uuid) ? n : sizeof(s->uuid));
	col_text(q, 2, s->host, sizeof(s->host));
	col_text(q, 3, s->address, sizeof(s->address));
	s->port = (uint16_t)sqlite3_column_int(q, 4);
	s->capacity = col_u64(q, 5);
	col_text(q, 6, s->protocol, sizeof(s->protocol));
}

int mc_store_segment_get(struct mc_store *st, uint64_t id,
			 struct mc_store_segment *out)
{
	sqlite3_stmt *q = st->q[Q_SEG_GET];
	struct mc_store_segment s;
	int r;

	pthread_mutex_lock(&st->lock);
	bind_u64(q, 1, id);
	r = q_step(st, q);
	if (r == 1) {
		segment_row(q, &s);
		r = 0;
	} else if (r == 0) {
		r = -ENOENT;
	}
	q_reset(q);
	pthread_mutex_unlock(&st->lock);
	if (r == 0)
		*out = s;
	return r;
}

int mc_store_segment_foreach(struct mc_store *st,
			     int (*fn)(void *ctx,
				       const struct mc_store_segment *seg),
			     void *ctx)
{
	sqlite3_stmt *q = st->q[Q_SEG_LIST];
	struct mc_store_segment *v = NULL, *nv;
	size_t n = 0, cap = 0;
	int r;

	/*
	 * A host each, so a few hundred rows at most: read them all, then
	 * call fn without the lock, so it may call the store.
	 */
	pthread_mutex_lock(&st->lock);
	while ((r = q_step(st, q)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		segment_row(q, &v[n++]);
	}
	q_reset(q);
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = fn(ctx, &v[i]);
	free(v);
	return r;
}

/* Forget what a reconcile of segment heard, and that it runs. */
static int reconciling_end_locked(struct mc_store *st, uint64_t segment)
{
	for (size_t i = 0; i < st->nreconciling; i++) {
		if (st->reconciling[i] != segment)
			continue;
		st->reconciling[i] = st->reconciling[--st->nreconciling];
		break;
	}
	return hold_clear_locked(st, segment);
}

int64_t mc_store_segment_lost(struct mc_store *st, uint64_t segment,
			      mc_store_dropped_fn fn, void *ctx)
{
	struct store_sweep s = {
		.mode = SWEEP_LOST,
		.segment = segment,
		.batch = STORE_SWEEP_BATCH,
	};
	int r;

	/* a reconcile of memory that is gone has nothing left to confirm */
	pthread_mutex_lock(&st->lock);
	r = reconciling_end_locked(st, segment);
	pthread_mutex_unlock(&st->lock);
	if (r == 0)
		r = sweep_run(st, &s, UINT64_MAX, fn, ctx);
	return r < 0 ? r : s.copies;
}

/* ------------------------------------------------------------------ copies */

int mc_store_add_replica(struct mc_store *st, uint64_t page_id,
			 uint64_t segment)
{
	bool here, other;
	int r;

	if (segment == 0)
		return -EINVAL;
	pthread_mutex_lock(&st->lock);
	r = tx_begin_locked(st);
	if (r < 0)
		goto out_unlock;
	r = copies_of_locked(st, page_id, segment, &here, &other);
	if (r < 0)
		goto out_end;
	if (!here && !other) {
		r = -ENOENT;
		goto out_end;
	}
	if (here)
		r = copy_made_locked(st, segment, page_id);
	else
		r = copy_clone_locked(st, page_id, segment);
out_end:
	r = tx_end_locked(st, r);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* The inode of page_id's copy in segment: 0 and *ino, -ENOENT, -errno. */
static int copy_ino_locked(struct mc_store *st, uint64_t page_id,
			   uint64_t segment, uint64_t *ino)
{
	sqlite3_stmt *q = st->q[Q_COPY_INO];
	int r;

	bind_u64(q, 1, page_id);
	bind_u64(q, 2, segment);
	r = q_step(st, q);
	if (r == 1)
		*ino = col_u64(q, 0);
	q_reset(q);
	return r == 1 ? 0 : r == 0 ? -ENOENT : r;
}

int mc_store_drop_copy(struct mc_store *st, uint64_t page_id, uint64_t segment,
		       struct mc_ns_dropped *d)
{
	char name[MC_NAME_MAX + 1];
	struct mc_ns_attr a;
	uint64_t ino = 0;
	bool here, other;
	int r;

	dropped_none(d);
	pthread_mutex_lock(&st->lock);
	r = copy_ino_locked(st, page_id, segment, &ino);
	if (r == 0)
		r = get_ino_locked(st, ino, &a, name, sizeof(name));
	if (r < 0)
		goto out_unlock;
	/* an open page keeps every copy; its last copy is its life */
	if (mc_id_counts_get(&st->pins, ino) != 0) {
		r = -EBUSY;
		goto out_unlock;
	}
	r = copies_of_locked(st, page_id, segment, &here, &other);
	if (r == 0 && !other)
		r = -EBUSY;
	if (r < 0)
		goto out_unlock;
	r = tx_begin_locked(st);
	if (r == 0)
		r = copy_drop_locked(st, page_id, segment);
	r = tx_end_locked(st, r);
	if (r == 0) {
		dropped_from(d, &a, name);
		d->flags = MC_NS_DROPPED_COPY;
		d->nsegments = 1;
		d->segments[0] = segment;
	}
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return r;
}

int mc_store_replicas(struct mc_store *st, uint64_t page_id, uint64_t *size,
		      uint32_t *crc32c, uint64_t *segments, unsigned max,
		      unsigned *count)
{
	sqlite3_stmt *q = st->q[Q_REPLICAS];
	uint64_t sz = 0;
	uint32_t crc = 0;
	unsigned rows = 0, n = 0;
	int r;

	*count = 0;
	pthread_mutex_lock(&st->lock);
	bind_u64(q, 1, page_id);
	while ((r = q_step(st, q)) == 1) {
		if (rows++ == 0) {
			sz = col_u64(q, 1);
			crc = (uint32_t)sqlite3_column_int64(q, 2);
		}
		if (n < max)
			segments[n++] = col_u64(q, 0);
	}
	q_reset(q);
	pthread_mutex_unlock(&st->lock);
	if (r < 0)
		return r;
	if (rows == 0)
		return -ENOENT;
	if (size)
		*size = sz;
	if (crc32c)
		*crc32c = crc;
	*count = n;
	return 0;
}

/* ---------------------------------------------------------------- holdings */

int mc_store_holdings_begin(struct mc_store *st, uint64_t segment)
{
	int r = 0;

	pthread_mutex_lock(&st->lock);
	/*
	 * A second begin starts over (a daemon registered again: its new
	 * list is the truth, also about copies its old self made since).
	 */
	if (!reconciling_locked(st, segment)) {
		if (st->nreconciling == st->capreconciling) {
			size_t cap = st->capreconciling ?
					     st->capreconciling * 2 : 8;
			uint64_t *n = realloc(st->reconciling,
					      cap * sizeof(*n));

			if (!n) {
				r = -ENOMEM;
				goto out_unlock;
			}
			st->reconciling = n;
			st->capreconciling = cap;
		}
		st->reconciling[st->nreconciling++] = segment;
	}
	r = hold_clear_locked(st, segment);
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return r;
}

/*
 * segment says it holds page_id: confirm the copy, or make it, or set
 * *unknown when the store has no such page (or dropped this copy since
 * begin): then the daemon frees it.
 */
static int hold_one_locked(struct mc_store *st, uint64_t segment,
			   uint64_t page_id, bool *unknown)
{
	bool here, other;
	int hold, r;

	*unknown = false;
	hold = hold_get_locked(st, segment, page_id);
	if (hold == HOLD_DROPPED) {
		*unknown = true;
		return 0;
	}
	if (hold < 0 && hold != -ENOENT)
		return hold;
	r = copies_of_locked(st, page_id, segment, &here, &other);
	if (r < 0)
		return r;
	if (!here && !other) {
		*unknown = true;
		return 0;
	}
	/* a copy made here is marked confirmed (copy_made_locked()) */
	if (!here)
		return copy_clone_locked(st, page_id, segment);
	/* marked already: an id sent twice, or a copy made since begin */
	if (hold == HOLD_CONFIRMED)
		return 0;
	return hold_set_locked(st, segment, page_id, HOLD_CONFIRMED);
}

/*
 * One batch of mc_store_holdings_add() in one transaction; the ids the
 * daemon must free are put in lost[*nlost].
 */
static int holdings_add_locked(struct mc_store *st, uint64_t segment,
			       const uint64_t *page_ids, size_t n,
			       uint64_t *lost, size_t *nlost)
{
	int r;

	*nlost = 0;
	if (!reconciling_locked(st, segment)) {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "store: holdings of segment %" PRIu64
				   " reported with no reconcile running: call mc_store_holdings_begin() first, report a bug",
				   segment);
		return -EINVAL;
	}
	r = tx_begin_locked(st);
	for (size_t i = 0; r == 0 && i < n; i++) {
		bool unknown;

		r = hold_one_locked(st, segment, page_ids[i], &unknown);
		if (r == 0 && unknown)
			lost[(*nlost)++] = page_ids[i];
	}
	return tx_end_locked(st, r);
}

int mc_store_holdings_add(struct mc_store *st, uint64_t segment,
			  const uint64_t *page_ids, size_t n,
			  void (*unknown)(void *ctx, uint64_t page_id),
			  void *ctx)
{
	uint64_t *lost;
	int r = 0;

	lost = calloc(STORE_HOLDINGS_BATCH, sizeof(*lost));
	if (!lost)
		return -ENOMEM;
	/* in batches, so a million ids never hold the lock for long */
	for (size_t done = 0; r == 0 && done < n;) {
		size_t k = n - done < STORE_HOLDINGS_BATCH ?
				   n - done : STORE_HOLDINGS_BATCH;
		size_t nlost = 0;

		pthread_mutex_lock(&st->lock);
		r = holdings_add_locked(st, segment, page_ids + done, k, lost,
					&nlost);
		pthread_mutex_unlock(&st->lock);
		for (size_t i = 0; r == 0 && unknown && i < nlost; i++)
			unknown(ctx, lost[i]);
		done += k;
	}
	free(lost);
	return r;
}

int64_t mc_store_holdings_end(struct mc_store *st, uint64_t segment,
			      mc_store_dropped_fn fn, void *ctx)
{
	struct store_sweep s = {
		.mode = SWEEP_UNCONFIRMED,
		.segment = segment,
		.batch = STORE_SWEEP_BATCH,
	};
	bool running;
	int r;

	pthread_mutex_lock(&st->lock);
	running = reconciling_locked(st, segment);
	pthread_mutex_unlock(&st->lock);
	/* without a begin every copy would look unconfirmed */
	if (!running) {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "store: end of a reconcile of segment %" PRIu64
				   " that is not running: nothing dropped, report a bug",
				   segment);
		return -EINVAL;
	}
	/* still reconciling while it sweeps: copies made meanwhile stay */
	r = sweep_run(st, &s, UINT64_MAX, fn, ctx);
	if (r < 0)
		return r;
	pthread_mutex_lock(&st->lock);
	r = reconciling_end_locked(st, segment);
	pthread_mutex_unlock(&st->lock);
	return r < 0 ? r : s.copies;
}

/* ------------------------------------------------------- re-replication */

int mc_store_under_replicated(struct mc_store *st, unsigned want,
			      uint64_t after, unsigned max,
			      void (*fn)(void *ctx, uint64_t page_id,
					 unsigned copies),
			      void *ctx)
{
	struct under {
		uint64_t page_id;
		unsigned copies;
	} *found;
	sqlite3_stmt *q = st->q[Q_UNDER];
	unsigned passed = 0;
	bool end = false;
	int r = 0;

	if (want == 0 || max == 0)
		return 0;
	found = calloc(STORE_UNDER_CHUNK, sizeof(*found));
	if (!found)
		return -ENOMEM;
	/*
	 * Read the copies in page order a chunk at a time, counting runs of
	 * one page id; the lock is let go between chunks and fn runs
	 * without it.  A run cut by the end of a chunk is read again with
	 * the next one.
	 */
	while (!end && passed < max) {
		uint64_t prev = 0, done = after;
		unsigned copies = 0, nfound = 0, rows = 0;

		pthread_mutex_lock(&st->lock);
		bind_u64(q, 1, after);
		sqlite3_bind_int(q, 2, STORE_UNDER_CHUNK);
		while ((r = q_step(st, q)) == 1) {
			uint64_t id = col_u64(q, 0);

			rows++;
			if (id != prev) {
				if (prev && copies < want)
					found[nfound++] = (struct under){
						prev, copies
					};
				if (prev)
					done = prev;
				prev = id;
				copies = 0;
			}
			copies++;
		}
		q_reset(q);
		pthread_mutex_unlock(&st->lock);
		if (r < 0)
			break;
		/* the last run is whole when the chunk was not full */
		if (rows < STORE_UNDER_CHUNK || done == after) {
			if (prev && copies < want)
				found[nfound++] = (struct under){ prev,
								  copies };
			if (prev)
				done = prev;
			end = rows < STORE_UNDER_CHUNK;
		}
		for (unsigned i = 0; i < nfound && passed < max; i++) {
			fn(ctx, found[i].page_id, found[i].copies);
			passed++;
		}
		after = done;
	}
	free(found);
	return r < 0 ? r : (int)passed;
}
