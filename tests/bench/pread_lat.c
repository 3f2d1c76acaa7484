/*
 * pread-lat: latency of random 4 KiB preads on one file, as p50/p99 in
 * microseconds.  Offsets are drawn from [0, window) (default the whole
 * file); --warm reads that window once first so a cache holds it.
 *
 * usage: pread-lat FILE COUNT [--window BYTES] [--warm] [--seed N]
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_LEN 4096

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int warm(int fd, uint64_t window)
{
	static char buf[1 << 20];

	for (uint64_t off = 0; off < window; off += sizeof(buf))
		if (pread(fd, buf, sizeof(buf), (off_t)off) < 0)
			return -errno;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t window = 0;
	int fd, warm_first = 0;
	long count;
	double *lat;
	char buf[READ_LEN];
	struct stat st;

	if (argc < 3) {
		fprintf(stderr, "usage: pread-lat FILE COUNT [--window BYTES] "
				"[--warm] [--seed N]\n");
		return 2;
	}
	count = atol(argv[2]);
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--warm"))
			warm_first = 1;
		else if (!strcmp(argv[i], "--window") && i + 1 < argc)
			window = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			rng_state = strtoull(argv[++i], NULL, 10) | 1;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) || count < 1) {
		perror(argv[1]);
		return 1;
	}
	if (!window || window > (uint64_t)st.st_size)
		window = (uint64_t)st.st_size;
	if (warm_first && warm(fd, window)) {
		perror("warm");
		return 1;
	}
	lat = calloc((size_t)count, sizeof(*lat));
	for (long i = 0; i < count; i++) {
		uint64_t off =
		    rng_next() % (window > READ_LEN ? window - READ_LEN : 1);
		double t0 = now_us();

		if (pread(fd, buf, READ_LEN, (off_t)off) < 0) {
			perror("pread");
			return 1;
		}
		lat[i] = now_us() - t0;
	}
	qsort(lat, (size_t)count, sizeof(*lat), cmp_double);
	printf("p50 %.1f us  p99 %.1f us  (%ld reads of 4 KiB over %llu "
	       "bytes%s)\n",
	       lat[count / 2], lat[count * 99 / 100], count,
	       (unsigned long long)window, warm_first ? ", warm" : "");
	free(lat);
	close(fd);
	return 0;
}
