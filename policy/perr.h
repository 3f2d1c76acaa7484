/*
 * perr: the one-line error that every parser and validator in policy/
 * fills in.  The text names the place (physical line and column, or JSON
 * path) but not the file: the caller prefixes the file name when it prints.
 */
#ifndef GOVFS_PERR_H
#define GOVFS_PERR_H

#include <stdarg.h>

struct perr {
	char msg[512];
};

/* Format msg into err (truncating if needed).  Returns -EINVAL so callers
 * can write "return perr_set(err, ...);". err may be NULL. */
int perr_set(struct perr *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int perr_vset(struct perr *err, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
