/*
 * agreement: owns the grammar of the policy file and its validation.
 * agreement_parse() turns the JSON text into a struct agreement, checking
 * everything that can be checked without the catalog; agreement_check()
 * then checks it against the datasets' schemas.  The small languages the
 * file is written in (column rules, ids, RFC 3339 times) are parsed here
 * too.  Every refusal is one line naming the JSON path of the fault.
 *
 * The row filter is kept as text: its own module parses it.
 *
 * Decisions where SPEC is silent:
 *  - mask:* and prefix:N fit every type (they work on the text as written);
 *    date:* fits date and datetime; bucket:W fits int and decimal.
 *  - A view's entity may be graded above max_level: it is only counted,
 *    never shown.
 *  - records:false needs at least one view, since the dataset would
 *    otherwise show nothing.
 *  - A bucket width is at most WIDTH_MAX characters once canonical.
 *  - Times may not name a leap second (:60), which Unix time cannot hold,
 *    and must lie within the range of int64 nanoseconds (1677..2262).
 */
#include "agreement.h"

#include "decimal.h"
#include "filter.h"
#include "jsonpath.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define RULE_N_MAX 1000000u
/* The longest bucket width whose rule text fits in RULE_TEXT_MAX. */
#define WIDTH_MAX (RULE_TEXT_MAX - (int)sizeof("bucket:"))
#define MIN_GROUP_DEFAULT 10
#define MAX_LEVEL_DEFAULT 3
/* (uid_t)-1 means "no uid" to chown() and friends. */
#define UID_LAST 4294967294LL
#define NS_PER_SEC 1000000000LL

static const char *const agreement_keys[] = {
    "id",	  "grantee",	 "scenario", "uids",	 "max_level",
    "valid_from", "valid_until", "quota",    "datasets", NULL};
static const char *const quota_keys[] = {"bytes_per_day", NULL};
static const char *const dataset_keys[] = {"dataset", "records", "rows",
					   "columns", "views",	 NULL};
static const char *const view_keys[] = {"name",	     "group_by", "measures",
					"min_group", "entity",	 NULL};
static const char *const group_keys[] = {"column", "rule", NULL};

/* The text of each rule; for rules with an argument, the text before it. */
static const char *const rule_names[] = {
    [RULE_KEEP] = "keep",	    [RULE_DROP] = "drop",
    [RULE_NULL] = "null",	    [RULE_REDACT] = "redact",
    [RULE_PSEUDONYM] = "pseudonym", [RULE_MASK_FIRST] = "mask:first",
    [RULE_MASK_LAST] = "mask:last", [RULE_PREFIX] = "prefix:",
    [RULE_DATE_YEAR] = "date:year", [RULE_DATE_MONTH] = "date:month",
    [RULE_DATE_DAY] = "date:day",   [RULE_BUCKET] = "bucket:",
};

/* The text of each measure, before its ":column" (count has none). */
static const char *const measure_names[] = {
    [MEASURE_COUNT] = "count", [MEASURE_COUNT_DISTINCT] = "count_distinct",
    [MEASURE_SUM] = "sum",     [MEASURE_AVG] = "avg",
    [MEASURE_MIN] = "min",     [MEASURE_MAX] = "max",
};

static const struct rule drop_rule = {.kind = RULE_DROP};

/* ---- error text ---- */

static int nomem(struct perr *err)
{
	perr_set(err, "out of memory");
	return -ENOMEM;
}

/* ---- ids, rules, measures, times: the small languages ---- */

static bool char_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool rule_has_n(enum rule_kind kind)
{
	return kind == RULE_MASK_FIRST || kind == RULE_MASK_LAST ||
	       kind == RULE_PREFIX;
}

/* Whether the rule may generalise a view's group key. */
static bool rule_generalises(enum rule_kind kind)
{
	return kind == RULE_DATE_YEAR || kind == RULE_DATE_MONTH ||
	       kind == RULE_DATE_DAY || kind == RULE_BUCKET ||
	       kind == RULE_PREFIX;
}

/* Whether the rule leaves nothing recognisable of the value, so that it
 * may show a column graded above max_level. */
static bool rule_hides(enum rule_kind kind)
{
	return kind == RULE_DROP || kind == RULE_NULL || kind == RULE_REDACT ||
	       kind == RULE_PSEUDONYM;
}

static bool rule_fits_type(enum rule_kind kind, enum col_type type)
{
	switch (kind) {
	case RULE_DATE_YEAR:
	case RULE_DATE_MONTH:
	case RULE_DATE_DAY:
		return type == COL_DATE || type == COL_DATETIME;
	case RULE_BUCKET:
		return type == COL_INT || type == COL_DECIMAL;
	default:
		return true;
	}
}

/* N of mask:firstN, mask:lastN, prefix:N: 1..RULE_N_MAX, digits only, no
 * leading zero. */
static bool parse_rule_n(const char *s, unsigned *n)
{
	unsigned v = 0;
	size_t i;

	if (s[0] < '1' || s[0] > '9')
		return false;
	for (i = 0; s[i]; i++) {
		if (!char_is_digit(s[i]))
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
		if (v > RULE_N_MAX)
			return false;
	}
	*n = v;
	return true;
}

/*
 * The canonical text of W in bucket:W: [0-9]+(\.[0-9]+)? written without
 * leading zeros (but one before the point), trailing zeros after the point
 * or a trailing point.  Returns 0 with *out allocated, -EINVAL if w is not
 * such a decimal, is zero or is too long, or -ENOMEM.
 */
static int canonical_width(const char *w, char **out)
{
	const char *int_start = w, *int_end, *frac_start = NULL, *frac_end;
	size_t int_len, frac_len, len;
	char *text;

	int_end = int_start;
	while (char_is_digit(*int_end))
		int_end++;
	if (int_end == int_start)
		return -EINVAL;
	frac_end = int_end;
	if (*int_end == '.') {
		frac_start = int_end + 1;
		frac_end = frac_start;
		while (char_is_digit(*frac_end))
			frac_end++;
		if (frac_end == frac_start)
			return -EINVAL;
	}
	if (*frac_end != '\0')
		return -EINVAL;

	while (int_end - int_start > 1 && *int_start == '0')
		int_start++;
	while (frac_start && frac_end > frac_start && frac_end[-1] == '0')
		frac_end--;
	int_len = (size_t)(int_end - int_start);
	frac_len = frac_start ? (size_t)(frac_end - frac_start) : 0;
	if (int_len == 1 && *int_start == '0' && frac_len == 0)
		return -EINVAL;
	len = int_len + (frac_len ? 1 + frac_len : 0);
	if (len > WIDTH_MAX)
		return -EINVAL;

	text = malloc(len + 1);
	if (!text)
		return -ENOMEM;
	memcpy(text, int_start, int_len);
	if (frac_len) {
		text[int_len] = '.';
		memcpy(text + int_len + 1, frac_start, frac_len);
	}
	text[len] = '\0';
	*out = text;
	return 0;
}

/* The argument of a rule whose text starts with rule_names[kind]. */
static int parse_rule_arg(const char *text, enum rule_kind kind,
			  struct rule *out, struct perr *err)
{
	const char *arg = text + strlen(rule_names[kind]);
	char q[QUOTE_LEN];
	int rc;

	out->kind = kind;
	if (kind == RULE_BUCKET) {
		rc = canonical_width(arg, &out->width);
		if (rc == -EINVAL)
			return perr_set(err,
					"bad width in rule '%s' (want a "
					"positive decimal of at most %d "
					"characters)",
					text_quote(q, text), WIDTH_MAX);
		if (rc)
			return nomem(err);
		if (!decimal_width_ok(out->width)) {
			rule_release(out);
			return perr_set(err,
					"bad width in rule '%s' (at most %d "
					"significant digits)",
					text_quote(q, text),
					DECIMAL_WIDTH_DIGITS);
		}
		return 0;
	}
	if (!parse_rule_n(arg, &out->n))
		return perr_set(err,
				"bad N in rule '%s' (want 1..%u, without "
				"leading zeros)",
				text_quote(q, text), RULE_N_MAX);
	return 0;
}

int rule_parse(const char *text, struct rule *out, struct perr *err)
{
	char q[QUOTE_LEN];
	size_t kind;

	memset(out, 0, sizeof(*out));
	for (kind = 0; kind < ARRAY_SIZE(rule_names); kind++) {
		const char *name = rule_names[kind];

		if (rule_has_n(kind) || kind == RULE_BUCKET) {
			if (strncmp(text, name, strlen(name)) == 0)
				return parse_rule_arg(text, kind, out, err);
		} else if (strcmp(text, name) == 0) {
			out->kind = kind;
			return 0;
		}
	}
	return perr_set(err, "unknown rule '%s'", text_quote(q, text));
}

const char *rule_text(const struct rule *rule, char *buf, size_t len)
{
	const char *name = rule_names[rule->kind];

	if (rule_has_n(rule->kind))
		snprintf(buf, len, "%s%u", name, rule->n);
	else if (rule->kind == RULE_BUCKET)
		snprintf(buf, len, "%s%s", name, rule->width);
	else
		return name;
	return buf;
}

void rule_release(struct rule *rule)
{
	free(rule->width);
	memset(rule, 0, sizeof(*rule));
}

/* "count", or "sum:C" and the like; 0 or -EINVAL (or -ENOMEM). */
static int parse_measure(const char *text, struct measure *out)
{
	const char *colon = strchr(text, ':');
	size_t kind, len;

	if (strcmp(text, measure_names[MEASURE_COUNT]) == 0) {
		out->kind = MEASURE_COUNT;
		return 0;
	}
	if (!colon || colon[1] == '\0')
		return -EINVAL;
	len = (size_t)(colon - text);
	for (kind = MEASURE_COUNT + 1; kind < ARRAY_SIZE(measure_names);
	     kind++) {
		if (strlen(measure_names[kind]) == len &&
		    strncmp(text, measure_names[kind], len) == 0) {
			out->kind = kind;
			out->column = strdup(colon + 1);
			return out->column ? 0 : -ENOMEM;
		}
	}
	return -EINVAL;
}

char *measure_header(const struct measure *m)
{
	char *name;

	if (m->kind == MEASURE_COUNT)
		return strdup(measure_names[MEASURE_COUNT]);
	if (asprintf(&name, "%s_%s", measure_names[m->kind], m->column) < 0)
		return NULL;
	return name;
}

static bool take_digits(const char **p, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (!char_is_digit((*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

/* Consume one character if it is a or b (RFC 3339 allows 't' and 'z'). */
static bool take_char(const char **p, char a, char b)
{
	if (**p != a && **p != b)
		return false;
	(*p)++;
	return true;
}

static bool year_is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
	static const int days[12] = {31, 28, 31, 30, 31, 30,
				     31, 31, 30, 31, 30, 31};

	return m == 2 && year_is_leap(y) ? 29 : days[m - 1];
}

/* Fractional seconds after the '.', 1..9 digits, as nanoseconds. */
static const char *take_fraction(const char **p, int64_t *frac)
{
	int digits = 0;

	*frac = 0;
	while (char_is_digit(**p)) {
		if (digits == 9)
			return "more than 9 fractional digits";
		*frac = *frac * 10 + (**p - '0');
		digits++;
		(*p)++;
	}
	if (digits == 0)
		return "no digits after the decimal point";
	for (; digits < 9; digits++)
		*frac *= 10;
	return NULL;
}

/* The offset: "Z", or "+HH:MM" / "-HH:MM", in minutes east of UTC. */
static const char *take_offset(const char **p, int *offset_min)
{
	static const char bad[] = "bad offset (want Z or +HH:MM or -HH:MM)";
	int sign, hh, mm;

	if (**p == '\0')
		return "time has no offset";
	if (take_char(p, 'Z', 'z')) {
		*offset_min = 0;
		return NULL;
	}
	if (**p != '+' && **p != '-')
		return bad;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (!take_digits(p, 2, &hh) || !take_char(p, ':', ':') ||
	    !take_digits(p, 2, &mm) || hh > 23 || mm > 59)
		return bad;
	*offset_min = sign * (hh * 60 + mm);
	return NULL;
}

/* Unix nanoseconds from seconds and a fraction, or false on overflow. */
static bool to_ns(int64_t secs, int64_t frac, int64_t *ns)
{
	/* INT64_MIN has a fraction: borrow a second so the product fits. */
	if (secs < 0 && frac > 0) {
		secs++;
		frac -= NS_PER_SEC;
	}
	return !__builtin_mul_overflow(secs, NS_PER_SEC, ns) &&
	       !__builtin_add_overflow(*ns, frac, ns);
}

/* Parse an RFC 3339 time; NULL on success, else why it was refused. */
static const char *parse_time(const char *s, int64_t *ns, int *offset_min)
{
	static const char bad[] =
	    "not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] and an "
	    "offset)";
	int year, mon, day, hour, min, sec, offset;
	const char *p = s, *why;
	int64_t frac = 0, secs;

	if (!take_digits(&p, 4, &year) || !take_char(&p, '-', '-') ||
	    !take_digits(&p, 2, &mon) || !take_char(&p, '-', '-') ||
	    !take_digits(&p, 2, &day) || !take_char(&p, 'T', 't') ||
	    !take_digits(&p, 2, &hour) || !take_char(&p, ':', ':') ||
	    !take_digits(&p, 2, &min) || !take_char(&p, ':', ':') ||
	    !take_digits(&p, 2, &sec))
		return bad;
	if (take_char(&p, '.', '.')) {
		why = take_fraction(&p, &frac);
		if (why)
			return why;
	}
	why = take_offset(&p, &offset);
	if (why)
		return why;
	if (*p != '\0')
		return bad;
	if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon))
		return "no such date";
	if (hour > 23 || min > 59 || sec > 59)
		return "no such time of day";

	secs = civil_days(year, mon, day) * 86400 + hour * 3600 + min * 60 +
	       sec - offset * 60;
	if (!to_ns(secs, frac, ns))
		return "time out of range";
	*offset_min = offset;
	return NULL;
}

int time_parse_rfc3339(const char *s, int64_t *ns, int *offset_min)
{
	return parse_time(s, ns, offset_min) ? -EINVAL : 0;
}

/* ---- JSON access ---- */

/* The object at path, which must be one, with only the known keys. */
static int check_object(json_t *v, const char *path, const char *const *known,
			struct perr *err)
{
	if (!json_is_object(v))
		return perr_set(err, "%s: expected an object", path);
	return jsonpath_check_keys(v, path, known, err);
}

/*
 * Find member key of obj (at base) and write its path into path.  *out is
 * NULL when the member is absent, which is refused if it is required.
 */
static int member(json_t *obj, const char *base, const char *key, bool required,
		  char *path, json_t **out, struct perr *err)
{
	jsonpath_key(path, base, key);
	*out = json_object_get(obj, key);
	if (!*out && required)
		return perr_set(err, "%s: missing", path);
	return 0;
}

/* The array at path, which must have at least one item if nonempty. */
static int check_array(json_t *v, const char *path, bool nonempty,
		       struct perr *err)
{
	if (!json_is_array(v))
		return perr_set(err, "%s: expected an array", path);
	if (nonempty && json_array_size(v) == 0)
		return perr_set(err, "%s: empty", path);
	return 0;
}

/* The non-empty string at path. */
static int as_string(json_t *v, const char *path, const char **out,
		     struct perr *err)
{
	if (!json_is_string(v))
		return perr_set(err, "%s: expected a string", path);
	if (json_string_length(v) == 0)
		return perr_set(err, "%s: empty", path);
	*out = json_string_value(v);
	return 0;
}

/* The integer at path, within min..max; want says so in words. */
static int as_int(json_t *v, const char *path, json_int_t min, json_int_t max,
		  const char *want, json_int_t *out, struct perr *err)
{
	if (!json_is_integer(v) || json_integer_value(v) < min ||
	    json_integer_value(v) > max)
		return perr_set(err, "%s: expected %s", path, want);
	*out = json_integer_value(v);
	return 0;
}

static int dup_string(const char *s, char **out, struct perr *err)
{
	*out = strdup(s);
	return *out ? 0 : nomem(err);
}

/* Member key of obj as a new non-empty string; *out stays NULL if the
 * member is absent and optional. */
static int take_string(json_t *obj, const char *base, const char *key,
		       bool required, char **out, struct perr *err)
{
	char path[JSONPATH_LEN];
	const char *s;
	json_t *v;
	int rc;

	rc = member(obj, base, key, required, path, &v, err);
	if (rc || !v)
		return rc;
	rc = as_string(v, path, &s, err);
	if (rc)
		return rc;
	return dup_string(s, out, err);
}

/* Member key of obj as a new string matching the id pattern. */
static int take_id(json_t *obj, const char *base, const char *key, char **out,
		   struct perr *err)
{
	char path[JSONPATH_LEN], q[QUOTE_LEN];
	int rc;

	rc = take_string(obj, base, key, true, out, err);
	if (rc)
		return rc;
	if (id_is_valid(*out))
		return 0;
	jsonpath_key(path, base, key);
	return perr_set(err,
			"%s: invalid id '%s' (want [a-z0-9][a-z0-9._-]*, "
			"at most %d characters)",
			path, text_quote(q, *out), ID_MAX);
}

/* A rule from the string at path, with the path in front of any error. */
static int take_rule(json_t *v, const char *path, struct rule *out,
		     struct perr *err)
{
	struct perr why;
	int rc;

	if (!json_is_string(v))
		return perr_set(err, "%s: expected a rule (a string)", path);
	rc = rule_parse(json_string_value(v), out, &why);
	if (rc == -ENOMEM)
		return nomem(err);
	if (rc)
		return perr_set(err, "%s: %s", path, why.msg);
	return 0;
}

/* ---- agreement_parse ---- */

static int parse_uids(json_t *root, struct agreement *agr, struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN];
	json_int_t uid;
	json_t *arr;
	size_t i, j;
	int rc;

	rc = member(root, "$", "uids", true, path, &arr, err);
	if (!rc)
		rc = check_array(arr, path, true, err);
	if (rc)
		return rc;
	agr->uids = calloc(json_array_size(arr), sizeof(*agr->uids));
	if (!agr->uids)
		return nomem(err);
	for (i = 0; i < json_array_size(arr); i++) {
		jsonpath_index(item, path, i);
		rc = as_int(json_array_get(arr, i), item, 0, UID_LAST,
			    "a uid (an integer 0..4294967294)", &uid, err);
		if (rc)
			return rc;
		for (j = 0; j < agr->nuids; j++) {
			if (agr->uids[j] == (uid_t)uid)
				return perr_set(err,
						"%s: uid %" JSON_INTEGER_FORMAT
						" listed twice",
						item, uid);
		}
		agr->uids[agr->nuids++] = (uid_t)uid;
	}
	return 0;
}

static int parse_max_level(json_t *root, struct agreement *agr,
			   struct perr *err)
{
	char path[JSONPATH_LEN];
	json_int_t level;
	json_t *v;
	int rc;

	agr->max_level = MAX_LEVEL_DEFAULT;
	rc = member(root, "$", "max_level", false, path, &v, err);
	if (rc || !v)
		return rc;
	rc = as_int(v, path, LEVEL_MIN, LEVEL_MAX, "an integer 1..4", &level,
		    err);
	if (rc)
		return rc;
	agr->max_level = (int)level;
	return 0;
}

static int parse_time_member(json_t *root, const char *key, int64_t *ns,
			     int *offset_min, struct perr *err)
{
	char path[JSONPATH_LEN];
	const char *why;
	json_t *v;
	int rc;

	rc = member(root, "$", key, true, path, &v, err);
	if (rc)
		return rc;
	if (!json_is_string(v))
		return perr_set(err, "%s: expected a string", path);
	why = parse_time(json_string_value(v), ns, offset_min);
	if (why)
		return perr_set(err, "%s: %s", path, why);
	return 0;
}

static int parse_validity(json_t *root, struct agreement *agr, struct perr *err)
{
	int rc;

	rc = parse_time_member(root, "valid_from", &agr->valid_from_ns,
			       &agr->valid_from_offset, err);
	if (rc)
		return rc;
	rc = parse_time_member(root, "valid_until", &agr->valid_until_ns,
			       &agr->valid_until_offset, err);
	if (rc)
		return rc;
	if (agr->valid_until_ns <= agr->valid_from_ns)
		return perr_set(err, "$.valid_until: not after valid_from");
	return 0;
}

static int parse_quota(json_t *root, struct agreement *agr, struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN];
	json_int_t bytes;
	json_t *quota, *v;
	int rc;

	rc = member(root, "$", "quota", false, path, &quota, err);
	if (rc || !quota)
		return rc;
	rc = check_object(quota, path, quota_keys, err);
	if (!rc)
		rc = member(quota, path, "bytes_per_day", true, item, &v, err);
	if (!rc)
		rc = as_int(v, item, 1, AGREEMENT_QUOTA_MAX,
			    "a positive integer up to 17592186044415 (16 TiB)",
			    &bytes, err);
	if (rc)
		return rc;
	agr->has_quota = true;
	agr->quota_bytes_per_day = (uint64_t)bytes;
	return 0;
}

/*
 * The columns object of a dataset entry: column name -> rule, kept in the
 * file's order.  Required when records is true, and then it must show at
 * least one column.
 */
static int parse_columns(json_t *obj, const char *base,
			 struct agreement_dataset *ds, struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN];
	bool shows = false;
	json_t *cols;
	void *it;
	int rc;

	rc = member(obj, base, "columns", ds->records, path, &cols, err);
	if (rc || !cols)
		return rc;
	if (!json_is_object(cols))
		return perr_set(err, "%s: expected an object", path);
	if (json_object_size(cols) > 0) {
		ds->columns =
		    calloc(json_object_size(cols), sizeof(*ds->columns));
		if (!ds->columns)
			return nomem(err);
	}
	for (it = json_object_iter(cols); it;
	     it = json_object_iter_next(cols, it)) {
		const char *key = json_object_iter_key(it);
		struct column_rule *cr = &ds->columns[ds->ncolumns++];

		jsonpath_key(item, path, key);
		if (key[0] == '\0')
			return perr_set(err, "%s: empty column name", item);
		rc = dup_string(key, &cr->column, err);
		if (!rc)
			rc = take_rule(json_object_iter_value(it), item,
				       &cr->rule, err);
		if (rc)
			return rc;
		if (cr->rule.kind != RULE_DROP)
			shows = true;
	}
	if (ds->records && !shows)
		return perr_set(err,
				"%s: records is true but no column is shown "
				"(name one with a rule other than drop)",
				path);
	return 0;
}

/* The rules a group key may take, for errors. */
#define GENERALISING_RULES                                                     \
	"date:year, date:month, date:day, bucket:W or prefix:N"

/* A group_by string: "column", or "column:rule" when what follows the
 * first ':' is a generalising rule; otherwise all of it names the column. */
static int parse_group_string(const char *s, const char *path,
			      struct group_key *key, struct perr *err)
{
	const char *colon = strchr(s, ':');
	int rc;

	if (colon) {
		rc = rule_parse(colon + 1, &key->rule, NULL);
		if (rc == -ENOMEM)
			return nomem(err);
		key->has_rule = rc == 0 && rule_generalises(key->rule.kind);
		if (!key->has_rule)
			rule_release(&key->rule);
	}
	if (!key->has_rule)
		return dup_string(s, &key->column, err);
	if (colon == s)
		return perr_set(err, "%s: empty column name", path);
	key->column = strndup(s, (size_t)(colon - s));
	return key->column ? 0 : nomem(err);
}

/* A group_by object: {"column": C, "rule": R}, R optional. */
static int parse_group_object(json_t *obj, const char *path,
			      struct group_key *key, struct perr *err)
{
	char rpath[JSONPATH_LEN], buf[RULE_TEXT_MAX];
	json_t *v;
	int rc;

	rc = check_object(obj, path, group_keys, err);
	if (!rc)
		rc = take_string(obj, path, "column", true, &key->column, err);
	if (!rc)
		rc = member(obj, path, "rule", false, rpath, &v, err);
	if (rc || !v)
		return rc;
	key->has_rule = true;
	rc = take_rule(v, rpath, &key->rule, err);
	if (rc)
		return rc;
	if (!rule_generalises(key->rule.kind))
		return perr_set(err,
				"%s: rule '%s' does not generalise "
				"(want " GENERALISING_RULES ")",
				rpath, rule_text(&key->rule, buf, sizeof(buf)));
	return 0;
}

static int parse_group_by(json_t *obj, const char *base, struct view *view,
			  struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN];
	const char *s;
	json_t *arr, *v;
	size_t i;
	int rc;

	rc = member(obj, base, "group_by", true, path, &arr, err);
	if (!rc)
		rc = check_array(arr, path, false, err);
	if (rc || json_array_size(arr) == 0)
		return rc;
	view->keys = calloc(json_array_size(arr), sizeof(*view->keys));
	if (!view->keys)
		return nomem(err);
	for (i = 0; i < json_array_size(arr); i++) {
		struct group_key *key = &view->keys[view->nkeys++];

		jsonpath_index(item, path, i);
		v = json_array_get(arr, i);
		if (json_is_object(v)) {
			rc = parse_group_object(v, item, key, err);
		} else if (json_is_string(v)) {
			rc = as_string(v, item, &s, err);
			if (!rc)
				rc = parse_group_string(s, item, key, err);
		} else {
			rc = perr_set(err,
				      "%s: expected a column name or an "
				      "object",
				      item);
		}
		if (rc)
			return rc;
	}
	return 0;
}

static int parse_measures(json_t *obj, const char *base, struct view *view,
			  struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN], q[QUOTE_LEN];
	const char *s;
	json_t *arr;
	size_t i;
	int rc;

	rc = member(obj, base, "measures", true, path, &arr, err);
	if (!rc)
		rc = check_array(arr, path, true, err);
	if (rc)
		return rc;
	view->measures = calloc(json_array_size(arr), sizeof(*view->measures));
	if (!view->measures)
		return nomem(err);
	for (i = 0; i < json_array_size(arr); i++) {
		struct measure *m = &view->measures[view->nmeasures++];

		jsonpath_index(item, path, i);
		rc = as_string(json_array_get(arr, i), item, &s, err);
		if (rc)
			return rc;
		rc = parse_measure(s, m);
		if (rc == -ENOMEM)
			return nomem(err);
		if (rc)
			return perr_set(err,
					"%s: unknown measure '%s' (want count, "
					"count_distinct:C, sum:C, avg:C, min:C "
					"or max:C)",
					item, text_quote(q, s));
	}
	return 0;
}

static int parse_view(json_t *obj, const char *path, struct view *view,
		      struct perr *err)
{
	char item[JSONPATH_LEN], q[QUOTE_LEN];
	json_int_t min_group = MIN_GROUP_DEFAULT;
	json_t *v;
	int rc;

	rc = check_object(obj, path, view_keys, err);
	if (!rc)
		rc = take_string(obj, path, "name", true, &view->name, err);
	if (rc)
		return rc;
	if (!view_name_is_valid(view->name))
		return perr_set(err,
				"%s.name: invalid view name '%s' (want "
				"[A-Za-z0-9][A-Za-z0-9._-]*, at most %d "
				"characters)",
				path, text_quote(q, view->name), VIEW_NAME_MAX);
	rc = parse_group_by(obj, path, view, err);
	if (!rc)
		rc = parse_measures(obj, path, view, err);
	if (!rc)
		rc = member(obj, path, "min_group", false, item, &v, err);
	if (!rc && v)
		rc = as_int(v, item, 2, UINT_MAX, "an integer of at least 2",
			    &min_group, err);
	if (rc)
		return rc;
	view->min_group = (unsigned)min_group;
	return take_string(obj, path, "entity", false, &view->entity, err);
}

/* The views array of a dataset entry; records:false needs at least one. */
static int parse_views(json_t *obj, const char *base,
		       struct agreement_dataset *ds, struct perr *err)
{
	static const char needs_view[] =
	    "records is false: the dataset needs a view";
	char path[JSONPATH_LEN], item[JSONPATH_LEN], q[QUOTE_LEN];
	json_t *arr;
	size_t i, j;
	int rc;

	rc = member(obj, base, "views", false, path, &arr, err);
	if (rc)
		return rc;
	if (!arr && !ds->records)
		return perr_set(err, "%s: missing (%s)", path, needs_view);
	if (!arr)
		return 0;
	rc = check_array(arr, path, false, err);
	if (rc)
		return rc;
	if (json_array_size(arr) == 0 && !ds->records)
		return perr_set(err, "%s: empty (%s)", path, needs_view);
	if (json_array_size(arr) == 0)
		return 0;
	ds->views = calloc(json_array_size(arr), sizeof(*ds->views));
	if (!ds->views)
		return nomem(err);
	for (i = 0; i < json_array_size(arr); i++) {
		struct view *view = &ds->views[ds->nviews++];

		jsonpath_index(item, path, i);
		rc = parse_view(json_array_get(arr, i), item, view, err);
		if (rc)
			return rc;
		for (j = 0; j + 1 < ds->nviews; j++) {
			if (strcmp(ds->views[j].name, view->name) == 0)
				return perr_set(err,
						"%s.name: view '%s' named "
						"twice",
						item,
						text_quote(q, view->name));
		}
	}
	return 0;
}

static int parse_dataset(json_t *obj, const char *path,
			 struct agreement_dataset *ds, struct perr *err)
{
	char item[JSONPATH_LEN];
	json_t *v;
	int rc;

	rc = check_object(obj, path, dataset_keys, err);
	if (!rc)
		rc = take_id(obj, path, "dataset", &ds->dataset, err);
	if (!rc)
		rc = member(obj, path, "records", false, item, &v, err);
	if (rc)
		return rc;
	if (v && !json_is_boolean(v))
		return perr_set(err, "%s: expected true or false", item);
	ds->records = !v || json_is_true(v);
	rc = take_string(obj, path, "rows", false, &ds->rows, err);
	if (!rc)
		rc = parse_columns(obj, path, ds, err);
	if (!rc)
		rc = parse_views(obj, path, ds, err);
	return rc;
}

static int parse_datasets(json_t *root, struct agreement *agr, struct perr *err)
{
	char path[JSONPATH_LEN], item[JSONPATH_LEN];
	json_t *arr;
	size_t i, j;
	int rc;

	rc = member(root, "$", "datasets", true, path, &arr, err);
	if (!rc)
		rc = check_array(arr, path, true, err);
	if (rc)
		return rc;
	agr->datasets = calloc(json_array_size(arr), sizeof(*agr->datasets));
	if (!agr->datasets)
		return nomem(err);
	for (i = 0; i < json_array_size(arr); i++) {
		struct agreement_dataset *ds = &agr->datasets[agr->ndatasets++];

		jsonpath_index(item, path, i);
		rc = parse_dataset(json_array_get(arr, i), item, ds, err);
		if (rc)
			return rc;
		for (j = 0; j + 1 < agr->ndatasets; j++) {
			if (strcmp(agr->datasets[j].dataset, ds->dataset) == 0)
				return perr_set(err,
						"%s.dataset: dataset '%s' "
						"listed twice",
						item, ds->dataset);
		}
	}
	return 0;
}

static int parse_agreement(json_t *root, struct agreement *agr,
			   struct perr *err)
{
	int rc;

	rc = check_object(root, "$", agreement_keys, err);
	if (!rc)
		rc = take_id(root, "$", "id", &agr->id, err);
	if (!rc)
		rc =
		    take_string(root, "$", "grantee", true, &agr->grantee, err);
	if (!rc)
		rc = take_string(root, "$", "scenario", true, &agr->scenario,
				 err);
	if (!rc)
		rc = parse_uids(root, agr, err);
	if (!rc)
		rc = parse_max_level(root, agr, err);
	if (!rc)
		rc = parse_validity(root, agr, err);
	if (!rc)
		rc = parse_quota(root, agr, err);
	if (!rc)
		rc = parse_datasets(root, agr, err);
	return rc;
}

int agreement_parse(const char *text, size_t len, struct agreement *out,
		    struct perr *err)
{
	struct agreement tmp = {0};
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && json_error_code(&jerr) == json_error_out_of_memory)
		return nomem(err);
	if (!root)
		return jsonpath_parse_error(err, &jerr);
	rc = parse_agreement(root, &tmp, err);
	json_decref(root);
	if (rc) {
		agreement_release(&tmp);
		return rc;
	}
	*out = tmp;
	return 0;
}

/* ---- agreement_check ---- */

/*
 * The column named name in the dataset's schema, or NULL with the error
 * set: "<path>: no such column 'x' in dataset 'd'" (the column is left out
 * when the path already ends with it).
 */
static const struct column *find_column(const struct schema *schema,
					const char *dataset, const char *name,
					bool path_names_it, const char *path,
					struct perr *err)
{
	char q[QUOTE_LEN];
	long i = schema_find(schema, name);

	if (i >= 0)
		return &schema->cols[i];
	if (path_names_it)
		perr_set(err, "%s: no such column in dataset '%s'", path,
			 dataset);
	else
		perr_set(err, "%s: no such column '%s' in dataset '%s'", path,
			 text_quote(q, name), dataset);
	return NULL;
}

/*
 * The error of group key key, whose column the schema does not have (err
 * says so already).  A string "column:rule" whose rule does not
 * generalise was taken whole for a column name (names may hold ':'): when
 * the part before the ':' is a column, the rule is what is wrong, and err
 * says that instead.  Returns -EINVAL (or -ENOMEM).
 */
static int missing_group_column(const struct schema *schema,
				const struct group_key *key, const char *path,
				struct perr *err)
{
	const char *colon = strchr(key->column, ':');
	char q[QUOTE_LEN], *column;
	bool known;

	if (key->has_rule || !colon)
		return -EINVAL;
	column = strndup(key->column, (size_t)(colon - key->column));
	if (!column)
		return nomem(err);
	known = schema_find(schema, column) >= 0;
	free(column);
	if (!known)
		return -EINVAL;
	return perr_set(
	    err,
	    "%s: rule '%s' does not generalise (want " GENERALISING_RULES ")",
	    path, text_quote(q, colon + 1));
}

static int check_rule_fits(const struct rule *rule, const struct column *col,
			   const char *path, struct perr *err)
{
	char buf[RULE_TEXT_MAX];

	if (rule_fits_type(rule->kind, col->type))
		return 0;
	return perr_set(err, "%s: rule '%s' does not fit type %s", path,
			rule_text(rule, buf, sizeof(buf)),
			col_type_name(col->type));
}

/* Every rule of columns names a column, fits it, and hides what is
 * graded above max_level.  (That records:true shows a column was checked
 * by agreement_parse: columns named there exist, as checked here.) */
static int check_columns(const struct agreement *agr,
			 const struct agreement_dataset *ds,
			 const struct schema *schema, const char *base,
			 struct perr *err)
{
	char cols_path[JSONPATH_LEN], path[JSONPATH_LEN];
	const struct column *col;
	size_t i;
	int rc;

	jsonpath_key(cols_path, base, "columns");
	for (i = 0; i < ds->ncolumns; i++) {
		const struct column_rule *cr = &ds->columns[i];

		jsonpath_key(path, cols_path, cr->column);
		col = find_column(schema, ds->dataset, cr->column, true, path,
				  err);
		if (!col)
			return -EINVAL;
		rc = check_rule_fits(&cr->rule, col, path, err);
		if (rc)
			return rc;
		if (col->level > agr->max_level && !rule_hides(cr->rule.kind))
			return perr_set(err,
					"%s: column is level %d, above "
					"max_level %d: only drop, null, "
					"redact or pseudonym may show it",
					path, col->level, agr->max_level);
	}
	return 0;
}

static int check_group_by(const struct agreement *agr,
			  const struct agreement_dataset *ds,
			  const struct view *view, const struct schema *schema,
			  const char *base, struct perr *err)
{
	char keys_path[JSONPATH_LEN], path[JSONPATH_LEN], q[QUOTE_LEN];
	const struct column *col;
	size_t i;
	int rc;

	jsonpath_key(keys_path, base, "group_by");
	for (i = 0; i < view->nkeys; i++) {
		const struct group_key *key = &view->keys[i];

		jsonpath_index(path, keys_path, i);
		col = find_column(schema, ds->dataset, key->column, false, path,
				  err);
		if (!col)
			return missing_group_column(schema, key, path, err);
		if (col->level > agr->max_level)
			return perr_set(err,
					"%s: column '%s' is level %d, above "
					"max_level %d: it may not be a group "
					"key",
					path, text_quote(q, key->column),
					col->level, agr->max_level);
		if (key->has_rule) {
			rc = check_rule_fits(&key->rule, col, path, err);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int check_measures(const struct agreement *agr,
			  const struct agreement_dataset *ds,
			  const struct view *view, const struct schema *schema,
			  const char *base, struct perr *err)
{
	char measures_path[JSONPATH_LEN], path[JSONPATH_LEN], q[QUOTE_LEN];
	const struct column *col;
	size_t i;

	jsonpath_key(measures_path, base, "measures");
	for (i = 0; i < view->nmeasures; i++) {
		const struct measure *m = &view->measures[i];

		if (m->kind == MEASURE_COUNT)
			continue;
		jsonpath_index(path, measures_path, i);
		col = find_column(schema, ds->dataset, m->column, false, path,
				  err);
		if (!col)
			return -EINVAL;
		if (col->level > agr->max_level &&
		    m->kind != MEASURE_COUNT_DISTINCT)
			return perr_set(err,
					"%s: column '%s' is level %d, above "
					"max_level %d: only count_distinct may "
					"use it",
					path, text_quote(q, m->column),
					col->level, agr->max_level);
		if ((m->kind == MEASURE_SUM || m->kind == MEASURE_AVG) &&
		    col->type != COL_INT && col->type != COL_DECIMAL)
			return perr_set(err,
					"%s: %s needs an int or decimal "
					"column, '%s' is %s",
					path, measure_names[m->kind],
					text_quote(q, m->column),
					col_type_name(col->type));
	}
	return 0;
}

/* The path of header i of view: its group_by or measures item. */
static void header_path(char *dst, const struct view *view, const char *base,
			size_t i)
{
	char list[JSONPATH_LEN];

	if (i < view->nkeys) {
		jsonpath_key(list, base, "group_by");
		jsonpath_index(dst, list, i);
	} else {
		jsonpath_key(list, base, "measures");
		jsonpath_index(dst, list, i - view->nkeys);
	}
}

/* The view's header names (group columns, then measures) are distinct. */
static int check_headers(const struct view *view, const char *base,
			 struct perr *err)
{
	size_t n = view->nkeys + view->nmeasures;
	char path[JSONPATH_LEN], q[QUOTE_LEN];
	char **names;
	size_t i, j;
	int rc = 0;

	names = calloc(n, sizeof(*names));
	if (!names)
		return nomem(err);
	for (i = 0; i < n; i++) {
		if (i < view->nkeys)
			names[i] = strdup(view->keys[i].column);
		else
			names[i] =
			    measure_header(&view->measures[i - view->nkeys]);
		if (!names[i]) {
			rc = nomem(err);
			goto out_free;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(names[i], names[j]) != 0)
				continue;
			header_path(path, view, base, i);
			rc = perr_set(err, "%s: duplicate header name '%s'",
				      path, text_quote(q, names[i]));
			goto out_free;
		}
	}
out_free:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int check_view(const struct agreement *agr,
		      const struct agreement_dataset *ds,
		      const struct view *view, const struct schema *schema,
		      const char *path, struct perr *err)
{
	char item[JSONPATH_LEN];
	int rc;

	rc = check_group_by(agr, ds, view, schema, path, err);
	if (!rc)
		rc = check_measures(agr, ds, view, schema, path, err);
	if (rc)
		return rc;
	if (view->entity) {
		jsonpath_key(item, path, "entity");
		if (!find_column(schema, ds->dataset, view->entity, false, item,
				 err))
			return -EINVAL;
	}
	return check_headers(view, path, err);
}

/* The rows filter compiles against the schema within max_level. */
static int check_rows(const struct agreement *agr,
		      const struct agreement_dataset *ds,
		      const struct schema *schema, const char *path,
		      struct perr *err)
{
	struct filter *f;
	struct perr ferr;
	int rc;

	if (!ds->rows)
		return 0;
	rc = filter_compile(ds->rows, schema, agr->max_level, &f, &ferr);
	filter_free(f);
	if (rc == -EINVAL)
		return perr_set(err, "%s.rows: %s", path, ferr.msg);
	return rc == -ENOMEM ? nomem(err) : rc;
}

int agreement_check(const struct agreement *agr, schema_lookup_fn lookup,
		    void *ctx, struct perr *err)
{
	char path[JSONPATH_LEN], views_path[JSONPATH_LEN], item[JSONPATH_LEN];
	const struct schema *schema;
	size_t i, j;
	int rc;

	for (i = 0; i < agr->ndatasets; i++) {
		const struct agreement_dataset *ds = &agr->datasets[i];

		jsonpath_index(path, "$.datasets", i);
		schema = lookup(ctx, ds->dataset);
		if (!schema)
			return perr_set(err, "%s.dataset: no such dataset '%s'",
					path, ds->dataset);
		rc = check_columns(agr, ds, schema, path, err);
		if (!rc)
			rc = check_rows(agr, ds, schema, path, err);
		if (rc)
			return rc;
		jsonpath_key(views_path, path, "views");
		for (j = 0; j < ds->nviews; j++) {
			jsonpath_index(item, views_path, j);
			rc = check_view(agr, ds, &ds->views[j], schema, item,
					err);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* ---- lookups and release ---- */

const struct agreement_dataset *agreement_find_dataset(
    const struct agreement *agr, const char *id)
{
	size_t i;

	for (i = 0; i < agr->ndatasets; i++) {
		if (strcmp(agr->datasets[i].dataset, id) == 0)
			return &agr->datasets[i];
	}
	return NULL;
}

const struct rule *agreement_dataset_rule(const struct agreement_dataset *ds,
					  const char *column)
{
	size_t i;

	for (i = 0; i < ds->ncolumns; i++) {
		if (strcmp(ds->columns[i].column, column) == 0)
			return &ds->columns[i].rule;
	}
	return &drop_rule;
}

/* Whether a and b, either of which may be NULL, are the same text. */
static bool text_same(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : a == b;
}

/* Whether a and b group by the same column with the same rule. */
static bool group_key_same(const struct group_key *a, const struct group_key *b)
{
	char ra[RULE_TEXT_MAX], rb[RULE_TEXT_MAX];

	if (strcmp(a->column, b->column) || a->has_rule != b->has_rule)
		return false;
	return !a->has_rule || !strcmp(rule_text(&a->rule, ra, sizeof(ra)),
				       rule_text(&b->rule, rb, sizeof(rb)));
}

bool view_same(const struct view *a, const struct view *b)
{
	if (strcmp(a->name, b->name) || a->nkeys != b->nkeys ||
	    a->nmeasures != b->nmeasures || a->min_group != b->min_group ||
	    !text_same(a->entity, b->entity))
		return false;
	for (size_t i = 0; i < a->nkeys; i++)
		if (!group_key_same(&a->keys[i], &b->keys[i]))
			return false;
	for (size_t i = 0; i < a->nmeasures; i++)
		if (a->measures[i].kind != b->measures[i].kind ||
		    !text_same(a->measures[i].column, b->measures[i].column))
			return false;
	return true;
}

static void view_release(struct view *view)
{
	size_t i;

	free(view->name);
	for (i = 0; i < view->nkeys; i++) {
		free(view->keys[i].column);
		rule_release(&view->keys[i].rule);
	}
	free(view->keys);
	for (i = 0; i < view->nmeasures; i++)
		free(view->measures[i].column);
	free(view->measures);
	free(view->entity);
}

static void dataset_release(struct agreement_dataset *ds)
{
	size_t i;

	free(ds->dataset);
	free(ds->rows);
	for (i = 0; i < ds->ncolumns; i++) {
		free(ds->columns[i].column);
		rule_release(&ds->columns[i].rule);
	}
	free(ds->columns);
	for (i = 0; i < ds->nviews; i++)
		view_release(&ds->views[i]);
	free(ds->views);
}

void agreement_release(struct agreement *agr)
{
	size_t i;

	free(agr->id);
	free(agr->grantee);
	free(agr->scenario);
	free(agr->uids);
	for (i = 0; i < agr->ndatasets; i++)
		dataset_release(&agr->datasets[i]);
	free(agr->datasets);
	memset(agr, 0, sizeof(*agr));
}
