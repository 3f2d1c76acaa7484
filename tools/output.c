/* output: errors, JSON and human-readable helpers shared by the verbs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "govfsctl.h"
#include "jsonpath.h"

/* "govfsctl: <message>" on stderr, on one line whatever it quotes. */
static void vreport(const char *fmt, va_list ap)
{
	char *msg = NULL, *line;

	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	line = msg ? text_escape_dup(msg, TEXT_LINE) : NULL;
	fprintf(stderr, "govfsctl: %s\n", line ? line : "out of memory");
	free(line);
	free(msg);
}

void warning(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
}

const char *store_error_text(int rc)
{
	if (rc == -EBADMSG)
		return "store file damaged, or not the one the catalog "
		       "recorded";
	if (rc == -EIO)
		return "store corrupt or key wrong";
	return strerror(-rc);
}

/* How many results of shown() are valid at once. */
#define SHOWN_SLOTS 8

const char *shown(const char *s)
{
	static char *slots[SHOWN_SLOTS];
	static unsigned next;
	char *copy = text_escape_dup(s ? s : "", TEXT_SHOWN);

	if (!copy)
		return "?";
	free(slots[next]);
	slots[next] = copy;
	next = (next + 1) % SHOWN_SLOTS;
	return copy;
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	return EXIT_REFUSED;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

int check_id(const char *what, const char *id)
{
	char q[QUOTE_LEN];

	if (id_is_valid(id))
		return 0;
	return fail("%s id '%s': want [a-z0-9][a-z0-9._-]{0,63}", what,
		    text_quote(q, id));
}

int print_json(json_t *v)
{
	int rc;

	if (!v)
		return fail("out of memory");
	rc = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	fputc('\n', stdout);
	return rc ? fail("cannot write output") : 0;
}

const char *human_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
	double v = (double)n;
	size_t u = 0;

	while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

json_t *json_time(int64_t ns)
{
	char buf[40];

	return json_string(time_format_utc(ns, buf, sizeof(buf)));
}

json_t *json_text(const char *s)
{
	json_t *v;
	char *escaped;

	if (!s)
		return json_null();
	v = json_string(s);
	if (v)
		return v;
	escaped = text_escape_dup(s, TEXT_UTF8);
	v = escaped ? json_string(escaped) : NULL;
	free(escaped);
	return v;
}

int read_small_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *data;
	size_t n;

	if (!f)
		return -errno;
	data = malloc(max + 1);
	if (!data) {
		fclose(f);
		return -ENOMEM;
	}
	errno = 0;
	n = fread(data, 1, max + 1, f);
	if (ferror(f) || n > max) {
		/* fread keeps read's errno: EISDIR for a directory. */
		int rc = ferror(f) ? (errno ? -errno : -EIO) : -EFBIG;

		fclose(f);
		free(data);
		return rc;
	}
	fclose(f);
	data[n] = 0;
	*out = data;
	*len = n;
	return 0;
}
