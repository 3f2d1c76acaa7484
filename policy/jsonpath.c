/* jsonpath: JSON paths and quoted user text for one-line errors. */
#include "jsonpath.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

const char *text_quote(char *buf, const char *s)
{
	size_t len = strnlen(s, QUOTE_MAX + 1);
	bool cut = len > QUOTE_MAX;
	size_t i, o = 0;

	if (cut) {
		len = QUOTE_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (is_control(c))
			o += snprintf(buf + o, QUOTE_LEN - o, "\\x%02x", c);
		else
			buf[o++] = c;
	}
	snprintf(buf + o, QUOTE_LEN - o, "%s", cut ? "..." : "");
	return buf;
}

char *text_escape_dup(const char *s)
{
	size_t len = strlen(s), o = 0;
	char *out = malloc(len * 4 + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (is_control(c))
			o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

int jsonpath_parse_error(struct perr *err, const json_error_t *jerr)
{
	char text[sizeof(jerr->text) * 4];
	size_t o = 0;

	for (const char *p = jerr->text; *p && o + 5 < sizeof(text); p++) {
		unsigned char c = (unsigned char)*p;

		if (is_control(c))
			o += (size_t)snprintf(text + o, sizeof(text) - o,
					      "\\x%02x", c);
		else
			text[o++] = (char)c;
	}
	text[o] = '\0';
	return perr_set(err, "line %d, column %d: %s", jerr->line, jerr->column,
			text);
}

/* Whether key can be written after a dot in a JSON path. */
static bool key_is_plain(const char *key)
{
	size_t i;

	if (!((key[0] >= 'A' && key[0] <= 'Z') ||
	      (key[0] >= 'a' && key[0] <= 'z') || key[0] == '_'))
		return false;
	for (i = 1; key[i]; i++) {
		char c = key[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return i <= QUOTE_MAX;
}

void jsonpath_key(char *dst, const char *base, const char *key)
{
	char q[QUOTE_LEN];

	if (key_is_plain(key))
		snprintf(dst, JSONPATH_LEN, "%s.%s", base, key);
	else
		snprintf(dst, JSONPATH_LEN, "%s['%s']", base,
			 text_quote(q, key));
}

void jsonpath_index(char *dst, const char *base, size_t i)
{
	snprintf(dst, JSONPATH_LEN, "%s[%zu]", base, i);
}

static bool key_is_known(const char *key, const char *const *known)
{
	for (; *known; known++) {
		if (strcmp(*known, key) == 0)
			return true;
	}
	return false;
}

int jsonpath_check_keys(json_t *obj, const char *path, const char *const *known,
			struct perr *err)
{
	char kpath[JSONPATH_LEN];
	void *it;

	for (it = json_object_iter(obj); it;
	     it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);

		if (!key_is_known(key, known)) {
			jsonpath_key(kpath, path, key);
			return perr_set(err, "%s: unknown key", kpath);
		}
	}
	return 0;
}
