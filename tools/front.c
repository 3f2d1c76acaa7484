/*
 * govfsctl: the front of the admin tool.  It links nothing but libc, so
 * it reaches main in a fraction of the time govfsctl-core takes to load
 * OpenSSL, SQLite, zstd, jansson and ipsec-mb, and then execs
 * govfsctl-core with the same arguments.  For `agreement suspend` and
 * `agreement revoke` it first holds the agreement's daemons (holds.h),
 * ahead of the readers (control_run_ahead), and hands the holds over: on a
 * machine whose CPUs readers keep busy, access is cut before the core has
 * even been loaded.  The core commits the change and ends the holds with
 * its cut.  A command the front is not sure of, it leaves whole to the
 * core, which then holds by itself.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "control.h"
#include "holds.h"
#include "home.h"
#include "ident.h"
#include "optform.h"

#define CORE_NAME "govfsctl-core"

/* The options the front knows; which may come before the verb. */
enum front_option { OPT_HOME, OPT_KEY_FILE, OPT_REASON, OPT_JSON, OPT_NONE };
static const struct {
	const char *name;
	bool valued, leading;
} options[] = {
    [OPT_HOME] = {"--home", true, true},
    [OPT_KEY_FILE] = {"--key-file", true, true},
    [OPT_REASON] = {"--reason", true, false},
    [OPT_JSON] = {"--json", false, false},
};

/*
 * Which option arg is, as govfsctl-core's getopt_long would take it
 * spelt in full; *joined points at the value of "--name=VALUE", else is
 * NULL.  OPT_NONE for anything else (abbreviations included).
 */
static enum front_option option_of(const char *arg, const char **joined)
{
	for (int o = 0; o < OPT_NONE; o++) {
		enum option_form form =
		    option_form(arg, options[o].name, joined);

		if (form == VALUE_NEXT)
			*joined = NULL;
		if (form == VALUE_NEXT ||
		    (form == VALUE_JOINED && options[o].valued))
			return (enum front_option)o;
	}
	return OPT_NONE;
}

/* A suspend or revoke: the agreement and its home. */
struct cut_request {
	const char *home, *id;
};

/*
 * Whether argv is `[--home D|--key-file F]... agreement suspend|revoke ID`
 * with a non-empty --reason and no option the front does not know, read as
 * govfsctl-core reads it; a strict subset of what the core takes (no
 * abbreviations, no "--"), so the core takes it as a valid command.
 */
static bool read_cut_request(int argc, char **argv, struct cut_request *r)
{
	const char *pos[3], *reason = NULL, *value;
	int npos = 0;

	r->home = getenv("GOVFS_HOME");
	if (!r->home)
		r->home = HOME_DEFAULT;
	for (int i = 1; i < argc; i++) {
		enum front_option o;

		if (argv[i][0] != '-' || !argv[i][1]) {
			if (npos == 3)
				return false;
			pos[npos++] = argv[i];
			continue;
		}
		o = option_of(argv[i], &value);
		/* Before the verb, only --home and --key-file; none between
		 * "agreement" and its verb. */
		if (o == OPT_NONE || npos == 1 ||
		    (!npos && !options[o].leading))
			return false;
		if (options[o].valued && !value) {
			if (i + 1 == argc)
				return false;
			value = argv[++i];
		}
		if (o == OPT_HOME)
			r->home = value;
		else if (o == OPT_REASON)
			reason = value;
	}
	r->id = npos == 3 ? pos[2] : "";
	return npos == 3 && !strcmp(pos[0], "agreement") &&
	       (!strcmp(pos[1], "suspend") || !strcmp(pos[1], "revoke")) &&
	       id_is_valid(r->id) && reason && reason[0];
}

/* Whether home passes the core's checks (sockets in any other are not
 * to be trusted). */
static bool home_sound(const char *home)
{
	char path[PATH_MAX], why[256];

	return !home_check(home, path, sizeof(path), why, sizeof(why));
}

/* Hold r's agreement, ahead of the readers, and hand the holds over. */
static void hold_ahead(const struct cut_request *r, struct holds *h,
		       int64_t start_ns)
{
	struct control_sched was;

	control_run_ahead(&was);
	holds_take(r->home, r->id, HOLD_TIMEOUT_MS, h);
	control_run_as_before(&was);
	/* Without the hand-over (out of memory) the core holds again, to
	 * the same effect. */
	(void)holds_hand_over(h, r->id, start_ns);
}

/* govfsctl-core: next to the front (the build tree, or an install that
 * keeps them together), else where it was installed. */
static const char *core_path(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len);
	char *slash =
	    n > 0 && (size_t)n < len ? memrchr(buf, '/', (size_t)n) : NULL;

	if (slash && (size_t)(slash + 1 - buf) + sizeof(CORE_NAME) <= len) {
		memcpy(slash + 1, CORE_NAME, sizeof(CORE_NAME));
		if (!access(buf, X_OK))
			return buf;
	}
	return GOVFSCTL_CORE;
}

int main(int argc, char **argv)
{
	int64_t start_ns = clock_elapsed_ns();
	struct cut_request r;
	struct holds h = {0};
	char buf[PATH_MAX];
	const char *core;
	size_t n;

	/* Holds are handed over by this front alone, never passed through. */
	unsetenv(HOLDS_ENV);
	if (read_cut_request(argc, argv, &r) && home_sound(r.home))
		hold_ahead(&r, &h, start_ns);
	core = core_path(buf, sizeof(buf));
	execv(core, argv);
	/* Too many daemons to hand over: the core holds by itself. */
	if (errno == E2BIG && getenv(HOLDS_ENV)) {
		unsetenv(HOLDS_ENV);
		execv(core, argv);
	}
	fprintf(stderr, "govfsctl: %s: %s\n", core, strerror(errno));
	/* Nothing will be committed: every daemon held serves again. */
	free(holds_release(&h, &n));
	holds_free(&h);
	return EXIT_FAILURE;
}
