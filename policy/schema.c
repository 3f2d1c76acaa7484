/*
 * schema: owns a dataset's column list (name, type, level) and its JSON
 * form.  schema_from_json() checks every key and value and names the JSON
 * path of the first fault; schema_to_json() writes the same form back, with
 * every level explicit, so that its output parses to an equal schema.
 */
#include "schema.h"

#include "jsonpath.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const root_keys[] = {"columns", NULL};
static const char *const column_keys[] = {"name", "type", "level", NULL};

static int parse_name(json_t *col, const char *path, const struct schema *s,
		      char **name, struct perr *err)
{
	json_t *v = json_object_get(col, "name");
	const char *text;
	char q[QUOTE_LEN];
	size_t i;

	if (!v)
		return perr_set(err, "%s.name: missing", path);
	if (!json_is_string(v))
		return perr_set(err, "%s.name: expected a string", path);
	text = json_string_value(v);
	if (text[0] == '\0')
		return perr_set(err, "%s.name: empty", path);
	for (i = 0; i < s->ncols; i++) {
		if (strcmp(s->cols[i].name, text) == 0)
			return perr_set(err, "%s.name: duplicate column '%s'",
					path, text_quote(q, text));
	}
	*name = strdup(text);
	return *name ? 0 : -ENOMEM;
}

static int parse_type(json_t *col, const char *path, enum col_type *type,
		      struct perr *err)
{
	json_t *v = json_object_get(col, "type");
	char q[QUOTE_LEN];

	if (!v)
		return perr_set(err, "%s.type: missing", path);
	if (!json_is_string(v))
		return perr_set(err, "%s.type: expected a string", path);
	if (col_type_parse(json_string_value(v), type) != 0)
		return perr_set(err, "%s.type: unknown type '%s'", path,
				text_quote(q, json_string_value(v)));
	return 0;
}

static int parse_level(json_t *col, const char *path, int *level,
		       struct perr *err)
{
	json_t *v = json_object_get(col, "level");
	json_int_t n;

	if (!v) {
		*level = LEVEL_MAX;
		return 0;
	}
	n = json_is_integer(v) ? json_integer_value(v) : 0;
	if (n < LEVEL_MIN || n > LEVEL_MAX)
		return perr_set(err, "%s.level: expected an integer %d..%d",
				path, LEVEL_MIN, LEVEL_MAX);
	*level = (int)n;
	return 0;
}

/* Parse columns[i] into s->cols[s->ncols], counting it once it owns its
 * name, so that schema_release() sees exactly what was allocated. */
static int parse_column(json_t *col, size_t i, struct schema *s,
			struct perr *err)
{
	struct column *c = &s->cols[s->ncols];
	char path[JSONPATH_LEN];
	int rc;

	snprintf(path, sizeof(path), "$.columns[%zu]", i);
	if (!json_is_object(col))
		return perr_set(err, "%s: expected an object", path);
	rc = jsonpath_check_keys(col, path, column_keys, err);
	if (rc)
		return rc;
	rc = parse_name(col, path, s, &c->name, err);
	if (rc)
		return rc;
	s->ncols++;
	rc = parse_type(col, path, &c->type, err);
	if (rc)
		return rc;
	return parse_level(col, path, &c->level, err);
}

static int parse_root(json_t *root, struct schema *s, struct perr *err)
{
	json_t *cols;
	size_t i;
	int rc;

	if (!json_is_object(root))
		return perr_set(err, "$: expected an object");
	rc = jsonpath_check_keys(root, "$", root_keys, err);
	if (rc)
		return rc;
	cols = json_object_get(root, "columns");
	if (!cols)
		return perr_set(err, "$.columns: missing");
	if (!json_is_array(cols))
		return perr_set(err, "$.columns: expected an array");
	if (json_array_size(cols) == 0)
		return perr_set(err, "$.columns: empty");
	s->cols = calloc(json_array_size(cols), sizeof(*s->cols));
	if (!s->cols)
		return -ENOMEM;
	for (i = 0; i < json_array_size(cols); i++) {
		rc = parse_column(json_array_get(cols, i), i, s, err);
		if (rc)
			return rc;
	}
	return 0;
}

int schema_from_json(const char *text, size_t len, struct schema *out,
		     struct perr *err)
{
	struct schema tmp = {0};
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root && json_error_code(&jerr) == json_error_out_of_memory)
		goto out_nomem;
	if (!root)
		return jsonpath_parse_error(err, &jerr);
	rc = parse_root(root, &tmp, err);
	json_decref(root);
	if (rc == -ENOMEM)
		goto out_nomem;
	if (rc) {
		schema_release(&tmp);
		return rc;
	}
	*out = tmp;
	return 0;

out_nomem:
	schema_release(&tmp);
	perr_set(err, "out of memory");
	return -ENOMEM;
}

/* The JSON object of one column, or NULL on ENOMEM. */
static json_t *column_to_json(const struct column *c)
{
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	if (json_object_set_new(obj, "name", json_string(c->name)) ||
	    json_object_set_new(obj, "type",
				json_string(col_type_name(c->type))) ||
	    json_object_set_new(obj, "level", json_integer(c->level))) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

char *schema_to_json(const struct schema *schema)
{
	json_t *root = json_object();
	json_t *cols = json_array();
	char *text = NULL;
	size_t i;

	if (!root || !cols)
		goto out_free;
	for (i = 0; i < schema->ncols; i++) {
		if (json_array_append_new(cols,
					  column_to_json(&schema->cols[i])))
			goto out_free;
	}
	if (json_object_set(root, "columns", cols))
		goto out_free;
	text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
out_free:
	json_decref(cols);
	json_decref(root);
	return text;
}

long schema_find(const struct schema *schema, const char *name)
{
	size_t i;

	for (i = 0; i < schema->ncols; i++) {
		if (strcmp(schema->cols[i].name, name) == 0)
			return (long)i;
	}
	return -1;
}

int schema_copy(struct schema *dst, const struct schema *src)
{
	size_t i;

	memset(dst, 0, sizeof(*dst));
	if (src->ncols == 0)
		return 0;
	dst->cols = calloc(src->ncols, sizeof(*dst->cols));
	if (!dst->cols)
		return -ENOMEM;
	for (i = 0; i < src->ncols; i++) {
		dst->cols[i] = src->cols[i];
		dst->cols[i].name = strdup(src->cols[i].name);
		if (!dst->cols[i].name) {
			schema_release(dst);
			return -ENOMEM;
		}
		dst->ncols++;
	}
	return 0;
}

void schema_release(struct schema *schema)
{
	size_t i;

	for (i = 0; i < schema->ncols; i++)
		free(schema->cols[i].name);
	free(schema->cols);
	memset(schema, 0, sizeof(*schema));
}
