/*
 * test_quota: the shared daily byte counter.  Takes within a day, the take
 * that reaches the limit cut short, nothing once it is used up; a new day
 * starting from zero; give-backs (never below zero, never into another
 * day); concurrent takes from threads and from processes, each with its
 * own handle, never granting more than the limit in all; two handles of
 * one agreement sharing the count, which outlives them and is gone after
 * quota_remove; days in positive, negative and non-whole-hour offsets
 * around midnight, before 1970 too.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "quota.h"

#define NS INT64_C(1000000000)
#define MIN_NS (60 * NS)
#define HOUR_NS (3600 * NS)
#define DAY_NS (86400 * NS)

/* 2026-11-23T00:00:00+08:00, i.e. 2026-11-22T16:00:00Z. */
#define MIDNIGHT_CST_S INT64_C(1795363200)

struct fixture {
	char home[64];
	char counter[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->home, "/tmp/govfs-test-quota.XXXXXX");
	if (!mkdtemp(f->home)) {
		free(f);
		return -1;
	}
	snprintf(f->counter, sizeof(f->counter), "%s/quota/agr-1", f->home);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = scratch_remove(f->home);

	free(f);
	return rc;
}

static struct quota *open_q(const struct fixture *f, const char *agreement)
{
	struct quota *q = NULL;

	assert_int_equal(quota_open(f->home, agreement, &q), 0);
	assert_non_null(q);
	return q;
}

static void test_open_creates_private_counter(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");
	struct stat st;

	assert_int_equal(stat(f->counter, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 8);
	assert_int_equal(quota_used(q, 100), 0);
	quota_close(q);
	quota_close(NULL);
}

static void test_open_missing_home(void **state)
{
	struct fixture *f = *state;
	char home[160];
	struct quota *q = NULL;

	snprintf(home, sizeof(home), "%s/absent", f->home);
	assert_int_equal(quota_open(home, "agr-1", &q), -ENOENT);
	assert_null(q);
}

static void test_open_long_path(void **state)
{
	struct fixture *f = *state;
	char id[PATH_MAX];
	struct quota *q = NULL;

	/* Longer than any agreement id may be: refused before any path. */
	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = 0;
	assert_int_equal(quota_open(f->home, id, &q), -EINVAL);
	assert_null(q);
	assert_int_equal(quota_remove(f->home, id), -EINVAL);
}

static void test_take_cut_short_then_nothing(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");
	const int64_t day = 20415;

	assert_int_equal(quota_take(q, day, 1000, 300), 300);
	assert_int_equal(quota_used(q, day), 300);
	assert_int_equal(quota_take(q, day, 1000, 0), 0);
	assert_int_equal(quota_used(q, day), 300);
	/* The take that reaches the quota is cut short at it. */
	assert_int_equal(quota_take(q, day, 1000, 800), 700);
	assert_int_equal(quota_used(q, day), 1000);
	assert_int_equal(quota_take(q, day, 1000, 1), 0);
	assert_int_equal(quota_take(q, day, 1000, 65536), 0);
	assert_int_equal(quota_used(q, day), 1000);
	/* A lower limit (a new revision) leaves nothing, and takes none. */
	assert_int_equal(quota_take(q, day, 500, 10), 0);
	assert_int_equal(quota_used(q, day), 1000);
	/* A higher one gives the difference. */
	assert_int_equal(quota_take(q, day, 1500, 10000), 500);
	assert_int_equal(quota_used(q, day), 1500);
	quota_close(q);
}

static void test_exact_fit(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");

	assert_int_equal(quota_take(q, 7, 4096, 4096), 4096);
	assert_int_equal(quota_take(q, 7, 4096, 1), 0);
	assert_int_equal(quota_used(q, 7), 4096);
	quota_close(q);
}

static void test_zero_limit(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");

	assert_int_equal(quota_take(q, 7, 0, 100), 0);
	assert_int_equal(quota_used(q, 7), 0);
	quota_close(q);
}

static void test_huge_limit(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");
	const uint64_t max = (UINT64_C(1) << 44) - 1; /* AGREEMENT_QUOTA_MAX */

	assert_int_equal(quota_take(q, 9, max, max - 1), max - 1);
	assert_int_equal(quota_used(q, 9), max - 1);
	assert_int_equal(quota_take(q, 9, UINT64_MAX, 10), 1);
	assert_int_equal(quota_used(q, 9), max);
	assert_int_equal(quota_take(q, 9, UINT64_MAX, 10), 0);
	/* The day is still the one counted: the bytes did not spill into it. */
	assert_int_equal(quota_used(q, 10), 0);
	assert_int_equal(quota_take(q, 10, 100, 50), 50);
	assert_int_equal(quota_used(q, 10), 50);
	quota_close(q);
}

static void test_new_day_starts_from_zero(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");

	assert_int_equal(quota_take(q, 100, 1000, 5000), 1000);
	assert_int_equal(quota_take(q, 100, 1000, 1), 0);
	assert_int_equal(quota_used(q, 101), 0);
	assert_int_equal(quota_take(q, 101, 1000, 400), 400);
	assert_int_equal(quota_used(q, 101), 400);
	/* The counter holds one day: the day before now reads as nothing. */
	assert_int_equal(quota_used(q, 100), 0);
	/* Days far apart and before 1970 count as well. */
	assert_int_equal(quota_take(q, 5000, 1000, 999), 999);
	assert_int_equal(quota_used(q, 5000), 999);
	assert_int_equal(quota_used(q, 101), 0);
	quota_close(q);
	q = open_q(f, "agr-2");
	assert_int_equal(quota_take(q, -3, 1000, 10), 10);
	assert_int_equal(quota_used(q, -3), 10);
	assert_int_equal(quota_used(q, -2), 0);
	quota_close(q);
}

/*
 * A read that took its day just before midnight while another daemon
 * already counts the next day is charged to the next day: it must not
 * reset the new day's count.
 */
static void test_read_racing_midnight_keeps_new_day(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");

	assert_int_equal(quota_take(q, 20000, 1000, 600), 600);
	assert_int_equal(quota_take(q, 20001, 1000, 900), 900);
	assert_int_equal(quota_take(q, 20000, 1000, 500), 100);
	assert_int_equal(quota_used(q, 20001), 1000);
	assert_int_equal(quota_take(q, 20000, 1000, 1), 0);
	quota_close(q);
}

static void test_give_back(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");

	assert_int_equal(quota_take(q, 50, 1000, 1000), 1000);
	quota_give_back(q, 50, 300);
	assert_int_equal(quota_used(q, 50), 700);
	assert_int_equal(quota_take(q, 50, 1000, 500), 300);
	quota_give_back(q, 50, 0);
	assert_int_equal(quota_used(q, 50), 1000);
	/* Never below zero. */
	quota_give_back(q, 50, 5000);
	assert_int_equal(quota_used(q, 50), 0);
	assert_int_equal(quota_take(q, 50, 1000, 10), 10);
	/* A give-back of a day that has turned changes the new day nothing. */
	assert_int_equal(quota_take(q, 51, 1000, 600), 600);
	quota_give_back(q, 50, 10);
	assert_int_equal(quota_used(q, 51), 600);
	/* Nor does one of a day never counted. */
	quota_give_back(q, 49, 600);
	assert_int_equal(quota_used(q, 51), 600);
	quota_close(q);
}

static void test_two_handles_share(void **state)
{
	struct fixture *f = *state;
	struct quota *a = open_q(f, "agr-1");
	struct quota *b = open_q(f, "agr-1");
	struct quota *other = open_q(f, "agr-2");

	assert_int_equal(quota_take(a, 30, 1000, 600), 600);
	assert_int_equal(quota_used(b, 30), 600);
	assert_int_equal(quota_take(b, 30, 1000, 600), 400);
	assert_int_equal(quota_used(a, 30), 1000);
	assert_int_equal(quota_take(a, 30, 1000, 1), 0);
	quota_give_back(b, 30, 100);
	assert_int_equal(quota_used(a, 30), 900);
	/* Another agreement counts on its own. */
	assert_int_equal(quota_used(other, 30), 0);
	assert_int_equal(quota_take(other, 30, 1000, 1000), 1000);
	assert_int_equal(quota_used(a, 30), 900);
	quota_close(a);
	quota_close(b);
	quota_close(other);

	/* The count outlives every handle (a daemon restart). */
	a = open_q(f, "agr-1");
	assert_int_equal(quota_used(a, 30), 900);
	assert_int_equal(quota_take(a, 30, 1000, 500), 100);
	quota_close(a);
}

static void test_remove(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");
	struct quota *again;
	struct stat st;

	assert_int_equal(quota_take(q, 30, 1000, 700), 700);
	assert_int_equal(quota_remove(f->home, "agr-1"), 0);
	assert_int_equal(stat(f->counter, &st), -1);
	assert_int_equal(errno, ENOENT);
	/* Nothing there: still fine. */
	assert_int_equal(quota_remove(f->home, "agr-1"), 0);
	assert_int_equal(quota_remove(f->home, "agr-never"), 0);
	/* A handle opened before keeps working on what it mapped... */
	assert_int_equal(quota_used(q, 30), 700);
	assert_int_equal(quota_take(q, 30, 1000, 10), 10);
	/* ...but a new counter starts from nothing. */
	again = open_q(f, "agr-1");
	assert_int_equal(quota_used(again, 30), 0);
	quota_close(again);
	quota_close(q);
}

/* A file left shorter than the word (a crash while creating it). */
static void test_short_file_reads_as_zero(void **state)
{
	struct fixture *f = *state;
	struct quota *q = open_q(f, "agr-1");
	FILE *fp;

	quota_close(q);
	assert_int_equal(truncate(f->counter, 0), 0);
	q = open_q(f, "agr-1");
	assert_int_equal(quota_used(q, 30), 0);
	assert_int_equal(quota_take(q, 30, 100, 60), 60);
	quota_close(q);
	fp = fopen(f->counter, "rb");
	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	assert_int_equal(ftell(fp), 8);
	fclose(fp);
}

/* Concurrent takes: threads, each with its own handle. */
#define THREADS 8
#define LIMIT (UINT64_C(3) * 1000 * 1000 + 17)

struct taker {
	struct quota *q;
	int64_t day;
	unsigned seed;
	uint64_t granted;
	uint64_t takes;
	bool over;
};

static void *take_until_empty(void *arg)
{
	struct taker *t = arg;

	for (;;) {
		uint64_t want = (uint64_t)(rand_r(&t->seed) % 4096) + 1;
		uint64_t got = quota_take(t->q, t->day, LIMIT, want);

		if (got > want)
			t->over = true;
		if (!got)
			break;
		t->granted += got;
		t->takes++;
		/* Now and then a failed read gives its bytes back. */
		if (t->takes % 97 == 0) {
			quota_give_back(t->q, t->day, got);
			t->granted -= got;
		}
	}
	return NULL;
}

static void test_concurrent_threads_never_exceed(void **state)
{
	struct fixture *f = *state;
	struct taker t[THREADS];
	pthread_t th[THREADS];
	uint64_t sum = 0;
	struct quota *check;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct taker){.q = open_q(f, "agr-1"),
				      .day = 20000,
				      .seed = (unsigned)i * 7919u + 1};
		assert_int_equal(
		    pthread_create(&th[i], NULL, take_until_empty, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_false(t[i].over);
		sum += t[i].granted;
	}
	/* Every byte granted and not given back is counted, and no more. */
	check = open_q(f, "agr-1");
	assert_int_equal(sum, LIMIT);
	assert_int_equal(quota_used(check, 20000), LIMIT);
	assert_int_equal(quota_take(check, 20000, LIMIT, 1), 0);
	quota_close(check);
	for (int i = 0; i < THREADS; i++)
		quota_close(t[i].q);
}

/* Concurrent takes from processes: each daemon of an agreement. */
#define PROCS 4

static void test_concurrent_processes_never_exceed(void **state)
{
	struct fixture *f = *state;
	int fds[PROCS][2];
	pid_t pids[PROCS];
	uint64_t sum = 0;
	struct quota *check = open_q(f, "agr-1");

	for (int i = 0; i < PROCS; i++) {
		assert_int_equal(pipe(fds[i]), 0);
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (!pids[i]) {
			struct taker t = {.day = 20001,
					  .seed = (unsigned)i * 104729u + 3};
			ssize_t n;

			close(fds[i][0]);
			if (quota_open(f->home, "agr-1", &t.q))
				_exit(3);
			take_until_empty(&t);
			n = write(fds[i][1], &t.granted, sizeof(t.granted));
			_exit(n == sizeof(t.granted) && !t.over ? 0 : 4);
		}
		close(fds[i][1]);
	}
	for (int i = 0; i < PROCS; i++) {
		uint64_t granted = 0;
		int status;

		assert_int_equal(read(fds[i][0], &granted, sizeof(granted)),
				 sizeof(granted));
		close(fds[i][0]);
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
		sum += granted;
	}
	assert_int_equal(sum, LIMIT);
	assert_int_equal(quota_used(check, 20001), LIMIT);
	quota_close(check);
}

/* Threads taking across a day that turns: each day gets its limit. */
static void test_concurrent_day_turn(void **state)
{
	struct fixture *f = *state;
	struct taker t[THREADS];
	pthread_t th[THREADS];
	uint64_t sum = 0;
	struct quota *check;

	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct taker){.q = open_q(f, "agr-1"),
				      .day = 30000,
				      .seed = (unsigned)i + 11};
		assert_int_equal(
		    pthread_create(&th[i], NULL, take_until_empty, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < THREADS; i++) {
		t[i].day = 30001;
		t[i].granted = 0;
		t[i].takes = 0;
		assert_int_equal(
		    pthread_create(&th[i], NULL, take_until_empty, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		sum += t[i].granted;
	}
	check = open_q(f, "agr-1");
	assert_int_equal(sum, LIMIT);
	assert_int_equal(quota_used(check, 30001), LIMIT);
	quota_close(check);
	for (int i = 0; i < THREADS; i++)
		quota_close(t[i].q);
}

/* Days: whole days of the offset, starting at its midnight. */
static void expect_day_bounds(int64_t day, int offset_min)
{
	int64_t start = quota_day_start_ns(day, offset_min);

	assert_int_equal(quota_day(start, offset_min), day);
	assert_int_equal(quota_day(start - 1, offset_min), day - 1);
	assert_int_equal(quota_day(start + DAY_NS - 1, offset_min), day);
	assert_int_equal(quota_day(start + DAY_NS, offset_min), day + 1);
	assert_int_equal(quota_day_start_ns(day + 1, offset_min) - start,
			 DAY_NS);
	/* Midnight in the offset is start shifted by it, UTC-wise. */
	assert_int_equal((start + offset_min * MIN_NS) % DAY_NS, 0);
}

static void test_day_utc(void **state)
{
	(void)state;
	assert_int_equal(quota_day(0, 0), 0);
	assert_int_equal(quota_day(DAY_NS - 1, 0), 0);
	assert_int_equal(quota_day(DAY_NS, 0), 1);
	assert_int_equal(quota_day(-1, 0), -1);
	assert_int_equal(quota_day(-DAY_NS, 0), -1);
	assert_int_equal(quota_day(-DAY_NS - 1, 0), -2);
	assert_int_equal(quota_day_start_ns(0, 0), 0);
	assert_int_equal(quota_day_start_ns(-1, 0), -DAY_NS);
}

static void test_day_positive_offset(void **state)
{
	const int64_t midnight = MIDNIGHT_CST_S * NS;

	(void)state;
	/* 2026-11-23 in +08:00 starts at 2026-11-22T16:00:00Z. */
	assert_int_equal(quota_day(midnight, 480),
			 quota_day(midnight - 1, 480) + 1);
	assert_int_equal(quota_day_start_ns(quota_day(midnight, 480), 480),
			 midnight);
	assert_int_equal(quota_day_start_ns(quota_day(midnight - 1, 480), 480),
			 midnight - DAY_NS);
	/* In UTC the same instant is mid-afternoon of the 22nd. */
	assert_int_equal(quota_day(midnight, 0), quota_day(midnight - 1, 0));
	assert_int_equal(quota_day(midnight, 480), quota_day(midnight, 0) + 1);
	/* The epoch in +08:00 is 08:00 of 1970-01-01: day 0 since 16:00Z. */
	assert_int_equal(quota_day(0, 480), 0);
	assert_int_equal(quota_day(-8 * HOUR_NS, 480), 0);
	assert_int_equal(quota_day(-8 * HOUR_NS - 1, 480), -1);
	assert_int_equal(quota_day(16 * HOUR_NS - 1, 480), 0);
	assert_int_equal(quota_day(16 * HOUR_NS, 480), 1);
	/* +14:00, the largest offset in use. */
	assert_int_equal(quota_day(10 * HOUR_NS - 1, 840), 0);
	assert_int_equal(quota_day(10 * HOUR_NS, 840), 1);
}

static void test_day_negative_offset(void **state)
{
	(void)state;
	/* -05:00: day 0 runs from 05:00Z on 1970-01-01. */
	assert_int_equal(quota_day(5 * HOUR_NS - 1, -300), -1);
	assert_int_equal(quota_day(5 * HOUR_NS, -300), 0);
	assert_int_equal(quota_day(0, -300), -1);
	assert_int_equal(quota_day_start_ns(0, -300), 5 * HOUR_NS);
	/* -12:00. */
	assert_int_equal(quota_day(12 * HOUR_NS - 1, -720), -1);
	assert_int_equal(quota_day(12 * HOUR_NS, -720), 0);
	/* 2026-11-22T00:00:00-05:00 is 05:00Z. */
	assert_int_equal(
	    quota_day((MIDNIGHT_CST_S - 11 * 3600) * NS, -300),
	    quota_day((MIDNIGHT_CST_S - 11 * 3600) * NS - 1, -300) + 1);
}

static void test_day_odd_offsets_and_bounds(void **state)
{
	static const int offsets[] = {0,   60,	 -60, 330,  -330, 345,	-570,
				      480, -480, 840, -720, 1439, -1439};
	static const int64_t days[] = {-40000, -1, 0, 1, 20414, 20415, 60000};

	(void)state;
	for (size_t i = 0; i < sizeof(offsets) / sizeof(offsets[0]); i++)
		for (size_t j = 0; j < sizeof(days) / sizeof(days[0]); j++)
			expect_day_bounds(days[j], offsets[i]);
	/* +05:30: midnight is 18:30Z the day before. */
	assert_int_equal(quota_day_start_ns(1, 330),
			 DAY_NS - 5 * HOUR_NS - 30 * MIN_NS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_open_creates_private_counter),
	    T(test_open_missing_home),
	    T(test_open_long_path),
	    T(test_take_cut_short_then_nothing),
	    T(test_exact_fit),
	    T(test_zero_limit),
	    T(test_huge_limit),
	    T(test_new_day_starts_from_zero),
	    T(test_read_racing_midnight_keeps_new_day),
	    T(test_give_back),
	    T(test_two_handles_share),
	    T(test_remove),
	    T(test_short_file_reads_as_zero),
	    T(test_concurrent_threads_never_exceed),
	    T(test_concurrent_processes_never_exceed),
	    T(test_concurrent_day_turn),
	    cmocka_unit_test(test_day_utc),
	    cmocka_unit_test(test_day_positive_offset),
	    cmocka_unit_test(test_day_negative_offset),
	    cmocka_unit_test(test_day_odd_offsets_and_bounds),
	};

	/* As govfs runs. */
	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
