/* status.c - /.mooncake/status: what an operator asks first, as "key: value" */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fs_i.h"
#include "attr_warmer.h"
#include "fuse_ring.h"
#include "pool.h"
#include "banned.h"

struct open_count {
	uint64_t open, writing, idle;
};

static void count_inode(void *ctx, const struct mc_inode *in)
{
	struct open_count *c = ctx;

	if (in->state != MC_INODE_OPEN)
		c->writing++;
	else if (in->nopen > 0)
		c->open++;
	else
		c->idle++;
}

int mc_status_render(struct mc_fs *fs, char **bufp, size_t *lenp)
{
	struct mc_pool_usage u = { 0 };
	struct mc_ns_stats st;
	struct open_count oc = { 0 };
	uint64_t hits, misses;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	*bufp = NULL;
	*lenp = 0;
	mc_pool_usage(fs->pool, &u);
	mc_ns_get_stats(fs->ns, &st);
	mc_inode_table_lock(fs->itab);
	mc_inode_foreach_locked(fs->itab, count_inode, &oc);
	mc_inode_table_unlock(fs->itab);
	hits = atomic_load(&fs->counters.hits);
	misses = atomic_load(&fs->counters.misses);

	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	if (mc_ns_is_cluster(fs->ns))
		fprintf(f, "mode: cluster\nsegment: %llu\n",
			(unsigned long long)mc_ns_segment(fs->ns));
	else
		fprintf(f, "mode: standalone\n");
	fprintf(f, "host: %s\n", fs->hostname);
	fprintf(f, "pool_kind: %s\n", mc_pool_kind_name(mc_pool_kind(fs->pool)));
	fprintf(f, "pool_dir: %s\n", mc_pool_dir(fs->pool));
	fprintf(f, "passthrough: %s\n", mc_fs_passthrough_active(fs) ? "yes" : "no");
	fprintf(f, "fuse_ring: %s\n", mc_fuse_ring_active(fs->ring) ? "yes" : "no");
	fprintf(f, "capacity_bytes: %llu\n", (unsigned long long)u.capacity);
	fprintf(f, "used_bytes: %llu\n", (unsigned long long)u.used);
	fprintf(f, "reserve_bytes: %llu\n",
		(unsigned long long)(fs->params.resident ?
					     mc_pool_reserve_size(fs->pool) : 0));
	fprintf(f, "used_ratio: %.4f\n",
		u.capacity ? (double)u.used / (double)u.capacity : 0.0);
	fprintf(f, "high_watermark_ratio: %.4f\n", fs->params.high_watermark);
	fprintf(f, "pages: %llu\n", (unsigned long long)st.pages);
	fprintf(f, "page_bytes: %llu\n", (unsigned long long)st.bytes);
	fprintf(f, "directories: %llu\n", (unsigned long long)st.dirs);
	fprintf(f, "open_pages: %llu\n", (unsigned long long)oc.open);
	fprintf(f, "writes_in_progress: %llu\n", (unsigned long long)oc.writing);
	fprintf(f, "idle_pages: %llu\n", (unsigned long long)oc.idle);
	fprintf(f, "hits: %llu\n", (unsigned long long)hits);
	fprintf(f, "misses: %llu\n", (unsigned long long)misses);
	fprintf(f, "hit_ratio: %.4f\n",
		hits + misses ? (double)hits / (double)(hits + misses) : 0.0);
	fprintf(f, "commits: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.commits));
	fprintf(f, "evictions: %llu\n", (unsigned long long)st.evictions);
	fprintf(f, "evicted_bytes: %llu\n", (unsigned long long)st.evicted_bytes);
	fprintf(f, "fetches: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.fetches));
	fprintf(f, "fetched_bytes: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.fetched_bytes));
	fprintf(f, "fetch_errors: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.fetch_errors));
	fprintf(f, "late_invalidations: %llu\n",
		(unsigned long long)atomic_load(
			&fs->counters.late_invalidations));
	fprintf(f, "getattrs: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.getattrs));
	fprintf(f, "attr_warms: %llu\n",
		(unsigned long long)mc_attr_warmer_count(fs->warmer));
	fprintf(f, "enospc: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.enospc));
	fprintf(f, "errors: %llu\n",
		(unsigned long long)atomic_load(&fs->counters.errors));
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}
