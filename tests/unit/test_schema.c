/*
 * Unit tests of policy/schema: parsing the schema JSON (values, defaults,
 * every refusal with its JSON path), printing it back, lookup, copy.
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

#include "schema.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char visits_json[] =
    "{\"columns\": [\n"
    "  {\"name\": \"patient_id\", \"type\": \"string\", \"level\": 4},\n"
    "  {\"name\": \"age\", \"type\": \"int\", \"level\": 2},\n"
    "  {\"name\": \"cost\", \"type\": \"decimal\", \"level\": 1},\n"
    "  {\"name\": \"visit_date\", \"type\": \"date\", \"level\": 3},\n"
    "  {\"name\": \"seen_at\", \"type\": \"datetime\"},\n"
    "  {\"name\": \"Culmen Length (mm)\", \"type\": \"decimal\", "
    "\"level\": 1}\n"
    "]}\n";

static int parse(const char *text, struct schema *s, struct perr *err)
{
	return schema_from_json(text, strlen(text), s, err);
}

static void test_parse_values(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(parse(visits_json, &s, &err), 0);
	assert_int_equal(s.ncols, 6);
	assert_string_equal(s.cols[0].name, "patient_id");
	assert_int_equal(s.cols[0].type, COL_STRING);
	assert_int_equal(s.cols[0].level, 4);
	assert_string_equal(s.cols[1].name, "age");
	assert_int_equal(s.cols[1].type, COL_INT);
	assert_int_equal(s.cols[1].level, 2);
	assert_int_equal(s.cols[2].type, COL_DECIMAL);
	assert_int_equal(s.cols[2].level, 1);
	assert_int_equal(s.cols[3].type, COL_DATE);
	assert_int_equal(s.cols[3].level, 3);
	assert_string_equal(s.cols[5].name, "Culmen Length (mm)");
	schema_release(&s);
}

static void test_level_defaults_to_4(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(parse(visits_json, &s, &err), 0);
	assert_string_equal(s.cols[4].name, "seen_at");
	assert_int_equal(s.cols[4].type, COL_DATETIME);
	assert_int_equal(s.cols[4].level, 4);
	schema_release(&s);
}

/* Only the first len bytes are read: the text need not end with a NUL. */
static void test_parse_honours_len(void **state)
{
	static const char text[] =
	    "{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}]}garbage";
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(schema_from_json(text, strlen(text) - 7, &s, &err), 0);
	assert_int_equal(s.ncols, 1);
	schema_release(&s);
	assert_int_equal(schema_from_json(text, strlen(text), &s, &err),
			 -EINVAL);
}

struct refusal {
	const char *text;
	const char *msg;
};

static const struct refusal refusals[] = {
    {"[]", "$: expected an object"},
    {"{}", "$.columns: missing"},
    {"{\"columns\": {}}", "$.columns: expected an array"},
    {"{\"columns\": []}", "$.columns: empty"},
    {"{\"columns\": [1]}", "$.columns[0]: expected an object"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}], \"x\": 1}",
     "$.x: unknown key"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}], \"x y\": 1}",
     "$['x y']: unknown key"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}], "
     "\"a\\nb\": 1}",
     "$['a\\x0ab']: unknown key"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", "
     "\"colour\": \"red\"}]}",
     "$.columns[0].colour: unknown key"},
    {"{\"columns\": [{\"type\": \"int\"}]}", "$.columns[0].name: missing"},
    {"{\"columns\": [{\"name\": 1, \"type\": \"int\"}]}",
     "$.columns[0].name: expected a string"},
    {"{\"columns\": [{\"name\": \"\", \"type\": \"int\"}]}",
     "$.columns[0].name: empty"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}, "
     "{\"name\": \"b\", \"type\": \"int\"}, "
     "{\"name\": \"a\", \"type\": \"string\"}]}",
     "$.columns[2].name: duplicate column 'a'"},
    {"{\"columns\": [{\"name\": \"a\"}]}", "$.columns[0].type: missing"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": 3}]}",
     "$.columns[0].type: expected a string"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}, "
     "{\"name\": \"b\", \"type\": \"int\"}, "
     "{\"name\": \"c\", \"type\": \"float\"}]}",
     "$.columns[2].type: unknown type 'float'"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"String\"}]}",
     "$.columns[0].type: unknown type 'String'"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", \"level\": 0}]}",
     "$.columns[0].level: expected an integer 1..4"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", \"level\": 5}]}",
     "$.columns[0].level: expected an integer 1..4"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", "
     "\"level\": 2.0}]}",
     "$.columns[0].level: expected an integer 1..4"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", "
     "\"level\": \"2\"}]}",
     "$.columns[0].level: expected an integer 1..4"},
    {"{\"columns\": [{\"name\": \"a\", \"type\": \"int\", "
     "\"level\": null}]}",
     "$.columns[0].level: expected an integer 1..4"},
};

static void test_refusals(void **state)
{
	struct schema s;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(refusals); i++) {
		struct perr err = {{0}};
		int rc = parse(refusals[i].text, &s, &err);

		if (rc != -EINVAL || strcmp(err.msg, refusals[i].msg) != 0)
			print_error("case %zu: %s\n  got rc %d '%s'\n", i,
				    refusals[i].text, rc, err.msg);
		assert_int_equal(rc, -EINVAL);
		assert_string_equal(err.msg, refusals[i].msg);
		assert_int_equal(s.ncols, 0);
		assert_null(s.cols);
	}
}

/* A long unknown key is cut in the message, which stays one line. */
static void test_long_key_is_cut(void **state)
{
	char key[101], text[256], want[128];
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	memset(key, 'k', 100);
	key[100] = '\0';
	snprintf(text, sizeof(text),
		 "{\"columns\": [{\"name\": \"a\", \"type\": \"int\"}], "
		 "\"%s\": 1}",
		 key);
	snprintf(want, sizeof(want), "$['%.64s...']: unknown key", key);
	assert_int_equal(parse(text, &s, &err), -EINVAL);
	assert_string_equal(err.msg, want);
}

static void test_syntax_errors_name_line_and_column(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(
	    parse("{\"columns\": [\n  {\"name\": \"a\",}\n]}", &s, &err),
	    -EINVAL);
	assert_true(strncmp(err.msg, "line 2, column ", 15) == 0);
	assert_int_equal(parse("", &s, &err), -EINVAL);
	assert_true(strncmp(err.msg, "line 1, column 0: ", 18) == 0);
}

/*
 * jansson quotes the input near a fault, raw: a newline or an escape
 * sequence there must not reach the one-line error (found by fuzz_schema).
 */
static void test_syntax_error_text_is_one_line(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(parse("{\"\\u00\n9s\": []}", &s, &err), -EINVAL);
	assert_string_equal(err.msg, "line 2, column 0: invalid escape near "
				     "'\"\\u00\\x0a'");
	assert_int_equal(parse("{\"a\": \x1b[2J}", &s, &err), -EINVAL);
	for (const char *p = err.msg; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && *p != 0x7f);
	assert_non_null(strstr(err.msg, "\\x1b"));
}

static void test_duplicate_keys_refused(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(
	    parse("{\"columns\": [{\"name\": \"a\", \"name\": \"b\", "
		  "\"type\": \"int\"}]}",
		  &s, &err),
	    -EINVAL);
	assert_true(strncmp(err.msg, "line 1, column ", 15) == 0);
	assert_non_null(strstr(err.msg, "duplicate object key"));
	assert_null(s.cols);
}

static void test_to_json_exact(void **state)
{
	struct perr err = {{0}};
	struct schema s;
	char *text;

	(void)state;
	assert_int_equal(parse("{\"columns\": [{\"type\": \"int\", \"name\": "
			       "\"a\", \"level\": 1}, {\"name\": \"b\\\"c\", "
			       "\"type\": \"date\"}]}",
			       &s, &err),
			 0);
	text = schema_to_json(&s);
	assert_non_null(text);
	assert_string_equal(text,
			    "{\"columns\":["
			    "{\"name\":\"a\",\"type\":\"int\",\"level\":1},"
			    "{\"name\":\"b\\\"c\",\"type\":\"date\","
			    "\"level\":4}]}");
	free(text);
	schema_release(&s);
}

static void test_to_json_round_trip(void **state)
{
	struct perr err = {{0}};
	struct schema a, b;
	char *text;
	size_t i;

	(void)state;
	assert_int_equal(parse(visits_json, &a, &err), 0);
	text = schema_to_json(&a);
	assert_non_null(text);
	assert_int_equal(parse(text, &b, &err), 0);
	assert_int_equal(a.ncols, b.ncols);
	for (i = 0; i < a.ncols; i++) {
		assert_string_equal(a.cols[i].name, b.cols[i].name);
		assert_int_equal(a.cols[i].type, b.cols[i].type);
		assert_int_equal(a.cols[i].level, b.cols[i].level);
	}
	free(text);
	schema_release(&a);
	schema_release(&b);
}

static void test_find(void **state)
{
	struct perr err = {{0}};
	struct schema s;

	(void)state;
	assert_int_equal(parse(visits_json, &s, &err), 0);
	assert_int_equal(schema_find(&s, "patient_id"), 0);
	assert_int_equal(schema_find(&s, "cost"), 2);
	assert_int_equal(schema_find(&s, "Culmen Length (mm)"), 5);
	assert_int_equal(schema_find(&s, "Cost"), -1);
	assert_int_equal(schema_find(&s, ""), -1);
	schema_release(&s);
}

static void test_copy_is_deep(void **state)
{
	struct perr err = {{0}};
	struct schema a, b;
	size_t i;

	(void)state;
	assert_int_equal(parse(visits_json, &a, &err), 0);
	assert_int_equal(schema_copy(&b, &a), 0);
	assert_int_equal(b.ncols, a.ncols);
	for (i = 0; i < a.ncols; i++) {
		assert_ptr_not_equal(b.cols[i].name, a.cols[i].name);
		assert_string_equal(b.cols[i].name, a.cols[i].name);
		assert_int_equal(b.cols[i].type, a.cols[i].type);
		assert_int_equal(b.cols[i].level, a.cols[i].level);
	}
	schema_release(&a);
	/* b still readable after a is gone (ASan would catch a shallow copy) */
	assert_string_equal(b.cols[5].name, "Culmen Length (mm)");
	schema_release(&b);
	assert_int_equal(b.ncols, 0);
	assert_null(b.cols);
}

static void test_copy_of_empty(void **state)
{
	struct schema empty = {0}, b;

	(void)state;
	assert_int_equal(schema_copy(&b, &empty), 0);
	assert_int_equal(b.ncols, 0);
	assert_null(b.cols);
	schema_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_values),
	    cmocka_unit_test(test_level_defaults_to_4),
	    cmocka_unit_test(test_parse_honours_len),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_long_key_is_cut),
	    cmocka_unit_test(test_syntax_errors_name_line_and_column),
	    cmocka_unit_test(test_syntax_error_text_is_one_line),
	    cmocka_unit_test(test_duplicate_keys_refused),
	    cmocka_unit_test(test_to_json_exact),
	    cmocka_unit_test(test_to_json_round_trip),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_copy_is_deep),
	    cmocka_unit_test(test_copy_of_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
