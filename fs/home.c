/*
 * home: layout, ownership checks and the admin lock.
 */
#include "home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static bool dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return false;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			empty = false;
			break;
		}
	}
	closedir(d);
	return empty;
}

int home_subdir(const char *home, const char *sub)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", home, sub);
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Whether a directory may be made at path: its parent is a directory we
 * may write; 0 or -errno. */
static int parent_writable(const char *path)
{
	char parent[PATH_MAX];
	char *slash;

	snprintf(parent, sizeof(parent), "%s", path);
	slash = strrchr(parent, '/');
	if (!slash)
		strcpy(parent, ".");
	else if (slash == parent)
		parent[1] = '\0';
	else
		*slash = '\0';
	return access(parent, W_OK | X_OK) ? -errno : 0;
}

int home_check_new(const char *home)
{
	struct stat st;

	if (stat(home, &st))
		return errno == ENOENT ? parent_writable(home) : -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	return dir_is_empty(home) ? 0 : -EEXIST;
}

int home_create(const char *home)
{
	int rc;

	if (mkdir(home, 0700)) {
		if (errno != EEXIST)
			return -errno;
		if (!dir_is_empty(home))
			return -EEXIST;
		if (chmod(home, 0700))
			return -errno;
	}
	rc = home_subdir(home, HOME_STORE_DIR);
	if (!rc)
		rc = home_subdir(home, HOME_TMP_DIR);
	if (!rc)
		rc = home_subdir(home, HOME_RUN_DIR);
	if (!rc)
		rc = home_subdir(home, HOME_QUOTA_DIR);
	return rc;
}

/* One path of the home that must be private to its owner. */
struct home_entry {
	const char *name; /* "" is the home itself */
	bool dir;
	bool required;
};

static const struct home_entry home_entries[] = {
    {"", true, true},
    {HOME_STORE_DIR, true, true},
    {HOME_TMP_DIR, true, true},
    {HOME_RUN_DIR, true, false},
    {HOME_QUOTA_DIR, true, false},
    {"catalog.db", false, true},
    {"catalog.db-wal", false, false},
    {"catalog.db-shm", false, false},
    {"audit.db", false, false},
    {"audit.db-wal", false, false},
    {"audit.db-shm", false, false},
    {"audit.key", false, false},
    {"lock", false, false},
};

/*
 * Check one path: what it is (never a symbolic link: it could be pointed
 * elsewhere between the check and the use), who owns it and its mode.
 */
static int check_private(const char *path, const struct home_entry *e,
			 char *why, size_t len)
{
	const char *want = e->dir ? "directory" : "regular file";
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT && !e->required)
			return 0;
		snprintf(why, len, "%s", strerror(errno));
		return -errno;
	}
	if (S_ISLNK(st.st_mode)) {
		snprintf(why, len, "a symbolic link (refused: want a %s)",
			 want);
		return -ELOOP;
	}
	if (e->dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		snprintf(why, len, "not a %s", want);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, len, "owned by uid %u, not by uid %u (us)",
			 (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & 077) {
		snprintf(why, len,
			 "mode %04o: open to group or others (want %04o)",
			 (unsigned)(st.st_mode & 07777), e->dir ? 0700 : 0600);
		return -EPERM;
	}
	return 0;
}

int home_check(const char *home, char *path, size_t pathlen, char *why,
	       size_t whylen)
{
	const size_t n = sizeof(home_entries) / sizeof(home_entries[0]);
	int rc;

	for (size_t i = 0; i < n; i++) {
		const struct home_entry *e = &home_entries[i];

		snprintf(path, pathlen, "%s%s%s", home, *e->name ? "/" : "",
			 e->name);
		rc = check_private(path, e, why, whylen);
		if (rc)
			return rc;
	}
	return 0;
}

int home_lock(const char *home)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", home);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX)) {
		if (errno != EINTR) {
			int rc = -errno;

			close(fd);
			return rc;
		}
	}
	return fd;
}

void home_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* A uid written in decimal, or -1. */
static long parse_uid(const char *s)
{
	char *end;
	long uid;

	if (!s || !*s)
		return -1;
	errno = 0;
	uid = strtol(s, &end, 10);
	return errno || (*end && *end != '\n') || uid < 0 ? -1 : uid;
}

static long login_uid(void)
{
	long uid = parse_uid(getenv("SUDO_UID"));
	char buf[32] = "";
	FILE *f;

	if (uid >= 0)
		return uid;
	f = fopen("/proc/self/loginuid", "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	uid = parse_uid(buf);
	/* 4294967295 means no login session (a daemon, a container). */
	if (uid < 0 || uid == 4294967295L)
		uid = (long)getuid();
	return uid;
}

long admin_uid(void)
{
	return login_uid();
}

void admin_identity(char *buf, size_t len)
{
	long uid = login_uid();
	struct passwd pw, *res = NULL;
	char pwbuf[1024];

	if (!getpwuid_r((uid_t)uid, &pw, pwbuf, sizeof(pwbuf), &res) && res)
		snprintf(buf, len, "uid %ld (%s)", uid, res->pw_name);
	else
		snprintf(buf, len, "uid %ld", uid);
}
