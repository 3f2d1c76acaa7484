/*
 * utf8: what well-formed UTF-8 is (no overlongs, no surrogates, nothing
 * past U+10FFFF), for the CSV reader's check and for text made safe to
 * show.
 */
#ifndef GOVFS_UTF8_H
#define GOVFS_UTF8_H

#include <stddef.h>

/*
 * Continuation bytes after lead byte c (0 if c cannot start a sequence of
 * more than one byte) and, in *lo..*hi, the range of the first one: what
 * rules out overlongs (E0, F0), surrogates (ED) and code points past
 * U+10FFFF (F4).  Every later continuation byte is 0x80..0xbf.
 */
unsigned utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi);

/*
 * Bytes of the well-formed UTF-8 sequence that starts s[0..n) (1 for
 * ASCII), or 0 if none does there.
 */
size_t utf8_sequence_len(const unsigned char *s, size_t n);

#endif
