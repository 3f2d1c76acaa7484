/*
 * schema: a dataset's columns (name, type, classification level) and their
 * JSON form {"columns": [{"name": ..., "type": ..., "level": 1..4}, ...]}.
 * A schema owns its strings; schema_release() frees them.
 */
#ifndef GOVFS_SCHEMA_H
#define GOVFS_SCHEMA_H

#include <stddef.h>

#include "perr.h"
#include "types.h"

#define LEVEL_MIN 1
#define LEVEL_MAX 4

struct column {
	char *name; /* non-empty UTF-8, NUL-terminated */
	enum col_type type;
	int level; /* LEVEL_MIN..LEVEL_MAX */
};

struct schema {
	size_t ncols;
	struct column *cols;
};

/*
 * Parse the schema JSON text.  Unknown keys, a missing name or type, an
 * unknown type, a level outside 1..4, empty or duplicate names are refused
 * with the JSON path in err ("$.columns[2].type: unknown type 'float'").
 * A missing level means 4.  On success *out owns everything; on error *out
 * is left empty.
 */
int schema_from_json(const char *text, size_t len, struct schema *out,
		     struct perr *err) __attribute__((warn_unused_result));

/* Compact JSON text of the schema; the caller frees it.  NULL on ENOMEM. */
char *schema_to_json(const struct schema *schema);

/* Index of the column named name, or -1. */
long schema_find(const struct schema *schema, const char *name);

/* Deep copy; returns 0 or -ENOMEM. */
int schema_copy(struct schema *dst, const struct schema *src)
    __attribute__((warn_unused_result));

void schema_release(struct schema *schema);

#endif
