/*
 * Unit tests of policy/agreement: the SPEC example policy, defaults, every
 * refusal of agreement_parse and agreement_check with its exact JSON path,
 * the rule language and its canonical text, RFC 3339 times, ids.
 *
 * Most refusals are written as one change to the SPEC example (a path of
 * keys and indexes, and the JSON put there), so that each case differs
 * from a valid policy in exactly the way it names.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "agreement.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The example of SPEC, "Agreements (policy file)", as it is written there. */
static const char spec_policy[] =
    "{\n"
    "  \"id\": \"agr-2025-001\",\n"
    "  \"grantee\": \"Acme Insurance Co.\",\n"
    "  \"scenario\": \"Inclusive health insurance pricing\",\n"
    "  \"uids\": [1001],\n"
    "  \"max_level\": 3,\n"
    "  \"valid_from\": \"2025-01-01T00:00:00+08:00\",\n"
    "  \"valid_until\": \"2027-01-01T00:00:00+08:00\",\n"
    "  \"quota\": {\"bytes_per_day\": 10737418240},\n"
    "  \"datasets\": [\n"
    "    {\n"
    "      \"dataset\": \"health.visits\",\n"
    "      \"records\": true,\n"
    "      \"rows\": \"district in ('Xihu', 'Gongshu') and age >= 18\",\n"
    "      \"columns\": {\n"
    "        \"patient_id\": \"pseudonym\",\n"
    "        \"age\": \"bucket:10\",\n"
    "        \"district\": \"keep\",\n"
    "        \"visit_date\": \"date:month\",\n"
    "        \"phone\": \"mask:last4\",\n"
    "        \"name\": \"drop\"\n"
    "      },\n"
    "      \"views\": [\n"
    "        {\"name\": \"cost_by_district\", \"group_by\": [\"district\", "
    "\"visit_date:date:month\"],\n"
    "         \"measures\": [\"count\", \"sum:cost\", \"avg:cost\", "
    "\"count_distinct:patient_id\"],\n"
    "         \"min_group\": 10, \"entity\": \"patient_id\"}\n"
    "      ]\n"
    "    }\n"
    "  ]\n"
    "}\n";

/* The smallest valid policy: every optional key left out. */
static const char minimal_policy[] =
    "{\"id\": \"a\", \"grantee\": \"g\", \"scenario\": \"s\", "
    "\"uids\": [0], "
    "\"valid_from\": \"2025-01-01T00:00:00Z\", "
    "\"valid_until\": \"2025-01-01T00:00:00.000000001Z\", "
    "\"datasets\": [{\"dataset\": \"health.visits\", "
    "\"columns\": {\"age\": \"keep\"}, "
    "\"views\": [{\"name\": \"v\", \"group_by\": [], "
    "\"measures\": [\"count\"]}]}]}";

/* ---- the catalog the checks run against ---- */

static struct column visits_cols[] = {
    {"patient_id", COL_STRING, 4}, {"name", COL_STRING, 4},
    {"phone", COL_STRING, 3},	   {"age", COL_INT, 2},
    {"district", COL_STRING, 1},   {"visit_date", COL_DATE, 2},
    {"seen_at", COL_DATETIME, 2},  {"cost", COL_DECIMAL, 2},
    {"note:x", COL_STRING, 1},	   {"sum_cost", COL_DECIMAL, 1},
};
static const struct schema visits = {ARRAY_SIZE(visits_cols), visits_cols};

static struct column doctors_cols[] = {
    {"doctor_id", COL_STRING, 2},
};
static const struct schema doctors = {ARRAY_SIZE(doctors_cols), doctors_cols};

static const struct schema *lookup(void *ctx, const char *dataset)
{
	int *calls = ctx;

	(*calls)++;
	if (strcmp(dataset, "health.visits") == 0)
		return &visits;
	if (strcmp(dataset, "health.doctors") == 0)
		return &doctors;
	return NULL;
}

/* ---- helpers ---- */

static int parse(const char *text, struct agreement *agr, struct perr *err)
{
	return agreement_parse(text, strlen(text), agr, err);
}

static int check(const struct agreement *agr, struct perr *err)
{
	int calls = 0;

	return agreement_check(agr, lookup, &calls, err);
}

/* The member or item of v named by token (a key, or an index in an array). */
static json_t *child(json_t *v, const char *token)
{
	if (json_is_array(v))
		return json_array_get(v, strtoul(token, NULL, 10));
	return json_object_get(v, token);
}

/* Put value (NULL: remove) as the member or item token of parent; an index
 * one past the end appends. */
static void put(json_t *parent, const char *token, json_t *value)
{
	if (json_is_array(parent)) {
		size_t i = strtoul(token, NULL, 10);

		if (!value)
			assert_int_equal(json_array_remove(parent, i), 0);
		else if (i == json_array_size(parent))
			assert_int_equal(json_array_append_new(parent, value),
					 0);
		else
			assert_int_equal(json_array_set_new(parent, i, value),
					 0);
	} else if (!value) {
		assert_int_equal(json_object_del(parent, token), 0);
	} else {
		assert_int_equal(json_object_set_new(parent, token, value), 0);
	}
}

/*
 * The SPEC example with the value at where ("datasets/0/columns/phone",
 * '/'-separated keys and indexes) replaced by the JSON text json, or
 * removed when json is NULL.  The caller frees the result.
 */
static char *spec_with(const char *where, const char *json)
{
	json_t *root = json_loads(spec_policy, 0, NULL);
	json_t *parent = root, *value = NULL;
	char *path = strdup(where), *token = path, *slash, *text;

	assert_non_null(root);
	assert_non_null(path);
	while ((slash = strchr(token, '/'))) {
		*slash = '\0';
		parent = child(parent, token);
		assert_non_null(parent);
		token = slash + 1;
	}
	if (json) {
		value = json_loads(json, JSON_DECODE_ANY, NULL);
		assert_non_null(value);
	}
	put(parent, token, value);
	text = json_dumps(root, JSON_PRESERVE_ORDER);
	assert_non_null(text);
	json_decref(root);
	free(path);
	return text;
}

static void assert_empty(const struct agreement *agr)
{
	assert_null(agr->id);
	assert_null(agr->uids);
	assert_null(agr->datasets);
	assert_int_equal(agr->ndatasets, 0);
}

/* ---- the SPEC example and defaults ---- */

static void test_spec_example(void **state)
{
	const struct agreement_dataset *ds;
	struct perr err = {{0}};
	struct agreement agr;
	const struct view *v;

	(void)state;
	assert_int_equal(parse(spec_policy, &agr, &err), 0);
	assert_string_equal(agr.id, "agr-2025-001");
	assert_string_equal(agr.grantee, "Acme Insurance Co.");
	assert_string_equal(agr.scenario, "Inclusive health insurance pricing");
	assert_int_equal(agr.nuids, 1);
	assert_int_equal(agr.uids[0], 1001);
	assert_int_equal(agr.max_level, 3);
	assert_int_equal(agr.valid_from_ns, 1735660800LL * 1000000000);
	assert_int_equal(agr.valid_from_offset, 480);
	assert_int_equal(agr.valid_until_ns, 1798732800LL * 1000000000);
	assert_int_equal(agr.valid_until_offset, 480);
	assert_true(agr.has_quota);
	assert_int_equal(agr.quota_bytes_per_day, 10737418240ULL);
	assert_int_equal(agr.ndatasets, 1);

	ds = &agr.datasets[0];
	assert_string_equal(ds->dataset, "health.visits");
	assert_true(ds->records);
	assert_string_equal(ds->rows,
			    "district in ('Xihu', 'Gongshu') and age >= 18");
	assert_int_equal(ds->ncolumns, 6);
	assert_string_equal(ds->columns[0].column, "patient_id");
	assert_int_equal(ds->columns[0].rule.kind, RULE_PSEUDONYM);
	assert_string_equal(ds->columns[1].column, "age");
	assert_int_equal(ds->columns[1].rule.kind, RULE_BUCKET);
	assert_string_equal(ds->columns[1].rule.width, "10");
	assert_string_equal(ds->columns[2].column, "district");
	assert_int_equal(ds->columns[2].rule.kind, RULE_KEEP);
	assert_string_equal(ds->columns[3].column, "visit_date");
	assert_int_equal(ds->columns[3].rule.kind, RULE_DATE_MONTH);
	assert_string_equal(ds->columns[4].column, "phone");
	assert_int_equal(ds->columns[4].rule.kind, RULE_MASK_LAST);
	assert_int_equal(ds->columns[4].rule.n, 4);
	assert_string_equal(ds->columns[5].column, "name");
	assert_int_equal(ds->columns[5].rule.kind, RULE_DROP);

	assert_int_equal(ds->nviews, 1);
	v = &ds->views[0];
	assert_string_equal(v->name, "cost_by_district");
	assert_int_equal(v->nkeys, 2);
	assert_string_equal(v->keys[0].column, "district");
	assert_false(v->keys[0].has_rule);
	assert_string_equal(v->keys[1].column, "visit_date");
	assert_true(v->keys[1].has_rule);
	assert_int_equal(v->keys[1].rule.kind, RULE_DATE_MONTH);
	assert_int_equal(v->nmeasures, 4);
	assert_int_equal(v->measures[0].kind, MEASURE_COUNT);
	assert_null(v->measures[0].column);
	assert_int_equal(v->measures[1].kind, MEASURE_SUM);
	assert_string_equal(v->measures[1].column, "cost");
	assert_int_equal(v->measures[2].kind, MEASURE_AVG);
	assert_string_equal(v->measures[2].column, "cost");
	assert_int_equal(v->measures[3].kind, MEASURE_COUNT_DISTINCT);
	assert_string_equal(v->measures[3].column, "patient_id");
	assert_int_equal(v->min_group, 10);
	assert_string_equal(v->entity, "patient_id");

	assert_int_equal(check(&agr, &err), 0);
	agreement_release(&agr);
	assert_empty(&agr);
}

static void test_defaults(void **state)
{
	const struct agreement_dataset *ds;
	struct perr err = {{0}};
	struct agreement agr;

	(void)state;
	assert_int_equal(parse(minimal_policy, &agr, &err), 0);
	assert_int_equal(agr.max_level, 3);
	assert_false(agr.has_quota);
	assert_int_equal(agr.valid_from_offset, 0);
	assert_int_equal(agr.valid_until_ns - agr.valid_from_ns, 1);
	ds = &agr.datasets[0];
	assert_true(ds->records);
	assert_null(ds->rows);
	assert_int_equal(ds->views[0].min_group, 10);
	assert_null(ds->views[0].entity);
	assert_int_equal(ds->views[0].nkeys, 0);
	assert_null(ds->views[0].keys);
	assert_int_equal(check(&agr, &err), 0);
	agreement_release(&agr);
}

static void test_records_false(void **state)
{
	static const char *const entries[] = {
	    /* views only */
	    "{\"dataset\": \"health.visits\", \"records\": false, "
	    "\"views\": [{\"name\": \"n\", \"group_by\": [], "
	    "\"measures\": [\"count\"]}]}",
	    /* columns that show nothing are fine without records */
	    "{\"dataset\": \"health.visits\", \"records\": false, "
	    "\"columns\": {\"name\": \"drop\"}, "
	    "\"views\": [{\"name\": \"n\", \"group_by\": [], "
	    "\"measures\": [\"count\"]}]}",
	};
	struct perr err = {{0}};
	struct agreement agr;
	size_t i;
	char *text;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(entries); i++) {
		text = spec_with("datasets/0", entries[i]);
		assert_int_equal(parse(text, &agr, &err), 0);
		assert_false(agr.datasets[0].records);
		assert_int_equal(agr.datasets[0].ncolumns, i);
		assert_int_equal(check(&agr, &err), 0);
		agreement_release(&agr);
		free(text);
	}

	/* the SPEC example's columns and views stay valid */
	text = spec_with("datasets/0/records", "false");
	assert_int_equal(parse(text, &agr, &err), 0);
	assert_false(agr.datasets[0].records);
	assert_int_equal(check(&agr, &err), 0);
	agreement_release(&agr);
	free(text);
}

static void test_lookups(void **state)
{
	const struct agreement_dataset *ds;
	struct perr err = {{0}};
	struct agreement agr;
	const struct rule *r;

	(void)state;
	assert_int_equal(parse(spec_policy, &agr, &err), 0);
	ds = agreement_find_dataset(&agr, "health.visits");
	assert_ptr_equal(ds, &agr.datasets[0]);
	assert_null(agreement_find_dataset(&agr, "health.doctors"));
	assert_null(agreement_find_dataset(&agr, "health"));

	r = agreement_dataset_rule(ds, "phone");
	assert_int_equal(r->kind, RULE_MASK_LAST);
	assert_int_equal(r->n, 4);
	r = agreement_dataset_rule(ds, "name");
	assert_int_equal(r->kind, RULE_DROP);
	r = agreement_dataset_rule(ds, "cost"); /* not named */
	assert_int_equal(r->kind, RULE_DROP);
	assert_null(r->width);
	r = agreement_dataset_rule(ds, "Phone");
	assert_int_equal(r->kind, RULE_DROP);
	agreement_release(&agr);
}

/* ---- refusals of agreement_parse ---- */

struct change {
	const char *where;
	const char *json; /* NULL: remove */
	const char *msg;
};

static const struct change parse_refusals[] = {
    /* top level */
    {"colour", "\"red\"", "$.colour: unknown key"},
    {"x y", "1", "$['x y']: unknown key"},
    {"id", NULL, "$.id: missing"},
    {"id", "7", "$.id: expected a string"},
    {"id", "\"\"", "$.id: empty"},
    {"id", "\"Agr-1\"",
     "$.id: invalid id 'Agr-1' (want [a-z0-9][a-z0-9._-]*, at most 64 "
     "characters)"},
    {"id", "\"a\\tb\"",
     "$.id: invalid id 'a\\x09b' (want [a-z0-9][a-z0-9._-]*, at most 64 "
     "characters)"},
    {"grantee", NULL, "$.grantee: missing"},
    {"grantee", "\"\"", "$.grantee: empty"},
    {"scenario", "[]", "$.scenario: expected a string"},
    {"uids", NULL, "$.uids: missing"},
    {"uids", "1001", "$.uids: expected an array"},
    {"uids", "[]", "$.uids: empty"},
    {"uids", "[1001, -1]",
     "$.uids[1]: expected a uid (an integer 0..4294967294)"},
    {"uids", "[4294967295]",
     "$.uids[0]: expected a uid (an integer 0..4294967294)"},
    {"uids", "[\"1001\"]",
     "$.uids[0]: expected a uid (an integer 0..4294967294)"},
    {"uids", "[1001.0]",
     "$.uids[0]: expected a uid (an integer 0..4294967294)"},
    {"uids", "[1, 2, 1]", "$.uids[2]: uid 1 listed twice"},
    {"max_level", "0", "$.max_level: expected an integer 1..4"},
    {"max_level", "5", "$.max_level: expected an integer 1..4"},
    {"max_level", "\"3\"", "$.max_level: expected an integer 1..4"},
    {"max_level", "3.0", "$.max_level: expected an integer 1..4"},
    {"max_level", "null", "$.max_level: expected an integer 1..4"},

    /* times */
    {"valid_from", NULL, "$.valid_from: missing"},
    {"valid_from", "20250101", "$.valid_from: expected a string"},
    {"valid_from", "\"2025-01-01T00:00:00\"",
     "$.valid_from: time has no offset"},
    {"valid_from", "\"2025-01-01T00:00:00.25\"",
     "$.valid_from: time has no offset"},
    {"valid_until", "\"2027-01-01T00:00:00\"",
     "$.valid_until: time has no offset"},
    {"valid_from", "\"2025-01-01\"",
     "$.valid_from: not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] "
     "and an offset)"},
    {"valid_from", "\"2025-01-01 00:00:00Z\"",
     "$.valid_from: not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] "
     "and an offset)"},
    {"valid_from", "\"2025-1-01T00:00:00Z\"",
     "$.valid_from: not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] "
     "and an offset)"},
    {"valid_from", "\"2025-01-01T00:00:00Zx\"",
     "$.valid_from: not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] "
     "and an offset)"},
    {"valid_from", "\"2025-01-01T00:00:00+08:00 \"",
     "$.valid_from: not an RFC 3339 time (want YYYY-MM-DDTHH:MM:SS[.f] "
     "and an offset)"},
    {"valid_from", "\"2025-01-01T00:00:00.Z\"",
     "$.valid_from: no digits after the decimal point"},
    {"valid_from", "\"2025-01-01T00:00:00.1234567891Z\"",
     "$.valid_from: more than 9 fractional digits"},
    {"valid_from", "\"2025-01-01T00:00:00+8:00\"",
     "$.valid_from: bad offset (want Z or +HH:MM or -HH:MM)"},
    {"valid_from", "\"2025-01-01T00:00:00+0800\"",
     "$.valid_from: bad offset (want Z or +HH:MM or -HH:MM)"},
    {"valid_from", "\"2025-01-01T00:00:00+24:00\"",
     "$.valid_from: bad offset (want Z or +HH:MM or -HH:MM)"},
    {"valid_from", "\"2025-01-01T00:00:00+08:60\"",
     "$.valid_from: bad offset (want Z or +HH:MM or -HH:MM)"},
    {"valid_from", "\"2025-01-01T00:00:00UTC\"",
     "$.valid_from: bad offset (want Z or +HH:MM or -HH:MM)"},
    {"valid_from", "\"2023-02-29T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"1900-02-29T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"2025-04-31T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"2025-13-01T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"2025-00-10T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"2025-01-00T00:00:00Z\"", "$.valid_from: no such date"},
    {"valid_from", "\"2025-01-01T24:00:00Z\"",
     "$.valid_from: no such time of day"},
    {"valid_from", "\"2025-01-01T23:60:00Z\"",
     "$.valid_from: no such time of day"},
    {"valid_from", "\"2016-12-31T23:59:60Z\"",
     "$.valid_from: no such time of day"},
    {"valid_until", "\"2263-01-01T00:00:00Z\"",
     "$.valid_until: time out of range"},
    {"valid_from", "\"1000-01-01T00:00:00Z\"",
     "$.valid_from: time out of range"},
    {"valid_until", "\"2025-01-01T00:00:00+08:00\"",
     "$.valid_until: not after valid_from"},
    {"valid_until", "\"2024-12-31T16:00:00Z\"",
     "$.valid_until: not after valid_from"},
    {"valid_until", "\"2024-06-01T00:00:00Z\"",
     "$.valid_until: not after valid_from"},

    /* quota */
    {"quota", "[]", "$.quota: expected an object"},
    {"quota", "{}", "$.quota.bytes_per_day: missing"},
    {"quota", "{\"bytes_per_day\": 1, \"files\": 2}",
     "$.quota.files: unknown key"},
    {"quota/bytes_per_day", "17592186044416",
     "$.quota.bytes_per_day: expected a positive integer up to "
     "17592186044415 (16 TiB)"},
    {"quota/bytes_per_day", "0",
     "$.quota.bytes_per_day: expected a positive integer up to "
     "17592186044415 (16 TiB)"},
    {"quota/bytes_per_day", "-5",
     "$.quota.bytes_per_day: expected a positive integer up to "
     "17592186044415 (16 TiB)"},
    {"quota/bytes_per_day", "1.5",
     "$.quota.bytes_per_day: expected a positive integer up to "
     "17592186044415 (16 TiB)"},
    {"quota/bytes_per_day", "\"10G\"",
     "$.quota.bytes_per_day: expected a positive integer up to "
     "17592186044415 (16 TiB)"},

    /* datasets */
    {"datasets", NULL, "$.datasets: missing"},
    {"datasets", "{}", "$.datasets: expected an array"},
    {"datasets", "[]", "$.datasets: empty"},
    {"datasets/0", "1", "$.datasets[0]: expected an object"},
    {"datasets/0/colour", "1", "$.datasets[0].colour: unknown key"},
    {"datasets/0/dataset", NULL, "$.datasets[0].dataset: missing"},
    {"datasets/0/dataset", "\"Health\"",
     "$.datasets[0].dataset: invalid id 'Health' (want "
     "[a-z0-9][a-z0-9._-]*, at most 64 characters)"},
    {"datasets/1",
     "{\"dataset\": \"health.visits\", \"columns\": {\"a\": \"keep\"}}",
     "$.datasets[1].dataset: dataset 'health.visits' listed twice"},
    {"datasets/0/records", "\"yes\"",
     "$.datasets[0].records: expected true or false"},
    {"datasets/0/records", "1",
     "$.datasets[0].records: expected true or false"},
    {"datasets/0/rows", "\"\"", "$.datasets[0].rows: empty"},
    {"datasets/0/rows", "5", "$.datasets[0].rows: expected a string"},

    /* columns */
    {"datasets/0/columns", NULL, "$.datasets[0].columns: missing"},
    {"datasets/0/columns", "[]", "$.datasets[0].columns: expected an object"},
    {"datasets/0/columns", "{}",
     "$.datasets[0].columns: records is true but no column is shown "
     "(name one with a rule other than drop)"},
    {"datasets/0/columns", "{\"name\": \"drop\"}",
     "$.datasets[0].columns: records is true but no column is shown "
     "(name one with a rule other than drop)"},
    {"datasets/0/columns/phone", "\"mask:x\"",
     "$.datasets[0].columns.phone: unknown rule 'mask:x'"},
    {"datasets/0/columns/phone", "4",
     "$.datasets[0].columns.phone: expected a rule (a string)"},
    {"datasets/0/columns/phone", "\"mask:last0\"",
     "$.datasets[0].columns.phone: bad N in rule 'mask:last0' (want "
     "1..1000000, without leading zeros)"},
    {"datasets/0/columns/age", "\"bucket:0\"",
     "$.datasets[0].columns.age: bad width in rule 'bucket:0' (want a "
     "positive decimal of at most 56 characters)"},
    {"datasets/0/columns/", "\"keep\"",
     "$.datasets[0].columns['']: empty column name"},
    {"datasets/0/columns/Culmen Length (mm)", "\"bogus\"",
     "$.datasets[0].columns['Culmen Length (mm)']: unknown rule 'bogus'"},
    {"datasets/0/columns/name", "\"a\\nb\"",
     "$.datasets[0].columns.name: unknown rule 'a\\x0ab'"},

    /* views */
    {"datasets/0/views", "{}", "$.datasets[0].views: expected an array"},
    {"datasets/0/views/0", "7", "$.datasets[0].views[0]: expected an object"},
    {"datasets/0/views/0/colour", "1",
     "$.datasets[0].views[0].colour: unknown key"},
    {"datasets/0/views/0/name", NULL, "$.datasets[0].views[0].name: missing"},
    {"datasets/0/views/0/name", "\"by district\"",
     "$.datasets[0].views[0].name: invalid view name 'by district' (want "
     "[A-Za-z0-9][A-Za-z0-9._-]*, at most 200 characters)"},
    {"datasets/0/views/0/name", "\".hidden\"",
     "$.datasets[0].views[0].name: invalid view name '.hidden' (want "
     "[A-Za-z0-9][A-Za-z0-9._-]*, at most 200 characters)"},
    {"datasets/0/views/0/name", "\"../x\"",
     "$.datasets[0].views[0].name: invalid view name '../x' (want "
     "[A-Za-z0-9][A-Za-z0-9._-]*, at most 200 characters)"},
    {"datasets/0/views/1",
     "{\"name\": \"cost_by_district\", \"group_by\": [], "
     "\"measures\": [\"count\"]}",
     "$.datasets[0].views[1].name: view 'cost_by_district' named twice"},
    {"datasets/0/views/0/group_by", NULL,
     "$.datasets[0].views[0].group_by: missing"},
    {"datasets/0/views/0/group_by", "\"district\"",
     "$.datasets[0].views[0].group_by: expected an array"},
    {"datasets/0/views/0/group_by/1", "3",
     "$.datasets[0].views[0].group_by[1]: expected a column name or an "
     "object"},
    {"datasets/0/views/0/group_by/0", "\"\"",
     "$.datasets[0].views[0].group_by[0]: empty"},
    {"datasets/0/views/0/group_by/0", "\":date:year\"",
     "$.datasets[0].views[0].group_by[0]: empty column name"},
    {"datasets/0/views/0/group_by/0", "{\"rule\": \"date:year\"}",
     "$.datasets[0].views[0].group_by[0].column: missing"},
    {"datasets/0/views/0/group_by/0", "{\"column\": \"a\", \"as\": \"b\"}",
     "$.datasets[0].views[0].group_by[0].as: unknown key"},
    {"datasets/0/views/0/group_by/0",
     "{\"column\": \"visit_date\", \"rule\": \"keep\"}",
     "$.datasets[0].views[0].group_by[0].rule: rule 'keep' does not "
     "generalise (want date:year, date:month, date:day, bucket:W or "
     "prefix:N)"},
    {"datasets/0/views/0/group_by/0",
     "{\"column\": \"phone\", \"rule\": \"mask:first2\"}",
     "$.datasets[0].views[0].group_by[0].rule: rule 'mask:first2' does "
     "not generalise (want date:year, date:month, date:day, bucket:W or "
     "prefix:N)"},
    {"datasets/0/views/0/group_by/0", "{\"column\": \"a\", \"rule\": \"x\"}",
     "$.datasets[0].views[0].group_by[0].rule: unknown rule 'x'"},
    {"datasets/0/views/0/group_by/0", "{\"column\": \"a\", \"rule\": 1}",
     "$.datasets[0].views[0].group_by[0].rule: expected a rule (a "
     "string)"},
    {"datasets/0/views/0/measures", NULL,
     "$.datasets[0].views[0].measures: missing"},
    {"datasets/0/views/0/measures", "[]",
     "$.datasets[0].views[0].measures: empty"},
    {"datasets/0/views/0/measures", "\"count\"",
     "$.datasets[0].views[0].measures: expected an array"},
    {"datasets/0/views/0/measures/2", "1",
     "$.datasets[0].views[0].measures[2]: expected a string"},
    {"datasets/0/views/0/measures/1", "\"median:cost\"",
     "$.datasets[0].views[0].measures[1]: unknown measure 'median:cost' "
     "(want count, count_distinct:C, sum:C, avg:C, min:C or max:C)"},
    {"datasets/0/views/0/measures/1", "\"sum:\"",
     "$.datasets[0].views[0].measures[1]: unknown measure 'sum:' (want "
     "count, count_distinct:C, sum:C, avg:C, min:C or max:C)"},
    {"datasets/0/views/0/measures/1", "\"count:cost\"",
     "$.datasets[0].views[0].measures[1]: unknown measure 'count:cost' "
     "(want count, count_distinct:C, sum:C, avg:C, min:C or max:C)"},
    {"datasets/0/views/0/measures/1", "\"sum\"",
     "$.datasets[0].views[0].measures[1]: unknown measure 'sum' (want "
     "count, count_distinct:C, sum:C, avg:C, min:C or max:C)"},
    {"datasets/0/views/0/measures/1", "\"Sum:cost\"",
     "$.datasets[0].views[0].measures[1]: unknown measure 'Sum:cost' "
     "(want count, count_distinct:C, sum:C, avg:C, min:C or max:C)"},
    {"datasets/0/views/0/min_group", "1",
     "$.datasets[0].views[0].min_group: expected an integer of at least 2"},
    {"datasets/0/views/0/min_group", "\"10\"",
     "$.datasets[0].views[0].min_group: expected an integer of at least 2"},
    {"datasets/0/views/0/min_group", "2.5",
     "$.datasets[0].views[0].min_group: expected an integer of at least 2"},
    {"datasets/0/views/0/min_group", "4294967296",
     "$.datasets[0].views[0].min_group: expected an integer of at least 2"},
    {"datasets/0/views/0/entity", "\"\"",
     "$.datasets[0].views[0].entity: empty"},
    {"datasets/0/views/0/entity", "1",
     "$.datasets[0].views[0].entity: expected a string"},
};

static void test_parse_refusals(void **state)
{
	struct agreement agr;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(parse_refusals); i++) {
		const struct change *c = &parse_refusals[i];
		char *text = spec_with(c->where, c->json);
		struct perr err = {{0}};
		int rc;

		memset(&agr, 0x5a, sizeof(agr));
		rc = parse(text, &agr, &err);
		if (rc != -EINVAL || strcmp(err.msg, c->msg) != 0)
			print_error("case %zu: %s = %s\n  got %d '%s'\n", i,
				    c->where, c->json ? c->json : "(removed)",
				    rc, err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.msg, c->msg);
		assert_empty(&agr);
		free(text);
	}
}

static void test_records_false_needs_a_view(void **state)
{
	static const struct change cases[] = {
	    {"datasets/0",
	     "{\"dataset\": \"health.visits\", \"records\": false}",
	     "$.datasets[0].views: missing (records is false: the dataset "
	     "needs a view)"},
	    {"datasets/0",
	     "{\"dataset\": \"health.visits\", \"records\": false, "
	     "\"views\": []}",
	     "$.datasets[0].views: empty (records is false: the dataset "
	     "needs a view)"},
	    {"datasets/0",
	     "{\"dataset\": \"health.visits\", \"records\": false, "
	     "\"columns\": {\"a\": \"mask:y\"}, \"views\": []}",
	     "$.datasets[0].columns.a: unknown rule 'mask:y'"},
	};
	struct agreement agr;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char *text = spec_with(cases[i].where, cases[i].json);
		struct perr err = {{0}};

		assert_int_equal(parse(text, &agr, &err), -EINVAL);
		assert_string_equal(err.msg, cases[i].msg);
		free(text);
	}
}

/* Changes that look odd but are valid. */
static const struct change parse_accepted[] = {
    {"uids", "[0, 4294967294]", NULL},
    {"max_level", "1", NULL},
    {"max_level", "4", NULL},
    {"valid_from", "\"2025-01-01T00:00:00.5-05:30\"", NULL},
    {"valid_from", "\"2024-02-29t23:59:59z\"", NULL},
    {"valid_until", "\"2024-12-31T16:00:00.000000001Z\"", NULL},
    {"quota/bytes_per_day", "1", NULL},
    {"quota/bytes_per_day", "17592186044415", NULL},
    {"datasets/0/rows", NULL, NULL},
    {"datasets/0/views", NULL, NULL},
    {"datasets/0/views", "[]", NULL},
    {"datasets/0/views/0/group_by", "[]", NULL},
    {"datasets/0/views/0/min_group", "2", NULL},
    {"datasets/0/views/0/min_group", "4294967295", NULL},
    {"datasets/0/views/0/name", "\"0.a-b_C\"", NULL},
    {"datasets/0/views/0/entity", NULL, NULL},
    {"datasets/0/columns/Culmen Length (mm)", "\"keep\"", NULL},
    {"datasets/1",
     "{\"dataset\": \"health.doctors\", \"records\": false, \"views\": "
     "[{\"name\": \"cost_by_district\", \"group_by\": [], "
     "\"measures\": [\"count\"]}]}",
     NULL},
};

static void test_parse_accepted(void **state)
{
	struct agreement agr;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(parse_accepted); i++) {
		const struct change *c = &parse_accepted[i];
		char *text = spec_with(c->where, c->json);
		struct perr err = {{0}};
		int rc = parse(text, &agr, &err);

		if (rc != 0)
			print_error("case %zu: %s = %s\n  got %d '%s'\n", i,
				    c->where, c->json ? c->json : "(removed)",
				    rc, err.msg);
		assert_int_equal(rc, 0);
		agreement_release(&agr);
		free(text);
	}
}

static void test_raw_text_refusals(void **state)
{
	struct perr err = {{0}};
	struct agreement agr;
	char *dup;

	(void)state;
	assert_int_equal(parse("[]", &agr, &err), -EINVAL);
	assert_string_equal(err.msg, "$: expected an object");
	assert_int_equal(parse("", &agr, &err), -EINVAL);
	assert_true(strncmp(err.msg, "line 1, column 0: ", 18) == 0);
	assert_int_equal(parse("{\n\"id\": \"a\",\n\"grantee\": }", &agr, &err),
			 -EINVAL);
	assert_true(strncmp(err.msg, "line 3, column ", 15) == 0);
	assert_empty(&agr);
	/* jansson's text quotes the input raw: no newline may get through. */
	assert_int_equal(parse("{\"id\": \"a\\u00\n\"}", &agr, &err), -EINVAL);
	assert_null(strchr(err.msg, '\n'));
	assert_non_null(strstr(err.msg, "\\x0a"));

	/* a key given twice is refused, not silently overridden */
	assert_true(asprintf(&dup, "{\"id\": \"b\", %s", spec_policy + 1) > 0);
	assert_int_equal(parse(dup, &agr, &err), -EINVAL);
	assert_true(strncmp(err.msg, "line 2, column ", 15) == 0);
	assert_non_null(strstr(err.msg, "duplicate object key"));
	assert_empty(&agr);
	free(dup);

	/* only len bytes are read */
	assert_int_equal(agreement_parse(spec_policy, 20, &agr, &err), -EINVAL);
	assert_true(strncmp(err.msg, "line 2, column ", 15) == 0);
}

/* A long column name is cut in the message, at a character boundary. */
static void test_long_names_are_cut(void **state)
{
	char name[128], where[160], want[256];
	struct perr err = {{0}};
	struct agreement agr;
	char *text;

	(void)state;
	memset(name, 'c', 100);
	name[100] = '\0';
	snprintf(where, sizeof(where), "datasets/0/columns/%s", name);
	text = spec_with(where, "\"bogus\"");
	snprintf(want, sizeof(want),
		 "$.datasets[0].columns['%.64s...']: unknown rule 'bogus'",
		 name);
	assert_int_equal(parse(text, &agr, &err), -EINVAL);
	assert_string_equal(err.msg, want);
	free(text);

	/* 63 ASCII bytes, then a 2-byte character across the cut */
	memset(name, 'c', 63);
	strcpy(name + 63, "\xc3\xa9tail");
	snprintf(where, sizeof(where), "datasets/0/columns/%s", name);
	text = spec_with(where, "\"bogus\"");
	snprintf(want, sizeof(want),
		 "$.datasets[0].columns['%.63s...']: unknown rule 'bogus'",
		 name);
	assert_int_equal(parse(text, &agr, &err), -EINVAL);
	assert_string_equal(err.msg, want);
	free(text);
}

/* A view name of 200 characters is the longest. */
static void test_view_name_length(void **state)
{
	char name[256], json[300];
	struct perr err = {{0}};
	struct agreement agr;
	char *text;

	(void)state;
	memset(name, 'v', 200);
	name[200] = '\0';
	snprintf(json, sizeof(json), "\"%s\"", name);
	text = spec_with("datasets/0/views/0/name", json);
	assert_int_equal(parse(text, &agr, &err), 0);
	assert_int_equal(strlen(agr.datasets[0].views[0].name), 200);
	agreement_release(&agr);
	free(text);

	name[200] = 'v';
	name[201] = '\0';
	snprintf(json, sizeof(json), "\"%s\"", name);
	text = spec_with("datasets/0/views/0/name", json);
	assert_int_equal(parse(text, &agr, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "invalid view name"));
	free(text);
}

/* ---- group_by items ---- */

static void test_group_by_forms(void **state)
{
	const struct group_key *k;
	struct perr err = {{0}};
	struct agreement agr;
	char *text;

	(void)state;
	text = spec_with("datasets/0/views/0/group_by",
			 "[\"visit_date:date:month\", \"note:x\", "
			 "\"age:bucket:05.50\", \"a:keep\", \"b:bucket:0\", "
			 "{\"column\": \"c:date:year\"}, "
			 "{\"column\": \"seen_at\", \"rule\": \"date:day\"}, "
			 "\"district:prefix:2\"]");
	assert_int_equal(parse(text, &agr, &err), 0);
	k = agr.datasets[0].views[0].keys;
	assert_int_equal(agr.datasets[0].views[0].nkeys, 8);

	assert_string_equal(k[0].column, "visit_date");
	assert_true(k[0].has_rule);
	assert_int_equal(k[0].rule.kind, RULE_DATE_MONTH);

	/* what follows the colon is not a rule: all of it is the name */
	assert_string_equal(k[1].column, "note:x");
	assert_false(k[1].has_rule);

	assert_string_equal(k[2].column, "age");
	assert_int_equal(k[2].rule.kind, RULE_BUCKET);
	assert_string_equal(k[2].rule.width, "5.5");

	/* a rule that does not generalise, or a bad one, is part of the name */
	assert_string_equal(k[3].column, "a:keep");
	assert_false(k[3].has_rule);
	assert_string_equal(k[4].column, "b:bucket:0");
	assert_false(k[4].has_rule);

	/* the object form never splits */
	assert_string_equal(k[5].column, "c:date:year");
	assert_false(k[5].has_rule);
	assert_string_equal(k[6].column, "seen_at");
	assert_true(k[6].has_rule);
	assert_int_equal(k[6].rule.kind, RULE_DATE_DAY);

	assert_string_equal(k[7].column, "district");
	assert_int_equal(k[7].rule.kind, RULE_PREFIX);
	assert_int_equal(k[7].rule.n, 2);
	agreement_release(&agr);
	free(text);
}

static void test_view_same(void **state)
{
	struct group_key ka = {.column = "age",
			       .has_rule = true,
			       .rule = {.kind = RULE_BUCKET, .width = "10"}};
	struct group_key kb = ka;
	struct measure ma = {.kind = MEASURE_COUNT};
	struct view a = {.name = "v",
			 .nkeys = 1,
			 .keys = &ka,
			 .nmeasures = 1,
			 .measures = &ma,
			 .min_group = 10};
	struct view b = a;

	(void)state;
	b.keys = &kb;
	assert_true(view_same(&a, &b));
	kb.rule.width = "5";
	assert_false(view_same(&a, &b));
	kb.rule.width = "10";
	b.min_group = 11;
	assert_false(view_same(&a, &b));
	b.min_group = 10;
	b.entity = "patient_id";
	assert_false(view_same(&a, &b));
	b.entity = NULL;
	kb.has_rule = false;
	assert_false(view_same(&a, &b));
	kb.has_rule = true;
	b.name = "w";
	assert_false(view_same(&a, &b));
	b.name = "v";
	b.nmeasures = 0;
	assert_false(view_same(&a, &b));
}

static void test_measures(void **state)
{
	const struct measure *m;
	struct perr err = {{0}};
	struct agreement agr;
	char *text;

	(void)state;
	text = spec_with("datasets/0/views/0/measures",
			 "[\"min:visit_date\", \"max:a:b\", "
			 "\"count_distinct:x\", \"count\"]");
	assert_int_equal(parse(text, &agr, &err), 0);
	m = agr.datasets[0].views[0].measures;
	assert_int_equal(m[0].kind, MEASURE_MIN);
	assert_string_equal(m[0].column, "visit_date");
	assert_int_equal(m[1].kind, MEASURE_MAX);
	assert_string_equal(m[1].column, "a:b");
	assert_int_equal(m[2].kind, MEASURE_COUNT_DISTINCT);
	assert_string_equal(m[2].column, "x");
	assert_int_equal(m[3].kind, MEASURE_COUNT);
	assert_null(m[3].column);
	agreement_release(&agr);
	free(text);
}

/* ---- refusals of agreement_check ---- */

static const struct change check_refusals[] = {
    {"datasets/0/dataset", "\"health.other\"",
     "$.datasets[0].dataset: no such dataset 'health.other'"},
    {"datasets/1", "{\"dataset\": \"nope\", \"columns\": {\"a\": \"keep\"}}",
     "$.datasets[1].dataset: no such dataset 'nope'"},
    {"datasets/0/columns/nmae", "\"keep\"",
     "$.datasets[0].columns.nmae: no such column in dataset "
     "'health.visits'"},
    {"datasets/0/columns/Culmen Length (mm)", "\"keep\"",
     "$.datasets[0].columns['Culmen Length (mm)']: no such column in "
     "dataset 'health.visits'"},
    {"datasets/0/columns/district", "\"bucket:5\"",
     "$.datasets[0].columns.district: rule 'bucket:5' does not fit type "
     "string"},
    {"datasets/0/columns/visit_date", "\"bucket:0.5\"",
     "$.datasets[0].columns.visit_date: rule 'bucket:0.5' does not fit "
     "type date"},
    {"datasets/0/columns/age", "\"date:year\"",
     "$.datasets[0].columns.age: rule 'date:year' does not fit type int"},
    {"datasets/0/columns/cost", "\"date:day\"",
     "$.datasets[0].columns.cost: rule 'date:day' does not fit type "
     "decimal"},
    {"datasets/0/columns/name", "\"keep\"",
     "$.datasets[0].columns.name: column is level 4, above max_level 3: "
     "only drop, null, redact or pseudonym may show it"},
    {"datasets/0/columns/name", "\"mask:first1\"",
     "$.datasets[0].columns.name: column is level 4, above max_level 3: "
     "only drop, null, redact or pseudonym may show it"},
    {"datasets/0/columns/name", "\"prefix:1\"",
     "$.datasets[0].columns.name: column is level 4, above max_level 3: "
     "only drop, null, redact or pseudonym may show it"},
    {"max_level", "2",
     "$.datasets[0].columns.phone: column is level 3, above max_level 2: "
     "only drop, null, redact or pseudonym may show it"},
    {"datasets/0/views/0/group_by/0", "\"nmae\"",
     "$.datasets[0].views[0].group_by[0]: no such column 'nmae' in "
     "dataset 'health.visits'"},
    {"datasets/0/views/0/group_by/0", "\"district:mask:last4\"",
     "$.datasets[0].views[0].group_by[0]: rule 'mask:last4' does not "
     "generalise (want date:year, date:month, date:day, bucket:W or "
     "prefix:N)"},
    {"datasets/0/views/0/group_by/0", "\"nmae:keep\"",
     "$.datasets[0].views[0].group_by[0]: no such column 'nmae:keep' in "
     "dataset 'health.visits'"},
    {"datasets/0/views/0/group_by/0", "\"patient_id\"",
     "$.datasets[0].views[0].group_by[0]: column 'patient_id' is level 4, "
     "above max_level 3: it may not be a group key"},
    {"datasets/0/views/0/group_by/0", "\"name:prefix:1\"",
     "$.datasets[0].views[0].group_by[0]: column 'name' is level 4, "
     "above max_level 3: it may not be a group key"},
    {"datasets/0/views/0/group_by/0", "\"district:date:year\"",
     "$.datasets[0].views[0].group_by[0]: rule 'date:year' does not fit "
     "type string"},
    {"datasets/0/views/0/group_by/1",
     "{\"column\": \"cost\", \"rule\": \"date:month\"}",
     "$.datasets[0].views[0].group_by[1]: rule 'date:month' does not fit "
     "type decimal"},
    {"datasets/0/views/0/group_by/1", "\"seen_at:bucket:1\"",
     "$.datasets[0].views[0].group_by[1]: rule 'bucket:1' does not fit "
     "type datetime"},
    {"datasets/0/views/0/measures/1", "\"sum:district\"",
     "$.datasets[0].views[0].measures[1]: sum needs an int or decimal "
     "column, 'district' is string"},
    {"datasets/0/views/0/measures/2", "\"avg:visit_date\"",
     "$.datasets[0].views[0].measures[2]: avg needs an int or decimal "
     "column, 'visit_date' is date"},
    {"datasets/0/views/0/measures/1", "\"sum:nmae\"",
     "$.datasets[0].views[0].measures[1]: no such column 'nmae' in "
     "dataset 'health.visits'"},
    {"datasets/0/views/0/measures/3", "\"count_distinct:nmae\"",
     "$.datasets[0].views[0].measures[3]: no such column 'nmae' in "
     "dataset 'health.visits'"},
    {"datasets/0/views/0/measures/1", "\"min:patient_id\"",
     "$.datasets[0].views[0].measures[1]: column 'patient_id' is level 4, "
     "above max_level 3: only count_distinct may use it"},
    {"datasets/0/views/0/measures/1", "\"max:name\"",
     "$.datasets[0].views[0].measures[1]: column 'name' is level 4, "
     "above max_level 3: only count_distinct may use it"},
    {"datasets/0/views/0/measures/1", "\"sum:patient_id\"",
     "$.datasets[0].views[0].measures[1]: column 'patient_id' is level 4, "
     "above max_level 3: only count_distinct may use it"},
    {"datasets/0/views/0/entity", "\"nmae\"",
     "$.datasets[0].views[0].entity: no such column 'nmae' in dataset "
     "'health.visits'"},
    {"datasets/0/views/0/measures/4", "\"count\"",
     "$.datasets[0].views[0].measures[4]: duplicate header name 'count'"},
    {"datasets/0/views/0/measures/4", "\"avg:cost\"",
     "$.datasets[0].views[0].measures[4]: duplicate header name "
     "'avg_cost'"},
    {"datasets/0/views/0/group_by/1", "\"district\"",
     "$.datasets[0].views[0].group_by[1]: duplicate header name "
     "'district'"},
    {"datasets/0/views/0/group_by/0", "\"visit_date:date:year\"",
     "$.datasets[0].views[0].group_by[1]: duplicate header name "
     "'visit_date'"},
    {"datasets/0/views/0/group_by/1", "\"sum_cost\"",
     "$.datasets[0].views[0].measures[1]: duplicate header name "
     "'sum_cost'"},
};

static void test_check_refusals(void **state)
{
	struct agreement agr;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(check_refusals); i++) {
		const struct change *c = &check_refusals[i];
		char *text = spec_with(c->where, c->json);
		struct perr err = {{0}};
		int rc = parse(text, &agr, &err);

		if (rc != 0)
			print_error("case %zu: does not parse: %s\n", i,
				    err.msg);
		assert_int_equal(rc, 0);
		rc = check(&agr, &err);
		if (rc != -EINVAL || strcmp(err.msg, c->msg) != 0)
			print_error("case %zu: %s = %s\n  got %d '%s'\n", i,
				    c->where, c->json ? c->json : "(removed)",
				    rc, err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.msg, c->msg);
		agreement_release(&agr);
		free(text);
	}
}

/* Valid against the catalog, though near a refusal. */
static const struct change check_accepted[] = {
    /* level above max_level, hidden */
    {"datasets/0/columns/name", "\"redact\"", NULL},
    {"datasets/0/columns/name", "\"null\"", NULL},
    {"datasets/0/columns/name", "\"pseudonym\"", NULL},
    {"max_level", "4", NULL},
    {"datasets/0/columns/name", NULL, NULL},
    /* an entity above max_level is only counted */
    {"datasets/0/views/0/entity", "\"name\"", NULL},
    {"datasets/0/views/0/measures/4", "\"count_distinct:name\"", NULL},
    /* mask and prefix fit every type */
    {"datasets/0/columns/age", "\"mask:first1\"", NULL},
    {"datasets/0/columns/visit_date", "\"prefix:4\"", NULL},
    {"datasets/0/columns/seen_at", "\"date:year\"", NULL},
    {"datasets/0/columns/cost", "\"bucket:0.25\"", NULL},
    {"datasets/0/views/0/group_by/1", "\"seen_at:date:day\"", NULL},
    {"datasets/0/views/0/group_by/1", "\"age:bucket:5\"", NULL},
    {"datasets/0/views/0/group_by/1", "\"note:x\"", NULL},
    {"datasets/0/views/0/group_by/1",
     "{\"column\": \"note:x\", \"rule\": \"prefix:1\"}", NULL},
    {"datasets/0/views/0/measures/1", "\"min:visit_date\"", NULL},
    {"datasets/0/views/0/measures/1", "\"max:district\"", NULL},
    {"datasets/0/views/0/measures/1", "\"sum:age\"", NULL},
    /* the same column under two measures gives two headers */
    {"datasets/0/views/0/measures/4", "\"max:cost\"", NULL},
    /* a view may use a column that data.csv does not show */
    {"datasets/0/views/0/measures/1", "\"avg:sum_cost\"", NULL},
    {"datasets/1",
     "{\"dataset\": \"health.doctors\", \"columns\": {\"doctor_id\": "
     "\"keep\"}}",
     NULL},
};

static void test_check_accepted(void **state)
{
	struct agreement agr;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(check_accepted); i++) {
		const struct change *c = &check_accepted[i];
		char *text = spec_with(c->where, c->json);
		struct perr err = {{0}};
		int rc = parse(text, &agr, &err);

		if (rc == 0)
			rc = check(&agr, &err);
		if (rc != 0)
			print_error("case %zu: %s = %s\n  got %d '%s'\n", i,
				    c->where, c->json ? c->json : "(removed)",
				    rc, err.msg);
		assert_int_equal(rc, 0);
		agreement_release(&agr);
		free(text);
	}
}

static void test_check_asks_the_catalog_per_dataset(void **state)
{
	struct perr err = {{0}};
	struct agreement agr;
	int calls = 0;
	char *text;

	(void)state;
	text = spec_with("datasets/1",
			 "{\"dataset\": \"health.doctors\", \"columns\": "
			 "{\"doctor_id\": \"keep\"}}");
	assert_int_equal(parse(text, &agr, &err), 0);
	assert_int_equal(agreement_check(&agr, lookup, &calls, &err), 0);
	assert_int_equal(calls, 2);
	agreement_release(&agr);
	free(text);
}

/* ---- rules ---- */

static void test_rule_round_trip(void **state)
{
	static const char *const texts[] = {
	    "keep",
	    "drop",
	    "null",
	    "redact",
	    "pseudonym",
	    "mask:first1",
	    "mask:last4",
	    "mask:first1000000",
	    "mask:last1000000",
	    "prefix:3",
	    "prefix:1000000",
	    "date:year",
	    "date:month",
	    "date:day",
	    "bucket:10",
	    "bucket:100",
	    "bucket:0.5",
	    "bucket:2.25",
	    "bucket:0.0001",
	    "bucket:123456789012345678",
	    "bucket:0.000000000000000000000000000000000000000000000000000001",
	};
	char buf[RULE_TEXT_MAX];
	struct rule r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(texts); i++) {
		struct perr err = {{0}};
		int rc = rule_parse(texts[i], &r, &err);

		if (rc != 0)
			print_error("'%s': %s\n", texts[i], err.msg);
		assert_int_equal(rc, 0);
		assert_string_equal(rule_text(&r, buf, sizeof(buf)), texts[i]);
		rule_release(&r);
	}
}

static void test_rule_values(void **state)
{
	struct perr err = {{0}};
	struct rule r;

	(void)state;
	assert_int_equal(rule_parse("mask:first12", &r, &err), 0);
	assert_int_equal(r.kind, RULE_MASK_FIRST);
	assert_int_equal(r.n, 12);
	assert_null(r.width);
	assert_int_equal(rule_parse("prefix:7", &r, &err), 0);
	assert_int_equal(r.kind, RULE_PREFIX);
	assert_int_equal(r.n, 7);
	assert_int_equal(rule_parse("redact", &r, &err), 0);
	assert_int_equal(r.kind, RULE_REDACT);
	assert_int_equal(rule_parse("bucket:2.5", &r, &err), 0);
	assert_int_equal(r.kind, RULE_BUCKET);
	assert_string_equal(r.width, "2.5");
	rule_release(&r);
	assert_null(r.width);
}

static void test_bucket_width_is_canonical(void **state)
{
	static const char *const pairs[][2] = {
	    {"bucket:010", "bucket:10"},   {"bucket:0.50", "bucket:0.5"},
	    {"bucket:00.5", "bucket:0.5"}, {"bucket:5.000", "bucket:5"},
	    {"bucket:5.0", "bucket:5"},	   {"bucket:0001.0100", "bucket:1.01"},
	    {"bucket:0.10", "bucket:0.1"}, {"bucket:1000", "bucket:1000"},
	};
	char buf[RULE_TEXT_MAX];
	struct rule r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(pairs); i++) {
		struct perr err = {{0}};

		assert_int_equal(rule_parse(pairs[i][0], &r, &err), 0);
		assert_string_equal(rule_text(&r, buf, sizeof(buf)),
				    pairs[i][1]);
		rule_release(&r);
	}
}

static void test_rule_refusals(void **state)
{
	static const char *const pairs[][2] = {
	    {"", "unknown rule ''"},
	    {"Keep", "unknown rule 'Keep'"},
	    {"keep ", "unknown rule 'keep '"},
	    {"mask:x", "unknown rule 'mask:x'"},
	    {"mask", "unknown rule 'mask'"},
	    {"date:week", "unknown rule 'date:week'"},
	    {"date:", "unknown rule 'date:'"},
	    {"bucket", "unknown rule 'bucket'"},
	    {"hash", "unknown rule 'hash'"},
	    {"mask:first",
	     "bad N in rule 'mask:first' (want 1..1000000, without leading "
	     "zeros)"},
	    {"mask:first0",
	     "bad N in rule 'mask:first0' (want 1..1000000, without leading "
	     "zeros)"},
	    {"mask:last01",
	     "bad N in rule 'mask:last01' (want 1..1000000, without leading "
	     "zeros)"},
	    {"mask:first1000001",
	     "bad N in rule 'mask:first1000001' (want 1..1000000, without "
	     "leading zeros)"},
	    {"mask:first99999999999999999999",
	     "bad N in rule 'mask:first99999999999999999999' (want "
	     "1..1000000, without leading zeros)"},
	    {"mask:first-1",
	     "bad N in rule 'mask:first-1' (want 1..1000000, without "
	     "leading zeros)"},
	    {"mask:first+1",
	     "bad N in rule 'mask:first+1' (want 1..1000000, without "
	     "leading zeros)"},
	    {"mask:last 4",
	     "bad N in rule 'mask:last 4' (want 1..1000000, without "
	     "leading zeros)"},
	    {"prefix:",
	     "bad N in rule 'prefix:' (want 1..1000000, without leading "
	     "zeros)"},
	    {"prefix:1.5",
	     "bad N in rule 'prefix:1.5' (want 1..1000000, without leading "
	     "zeros)"},
	    {"prefix:3x",
	     "bad N in rule 'prefix:3x' (want 1..1000000, without leading "
	     "zeros)"},
	    {"bucket:",
	     "bad width in rule 'bucket:' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:0",
	     "bad width in rule 'bucket:0' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:0.000",
	     "bad width in rule 'bucket:0.000' (want a positive decimal of "
	     "at most 56 characters)"},
	    {"bucket:-1",
	     "bad width in rule 'bucket:-1' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:+1",
	     "bad width in rule 'bucket:+1' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:1e3",
	     "bad width in rule 'bucket:1e3' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:1234567890123456789",
	     "bad width in rule 'bucket:1234567890123456789' (at most 18 "
	     "significant digits)"},
	    {"bucket:0.1000000000000000001",
	     "bad width in rule 'bucket:0.1000000000000000001' (at most 18 "
	     "significant digits)"},
	    {"bucket:.5",
	     "bad width in rule 'bucket:.5' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:5.",
	     "bad width in rule 'bucket:5.' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:1,5",
	     "bad width in rule 'bucket:1,5' (want a positive decimal of at "
	     "most 56 characters)"},
	    {"bucket:1.2.3",
	     "bad width in rule 'bucket:1.2.3' (want a positive decimal of "
	     "at most 56 characters)"},
	};
	struct rule r;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(pairs); i++) {
		struct perr err = {{0}};

		assert_int_equal(rule_parse(pairs[i][0], &r, &err), -EINVAL);
		assert_string_equal(err.msg, pairs[i][1]);
		assert_null(r.width);
	}
}

/* A width may be 56 characters once canonical (leading zeros do not
 * count), not 57, so that every rule's text fits in RULE_TEXT_MAX. */
static void test_bucket_width_limit(void **state)
{
	char text[128], want[128], buf[RULE_TEXT_MAX];
	struct perr err = {{0}};
	struct rule r;

	(void)state;
	/* 56 characters once canonical (and 1 significant digit) */
	snprintf(text, sizeof(text), "bucket:000.%054d000", 1);
	assert_int_equal(rule_parse(text, &r, &err), 0);
	snprintf(want, sizeof(want), "bucket:0.%054d", 1);
	assert_int_equal(strlen(want) + 1, RULE_TEXT_MAX);
	assert_string_equal(rule_text(&r, buf, sizeof(buf)), want);
	rule_release(&r);
	snprintf(text, sizeof(text), "bucket:0.%055d", 1);
	assert_int_equal(rule_parse(text, &r, &err), -EINVAL);
}

static void test_rule_text_truncates_to_buf(void **state)
{
	struct perr err = {{0}};
	struct rule r;
	char buf[4];

	(void)state;
	assert_int_equal(rule_parse("mask:last4", &r, &err), 0);
	assert_string_equal(rule_text(&r, buf, sizeof(buf)), "mas");
	assert_int_equal(rule_parse("bucket:10", &r, &err), 0);
	assert_string_equal(rule_text(&r, buf, sizeof(buf)), "buc");
	rule_release(&r);
	/* rules without an argument do not need the buffer */
	assert_int_equal(rule_parse("pseudonym", &r, &err), 0);
	assert_string_equal(rule_text(&r, NULL, 0), "pseudonym");
}

/* ---- times ---- */

static void test_time_valid(void **state)
{
	static const struct {
		const char *text;
		int64_t ns;
		int offset;
	} cases[] = {
	    {"1970-01-01T00:00:00Z", 0, 0},
	    {"1970-01-01t00:00:00z", 0, 0},
	    {"1970-01-01T00:00:00+00:00", 0, 0},
	    {"1970-01-01T00:00:00-00:00", 0, 0},
	    {"1970-01-01T08:00:00+08:00", 0, 480},
	    {"2025-01-01T00:00:00+08:00", 1735660800LL * 1000000000, 480},
	    {"2025-01-01T00:00:00-05:30", 1735709400LL * 1000000000, -330},
	    {"2025-01-01T00:00:00+23:59", (1735689600LL - 86340) * 1000000000,
	     1439},
	    {"2000-02-29T12:00:00Z", 951825600LL * 1000000000, 0},
	    {"2024-02-29T00:00:00.5Z", 1709164800LL * 1000000000 + 500000000,
	     0},
	    {"2024-02-29T00:00:00.123456789Z",
	     1709164800LL * 1000000000 + 123456789, 0},
	    {"2024-02-29T00:00:00.000000001Z", 1709164800LL * 1000000000 + 1,
	     0},
	    {"2024-12-31T23:59:59Z", 1735689599LL * 1000000000, 0},
	    {"1969-12-31T23:59:59.999999999Z", -1, 0},
	    {"1969-12-31T23:59:59.5Z", -500000000, 0},
	    {"1677-09-21T00:12:43.145224192Z", INT64_MIN, 0},
	    {"2262-04-11T23:47:16.854775807Z", INT64_MAX, 0},
	    {"2262-04-12T07:47:16.854775807+08:00", INT64_MAX, 480},
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		int64_t ns = 42;
		int offset = 42;
		int rc = time_parse_rfc3339(cases[i].text, &ns, &offset);

		if (rc != 0)
			print_error("'%s' refused\n", cases[i].text);
		assert_int_equal(rc, 0);
		if (ns != cases[i].ns)
			print_error("'%s': %lld\n", cases[i].text,
				    (long long)ns);
		assert_true(ns == cases[i].ns);
		assert_int_equal(offset, cases[i].offset);
	}
}

static void test_time_refused(void **state)
{
	static const char *const texts[] = {
	    "",
	    "2025-01-01T00:00:00",
	    "2025-01-01",
	    "2025-01-01T00:00Z",
	    "25-01-01T00:00:00Z",
	    "2025-01-01T00:00:00.Z",
	    "2025-01-01T00:00:00.1234567890Z",
	    "2025-01-01T00:00:00+08",
	    "2025-01-01T00:00:00+08:0",
	    "2025-01-01T00:00:00Z ",
	    " 2025-01-01T00:00:00Z",
	    "2023-02-29T00:00:00Z",
	    "2100-02-29T00:00:00Z",
	    "2025-06-31T00:00:00Z",
	    "2025-01-32T00:00:00Z",
	    "2025-01-01T00:00:60Z",
	    "2025-01-01T25:00:00Z",
	    "1677-09-21T00:12:43.145224191Z",
	    "2262-04-11T23:47:16.854775808Z",
	    "9999-12-31T23:59:59Z",
	    "0000-01-01T00:00:00Z",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(texts); i++) {
		int64_t ns;
		int offset;
		int rc = time_parse_rfc3339(texts[i], &ns, &offset);

		if (rc != -EINVAL)
			print_error("'%s' accepted\n", texts[i]);
		assert_int_equal(rc, -EINVAL);
	}
}

/* Every day from 1970 to 2100 follows the one before by 86400 s. */
static void test_time_days_are_contiguous(void **state)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31};
	int64_t expect = 0, ns;
	int y, m, d, offset;
	char text[32];

	(void)state;
	for (y = 1970; y < 2100; y++) {
		for (m = 1; m <= 12; m++) {
			int leap = m == 2 && y % 4 == 0; /* 2000 is one */

			for (d = 1; d <= mdays[m - 1] + leap; d++) {
				snprintf(text, sizeof(text),
					 "%04d-%02d-%02dT00:00:00Z", y, m, d);
				assert_int_equal(
				    time_parse_rfc3339(text, &ns, &offset), 0);
				assert_true(ns == expect);
				expect += 86400LL * 1000000000;
			}
		}
	}
}

/* ---- ids ---- */

static void test_ids(void **state)
{
	char id[80];

	(void)state;
	assert_true(id_is_valid("a"));
	assert_true(id_is_valid("0"));
	assert_true(id_is_valid("health.visits"));
	assert_true(id_is_valid("agr-2025-001"));
	assert_true(id_is_valid("a_b-c.d"));
	assert_true(id_is_valid("9.."));
	assert_false(id_is_valid(""));
	assert_false(id_is_valid("A"));
	assert_false(id_is_valid("health.Visits"));
	assert_false(id_is_valid("-a"));
	assert_false(id_is_valid(".a"));
	assert_false(id_is_valid("_a"));
	assert_false(id_is_valid("."));
	assert_false(id_is_valid(".."));
	assert_false(id_is_valid("a b"));
	assert_false(id_is_valid("a/b"));
	assert_false(id_is_valid("caf\xc3\xa9"));
	/* Hostile: paths, control bytes and look-alikes of valid ids. */
	assert_false(id_is_valid("../x"));
	assert_false(id_is_valid("x/.."));
	assert_false(id_is_valid("/etc"));
	assert_false(id_is_valid("a\nb"));
	assert_false(id_is_valid("a\x1b[2J"));
	assert_false(id_is_valid("\xef\xbd\x81gr"));  /* fullwidth a */
	assert_false(id_is_valid("\xd0\xb0gr"));      /* Cyrillic a */
	assert_false(id_is_valid("agr\xe2\x80\x8b")); /* zero-width space */
	assert_false(id_is_valid("pengu\xc4\xb1ns")); /* dotless i */

	memset(id, 'a', 64);
	id[64] = '\0';
	assert_true(id_is_valid(id));
	id[64] = 'a';
	id[65] = '\0';
	assert_false(id_is_valid(id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_example),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_records_false),
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_parse_refusals),
	    cmocka_unit_test(test_records_false_needs_a_view),
	    cmocka_unit_test(test_parse_accepted),
	    cmocka_unit_test(test_raw_text_refusals),
	    cmocka_unit_test(test_long_names_are_cut),
	    cmocka_unit_test(test_view_name_length),
	    cmocka_unit_test(test_group_by_forms),
	    cmocka_unit_test(test_view_same),
	    cmocka_unit_test(test_measures),
	    cmocka_unit_test(test_check_refusals),
	    cmocka_unit_test(test_check_accepted),
	    cmocka_unit_test(test_check_asks_the_catalog_per_dataset),
	    cmocka_unit_test(test_rule_round_trip),
	    cmocka_unit_test(test_rule_values),
	    cmocka_unit_test(test_bucket_width_is_canonical),
	    cmocka_unit_test(test_rule_refusals),
	    cmocka_unit_test(test_bucket_width_limit),
	    cmocka_unit_test(test_rule_text_truncates_to_buf),
	    cmocka_unit_test(test_time_valid),
	    cmocka_unit_test(test_time_refused),
	    cmocka_unit_test(test_time_days_are_contiguous),
	    cmocka_unit_test(test_ids),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
