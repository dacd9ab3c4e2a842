/*
 * inode_table.h - the inodes this host holds open or is writing.
 *
 * The namespace store knows committed pages only; what exists between
 * create and last close, and which committed pages have open files here
 * (their shared backing file and passthrough id), lives in this table.
 * One mutex guards it and its condition variable wakes lookups that wait
 * for a closing writer to commit.
 */
#ifndef MC_INODE_TABLE_H
#define MC_INODE_TABLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ns.h"

enum mc_inode_state {
	MC_INODE_OPEN,		/* a committed page with open files */
	MC_INODE_WRITING,	/* being written: invisible to others */
	MC_INODE_COMMITTING,	/* last close seen, commit under way */
};

struct mc_inode {
	uint64_t ino;		/* for writes: the ino it will commit as */
	enum mc_inode_state state;
	unsigned nopen;		/* open files (handles) */
	int fd;			/* backing file shared by every handle */
	int32_t backing_id;	/* passthrough id for fd, 0 without */
	struct mc_ns_attr attr;	/* committed attrs, or what the write sets */
	bool dead;		/* unlinked or replaced while open */
	/* writes only: */
	char *name;		/* where it commits (parent in attr.parent) */
	bool flushed;		/* a close came: the writer is finishing */
	int error;		/* -errno that dooms the write, 0 if fine */
	uint64_t replaces;	/* O_TRUNC rewrite of this committed ino */
	uint64_t lent;		/* reserve memory lent to this write */
	pid_t writer_pid;	/* the thread that started it: its process
				 * sees the page before the commit */
	/* committed pages only: the one handle opened to rewrite it */
	void *rewriter;
	struct mc_inode *next;	/* hash chain, protected by table lock */
	struct mc_inode *wnext;	/* list of writes, protected by table lock */
	struct mc_inode **wprevp;
	struct mc_inode *idle_next;	/* idle list, protected by table lock */
	struct mc_inode *idle_prev;
	bool idle;
};

struct mc_inode_table;

int mc_inode_table_new(struct mc_inode_table **tabp);
void mc_inode_table_free(struct mc_inode_table *tab);

void mc_inode_table_lock(struct mc_inode_table *tab);
void mc_inode_table_unlock(struct mc_inode_table *tab);

/* Find by ino: NULL when this host has no open file on it. */
struct mc_inode *mc_inode_find_locked(struct mc_inode_table *tab, uint64_t ino);

/*
 * Find a write in progress that will commit as (parent, name) and whose
 * writer is closing (flushed or committing): NULL otherwise.
 */
struct mc_inode *mc_inode_find_closing_locked(struct mc_inode_table *tab,
					      uint64_t parent,
					      const char *name);

/* Find any write in progress that will commit as (parent, name). */
struct mc_inode *mc_inode_find_write_locked(struct mc_inode_table *tab,
					    uint64_t parent, const char *name);

/* Add a zeroed inode for ino (fd -1): NULL on ENOMEM. */
struct mc_inode *mc_inode_add_locked(struct mc_inode_table *tab, uint64_t ino);

/*
 * Make in a write that will commit as (parent, name): 0 or -ENOMEM.  Lookups
 * of that name find it through mc_inode_find_closing_locked().
 */
int mc_inode_set_write_locked(struct mc_inode_table *tab, struct mc_inode *in,
			      uint64_t parent, const char *name);

/*
 * Idle inodes: committed pages nobody has open any more whose backing file
 * stays registered, so that reopening a hot page costs no open(2) or
 * passthrough ioctl.  mc_inode_idle_locked() parks in (nopen 0) and returns
 * the oldest idle inode when more than `max` are parked, already removed
 * from the table, for the caller to close and free (NULL otherwise).
 * mc_inode_unidle_locked() takes in off the list when it is opened again.
 */
struct mc_inode *mc_inode_idle_locked(struct mc_inode_table *tab,
				      struct mc_inode *in, unsigned max);
void mc_inode_unidle_locked(struct mc_inode_table *tab, struct mc_inode *in);

/*
 * A write became a committed page: off the list of writes (waiting lookups
 * are woken), name dropped, state MC_INODE_OPEN.
 */
void mc_inode_end_write_locked(struct mc_inode_table *tab, struct mc_inode *in);

/* Unlink from the table and wake waiters; the caller frees it. */
void mc_inode_remove_locked(struct mc_inode_table *tab, struct mc_inode *in);
void mc_inode_free(struct mc_inode *in);

/* Wake the waiters of mc_inode_wait_locked(): an open went away. */
void mc_inode_wake_locked(struct mc_inode_table *tab);

/* Wait for a broadcast until deadline (CLOCK_MONOTONIC ns): 0 or -ETIMEDOUT. */
int mc_inode_wait_locked(struct mc_inode_table *tab, uint64_t deadline_ns);

/* Call fn for every inode (lock held): status and tests. */
void mc_inode_foreach_locked(struct mc_inode_table *tab,
			     void (*fn)(void *ctx, const struct mc_inode *in),
			     void *ctx);

#endif
