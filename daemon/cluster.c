/*
 * cluster.c - joining a cluster: identity, data server, transport and the
 * master client, wired to this host's pool.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "cluster.h"
#include "data_server.h"
#include "log.h"
#include "ns_client.h"
#include "transport.h"
#include "banned.h"

/* The first registration may take this long before the mount serves anyway. */
#define CLUSTER_REGISTER_WAIT_MS 3000

struct mc_cluster {
	const struct mc_config *cfg;
	struct mc_pool *pool;
	struct mc_ns *ns;
	struct mc_transport *transport;
	struct mc_data_server *ds;
	char address[INET6_ADDRSTRLEN];
	char name[300];
};

/* ---- the pool as the data server and the master client see it ----------- */

static int page_open(void *ctx, uint64_t page_id, int *fdp, uint64_t *size)
{
	struct mc_pool *pool = ctx;
	struct stat st;
	int fd, r;

	/* or one the master took, still on its way from pending/ */
	fd = mc_pool_open_final(pool, page_id);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*fdp = fd;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int page_crc(void *ctx, int fd, uint32_t *crc32c)
{
	(void)ctx;
	return mc_pool_get_crc(fd, crc32c);
}

static int pool_holdings(void *ctx, int (*emit)(void *ectx, uint64_t id),
			 void *ectx)
{
	return mc_pool_foreach_page(ctx, emit, ectx);
}

static void pool_forget(void *ctx, uint64_t page_id)
{
	/* the master has no page for it: an unfinished commit or a drop we missed */
	mc_pool_free(ctx, page_id);
}

static void pool_used(void *ctx, uint64_t *used, uint64_t *pages)
{
	struct mc_pool_usage u;

	*used = mc_pool_usage(ctx, &u) == 0 ? u.used : 0;
	*pages = 0;
}

/*
 * The address peers dial for our pages: local_hostname resolved (an IP
 * literal stays as it is), else this host's name resolved.
 */
static int advertised_address(const char *name, char *out, size_t len)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256];
	int r;

	if (!name || !*name) {
		if (gethostname(host, sizeof(host)) < 0)
			return -errno;
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(name, NULL, &hints, &res);
	if (r != 0) {
		mc_log(MC_LOG_ERR,
		       "cluster: cannot resolve local hostname '%s' (%s): set --local-hostname / MOONCAKE_LOCAL_HOSTNAME to this host's IP address",
		       name, gai_strerror(r));
		return -EINVAL;
	}
	r = -EADDRNOTAVAIL;
	for (ai = res; ai && r < 0; ai = ai->ai_next) {
		const void *a = ai->ai_family == AF_INET ?
				(const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr :
				(const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;

		if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
		    inet_ntop(ai->ai_family, a, out, (socklen_t)len))
			r = 0;
	}
	freeaddrinfo(res);
	if (r == 0 && (strncmp(out, "127.", 4) == 0 || strcmp(out, "::1") == 0))
		mc_log(MC_LOG_WARNING,
		       "cluster: this host's pages are offered at loopback address %s: other hosts cannot fetch them; set --local-hostname to an address they reach",
		       out);
	return r;
}

int mc_cluster_new(struct mc_cluster **cp, const struct mc_config *cfg,
		   struct mc_pool *pool, struct mc_ns **nsp,
		   struct mc_transport **tp)
{
	struct mc_transport_tcp_params tcp;
	struct mc_ns_client_params p;
	struct mc_cluster *c;
	char hostname[256] = "";
	int r;

	*cp = NULL;
	*nsp = NULL;
	*tp = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = cfg;
	c->pool = pool;
	r = advertised_address(cfg->local_hostname, c->address,
			       sizeof(c->address));
	if (r < 0)
		goto fail;
	if (gethostname(hostname, sizeof(hostname)) < 0)
		snprintf(hostname, sizeof(hostname), "%s", c->address);
	hostname[sizeof(hostname) - 1] = '\0';
	snprintf(c->name, sizeof(c->name), "mooncaked@%.255s", hostname);

	memset(&tcp, 0, sizeof(tcp));
	tcp.timeout_ms = (unsigned)(cfg->transfer_timeout_s * 1000.0);
	tcp.conns_per_peer = 4;
	tcp.name = c->name;
	r = mc_transport_tcp_new(&c->transport, &tcp);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "cluster: cannot set up the TCP transport: check io_uring is allowed (sysctl kernel.io_uring_disabled)");
		goto fail;
	}

	memset(&p, 0, sizeof(p));
	r = mc_pool_segment_uuid(pool, p.segment);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "cluster: cannot read or make the pool's identity in '%s': check the pool directory",
			     mc_pool_dir(pool));
		goto fail;
	}
	p.master = cfg->master;
	p.name = c->name;
	p.host = hostname;
	p.address = c->address;
	p.capacity = cfg->global_segment_size;
	/* pages move over TCP until an RDMA transport exists */
	p.protocol = "tcp";
	p.timeout_ms = (unsigned)(cfg->rpc_timeout_s * 1000.0);
	p.holdings = pool_holdings;
	p.forget = pool_forget;
	p.usage = pool_used;
	p.ctx = pool;
	r = mc_ns_connect(&c->ns, &p);
	if (r < 0)
		goto fail;
	*nsp = c->ns;
	*tp = c->transport;
	*cp = c;
	return 0;
fail:
	mc_cluster_free(c);
	return r;
}

int mc_cluster_start(struct mc_cluster *c)
{
	struct mc_data_server_params dp;
	struct mc_page_source src = {
		.open = page_open,
		.crc = page_crc,
		.immutable = true,
		.ctx = c->pool,
	};
	int r;

	memset(&dp, 0, sizeof(dp));
	dp.address = NULL;
	dp.port = (uint16_t)c->cfg->data_port;
	dp.timeout_ms = (unsigned)(c->cfg->transfer_timeout_s * 1000.0);
	r = mc_data_server_open(&c->ds, &dp, &src);
	if (r < 0) {
		mc_log_errno(MC_LOG_ERR, r,
			     "cluster: cannot serve pages on port %u: pick a free one with --data-port",
			     c->cfg->data_port);
		return r;
	}
	mc_log(MC_LOG_INFO, "cluster: serving this host's pages at %s:%u",
	       c->address, mc_data_server_port(c->ds));
	r = mc_ns_client_start(c->ns, mc_data_server_port(c->ds),
			       CLUSTER_REGISTER_WAIT_MS);
	if (r < 0)
		mc_log_errno(MC_LOG_ERR, r,
			     "cluster: cannot start the master client's threads: check the thread limit (ulimit -u)");
	return r;
}

void mc_cluster_stop(struct mc_cluster *c)
{
	if (c && c->ns)
		mc_ns_client_stop(c->ns);
}

void mc_cluster_free(struct mc_cluster *c)
{
	if (!c)
		return;
	mc_cluster_stop(c);
	mc_data_server_close(c->ds);
	mc_ns_close(c->ns);
	mc_transport_free(c->transport);
	free(c);
}

void mc_cluster_describe(struct mc_cluster *c, char *buf, size_t len)
{
	snprintf(buf, len, "master %s, pages served at %s:%u", c->cfg->master,
		 c->address,
		 c->ds ? (unsigned)mc_data_server_port(c->ds) :
			   (unsigned)c->cfg->data_port);
}
