/*
 * test_home: the layout of a home (home_create), the checks that it is
 * private (home_check: each path, symbolic links, each reason with the mode
 * or owner at fault), the admin lock held
 * across processes (home_lock), the clean-up of leftovers (leftovers_remove)
 * and the identity written into the catalog (admin_identity).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
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

#include "catalog.h"
#include "home.h"
#include "leftovers.h"

/* A scratch directory; home is a path inside it, not yet created. */
struct fixture {
	char dir[64];
	char home[96];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/govfs-test-home.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->home, sizeof(f->home), "%s/home", f->dir);
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

static void path_in(const struct fixture *f, const char *sub, char *out,
		    size_t len)
{
	snprintf(out, len, "%s/%s", f->home, sub);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The home and both its folders are directories of exactly 0700. */
static void expect_layout(const struct fixture *f)
{
	static const char *const subs[] = {"", HOME_STORE_DIR, HOME_TMP_DIR};
	char path[PATH_MAX];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s%s%s", f->home,
			 *subs[i] ? "/" : "", subs[i]);
		assert_true(is_dir(path));
		assert_int_equal(mode_of(path), 0700);
	}
}

static void touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);

	assert_true(fd >= 0);
	close(fd);
}

/* A complete, private home: layout and an empty catalog. */
static void make_home(const struct fixture *f)
{
	struct catalog *cat;

	assert_int_equal(home_create(f->home), 0);
	assert_int_equal(catalog_create(f->home, &cat), 0);
	catalog_close(cat);
}

static void test_create_new(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(home_create(f->home), 0);
	expect_layout(f);
}

static void test_check_new_creates_nothing(void **state)
{
	struct fixture *f = *state;
	char sub[160];
	int fd;

	assert_int_equal(home_check_new(f->home), 0);
	assert_int_equal(access(f->home, F_OK), -1);
	assert_int_equal(mkdir(f->home, 0700), 0);
	assert_int_equal(home_check_new(f->home), 0);
	path_in(f, "x", sub, sizeof(sub));
	fd = open(sub, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(home_check_new(f->home), -EEXIST);
	assert_int_equal(home_check_new(sub), -ENOTDIR);
	/* Nothing there, and no parent to make it in. */
	path_in(f, "x/y/home", sub, sizeof(sub));
	assert_int_equal(home_check_new(sub), -ENOTDIR);
	path_in(f, "none/home", sub, sizeof(sub));
	assert_int_equal(home_check_new(sub), -ENOENT);
}

static void test_create_modes_under_umask_0(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(0);
	int rc;

	/* Under umask 0 nothing masks a wider mode: 0700 must be asked. */
	rc = home_create(f->home);
	umask(old);
	assert_int_equal(rc, 0);
	expect_layout(f);
}

static void test_create_in_empty_existing_dir(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mkdir(f->home, 0755), 0);
	assert_int_equal(chmod(f->home, 0755), 0);
	/* Tightened to 0700, and filled. */
	assert_int_equal(home_create(f->home), 0);
	expect_layout(f);
}

static void test_create_refuses_non_empty_dir(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	assert_int_equal(mkdir(f->home, 0755), 0);
	assert_int_equal(chmod(f->home, 0755), 0);
	path_in(f, ".profile", path, sizeof(path));
	touch(path);
	assert_int_equal(home_create(f->home), -EEXIST);
	/* Left exactly as it was. */
	assert_int_equal(mode_of(f->home), 0755);
	path_in(f, HOME_STORE_DIR, path, sizeof(path));
	assert_false(exists(path));
}

static void test_create_refuses_existing_home(void **state)
{
	struct fixture *f = *state;

	make_home(f);
	assert_int_equal(home_create(f->home), -EEXIST);
}

static void test_create_missing_parent(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/no/home", f->dir);
	assert_int_equal(home_create(path), -ENOENT);
}

/* Run home_check and compare its verdict, path and reason. */
static void assert_check(const struct fixture *f, int want_rc,
			 const char *want_sub, const char *want_why)
{
	char pathbuf[PATH_MAX], want_path[PATH_MAX], why[256] = "";

	assert_int_equal(
	    home_check(f->home, pathbuf, sizeof(pathbuf), why, sizeof(why)),
	    want_rc);
	if (!want_rc)
		return;
	if (*want_sub)
		path_in(f, want_sub, want_path, sizeof(want_path));
	else
		snprintf(want_path, sizeof(want_path), "%s", f->home);
	assert_string_equal(pathbuf, want_path);
	assert_string_equal(why, want_why);
}

/* The reason home_check gives for a path of the mode. */
static const char *mode_why(mode_t mode, bool dir, char *buf, size_t len)
{
	snprintf(buf, len, "mode %04o: open to group or others (want %s)",
		 (unsigned)mode, dir ? "0700" : "0600");
	return buf;
}

static void test_check_accepts_private_home(void **state)
{
	make_home(*state);
	assert_check(*state, 0, NULL, NULL);
}

static void test_check_missing(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	assert_check(f, -ENOENT, "", strerror(ENOENT));
	make_home(f);
	path_in(f, "catalog.db", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_check(f, -ENOENT, "catalog.db", strerror(ENOENT));
	path_in(f, HOME_TMP_DIR, path, sizeof(path));
	assert_int_equal(rmdir(path), 0);
	assert_check(f, -ENOENT, HOME_TMP_DIR, strerror(ENOENT));
	path_in(f, HOME_STORE_DIR, path, sizeof(path));
	assert_int_equal(rmdir(path), 0);
	assert_check(f, -ENOENT, HOME_STORE_DIR, strerror(ENOENT));
}

static void test_check_not_a_dir(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	touch(f->home);
	assert_check(f, -ENOTDIR, "", "not a directory");
	assert_int_equal(unlink(f->home), 0);

	make_home(f);
	path_in(f, HOME_STORE_DIR, path, sizeof(path));
	assert_int_equal(rmdir(path), 0);
	touch(path);
	assert_check(f, -ENOTDIR, HOME_STORE_DIR, "not a directory");
}

static void test_check_refuses_symlinked_home(void **state)
{
	struct fixture *f = *state;
	char real[PATH_MAX];

	/* A link could be swapped for another home between check and use. */
	snprintf(real, sizeof(real), "%s/real", f->dir);
	assert_int_equal(home_create(real), 0);
	assert_int_equal(symlink(real, f->home), 0);
	assert_check(f, -ELOOP, "",
		     "a symbolic link (refused: want a directory)");
}

/* Replace sub of a good home by a link to a private copy: refused. */
static void expect_link_refused(const struct fixture *f, const char *sub,
				bool dir)
{
	char path[PATH_MAX], target[PATH_MAX], why[128];

	path_in(f, sub, path, sizeof(path));
	snprintf(target, sizeof(target), "%s/elsewhere", f->dir);
	if (dir)
		assert_int_equal(mkdir(target, 0700), 0);
	else
		touch(target);
	if (exists(path))
		assert_int_equal(dir ? rmdir(path) : unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	snprintf(why, sizeof(why), "a symbolic link (refused: want a %s)",
		 dir ? "directory" : "regular file");
	assert_check(f, -ELOOP, sub, why);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(target, path), 0);
	assert_check(f, 0, NULL, NULL);
}

static void test_check_refuses_symlinks_inside(void **state)
{
	static const char *const files[] = {
	    "catalog.db",   "catalog.db-wal", "catalog.db-shm", "audit.db",
	    "audit.db-wal", "audit.db-shm",   "audit.key",	"lock"};
	static const char *const dirs[] = {HOME_STORE_DIR, HOME_TMP_DIR,
					   HOME_RUN_DIR, HOME_QUOTA_DIR};
	struct fixture *f = *state;

	make_home(f);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		expect_link_refused(f, dirs[i], true);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		expect_link_refused(f, files[i], false);
}

static void test_check_catalog_not_a_file(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	assert_int_equal(home_create(f->home), 0);
	path_in(f, "catalog.db", path, sizeof(path));
	assert_int_equal(mkdir(path, 0700), 0);
	assert_check(f, -ENOTDIR, "catalog.db", "not a regular file");
}

/* Open one path of a good home to group or others: refused, named. */
static void expect_mode_refused(const struct fixture *f, const char *sub,
				mode_t mode)
{
	char path[PATH_MAX], why[128];
	mode_t good;

	if (*sub)
		path_in(f, sub, path, sizeof(path));
	else
		snprintf(path, sizeof(path), "%s", f->home);
	good = mode_of(path);
	assert_int_equal(chmod(path, mode), 0);
	assert_check(f, -EPERM, sub,
		     mode_why(mode, is_dir(path), why, sizeof(why)));
	assert_int_equal(chmod(path, good), 0);
	assert_check(f, 0, NULL, NULL);
}

static void test_check_group_and_other_bits(void **state)
{
	struct fixture *f = *state;

	make_home(f);
	expect_mode_refused(f, "", 0750);
	expect_mode_refused(f, "", 0701);
	expect_mode_refused(f, HOME_STORE_DIR, 0710);
	expect_mode_refused(f, HOME_STORE_DIR, 0705);
	expect_mode_refused(f, HOME_TMP_DIR, 0770);
	expect_mode_refused(f, HOME_TMP_DIR, 0702);
	expect_mode_refused(f, HOME_RUN_DIR, 0755);
	expect_mode_refused(f, HOME_QUOTA_DIR, 0711);
	expect_mode_refused(f, "catalog.db", 0640);
	expect_mode_refused(f, "catalog.db", 0604);
	expect_mode_refused(f, "catalog.db", 0620);
}

/* The audit log, its key, the databases' logs and the lock, once there. */
static void test_check_optional_files(void **state)
{
	static const char *const files[] = {
	    "catalog.db-wal", "catalog.db-shm", "audit.db", "audit.db-wal",
	    "audit.db-shm",   "audit.key",	"lock"};
	struct fixture *f = *state;
	char path[PATH_MAX];

	make_home(f);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		path_in(f, files[i], path, sizeof(path));
		if (!exists(path))
			touch(path);
		expect_mode_refused(f, files[i], 0644);
		expect_mode_refused(f, files[i], 0660);
		expect_mode_refused(f, files[i], 0606);
		assert_int_equal(unlink(path), 0);
		assert_int_equal(mkdir(path, 0700), 0);
		assert_check(f, -ENOTDIR, files[i], "not a regular file");
		assert_int_equal(rmdir(path), 0);
	}
	/* Absent, they are no fault: the home is as init makes it. */
	assert_check(f, 0, NULL, NULL);
}

static void test_check_owner(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	/* Only root can give a file away to make the case. */
	if (geteuid() != 0) {
		skip();
		return;
	}
	make_home(f);
	path_in(f, "catalog.db", path, sizeof(path));
	assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
	assert_check(f, -EPERM, "catalog.db",
		     "owned by uid 65534, not by uid 0 (us)");
	assert_int_equal(chown(path, geteuid(), (gid_t)-1), 0);
	assert_int_equal(chown(f->home, 65534, (gid_t)-1), 0);
	assert_check(f, -EPERM, "", "owned by uid 65534, not by uid 0 (us)");
}

/* Read one byte from fd within ms milliseconds: 1 if one came, else 0. */
static int byte_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(fd, &c, 1) == 1;
}

static void test_lock_excludes_other_process(void **state)
{
	struct fixture *f = *state;
	int pipefd[2], fd, status;
	pid_t pid;

	make_home(f);
	fd = home_lock(f->home);
	assert_true(fd >= 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int mine;

		/* The inherited fd shares our parent's lock: let it go. */
		close(fd);
		close(pipefd[0]);
		mine = home_lock(f->home);
		if (mine < 0 || write(pipefd[1], "L", 1) != 1)
			_exit(1);
		home_unlock(mine);
		_exit(0);
	}
	close(pipefd[1]);
	/* The child must still be waiting while we hold the lock. */
	assert_int_equal(byte_within(pipefd[0], 300), 0);
	home_unlock(fd);
	assert_int_equal(byte_within(pipefd[0], 10000), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(pipefd[0]);
	/* Released by the child: we take it again at once. */
	fd = home_lock(f->home);
	assert_true(fd >= 0);
	home_unlock(fd);
}

static void test_lock_released_when_holder_dies(void **state)
{
	struct fixture *f = *state;
	int pipefd[2], fd, status;
	pid_t pid;

	make_home(f);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		if (home_lock(f->home) < 0 || write(pipefd[1], "L", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(pipefd[1]);
	assert_int_equal(byte_within(pipefd[0], 10000), 1);
	close(pipefd[0]);
	/* A govfsctl killed mid-change must not wedge the next one. */
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	fd = home_lock(f->home);
	assert_true(fd >= 0);
	home_unlock(fd);
}

/* A lock file swapped for a link must not make us create its target. */
static void test_lock_refuses_symlink(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], target[PATH_MAX];

	make_home(f);
	path_in(f, "lock", path, sizeof(path));
	snprintf(target, sizeof(target), "%s/planted", f->dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(home_lock(f->home), -ELOOP);
	assert_false(exists(target));
}

static void test_lock_missing_home(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(home_lock(f->home), -ENOENT);
	home_unlock(-1);
}

/* Add a version referencing store file rel (no real store behind it). */
static void add_reference(struct catalog *cat, const char *id, const char *rel)
{
	struct dataset_version v = {0};

	v.dataset = (char *)id;
	v.ingested_ns = 1;
	v.ingested_by = (char *)"uid 0 (root)";
	v.source_sha256 = (char *)"00";
	v.schema_json = (char *)"{\"columns\":[]}";
	v.store_file = (char *)rel;
	v.store.nblocks = 1;
	v.store.nrows = 1;
	v.store.file_bytes = 1;
	memset(v.store.file_id, (int)strlen(rel), STORE_FILE_ID_LEN);
	assert_int_equal(catalog_dataset_add_version(cat, &v), 0);
}

static void test_cleanup_removes_leftovers_only(void **state)
{
	static const char *const kept[] = {"store/a.gvs", "store/b.gvs",
					   "store/c.gvs"};
	static const char *const gone[] = {"store/orphan.gvs", "store/a.gvs.1",
					   "store/b",	       "tmp/0123.gvs",
					   "tmp/half-written", "tmp/x.gvs"};
	struct fixture *f = *state;
	struct catalog *cat;
	char path[PATH_MAX];
	size_t i;

	assert_int_equal(home_create(f->home), 0);
	assert_int_equal(catalog_create(f->home, &cat), 0);
	add_reference(cat, "d", kept[0]);
	add_reference(cat, "d", kept[1]);
	add_reference(cat, "e", kept[2]);
	for (i = 0; i < 3; i++) {
		path_in(f, kept[i], path, sizeof(path));
		touch(path);
	}
	for (i = 0; i < 6; i++) {
		path_in(f, gone[i], path, sizeof(path));
		touch(path);
	}
	assert_int_equal(leftovers_remove(f->home, cat), 6);
	for (i = 0; i < 3; i++) {
		path_in(f, kept[i], path, sizeof(path));
		assert_true(exists(path));
	}
	for (i = 0; i < 6; i++) {
		path_in(f, gone[i], path, sizeof(path));
		assert_false(exists(path));
	}
	/* The catalog and the home's other files are not leftovers. */
	path_in(f, "catalog.db", path, sizeof(path));
	assert_true(exists(path));
	path_in(f, HOME_STORE_DIR, path, sizeof(path));
	assert_true(exists(path));
	path_in(f, HOME_TMP_DIR, path, sizeof(path));
	assert_true(exists(path));
	/* Nothing left to do the second time. */
	assert_int_equal(leftovers_remove(f->home, cat), 0);
	catalog_close(cat);
}

static void test_cleanup_empty_home(void **state)
{
	struct fixture *f = *state;
	struct catalog *cat;

	assert_int_equal(home_create(f->home), 0);
	assert_int_equal(catalog_create(f->home, &cat), 0);
	assert_int_equal(leftovers_remove(f->home, cat), 0);
	catalog_close(cat);
}

static void test_cleanup_missing_tmp(void **state)
{
	struct fixture *f = *state;
	struct catalog *cat;
	char path[PATH_MAX];

	assert_int_equal(home_create(f->home), 0);
	assert_int_equal(catalog_create(f->home, &cat), 0);
	path_in(f, HOME_TMP_DIR, path, sizeof(path));
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(leftovers_remove(f->home, cat), -ENOENT);
	catalog_close(cat);
}

/* The name of a uid that is not ours, for SUDO_UID to point at. */
static uid_t other_uid(char *name, size_t len)
{
	struct passwd *pw;

	setpwent();
	while ((pw = getpwent())) {
		if (pw->pw_uid != getuid()) {
			snprintf(name, len, "%s", pw->pw_name);
			endpwent();
			return pw->pw_uid;
		}
	}
	endpwent();
	fail_msg("no second user in the passwd database");
	return 0;
}

static void test_identity_sudo_uid_wins(void **state)
{
	char name[256], want[300], got[300], value[32];
	uid_t uid = other_uid(name, sizeof(name));

	(void)state;
	snprintf(value, sizeof(value), "%u", (unsigned)uid);
	assert_int_equal(setenv("SUDO_UID", value, 1), 0);
	admin_identity(got, sizeof(got));
	unsetenv("SUDO_UID");
	snprintf(want, sizeof(want), "uid %u (%s)", (unsigned)uid, name);
	assert_string_equal(got, want);
}

static void test_identity_unknown_uid_has_no_name(void **state)
{
	char got[64];
	uid_t uid = 3999999;

	(void)state;
	while (getpwuid(uid))
		uid++;
	snprintf(got, sizeof(got), "%u", (unsigned)uid);
	assert_int_equal(setenv("SUDO_UID", got, 1), 0);
	admin_identity(got, sizeof(got));
	unsetenv("SUDO_UID");
	assert_int_equal(strncmp(got, "uid ", 4), 0);
	assert_int_equal(strtoul(got + 4, NULL, 10), uid);
	assert_null(strchr(got, '('));
}

static void test_identity_without_sudo(void **state)
{
	char got[300], want[300];
	struct passwd *pw;
	unsigned long uid;
	char *end;

	(void)state;
	unsetenv("SUDO_UID");
	admin_identity(got, sizeof(got));
	/* The login uid or, outside a login session, ours: either way a
	 * uid followed by the name the passwd database gives it. */
	assert_int_equal(strncmp(got, "uid ", 4), 0);
	uid = strtoul(got + 4, &end, 10);
	assert_true(end > got + 4);
	pw = getpwuid((uid_t)uid);
	if (pw)
		snprintf(want, sizeof(want), "uid %lu (%s)", uid, pw->pw_name);
	else
		snprintf(want, sizeof(want), "uid %lu", uid);
	assert_string_equal(got, want);
}

static void test_identity_empty_sudo_uid_is_ignored(void **state)
{
	char with_empty[300], without[300];

	(void)state;
	unsetenv("SUDO_UID");
	admin_identity(without, sizeof(without));
	assert_int_equal(setenv("SUDO_UID", "", 1), 0);
	admin_identity(with_empty, sizeof(with_empty));
	unsetenv("SUDO_UID");
	assert_string_equal(with_empty, without);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_create_new),
	    T(test_check_new_creates_nothing),
	    T(test_create_modes_under_umask_0),
	    T(test_create_in_empty_existing_dir),
	    T(test_create_refuses_non_empty_dir),
	    T(test_create_refuses_existing_home),
	    T(test_create_missing_parent),
	    T(test_check_accepts_private_home),
	    T(test_check_missing),
	    T(test_check_not_a_dir),
	    T(test_check_refuses_symlinked_home),
	    T(test_check_refuses_symlinks_inside),
	    T(test_check_optional_files),
	    T(test_check_catalog_not_a_file),
	    T(test_check_group_and_other_bits),
	    T(test_check_owner),
	    T(test_lock_excludes_other_process),
	    T(test_lock_released_when_holder_dies),
	    T(test_lock_refuses_symlink),
	    T(test_lock_missing_home),
	    T(test_cleanup_removes_leftovers_only),
	    T(test_cleanup_empty_home),
	    T(test_cleanup_missing_tmp),
	    T(test_identity_sudo_uid_wins),
	    T(test_identity_unknown_uid_has_no_name),
	    T(test_identity_without_sudo),
	    T(test_identity_empty_sudo_uid_is_ignored),
	};

	/* As govfsctl runs: files it creates are private from the start. */
	umask(077);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
