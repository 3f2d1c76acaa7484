/*
 * jsonpath: naming the place of a fault in a JSON document for one-line
 * errors ("$.datasets[0].columns.phone", "$.columns['Culmen (mm)']"), and
 * quoting user text safely inside such a line.
 */
#ifndef GOVFS_JSONPATH_H
#define GOVFS_JSONPATH_H

#include <jansson.h>
#include <stddef.h>

#include "perr.h"

/* Room for any path this project writes. */
#define JSONPATH_LEN 512

/* User text quoted in an error is cut after QUOTE_MAX bytes; QUOTE_LEN
 * holds that much with every byte escaped, the "..." and the NUL. */
#define QUOTE_MAX 64
#define QUOTE_LEN (QUOTE_MAX * 4 + 4)

/*
 * Copy s into buf (QUOTE_LEN bytes) for a one-line message: control bytes
 * become \xHH, and text past QUOTE_MAX bytes is cut (at a UTF-8 character
 * boundary) and marked with "...".  Returns buf.
 */
const char *text_quote(char *buf, const char *s);

/*
 * s whole, with its control bytes written \xHH, for human output that
 * must keep one record to one line (audit tail, README.txt): a new string
 * the caller frees, or NULL when out of memory.
 */
char *text_escape_dup(const char *s);

/*
 * Report a document jansson could not parse: "line L, column C: what",
 * with the control bytes of jansson's text (which quotes the input near
 * the fault, newlines included) written \xHH.  Returns -EINVAL.
 */
int jsonpath_parse_error(struct perr *err, const json_error_t *jerr);

/* The path of member key of the object at base: "$.a.b" or "$.a['b c']";
 * dst holds JSONPATH_LEN bytes. */
void jsonpath_key(char *dst, const char *base, const char *key);

/* The path of item i of the array at base: "$.a[3]". */
void jsonpath_index(char *dst, const char *base, size_t i);

/* Refuse, naming its path, any key of obj not in known (NULL-terminated). */
int jsonpath_check_keys(json_t *obj, const char *path, const char *const *known,
			struct perr *err);

#endif
