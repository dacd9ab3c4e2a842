/* test_config.c - the tunables table: layers, spellings, errors, help, dump */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "banned.h"

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)

/* NULL-terminated lists, so a test reads like the command it runs */
#define ARGV(...) ((char *[]){ "mooncaked", __VA_ARGS__, NULL })
#define ENVP(...) ((char *[]){ __VA_ARGS__, NULL })
#define NOENV ((char *[]){ NULL })

struct fixture {
	char dir[64];		/* private temp directory */
	char json[128];		/* dir/store.json */
	char err[512];
};

static struct fixture fx;

static void fx_setup(void)
{
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/mc-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx.dir));
	snprintf(fx.json, sizeof(fx.json), "%s/store.json", fx.dir);
	fx.err[0] = '\0';
}

static void fx_teardown(void)
{
	char path[128];

	unlink(fx.json);
	snprintf(path, sizeof(path), "%s/mnt", fx.dir);
	rmdir(path);
	rmdir(fx.dir);
}

static void write_json(const char *text)
{
	FILE *f = fopen(fx.json, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static int count_args(char **argv)
{
	int n = 0;

	while (argv[n])
		n++;
	return n;
}

static struct mc_config *load_ok(char **argv, char **envp)
{
	struct mc_config *cfg = (void *)1;
	int r;

	r = mc_config_load(&cfg, count_args(argv), argv, envp, fx.err,
			   sizeof(fx.err));
	ck_assert_msg(r == 0, "load failed with %d: %s", r, fx.err);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

/* The load fails with -EINVAL and one line of err naming every culprit. */
static void load_fails(char **argv, char **envp, const char *culprit,
		       const char *also)
{
	struct mc_config *cfg = (void *)1;
	int r;

	fx.err[0] = '\0';
	r = mc_config_load(&cfg, count_args(argv), argv, envp, fx.err,
			   sizeof(fx.err));
	ck_assert_msg(r == -EINVAL, "load gave %d, want -EINVAL (err '%s')", r,
		      fx.err);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(fx.err, culprit), "err '%s' does not name '%s'",
		      fx.err, culprit);
	ck_assert_msg(!also || strstr(fx.err, also),
		      "err '%s' does not say '%s'", fx.err, also);
	ck_assert_msg(!strchr(fx.err, '\n'), "err '%s' is not one line",
		      fx.err);
}

START_TEST(defaults_come_from_the_table_and_the_mountpoint)
{
	struct mc_config *cfg = load_ok(ARGV("/mnt/mc-nowhere/pool"), NOENV);
	char host[HOST_NAME_MAX + 1];

	ck_assert_str_eq(cfg->mountpoint, "/mnt/mc-nowhere/pool");
	ck_assert_str_eq(cfg->state_dir, "/run/mooncake/mnt_mc-nowhere_pool");
	ck_assert_str_eq(cfg->db_path,
			 "/run/mooncake/mnt_mc-nowhere_pool/namespace.db");
	ck_assert(cfg->standalone);
	ck_assert(!cfg->foreground);
	ck_assert_ptr_null(cfg->config_path);
	ck_assert_ptr_null(cfg->fuse_opts);
	ck_assert_ptr_null(cfg->master);
	ck_assert_ptr_null(cfg->metadata_server);
	ck_assert_ptr_null(cfg->device_name);
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	ck_assert_str_eq(cfg->local_hostname, host);
	ck_assert_str_eq(cfg->protocol, "tcp");
	ck_assert_uint_eq(cfg->global_segment_size, 4 * GIB);
	ck_assert_uint_eq(cfg->local_buffer_size, 0);
	ck_assert(cfg->use_hugepage);
	ck_assert_uint_eq(cfg->hugepage_size, 2 * MIB);
	ck_assert_uint_eq(cfg->max_page_size, GIB);
	ck_assert_double_eq(cfg->high_watermark, 0.90);
	ck_assert_double_eq(cfg->eviction_ratio, 0.05);
	ck_assert_int_eq(cfg->passthrough, MC_PASSTHROUGH_AUTO);
	ck_assert_uint_eq(cfg->threads, 16);
	ck_assert_double_eq(cfg->entry_timeout_s, 10.0);
	ck_assert_int_eq(cfg->log_level, MC_LOG_NOTICE);
	ck_assert(!cfg->dump_config && !cfg->help && !cfg->version);
	mc_config_free(cfg);
}
END_TEST

START_TEST(an_existing_mountpoint_is_made_absolute_by_realpath)
{
	struct mc_config *cfg;
	char given[128], want[128];

	snprintf(want, sizeof(want), "%s/mnt", fx.dir);
	ck_assert_int_eq(mkdir(want, 0700), 0);
	snprintf(given, sizeof(given), "%s/./mnt/", fx.dir);
	cfg = load_ok(ARGV(given), NOENV);
	ck_assert_str_eq(cfg->mountpoint, want);
	mc_config_free(cfg);

	cfg = load_ok(ARGV("/mnt/mc-nowhere/"), NOENV);
	ck_assert_str_eq(cfg->mountpoint, "/mnt/mc-nowhere");
	ck_assert_str_eq(cfg->state_dir, "/run/mooncake/mnt_mc-nowhere");
	mc_config_free(cfg);
}
END_TEST

START_TEST(a_relative_mountpoint_that_does_not_exist_is_an_error)
{
	load_fails(ARGV("mc-no-such-dir/pool"), NOENV, "'mc-no-such-dir/pool'",
		   "absolute");
}
END_TEST

START_TEST(state_dir_and_db_follow_what_the_user_set)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("--state-dir", "/var/lib/mc", "/mnt/x"), NOENV);
	ck_assert_str_eq(cfg->state_dir, "/var/lib/mc");
	ck_assert_str_eq(cfg->db_path, "/var/lib/mc/namespace.db");
	mc_config_free(cfg);

	cfg = load_ok(ARGV("--db=/tmp/ns.db", "/mnt/x"),
		      ENVP("MOONCAKE_STATE_DIR=/srv/mc"));
	ck_assert_str_eq(cfg->state_dir, "/srv/mc");
	ck_assert_str_eq(cfg->db_path, "/tmp/ns.db");
	mc_config_free(cfg);
}
END_TEST

START_TEST(json_then_environment_then_command_line_later_wins)
{
	struct mc_config *cfg;
	char copt[160];

	write_json("{ \"master_server_address\": \"json:50051\",\n"
		   "  \"protocol\": \"rdma\",\n"
		   "  \"global_segment_size\": \"8gb\" }\n");
	snprintf(copt, sizeof(copt), "--config=%s", fx.json);

	cfg = load_ok(ARGV(copt, "/mnt/x"), NOENV);
	ck_assert_str_eq(cfg->master, "json:50051");
	ck_assert_str_eq(cfg->protocol, "rdma");
	ck_assert_str_eq(cfg->config_path, fx.json);
	mc_config_free(cfg);

	cfg = load_ok(ARGV(copt, "/mnt/x"),
		      ENVP("MOONCAKE_MASTER=env:50051",
			   "MOONCAKE_PROTOCOL=tcp"));
	ck_assert_str_eq(cfg->master, "env:50051");
	ck_assert_str_eq(cfg->protocol, "tcp");
	ck_assert_uint_eq(cfg->global_segment_size, 8 * GIB);
	mc_config_free(cfg);

	cfg = load_ok(ARGV("--master", "cli:50051", copt, "/mnt/x"),
		      ENVP("MOONCAKE_MASTER=env:50051",
			   "MOONCAKE_GLOBAL_SEGMENT_SIZE=16gb"));
	ck_assert_str_eq(cfg->master, "cli:50051");
	ck_assert_str_eq(cfg->protocol, "rdma");
	ck_assert_uint_eq(cfg->global_segment_size, 16 * GIB);
	mc_config_free(cfg);
}
END_TEST

START_TEST(the_config_file_comes_from_the_environment_unless_c_names_one)
{
	struct mc_config *cfg;
	char env[160];

	write_json("{ \"metadata_server\": \"http://meta:8080/metadata\" }");
	snprintf(env, sizeof(env), "MOONCAKE_CONFIG_PATH=%s", fx.json);
	cfg = load_ok(ARGV("/mnt/x"), ENVP(env));
	ck_assert_str_eq(cfg->metadata_server, "http://meta:8080/metadata");
	ck_assert_str_eq(cfg->config_path, fx.json);
	mc_config_free(cfg);

	load_fails(ARGV("-c", "/nonexistent/mc.json", "/mnt/x"), ENVP(env),
		   "'/nonexistent/mc.json'", "MOONCAKE_CONFIG_PATH");
}
END_TEST

START_TEST(json_sizes_take_numbers_and_strings)
{
	struct mc_config *cfg;
	char copt[160];

	write_json("{ \"global_segment_size\": 4294967296,\n"
		   "  \"local_buffer_size\": \"512 MiB\",\n"
		   "  \"max_page_size\": \"64m\",\n"
		   "  \"hugepage_size\": 2097152 }");
	snprintf(copt, sizeof(copt), "-c%s", fx.json);
	cfg = load_ok(ARGV(copt, "/mnt/x"), NOENV);
	ck_assert_uint_eq(cfg->global_segment_size, 4 * GIB);
	ck_assert_uint_eq(cfg->local_buffer_size, 512 * MIB);
	ck_assert_uint_eq(cfg->max_page_size, 64 * MIB);
	ck_assert_uint_eq(cfg->hugepage_size, 2 * MIB);
	mc_config_free(cfg);
}
END_TEST

START_TEST(json_takes_every_type_of_row)
{
	struct mc_config *cfg;
	char copt[160];

	write_json("{ \"standalone\": false, \"use_hugepage\": \"off\",\n"
		   "  \"eviction_high_watermark_ratio\": 0.8,\n"
		   "  \"eviction_ratio\": 0.1, \"threads\": 4,\n"
		   "  \"entry_timeout\": 0, \"passthrough\": \"off\",\n"
		   "  \"log_level\": \"debug\", \"device_name\": \"mlx5_0\",\n"
		   "  \"local_hostname\": \"10.0.0.1\", \"db_path\": null }");
	snprintf(copt, sizeof(copt), "--config=%s", fx.json);
	cfg = load_ok(ARGV(copt, "/mnt/x"), NOENV);
	ck_assert(!cfg->standalone);
	ck_assert(!cfg->use_hugepage);
	ck_assert_double_eq(cfg->high_watermark, 0.8);
	ck_assert_double_eq(cfg->eviction_ratio, 0.1);
	ck_assert_uint_eq(cfg->threads, 4);
	ck_assert_double_eq(cfg->entry_timeout_s, 0.0);
	ck_assert_int_eq(cfg->passthrough, MC_PASSTHROUGH_OFF);
	ck_assert_int_eq(cfg->log_level, MC_LOG_DEBUG);
	ck_assert_str_eq(cfg->device_name, "mlx5_0");
	ck_assert_str_eq(cfg->local_hostname, "10.0.0.1");
	ck_assert_str_eq(cfg->db_path, "/run/mooncake/mnt_x/namespace.db");
	mc_config_free(cfg);
}
END_TEST

START_TEST(an_unknown_json_key_is_a_warning_not_an_error)
{
	struct mc_config *cfg;
	char copt[160], logpath[128], line[512];
	bool warned = false;
	FILE *log;

	write_json("{ \"rpc_port\": 12345, \"protocol\": \"tcp\" }");
	snprintf(copt, sizeof(copt), "--config=%s", fx.json);
	snprintf(logpath, sizeof(logpath), "%s/stderr", fx.dir);
	/* each test runs in its own process: stderr is ours to redirect */
	ck_assert_ptr_nonnull(freopen(logpath, "w", stderr));
	cfg = load_ok(ARGV(copt, "/mnt/x"), NOENV);
	fflush(stderr);
	mc_config_free(cfg);

	log = fopen(logpath, "r");
	ck_assert_ptr_nonnull(log);
	while (fgets(line, sizeof(line), log))
		warned |= strstr(line, "'rpc_port'") != NULL;
	fclose(log);
	unlink(logpath);
	ck_assert_msg(warned, "no warning names the unknown key 'rpc_port'");
}
END_TEST

START_TEST(underscore_flag_spellings_work)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("--global_segment_size=8gb", "--local_hostname",
			   "h1", "--eviction_high_watermark_ratio", "0.5",
			   "--no_standalone", "/mnt/x"),
		      NOENV);
	ck_assert_uint_eq(cfg->global_segment_size, 8 * GIB);
	ck_assert_str_eq(cfg->local_hostname, "h1");
	ck_assert_double_eq(cfg->high_watermark, 0.5);
	ck_assert(!cfg->standalone);
	mc_config_free(cfg);
}
END_TEST

START_TEST(bools_take_a_bare_flag_a_value_or_no)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("--no-standalone", "-f", "--use-hugepage=off",
			   "/mnt/x"),
		      NOENV);
	ck_assert(!cfg->standalone);
	ck_assert(cfg->foreground);
	ck_assert(!cfg->use_hugepage);
	mc_config_free(cfg);

	cfg = load_ok(ARGV("--standalone=false", "--foreground", "/mnt/x"),
		      ENVP("MC_STORE_USE_HUGEPAGE=no"));
	ck_assert(!cfg->standalone);
	ck_assert(cfg->foreground);
	ck_assert(!cfg->use_hugepage);
	mc_config_free(cfg);

	cfg = load_ok(ARGV("--no-standalone", "--standalone", "/mnt/x"),
		      ENVP("MC_STORE_USE_HUGEPAGE=1"));
	ck_assert(cfg->standalone);
	ck_assert(cfg->use_hugepage);
	mc_config_free(cfg);
}
END_TEST

START_TEST(fuse_options_are_comma_joined_across_o_flags)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("-o", "allow_other", "/mnt/x", "-oro,noatime",
			   "-fo", "default_permissions"),
		      NOENV);
	ck_assert_str_eq(cfg->fuse_opts,
			 "allow_other,ro,noatime,default_permissions");
	ck_assert(cfg->foreground);
	mc_config_free(cfg);
}
END_TEST

START_TEST(an_empty_environment_variable_counts_as_unset)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("/mnt/x"),
		      ENVP("MOONCAKE_PROTOCOL=", "MOONCAKE_MASTER="));
	ck_assert_str_eq(cfg->protocol, "tcp");
	ck_assert_ptr_null(cfg->master);
	mc_config_free(cfg);
}
END_TEST

START_TEST(help_and_version_need_no_mountpoint_or_config_file)
{
	struct mc_config *cfg;

	cfg = load_ok(ARGV("--help"), ENVP("MOONCAKE_CONFIG_PATH=/nonexistent"));
	ck_assert(cfg->help);
	mc_config_free(cfg);
	cfg = load_ok(ARGV("-V"), NOENV);
	ck_assert(cfg->version);
	mc_config_free(cfg);
}
END_TEST

/* issue found by fuzz_config: --help --no-help skipped the mountpoint check */
START_TEST(no_help_after_help_still_needs_a_mountpoint)
{
	load_fails(ARGV("--help", "--no-help"), NOENV,
		   "usage: mooncaked [options] MOUNTPOINT", NULL);
	load_fails(ARGV("-V", "--version=false"), NOENV,
		   "usage: mooncaked [options] MOUNTPOINT", NULL);
}
END_TEST

START_TEST(a_missing_mountpoint_prints_the_usage)
{
	load_fails(ARGV("--foreground"), NOENV, "MOUNTPOINT",
		   "usage: mooncaked [options] MOUNTPOINT");
	load_fails(ARGV("--dump-config"), NOENV,
		   "usage: mooncaked [options] MOUNTPOINT", NULL);
}
END_TEST

START_TEST(a_second_positional_argument_is_an_error)
{
	load_fails(ARGV("/mnt/a", "/mnt/b"), NOENV, "'/mnt/b'", "usage");
	/* after "--" everything is positional */
	load_fails(ARGV("--", "/mnt/a", "-f"), NOENV, "'-f'", NULL);
}
END_TEST

START_TEST(unknown_flags_are_named_with_a_pointer_to_help)
{
	load_fails(ARGV("--bogus", "/mnt/x"), NOENV, "'--bogus'", "--help");
	load_fails(ARGV("--bogus=1", "/mnt/x"), NOENV, "'--bogus'", "--help");
	load_fails(ARGV("-x", "/mnt/x"), NOENV, "'-x'", "--help");
	load_fails(ARGV("--no-master", "/mnt/x"), NOENV, "'--no-master'",
		   "--help");
}
END_TEST

START_TEST(flag_syntax_errors_name_the_flag)
{
	load_fails(ARGV("/mnt/x", "--master"), NOENV, "'--master'", "ADDR");
	load_fails(ARGV("/mnt/x", "-c"), NOENV, "'-c'", "FILE");
	load_fails(ARGV("--no-standalone=yes", "/mnt/x"), NOENV,
		   "'--no-standalone'", "takes no value");
	load_fails(ARGV("--standalone=maybe", "/mnt/x"), NOENV,
		   "'--standalone'", "'maybe'");
}
END_TEST

START_TEST(bad_values_on_the_command_line_name_flag_and_choices)
{
	load_fails(ARGV("--protocol=udp", "/mnt/x"), NOENV, "'--protocol'",
		   "tcp or rdma");
	load_fails(ARGV("--global-segment-size", "1m", "/mnt/x"), NOENV,
		   "'--global-segment-size'", "at least 16MiB");
	load_fails(ARGV("--global-segment-size=4xb", "/mnt/x"), NOENV,
		   "'4xb'", "4gb");
	load_fails(ARGV("--hugepage-size=1GiB", "/mnt/x"), NOENV,
		   "'--hugepage-size'", "only 2 MiB");
	load_fails(ARGV("--eviction-high-watermark-ratio=0", "/mnt/x"), NOENV,
		   "'--eviction-high-watermark-ratio'", "(0, 1]");
	load_fails(ARGV("--eviction-high-watermark-ratio=1.5", "/mnt/x"),
		   NOENV, "'1.5'", "(0, 1]");
	load_fails(ARGV("--eviction-ratio=1", "/mnt/x"), NOENV,
		   "'--eviction-ratio'", "(0, 1)");
	load_fails(ARGV("--threads=0", "/mnt/x"), NOENV, "'--threads'",
		   "1 to 256");
	load_fails(ARGV("--threads=257", "/mnt/x"), NOENV, "'257'", NULL);
	load_fails(ARGV("--threads=abc", "/mnt/x"), NOENV, "'abc'", NULL);
	load_fails(ARGV("--entry-timeout=-1", "/mnt/x"), NOENV,
		   "'--entry-timeout'", ">= 0");
	load_fails(ARGV("--passthrough=maybe", "/mnt/x"), NOENV,
		   "'--passthrough'", "auto, on or off");
	load_fails(ARGV("--log-level=loud", "/mnt/x"), NOENV, "'--log-level'",
		   "notice");
	load_fails(ARGV("--max-page-size=0", "/mnt/x"), NOENV,
		   "'--max-page-size'", NULL);
}
END_TEST

START_TEST(bad_environment_values_name_the_variable)
{
	load_fails(ARGV("/mnt/x"), ENVP("MOONCAKE_PROTOCOL=udp"),
		   "'MOONCAKE_PROTOCOL'", "tcp or rdma");
	load_fails(ARGV("/mnt/x"), ENVP("MOONCAKE_GLOBAL_SEGMENT_SIZE=4.5gb"),
		   "'MOONCAKE_GLOBAL_SEGMENT_SIZE'", "'4.5gb'");
	load_fails(ARGV("/mnt/x"), ENVP("MC_STORE_USE_HUGEPAGE=maybe"),
		   "'MC_STORE_USE_HUGEPAGE'", "yes");
	load_fails(ARGV("/mnt/x"), ENVP("MC_STORE_HUGEPAGE_SIZE=1gb"),
		   "'MC_STORE_HUGEPAGE_SIZE'", "only 2 MiB");
	load_fails(ARGV("/mnt/x"), ENVP("MC_LOG_LEVEL=chatty"),
		   "'MC_LOG_LEVEL'", NULL);
}
END_TEST

static void json_fails(const char *text, const char *culprit,
		       const char *also)
{
	char copt[160];

	write_json(text);
	snprintf(copt, sizeof(copt), "--config=%s", fx.json);
	load_fails(ARGV(copt, "/mnt/x"), NOENV, culprit, also);
	/* every JSON error names the file */
	ck_assert_msg(strstr(fx.err, fx.json), "err '%s' does not name '%s'",
		      fx.err, fx.json);
}

START_TEST(bad_json_syntax_is_reported_with_the_tokener_message)
{
	json_fails("{ \"protocol\": \"tcp\"\n", "unexpected end of data",
		   "line");
	json_fails("{ \"protocol\" \"tcp\" }", "cannot parse", NULL);
	json_fails("", "unexpected end of data", NULL);
	json_fails("{} {}", "text after the JSON object", NULL);
	json_fails("[1, 2]", "not a JSON object", NULL);
}
END_TEST

START_TEST(json_keys_of_the_wrong_type_or_value_are_named)
{
	json_fails("{ \"global_segment_size\": [1] }", "'global_segment_size'",
		   "4gb");
	json_fails("{ \"global_segment_size\": 4.5 }", "'global_segment_size'",
		   "4gb");
	json_fails("{ \"global_segment_size\": -1 }", "'global_segment_size'",
		   NULL);
	json_fails("{ \"master_server_address\": 5 }",
		   "'master_server_address'", "string");
	json_fails("{ \"protocol\": \"udp\" }", "'protocol'", "tcp or rdma");
	json_fails("{ \"standalone\": \"sometimes\" }", "'standalone'",
		   "true");
	json_fails("{ \"threads\": 1000 }", "'threads'", "1 to 256");
	json_fails("{ \"hugepage_size\": \"1gb\" }", "'hugepage_size'",
		   "only 2 MiB");
}
END_TEST

static char *capture(void (*fn)(FILE *out, const struct mc_config *cfg),
		     const struct mc_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(out);
	fn(out, cfg);
	ck_assert_int_eq(fclose(out), 0);
	return text;
}

static void dump_to(FILE *out, const struct mc_config *cfg)
{
	mc_config_dump(cfg, out);
}

static void help_to(FILE *out, const struct mc_config *cfg)
{
	mc_config_print_help(out, "mooncaked");
}

START_TEST(dump_prints_the_effective_values_under_their_json_keys)
{
	struct mc_config *cfg, *again;
	json_object *root, *v;
	char *text;
	char copt[160];
	FILE *f;

	cfg = load_ok(ARGV("--global-segment-size=8gb", "--passthrough=on",
			   "--master=m:50051", "/mnt/x"),
		      NOENV);
	text = capture(dump_to, cfg);
	root = json_tokener_parse(text);
	ck_assert_msg(root != NULL, "dump is not JSON: %s", text);
	ck_assert(json_object_object_get_ex(root, "global_segment_size", &v));
	ck_assert_uint_eq(json_object_get_uint64(v), 8 * GIB);
	ck_assert(json_object_object_get_ex(root, "passthrough", &v));
	ck_assert_str_eq(json_object_get_string(v), "on");
	ck_assert(json_object_object_get_ex(root, "log_level", &v));
	ck_assert_str_eq(json_object_get_string(v), "notice");
	ck_assert(json_object_object_get_ex(root, "state_dir", &v));
	ck_assert_str_eq(json_object_get_string(v), "/run/mooncake/mnt_x");
	ck_assert_msg(strstr(text, "0.9") && !strstr(text, "0.900000"),
		      "ratios are not printed as written: %s", text);
	json_object_put(root);

	/* the dump is a config file that gives back the same values */
	f = fopen(fx.json, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	snprintf(copt, sizeof(copt), "--config=%s", fx.json);
	again = load_ok(ARGV(copt, "/mnt/y"), NOENV);
	ck_assert_uint_eq(again->global_segment_size, 8 * GIB);
	ck_assert_int_eq(again->passthrough, MC_PASSTHROUGH_ON);
	ck_assert_str_eq(again->master, "m:50051");
	ck_assert_str_eq(again->state_dir, "/run/mooncake/mnt_x");
	ck_assert_double_eq(again->high_watermark, cfg->high_watermark);
	free(text);
	mc_config_free(again);
	mc_config_free(cfg);
}
END_TEST

struct walk {
	int rows;
	int with_json;
	int with_env;
	bool saw_segment_size;
	const char *help;
};

static void visit(const char *flag, const char *json_key, const char *env,
		  void *ctx)
{
	struct walk *w = ctx;
	char needle[96];

	w->rows++;
	w->with_json += json_key != NULL;
	w->with_env += env != NULL;
	if (strcmp(flag, "global-segment-size") == 0)
		w->saw_segment_size =
			strcmp(json_key, "global_segment_size") == 0 &&
			strcmp(env, "MOONCAKE_GLOBAL_SEGMENT_SIZE") == 0;
	if (!w->help)
		return;
	snprintf(needle, sizeof(needle), "--%s", flag);
	ck_assert_msg(strstr(w->help, needle), "help lacks '%s'", needle);
	snprintf(needle, sizeof(needle), "json %s", json_key ? json_key : "");
	ck_assert_msg(!json_key || strstr(w->help, needle), "help lacks '%s'",
		      needle);
	snprintf(needle, sizeof(needle), "env %s", env ? env : "");
	ck_assert_msg(!env || strstr(w->help, needle), "help lacks '%s'",
		      needle);
}

START_TEST(foreach_walks_every_row_of_the_table)
{
	struct walk w = { 0 };

	mc_config_foreach(visit, &w);
	ck_assert_int_ge(w.rows, 25);
	ck_assert_int_ge(w.with_json, 19);
	ck_assert_int_ge(w.with_env, 12);
	ck_assert(w.saw_segment_size);
}
END_TEST

START_TEST(help_lists_every_flag_with_its_json_key_and_variable)
{
	struct walk w = { 0 };
	char *text = capture(help_to, NULL);

	ck_assert_msg(strncmp(text, "usage: mooncaked [options] MOUNTPOINT",
			      37) == 0,
		      "help does not start with the usage: %s", text);
	ck_assert_msg(strstr(text, "default: 4GiB"), "no size default");
	ck_assert_msg(strstr(text, "--no-standalone"), "no --no-standalone");
	w.help = text;
	mc_config_foreach(visit, &w);
	free(text);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *layers = tcase_create("layers");
	TCase *errors = tcase_create("errors");
	TCase *output = tcase_create("output");

	tcase_add_checked_fixture(layers, fx_setup, fx_teardown);
	tcase_add_test(layers, defaults_come_from_the_table_and_the_mountpoint);
	tcase_add_test(layers,
		       an_existing_mountpoint_is_made_absolute_by_realpath);
	tcase_add_test(layers, state_dir_and_db_follow_what_the_user_set);
	tcase_add_test(layers,
		       json_then_environment_then_command_line_later_wins);
	tcase_add_test(layers,
		       the_config_file_comes_from_the_environment_unless_c_names_one);
	tcase_add_test(layers, json_sizes_take_numbers_and_strings);
	tcase_add_test(layers, json_takes_every_type_of_row);
	tcase_add_test(layers, an_unknown_json_key_is_a_warning_not_an_error);
	tcase_add_test(layers, underscore_flag_spellings_work);
	tcase_add_test(layers, bools_take_a_bare_flag_a_value_or_no);
	tcase_add_test(layers, fuse_options_are_comma_joined_across_o_flags);
	tcase_add_test(layers, an_empty_environment_variable_counts_as_unset);
	tcase_add_test(layers,
		       help_and_version_need_no_mountpoint_or_config_file);
	suite_add_tcase(s, layers);

	tcase_add_checked_fixture(errors, fx_setup, fx_teardown);
	tcase_add_test(errors,
		       a_relative_mountpoint_that_does_not_exist_is_an_error);
	tcase_add_test(errors, no_help_after_help_still_needs_a_mountpoint);
	tcase_add_test(errors, a_missing_mountpoint_prints_the_usage);
	tcase_add_test(errors, a_second_positional_argument_is_an_error);
	tcase_add_test(errors, unknown_flags_are_named_with_a_pointer_to_help);
	tcase_add_test(errors, flag_syntax_errors_name_the_flag);
	tcase_add_test(errors,
		       bad_values_on_the_command_line_name_flag_and_choices);
	tcase_add_test(errors, bad_environment_values_name_the_variable);
	tcase_add_test(errors,
		       bad_json_syntax_is_reported_with_the_tokener_message);
	tcase_add_test(errors,
		       json_keys_of_the_wrong_type_or_value_are_named);
	suite_add_tcase(s, errors);

	tcase_add_checked_fixture(output, fx_setup, fx_teardown);
	tcase_add_test(output,
		       dump_prints_the_effective_values_under_their_json_keys);
	tcase_add_test(output, foreach_walks_every_row_of_the_table);
	tcase_add_test(output,
		       help_lists_every_flag_with_its_json_key_and_variable);
	suite_add_tcase(s, output);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
