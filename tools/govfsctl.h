/*
 * govfsctl: shared state of one admin command (home, key, catalog, lock)
 * and the helpers every verb uses to report errors and print results.
 */
#ifndef GOVFS_GOVFSCTL_H
#define GOVFS_GOVFSCTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "agreement.h"
#include "catalog.h"
#include "keys.h"
#include "sizeindex.h"

/* Exit codes of SPEC. */
#define EXIT_REFUSED 1
#define EXIT_USAGE 2

struct ctl {
	const char *home;
	const char *key_file;
	bool json;
	struct catalog *cat;
	struct master_key mk;
	int lock_fd;
	char admin[128];   /* who is acting */
	bool home_checked; /* by ctl_check_home: ctl_open need not again */
};

/* How a verb opens the home. */
enum ctl_mode {
	CTL_READ,   /* read the catalog */
	CTL_CHANGE, /* take the admin lock, clean up interrupted changes */
	/*
	 * Change an agreement's state: a writable catalog without the admin
	 * lock, so that a cut never waits for an ingest to finish.
	 */
	CTL_STATE,
};

/*
 * Check that the home is closed to everyone but its owner (ctl_open does
 * unless this did).  Prints the error and returns EXIT_REFUSED on failure.
 */
int ctl_check_home(struct ctl *ctl);

/*
 * Check the home and key and open the catalog as mode says.  Prints the
 * error and returns EXIT_REFUSED on failure.
 */
int ctl_open(struct ctl *ctl, enum ctl_mode mode);
void ctl_close(struct ctl *ctl);

/* A verb's own option: return 0, or -1 after printing a usage error. */
typedef int (*opt_fn)(void *ctx, int opt, const char *arg);

/*
 * Parse a verb's arguments (argv[0] is the verb): --home, --key-file and
 * --json go into ctl, the verb's own options (ids >= 256) to on_opt, and
 * up to max_pos positional arguments (all after "--") into pos.  0 or
 * EXIT_USAGE.
 */
int ctl_parse(struct ctl *ctl, int argc, char **argv, const struct option *own,
	      opt_fn on_opt, void *ctx, char **pos, int max_pos, int *npos);

/* Parse a decimal number in [min, max]. */
bool parse_long(const char *s, long min, long max, long *out);

/*
 * Errors and warnings: each prints "govfsctl: <message>" on stderr, on one
 * line: its control characters written \xHH (TEXT_LINE of jsonpath.h).
 */
/* Print it; returns EXIT_REFUSED. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print it; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print it, and go on. */
void warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * What -errno rc from reading a dataset's store means, for an error:
 * a damaged store file (-EBADMSG), a key that does not open it (-EIO),
 * else strerror.
 */
const char *store_error_text(int rc);

/*
 * Text from the catalog, the audit log or the command line (a column
 * name, a reason, a process name), for human output: made TEXT_SHOWN
 * (jsonpath.h), so that it cannot split or forge a line, nor reach the
 * terminal as an escape sequence.  The string stays valid for the next 7
 * calls (govfsctl prints from one thread); "?" when out of memory.
 */
const char *shown(const char *s);

/*
 * Refuse an id from the command line that does not follow SPEC's id
 * pattern (what: "dataset" or "agreement"), quoting it safely: one line
 * whatever it holds.  0 or EXIT_REFUSED.
 */
int check_id(const char *what, const char *id);

/* Print a JSON value on stdout (indented), then a newline.  Steals v. */
int print_json(json_t *v);

/* "1.2 MB" into buf. */
const char *human_bytes(uint64_t n, char *buf, size_t len);

/* JSON string of a time, RFC 3339 UTC; steals nothing. */
json_t *json_time(int64_t ns);

/*
 * JSON string of s, or null if s is NULL.  JSON holds only UTF-8, so s
 * that is not (a path or a process name may hold any bytes) is written as
 * made TEXT_UTF8 (jsonpath.h), rather than the key being lost.
 */
json_t *json_text(const char *s);

/* Read a whole small file (at most max bytes) into a NUL-terminated buffer. */
int read_small_file(const char *path, size_t max, char **out, size_t *len);

/* Verbs.  argc/argv start at the verb's own arguments. */
int cmd_init(int argc, char **argv);
int cmd_dataset(int argc, char **argv);
int cmd_agreement(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_mounts(int argc, char **argv);

/* agreement suspend|resume|revoke; argv[0] is the verb. */
int agreement_lifecycle(int argc, char **argv);

/*
 * Record an admin action in the audit log, after the change it records.
 * Prints the error and returns EXIT_REFUSED if it cannot be recorded.
 */
int record_admin_action(struct ctl *ctl, const char *event,
			const char *agreement, int64_t revision,
			const char *reason);

/* dataset add, in ingest.c */
struct ingest_args {
	const char *id;
	const char *file;
	const char *schema_file;
	const char *title;
	const char *provider;
};
int ingest_dataset(struct ctl *ctl, const struct ingest_args *args);

/*
 * Schemas of the newest dataset versions, looked up once each, for
 * agreement_check; override, when set, stands for dataset override_id.
 */
struct schema_cache {
	struct catalog *cat;
	const char *override_id;
	const struct schema *override;
	size_t n;
	struct schema_cache_entry {
		char *id;
		bool found;
		struct schema schema;
	} * entries;
};

const struct schema *schema_cache_lookup(void *ctx, const char *dataset);
void schema_cache_release(struct schema_cache *sc);

/* Parse the stored canonical text of an agreement revision. */
int agreement_from_record(const struct agreement_record *rec,
			  struct agreement *out);

/*
 * The exact data.csv size index of version v under entry ds of an
 * agreement whose plain pseudonym key is key (NULL if none).  err says why
 * the agreement cannot show v; else -errno.
 */
int compute_size_index(struct ctl *ctl, const struct agreement_dataset *ds,
		       const struct dataset_version *v, const uint8_t *key,
		       struct size_index *out, struct perr *err);

/* Computed view results of one dataset entry, not yet recorded: each
 * with the plain size index of its CSV. */
struct view_results {
	size_t n;
	struct computed_view {
		struct view_result rec;
		struct size_index sizes;
	} * v;
};

/*
 * Compute every view of entry ds of agreement over version v (plain
 * pseudonym key key, or NULL): result files go into HOME/store, named in
 * out with the agreement, dataset and view.  err says why the agreement
 * cannot show v (-EINVAL); else -errno.  On error nothing is left.
 */
int compute_views(struct ctl *ctl, const char *agreement,
		  const struct agreement_dataset *ds,
		  const struct dataset_version *v, const uint8_t *key,
		  struct view_results *out, struct perr *err);

/*
 * Record, in the caller's transaction, what revision at->revision of
 * agreement at->agreement shows of version at->version of at->dataset
 * (at->view is NULL): the size index of its data.csv (si; NULL when the
 * entry shows none) and its view results r, each size index sealed under
 * the agreement's size_key.
 */
int record_version_files(struct catalog *cat, const uint8_t size_key[KEY_LEN],
			 const struct size_index_place *at,
			 const struct size_index *si, struct view_results *r);

/*
 * Whether the catalog holds a size index for at (a data.csv, or a view
 * result's) that opens under size_key.
 */
bool size_index_recorded(struct catalog *cat, const uint8_t size_key[KEY_LEN],
			 const struct size_index_place *at);

/* Lines of a plan: each view's groups and bytes. */
void print_views(const struct view_results *r);

/* Free r; the files stay (they are recorded). */
void view_results_release(struct view_results *r);

/* Remove r's files (they were not recorded) and free r. */
void view_results_discard(const char *home, struct view_results *r);

#endif
