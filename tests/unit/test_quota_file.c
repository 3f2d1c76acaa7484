/*
 * test_quota_file: the daily byte counter's file: created private under
 * HOME/quota, kept across opens, removed by quota_remove, and never opened,
 * created or removed anywhere else, whatever the agreement id holds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "scratch.h"

#include "home.h"
#include "quota.h"

/* A scratch directory holding home/ and a bystander file beside it. */
struct fixture {
	char dir[64];
	char home[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-quota.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
	if (home_create(f->home)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = scratch_remove(f->dir);

	free(f);
	return rc;
}

/* Entries in dir, "." and ".." left out. */
static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_counter_is_private_and_kept(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];
	struct quota *q;
	struct stat st;

	assert_int_equal(quota_open(f->home, "agr-1", &q), 0);
	assert_int_equal(quota_take(q, 100, 1000, 300), 300);
	quota_close(q);
	snprintf(path, sizeof(path), "%s/%s/agr-1", f->home, HOME_QUOTA_DIR);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* A restarted daemon goes on counting the same day. */
	assert_int_equal(quota_open(f->home, "agr-1", &q), 0);
	assert_int_equal(quota_take(q, 100, 1000, 800), 700);
	quota_close(q);
	assert_int_equal(quota_remove(f->home, "agr-1"), 0);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(quota_remove(f->home, "agr-1"), 0);
}

static void test_hostile_ids_name_no_file(void **state)
{
	static const char *const ids[] = {
	    "../bystander",
	    "../../etc/passwd",
	    "a/b",
	    "..",
	    ".",
	    "",
	    "-x",
	    "Agr",
	    "agr 1",
	    "agr\n1",
	    "\xef\xbd\x81gr", /* fullwidth a */
	    "a2345678901234567890123456789012345678901234567890123456789012345",
	};
	struct fixture *f = *state;
	char quota_dir[PATH_MAX], bystander[PATH_MAX];
	struct quota *q;
	struct stat st;
	int fd;

	snprintf(bystander, sizeof(bystander), "%s/bystander", f->home);
	fd = open(bystander, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdef", 16), 16);
	close(fd);
	snprintf(quota_dir, sizeof(quota_dir), "%s/%s", f->home,
		 HOME_QUOTA_DIR);
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		q = NULL;
		assert_int_equal(quota_open(f->home, ids[i], &q), -EINVAL);
		assert_null(q);
		assert_int_equal(quota_remove(f->home, ids[i]), -EINVAL);
	}
	assert_int_equal(entries(quota_dir), 0);
	/* Neither truncated to a counter's 8 bytes nor removed. */
	assert_int_equal(stat(bystander, &st), 0);
	assert_int_equal(st.st_size, 16);
	/* The longest valid id (64 bytes) is a file name like any other. */
	assert_int_equal(strlen(ids[11] + 1), 64);
	assert_int_equal(quota_open(f->home, ids[11] + 1, &q), 0);
	quota_close(q);
	assert_int_equal(entries(quota_dir), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_counter_is_private_and_kept,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_ids_name_no_file,
					    setup, teardown),
	};

	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
