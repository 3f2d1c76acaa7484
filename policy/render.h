/*
 * render: turns stored records into the bytes of an agreement's data.csv.
 * A render_plan is built once per (dataset version, agreement revision)
 * from the dataset's schema and the agreement's column rules; rendering a
 * block is then a pure function of the plan and the block's records, so the
 * same block always gives the same bytes.
 *
 * Output: header row, ',' separator, '\n' line ends, RFC 4180 quoting only
 * where a field contains ',', '"', CR or LF, columns in the dataset's own
 * order, and a record whose only field is NULL written as "".
 */
#ifndef GOVFS_RENDER_H
#define GOVFS_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agreement.h"
#include "buf.h"
#include "perr.h"
#include "filter.h"
#include "pseudonym.h"
#include "schema.h"

struct render_col {
	size_t src; /* index of the source column */
	struct rule rule;
	enum col_type type; /* type of the output column */
};

struct render_plan {
	size_t nsrc; /* columns in the dataset */
	size_t nout; /* columns in data.csv */
	struct render_col *cols;
	struct buf header;	 /* the header row, '\n' included */
	bool has_pseudonyms;	 /* pz is prepared */
	struct pseudonymizer pz; /* keyed with the agreement's key */
	size_t row_extra; /* output bytes a row may need beyond its input */
	struct filter *filter; /* the rows filter, NULL if none */
};

/*
 * Build the plan for dataset schema under agreement entry ds.
 * pseudonym_key (PSEUDONYM_KEY_LEN bytes) is the agreement's key, NULL if
 * it has none.  Refuses, naming the column's JSON path, a rule this build
 * cannot render.  On error *plan is left empty.
 */
int render_plan_init(struct render_plan *plan, const struct schema *schema,
		     const struct agreement_dataset *ds,
		     const uint8_t *pseudonym_key, struct perr *err)
    __attribute__((warn_unused_result));

/*
 * A plan that writes every column of schema as it is stored (the keep rule
 * for each), with schema's names as the header: what a view's result file
 * needs.  0 or -ENOMEM; on error *plan is left empty.
 */
int render_plan_init_keep_all(struct render_plan *plan,
			      const struct schema *schema)
    __attribute__((warn_unused_result));

void render_plan_release(struct render_plan *plan);

/*
 * A text naming everything that decides the bytes entry ds renders from a
 * dataset of this schema: the shown columns with their rules, and the row
 * filter.  Equal fingerprints over one schema mean equal bytes.  Fills out
 * (which the caller releases); 0 or -ENOMEM.
 */
int render_fingerprint(const struct schema *schema,
		       const struct agreement_dataset *ds, struct buf *out)
    __attribute__((warn_unused_result));

/* Whether two fingerprints are the same. */
bool render_fingerprint_equal(const struct buf *a, const struct buf *b);

/* Type of the output column that rule produces from a column of type in. */
enum col_type rule_output_type(const struct rule *rule, enum col_type in);

/* Whether a field must be quoted: it holds ',', '"', CR or LF. */
bool csv_needs_quote(const uint8_t *s, size_t n);

/* Bytes of the first chars code points of the UTF-8 text s[0..n). */
size_t utf8_prefix_bytes(const uint8_t *s, size_t n, size_t chars);

/*
 * Append the CSV rows of the nrows records in block[0..len) to out, and
 * set *shown (if not NULL) to how many rows were written.  Returns 0, -EIO
 * if the block does not hold nrows whole records of the plan's width, or
 * -ENOMEM.
 */
int render_block(const struct render_plan *plan, const uint8_t *block,
		 size_t len, uint32_t nrows, struct buf *out, uint32_t *shown)
    __attribute__((warn_unused_result));

#endif
