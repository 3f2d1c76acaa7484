/*
 * ident: the names an agreement gives: dataset and agreement ids,
 * [a-z0-9][a-z0-9._-]{0,63}, and view names, [A-Za-z0-9][A-Za-z0-9._-]*
 * of at most VIEW_NAME_MAX bytes; each safe as a file name and in a path.
 */
#ifndef GOVFS_IDENT_H
#define GOVFS_IDENT_H

#include <stdbool.h>

/* The longest dataset or agreement id, in bytes. */
#define ID_MAX 64
/* The longest view name, in bytes (its file is "<name>.csv"). */
#define VIEW_NAME_MAX 200

/* Whether s is a valid dataset or agreement id. */
bool id_is_valid(const char *s);

/* Whether s is a valid view name. */
bool view_name_is_valid(const char *s);

#endif
