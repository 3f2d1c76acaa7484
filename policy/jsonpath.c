/* jsonpath: JSON paths and quoted user text for one-line errors. */
#include "jsonpath.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Whether the sequence of len bytes at s is escaped as how says. */
static bool escaped(const unsigned char *s, size_t len, enum text_escape how)
{
	bool controls = how != TEXT_UTF8, text = how != TEXT_LINE;

	if (!len)
		return text; /* not well-formed UTF-8 */
	if (len == 1 && s[0] == '\\')
		return text; /* so that every \xHH reads back as one byte */
	/* C0 and DEL, and C1 (U+0080..U+009F), which terminals may obey. */
	return controls && ((len == 1 && is_control(s[0])) ||
			    (len == 2 && s[0] == 0xc2 && s[1] < 0xa0));
}

/*
 * Write s[0..n) into out (room for 4 * n + 1 bytes), each byte of what
 * how escapes as \xHH; returns out.
 */
static char *escape_text(char *out, const unsigned char *s, size_t n,
			 enum text_escape how)
{
	size_t o = 0;

	for (size_t i = 0; i < n;) {
		size_t len = utf8_sequence_len(s + i, n - i);
		bool esc = escaped(s + i, len, how);

		if (!len)
			len = 1;
		for (size_t k = 0; esc && k < len; k++)
			o += (size_t)snprintf(out + o, 5, "\\x%02x", s[i + k]);
		if (!esc) {
			memcpy(out + o, s + i, len);
			o += len;
		}
		i += len;
	}
	out[o] = '\0';
	return out;
}

const char *text_quote(char *buf, const char *s)
{
	return text_quote_bytes(buf, s, strnlen(s, QUOTE_MAX + 1));
}

const char *text_quote_bytes(char *buf, const char *s, size_t len)
{
	bool cut = len > QUOTE_MAX;

	if (cut) {
		len = QUOTE_MAX;
		while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
			len--;
	}
	escape_text(buf, (const unsigned char *)s, len, TEXT_SHOWN);
	if (cut)
		strcat(buf, "...");
	return buf;
}

const char *text_escape(char *buf, size_t len, const char *s,
			enum text_escape how)
{
	size_t n = strnlen(s, (len - 1) / 4);

	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return escape_text(buf, (const unsigned char *)s, n, how);
}

char *text_escape_dup(const char *s, enum text_escape how)
{
	size_t len = strlen(s);
	char *out = malloc(len * 4 + 1);

	return out ? escape_text(out, (const unsigned char *)s, len, how)
		   : NULL;
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
