/*
 * ns.c - the namespace interface: every mc_ns_*() call goes through the
 * implementation's ops table, and --standalone's implementation, which
 * runs the store (src/store.c) in this process with every page in the one
 * local segment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ns.h"
#include "store.h"
#include "banned.h"

/* ---- the interface ------------------------------------------------------ */

void mc_ns_close(struct mc_ns *ns)
{
	if (ns)
		ns->ops->close(ns);
}

int64_t mc_ns_forget_pages(struct mc_ns *ns)
{
	return ns->ops->forget_pages(ns);
}

int mc_ns_reserve(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id)
{
	return ns->ops->reserve(ns, ino, page_id);
}

int mc_ns_lookup(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_attr *out)
{
	return ns->ops->lookup(ns, parent, name, out);
}

int mc_ns_getattr(struct mc_ns *ns, uint64_t ino, struct mc_ns_attr *out)
{
	return ns->ops->getattr(ns, ino, out);
}

int mc_ns_mkdir(struct mc_ns *ns, uint64_t parent, const char *name,
		uint32_t mode, uint32_t uid, uint32_t gid,
		struct mc_ns_attr *out)
{
	return ns->ops->mkdir(ns, parent, name, mode, uid, gid, out);
}

int mc_ns_rmdir(struct mc_ns *ns, uint64_t parent, const char *name)
{
	return ns->ops->rmdir(ns, parent, name);
}

int mc_ns_commit(struct mc_ns *ns, const struct mc_ns_commit *c,
		 struct mc_ns_dropped *replaced)
{
	return ns->ops->commit(ns, c, replaced);
}

int mc_ns_unlink(struct mc_ns *ns, uint64_t parent, const char *name,
		 struct mc_ns_dropped *dropped)
{
	return ns->ops->unlink(ns, parent, name, dropped);
}

int mc_ns_rename(struct mc_ns *ns, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags,
		 struct mc_ns_dropped *dropped)
{
	return ns->ops->rename(ns, parent, name, newparent, newname, flags,
			       dropped);
}

int mc_ns_setattr(struct mc_ns *ns, uint64_t ino, unsigned flags,
		  const struct mc_ns_attr *in, struct mc_ns_attr *out)
{
	return ns->ops->setattr(ns, ino, flags, in, out);
}

int mc_ns_touch(struct mc_ns *ns, uint64_t ino, uint64_t now_ns)
{
	return ns->ops->touch(ns, ino, now_ns);
}

int mc_ns_flush_touches(struct mc_ns *ns)
{
	return ns->ops->flush_touches(ns);
}

int mc_ns_readdir(struct mc_ns *ns, uint64_t dir, uint64_t after,
		  int (*fn)(void *ctx, const char *name,
			    const struct mc_ns_attr *attr),
		  void *ctx)
{
	return ns->ops->readdir(ns, dir, after, fn, ctx);
}

void mc_ns_pin(struct mc_ns *ns, uint64_t ino)
{
	ns->ops->pin(ns, ino);
}

void mc_ns_unpin(struct mc_ns *ns, uint64_t ino)
{
	ns->ops->unpin(ns, ino);
}

int64_t mc_ns_evict(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
		    void (*fn)(void *ctx, const struct mc_ns_dropped *d),
		    void *ctx)
{
	return ns->ops->evict(ns, bytes, unit, fn, ctx);
}

void mc_ns_get_stats(struct mc_ns *ns, struct mc_ns_stats *out)
{
	ns->ops->get_stats(ns, out);
}

int mc_ns_name_of(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
		  char *name, size_t len)
{
	return ns->ops->name_of(ns, ino, parent, name, len);
}

int mc_ns_replicas(struct mc_ns *ns, uint64_t page_id,
		   struct mc_ns_replicas *out)
{
	return ns->ops->replicas(ns, page_id, out);
}

int mc_ns_add_replica(struct mc_ns *ns, uint64_t page_id)
{
	return ns->ops->add_replica(ns, page_id);
}

uint64_t mc_ns_segment(struct mc_ns *ns)
{
	return ns->segment;
}

bool mc_ns_is_cluster(struct mc_ns *ns)
{
	return ns->cluster;
}

void mc_ns_set_listener(struct mc_ns *ns, const struct mc_ns_listener *l)
{
	ns->listener = *l;
}

/* ---- --standalone: the store in this process ---------------------------- */

struct ns_local {
	struct mc_ns ns;	/* first: the interface's head */
	struct mc_store *st;
};

static struct mc_store *st_of(struct mc_ns *ns)
{
	return ((struct ns_local *)ns)->st;
}

static void local_close(struct mc_ns *ns)
{
	mc_store_close(st_of(ns));
	free(ns);
}

static int64_t local_forget_pages(struct mc_ns *ns)
{
	return mc_store_forget_pages(st_of(ns));
}

static int local_reserve(struct mc_ns *ns, uint64_t *ino, uint64_t *page_id)
{
	return mc_store_reserve(st_of(ns), ino, page_id);
}

static int local_lookup(struct mc_ns *ns, uint64_t parent, const char *name,
			struct mc_ns_attr *out)
{
	return mc_store_lookup(st_of(ns), parent, name, out);
}

static int local_getattr(struct mc_ns *ns, uint64_t ino,
			 struct mc_ns_attr *out)
{
	return mc_store_getattr(st_of(ns), ino, out);
}

static int local_mkdir(struct mc_ns *ns, uint64_t parent, const char *name,
		       uint32_t mode, uint32_t uid, uint32_t gid,
		       struct mc_ns_attr *out)
{
	return mc_store_mkdir(st_of(ns), parent, name, mode, uid, gid, out);
}

static int local_rmdir(struct mc_ns *ns, uint64_t parent, const char *name)
{
	return mc_store_rmdir(st_of(ns), parent, name);
}

static int local_commit(struct mc_ns *ns, const struct mc_ns_commit *c,
			struct mc_ns_dropped *replaced)
{
	return mc_store_commit(st_of(ns), c, MC_NS_LOCAL_SEGMENT, replaced);
}

static int local_unlink(struct mc_ns *ns, uint64_t parent, const char *name,
			struct mc_ns_dropped *dropped)
{
	return mc_store_unlink(st_of(ns), parent, name, dropped);
}

static int local_rename(struct mc_ns *ns, uint64_t parent, const char *name,
			uint64_t newparent, const char *newname,
			unsigned flags, struct mc_ns_dropped *dropped)
{
	return mc_store_rename(st_of(ns), parent, name, newparent, newname,
			       flags, dropped);
}

static int local_setattr(struct mc_ns *ns, uint64_t ino, unsigned flags,
			 const struct mc_ns_attr *in, struct mc_ns_attr *out)
{
	return mc_store_setattr(st_of(ns), ino, flags, in, out);
}

static int local_touch(struct mc_ns *ns, uint64_t ino, uint64_t now_ns)
{
	return mc_store_touch(st_of(ns), ino, now_ns);
}

static int local_flush_touches(struct mc_ns *ns)
{
	return mc_store_flush_touches(st_of(ns));
}

static int local_readdir(struct mc_ns *ns, uint64_t dir, uint64_t after,
			 int (*fn)(void *ctx, const char *name,
				   const struct mc_ns_attr *attr),
			 void *ctx)
{
	return mc_store_readdir(st_of(ns), dir, after, fn, ctx);
}

static void local_pin(struct mc_ns *ns, uint64_t ino)
{
	mc_store_pin(st_of(ns), ino);
}

static void local_unpin(struct mc_ns *ns, uint64_t ino)
{
	mc_store_unpin(st_of(ns), ino);
}

static int64_t local_evict(struct mc_ns *ns, uint64_t bytes, uint64_t unit,
			   void (*fn)(void *ctx, const struct mc_ns_dropped *d),
			   void *ctx)
{
	return mc_store_evict(st_of(ns), MC_NS_LOCAL_SEGMENT, bytes, unit, fn,
			      ctx);
}

static void local_get_stats(struct mc_ns *ns, struct mc_ns_stats *out)
{
	mc_store_get_stats(st_of(ns), out);
}

static int local_name_of(struct mc_ns *ns, uint64_t ino, uint64_t *parent,
			 char *name, size_t len)
{
	return mc_store_name_of(st_of(ns), ino, parent, name, len);
}

/* One host: a page's only copy is here, so there is nowhere to fetch from. */
static int local_replicas(struct mc_ns *ns, uint64_t page_id,
			  struct mc_ns_replicas *out)
{
	uint64_t seg[MC_NS_MAX_REPLICAS];
	unsigned n = 0;
	int r;

	memset(out, 0, sizeof(*out));
	r = mc_store_replicas(st_of(ns), page_id, &out->size, &out->crc32c,
			      seg, MC_NS_MAX_REPLICAS, &n);
	if (r < 0)
		return r;
	for (unsigned i = 0; i < n; i++)
		out->r[i].segment_id = seg[i];
	out->count = n;
	return 0;
}

static int local_add_replica(struct mc_ns *ns, uint64_t page_id)
{
	return mc_store_add_replica(st_of(ns), page_id, MC_NS_LOCAL_SEGMENT);
}

static const struct mc_ns_ops local_ops = {
	.close = local_close,
	.forget_pages = local_forget_pages,
	.reserve = local_reserve,
	.lookup = local_lookup,
	.getattr = local_getattr,
	.mkdir = local_mkdir,
	.rmdir = local_rmdir,
	.commit = local_commit,
	.unlink = local_unlink,
	.rename = local_rename,
	.setattr = local_setattr,
	.touch = local_touch,
	.flush_touches = local_flush_touches,
	.readdir = local_readdir,
	.pin = local_pin,
	.unpin = local_unpin,
	.evict = local_evict,
	.get_stats = local_get_stats,
	.name_of = local_name_of,
	.replicas = local_replicas,
	.add_replica = local_add_replica,
};

int mc_ns_open(struct mc_ns **nsp, const char *path)
{
	struct ns_local *l;
	int r;

	*nsp = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	r = mc_store_open_owned(&l->st, path, geteuid(), getegid());
	if (r < 0) {
		free(l);
		return r;
	}
	l->ns.ops = &local_ops;
	l->ns.segment = MC_NS_LOCAL_SEGMENT;
	*nsp = &l->ns;
	return 0;
}
