/*
 * govfsctl: the admin tool.  This file owns the command line (global
 * options, dispatch to verbs), opening a home for a verb, and `init`.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "govfsctl.h"
#include "home.h"
#include "leftovers.h"
#include "optform.h"

static const char usage_text[] =
    "usage: govfsctl VERB [options]\n"
    "  init [--retention-days N]\n"
    "  dataset add ID --file F.csv [--schema S.json] [--title T] "
    "[--provider P]\n"
    "  dataset list [--json] | dataset show ID [--json]\n"
    "  dataset grade ID COLUMN LEVEL | dataset drop ID\n"
    "  agreement apply FILE.json [--dry-run]\n"
    "  agreement list [--json] | agreement show ID [--json]\n"
    "  agreement suspend ID --reason TEXT | agreement resume ID "
    "[--reason TEXT]\n"
    "  agreement revoke ID --reason TEXT\n"
    "  mounts [--json]\n"
    "  audit tail [-n N] [-f] [--agreement ID]\n"
    "  audit export [--since T] [--agreement ID] | audit verify | "
    "audit prune\n"
    "every verb takes --home DIR (default $GOVFS_HOME, else "
    "/var/lib/govfs) and --key-file F (default /etc/govfs/master.key)\n";

int ctl_check_home(struct ctl *ctl)
{
	char path[PATH_MAX], why[256];

	if (home_check(ctl->home, path, sizeof(path), why, sizeof(why)))
		return fail("%s: %s", path, why);
	ctl->home_checked = true;
	return 0;
}

int ctl_open(struct ctl *ctl, enum ctl_mode mode)
{
	bool write = mode == CTL_CHANGE;
	char why[256];
	int rc;

	ctl->lock_fd = -1;
	ctl->cat = NULL;
	rc = ctl->home_checked ? 0 : ctl_check_home(ctl);
	if (rc)
		return rc;
	if (master_key_load(ctl->key_file, &ctl->mk, why, sizeof(why)))
		return fail("%s: %s", ctl->key_file, why);
	if (write) {
		ctl->lock_fd = home_lock(ctl->home);
		if (ctl->lock_fd < 0)
			return fail("%s/lock: %s", ctl->home,
				    strerror(-ctl->lock_fd));
	}
	rc = catalog_open(ctl->home, mode == CTL_READ, &ctl->cat);
	if (rc) {
		ctl_close(ctl);
		return fail("%s/catalog.db: %s", ctl->home,
			    rc == -EPROTO ? "not a govfs catalog"
					  : strerror(-rc));
	}
	if (write) {
		rc = leftovers_remove(ctl->home, ctl->cat);
		if (rc > 0)
			warning("removed %d leftover file(s) of an "
				"interrupted change",
				rc);
	}
	admin_identity(ctl->admin, sizeof(ctl->admin));
	return 0;
}

void ctl_close(struct ctl *ctl)
{
	catalog_close(ctl->cat);
	ctl->cat = NULL;
	home_unlock(ctl->lock_fd);
	ctl->lock_fd = -1;
	memset(&ctl->mk, 0, sizeof(ctl->mk));
}

bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

enum { OPT_HOME = 200, OPT_KEY_FILE, OPT_JSON };

/* --home and --key-file given before the verb. */
static const char *leading_home, *leading_key_file;

static const struct option common_options[] = {
    {"home", required_argument, NULL, OPT_HOME},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"json", no_argument, NULL, OPT_JSON},
};
#define NCOMMON (sizeof(common_options) / sizeof(common_options[0]))
#define MAX_OPTIONS 16

int ctl_parse(struct ctl *ctl, int argc, char **argv, const struct option *own,
	      opt_fn on_opt, void *ctx, char **pos, int max_pos, int *npos)
{
	struct option all[MAX_OPTIONS + 1];
	size_t n = 0;
	int opt;

	memcpy(all, common_options, sizeof(common_options));
	n = NCOMMON;
	for (; own && own->name && n < MAX_OPTIONS; own++)
		all[n++] = *own;
	memset(&all[n], 0, sizeof(all[n]));
	if (!ctl->home)
		ctl->home = leading_home	   ? leading_home
			    : getenv("GOVFS_HOME") ? getenv("GOVFS_HOME")
						   : HOME_DEFAULT;
	if (!ctl->key_file)
		ctl->key_file =
		    leading_key_file ? leading_key_file : DEFAULT_KEY_FILE;
	optind = 1;
	opterr = 0;
	*npos = 0;
	while ((opt = getopt_long(argc, argv, "-", all, NULL)) != -1) {
		switch (opt) {
		case OPT_HOME:
			ctl->home = optarg;
			break;
		case OPT_KEY_FILE:
			ctl->key_file = optarg;
			break;
		case OPT_JSON:
			ctl->json = true;
			break;
		case 1:
			if (*npos == max_pos)
				return usage_error("unexpected argument '%s'",
						   optarg);
			pos[(*npos)++] = optarg;
			break;
		case '?':
			return usage_error("unknown or incomplete option '%s'",
					   argv[optind - 1]);
		default:
			if (!on_opt || on_opt(ctx, opt, optarg))
				return EXIT_USAGE;
		}
	}
	/* What follows "--" is positional, even if it starts with '-'. */
	for (; optind < argc; optind++) {
		if (*npos == max_pos)
			return usage_error("unexpected argument '%s'",
					   argv[optind]);
		pos[(*npos)++] = argv[optind];
	}
	return 0;
}

static int init_key(const char *key_file)
{
	struct master_key mk;
	char why[256];
	int rc = master_key_create(key_file);

	if (rc == -EEXIST) {
		if (master_key_load(key_file, &mk, why, sizeof(why)))
			return fail("%s: %s", key_file, why);
		memset(&mk, 0, sizeof(mk));
		return 0;
	}
	if (rc)
		return fail("%s: %s", key_file, strerror(-rc));
	warning("created master key %s (back it up: without it "
		"the home cannot be read)",
		key_file);
	return 0;
}

enum { OPT_RETENTION = 256 };

static int init_option(void *ctx, int opt, const char *arg)
{
	long *days = ctx;

	if (opt == OPT_RETENTION &&
	    parse_long(arg, 1, AUDIT_RETENTION_DAYS_MAX, days))
		return 0;
	usage_error("--retention-days '%s': want a whole number of days from "
		    "1 to %d",
		    arg, AUDIT_RETENTION_DAYS_MAX);
	return -1;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"retention-days", required_argument, NULL, OPT_RETENTION},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {0};
	struct catalog *cat;
	char path[PATH_MAX];
	long days = AUDIT_RETENTION_DAYS_DEFAULT;
	int rc, npos;

	rc = ctl_parse(&ctl, argc, argv, opts, init_option, &days, NULL, 0,
		       &npos);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/catalog.db", ctl.home);
	if (access(path, F_OK) == 0)
		return fail("%s: already holds a catalog", ctl.home);
	/* The key is checked before the home is made: a refusal leaves the
	 * directory as empty as it was, for the retry. */
	rc = home_check_new(ctl.home);
	if (rc == -EEXIST)
		return fail(
		    "%s: not empty (init wants a new or empty directory)",
		    ctl.home);
	if (rc)
		return fail("%s: %s", ctl.home, strerror(-rc));
	rc = init_key(ctl.key_file);
	if (rc)
		return rc;
	rc = home_create(ctl.home);
	if (rc)
		return fail("%s: %s", ctl.home, strerror(-rc));
	rc = catalog_create(ctl.home, &cat);
	if (rc)
		return fail("%s: cannot create catalog: %s", path,
			    strerror(-rc));
	catalog_close(cat);
	if (chmod(path, 0600))
		return fail("%s: %s", path, strerror(errno));
	rc = audit_create(ctl.home, (int)days);
	if (rc)
		return fail("%s/audit.db: %s", ctl.home, strerror(-rc));
	rc = record_admin_action(&ctl, "init", NULL, AUDIT_NULL, NULL);
	if (rc)
		return rc;
	printf("initialised %s (key %s, audit retention %ld days)\n", ctl.home,
	       ctl.key_file, days);
	return 0;
}

/*
 * Take --home and --key-file ("--home DIR" or "--home=DIR") that come
 * before the verb; returns how many arguments they used, or -1 if one
 * lacks its value.
 */
static int take_leading_options(int argc, char **argv)
{
	int i = 1;

	while (i < argc) {
		const char **dst = &leading_home, *value = NULL;
		enum option_form form = option_form(argv[i], "--home", &value);

		if (form == NOT_THIS_OPTION) {
			dst = &leading_key_file;
			form = option_form(argv[i], "--key-file", &value);
		}
		if (form == NOT_THIS_OPTION)
			break;
		if (form == VALUE_NEXT) {
			if (i + 1 >= argc)
				return -1;
			value = argv[++i];
		}
		*dst = value;
		i++;
	}
	return i - 1;
}

int main(int argc, char **argv)
{
	int used = take_leading_options(argc, argv);

	/* Everything govfsctl creates under the home is for its owner alone. */
	umask(077);
	/*
	 * A fixed threshold keeps glibc from raising it as large blocks are
	 * freed: the view tables' arenas and slot arrays then go back to the
	 * system when a table spills, and the memory budget holds for RSS.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	if (used < 0)
		return usage_error("%s needs a value", argv[argc - 1]);
	argv[used] = argv[0];
	argc -= used;
	argv += used;
	if (argc < 2)
		return usage_error("a verb is needed (see govfsctl --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(argv[1], "dataset"))
		return cmd_dataset(argc - 1, argv + 1);
	if (!strcmp(argv[1], "agreement"))
		return cmd_agreement(argc - 1, argv + 1);
	if (!strcmp(argv[1], "audit"))
		return cmd_audit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "mounts"))
		return cmd_mounts(argc - 1, argv + 1);
	return usage_error("unknown verb '%s' (see govfsctl --help)", argv[1]);
}
