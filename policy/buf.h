/*
 * buf: a growable byte buffer.  data is NULL until the first append; len
 * bytes of data are valid; the buffer owns data and buf_release() frees it.
 */
#ifndef GOVFS_BUF_H
#define GOVFS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT                                                               \
	{                                                                      \
		NULL, 0, 0                                                     \
	}

/* Make room for extra more bytes; 0 or -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra)
    __attribute__((warn_unused_result));

/* Append n bytes; 0 or -ENOMEM. */
int buf_append(struct buf *b, const void *data, size_t n)
    __attribute__((warn_unused_result));

/* Append without checking room: the caller reserved it. */
static inline void buf_put(struct buf *b, const void *data, size_t n)
{
	__builtin_memcpy(b->data + b->len, data, n);
	b->len += n;
}

static inline void buf_putc(struct buf *b, uint8_t c)
{
	b->data[b->len++] = c;
}

void buf_release(struct buf *b);

#endif
