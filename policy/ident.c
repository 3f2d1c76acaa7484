/*
 * ident: the names an agreement gives (see ident.h).
 */
#include "ident.h"

#include <stddef.h>

static bool char_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool char_is_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || char_is_lower_alnum(c);
}

/* [A-Za-z0-9][A-Za-z0-9._-]* (no upper case unless upper) of at most max
 * bytes. */
static bool name_is_valid(const char *s, bool upper, size_t max)
{
	bool (*alnum)(char) = upper ? char_is_alnum : char_is_lower_alnum;
	size_t i;

	if (!alnum(s[0]))
		return false;
	for (i = 1; s[i]; i++) {
		if (i >= max)
			return false;
		if (!alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	}
	return true;
}

bool id_is_valid(const char *s)
{
	return name_is_valid(s, false, ID_MAX);
}

bool view_name_is_valid(const char *s)
{
	return name_is_valid(s, true, VIEW_NAME_MAX);
}
