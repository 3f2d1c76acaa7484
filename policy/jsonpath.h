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
 * How text from outside (a column name, a reason, a path, a process name)
 * is made safe, each byte of what it escapes written \xHH:
 *   TEXT_SHOWN  to show a person a value: control characters (C0, DEL,
 *               and C1, which terminals may obey), bytes that are not
 *               UTF-8, and '\' (so that each \xHH reads back as one
 *               byte).  One record stays one line (audit tail, README.txt).
 *   TEXT_LINE   a message whose values are already TEXT_SHOWN: control
 *               characters only, so that it stays one line.
 *   TEXT_UTF8   for JSON, which holds only UTF-8 and escapes control
 *               characters itself: bytes that are not UTF-8, and '\'.
 */
enum text_escape { TEXT_SHOWN, TEXT_LINE, TEXT_UTF8 };

/*
 * s as TEXT_SHOWN, in buf (QUOTE_LEN bytes) for a one-line message: past
 * QUOTE_MAX bytes it is cut (at a UTF-8 character boundary) and marked
 * with "...".  Returns buf.
 */
const char *text_quote(char *buf, const char *s);

/* The same for the len bytes at s (a field, not a C string). */
const char *text_quote_bytes(char *buf, const char *s, size_t len);

/*
 * s escaped as how says, in buf (len bytes, at least 1): what would not fit
 * with every byte escaped is left out, cut at a character boundary.
 * Returns buf.
 */
const char *text_escape(char *buf, size_t len, const char *s,
			enum text_escape how);

/* s whole, escaped as how says: a new string the caller frees, or NULL
 * when out of memory. */
char *text_escape_dup(const char *s, enum text_escape how);

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
