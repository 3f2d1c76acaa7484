/* utf8: well-formed UTF-8 (see utf8.h). */
#include "utf8.h"

unsigned utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		return 1;
	if (c < 0xf0) {
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;
		return 2;
	}
	if (c < 0xf5) {
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;
		return 3;
	}
	return 0;
}

size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
	unsigned char lo, hi;
	unsigned need;

	if (!n)
		return 0;
	if (s[0] < 0x80)
		return 1;
	need = utf8_lead(s[0], &lo, &hi);
	if (!need || n <= need)
		return 0;
	for (unsigned i = 1; i <= need; i++) {
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}
