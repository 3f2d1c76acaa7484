/*
 * optform: how one argument gives a long option (see optform.h).
 */
#include "optform.h"

#include <string.h>

enum option_form option_form(const char *arg, const char *name,
			     const char **value)
{
	size_t len = strlen(name);

	if (strncmp(arg, name, len))
		return NOT_THIS_OPTION;
	if (!arg[len])
		return VALUE_NEXT;
	if (arg[len] != '=')
		return NOT_THIS_OPTION;
	*value = arg + len + 1;
	return VALUE_JOINED;
}
