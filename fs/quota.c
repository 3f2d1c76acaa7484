/*
 * quota: the shared daily byte counter.  The word is read and replaced
 * whole, so a day that turns resets the count in the same swap that
 * charges the first read of the new day.
 */
#include "quota.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agreement.h"
#include "home.h"

#define DAY_BITS 20
#define DAY_MASK ((UINT64_C(1) << DAY_BITS) - 1)
#define BYTES_MAX ((UINT64_C(1) << (64 - DAY_BITS)) - 1)
#define NS_PER_DAY INT64_C(86400000000000)

struct quota {
	_Atomic uint64_t *word;
};

static int counter_path(const char *home, const char *agreement, char *path,
			size_t len)
{
	/* The id is a file name: never a path to somewhere else. */
	if (!id_is_valid(agreement))
		return -EINVAL;
	if (snprintf(path, len, "%s/%s/%s", home, HOME_QUOTA_DIR, agreement) >=
	    (int)len)
		return -ENAMETOOLONG;
	return 0;
}

int quota_open(const char *home, const char *agreement, struct quota **out)
{
	char path[PATH_MAX];
	struct quota *q;
	void *map;
	int fd, rc;

	rc = home_subdir(home, HOME_QUOTA_DIR);
	if (!rc)
		rc = counter_path(home, agreement, path, sizeof(path));
	if (rc)
		return rc;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* Extending to 8 bytes keeps a count already there. */
	if (ftruncate(fd, sizeof(uint64_t)) && errno != EINVAL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	map = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	rc = map == MAP_FAILED ? -errno : 0;
	close(fd);
	if (rc)
		return rc;
	q = malloc(sizeof(*q));
	if (!q) {
		munmap(map, sizeof(uint64_t));
		return -ENOMEM;
	}
	q->word = map;
	*out = q;
	return 0;
}

void quota_close(struct quota *q)
{
	if (!q)
		return;
	munmap((void *)q->word, sizeof(uint64_t));
	free(q);
}

int quota_remove(const char *home, const char *agreement)
{
	char path[PATH_MAX];
	int rc = counter_path(home, agreement, path, sizeof(path));

	if (!rc && unlink(path) && errno != ENOENT)
		rc = -errno;
	return rc;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t quota_day(int64_t now_ns, int offset_min)
{
	return floor_div(now_ns + (int64_t)offset_min * 60000000000,
			 NS_PER_DAY);
}

int64_t quota_day_start_ns(int64_t day, int offset_min)
{
	return day * NS_PER_DAY - (int64_t)offset_min * 60000000000;
}

static uint64_t pack(int64_t day, uint64_t bytes)
{
	return bytes << DAY_BITS | ((uint64_t)day & DAY_MASK);
}

/* The bytes word counts for day: 0 when it counts another day. */
static uint64_t bytes_on(uint64_t word, int64_t day)
{
	return (word & DAY_MASK) == ((uint64_t)day & DAY_MASK)
		   ? word >> DAY_BITS
		   : 0;
}

/*
 * The day to charge: day, or the word's own when another daemon has
 * already moved it to a later day (a read racing midnight must not reset
 * the new day's count).
 */
static int64_t charged_day(uint64_t word, int64_t day)
{
	uint64_t ahead =
	    ((word & DAY_MASK) - ((uint64_t)day & DAY_MASK)) & DAY_MASK;

	/* A word with nothing counted (a new counter) belongs to no day. */
	if (!(word >> DAY_BITS))
		return day;
	return ahead && ahead < DAY_MASK / 2 ? day + (int64_t)ahead : day;
}

uint64_t quota_take(struct quota *q, int64_t day, uint64_t limit, uint64_t want)
{
	uint64_t old = atomic_load(q->word), used, grant;
	int64_t d;

	if (limit > BYTES_MAX)
		limit = BYTES_MAX;
	do {
		d = charged_day(old, day);
		used = bytes_on(old, d);
		grant = used >= limit ? 0 : limit - used;
		if (grant > want)
			grant = want;
		if (!grant)
			return 0;
	} while (!atomic_compare_exchange_weak(q->word, &old,
					       pack(d, used + grant)));
	return grant;
}

void quota_give_back(struct quota *q, int64_t day, uint64_t n)
{
	uint64_t old = atomic_load(q->word), used;

	do {
		used = bytes_on(old, day);
		/* The day turned since: nothing of it is counted any more. */
		if ((old & DAY_MASK) != ((uint64_t)day & DAY_MASK))
			return;
	} while (!atomic_compare_exchange_weak(
	    q->word, &old, pack(day, used > n ? used - n : 0)));
}

uint64_t quota_used(const struct quota *q, int64_t day)
{
	return bytes_on(atomic_load(q->word), day);
}
