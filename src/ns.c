/*
 * ns.c - the namespace and placement store over sqlite.
 *
 * One connection, one mutex: every public call takes ns->lock, runs at most
 * one short transaction on prepared statements made at open, and lets go.
 * The schema (user_version 1):
 *
 *   inodes(ino PK, parent, name, mode, uid, gid, size, page_id,
 *          mtime_ns, ctime_ns, atime_ns)
 *     UNIQUE (parent, name)                       lookup
 *     (parent, ino)                               readdir in inode order
 *     (atime_ns, ino) WHERE page_id != 0          the LRU, pages only
 *   counters(id = 1, next_ino, next_page_id, pages, dirs, bytes)
 *
 * A row is a page when page_id != 0, a directory otherwise.  The root is
 * ino 1 with parent 1 and the empty name, which no client name can match.
 * counters holds the totals, kept in the same transaction as every change,
 * so opening a store of millions of rows reads one row and scans nothing.
 * next_ino and next_page_id are high-water marks persisted a block ahead
 * of what has been handed out: a restart skips the rest of the block but
 * never repeats a number.
 *
 * Durability: WAL with synchronous=OFF.  A killed process loses nothing
 * (the WAL is in the page cache); a power cut may lose the last
 * transactions, but it loses the pool memory too, and the first start
 * after a reboot calls mc_ns_forget_pages().
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

#include "log.h"
#include "name.h"
#include "ns.h"
#include "banned.h"

#define NS_SCHEMA_VERSION 1
/* Numbers persisted per counters write; a restart skips at most this many. */
#define NS_RESERVE_BLOCK 1024
/* Rows read per query by readdir (grows to the max) and by eviction. */
#define NS_READDIR_FIRST 32
#define NS_READDIR_MAX 1024
#define NS_EVICT_BATCH 64
/* Deeper than any real tree; past it the parent chain must be a loop. */
#define NS_MAX_DEPTH 65536

#define NS_COLS                                                                \
	"ino, parent, name, mode, uid, gid, size, page_id, mtime_ns, "         \
	"ctime_ns, atime_ns"

enum ns_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_BY_INO,
	ST_BY_NAME,
	ST_INSERT,
	ST_DELETE,
	ST_HAS_CHILD,
	ST_MOVE,
	ST_SETATTR,
	ST_TOUCH,
	ST_READDIR,
	ST_LRU_SAME,
	ST_LRU_NEXT,
	ST_TOTALS_GET,
	ST_TOTALS_ADD,
	ST_LIMITS_SET,
	ST_FORGET,
	ST_FORGET_TOTALS,
	ST_COUNT
};

static const char *const ns_sql[ST_COUNT] = {
	/* IMMEDIATE: take the write lock up front, never upgrade mid-way */
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_BY_INO] = "SELECT " NS_COLS " FROM inodes WHERE ino = ?1",
	[ST_BY_NAME] = "SELECT " NS_COLS
		       " FROM inodes WHERE parent = ?1 AND name = ?2",
	[ST_INSERT] = "INSERT INTO inodes (" NS_COLS ") VALUES "
		      "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[ST_DELETE] = "DELETE FROM inodes WHERE ino = ?1",
	/* ino != parent: the root is its own parent, not its own child */
	[ST_HAS_CHILD] = "SELECT 1 FROM inodes "
			 "WHERE parent = ?1 AND ino != ?1 LIMIT 1",
	[ST_MOVE] = "UPDATE inodes SET parent = ?2, name = ?3, ctime_ns = ?4 "
		    "WHERE ino = ?1",
	[ST_SETATTR] = "UPDATE inodes SET mode = ?2, uid = ?3, gid = ?4, "
		       "mtime_ns = ?5, ctime_ns = ?6, atime_ns = ?7 "
		       "WHERE ino = ?1",
	[ST_TOUCH] = "UPDATE inodes SET atime_ns = ?2 WHERE ino = ?1",
	[ST_READDIR] = "SELECT " NS_COLS " FROM inodes "
		       "WHERE parent = ?1 AND ino > ?2 AND ino != ?1 "
		       "ORDER BY ino LIMIT ?3",
	/*
	 * The LRU after the cursor (atime_ns, ino), in two parts because
	 * sqlite 3.40 seeks a row value on its first column only: ties on
	 * atime_ns, then later times.  page_id != 0 selects the partial
	 * index inodes_lru.
	 */
	[ST_LRU_SAME] = "SELECT " NS_COLS " FROM inodes "
			"WHERE page_id != 0 AND atime_ns = ?1 AND ino > ?2 "
			"ORDER BY ino LIMIT ?3",
	[ST_LRU_NEXT] = "SELECT " NS_COLS " FROM inodes "
			"WHERE page_id != 0 AND atime_ns > ?1 "
			"ORDER BY atime_ns, ino LIMIT ?2",
	[ST_TOTALS_GET] = "SELECT next_ino, next_page_id, pages, dirs, bytes "
			  "FROM counters WHERE id = 1",
	[ST_TOTALS_ADD] = "UPDATE counters SET pages = pages + ?1, "
			  "dirs = dirs + ?2, bytes = bytes + ?3 WHERE id = 1",
	[ST_LIMITS_SET] = "UPDATE counters SET next_ino = ?1, "
			  "next_page_id = ?2 WHERE id = 1",
	[ST_FORGET] = "DELETE FROM inodes WHERE page_id != 0",
	[ST_FORGET_TOTALS] = "UPDATE counters SET pages = 0, bytes = 0 "
			     "WHERE id = 1",
};

static const char ns_schema[] =
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
	" atime_ns INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX inodes_by_name ON inodes (parent, name);"
	"CREATE INDEX inodes_by_parent ON inodes (parent, ino);"
	"CREATE INDEX inodes_lru ON inodes (atime_ns, ino) WHERE page_id != 0;"
	"CREATE TABLE counters ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" next_ino INTEGER NOT NULL,"
	" next_page_id INTEGER NOT NULL,"
	" pages INTEGER NOT NULL,"
	" dirs INTEGER NOT NULL,"
	" bytes INTEGER NOT NULL);"
	"PRAGMA user_version = 1;";

/*
 * Pin counts by inode: open addressing with linear probing, key 0 free
 * (no inode is 0), deletion by backward shift so there are no tombstones.
 */
struct ns_pins {
	uint64_t *ino;
	uint32_t *count;
	size_t cap;		/* a power of two, or 0 before the first pin */
	size_t used;
};

/*
 * Opens move pages in the LRU; writing each to sqlite would cost a WAL
 * write per read.  They are kept here and written in one transaction when
 * the batch fills, before every eviction, on mc_ns_flush_touches() and at
 * close.  A crash loses at most one batch of LRU order, never a page.
 */
#define NS_TOUCH_BATCH 1024

struct mc_ns {
	pthread_mutex_t lock;
	char *path;		/* for messages; set at open, then read-only */
	sqlite3 *db;		/* protected by ns->lock */
	sqlite3_stmt *st[ST_COUNT]; /* protected by ns->lock */
	/* [next, end) was persisted as reserved; protected by ns->lock */
	uint64_t ino_next, ino_end;
	uint64_t page_next, page_end;
	struct ns_pins pins;	/* protected by ns->lock */
	uint64_t evictions;	/* protected by ns->lock */
	uint64_t evicted_bytes;	/* protected by ns->lock */
	/* LRU touches not yet written; protected by ns->lock */
	struct ns_touch {
		uint64_t ino, atime_ns;
	} touches[NS_TOUCH_BATCH];
	size_t ntouches;
};

/* One page chosen for eviction, with the footprint it frees. */
struct ns_victim {
	struct mc_ns_dropped d;
	uint64_t footprint;
};

/* One readdir row, copied out so fn runs without the lock. */
struct ns_dirent {
	struct mc_ns_attr attr;
	char name[MC_NAME_MAX + 1];
};

static uint64_t ns_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ pins */

static size_t pins_home(const struct ns_pins *p, uint64_t ino)
{
	/* Fibonacci hashing: sequential inode numbers spread over the table */
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (p->cap - 1);
}

/* The slot holding ino, or the free slot where it would go. */
static size_t pins_slot(const struct ns_pins *p, uint64_t ino)
{
	size_t i = pins_home(p, ino);

	while (p->ino[i] != 0 && p->ino[i] != ino)
		i = (i + 1) & (p->cap - 1);
	return i;
}

static int pins_grow(struct ns_pins *p)
{
	size_t cap = p->cap ? p->cap * 2 : 64;
	struct ns_pins n = { .cap = cap };

	n.ino = calloc(cap, sizeof(*n.ino));
	n.count = calloc(cap, sizeof(*n.count));
	if (!n.ino || !n.count) {
		free(n.ino);
		free(n.count);
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->cap; i++) {
		size_t j;

		if (p->ino[i] == 0)
			continue;
		j = pins_slot(&n, p->ino[i]);
		n.ino[j] = p->ino[i];
		n.count[j] = p->count[i];
		n.used++;
	}
	free(p->ino);
	free(p->count);
	*p = n;
	return 0;
}

static bool pins_has(const struct ns_pins *p, uint64_t ino)
{
	return p->cap && p->ino[pins_slot(p, ino)] == ino;
}

static void pins_delete(struct ns_pins *p, size_t i)
{
	size_t mask = p->cap - 1, j = i;

	for (;;) {
		size_t k;

		j = (j + 1) & mask;
		if (p->ino[j] == 0)
			break;
		k = pins_home(p, p->ino[j]);
		/* an entry whose home lies cyclically in (i, j] stays put */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		p->ino[i] = p->ino[j];
		p->count[i] = p->count[j];
		i = j;
	}
	p->ino[i] = 0;
	p->count[i] = 0;
	p->used--;
}

/* --------------------------------------------------------- sqlite adapter */

/*
 * The one adapter from sqlite result codes to -errno.  A constraint
 * failure becomes -EEXIST, unlogged: only the caller knows what it means.
 */
static int ns_sqlite_err(struct mc_ns *ns, int rc, const char *what)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		mc_log_ratelimited(MC_LOG_WARNING,
				   "ns: store '%s' is locked by another process: stop the other master using it",
				   ns->path);
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	}
	mc_log(MC_LOG_ERR,
	       "ns: cannot run '%s' on store '%s': %s: check free space and permissions of the store",
	       what, ns->path, sqlite3_errmsg(ns->db));
	return -EIO;
}

/* 1 for a row, 0 when done, -errno.  The statement stays to be reset. */
static int ns_step(struct mc_ns *ns, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return ns_sqlite_err(ns, rc, sqlite3_sql(st));
}

static void ns_reset(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a statement that returns no rows, and reset it: 0 or -errno. */
static int ns_exec_locked(struct mc_ns *ns, sqlite3_stmt *st)
{
	int r = ns_step(ns, st);

	ns_reset(st);
	return r < 0 ? r : 0;
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
	return (uint64_t)sqlite3_column_int64(st, i);
}

/* Copy the current NS_COLS row into *a and, when name is not NULL, name. */
static void ns_row(sqlite3_stmt *st, struct mc_ns_attr *a, char *name,
		   size_t namelen)
{
	a->ino = col_u64(st, 0);
	a->parent = col_u64(st, 1);
	a->mode = (uint32_t)sqlite3_column_int64(st, 3);
	a->uid = (uint32_t)sqlite3_column_int64(st, 4);
	a->gid = (uint32_t)sqlite3_column_int64(st, 5);
	a->size = col_u64(st, 6);
	a->page_id = col_u64(st, 7);
	a->mtime_ns = col_u64(st, 8);
	a->ctime_ns = col_u64(st, 9);
	a->atime_ns = col_u64(st, 10);
	a->nlink = S_ISDIR(a->mode) ? 2 : 1;
	if (name && namelen) {
		const unsigned char *s = sqlite3_column_text(st, 2);
		size_t n = s ? (size_t)sqlite3_column_bytes(st, 2) : 0;

		if (n >= namelen)
			n = namelen - 1;
		if (n)
			memcpy(name, s, n);
		name[n] = '\0';
	}
}

static void ns_dropped_from(struct mc_ns_dropped *d, const struct mc_ns_attr *a,
			    const char *name)
{
	d->ino = a->ino;
	d->attr = *a;
	d->parent = a->parent;
	d->page_id = a->page_id;
	d->size = a->size;
	snprintf(d->name, sizeof(d->name), "%s", name);
}

/* ------------------------------------------------------- row operations */

/* At most one row from st: 0 with *a filled, -ENOENT, -errno; resets st. */
static int ns_get_one_locked(struct mc_ns *ns, sqlite3_stmt *st,
			     struct mc_ns_attr *a, char *name, size_t namelen)
{
	int r = ns_step(ns, st);

	if (r == 1) {
		ns_row(st, a, name, namelen);
		r = 0;
	} else if (r == 0) {
		r = -ENOENT;
	}
	ns_reset(st);
	return r;
}

static int get_ino_locked(struct mc_ns *ns, uint64_t ino, struct mc_ns_attr *a,
			  char *name, size_t namelen)
{
	sqlite3_stmt *st = ns->st[ST_BY_INO];

	bind_u64(st, 1, ino);
	return ns_get_one_locked(ns, st, a, name, namelen);
}

static int get_name_locked(struct mc_ns *ns, uint64_t parent, const char *name,
			   struct mc_ns_attr *a)
{
	sqlite3_stmt *st = ns->st[ST_BY_NAME];

	bind_u64(st, 1, parent);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	return ns_get_one_locked(ns, st, a, NULL, 0);
}

/* 0 when ino is a directory, -ENOENT, -ENOTDIR, -errno. */
static int dir_check_locked(struct mc_ns *ns, uint64_t ino)
{
	struct mc_ns_attr a;
	int r = get_ino_locked(ns, ino, &a, NULL, 0);

	if (r < 0)
		return r;
	return S_ISDIR(a.mode) ? 0 : -ENOTDIR;
}

/* 1 when directory dir has an entry, 0 when empty, -errno. */
static int has_child_locked(struct mc_ns *ns, uint64_t dir)
{
	sqlite3_stmt *st = ns->st[ST_HAS_CHILD];
	int r;

	bind_u64(st, 1, dir);
	r = ns_step(ns, st);
	ns_reset(st);
	return r;
}

static int insert_locked(struct mc_ns *ns, const struct mc_ns_attr *a,
			 const char *name)
{
	sqlite3_stmt *st = ns->st[ST_INSERT];

	bind_u64(st, 1, a->ino);
	bind_u64(st, 2, a->parent);
	sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
	bind_u64(st, 4, a->mode);
	bind_u64(st, 5, a->uid);
	bind_u64(st, 6, a->gid);
	bind_u64(st, 7, a->size);
	bind_u64(st, 8, a->page_id);
	bind_u64(st, 9, a->mtime_ns);
	bind_u64(st, 10, a->ctime_ns);
	bind_u64(st, 11, a->atime_ns);
	return ns_exec_locked(ns, st);
}

static int delete_locked(struct mc_ns *ns, uint64_t ino)
{
	sqlite3_stmt *st = ns->st[ST_DELETE];

	bind_u64(st, 1, ino);
	return ns_exec_locked(ns, st);
}

static int totals_add_locked(struct mc_ns *ns, int64_t pages, int64_t dirs,
			     int64_t bytes)
{
	sqlite3_stmt *st = ns->st[ST_TOTALS_ADD];

	sqlite3_bind_int64(st, 1, pages);
	sqlite3_bind_int64(st, 2, dirs);
	sqlite3_bind_int64(st, 3, bytes);
	return ns_exec_locked(ns, st);
}

/* Delete the row of a and take it off the totals. */
static int remove_locked(struct mc_ns *ns, const struct mc_ns_attr *a)
{
	int r = delete_locked(ns, a->ino);

	if (r < 0)
		return r;
	if (S_ISDIR(a->mode))
		return totals_add_locked(ns, 0, -1, 0);
	return totals_add_locked(ns, -1, 0, -(int64_t)a->size);
}

/* ----------------------------------------------------------- transactions */

static int tx_begin_locked(struct mc_ns *ns)
{
	return ns_exec_locked(ns, ns->st[ST_BEGIN]);
}

/*
 * End the open transaction: commit when r is 0, else roll back.  Returns
 * r, or the commit's error after rolling back.
 */
static int tx_end_locked(struct mc_ns *ns, int r)
{
	if (r == 0)
		r = ns_exec_locked(ns, ns->st[ST_COMMIT]);
	/* sqlite may have rolled back already (SQLITE_FULL, SQLITE_IOERR) */
	if (r != 0 && !sqlite3_get_autocommit(ns->db))
		ns_exec_locked(ns, ns->st[ST_ROLLBACK]);
	return r;
}

/* ---------------------------------------------------------------- reserve */

/*
 * Hand out the next inode number and page id (either out-pointer may be
 * NULL), persisting a new block first when one runs out.  Runs in its own
 * autocommit statement: never call it inside a transaction, whose rollback
 * would un-persist numbers already handed out.
 */
static int reserve_locked(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id)
{
	uint64_t ino_end = ns->ino_end, page_end = ns->page_end;
	sqlite3_stmt *st = ns->st[ST_LIMITS_SET];
	int r;

	if (ino && ns->ino_next >= ino_end)
		ino_end = ns->ino_next + NS_RESERVE_BLOCK;
	if (page_id && ns->page_next >= page_end)
		page_end = ns->page_next + NS_RESERVE_BLOCK;
	if (ino_end != ns->ino_end || page_end != ns->page_end) {
		bind_u64(st, 1, ino_end);
		bind_u64(st, 2, page_end);
		r = ns_exec_locked(ns, st);
		if (r < 0)
			return r;
		ns->ino_end = ino_end;
		ns->page_end = page_end;
	}
	if (ino)
		*ino = ns->ino_next++;
	if (page_id)
		*page_id = ns->page_next++;
	return 0;
}

int mc_ns_reserve(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id)
{
	int r;

	pthread_mutex_lock(&ns->lock);
	r = reserve_locked(ns, ino, page_id);
	pthread_mutex_unlock(&ns->lock);
	return r;
}

/* ---------------------------------------------------------- open / close */

/* Run SQL text that needs no binding (set-up only); what names it in logs. */
static int ns_exec_sql(struct mc_ns *ns, const char *sql, const char *what)
{
	int rc = sqlite3_exec(ns->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : ns_sqlite_err(ns, rc, what);
}

/* The user_version of the store, or -errno. */
static int ns_schema_version(struct mc_ns *ns)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(ns->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return ns_sqlite_err(ns, rc, "PRAGMA user_version");
	r = ns_step(ns, st);
	if (r == 1)
		r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return r;
}

static int ns_create_root(struct mc_ns *ns)
{
	static const char sql[] =
		"INSERT INTO inodes (" NS_COLS ") VALUES "
		"(?1, ?1, '', ?2, 0, 0, 0, 0, ?3, ?3, ?3)";
	sqlite3_stmt *st = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(ns->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return ns_sqlite_err(ns, rc, sql);
	bind_u64(st, 1, MC_NS_ROOT_INO);
	bind_u64(st, 2, S_IFDIR | 0755);
	bind_u64(st, 3, ns_now_ns());
	r = ns_step(ns, st);
	sqlite3_finalize(st);
	return r < 0 ? r : 0;
}

/* Create the schema and the root unless the store has them. */
static int ns_setup_schema(struct mc_ns *ns)
{
	char counters[160];
	int r, version;

	r = ns_exec_sql(ns, "BEGIN IMMEDIATE", "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	version = ns_schema_version(ns);
	if (version < 0) {
		r = version;
		goto out_end;
	}
	if (version > NS_SCHEMA_VERSION) {
		mc_log(MC_LOG_ERR,
		       "ns: store '%s' has schema version %d, newer than this program's %d: upgrade mooncake or move the store aside",
		       ns->path, version, NS_SCHEMA_VERSION);
		r = -EIO;
		goto out_end;
	}
	if (version == NS_SCHEMA_VERSION)
		goto out_end;
	/* migrations from older versions go here, one step each */
	r = ns_exec_sql(ns, ns_schema, "create the schema");
	if (r < 0)
		goto out_end;
	snprintf(counters, sizeof(counters),
		 "INSERT INTO counters VALUES (1, %d, 1, 0, 1, 0)",
		 MC_NS_FIRST_INO);
	r = ns_exec_sql(ns, counters, "create the counters");
	if (r < 0)
		goto out_end;
	r = ns_create_root(ns);
out_end:
	if (r == 0)
		return ns_exec_sql(ns, "COMMIT", "COMMIT");
	if (!sqlite3_get_autocommit(ns->db))
		sqlite3_exec(ns->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int ns_load_counters(struct mc_ns *ns)
{
	sqlite3_stmt *st = ns->st[ST_TOTALS_GET];
	int r = ns_step(ns, st);

	if (r == 1) {
		ns->ino_next = ns->ino_end = col_u64(st, 0);
		ns->page_next = ns->page_end = col_u64(st, 1);
		r = 0;
	} else if (r == 0) {
		mc_log(MC_LOG_ERR,
		       "ns: store '%s' has no counters row: it is damaged, move it aside to start empty",
		       ns->path);
		r = -EIO;
	}
	ns_reset(st);
	return r;
}

int mc_ns_open(struct mc_ns **nsp, const char *path)
{
	struct mc_ns *ns;
	int rc, r;

	*nsp = NULL;
	ns = calloc(1, sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	pthread_mutex_init(&ns->lock, NULL);
	ns->path = strdup(path);
	if (!ns->path) {
		r = -ENOMEM;
		goto out;
	}
	/* NOMUTEX: ns->lock already serialises every use of the connection */
	rc = sqlite3_open_v2(path, &ns->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		if (!ns->db) {
			r = -ENOMEM;
			goto out;
		}
		mc_log(MC_LOG_ERR,
		       "ns: cannot open store '%s': %s: check the directory exists and is writable",
		       path, sqlite3_errmsg(ns->db));
		r = -EIO;
		goto out;
	}
	sqlite3_busy_timeout(ns->db, 5000);
	/*
	 * Exclusive locking: one daemon owns the store (it holds the state
	 * directory lock), and it saves four fcntl() calls per transaction;
	 * set before WAL so the WAL index lives in heap memory.
	 */
	r = ns_exec_sql(ns, "PRAGMA locking_mode = EXCLUSIVE;"
			    "PRAGMA journal_mode = WAL;"
			    "PRAGMA synchronous = OFF;"
			    "PRAGMA cache_size = -65536;"
			    "PRAGMA temp_store = MEMORY;",
			"set WAL mode");
	if (r < 0)
		goto out;
	r = ns_setup_schema(ns);
	if (r < 0)
		goto out;
	for (int i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(ns->db, ns_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT, &ns->st[i],
					NULL);
		if (rc != SQLITE_OK) {
			r = ns_sqlite_err(ns, rc, ns_sql[i]);
			goto out;
		}
	}
	r = ns_load_counters(ns);
	if (r < 0)
		goto out;

	*nsp = ns;
	ns = NULL;
	r = 0;
out:
	mc_ns_close(ns);
	return r;
}

static int flush_touches_locked(struct mc_ns *ns);

void mc_ns_close(struct mc_ns *ns)
{
	if (!ns)
		return;
	if (ns->db && ns->st[ST_TOUCH])
		flush_touches_locked(ns);
	for (int i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(ns->st[i]);
	if (sqlite3_close(ns->db) != SQLITE_OK)
		mc_log(MC_LOG_WARNING,
		       "ns: cannot close store '%s' cleanly: %s: the next open recovers it from the WAL",
		       ns->path, sqlite3_errmsg(ns->db));
	free(ns->pins.ino);
	free(ns->pins.count);
	free(ns->path);
	pthread_mutex_destroy(&ns->lock);
	free(ns);
}

/* ---------------------------------------------------------------- queries */

int mc_ns_lookup(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_attr *out)
{
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&ns->lock);
	r = get_name_locked(ns, parent, name, out);
	/* a miss says why: no parent, or a parent that is a page */
	if (r == -ENOENT) {
		int d = dir_check_locked(ns, parent);

		if (d < 0)
			r = d;
	}
	pthread_mutex_unlock(&ns->lock);
	return r;
}

int mc_ns_getattr(struct mc_ns *ns, uint64_t ino, struct mc_ns_attr *out)
{
	int r;

	pthread_mutex_lock(&ns->lock);
	r = get_ino_locked(ns, ino, out, NULL, 0);
	pthread_mutex_unlock(&ns->lock);
	return r;
}

int mc_ns_name_of(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
		  char *name, size_t len)
{
	struct mc_ns_attr a;
	int r;

	if (len <= MC_NAME_MAX)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&ns->lock);
	r = get_ino_locked(ns, ino, &a, name, len);
	pthread_mutex_unlock(&ns->lock);
	if (r == 0)
		*parent = a.parent;
	return r;
}

int mc_ns_readdir(struct mc_ns *ns, uint64_t dir, uint64_t after,
		  int (*fn)(void *ctx, const char *name,
			    const struct mc_ns_attr *attr),
		  void *ctx)
{
	struct ns_dirent *batch;
	size_t want = NS_READDIR_FIRST;
	int r;

	batch = calloc(NS_READDIR_MAX, sizeof(*batch));
	if (!batch)
		return -ENOMEM;
	pthread_mutex_lock(&ns->lock);
	r = dir_check_locked(ns, dir);
	pthread_mutex_unlock(&ns->lock);
	if (r < 0)
		goto out_free;

	/*
	 * Copy a batch out under the lock, then call fn without it, so fn
	 * may call back into ns.  Entries made between batches show up if
	 * their inode is past the cursor, as readdir(3) allows.  Batches
	 * start small because most callers stop after one buffer's worth.
	 */
	for (;;) {
		sqlite3_stmt *st = ns->st[ST_READDIR];
		size_t n = 0;

		pthread_mutex_lock(&ns->lock);
		bind_u64(st, 1, dir);
		bind_u64(st, 2, after);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)want);
		while ((r = ns_step(ns, st)) == 1) {
			ns_row(st, &batch[n].attr, batch[n].name,
			       sizeof(batch[n].name));
			n++;
		}
		ns_reset(st);
		pthread_mutex_unlock(&ns->lock);
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
		if (want < NS_READDIR_MAX)
			want *= 2;
	}
	r = 0;
out_free:
	free(batch);
	return r;
}

/* ----------------------------------------------------------------- changes */

int mc_ns_mkdir(struct mc_ns *ns, uint64_t parent, const char *name,
		uint32_t mode, uint32_t uid, uint32_t gid,
		struct mc_ns_attr *out)
{
	struct mc_ns_attr a = { 0 };
	struct mc_ns_attr old;
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&ns->lock);
	/* outside the transaction: see reserve_locked() */
	r = reserve_locked(ns, &a.ino, NULL);
	if (r < 0)
		goto out_unlock;
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(ns, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, parent, name, &old);
	if (r == 0)
		r = -EEXIST;
	if (r != -ENOENT)
		goto out_end;
	a.parent = parent;
	a.mode = S_IFDIR | (mode & 07777);
	a.uid = uid;
	a.gid = gid;
	a.nlink = 2;
	a.mtime_ns = a.ctime_ns = a.atime_ns = ns_now_ns();
	r = insert_locked(ns, &a, name);
	if (r < 0)
		goto out_end;
	r = totals_add_locked(ns, 0, 1, 0);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	if (r == 0 && out)
		*out = a;
	return r;
}

int mc_ns_rmdir(struct mc_ns *ns, uint64_t parent, const char *name)
{
	struct mc_ns_attr a;
	int r = mc_name_check(name);

	if (r < 0)
		return r;
	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(ns, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, parent, name, &a);
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
	r = has_child_locked(ns, a.ino);
	if (r > 0)
		r = -ENOTEMPTY;
	if (r < 0)
		goto out_end;
	r = remove_locked(ns, &a);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	return r;
}

int mc_ns_commit(struct mc_ns *ns, const struct mc_ns_commit *c,
		 struct mc_ns_dropped *replaced)
{
	struct mc_ns_attr a = { 0 };
	struct mc_ns_attr old;
	bool dropped = false;
	int r;

	if (replaced)
		replaced->ino = 0;
	r = mc_name_check(c->name);
	if (r < 0)
		return r;
	/* page_id 0 marks a directory row; an inode 0 does not exist */
	if (c->ino == 0 || c->page_id == 0)
		return -EINVAL;
	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(ns, c->parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, c->parent, c->name, &old);
	if (r == 0) {
		if (S_ISDIR(old.mode)) {
			r = -EISDIR;
			goto out_end;
		}
		if (old.ino == c->ino) {
			r = -EEXIST;
			goto out_end;
		}
		r = remove_locked(ns, &old);
		if (r < 0)
			goto out_end;
		dropped = true;
	} else if (r != -ENOENT) {
		goto out_end;
	}
	a.ino = c->ino;
	a.parent = c->parent;
	a.mode = S_IFREG | (c->mode & 07777);
	a.uid = c->uid;
	a.gid = c->gid;
	a.size = c->size;
	a.page_id = c->page_id;
	/* a fresh page starts at the young end of the LRU */
	a.mtime_ns = a.ctime_ns = a.atime_ns = c->mtime_ns;
	/* a constraint here is the primary key: c->ino is already a row */
	r = insert_locked(ns, &a, c->name);
	if (r < 0)
		goto out_end;
	r = totals_add_locked(ns, 1, 0, (int64_t)a.size);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	if (r == 0 && dropped && replaced)
		ns_dropped_from(replaced, &old, c->name);
	return r;
}

int mc_ns_unlink(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_dropped *dropped)
{
	struct mc_ns_attr a;
	int r;

	if (dropped)
		dropped->ino = 0;
	r = mc_name_check(name);
	if (r < 0)
		return r;
	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(ns, parent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, parent, name, &a);
	if (r < 0)
		goto out_end;
	if (S_ISDIR(a.mode)) {
		r = -EISDIR;
		goto out_end;
	}
	r = remove_locked(ns, &a);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	if (r == 0 && dropped)
		ns_dropped_from(dropped, &a, name);
	return r;
}

/* -EINVAL when directory ino is dir or one of dir's ancestors. */
static int ancestor_check_locked(struct mc_ns *ns, uint64_t ino, uint64_t dir)
{
	struct mc_ns_attr a;
	int r;

	for (int depth = 0; depth < NS_MAX_DEPTH; depth++) {
		if (dir == ino)
			return -EINVAL;
		if (dir == MC_NS_ROOT_INO)
			return 0;
		r = get_ino_locked(ns, dir, &a, NULL, 0);
		if (r == -ENOENT)
			break;
		if (r < 0)
			return r;
		dir = a.parent;
	}
	mc_log(MC_LOG_ERR,
	       "ns: store '%s' has a broken parent chain at inode %" PRIu64
	       ": it is damaged, move it aside to start empty",
	       ns->path, dir);
	return -EIO;
}

int mc_ns_rename(struct mc_ns *ns, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags,
		 struct mc_ns_dropped *dropped)
{
	struct mc_ns_attr src, dst;
	bool replace = false;
	int r;

	if (dropped)
		dropped->ino = 0;
	r = mc_name_check(name);
	if (r == 0)
		r = mc_name_check(newname);
	if (r < 0)
		return r;
	if (flags & ~(unsigned)MC_NS_RENAME_NOREPLACE)
		return -EINVAL;
	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = dir_check_locked(ns, parent);
	if (r == 0)
		r = dir_check_locked(ns, newparent);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, parent, name, &src);
	if (r < 0)
		goto out_end;
	r = get_name_locked(ns, newparent, newname, &dst);
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
		r = 0;
		goto out_end;
	}
	if (S_ISDIR(src.mode)) {
		r = ancestor_check_locked(ns, src.ino, newparent);
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
			r = has_child_locked(ns, dst.ino);
			if (r > 0)
				r = -ENOTEMPTY;
			if (r < 0)
				goto out_end;
		}
		r = remove_locked(ns, &dst);
		if (r < 0)
			goto out_end;
	}
	{
		sqlite3_stmt *st = ns->st[ST_MOVE];

		bind_u64(st, 1, src.ino);
		bind_u64(st, 2, newparent);
		sqlite3_bind_text(st, 3, newname, -1, SQLITE_STATIC);
		bind_u64(st, 4, ns_now_ns());
		r = ns_exec_locked(ns, st);
	}
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	if (r == 0 && replace && dst.ino != src.ino && dropped)
		ns_dropped_from(dropped, &dst, newname);
	return r;
}

int mc_ns_setattr(struct mc_ns *ns, uint64_t ino, unsigned flags,
		  const struct mc_ns_attr *in, struct mc_ns_attr *out)
{
	sqlite3_stmt *st = ns->st[ST_SETATTR];
	struct mc_ns_attr a;
	int r;

	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = get_ino_locked(ns, ino, &a, NULL, 0);
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
	a.ctime_ns = ns_now_ns();
	bind_u64(st, 1, a.ino);
	bind_u64(st, 2, a.mode);
	bind_u64(st, 3, a.uid);
	bind_u64(st, 4, a.gid);
	bind_u64(st, 5, a.mtime_ns);
	bind_u64(st, 6, a.ctime_ns);
	bind_u64(st, 7, a.atime_ns);
	r = ns_exec_locked(ns, st);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	if (r == 0 && out)
		*out = a;
	return r;
}

static int flush_touches_locked(struct mc_ns *ns)
{
	sqlite3_stmt *st = ns->st[ST_TOUCH];
	int r;

	if (ns->ntouches == 0)
		return 0;
	r = tx_begin_locked(ns);
	for (size_t i = 0; r == 0 && i < ns->ntouches; i++) {
		bind_u64(st, 1, ns->touches[i].ino);
		bind_u64(st, 2, ns->touches[i].atime_ns);
		r = ns_exec_locked(ns, st);	/* a page gone since: no row */
	}
	r = tx_end_locked(ns, r);
	ns->ntouches = 0;	/* on failure the LRU order is only older */
	return r;
}

int mc_ns_touch(struct mc_ns *ns, uint64_t ino, uint64_t now_ns)
{
	int r = 0;

	pthread_mutex_lock(&ns->lock);
	if (ns->ntouches == NS_TOUCH_BATCH)
		r = flush_touches_locked(ns);
	ns->touches[ns->ntouches].ino = ino;
	ns->touches[ns->ntouches].atime_ns = now_ns;
	ns->ntouches++;
	pthread_mutex_unlock(&ns->lock);
	return r;
}

int mc_ns_flush_touches(struct mc_ns *ns)
{
	int r;

	pthread_mutex_lock(&ns->lock);
	r = flush_touches_locked(ns);
	pthread_mutex_unlock(&ns->lock);
	return r;
}

int64_t mc_ns_forget_pages(struct mc_ns *ns)
{
	int64_t n = 0;
	int r;

	pthread_mutex_lock(&ns->lock);
	r = tx_begin_locked(ns);
	if (r < 0)
		goto out_unlock;
	r = ns_exec_locked(ns, ns->st[ST_FORGET]);
	if (r < 0)
		goto out_end;
	n = sqlite3_changes64(ns->db);
	r = ns_exec_locked(ns, ns->st[ST_FORGET_TOTALS]);
out_end:
	r = tx_end_locked(ns, r);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
	return r < 0 ? r : n;
}

/* ------------------------------------------------------------ pins, LRU */

void mc_ns_pin(struct mc_ns *ns, uint64_t ino)
{
	struct ns_pins *p = &ns->pins;
	size_t i;

	if (ino == 0)
		return;
	pthread_mutex_lock(&ns->lock);
	/* keep the table at most half full so probes stay short */
	if ((p->used + 1) * 2 > p->cap && pins_grow(p) < 0) {
		mc_log(MC_LOG_ERR,
		       "ns: cannot pin inode %" PRIu64
		       " (out of memory): it may be evicted while open, free some memory",
		       ino);
		goto out_unlock;
	}
	i = pins_slot(p, ino);
	if (p->ino[i] == 0) {
		p->ino[i] = ino;
		p->used++;
	}
	p->count[i]++;
out_unlock:
	pthread_mutex_unlock(&ns->lock);
}

void mc_ns_unpin(struct mc_ns *ns, uint64_t ino)
{
	struct ns_pins *p = &ns->pins;
	size_t i;

	pthread_mutex_lock(&ns->lock);
	if (ino == 0 || !pins_has(p, ino)) {
		mc_log_ratelimited(MC_LOG_WARNING,
				   "ns: unpin of inode %" PRIu64
				   " that is not pinned: a caller unpinned twice, report a bug",
				   ino);
		goto out_unlock;
	}
	i = pins_slot(p, ino);
	if (--p->count[i] == 0)
		pins_delete(p, i);
out_unlock:
	pthread_mutex_unlock(&ns->lock);
}

/* What one eviction batch has chosen so far. */
struct ns_evict_plan {
	struct ns_victim *v;	/* NS_EVICT_BATCH entries */
	int n;
	uint64_t planned;	/* footprint of v[0..n) */
	uint64_t want;
	uint64_t unit;
	uint64_t cursor[2];	/* (atime_ns, ino) of the last row read */
};

/*
 * Read candidates from st (bound, and reset here) into the plan, oldest
 * first, until it holds enough.  Pinned rows still move the cursor, so a
 * run of them is read once, not once per batch.  Returns rows read.
 */
static int evict_scan_locked(struct mc_ns *ns, sqlite3_stmt *st,
			     struct ns_evict_plan *p)
{
	int rows = 0, r = 0;

	while (p->planned < p->want && p->n < NS_EVICT_BATCH &&
	       (r = ns_step(ns, st)) == 1) {
		struct ns_victim *v = &p->v[p->n];
		struct mc_ns_attr a;
		char name[MC_NAME_MAX + 1];

		rows++;
		ns_row(st, &a, name, sizeof(name));
		p->cursor[0] = a.atime_ns;
		p->cursor[1] = a.ino;
		if (pins_has(&ns->pins, a.ino))
			continue;
		ns_dropped_from(&v->d, &a, name);
		v->footprint = (a.size + p->unit - 1) / p->unit * p->unit;
		p->planned += v->footprint;
		p->n++;
	}
	ns_reset(st);
	return r < 0 ? r : rows;
}

/*
 * Choose up to NS_EVICT_BATCH unpinned pages after the cursor and delete
 * them in one transaction.  Returns the rows read (0: no candidate left)
 * or -errno; the victims are p->v[0..p->n).
 */
static int evict_batch_locked(struct mc_ns *ns, struct ns_evict_plan *p)
{
	sqlite3_stmt *same = ns->st[ST_LRU_SAME];
	sqlite3_stmt *next = ns->st[ST_LRU_NEXT];
	int rows, r;

	p->n = 0;
	p->planned = 0;
	bind_u64(same, 1, p->cursor[0]);
	bind_u64(same, 2, p->cursor[1]);
	sqlite3_bind_int(same, 3, NS_EVICT_BATCH);
	rows = evict_scan_locked(ns, same, p);
	if (rows < 0)
		return rows;
	/* the ties ran out before the plan filled: go on to later times */
	if (rows < NS_EVICT_BATCH && p->planned < p->want &&
	    p->n < NS_EVICT_BATCH) {
		bind_u64(next, 1, p->cursor[0]);
		sqlite3_bind_int(next, 2, NS_EVICT_BATCH);
		r = evict_scan_locked(ns, next, p);
		if (r < 0)
			return r;
		rows += r;
	}
	if (p->n == 0)
		return rows;

	r = tx_begin_locked(ns);
	if (r < 0)
		return r;
	for (int i = 0; i < p->n && r == 0; i++) {
		r = delete_locked(ns, p->v[i].d.ino);
		if (r == 0)
			r = totals_add_locked(ns, -1, 0,
					      -(int64_t)p->v[i].d.size);
	}
	r = tx_end_locked(ns, r);
	if (r < 0)
		return r;
	for (int i = 0; i < p->n; i++) {
		ns->evictions++;
		ns->evicted_bytes += p->v[i].d.size;
	}
	return rows;
}

int64_t mc_ns_evict(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
		    void (*fn)(void *ctx, const struct mc_ns_dropped *d),
		    void *ctx)
{
	/* atimes are stored as int64: start below every one of them */
	struct ns_evict_plan p = {
		.unit = unit ? unit : 1,
		.cursor = { (uint64_t)INT64_MIN, 0 },
	};
	uint64_t freed = 0;
	int r = 0;

	p.v = calloc(NS_EVICT_BATCH, sizeof(*p.v));
	if (!p.v)
		return -ENOMEM;
	pthread_mutex_lock(&ns->lock);
	flush_touches_locked(ns);	/* the LRU order must be current */
	pthread_mutex_unlock(&ns->lock);
	while (freed < bytes) {
		p.want = bytes - freed;
		pthread_mutex_lock(&ns->lock);
		r = evict_batch_locked(ns, &p);
		pthread_mutex_unlock(&ns->lock);
		if (r <= 0)
			break;
		/* the rows are gone: now the caller may free the memory */
		for (int i = 0; i < p.n; i++) {
			if (fn)
				fn(ctx, &p.v[i].d);
			freed += p.v[i].footprint;
		}
	}
	free(p.v);
	return r < 0 ? r : (int64_t)freed;
}

void mc_ns_get_stats(struct mc_ns *ns, struct mc_ns_stats *out)
{
	sqlite3_stmt *st;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ns->lock);
	st = ns->st[ST_TOTALS_GET];
	/* an error was logged by the adapter; the totals read as zero */
	if (ns_step(ns, st) == 1) {
		out->pages = col_u64(st, 2);
		out->dirs = col_u64(st, 3);
		out->bytes = col_u64(st, 4);
	}
	ns_reset(st);
	out->evictions = ns->evictions;
	out->evicted_bytes = ns->evicted_bytes;
	pthread_mutex_unlock(&ns->lock);
}
