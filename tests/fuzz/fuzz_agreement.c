/*
 * libFuzzer target for policy/agreement: agreement_parse on the input
 * bytes; a refusal must be one line with no control byte; an agreement
 * that parses is checked against a fixed catalog of
 * two datasets, its rules are written back as text (which must parse to
 * the same rule), bucket widths are applied to a few values, and its row
 * filters are compiled against the dataset's schema and evaluated.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "buf.h"
#include "decimal.h"
#include "filter.h"
#include "rowfmt.h"
#include "schema.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct column visits_cols[] = {
    {"patient_id", COL_STRING, 4}, {"age", COL_INT, 2},
    {"district", COL_STRING, 1},   {"visit_date", COL_DATE, 3},
    {"phone", COL_STRING, 4},	   {"name", COL_STRING, 4},
    {"cost", COL_DECIMAL, 2},	   {"seen_at", COL_DATETIME, 3},
};

static struct column penguin_cols[] = {
    {"species", COL_STRING, 1},
    {"Culmen Length (mm)", COL_DECIMAL, 1},
    {"a:b", COL_INT, 1},
};

static const struct schema visits = {ARRAY_SIZE(visits_cols), visits_cols};
static const struct schema penguins = {ARRAY_SIZE(penguin_cols), penguin_cols};

static const char *const visit_row[] = {
    "p1",	   "42", "Xihu",  "2025-03-15",
    "13800138000", "Li", "12.50", "2025-01-01T08:00:00+08:00"};
static const char *const penguin_row[] = {"Adelie", "39.1", "7"};
static const char *const null_row[] = {"", "", "", "", "", "", "", ""};

static const struct schema *lookup(void *ctx, const char *dataset)
{
	(void)ctx;
	if (strcmp(dataset, "health.visits") == 0)
		return &visits;
	if (strcmp(dataset, "penguins") == 0)
		return &penguins;
	return NULL;
}

static void check_rule(const struct rule *rule)
{
	static const char *const values[] = {
	    "0", "-1", "37", "-0.01", "123456789012345678901234567890.5"};
	char text[RULE_TEXT_MAX];
	struct perr err;
	struct rule again;

	if (rule_parse(rule_text(rule, text, sizeof(text)), &again, &err) != 0)
		abort();
	if (again.kind != rule->kind || again.n != rule->n)
		abort();
	rule_release(&again);
	if (rule->kind != RULE_BUCKET)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
		struct buf out = BUF_INIT;

		if (decimal_bucket(values[i], strlen(values[i]), rule->width,
				   &out) != 0)
			abort();
		buf_release(&out);
	}
}

static void eval_rows(const struct filter *f, const struct schema *schema)
{
	struct rowfmt_field fields[ARRAY_SIZE(visits_cols)];
	const char *const *vals = schema == &visits ? visit_row : penguin_row;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < schema->ncols; i++) {
			const char *v = pass ? null_row[i] : vals[i];

			fields[i].data = (const uint8_t *)v;
			fields[i].len = strlen(v);
			fields[i].needs_quote = false;
		}
		(void)filter_matches(f, fields);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agreement agr;
	struct perr err;

	if (agreement_parse((const char *)data, size, &agr, &err) != 0) {
		/* A refusal is one line, with nothing a terminal acts on. */
		for (const char *p = err.msg; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		return 0;
	}
	(void)agreement_check(&agr, lookup, NULL, &err);
	for (size_t i = 0; i < agr.ndatasets; i++) {
		const struct agreement_dataset *ds = &agr.datasets[i];
		const struct schema *schema = lookup(NULL, ds->dataset);
		struct filter *f;

		for (size_t j = 0; j < ds->ncolumns; j++)
			check_rule(&ds->columns[j].rule);
		for (size_t j = 0; j < ds->nviews; j++)
			for (size_t k = 0; k < ds->views[j].nkeys; k++)
				if (ds->views[j].keys[k].has_rule)
					check_rule(&ds->views[j].keys[k].rule);
		if (!schema || !ds->rows)
			continue;
		if (filter_compile(ds->rows, schema, agr.max_level, &f, &err) ==
		    0) {
			eval_rows(f, schema);
			filter_free(f);
		}
	}
	agreement_release(&agr);
	return 0;
}
