/*
 * libFuzzer target for policy/schema: schema_from_json on the input bytes.
 * A refusal must leave the schema empty and say where in one line ("$..."
 * or "line L, column C: ...") with no control byte in it.  An accepted schema
 * must keep its promises (at least one column, names non-empty, unique and
 * NUL-free, known types, levels 1..4), be found by name, and come back equal
 * from schema_to_json and schema_copy.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "perr.h"
#include "schema.h"
#include "types.h"

static bool same_schema(const struct schema *a, const struct schema *b)
{
	if (a->ncols != b->ncols)
		return false;
	for (size_t i = 0; i < a->ncols; i++)
		if (strcmp(a->cols[i].name, b->cols[i].name) ||
		    a->cols[i].type != b->cols[i].type ||
		    a->cols[i].level != b->cols[i].level)
			return false;
	return true;
}

/* One line, and nothing a terminal would act on. */
static bool printable(const char *msg)
{
	for (const char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static void check_refusal(const struct schema *s, const struct perr *err)
{
	if (s->ncols || s->cols || !printable(err->msg) ||
	    (strncmp(err->msg, "$", 1) && strncmp(err->msg, "line ", 5) &&
	     strcmp(err->msg, "out of memory")))
		abort();
}

static void check_accepted(const struct schema *s)
{
	struct schema again, copy;
	struct perr err;
	char *text;

	if (s->ncols == 0)
		abort();
	for (size_t i = 0; i < s->ncols; i++) {
		const struct column *c = &s->cols[i];

		if (!c->name[0] || c->level < LEVEL_MIN ||
		    c->level > LEVEL_MAX ||
		    strcmp(col_type_name(c->type), "unknown") == 0 ||
		    schema_find(s, c->name) != (long)i)
			abort();
	}
	text = schema_to_json(s);
	if (!text || schema_from_json(text, strlen(text), &again, &err) ||
	    !same_schema(s, &again))
		abort();
	if (schema_copy(&copy, s) || !same_schema(s, &copy))
		abort();
	free(text);
	schema_release(&again);
	schema_release(&copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct schema s;
	struct perr err;

	if (schema_from_json((const char *)data, size, &s, &err)) {
		check_refusal(&s, &err);
		return 0;
	}
	check_accepted(&s);
	schema_release(&s);
	return 0;
}
