/*
 * aggregate: the aggregation views of SPEC ("Agreements", views): group
 * statistics of a dataset's records, with small groups suppressed.  Pure:
 * no I/O, no threads; the caller feeds records and, when memory runs
 * short, moves partial states out and back in (fs/viewbuild does that
 * with sealed temporary files).
 *
 * An agg_plan is compiled once per (dataset schema, view, rows filter).
 * An agg_table then holds, per group, a partial state that merges with any
 * other partial state of the same group: rows, exact sums, minima and
 * maxima, and counts of distinct values.  Distinct values are counted
 * apart from the groups, as a set of (distinct column, group key, value)
 * "pairs": a pair is counted once into its group however many times it
 * was seen, so pairs can be spilled and deduplicated partition by
 * partition, each partition adding its counts to the groups.
 *
 * Semantics (SPEC, plus README "Views" where SPEC is silent):
 *  - the rows filter applies first; the count measure counts rows;
 *  - a group key is the value after its generalising rule; int and
 *    decimal values are grouped by value and written canonically ("07"
 *    and "7" are one group, written "7"); NULL keys form one group;
 *  - measures ignore NULLs, and a group whose values are all NULL gets an
 *    empty field; sum is exact; avg is rounded half away from zero to 6
 *    places; min, max and numbers are written canonically;
 *  - count_distinct counts distinct non-NULL values (numbers by value);
 *  - a group is shown only with at least min_group rows and, when the
 *    view names an entity, at least min_group distinct non-NULL entities;
 *  - groups are ordered by their keys ascending, NULL first, comparing
 *    int and decimal keys as numbers, datetimes as instants (a value
 *    without offset read as UTC; equal instants by their text), and
 *    everything else bytewise.
 *
 * Group keys and output records use the store's row encoding (rowfmt.h):
 * a group key is its key fields encoded as a record, and an output record
 * is the key fields followed by one field per measure.
 */
#ifndef GOVFS_AGGREGATE_H
#define GOVFS_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agreement.h"
#include "buf.h"
#include "filter.h"
#include "perr.h"
#include "rowfmt.h"
#include "schema.h"

/* Fraction digits of avg. */
#define AGG_AVG_PLACES 6

struct agg_key {
	size_t src; /* source column */
	bool has_rule;
	struct rule rule;      /* a generalising rule, owned */
	enum col_type in_type; /* the source column's */
	enum col_type type;    /* the key's, as written */
	bool canonical;	       /* a number written canonically */
};

/* What a group keeps for sums and averages, or a minimum or maximum. */
enum agg_cell_kind {
	CELL_SUM, /* sum:C and avg:C share it */
	CELL_MIN,
	CELL_MAX,
};

struct agg_cell_spec {
	enum agg_cell_kind kind;
	size_t src;
	enum col_type type;
};

struct agg_distinct_spec {
	size_t src;
	bool numeric; /* int and decimal: counted by value */
};

struct agg_measure {
	enum measure_kind kind;
	size_t index; /* its cell (sum, avg, min, max) or distinct spec */
};

struct agg_plan {
	size_t nsrc;		     /* columns of the dataset */
	const struct filter *filter; /* borrowed; NULL passes every row */
	size_t nkeys;
	struct agg_key *keys;
	size_t nmeasures;
	struct agg_measure *measures;
	size_t ncells;
	struct agg_cell_spec *cells;
	size_t ndistinct;
	struct agg_distinct_spec *distinct;
	long entity; /* index into distinct, or -1 */
	uint64_t min_group;
	/* Layout of a group's state: cells, then counters, then its key. */
	size_t cells_off, counters_off, key_off;
	/* The output: nkeys + nmeasures columns. */
	size_t nout;
	char **out_names;
	enum col_type *out_types;
};

/*
 * Compile view against schema (which agreement_check accepted it for),
 * with filter (borrowed, may be NULL) applied first.  Refuses, naming the
 * view's JSON path from "$.views[...]" down, a column the schema lacks.
 * On error *plan is left empty.
 */
int agg_plan_init(struct agg_plan *plan, const struct schema *schema,
		  const struct view *view, const struct filter *filter,
		  struct perr *err) __attribute__((warn_unused_result));

void agg_plan_release(struct agg_plan *plan);

/* The output columns as a schema (names and types, level 1); 0 or -ENOMEM. */
int agg_plan_output_schema(const struct agg_plan *plan, struct schema *out)
    __attribute__((warn_unused_result));

/*
 * A text naming everything that decides a view's bytes for one dataset
 * version: its keys and rules, measures, min_group, entity and the rows
 * filter.  Equal fingerprints over one version mean equal bytes.  Fills
 * out (emptied first); 0 or -ENOMEM.
 */
int agg_fingerprint(const struct view *view, const char *rows, struct buf *out)
    __attribute__((warn_unused_result));

/*
 * Compare the first nkeys fields of two rowfmt records (group keys or
 * output records) in the view's order.  Records must hold those fields.
 */
int agg_key_compare(const struct agg_plan *plan, const uint8_t *a, size_t na,
		    const uint8_t *b, size_t nb);

struct agg_group;

/*
 * The partial states of groups, and the distinct pairs seen.  A table
 * belongs to one thread; many may share a plan, which must outlive them.
 */
struct agg_table;

/* NULL on ENOMEM. */
struct agg_table *agg_table_new(const struct agg_plan *plan);
void agg_table_free(struct agg_table *t);

/*
 * Feed one record (fields indexed like the dataset's columns, len 0 being
 * NULL); a record the filter does not pass is skipped.  Returns 0, -EIO
 * if a value does not have its column's syntax, or -ENOMEM.
 */
int agg_table_add(struct agg_table *t, const struct rowfmt_field *fields)
    __attribute__((warn_unused_result));

/* Memory held by the groups, and by the pairs. */
size_t agg_table_group_bytes(const struct agg_table *t);
size_t agg_table_pair_bytes(const struct agg_table *t);

size_t agg_table_ngroups(const struct agg_table *t);
size_t agg_table_npairs(const struct agg_table *t);

/*
 * Walk the groups or the pairs: slot i (0 <= i < slots) holds an entry or
 * not.  The hash decides where a spilled entry goes: equal keys (pairs)
 * have equal hashes.
 */
size_t agg_table_group_slots(const struct agg_table *t);
const struct agg_group *agg_table_group_at(const struct agg_table *t, size_t i,
					   uint64_t *hash);
size_t agg_table_pair_slots(const struct agg_table *t);
bool agg_table_pair_at(const struct agg_table *t, size_t i, uint64_t *hash,
		       const uint8_t **pair, size_t *len);

/* Append the partial state of g as one record; 0 or -ENOMEM. */
int agg_group_serialize(const struct agg_table *t, const struct agg_group *g,
			struct buf *out) __attribute__((warn_unused_result));

/* Merge a record of agg_group_serialize into its group (creating it).
 * 0, -EIO if the record is malformed, or -ENOMEM. */
int agg_table_merge_group(struct agg_table *t, const uint8_t *rec, size_t len)
    __attribute__((warn_unused_result));

/* Add a pair (as agg_table_pair_at gives it) unless it is there. */
int agg_table_add_pair(struct agg_table *t, const uint8_t *pair, size_t len)
    __attribute__((warn_unused_result));

/*
 * Count one distinct pair into its group of t (creating the group, with
 * no rows, if it is not there).  0, -EIO if malformed, or -ENOMEM.
 */
int agg_table_count_pair(struct agg_table *t, const uint8_t *pair, size_t len)
    __attribute__((warn_unused_result));

/* Count every pair of t into t's groups, then forget the pairs. */
int agg_table_count_own_pairs(struct agg_table *t)
    __attribute__((warn_unused_result));

void agg_table_clear_groups(struct agg_table *t);
void agg_table_clear_pairs(struct agg_table *t);

/*
 * The groups min_group lets through, in the view's order: *out is an
 * array of *n pointers into t (the caller frees the array).  Call once
 * every pair has been counted.  0 or -ENOMEM.
 */
int agg_table_shown_sorted(const struct agg_table *t,
			   const struct agg_group ***out, size_t *n)
    __attribute__((warn_unused_result));

/* Append g's output record (keys, then measures); 0, -EIO or -ENOMEM. */
int agg_group_output(const struct agg_table *t, const struct agg_group *g,
		     struct buf *out) __attribute__((warn_unused_result));

#endif
