/*
 * mooncaked - one per host: contributes pool memory and serves the mount.
 *
 * In --standalone (the default) the namespace and placement store runs in
 * this process over sqlite; given a master (--master, MOONCAKE_MASTER) the
 * daemon joins that cluster instead (daemon/cluster.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "autoconf.h"
#include "cluster.h"
#include "config.h"
#include "fs.h"
#include "log.h"
#include "ns.h"
#include "path.h"
#include "pool.h"
#include "rdma.h"
#include "size.h"
#include "banned.h"

/* The most --entry-timeout may be in a cluster (see main). */
#define CLUSTER_ENTRY_TIMEOUT_S 1.0

/* How long a restart waits for a daemon whose mount is gone to exit. */
#define OWNER_EXIT_WAIT_MS 10000
#define OWNER_RETRY_MS 10

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2,
};

/* The lock file names its owner: "pid\nmountpoint\n", read by a refused rival. */
static void write_owner(int fd, const char *mountpoint)
{
	char buf[PATH_MAX + 32];
	int n;

	n = snprintf(buf, sizeof(buf), "%ld\n%s\n", (long)getpid(), mountpoint);
	if (n < 0 || (size_t)n >= sizeof(buf) || ftruncate(fd, 0) < 0 ||
	    pwrite(fd, buf, (size_t)n, 0) != n)
		mc_log(MC_LOG_WARNING,
		       "state: cannot record the owner in the lock file: a refused second daemon will not name this one");
}

/*
 * The owner recorded in the lock file, "pid\nmountpoint\n", split in place
 * in buf: *pidp and *mntp point into it ("" when not recorded).
 */
static void read_owner(int fd, char *buf, size_t len, const char **pidp,
		       const char **mntp)
{
	char *nl;
	ssize_t n;

	n = pread(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	*pidp = buf;
	*mntp = "";
	nl = strchr(buf, '\n');
	if (!nl)
		return;
	*nl = '\0';
	nl[1 + strcspn(nl + 1, "\n")] = '\0';
	*mntp = nl + 1;
}

/*
 * After `umount MNT` the old daemon still holds the lock while it winds
 * down (it closes the store and the pool last), so `umount MNT && mooncaked
 * ... MNT` would be refused.  An owner whose mount is gone is exiting:
 * wait for it.  One whose mount is there, or that recorded none, is not;
 * nor one that was still starting and mounts while we wait (checked on
 * every retry, or it would cost the full wait).
 * 0 with the lock taken, -EBUSY, or flock(2)'s -errno.
 */
static int wait_for_exiting_owner(int fd, const char *pid, const char *mnt)
{
	const struct timespec retry = { 0, OWNER_RETRY_MS * 1000000L };
	struct mc_mountinfo m;
	int waited;

	if (!mnt[0] || mc_mountinfo_find(mnt, "fuse.mooncake", &m) != 0)
		return -EBUSY;
	mc_log(MC_LOG_NOTICE,
	       "state: waiting up to %d s for mooncaked pid %s to finish exiting: its mount '%s' is gone but it still holds the state directory",
	       OWNER_EXIT_WAIT_MS / 1000, pid[0] ? pid : "unknown", mnt);
	for (waited = 0; waited < OWNER_EXIT_WAIT_MS; waited += OWNER_RETRY_MS) {
		nanosleep(&retry, NULL);
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK)
			return -errno;
		if (mc_mountinfo_find(mnt, "fuse.mooncake", &m) == 1)
			return -EBUSY;
	}
	return -EBUSY;
}

/*
 * One daemon per state directory: the lock is held for the life of the
 * process, so a kill -9 frees it with no stale file to clean.
 */
static int lock_state_dir(const char *state_dir, const char *mountpoint,
			  int *fdp)
{
	char path[PATH_MAX], other[PATH_MAX + 32];
	const char *other_pid, *other_mnt;
	int fd, r;

	*fdp = -1;
	snprintf(path, sizeof(path), "%s/lock", state_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		mc_log_errno(MC_LOG_ERR, r,
			     "state: cannot open '%s': check --state-dir is writable",
			     path);
		return r;
	}
	r = flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
	if (r == -EWOULDBLOCK) {
		read_owner(fd, other, sizeof(other), &other_pid, &other_mnt);
		r = wait_for_exiting_owner(fd, other_pid, other_mnt);
		if (r < 0) {
			mc_log(MC_LOG_ERR,
			       "state: '%s' is in use by another mooncaked (pid %s, mounted at '%s'): stop it first ('umount %s') or pass another --state-dir",
			       state_dir, other_pid[0] ? other_pid : "unknown",
			       other_mnt[0] ? other_mnt : mountpoint,
			       other_mnt[0] ? other_mnt : mountpoint);
			goto out_close;
		}
	}
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "state: cannot lock '%s': check the file system of --state-dir supports flock(2)",
			     path);
		goto out_close;
	}
	write_owner(fd, mountpoint);
	*fdp = fd;
	return 0;
out_close:
	close(fd);
	return r;
}

/*
 * Every open page and every idle one holds a descriptor; the usual soft
 * limit of 1024 would stall the daemon long before the hard limit.
 */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		mc_log_errno(MC_LOG_WARNING, -errno,
			     "daemon: cannot raise the open file limit: fewer pages stay open cheaply; raise LimitNOFILE");
}

static int check_protocol(const struct mc_config *cfg)
{
	char dev[64];
	int r;

	if (strcmp(cfg->protocol, "rdma") != 0)
		return 0;
	r = mc_rdma_probe(dev, sizeof(dev));
	if (r < 0)
		mc_log(MC_LOG_WARNING,
		       "rdma: no RDMA device found (%s): pages move over TCP; install rdma-core and a device driver for RDMA",
		       strerror(-r));
	else
		mc_log(MC_LOG_INFO, "rdma: device '%s' found", dev);
	return 0;
}

static void print_banner(const struct mc_config *cfg, struct mc_pool *pool,
			 bool adopted, const struct mc_ns_stats *st,
			 struct mc_cluster *cluster)
{
	char cap[32], where[512];

	mc_size_format(cfg->global_segment_size, cap, sizeof(cap));
	printf("mooncaked: serving %s at %s (%s)\n", cap, cfg->mountpoint,
	       cluster ? "cluster" : "standalone");
	printf("  pool:   %s, %s%s\n", mc_pool_dir(pool),
	       mc_pool_kind_name(mc_pool_kind(pool)),
	       adopted ? ", re-adopted" : "");
	if (cluster) {
		mc_cluster_describe(cluster, where, sizeof(where));
		printf("  joined: %s\n", where);
	} else {
		printf("  pages:  %llu kept from before\n",
		       (unsigned long long)st->pages);
	}
	printf("  status: cat %s/.mooncake/status\n", cfg->mountpoint);
	if (mc_pool_kind(pool) == MC_POOL_DIR)
		printf("  stop:   umount %s   (the pages stay for a restart; once stopped, free them with 'rm -r %s')\n",
		       cfg->mountpoint, mc_pool_dir(pool));
	else
		printf("  stop:   umount %s   (the pool memory stays for a restart; free it with 'umount %s')\n",
		       cfg->mountpoint, mc_pool_dir(pool));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	extern char **environ;
	struct mc_config *cfg = NULL;
	struct mc_pool *pool = NULL;
	struct mc_ns *ns = NULL;
	struct mc_cluster *cluster = NULL;
	struct mc_transport *transport = NULL;
	struct mc_fs *fs = NULL;
	struct mc_fs_params fp;
	struct mc_ns_stats st;
	char err[512], pooldir[PATH_MAX];
	int status = EXIT_RUNTIME;
	bool adopted = false, started = false;
	int lock_fd = -1;
	unsigned flags;
	int r;

	r = mc_config_load(&cfg, argc, argv, environ, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "mooncaked: %s\n", err);
		return EXIT_USAGE;
	}
	if (cfg->help) {
		mc_config_print_help(stdout, "mooncaked");
		status = 0;
		goto out;
	}
	if (cfg->version) {
		printf("mooncaked (mooncakefs) %s\n", PACKAGE_VERSION);
		status = 0;
		goto out;
	}
	if (cfg->dump_config) {
		mc_config_dump(cfg, stdout);
		status = 0;
		goto out;
	}
	mc_log_init("mooncaked", cfg->log_level,
		    cfg->foreground ? 0 : MC_LOG_SYSLOG);
	if (!cfg->standalone && !(cfg->master && *cfg->master)) {
		fprintf(stderr,
			"mooncaked: --no-standalone needs a master (--master / MOONCAKE_MASTER): drop --no-standalone to run the embedded master\n");
		status = EXIT_USAGE;
		goto out;
	}
	check_protocol(cfg);
	raise_fd_limit();

	r = mc_mkdir_p(cfg->state_dir, 0700);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "state: cannot create '%s': pass a writable --state-dir",
			     cfg->state_dir);
		goto out;
	}
	r = mc_mkdir_p(cfg->mountpoint, 0755);
	if (r == -ENOTCONN)
		r = 0;	/* a stale mount: mc_fs_mount() detaches it */
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "mount: cannot create the mount point '%s': create it or pick another",
			     cfg->mountpoint);
		goto out;
	}
	r = lock_state_dir(cfg->state_dir, cfg->mountpoint, &lock_fd);
	if (r < 0)
		goto out;

	snprintf(pooldir, sizeof(pooldir), "%s/pool", cfg->state_dir);
	flags = cfg->use_hugepage ? MC_POOL_HUGE : 0;
	r = mc_pool_open(&pool, pooldir, cfg->global_segment_size, flags,
			 &adopted);
	if (r < 0)
		goto out;
	if (cfg->master && *cfg->master) {
		/* a fresh pool has a fresh identity: the master drops the old one */
		r = mc_cluster_new(&cluster, cfg, pool, &ns, &transport);
		if (r < 0)
			goto out;
		memset(&st, 0, sizeof(st));
		goto made_ns;
	}
	r = mc_ns_open(&ns, cfg->db_path);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "state: cannot open the namespace store '%s': check the disk, or move it aside to start empty",
			     cfg->db_path);
		goto out;
	}
	if (!adopted) {
		/* fresh memory: whatever the store remembers has no bytes */
		int64_t n = mc_ns_forget_pages(ns);

		if (n > 0)
			mc_log(MC_LOG_WARNING,
			       "state: the pool memory is new (reboot or unmount), so the pages recorded in '%s' are gone (%lld)",
			       cfg->db_path, (long long)n);
	}
	mc_ns_get_stats(ns, &st);
made_ns:
	memset(&fp, 0, sizeof(fp));
	fp.max_page_size = cfg->max_page_size;
	fp.high_watermark = cfg->high_watermark;
	fp.eviction_ratio = cfg->eviction_ratio;
	fp.entry_timeout_s = cfg->entry_timeout_s;
	/*
	 * In a cluster a page can leave the namespace without this host
	 * hearing of it (its only holder died): keep what the kernel caches
	 * short, so such a page is gone here within a second of the master
	 * declaring it.
	 */
	if (cluster && fp.entry_timeout_s > CLUSTER_ENTRY_TIMEOUT_S)
		fp.entry_timeout_s = CLUSTER_ENTRY_TIMEOUT_S;
	fp.passthrough = cfg->passthrough;
	fp.fuse_ring = cfg->fuse_ring;
	fp.threads = cfg->threads;
	fp.hostname = cfg->local_hostname;
	fp.resident = cfg->resident;
	fp.transport = transport;
	r = mc_fs_new(&fs, ns, pool, &fp);
	if (r < 0)
		goto out;
	r = mc_fs_mount(fs, cfg->mountpoint, cfg->fuse_opts);
	if (r < 0)
		goto out;

	print_banner(cfg, pool, adopted, &st, cluster);
	if (fuse_daemonize(cfg->foreground) != 0) {
		mc_log(MC_LOG_ERR, "daemon: cannot detach: run with --foreground");
		goto out;
	}
	/* threads only now: the fork above keeps none */
	if (cluster && mc_cluster_start(cluster) < 0)
		goto out;
	if (!cfg->foreground && lock_fd >= 0)
		write_owner(lock_fd, cfg->mountpoint);	/* the pid changed */

	started = true;
	r = mc_fs_run(fs);
	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r, "fuse: the request loop failed");
	else
		status = 0;
	mc_log(MC_LOG_NOTICE, "stopped: %s unmounted; pool memory kept at '%s'",
	       cfg->mountpoint, mc_pool_dir(pool));
out:
	mc_cluster_stop(cluster);	/* nothing calls into fs after this */
	mc_fs_free(fs);
	if (cluster)
		mc_cluster_free(cluster);	/* owns ns and transport */
	else
		mc_ns_close(ns);
	mc_pool_close(pool);
	if (status != 0 && pool && !adopted && !started)
		mc_pool_destroy(pooldir);	/* a failed first start leaves nothing */
	if (lock_fd >= 0)
		close(lock_fd);
	mc_config_free(cfg);
	return status;
}
