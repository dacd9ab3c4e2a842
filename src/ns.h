/*
 * ns.h - the namespace and placement store: the master's logic.
 *
 * It holds only committed state: directories and committed pages, each page
 * with the id of the pool memory that holds its bytes.  Files being written
 * live in the filesystem layer until their last close, then arrive here in
 * one mc_ns_commit().  Every call is one short transaction under the store's
 * own lock, so callers on many threads need no lock of their own.  Pages
 * are never freed here: calls that drop a page hand its id back to the
 * caller (struct mc_ns_dropped), who frees the memory.
 *
 * This header is an interface with two implementations: mc_ns_open() runs
 * the store (src/store.c, sqlite) in-process for --standalone, and
 * mc_ns_connect() (src/ns_client.c) sends every call to mooncake_master.
 * The filesystem layer sees no difference except the listener, through
 * which a cluster tells it about pages dropped elsewhere.
 */
#ifndef MC_NS_H
#define MC_NS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MC_NS_ROOT_INO 1
/* Inode numbers below this are reserved for virtual files (/.mooncake). */
#define MC_NS_FIRST_INO 16

struct mc_ns;

struct mc_ns_attr {
	uint64_t ino;
	uint64_t parent;
	uint32_t mode;		/* S_IFDIR or S_IFREG with permission bits */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;		/* 2 for directories (not counting subdirs), 1 for pages */
	uint64_t size;		/* bytes; 0 for directories */
	uint64_t page_id;	/* pool memory holding the bytes; 0 for directories */
	uint64_t mtime_ns;	/* content time (commit) */
	uint64_t ctime_ns;	/* attribute change time */
	uint64_t atime_ns;	/* last open for reading: the LRU clock */
};

/* Copies of one page a cluster may hold (replica_num is at most this). */
#define MC_NS_MAX_REPLICAS 8
/* The one segment of --standalone: every page lives there. */
#define MC_NS_LOCAL_SEGMENT 1

enum mc_ns_dropped_flags {
	/*
	 * Only the caller's copy went (eviction of a cached or replicated
	 * copy): the page itself lives on in other segments.
	 */
	MC_NS_DROPPED_COPY = 1 << 0,
};

/* What a call removed from the namespace, for the caller to free. */
struct mc_ns_dropped {
	uint64_t ino;		/* 0 when nothing was dropped */
	uint64_t parent;
	uint64_t page_id;	/* 0 for directories */
	uint64_t size;
	struct mc_ns_attr attr;	/* its attributes when it was dropped */
	char name[256];
	uint32_t flags;		/* enum mc_ns_dropped_flags */
	/*
	 * Segments that held a copy (filled by the store for the master,
	 * never sent on the wire).
	 */
	uint8_t nsegments;
	uint64_t segments[MC_NS_MAX_REPLICAS];
};

struct mc_ns_stats {
	uint64_t pages;		/* committed pages */
	uint64_t dirs;		/* directories, root included */
	uint64_t bytes;		/* sum of committed page sizes */
	uint64_t evictions;	/* pages evicted since open */
	uint64_t evicted_bytes;
};

struct mc_ns_commit {
	uint64_t parent;
	const char *name;
	uint64_t ino;		/* from mc_ns_reserve() */
	uint64_t page_id;	/* from mc_ns_reserve() */
	uint32_t mode;		/* S_IFREG | permissions */
	uint32_t uid;
	uint32_t gid;
	uint64_t size;
	uint64_t mtime_ns;
	uint32_t crc32c;	/* of the size bytes; checked by remote readers */
};

/* Where a page's bytes can be fetched from. */
struct mc_ns_replica {
	uint64_t segment_id;
	char address[46];	/* data server, IP as text */
	uint16_t port;
};

struct mc_ns_replicas {
	uint64_t size;		/* as committed */
	uint32_t crc32c;	/* as committed */
	unsigned count;		/* 0..MC_NS_MAX_REPLICAS, live segments only */
	struct mc_ns_replica r[MC_NS_MAX_REPLICAS];
};

/*
 * What a cluster tells the filesystem on its own initiative.  Both are
 * called on the client's receiving thread: they must not block on the
 * master (queue the work instead).
 */
struct mc_ns_listener {
	/* a page (or this host's copy of it) left the namespace elsewhere */
	void (*dropped)(void *ctx, const struct mc_ns_dropped *d);
	/* the master wants a copy of page_id here (replica_num) */
	void (*replicate)(void *ctx, uint64_t page_id);
	void *ctx;
};

/*
 * Open (creating if needed) the store at path (":memory:" for tests), in WAL
 * mode.  The root directory exists afterwards.  Returns 0, -EIO with the
 * sqlite message logged, -ENOMEM.  Close with mc_ns_close().
 */
int mc_ns_open(struct mc_ns **nsp, const char *path);
void mc_ns_close(struct mc_ns *ns);

/*
 * Drop every page (directories stay): used when the pool memory was lost
 * (first start after a reboot).  Returns the number dropped or -EIO.
 */
int64_t mc_ns_forget_pages(struct mc_ns *ns);

/* Allocate a fresh inode number and page id, never handed out before. */
int mc_ns_reserve(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id);

/* 0, -ENOENT, -ENOTDIR (parent is a page), -ENAMETOOLONG, -EINVAL (name). */
int mc_ns_lookup(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_attr *out);

/* 0 or -ENOENT. */
int mc_ns_getattr(struct mc_ns *ns, uint64_t ino, struct mc_ns_attr *out);

/* 0, -EEXIST, -ENOENT (no parent), -ENOTDIR, -ENAMETOOLONG, -EINVAL. */
int mc_ns_mkdir(struct mc_ns *ns, uint64_t parent, const char *name,
		uint32_t mode, uint32_t uid, uint32_t gid,
		struct mc_ns_attr *out);

/* 0, -ENOENT, -ENOTDIR, -ENOTEMPTY. */
int mc_ns_rmdir(struct mc_ns *ns, uint64_t parent, const char *name);

/*
 * Make a finished page visible at (parent, name), atomically replacing a
 * page already there (reported in *replaced).  -ENOENT when the parent is
 * gone, -EISDIR when a directory holds the name, -ENOTDIR, -EEXIST when
 * c->ino is already committed.
 */
int mc_ns_commit(struct mc_ns *ns, const struct mc_ns_commit *c,
		 struct mc_ns_dropped *replaced);

/* Remove a page: 0, -ENOENT, -EISDIR.  The page is reported in *dropped. */
int mc_ns_unlink(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_dropped *dropped);

enum mc_ns_rename_flags {
	MC_NS_RENAME_NOREPLACE = 1 << 0,	/* -EEXIST when the target exists */
};

/*
 * rename(2) semantics for pages and directories: replaces a target page
 * atomically (reported in *dropped), or an empty directory with a
 * directory.  -ENOENT, -EEXIST, -ENOTEMPTY, -EISDIR, -ENOTDIR, -EINVAL
 * (moving a directory under itself).
 */
int mc_ns_rename(struct mc_ns *ns, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags,
		 struct mc_ns_dropped *dropped);

enum mc_ns_setattr_flags {
	MC_NS_SET_MODE = 1 << 0,
	MC_NS_SET_UID = 1 << 1,
	MC_NS_SET_GID = 1 << 2,
	MC_NS_SET_MTIME = 1 << 3,
	MC_NS_SET_ATIME = 1 << 4,
};

/* Change attributes named by flags (permission bits only for mode). */
int mc_ns_setattr(struct mc_ns *ns, uint64_t ino, unsigned flags,
		  const struct mc_ns_attr *in, struct mc_ns_attr *out);

/*
 * Record an open for reading: moves the page to the LRU's young end.  Kept
 * in memory and written in batches (always before an eviction), so a
 * touch of a page removed since is simply dropped.  0 or -EIO.
 */
int mc_ns_touch(struct mc_ns *ns, uint64_t ino, uint64_t now_ns);

/* Write the touches held in memory now (the daemon does it periodically). */
int mc_ns_flush_touches(struct mc_ns *ns);

/*
 * List directory dir in inode order starting after inode number `after`
 * (0 for the start).  fn returns 0 to go on, anything else to stop (that
 * value is returned).  Returns 0 at the end, -ENOENT, -ENOTDIR.
 */
int mc_ns_readdir(struct mc_ns *ns, uint64_t dir, uint64_t after,
		  int (*fn)(void *ctx, const char *name,
			    const struct mc_ns_attr *attr),
		  void *ctx);

/* Pin counts: a pinned page is never evicted.  Pins live in memory only. */
void mc_ns_pin(struct mc_ns *ns, uint64_t ino);
void mc_ns_unpin(struct mc_ns *ns, uint64_t ino);

/*
 * Make room in this host's pool: drop least-recently-opened copies held
 * here that no host holds open, until at least `bytes` of footprint is
 * freed, where a page's footprint is its size rounded up to `unit` bytes.
 * A page whose last copy goes leaves the namespace (evicted); one with
 * copies elsewhere only loses this one (MC_NS_DROPPED_COPY).  For each, fn
 * is called after the store let go of it (fn frees the memory).  Returns
 * bytes of footprint freed (may be less than asked when everything left is
 * pinned), -EIO, or -EHOSTDOWN without a master.
 */
int64_t mc_ns_evict(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
		    void (*fn)(void *ctx, const struct mc_ns_dropped *d),
		    void *ctx);

void mc_ns_get_stats(struct mc_ns *ns, struct mc_ns_stats *out);

/*
 * The name and parent of a committed inode (for an O_TRUNC rewrite, which
 * the kernel sends by inode): 0, -ENOENT, -ENAMETOOLONG when len is short.
 */
int mc_ns_name_of(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
		  char *name, size_t len);

/*
 * Where page_id's bytes are: size, checksum and the live segments holding
 * a copy.  0, -ENOENT (no such page, or no live copy).
 */
int mc_ns_replicas(struct mc_ns *ns, uint64_t page_id,
		   struct mc_ns_replicas *out);

/*
 * This host now holds a copy of page_id (fetched and checked): the master
 * may send readers here and evicts it like any page.  0, -ENOENT when the
 * page left the namespace meanwhile (free the copy).
 */
int mc_ns_add_replica(struct mc_ns *ns, uint64_t page_id);

/* The segment this host's pool is (MC_NS_LOCAL_SEGMENT when standalone). */
uint64_t mc_ns_segment(struct mc_ns *ns);

/* True when the calls go to a master (pages may live on other hosts). */
bool mc_ns_is_cluster(struct mc_ns *ns);

/* Set once, before the first call (the filesystem's constructor does). */
void mc_ns_set_listener(struct mc_ns *ns, const struct mc_ns_listener *l);

/* ---- for implementations ------------------------------------------------ */

/* One implementation's entry points; struct mc_ns is their common head. */
struct mc_ns_ops {
	void (*close)(struct mc_ns *ns);
	int64_t (*forget_pages)(struct mc_ns *ns);
	int (*reserve)(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id);
	int (*lookup)(struct mc_ns *ns, uint64_t parent, const char *name,
		      struct mc_ns_attr *out);
	int (*getattr)(struct mc_ns *ns, uint64_t ino, struct mc_ns_attr *out);
	int (*mkdir)(struct mc_ns *ns, uint64_t parent, const char *name,
		     uint32_t mode, uint32_t uid, uint32_t gid,
		     struct mc_ns_attr *out);
	int (*rmdir)(struct mc_ns *ns, uint64_t parent, const char *name);
	int (*commit)(struct mc_ns *ns, const struct mc_ns_commit *c,
		      struct mc_ns_dropped *replaced);
	int (*unlink)(struct mc_ns *ns, uint64_t parent, const char *name,
		      struct mc_ns_dropped *dropped);
	int (*rename)(struct mc_ns *ns, uint64_t parent, const char *name,
		      uint64_t newparent, const char *newname, unsigned flags,
		      struct mc_ns_dropped *dropped);
	int (*setattr)(struct mc_ns *ns, uint64_t ino, unsigned flags,
		       const struct mc_ns_attr *in, struct mc_ns_attr *out);
	int (*touch)(struct mc_ns *ns, uint64_t ino, uint64_t now_ns);
	int (*flush_touches)(struct mc_ns *ns);
	int (*readdir)(struct mc_ns *ns, uint64_t dir, uint64_t after,
		       int (*fn)(void *ctx, const char *name,
				 const struct mc_ns_attr *attr),
		       void *ctx);
	void (*pin)(struct mc_ns *ns, uint64_t ino);
	void (*unpin)(struct mc_ns *ns, uint64_t ino);
	int64_t (*evict)(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
			 void (*fn)(void *ctx, const struct mc_ns_dropped *d),
			 void *ctx);
	void (*get_stats)(struct mc_ns *ns, struct mc_ns_stats *out);
	int (*name_of)(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
		       char *name, size_t len);
	int (*replicas)(struct mc_ns *ns, uint64_t page_id,
			struct mc_ns_replicas *out);
	int (*add_replica)(struct mc_ns *ns, uint64_t page_id);
};

struct mc_ns {
	const struct mc_ns_ops *ops;
	uint64_t segment;		/* this host's pool */
	bool cluster;
	struct mc_ns_listener listener;	/* zeroed until set */
};

#endif
