/*
 * agreement: the policy file of SPEC, parsed into a struct agreement and
 * validated, first on its own (agreement_parse), then against the catalog's
 * dataset schemas (agreement_check).  Every refusal names the JSON path:
 * "$.datasets[0].columns.phone: unknown rule 'mask:x'".
 *
 * An agreement owns all its strings and arrays; agreement_release() frees
 * them.
 */
#ifndef GOVFS_AGREEMENT_H
#define GOVFS_AGREEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ident.h"
#include "perr.h"
#include "schema.h"

enum rule_kind {
	RULE_KEEP,
	RULE_DROP,
	RULE_NULL,
	RULE_REDACT,
	RULE_PSEUDONYM,
	RULE_MASK_FIRST, /* n */
	RULE_MASK_LAST,	 /* n */
	RULE_PREFIX,	 /* n */
	RULE_DATE_YEAR,
	RULE_DATE_MONTH,
	RULE_DATE_DAY,
	RULE_BUCKET, /* width */
};

struct rule {
	enum rule_kind kind;
	unsigned n;  /* MASK_*, PREFIX: N >= 1 */
	char *width; /* BUCKET: canonical positive decimal text, else NULL */
};

/* Parse "keep", "mask:last4", "bucket:0.5", ...; 0, -ENOMEM, or -EINVAL
 * (err says why, without a path: the caller adds it). */
int rule_parse(const char *text, struct rule *out, struct perr *err);
/* The rule written back as text ("mask:last4"); static or in buf.  Every
 * rule's text fits in RULE_TEXT_MAX bytes with its NUL (rule_parse refuses
 * a longer bucket width); a smaller buf truncates. */
#define RULE_TEXT_MAX 64

/* The largest quota.bytes_per_day: 2^44 - 1 (the daemons' counter). */
#define AGREEMENT_QUOTA_MAX ((1LL << 44) - 1)
const char *rule_text(const struct rule *rule, char *buf, size_t len);
void rule_release(struct rule *rule);

struct column_rule {
	char *column;
	struct rule rule;
};

enum measure_kind {
	MEASURE_COUNT,
	MEASURE_COUNT_DISTINCT,
	MEASURE_SUM,
	MEASURE_AVG,
	MEASURE_MIN,
	MEASURE_MAX,
};

struct measure {
	enum measure_kind kind;
	char *column; /* NULL for count */
};

/* The header name of a measure: "count", "sum_cost", ...; the caller
 * frees it.  NULL on ENOMEM. */
char *measure_header(const struct measure *m);

struct group_key {
	char *column;
	bool has_rule;
	struct rule rule; /* generalising: date:*, bucket:W, prefix:N */
};

struct view {
	char *name;
	size_t nkeys;
	struct group_key *keys;
	size_t nmeasures;
	struct measure *measures;
	unsigned min_group; /* default 10, >= 2 */
	char *entity;	    /* NULL if absent */
};

struct agreement_dataset {
	char *dataset;
	bool records;	 /* default true */
	char *rows;	 /* filter text, NULL if absent */
	size_t ncolumns; /* in the file's order */
	struct column_rule *columns;
	size_t nviews;
	struct view *views;
};

struct agreement {
	char *id;
	char *grantee;
	char *scenario;
	size_t nuids;
	uid_t *uids;
	int max_level;	       /* default 3 */
	int64_t valid_from_ns; /* Unix time, nanoseconds */
	int valid_from_offset; /* the offset written, in minutes east of UTC */
	int64_t valid_until_ns;
	int valid_until_offset;
	bool has_quota;
	uint64_t quota_bytes_per_day;
	size_t ndatasets;
	struct agreement_dataset *datasets;
};

/*
 * Parse and validate a policy file on its own: every key known, every type
 * right, ids matching [a-z0-9][a-z0-9._-]{0,63}, uids non-empty, times with
 * an offset and valid_from < valid_until, rules and measures well formed,
 * min_group >= 2, no dataset listed twice, view names unique and safe as
 * file names.  On error *out is left empty.
 */
int agreement_parse(const char *text, size_t len, struct agreement *out,
		    struct perr *err) __attribute__((warn_unused_result));

/* Gives the schema of a catalogued dataset, or NULL if there is none. */
typedef const struct schema *(*schema_lookup_fn)(void *ctx,
						 const char *dataset);

/*
 * Validate a parsed agreement against the catalog: every dataset exists,
 * every column named exists, every rule fits its column's type, nothing
 * above max_level is shown in recognisable form (see SPEC), a records:true
 * dataset shows at least one column, views name existing columns with
 * fitting measures and unique header names.
 */
int agreement_check(const struct agreement *agr, schema_lookup_fn lookup,
		    void *ctx, struct perr *err)
    __attribute__((warn_unused_result));

/* The dataset entry for id, or NULL. */
const struct agreement_dataset *agreement_find_dataset(
    const struct agreement *agr, const char *id);

/* The rule for column name in ds: RULE_DROP if it is not named. */
const struct rule *agreement_dataset_rule(const struct agreement_dataset *ds,
					  const char *column);

/* Whether a and b define the same view: name, group keys with their
 * rules, measures, min_group and entity. */
bool view_same(const struct view *a, const struct view *b);

void agreement_release(struct agreement *agr);

/*
 * Parse an RFC 3339 time that must carry an offset ("Z" or +-HH:MM).
 * *ns is Unix nanoseconds, *offset_min the offset written.
 */
int time_parse_rfc3339(const char *s, int64_t *ns, int *offset_min)
    __attribute__((warn_unused_result));

#endif
