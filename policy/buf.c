/* buf: growable byte buffers. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int buf_reserve(struct buf *b, size_t extra)
{
	size_t want = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	uint8_t *data;

	if (want < b->len)
		return -ENOMEM;
	if (want <= b->cap)
		return 0;
	while (cap < want)
		cap *= 2;
	data = realloc(b->data, cap);
	if (!data)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int buf_append(struct buf *b, const void *data, size_t n)
{
	int rc = buf_reserve(b, n);

	if (rc)
		return rc;
	if (n)
		buf_put(b, data, n);
	return 0;
}

void buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}
