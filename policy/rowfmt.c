/* rowfmt: encoding and decoding of records in store blocks. */
#include "rowfmt.h"

#include <errno.h>

static size_t varint_put(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

int rowfmt_put_varint(struct buf *out, uint64_t v)
{
	int rc = buf_reserve(out, 10);

	if (!rc)
		out->len += varint_put(out->data + out->len, v);
	return rc;
}

int rowfmt_put_field(struct buf *out, const void *data, size_t len,
		     bool needs_quote)
{
	int rc = buf_reserve(out, 10 + len);

	if (rc)
		return rc;
	out->len +=
	    varint_put(out->data + out->len, len ? len * 2 + needs_quote : 0);
	if (len)
		buf_put(out, data, len);
	return 0;
}

int rowfmt_append(struct buf *out, const struct csv_field *fields, size_t n)
{
	size_t need = 0;
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		need += 10 + fields[i].len;
	rc = buf_reserve(out, need);
	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		uint64_t v = fields[i].len
				 ? fields[i].len * 2 + fields[i].needs_quote
				 : 0;

		out->len += varint_put(out->data + out->len, v);
		if (fields[i].len)
			buf_put(out, fields[i].data, fields[i].len);
	}
	return 0;
}
