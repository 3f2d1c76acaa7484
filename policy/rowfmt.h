/*
 * rowfmt: the binary form of one record inside a store block.  Each field
 * is a LEB128 varint v followed by its bytes: v = 0 is NULL (an empty
 * field), otherwise v = len * 2 + needs_quote and len bytes follow.  A
 * record has exactly as many fields as its dataset has columns, so rows
 * carry no count of their own.
 */
#ifndef GOVFS_ROWFMT_H
#define GOVFS_ROWFMT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "csv.h"

struct rowfmt_field {
	const uint8_t *data; /* points into the block */
	size_t len;	     /* 0 is NULL */
	bool needs_quote;
};

/* Append one varint; 0 or -ENOMEM. */
int rowfmt_put_varint(struct buf *out, uint64_t v)
    __attribute__((warn_unused_result));

/* Append one field (len 0 is NULL); 0 or -ENOMEM. */
int rowfmt_put_field(struct buf *out, const void *data, size_t len,
		     bool needs_quote) __attribute__((warn_unused_result));

/* Append one record of n fields; 0 or -ENOMEM. */
int rowfmt_append(struct buf *out, const struct csv_field *fields, size_t n)
    __attribute__((warn_unused_result));

/*
 * Decode the record at *pos of block[0..len) into fields[0..ncols) and move
 * *pos past it.  Returns 0, or -EIO if the bytes are not a whole record.
 */
static inline int rowfmt_next(const uint8_t *block, size_t len, size_t *pos,
			      size_t ncols, struct rowfmt_field *fields)
    __attribute__((warn_unused_result));

/* One varint; 0, or -EIO if it runs past len or over 64 bits. */
static inline int rowfmt_varint(const uint8_t *p, size_t len, size_t *pos,
				uint64_t *v)
{
	uint64_t x = 0;
	unsigned shift = 0;

	while (*pos < len && shift < 64) {
		uint8_t c = p[(*pos)++];

		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*v = x;
			return 0;
		}
		shift += 7;
	}
	return -EIO;
}

static inline int rowfmt_next(const uint8_t *block, size_t len, size_t *pos,
			      size_t ncols, struct rowfmt_field *fields)
{
	for (size_t i = 0; i < ncols; i++) {
		uint64_t v;

		if (rowfmt_varint(block, len, pos, &v))
			return -EIO;
		fields[i].len = v >> 1;
		fields[i].needs_quote = v & 1;
		if (fields[i].len > len - *pos)
			return -EIO;
		fields[i].data = block + *pos;
		*pos += fields[i].len;
	}
	return 0;
}

#endif
