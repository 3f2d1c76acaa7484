/* perr: formatting of one-line policy/ errors. */
#include "perr.h"

#include <errno.h>
#include <stdio.h>

int perr_vset(struct perr *err, const char *fmt, va_list ap)
{
	if (err)
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	return -EINVAL;
}

int perr_set(struct perr *err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = perr_vset(err, fmt, ap);
	va_end(ap);
	return rc;
}
