/*
 * govfs: the FUSE daemon (libfuse3 low-level API).  One mount serves one
 * agreement: README.txt, and per dataset data.csv, schema.json and views/.
 * This file owns the command line, the checks on the mount point, start-up
 * (the first state, the audit log, the mount and its registration),
 * the session loop and shutdown, and the state g that the daemon's modules
 * share (govfs.h).  Requests are answered by handlers, the state is kept
 * current by lifecycle, inodes are numbered by nodes; what the files hold
 * comes from mount_state, rendered blocks from blockcache.
 */
#include <errno.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agreement.h"
#include "audit.h"
#include "blockcache.h"
#include "caller.h"
#include "catalog.h"
#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "govfs.h"
#include "handlers.h"
#include "home.h"
#include "jsonpath.h"
#include "keys.h"
#include "lifecycle.h"
#include "mount_state.h"
#include "nodes.h"
#include "quota.h"
#include "viewnodes.h"

#define DEFAULT_CACHE_MB 64
/* FUSE worker threads, at most (each started on demand, then kept). */
#define WORKERS_MAX 16

struct govfs g;

struct mount_state *current_state(void)
{
	struct mount_state *st;

	pthread_rwlock_rdlock(&g.serve_lock);
	st = mount_state_get(g.state);
	pthread_rwlock_unlock(&g.serve_lock);
	return st;
}

/* Room for a path with every byte escaped. */
#define SHOWN_MAX (PATH_MAX * 4)

static const char usage_text[] =
    "usage: govfs --home DIR --agreement ID [--key-file F] [-f] "
    "[-o opts] MOUNTPOINT\n"
    "  -o cache_mb=N   rendered-block cache (default 64)\n"
    "  -o cpu_nice=N   serve at nice N (0 to 19; default 0): a saturated "
    "machine\n"
    "                  then runs admin commands, and cuts, first\n"
    "  other -o options go to FUSE; allow_other and auto_unmount are "
    "always on\n";

static int parse_mount_options(char *opts, struct fuse_args *args)
{
	char *save = NULL;

	for (char *o = strtok_r(opts, ",", &save); o;
	     o = strtok_r(NULL, ",", &save)) {
		long mb;
		char *end;

		if (!strncmp(o, "cache_mb=", 9)) {
			mb = strtol(o + 9, &end, 10);
			if (*end || mb < 1 || mb > 65536) {
				fprintf(stderr,
					"govfs: -o %s: want 1 to "
					"65536\n",
					o);
				return -1;
			}
			g.cache_bytes = (size_t)mb << 20;
		} else if (!strncmp(o, "cpu_nice=", 9)) {
			long nice = strtol(o + 9, &end, 10);

			if (*end || end == o + 9 || nice < 0 || nice > 19) {
				fprintf(stderr, "govfs: -o %s: want 0 to 19\n",
					o);
				return -1;
			}
			g.cpu_nice = (int)nice;
		} else if (!strcmp(o, "default_permissions")) {
			fprintf(stderr, "govfs: -o default_permissions: govfs "
					"checks every caller itself\n");
			return -1;
		} else if (fuse_opt_add_arg(args, "-o") ||
			   fuse_opt_add_arg(args, o)) {
			return -1;
		}
	}
	return 0;
}

/*
 * -o cpu_nice=N.  With autogroup scheduling the kernel weighs a session
 * as one, whatever its threads' nice: a daemon leads its own session, so
 * set that group's nice too (in the foreground, the caller's session is
 * left alone and only the daemon's threads are niced).  The control
 * thread still runs a cut ahead of everything (control_run_ahead).
 */
static void lower_cpu_weight(void)
{
	FILE *f;
	bool failed;

	if (!g.cpu_nice)
		return;
	if (setpriority(PRIO_PROCESS, 0, g.cpu_nice))
		fprintf(stderr, "govfs: -o cpu_nice: %s\n", strerror(errno));
	if (g.foreground || getsid(0) != getpid())
		return;
	f = fopen("/proc/self/autogroup", "we");
	if (!f && errno == ENOENT)
		return; /* no autogroups: the nice above rules */
	failed = !f || fprintf(f, "%d", g.cpu_nice) < 0;
	if ((f && fclose(f)) || failed)
		fprintf(stderr,
			"govfs: -o cpu_nice: /proc/self/autogroup: %s\n",
			strerror(errno));
}

/* A usage error on one line, pointing at --help; returns exit code 2. */
static int usage_error(const char *fmt, ...)
{
	char what[512], shown[sizeof(what) * 4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr, "govfs: %s (see govfs --help)\n",
		text_escape(shown, sizeof(shown), what, TEXT_SHOWN));
	return 2;
}

/*
 * The usage error of an option getopt refused: arg is the argument it was
 * in, a long option by name, or short ones bundled ("-fx"), of which
 * optopt is the one refused.
 */
static int bad_option(const char *arg)
{
	if (!strncmp(arg, "--", 2) || !optopt)
		return usage_error("unknown or incomplete option '%s'", arg);
	return usage_error("unknown or incomplete option '-%c'", optopt);
}

static int parse_args(int argc, char **argv, struct fuse_args *args)
{
	static const struct option opts[] = {
	    {"home", required_argument, NULL, 'H'},
	    {"agreement", required_argument, NULL, 'a'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *home =
	    getenv("GOVFS_HOME") ? getenv("GOVFS_HOME") : HOME_DEFAULT;
	static char shown[SHOWN_MAX];
	int opt;

	g.key_file = DEFAULT_KEY_FILE;
	g.cache_bytes = (size_t)DEFAULT_CACHE_MB << 20;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "fo:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'H':
			home = optarg;
			break;
		case 'a':
			g.agreement = optarg;
			break;
		case 'k':
			g.key_file = optarg;
			break;
		case 'f':
			g.foreground = true;
			break;
		case 'o':
			if (parse_mount_options(optarg, args))
				return 2;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		default:
			return bad_option(argv[optind - 1]);
		}
	}
	if (!g.agreement)
		return usage_error("--agreement ID is required");
	if (optind != argc - 1)
		return usage_error("want one MOUNTPOINT, got %d arguments",
				   argc - optind);
	/* It names files under the home: never let it name others. */
	if (!id_is_valid(g.agreement)) {
		char q[QUOTE_LEN];

		fprintf(stderr,
			"govfs: agreement id '%s': want "
			"[a-z0-9][a-z0-9._-]{0,63}\n",
			text_quote(q, g.agreement));
		return 1;
	}
	if (!realpath(home, g.home)) {
		fprintf(stderr, "govfs: %s: %s\n",
			text_escape(shown, sizeof(shown), home, TEXT_SHOWN),
			strerror(errno));
		return 1;
	}
	if (!realpath(argv[optind], g.mountpoint)) {
		text_escape(shown, sizeof(shown), argv[optind], TEXT_SHOWN);
		if (errno == ENOTCONN)
			fprintf(stderr,
				"govfs: %s: a stale mount (transport "
				"endpoint not connected) is in the "
				"way; run: fusermount3 -u %s\n",
				shown, shown);
		else
			fprintf(stderr, "govfs: %s: %s\n", shown,
				strerror(errno));
		return 1;
	}
	return 0;
}

/* Undo mountinfo's octal escapes ("\040" for a space) in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 |
					(s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* Whether path is already a mount point (of anything). */
static bool is_mount_point(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192], mp[PATH_MAX];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		unescape_mountinfo(mp);
		found = !strcmp(mp, path);
	}
	fclose(f);
	return found;
}

/* Whether path is dir or lies under it (both resolved, absolute). */
static bool path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (n == 1)
		return true; /* "/" */
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

/*
 * A mount over the home (or one of its parents) would hide the catalog and
 * the store from govfsctl and from this daemon's own reloads, which would
 * then call into the mount they serve; one inside the home would put
 * analysts' files among the admin's.
 */
static int check_mountpoint_place(void)
{
	static char mp[SHOWN_MAX], home[SHOWN_MAX];

	text_escape(mp, sizeof(mp), g.mountpoint, TEXT_SHOWN);
	text_escape(home, sizeof(home), g.home, TEXT_SHOWN);
	if (path_within(g.home, g.mountpoint)) {
		fprintf(stderr,
			"govfs: %s: refused: mounting there would hide the "
			"home %s\n",
			mp, home);
		return 1;
	}
	if (path_within(g.mountpoint, g.home)) {
		fprintf(stderr, "govfs: %s: refused: inside the home %s\n", mp,
			home);
		return 1;
	}
	return 0;
}

static int check_mountpoint(void)
{
	static char mp[SHOWN_MAX];
	struct stat st;

	text_escape(mp, sizeof(mp), g.mountpoint, TEXT_SHOWN);
	if (stat(g.mountpoint, &st)) {
		fprintf(stderr, "govfs: %s: %s%s\n", mp, strerror(errno),
			errno == ENOTCONN ? " (a stale mount: run fusermount3 "
					    "-u on it)"
					  : "");
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "govfs: %s: not a directory\n", mp);
		return 1;
	}
	if (is_mount_point(g.mountpoint)) {
		fprintf(stderr,
			"govfs: %s: already a mount point; unmount it "
			"first (fusermount3 -u %s)\n",
			mp, mp);
		return 1;
	}
	return check_mountpoint_place();
}

static int load_initial_state(void)
{
	char path[PATH_MAX], why[512];
	int rc;

	if (home_check(g.home, path, sizeof(path), why, sizeof(why))) {
		fprintf(stderr, "govfs: %s: %s\n", path, why);
		return 1;
	}
	if (master_key_load(g.key_file, &g.mk, why, sizeof(why))) {
		fprintf(stderr, "govfs: %s: %s\n", g.key_file, why);
		return 1;
	}
	rc = catalog_open(g.home, true, &g.cat);
	if (!rc)
		rc = catalog_data_version(g.cat, &g.seen_version);
	if (rc) {
		fprintf(stderr, "govfs: %s/catalog.db: %s\n", g.home,
			strerror(-rc));
		return 1;
	}
	/* The audit log is not open yet: the refresh thread notes its space. */
	rc = mount_state_load(g.cat, g.home, &g.mk, g.agreement, NULL, false,
			      &g.state, why, sizeof(why));
	if (!rc && !strcmp(g.state->rec.state, "revoked")) {
		snprintf(why, sizeof(why), "agreement '%s' is revoked",
			 g.agreement);
		rc = -EACCES;
	}
	if (rc) {
		fprintf(stderr, "govfs: %s\n", why);
		return 1;
	}
	report_faults(NULL, g.state);
	/* Only for an agreement that exists and may be served. */
	rc = quota_open(g.home, g.agreement, &g.quota);
	if (rc) {
		fprintf(stderr, "govfs: %s/%s/%s: %s\n", g.home, HOME_QUOTA_DIR,
			g.agreement, strerror(-rc));
		return 1;
	}
	return 0;
}

static int add_fixed_options(struct fuse_args *args)
{
	char opts[256];

	snprintf(opts, sizeof(opts),
		 "allow_other,auto_unmount,ro,fsname=govfs:%s,subtype=govfs",
		 g.agreement);
	return fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts);
}

/* The daemon's own records: mount and unmount, by the daemon itself. */
static int audit_lifecycle(const char *event, uint64_t *ticket)
{
	struct mount_state *st = current_state();
	struct caller self;
	int rc;

	caller_resolve(getuid(), getpid(), &self);
	rc = audit(st->rec.revision, &self, event, "/", AUDIT_NULL, AUDIT_NULL,
		   AUDIT_NULL, 0, 0, ticket);
	mount_state_put(st);
	return rc;
}

/* Record that the daemon of m ended without its unmount record. */
static void mark_missing_unmount(const struct mount_record *m)
{
	struct audit_event ev = AUDIT_EVENT_INIT("unmount", "ECONNABORTED");
	char reason[160];

	snprintf(reason, sizeof(reason),
		 "the daemon ended without unmounting %s (killed or crashed); "
		 "noticed by pid %ld",
		 m->mountpoint, (long)getpid());
	ev.agreement = m->agreement;
	ev.pid = m->pid;
	ev.uid = getuid();
	ev.comm = "govfs";
	ev.path = "/";
	ev.reason = reason;
	/* Forgetting it first makes this daemon the one that records it. */
	if (catalog_mount_unregister(g.cat_rw, m->socket))
		return;
	if (audit_log_append(g.audit, &ev, NULL))
		fprintf(stderr, "govfs: cannot record the end of pid %lld\n",
			(long long)m->pid);
}

/*
 * Registered daemons that no longer listen died without unmounting (kill
 * -9, a crash): mark each in the audit log, once, and forget it.
 */
static void mark_dead_mounts(void)
{
	struct control_call *calls;
	struct mount_record *m;
	size_t n;

	if (catalog_mount_list(g.cat_rw, NULL, &m, &n))
		return;
	calls = control_call_mounts(m, n, "stats", 1000);
	for (size_t i = 0; calls && i < n; i++)
		if (calls[i].rc == -ECONNREFUSED || calls[i].rc == -ENOENT)
			mark_missing_unmount(&m[i]);
	free(calls);
	mount_records_free(m, n);
}

/*
 * Listen for govfsctl and register in the catalog, so that a lifecycle
 * command finds this mount and waits for it to cut.
 */
static int register_mount(void)
{
	struct mount_record m;
	int rc = catalog_open(g.home, false, &g.cat_rw);

	if (rc) {
		fprintf(stderr, "govfs: %s/catalog.db: %s\n", g.home,
			strerror(-rc));
		return rc;
	}
	mark_dead_mounts();
	rc = control_start(g.home, on_control, NULL, &g.control);
	if (rc) {
		fprintf(stderr, "govfs: %s/%s: control socket: %s\n", g.home,
			HOME_RUN_DIR, strerror(-rc));
		return rc;
	}
	m.socket = (char *)control_path(g.control);
	m.agreement = (char *)g.agreement;
	m.pid = getpid();
	m.mountpoint = g.mountpoint;
	m.started_ns = g.started_ns;
	rc = catalog_mount_register(g.cat_rw, &m);
	if (rc)
		fprintf(stderr, "govfs: cannot register the mount: %s\n",
			strerror(-rc));
	return rc;
}

static void unregister_mount(void)
{
	int rc;

	if (!g.control)
		return;
	rc = catalog_mount_unregister(g.cat_rw, control_path(g.control));
	if (rc && rc != -ENOENT)
		fprintf(stderr, "govfs: cannot unregister the mount: %s\n",
			strerror(-rc));
	control_stop(g.control);
	g.control = NULL;
}

/* Mount, record it durably, and only then tell the parent we serve. */
static int start_serving(struct fuse_args *args)
{
	uint64_t ticket;
	int rc = audit_log_open(g.home, &g.audit);

	if (rc) {
		fprintf(stderr, "govfs: %s/audit.db: %s\n", g.home,
			strerror(-rc));
		return 1;
	}
	g.se = fuse_session_new(args, &govfs_ops, sizeof(govfs_ops), NULL);
	/* An -o option FUSE does not know (libfuse has said which): usage. */
	if (!g.se)
		return 2;
	if (fuse_set_signal_handlers(g.se))
		return 1;
	if (fuse_session_mount(g.se, g.mountpoint))
		return 1;
	if (audit_lifecycle("mount", &ticket) ||
	    audit_log_wait(g.audit, ticket)) {
		fprintf(stderr, "govfs: audit log: cannot record the mount\n");
		fuse_session_unmount(g.se);
		return 1;
	}
	return register_mount() ? 1 : 0;
}

static void stop_serving(void)
{
	unregister_mount();
	if (g.se) {
		fuse_session_unmount(g.se);
		fuse_remove_signal_handlers(g.se);
		fuse_session_destroy(g.se);
	}
	if (g.audit) {
		/* Closing writes what is queued, the unmount included. */
		(void)audit_lifecycle("unmount", NULL);
		audit_log_close(g.audit);
	}
}

static int serve(struct fuse_args *args)
{
	struct fuse_loop_config *config;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int rc;

	rc = start_serving(args);
	daemon_ready(rc);
	if (rc) {
		stop_serving();
		return rc;
	}
	g.cache = blockcache_new(g.cache_bytes, cpus > 1 ? (unsigned)cpus : 1);
	g.refresher_started =
	    !pthread_create(&g.refresher, NULL, refresher_main, NULL);
	config = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(config, WORKERS_MAX);
	/* Keep every worker once started: a thread that exits when idle is
	 * made again by the next burst, which costs a clone, a stack's page
	 * faults and CPU that concurrent readers (and a cut) then wait for. */
	fuse_loop_cfg_set_idle_threads(config, WORKERS_MAX);
	/* The loop returns the signal that stopped it: a clean stop. */
	rc = g.cache ? fuse_session_loop_mt(g.se, config) : 1;
	rc = rc == 0 || rc == SIGTERM || rc == SIGINT || rc == SIGHUP ? 0 : 1;
	fuse_loop_cfg_destroy(config);
	atomic_store(&g.stopping, true);
	if (g.refresher_started)
		pthread_join(g.refresher, NULL);
	stop_serving();
	return rc;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	pthread_rwlockattr_t attr;
	int rc;

	umask(077);
	g.started_ns = clock_now_ns();
	pthread_mutex_init(&g.reload_lock, NULL);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(
	    &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&g.serve_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	g.views = viewnodes_new();
	rc = !g.views || fuse_opt_add_arg(&args, argv[0])
		 ? 1
		 : parse_args(argc, argv, &args);
	if (!rc)
		rc = check_mountpoint();
	/*
	 * Fork before anything opens the catalog: SQLite's locks belong to
	 * the process that took them, and a connection carried across a
	 * fork would hold none (another process could then delete the WAL
	 * under it).
	 */
	if (!rc && !g.foreground && daemon_fork())
		rc = 1;
	if (!rc)
		lower_cpu_weight();
	if (!rc)
		rc = load_initial_state();
	if (!rc)
		rc = add_fixed_options(&args) ? 1 : serve(&args);
	else
		daemon_ready(rc);
	blockcache_free(g.cache);
	mount_state_put(g.state);
	catalog_close(g.cat);
	catalog_close(g.cat_rw);
	quota_close(g.quota);
	dataset_slots_release();
	viewnodes_free(g.views);
	fuse_opt_free_args(&args);
	memset(&g.mk, 0, sizeof(g.mk));
	return rc;
}
