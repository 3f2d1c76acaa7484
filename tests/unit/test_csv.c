/*
 * Unit tests of policy/csv: what is accepted and how it is split, every
 * refusal with its line and column, chunking at every byte position, the
 * size limits and bounded memory.
 */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

/* Records rendered as text, one line each, so whole runs compare easily. */
struct sink {
	char *out;
	size_t len, cap;
	uint64_t stop_at; /* record index whose callback fails; 0 = never */
	unsigned long calls;
};

static void sink_put(struct sink *s, const char *data, size_t n)
{
	if (s->len + n + 1 > s->cap) {
		s->cap = (s->len + n + 1) * 2;
		s->out = realloc(s->out, s->cap);
		assert_non_null(s->out);
	}
	memcpy(s->out + s->len, data, n);
	s->len += n;
	s->out[s->len] = '\0';
}

static void sink_printf(struct sink *s, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	sink_put(s, tmp, (size_t)n);
}

/* "line:index|field|field\n"; a field needing quotes is marked with a q,
 * and CR, LF, '|' and '\' are escaped. */
static int sink_record(void *ctx, const struct csv_record *rec,
		       struct perr *err)
{
	struct sink *s = ctx;
	size_t i, j;

	s->calls++;
	if (s->stop_at && rec->index == s->stop_at) {
		perr_set(err, "stopped at record %llu",
			 (unsigned long long)rec->index);
		return -ECANCELED;
	}
	sink_printf(s, "%llu:%llu", (unsigned long long)rec->line,
		    (unsigned long long)rec->index);
	for (i = 0; i < rec->nfields; i++) {
		const struct csv_field *f = &rec->fields[i];

		sink_put(s, f->needs_quote ? "|q" : "|",
			 f->needs_quote ? 2 : 1);
		for (j = 0; j < f->len; j++) {
			char c = f->data[j];

			if (c == '\n')
				sink_put(s, "\\n", 2);
			else if (c == '\r')
				sink_put(s, "\\r", 2);
			else if (c == '|' || c == '\\')
				sink_printf(s, "\\%c", c);
			else
				sink_put(s, &c, 1);
		}
	}
	sink_put(s, "\n", 1);
	return 0;
}

struct run {
	int rc;
	char *out; /* rendered records, "" if none */
	struct perr err;
	unsigned long calls;
};

/* How a run cuts its input: whole, fixed-size chunks, random sizes, or
 * at one position. */
enum cut { CUT_WHOLE, CUT_FIXED, CUT_RANDOM, CUT_AT };

/* Size of the next chunk at offset off (SIZE_MAX: all the rest). */
static size_t chunk_size(enum cut cut, size_t arg, size_t off, uint64_t *seed)
{
	switch (cut) {
	case CUT_FIXED:
		return arg;
	case CUT_RANDOM:
		*seed = *seed * 6364136223846793005u + 1442695040888963407u;
		return 1 + (*seed >> 33) % 97;
	case CUT_AT:
		return off < arg ? arg - off : SIZE_MAX;
	case CUT_WHOLE:
		break;
	}
	return SIZE_MAX;
}

/*
 * Feed in[0..len) cut as asked (each chunk in its own exact-size heap
 * copy, freed right after, so that reading past a chunk or keeping a
 * pointer into it shows up under ASan), then finish.  The callback fails
 * at record stop_at unless it is 0.
 */
static struct run parse_cut(const char *in, size_t len, enum cut cut,
			    size_t arg, uint64_t stop_at)
{
	struct sink s = {.stop_at = stop_at};
	struct run res = {0};
	struct csv_reader *r = csv_reader_new(sink_record, &s, &res.err);
	uint64_t seed = arg * 2654435761u + 1;
	size_t off = 0, n;
	char *chunk;

	assert_non_null(r);
	while (off < len && res.rc == 0) {
		n = chunk_size(cut, arg, off, &seed);
		if (n > len - off)
			n = len - off;
		chunk = malloc(n);
		assert_non_null(chunk);
		memcpy(chunk, in + off, n);
		res.rc = csv_reader_feed(r, chunk, n);
		free(chunk);
		off += n;
	}
	if (res.rc == 0)
		res.rc = csv_reader_finish(r);
	csv_reader_free(r);
	res.out = s.out ? s.out : strdup("");
	res.calls = s.calls;
	return res;
}

static struct run parse_whole(const char *in, size_t len)
{
	return parse_cut(in, len, CUT_WHOLE, 0, 0);
}

static struct run parse_str(const char *in)
{
	return parse_whole(in, strlen(in));
}

static void expect_records(const char *in, const char *records)
{
	struct run res = parse_str(in);

	if (res.rc)
		print_error("unexpected error: %s\n", res.err.msg);
	assert_int_equal(res.rc, 0);
	assert_string_equal(res.out, records);
	free(res.out);
}

static void expect_error_len(const char *in, size_t len, const char *msg)
{
	struct run res = parse_whole(in, len);

	assert_int_equal(res.rc, -EINVAL);
	assert_string_equal(res.err.msg, msg);
	free(res.out);
}

static void expect_error(const char *in, const char *msg)
{
	expect_error_len(in, strlen(in), msg);
}

/* Input whose records and error must not depend on how it is cut. */
static const char rich_sample[] =
    "\xef\xbb\xbfid,name,note,amount\r\n"
    "1,Ana,\"said \"\"hi\"\", then left\",12.5\r\n"
    "2,Bo\xc3\xa9,\"multi\nline\r\nnote\",\r\n"
    "3,\xe6\x9d\x8e\xe5\x9b\x9b,,-7\n"
    "4,\"\",\"\xf0\x9f\x98\x80\",0\n"
    "5,x,\"a,b\",\"\"\"\"\n"
    "\"6\",\xef\xbb\xbf,plain,\"\"\"\"\"\"\r\n"
    "7,last,no newline,1";

static const char rich_records[] = "1:0|id|name|note|amount\n"
				   "2:1|1|Ana|qsaid \"hi\", then left|12.5\n"
				   "3:2|2|Bo\xc3\xa9|qmulti\\nline\\r\\nnote|\n"
				   "6:3|3|\xe6\x9d\x8e\xe5\x9b\x9b||-7\n"
				   "7:4|4||\xf0\x9f\x98\x80|0\n"
				   "8:5|5|x|qa,b|q\"\n"
				   "9:6|6|\xef\xbb\xbf|plain|q\"\"\n"
				   "10:7|7|last|no newline|1\n";

static void test_basic(void **state)
{
	(void)state;
	expect_records("a,b,c\n1,2,3\n4,5,6\n",
		       "1:0|a|b|c\n2:1|1|2|3\n3:2|4|5|6\n");
	/* a single column, and a header made of one name */
	expect_records("x\n1\n", "1:0|x\n2:1|1\n");
}

static void test_rich_sample(void **state)
{
	(void)state;
	expect_records(rich_sample, rich_records);
}

static void test_quoted_fields(void **state)
{
	(void)state;
	/* commas, doubled quotes, CR and LF kept as they are */
	expect_records("a,b\n\"x,y\",\"say \"\"no\"\"\"\n",
		       "1:0|a|b\n2:1|qx,y|qsay \"no\"\n");
	expect_records("a\n\"1\r\n2\n3\r4\"\n",
		       "1:0|a\n2:1|q1\\r\\n2\\n3\\r4\n");
	/* a quoted field that needs no quoting is not marked */
	expect_records("a,b\n\"plain\",\"\"\n", "1:0|a|b\n2:1|plain|\n");
	/* quoted empty field is NULL like an unquoted one */
	expect_records("a,b,c\n\"\",,\"\"\n", "1:0|a|b|c\n2:1|||\n");
	/* a lone "" line is a record with one empty field */
	expect_records("a\n\"\"\n", "1:0|a\n2:1|\n");
	/* a quoted header name */
	expect_records("\"a,b\",c\n1,2\n", "1:0|qa,b|c\n2:1|1|2\n");
}

static void test_embedded_newlines_line_numbers(void **state)
{
	(void)state;
	/* records start on the line after the last LF of the previous one */
	expect_records("a,b\n\"1\n2\n3\",x\ny,\"\n\"\nlast,z\n",
		       "1:0|a|b\n2:1|q1\\n2\\n3|x\n5:2|y|q\\n\n7:3|last|z\n");
	expect_error(
	    "a,b\n\"1\n2\n3\",x\ny\n",
	    "line 5, column 2 ('b'): record has 1 field, header has 2");
}

static void test_crlf(void **state)
{
	(void)state;
	expect_records("a,b\r\n1,2\r\n\"3\",\"4\"\r\n",
		       "1:0|a|b\n2:1|1|2\n3:2|3|4\n");
	/* mixed line ends */
	expect_records("a\r\n1\n2\r\n", "1:0|a\n2:1|1\n3:2|2\n");
	/* CRLF inside quotes is kept */
	expect_records("a\r\n\"x\r\ny\"\r\n", "1:0|a\n2:1|qx\\r\\ny\n");
	/* blank CRLF line with one column: one NULL field */
	expect_records("a\r\n\r\nb\r\n", "1:0|a\n2:1|\n3:2|b\n");
}

static void test_bare_cr(void **state)
{
	(void)state;
	expect_error("a\rb\n", "line 1, column 1: CR not followed by LF");
	expect_error("a,b\n1,2\r3\n",
		     "line 2, column 2 ('b'): CR not followed by LF");
	expect_error("a,b\n1,\"2\"\rx\n",
		     "line 2, column 2 ('b'): CR not followed by LF");
	/* a CR at the very end is bare too */
	expect_error("a,b\n1,2\r",
		     "line 2, column 2 ('b'): CR not followed by LF");
	expect_error("a\r\r\n", "line 1, column 1: CR not followed by LF");
}

static void test_bom(void **state)
{
	(void)state;
	expect_records("\xef\xbb\xbf"
		       "a\n1\n",
		       "1:0|a\n2:1|1\n");
	/* a BOM after the start is data (U+FEFF) */
	expect_records("a\n\xef\xbb\xbf\n", "1:0|a\n2:1|\xef\xbb\xbf\n");
	expect_records("\xef\xbb\xbf\xef\xbb\xbf"
		       "a\n",
		       "1:0|\xef\xbb\xbf"
		       "a\n");
	/* bytes that begin like a BOM and are another character */
	expect_records("\xef\xbb\x80\n", "1:0|\xef\xbb\x80\n");
	expect_records("\xef\xbc\x81\n", "1:0|\xef\xbc\x81\n");
	/* a BOM then a quoted header */
	expect_records("\xef\xbb\xbf\"a\"\n", "1:0|a\n");
	/* half a BOM is a truncated sequence */
	expect_error("\xef\xbb", "line 1, column 1: invalid UTF-8");
	expect_error("\xef\xbbx\n", "line 1, column 1: invalid UTF-8");
	expect_error("\xef", "line 1, column 1: invalid UTF-8");
}

static void test_empty_file(void **state)
{
	(void)state;
	expect_error("", "empty file");
	expect_error("\xef\xbb\xbf", "empty file");
}

static void test_header_only(void **state)
{
	(void)state;
	expect_records("a,b\n", "1:0|a|b\n");
	expect_records("a,b", "1:0|a|b\n");
	expect_records("a,b\r\n", "1:0|a|b\n");
	expect_records("\xef\xbb\xbf"
		       "a,b\n",
		       "1:0|a|b\n");
}

static void test_last_line_without_lf(void **state)
{
	(void)state;
	expect_records("a,b\n1,2", "1:0|a|b\n2:1|1|2\n");
	expect_records("a,b\n1,", "1:0|a|b\n2:1|1|\n");
	expect_records("a,b\n1,\"x\"", "1:0|a|b\n2:1|1|x\n");
	expect_records("a,b\n1,\"\"", "1:0|a|b\n2:1|1|\n");
	expect_records("a,b\n1,\"\"\"\"", "1:0|a|b\n2:1|1|q\"\n");
	expect_records("a\n\xc3\xa9", "1:0|a\n2:1|\xc3\xa9\n");
	expect_error("a,b\n1", "line 2, column 2 ('b'): record has 1 field, "
			       "header has 2");
}

static void test_blank_lines(void **state)
{
	(void)state;
	/* a blank line is a record with one empty field */
	expect_records("a\n\n1\n\n", "1:0|a\n2:1|\n3:2|1\n4:3|\n");
	expect_error(
	    "a,b\n1,2\n\n3,4\n",
	    "line 3, column 2 ('b'): record has 1 field, header has 2");
	expect_error(
	    "a,b\n1,2\n\n",
	    "line 3, column 2 ('b'): record has 1 field, header has 2");
	/* a blank first line is a header with an empty name */
	expect_error("\na\n", "line 1, column 1: empty column name");
}

static void test_field_count(void **state)
{
	(void)state;
	expect_error(
	    "a,b,c\n1,2,3\n1,2\n",
	    "line 3, column 3 ('c'): record has 2 fields, header has 3");
	expect_error("a,b,c\n1,2,3,4\n",
		     "line 2, column 4: record has 4 fields, header has 3");
	expect_error("a,b,c\n1,2,3,\n",
		     "line 2, column 4: record has 4 fields, header has 3");
	expect_error("a\n1,2\n", "line 2, column 2: record has 2 fields, "
				 "header has 1");
	/* the line is where the record starts */
	expect_error(
	    "a,b,c\n1,\"x\ny\nz\"\n",
	    "line 2, column 3 ('c'): record has 2 fields, header has 3");
}

static void test_header_names(void **state)
{
	(void)state;
	expect_error("a,,c\n", "line 1, column 2: empty column name");
	expect_error("a,b,\n", "line 1, column 3: empty column name");
	expect_error("\"\",b\n", "line 1, column 1: empty column name");
	expect_error("a,b,a\n1,2,3\n",
		     "line 1, column 3 ('a'): duplicate column name (also "
		     "column 1)");
	expect_error("x,\"y\",y\n",
		     "line 1, column 3 ('y'): duplicate column name (also "
		     "column 2)");
	/* names differing only in case or length are distinct */
	expect_records("a,A,aa,a \n", "1:0|a|A|aa|a \n");
	/* any non-empty UTF-8 is a name */
	expect_records("\"Culmen Length (mm)\",\xe5\xb9\xb4\xe9\xbe\x84\n",
		       "1:0|Culmen Length (mm)|\xe5\xb9\xb4\xe9\xbe\x84\n");
}

static void test_error_label(void **state)
{
	char in[256], msg[256];

	(void)state;
	/* control bytes of a name do not break the one-line message */
	expect_error("a,\"b\nc\"\n1\n",
		     "line 3, column 2 ('b\\x0ac'): record has 1 field, header "
		     "has 2");
	/* a long name is cut to 64 bytes, and says so */
	snprintf(in, sizeof(in), "a,%s%s\n1\n",
		 "0123456789012345678901234567890123456789012345678901234567"
		 "89abcd",
		 "TAIL");
	snprintf(msg, sizeof(msg),
		 "line 2, column 2 ('%s...'): record has 1 field, header has 2",
		 "0123456789012345678901234567890123456789012345678901234567"
		 "89abcd");
	expect_error(in, msg);
	/* ... at a character boundary */
	snprintf(in, sizeof(in), "a,%s\xc3\xa9xyz\n1\n",
		 "0123456789012345678901234567890123456789012345678901234567"
		 "89abc");
	snprintf(msg, sizeof(msg),
		 "line 2, column 2 ('%s...'): record has 1 field, header has 2",
		 "0123456789012345678901234567890123456789012345678901234567"
		 "89abc");
	expect_error(in, msg);
}

static void test_quote_errors(void **state)
{
	(void)state;
	expect_error("a,b\n1,x\"y\n",
		     "line 2, column 2 ('b'): quote inside an unquoted field");
	expect_error("a,b\n1, \"y\"\n",
		     "line 2, column 2 ('b'): quote inside an unquoted field");
	expect_error("a,b\n\"1\"x,2\n",
		     "line 2, column 1 ('a'): text after a closing quote");
	expect_error("a,b\n1,\"2\" \n",
		     "line 2, column 2 ('b'): text after a closing quote");
	expect_error("a,b\n1,\"x\ny\"z\n",
		     "line 3, column 2 ('b'): text after a closing quote");
}

static void test_unterminated_quote(void **state)
{
	(void)state;
	/* reported at the line where the quote opened */
	expect_error("a,b\n1,\"x\ny\nz\n",
		     "line 2, column 2 ('b'): unterminated quote");
	expect_error("a,b\n1,2\n3,\"",
		     "line 3, column 2 ('b'): unterminated quote");
	expect_error("\"a", "line 1, column 1: unterminated quote");
	expect_error("a\n\"x\"\"",
		     "line 2, column 1 ('a'): unterminated quote");
}

static void test_nul_byte(void **state)
{
	(void)state;
	expect_error_len("a,b\n1,x\0y\n", 10,
			 "line 2, column 2 ('b'): NUL byte");
	expect_error_len("a,b\n1,\"x\n\0\"\n", 12,
			 "line 3, column 2 ('b'): NUL byte");
	expect_error_len("\0", 1, "line 1, column 1: NUL byte");
}

static void test_utf8_valid(void **state)
{
	(void)state;
	/* 2, 3 and 4 byte sequences at their range limits */
	expect_records("a\n\xc2\x80\n\xdf\xbf\n\xe0\xa0\x80\n\xed\x9f\xbf\n"
		       "\xee\x80\x80\n\xef\xbf\xbf\n\xf0\x90\x80\x80\n"
		       "\xf4\x8f\xbf\xbf\n\"\xe2\x82\xac,\"\n",
		       "1:0|a\n2:1|\xc2\x80\n3:2|\xdf\xbf\n4:3|\xe0\xa0\x80\n"
		       "5:4|\xed\x9f\xbf\n6:5|\xee\x80\x80\n7:6|\xef\xbf\xbf\n"
		       "8:7|\xf0\x90\x80\x80\n9:8|\xf4\x8f\xbf\xbf\n"
		       "10:9|q\xe2\x82\xac,\n");
}

static void test_utf8_invalid(void **state)
{
	static const char *const bad[] = {
	    "\x80",		/* lone continuation */
	    "\xbf",		/* lone continuation */
	    "\xc0\x80",		/* overlong NUL */
	    "\xc1\xbf",		/* overlong */
	    "\xe0\x80\x80",	/* overlong */
	    "\xe0\x9f\xbf",	/* overlong */
	    "\xf0\x80\x80\x80", /* overlong */
	    "\xf0\x8f\xbf\xbf", /* overlong */
	    "\xed\xa0\x80",	/* surrogate D800 */
	    "\xed\xbf\xbf",	/* surrogate DFFF */
	    "\xf4\x90\x80\x80", /* U+110000 */
	    "\xf5\x80\x80\x80", /* beyond */
	    "\xf8\x88\x80\x80\x80",
	    "\xff",
	    "\xfe",
	    "\xc3",	    /* truncated at end of line */
	    "\xe2\x82",	    /* truncated */
	    "\xf0\x9f\x98", /* truncated */
	    "\xc3\xc3\xa9", /* lead byte where continuation expected */
	    "x\xa9y",
	};
	char in[64], quoted[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(in, sizeof(in), "a,b\n1,%s\n", bad[i]);
		expect_error(in, "line 2, column 2 ('b'): invalid UTF-8");
		snprintf(quoted, sizeof(quoted), "a,b\n1,\"x\n%s\"\n", bad[i]);
		expect_error(quoted, "line 3, column 2 ('b'): invalid UTF-8");
		/* a sequence cut by a separator or by the end of input */
		snprintf(in, sizeof(in), "a,b\n%s,2\n", bad[i]);
		expect_error(in, "line 2, column 1 ('a'): invalid UTF-8");
		snprintf(in, sizeof(in), "a,b\n1,%s", bad[i]);
		expect_error(in, "line 2, column 2 ('b'): invalid UTF-8");
	}
	/* in the header, where no name is known yet */
	expect_error("a,\xc3(\n", "line 1, column 2: invalid UTF-8");
}

/* The sample and its error must be the same however the input is cut. */
static void check_all_cuts(const char *in, size_t len)
{
	struct run whole = parse_whole(in, len);
	struct run res;
	size_t i;

	for (i = 0; i <= len; i++) {
		res = parse_cut(in, len, CUT_AT, i, 0);
		assert_int_equal(res.rc, whole.rc);
		assert_string_equal(res.out, whole.out);
		if (whole.rc)
			assert_string_equal(res.err.msg, whole.err.msg);
		free(res.out);
	}
	for (i = 1; i <= 8; i++) {
		res = parse_cut(in, len, CUT_FIXED, i, 0);
		assert_int_equal(res.rc, whole.rc);
		assert_string_equal(res.out, whole.out);
		if (whole.rc)
			assert_string_equal(res.err.msg, whole.err.msg);
		free(res.out);
	}
	for (i = 0; i < 50; i++) {
		res = parse_cut(in, len, CUT_RANDOM, i, 0);
		assert_int_equal(res.rc, whole.rc);
		assert_string_equal(res.out, whole.out);
		if (whole.rc)
			assert_string_equal(res.err.msg, whole.err.msg);
		free(res.out);
	}
	free(whole.out);
}

static void test_chunking_records(void **state)
{
	struct run res;

	(void)state;
	check_all_cuts(rich_sample, sizeof(rich_sample) - 1);
	/* and one byte at a time gives exactly the expected records */
	res = parse_cut(rich_sample, sizeof(rich_sample) - 1, CUT_FIXED, 1, 0);
	assert_int_equal(res.rc, 0);
	assert_string_equal(res.out, rich_records);
	free(res.out);
}

static void test_chunking_errors(void **state)
{
	static const char *const inputs[] = {
	    "a,b\n1,\xe2\x82\n",  "a,b\n1,\"\xf0\x9f\x98\",\n",
	    "a,b\r\n1,2\r3\n",	  "a,b\n\"x\ny\"z,1\n",
	    "a,b\n1,\"x\ny\nz",	  "a,b,c\n1,\"x\ny\"\n",
	    "a,b\n1,2,\"3\n\"\n", "a,b,a\n",
	    "a,\"\"\n",		  "\xef\xbb\xbf\xed\xa0\x80\n",
	    "a\nx\"y\n",	  "a,b\n1,2\r",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		check_all_cuts(inputs[i], strlen(inputs[i]));
}

static void test_crlf_split(void **state)
{
	static const char in[] = "a,b\r\n1,\"2\"\r\n3,4\r\n";
	struct run res;
	size_t i;

	(void)state;
	for (i = 0; i <= sizeof(in) - 1; i++) {
		res = parse_cut(in, sizeof(in) - 1, CUT_AT, i, 0);
		assert_int_equal(res.rc, 0);
		assert_string_equal(res.out, "1:0|a|b\n2:1|1|2\n3:2|3|4\n");
		free(res.out);
	}
}

/* "h\n" then one field of n bytes of c, quoted or not, then "\n". */
static char *big_field(size_t n, char c, bool quoted, size_t *len)
{
	char *in = malloc(n + 8);
	size_t i = 0;

	assert_non_null(in);
	memcpy(in, "h\n", 2);
	i = 2;
	if (quoted)
		in[i++] = '"';
	memset(in + i, c, n);
	i += n;
	if (quoted)
		in[i++] = '"';
	in[i++] = '\n';
	*len = i;
	return in;
}

static void expect_field_size(const char *in, size_t len, size_t field_len)
{
	static const enum cut cuts[] = {CUT_WHOLE, CUT_FIXED, CUT_FIXED};
	static const size_t args[] = {0, 4096, 65537};
	struct run res;
	char expected[64];
	size_t i;

	for (i = 0; i < 3; i++) {
		res = parse_cut(in, len, cuts[i], args[i], 0);
		if (field_len <= CSV_FIELD_MAX) {
			assert_int_equal(res.rc, 0);
			assert_int_equal(res.calls, 2);
		} else {
			snprintf(expected, sizeof(expected),
				 "line 2, column 1 ('h'): field longer than "
				 "%u bytes",
				 CSV_FIELD_MAX);
			assert_int_equal(res.rc, -EINVAL);
			assert_string_equal(res.err.msg, expected);
		}
		free(res.out);
	}
}

static void test_field_max(void **state)
{
	size_t len;
	char *in;

	(void)state;
	in = big_field(CSV_FIELD_MAX, 'x', false, &len);
	expect_field_size(in, len, CSV_FIELD_MAX);
	free(in);
	in = big_field(CSV_FIELD_MAX + 1, 'x', false, &len);
	expect_field_size(in, len, CSV_FIELD_MAX + 1);
	free(in);
	in = big_field(CSV_FIELD_MAX, 'x', true, &len);
	expect_field_size(in, len, CSV_FIELD_MAX);
	free(in);
	in = big_field(CSV_FIELD_MAX + 1, 'x', true, &len);
	expect_field_size(in, len, CSV_FIELD_MAX + 1);
	free(in);
	/* the limit is on the value: doubled quotes count once */
	in = big_field(CSV_FIELD_MAX * 2, '"', true, &len);
	expect_field_size(in, len, CSV_FIELD_MAX);
	free(in);
	in = big_field(CSV_FIELD_MAX * 2 + 2, '"', true, &len);
	expect_field_size(in, len, CSV_FIELD_MAX + 1);
	free(in);
}

/* The error for the field of big_field(CSV_FIELD_MAX + 10, 'x', true)
 * with an LF put at content index lf, fed whole and in chunks. */
static void expect_field_max_line(char *in, size_t len, size_t lf,
				  const char *msg)
{
	static const size_t chunks[] = {0, 1000, 4096};
	struct run res;
	size_t i;

	in[3 + lf] = '\n';
	for (i = 0; i < 3; i++) {
		res =
		    parse_cut(in, len, i ? CUT_FIXED : CUT_WHOLE, chunks[i], 0);
		assert_int_equal(res.rc, -EINVAL);
		assert_string_equal(res.err.msg, msg);
		free(res.out);
	}
	in[3 + lf] = 'x';
}

static void test_field_max_line(void **state)
{
	static const char line2[] =
	    "line 2, column 1 ('h'): field longer than 1048576 bytes";
	static const char line3[] =
	    "line 3, column 1 ('h'): field longer than 1048576 bytes";
	size_t len;
	char *in = big_field(CSV_FIELD_MAX + 10, 'x', true, &len);

	(void)state;
	/* the line is the one holding the first byte past the limit */
	expect_field_max_line(in, len, 7, line3);
	expect_field_max_line(in, len, CSV_FIELD_MAX - 1, line3);
	expect_field_max_line(in, len, CSV_FIELD_MAX, line2);
	expect_field_max_line(in, len, CSV_FIELD_MAX + 5, line2);
	free(in);
}

/* Bytes of heap in use, mmapped blocks included (glibc's count). */
static size_t heap_in_use(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/*
 * Feed "h\n" then prefix, then chunks of fill until the reader refuses at
 * line; returns how many bytes it took.
 */
static size_t bytes_until_refused(const char *prefix, char fill, uint64_t line)
{
	char msg[128];
	static char chunk[65536];
	struct sink s = {0};
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(sink_record, &s, &err);
	size_t fed = 2 + strlen(prefix);
	int rc;

	assert_non_null(r);
	memset(chunk, fill, sizeof(chunk));
	assert_int_equal(csv_reader_feed(r, "h\n", 2), 0);
	rc = csv_reader_feed(r, prefix, strlen(prefix));
	while (rc == 0 && fed < (64u << 20)) {
		rc = csv_reader_feed(r, chunk, sizeof(chunk));
		fed += sizeof(chunk);
	}
	assert_int_equal(rc, -EINVAL);
	snprintf(msg, sizeof(msg),
		 "line %llu, column 1 ('h'): field longer than 1048576 bytes",
		 (unsigned long long)line);
	assert_string_equal(err.msg, msg);
	csv_reader_free(r);
	free(s.out);
	return fed;
}

/* Heap growth while the reader takes one chunk: "h\n" then in. */
static size_t heap_taken_by(const char *in, size_t len)
{
	struct sink s = {0};
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(sink_record, &s, &err);
	size_t before, after;

	assert_non_null(r);
	assert_int_equal(csv_reader_feed(r, "h\n", 2), 0);
	before = heap_in_use();
	if (csv_reader_feed(r, in, len) == 0)
		assert_int_equal(csv_reader_finish(r), -EINVAL);
	after = heap_in_use();
	assert_string_equal(err.msg, "line 2, column 1 ('h'): field longer "
				     "than 1048576 bytes");
	csv_reader_free(r);
	free(s.out);
	return after > before ? after - before : 0;
}

/*
 * A field growing past the limit is refused once it passes it, not when
 * it ends, and the reader never holds much more than the limit: a stream
 * that never ends the field stops within a chunk of the limit, and one big
 * chunk does not get copied whole.  (Heap figures are glibc's; under a
 * sanitizer they may not move and that half of the check is void.)
 */
static void test_field_max_early(void **state)
{
	static const size_t big = 8u << 20;
	const size_t limit = CSV_FIELD_MAX + 2 * 65536;
	char *in = malloc(big + 2);

	(void)state;
	assert_non_null(in);
	assert_true(bytes_until_refused("", 'x', 2) <= limit);
	assert_true(bytes_until_refused("\"", 'x', 2) <= limit);
	/* the LF that passes the limit ends line 2 + CSV_FIELD_MAX */
	assert_true(bytes_until_refused("\"", '\n', 2 + CSV_FIELD_MAX) <=
		    limit);
	/* odd chunks of quotes: a chunk ends after a lone quote */
	assert_true(bytes_until_refused("\"\"\"", '"', 2) <= 2 * limit);

	memset(in, 'x', big);
	assert_true(heap_taken_by(in, big) <= (3u << 20));
	in[0] = '"';
	assert_true(heap_taken_by(in, big) <= (3u << 20));
	in[big] = '"';
	assert_true(heap_taken_by(in, big + 1) <= (3u << 20));
	memset(in + 1, '"', big);
	assert_true(heap_taken_by(in, big + 1) <= (3u << 20));
	free(in);
}

/* A record of n fields "c1,c2,...". */
static char *many_columns(size_t n, size_t *len)
{
	char *in = malloc(n * 8 + 2);
	size_t i, off = 0;

	assert_non_null(in);
	for (i = 0; i < n; i++)
		off += (size_t)sprintf(in + off, i ? ",c%zu" : "c%zu", i + 1);
	in[off++] = '\n';
	*len = off;
	return in;
}

static void test_columns_max(void **state)
{
	struct run res;
	size_t len;
	char *in;

	(void)state;
	in = many_columns(CSV_COLUMNS_MAX, &len);
	res = parse_whole(in, len);
	assert_int_equal(res.rc, 0);
	assert_int_equal(res.calls, 1);
	free(res.out);
	free(in);

	in = many_columns(CSV_COLUMNS_MAX + 1, &len);
	expect_error_len(in, len,
			 "line 1, column 4097: more than 4096 columns");
	free(in);

	/* a data record with too many fields for the limit */
	in = malloc(CSV_COLUMNS_MAX + 16);
	assert_non_null(in);
	memcpy(in, "a,b\n", 4);
	memset(in + 4, ',', CSV_COLUMNS_MAX);
	in[CSV_COLUMNS_MAX + 4] = '\n';
	expect_error_len(in, CSV_COLUMNS_MAX + 5,
			 "line 2, column 3: record has more than 4096 fields, "
			 "header has 2");
	free(in);
}

static void test_callback_stops(void **state)
{
	struct sink s = {.stop_at = 2};
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(sink_record, &s, &err);
	static const char in[] = "a\n1\n2\n3\n";

	(void)state;
	assert_non_null(r);
	assert_int_equal(csv_reader_feed(r, in, sizeof(in) - 1), -ECANCELED);
	assert_string_equal(err.msg, "stopped at record 2");
	assert_int_equal(s.calls, 3);
	/* the reader is finished: no more callbacks, same answer */
	assert_int_equal(csv_reader_feed(r, in, sizeof(in) - 1), -ECANCELED);
	assert_int_equal(csv_reader_finish(r), -ECANCELED);
	assert_int_equal(s.calls, 3);
	csv_reader_free(r);
	free(s.out);
}

static void test_callback_stops_at_finish(void **state)
{
	struct run res;

	(void)state;
	res = parse_cut("a\n1\n2", 5, CUT_WHOLE, 0, 2);
	assert_int_equal(res.rc, -ECANCELED);
	assert_string_equal(res.err.msg, "stopped at record 2");
	assert_string_equal(res.out, "1:0|a\n2:1|1\n");
	free(res.out);
}

static void test_finished_after_error(void **state)
{
	struct sink s = {0};
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(sink_record, &s, &err);

	(void)state;
	assert_non_null(r);
	assert_int_equal(csv_reader_feed(r, "a,b\n1\n", 6), -EINVAL);
	assert_string_equal(
	    err.msg, "line 2, column 2 ('b'): record has 1 field, header "
		     "has 2");
	assert_int_equal(csv_reader_feed(r, "1,2\n", 4), -EINVAL);
	assert_int_equal(csv_reader_finish(r), -EINVAL);
	assert_int_equal(s.calls, 1);
	csv_reader_free(r);
	free(s.out);
}

static int count_record(void *ctx, const struct csv_record *rec,
			struct perr *err)
{
	uint64_t *n = ctx;

	(void)err;
	if (rec->nfields != 4 || rec->fields[3].len == 0)
		return -EPROTO;
	(*n)++;
	return 0;
}

static void test_line_progress(void **state)
{
	uint64_t n = 0;
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(count_record, &n, &err);
	static const char in[] = "a,b,c,d\n1,2,3,4\n\"5\n\",6,7,8\n9,";

	(void)state;
	assert_non_null(r);
	assert_int_equal(csv_reader_line(r), 1);
	assert_int_equal(csv_reader_feed(r, in, sizeof(in) - 1), 0);
	assert_int_equal(csv_reader_line(r), 5);
	assert_int_equal(n, 3);
	csv_reader_free(r);
}

/*
 * 200 MB of short rows in chunks cut mid-record (so that records are
 * copied) must not make the reader's memory grow: the heap in use never
 * exceeds what it was after the header by more than 64 KiB.
 */
static void test_bounded_memory(void **state)
{
	static const size_t total = 200u << 20;
	uint64_t n = 0;
	struct perr err = {{0}};
	struct csv_reader *r = csv_reader_new(count_record, &n, &err);
	char *rows = malloc(70000);
	size_t fed = 0, rows_len = 0, before, peak = 0, used, cut;
	unsigned i = 0;

	(void)state;
	assert_non_null(r);
	assert_non_null(rows);
	for (i = 0; rows_len < 65536; i++)
		rows_len += (size_t)sprintf(
		    rows + rows_len, "P%06u,\"Name, %u\",%u,%s\n", i, i % 97,
		    i % 90, i % 3 ? "note" : "\"\"\"x\"\"\"");
	assert_int_equal(csv_reader_feed(r, "id,name,age,visit\n", 18), 0);
	before = heap_in_use();
	for (i = 0; fed < total; i++) {
		/* the same rows again, cut at a different place each time */
		cut = (i * 7919u) % rows_len;
		assert_int_equal(csv_reader_feed(r, rows, cut), 0);
		assert_int_equal(csv_reader_feed(r, rows + cut, rows_len - cut),
				 0);
		fed += rows_len;
		used = heap_in_use();
		if (used > peak)
			peak = used;
	}
	assert_int_equal(csv_reader_finish(r), 0);
	assert_int_equal(err.msg[0], '\0');
	assert_true(n > total / 40);
	/* glibc's counter; under a sanitizer it may not move at all */
	assert_true(peak <= before + (64u << 10));
	csv_reader_free(r);
	free(rows);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_rich_sample),
	    cmocka_unit_test(test_quoted_fields),
	    cmocka_unit_test(test_embedded_newlines_line_numbers),
	    cmocka_unit_test(test_crlf),
	    cmocka_unit_test(test_bare_cr),
	    cmocka_unit_test(test_bom),
	    cmocka_unit_test(test_empty_file),
	    cmocka_unit_test(test_header_only),
	    cmocka_unit_test(test_last_line_without_lf),
	    cmocka_unit_test(test_blank_lines),
	    cmocka_unit_test(test_field_count),
	    cmocka_unit_test(test_header_names),
	    cmocka_unit_test(test_error_label),
	    cmocka_unit_test(test_quote_errors),
	    cmocka_unit_test(test_unterminated_quote),
	    cmocka_unit_test(test_nul_byte),
	    cmocka_unit_test(test_utf8_valid),
	    cmocka_unit_test(test_utf8_invalid),
	    cmocka_unit_test(test_chunking_records),
	    cmocka_unit_test(test_chunking_errors),
	    cmocka_unit_test(test_crlf_split),
	    cmocka_unit_test(test_field_max),
	    cmocka_unit_test(test_field_max_line),
	    cmocka_unit_test(test_field_max_early),
	    cmocka_unit_test(test_columns_max),
	    cmocka_unit_test(test_callback_stops),
	    cmocka_unit_test(test_callback_stops_at_finish),
	    cmocka_unit_test(test_finished_after_error),
	    cmocka_unit_test(test_line_progress),
	    cmocka_unit_test(test_bounded_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
