/*
 * Unit tests of policy/jsonpath's text escaping (and policy/utf8 under
 * it): what each of TEXT_SHOWN, TEXT_LINE and TEXT_UTF8 escapes, that
 * well-formed UTF-8 passes whole while overlongs, surrogates, code points
 * past U+10FFFF and cut sequences do not, and text_quote's cut (also of
 * a field given by its length, text_quote_bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonpath.h"
#include "utf8.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct escape_case {
	const char *in, *shown, *line, *utf8;
};

static const struct escape_case cases[] = {
    {"plain", "plain", "plain", "plain"},
    {"a\nb", "a\\x0ab", "a\\x0ab", "a\nb"},
    {"tab\tdel\x7f", "tab\\x09del\\x7f", "tab\\x09del\\x7f", "tab\tdel\x7f"},
    {"esc\x1b[2J", "esc\\x1b[2J", "esc\\x1b[2J", "esc\x1b[2J"},
    /* A backslash is escaped where other escapes must read back. */
    {"c:\\x0a", "c:\\x5cx0a", "c:\\x0a", "c:\\x5cx0a"},
    /* C1 (U+009B, CSI) is a control character; U+00A0 is not. */
    {"\xc2\x9b"
     "1m\xc2\xa0",
     "\\xc2\\x9b1m\xc2\xa0", "\\xc2\\x9b1m\xc2\xa0",
     "\xc2\x9b"
     "1m\xc2\xa0"},
    /* Well-formed UTF-8 of 2, 3 and 4 bytes passes whole. */
    {"caf\xc3\xa9 \xe6\x9d\xad \xf0\x9f\x98\x80",
     "caf\xc3\xa9 \xe6\x9d\xad \xf0\x9f\x98\x80",
     "caf\xc3\xa9 \xe6\x9d\xad \xf0\x9f\x98\x80",
     "caf\xc3\xa9 \xe6\x9d\xad \xf0\x9f\x98\x80"},
    /* Not UTF-8: a stray byte, an overlong, a surrogate, past U+10FFFF,
     * a sequence cut by the end; TEXT_LINE leaves them to the terminal. */
    {"caf\xe9", "caf\\xe9", "caf\xe9", "caf\\xe9"},
    {"\xc0\xaf", "\\xc0\\xaf", "\xc0\xaf", "\\xc0\\xaf"},
    {"\xed\xa0\x80", "\\xed\\xa0\\x80", "\xed\xa0\x80", "\\xed\\xa0\\x80"},
    {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", "\xf4\x90\x80\x80",
     "\\xf4\\x90\\x80\\x80"},
    {"end\xe2\x82", "end\\xe2\\x82", "end\xe2\x82", "end\\xe2\\x82"},
};

static void expect_escape(const char *in, enum text_escape how,
			  const char *want)
{
	char *got = text_escape_dup(in, how);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_escape_modes(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		expect_escape(cases[i].in, TEXT_SHOWN, cases[i].shown);
		expect_escape(cases[i].in, TEXT_LINE, cases[i].line);
		expect_escape(cases[i].in, TEXT_UTF8, cases[i].utf8);
	}
}

/* Every byte escaped is the worst case the 4-bytes-per-byte room allows. */
static void test_escape_worst_case(void **state)
{
	char in[257], want[257 * 4 + 1];
	char *got;

	(void)state;
	for (int i = 0; i < 256; i++) {
		in[i] = (char)(0x80 + i % 0x40);
		snprintf(want + i * 4, 5, "\\x%02x", 0x80 + i % 0x40);
	}
	in[256] = '\0';
	got = text_escape_dup(in, TEXT_SHOWN);
	assert_non_null(got);
	assert_int_equal(strlen(got), 256 * 4);
	assert_string_equal(got, want);
	free(got);
}

static void test_quote_cuts_at_a_character(void **state)
{
	char buf[QUOTE_LEN], in[QUOTE_MAX + 8];

	(void)state;
	assert_string_equal(text_quote(buf, "a\nb\\"), "a\\x0ab\\x5c");
	/* 63 ASCII bytes, then a 2-byte character across the cut. */
	memset(in, 'x', QUOTE_MAX - 1);
	strcpy(in + QUOTE_MAX - 1, "\xc3\xa9yz");
	text_quote(buf, in);
	assert_int_equal(strlen(buf), QUOTE_MAX - 1 + 3);
	assert_string_equal(buf + QUOTE_MAX - 1, "...");
	/* Every byte a control: the room is exact. */
	memset(in, '\n', QUOTE_MAX + 4);
	in[QUOTE_MAX + 4] = '\0';
	text_quote(buf, in);
	assert_int_equal(strlen(buf), QUOTE_MAX * 4 + 3);
}

/* A field by its length: a NUL in it is a byte like any other, and what
 * follows the length is not read. */
static void test_quote_bytes(void **state)
{
	static const char field[] = "a\0b\xff"
				    "cd";
	char buf[QUOTE_LEN], in[QUOTE_MAX + 1];

	(void)state;
	assert_string_equal(text_quote_bytes(buf, field, 5), "a\\x00b\\xffc");
	assert_string_equal(text_quote_bytes(buf, field, 0), "");
	/* Exactly QUOTE_MAX bytes: whole; one more: cut and marked. */
	memset(in, 'x', sizeof(in));
	text_quote_bytes(buf, in, QUOTE_MAX);
	assert_int_equal(strlen(buf), QUOTE_MAX);
	text_quote_bytes(buf, in, QUOTE_MAX + 1);
	assert_int_equal(strlen(buf), QUOTE_MAX + 3);
	assert_string_equal(buf + QUOTE_MAX, "...");
}

/* Into a fixed buffer, what would not fit escaped is left out whole. */
static void test_escape_into_a_buffer(void **state)
{
	char buf[13];

	(void)state;
	/* room for 3 input bytes: "ab" then the 2-byte character is cut */
	assert_string_equal(
	    text_escape(buf, sizeof(buf), "ab\xc3\xa9", TEXT_SHOWN), "ab");
	assert_string_equal(
	    text_escape(buf, sizeof(buf), "\n\n\n\n", TEXT_SHOWN),
	    "\\x0a\\x0a\\x0a");
	assert_string_equal(text_escape(buf, 1, "abc", TEXT_SHOWN), "");
}

static void test_utf8_sequence_len(void **state)
{
	const unsigned char *s = (const unsigned char *)"\xe6\x9d\xad";

	(void)state;
	assert_int_equal(utf8_sequence_len(s, 3), 3);
	assert_int_equal(utf8_sequence_len(s, 2), 0); /* cut */
	assert_int_equal(utf8_sequence_len(s, 0), 0);
	assert_int_equal(utf8_sequence_len((const unsigned char *)"A", 1), 1);
	assert_int_equal(
	    utf8_sequence_len((const unsigned char *)"\xe0\x80\x80", 3), 0);
	assert_int_equal(
	    utf8_sequence_len((const unsigned char *)"\xe0\xa0\x80", 3), 3);
	assert_int_equal(utf8_sequence_len((const unsigned char *)"\x80", 1),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_modes),
	    cmocka_unit_test(test_escape_worst_case),
	    cmocka_unit_test(test_quote_cuts_at_a_character),
	    cmocka_unit_test(test_quote_bytes),
	    cmocka_unit_test(test_escape_into_a_buffer),
	    cmocka_unit_test(test_utf8_sequence_len),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
