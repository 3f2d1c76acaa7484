/*
 * control: a daemon's control socket and govfsctl's side of it.  The
 * listening thread answers one connection at a time: requests are rare
 * (an admin's command), and answering a cut in order is what the admin
 * waits for anyway.
 */
#include "control.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "home.h"

/* Where real-time scheduling is refused: ahead, but fair. */
#define AHEAD_NICE -15

/* How long a connected peer may take to send its request line. */
#define REQUEST_TIMEOUT_MS 2000

struct control {
	int dirfd; /* HOME/run, O_PATH */
	int listen_fd;
	int stop_fd; /* eventfd: the thread stops when it is readable */
	char path[PATH_MAX];
	char name[32];
	control_fn fn;
	void *ctx;
	pthread_t thread;
};

/* The address of NAME inside the directory open as dirfd. */
static int address_at(int dirfd, const char *name, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (snprintf(sun->sun_path, sizeof(sun->sun_path),
		     "/proc/self/fd/%d/%s", dirfd,
		     name) >= (int)sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Split a socket path into its directory (opened O_PATH) and name. */
static int open_parent(const char *path, int *dirfd, const char **name)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len;

	if (!slash || !slash[1])
		return -EINVAL;
	len = (size_t)(slash - path);
	if (len >= sizeof(dir))
		return -ENAMETOOLONG;
	memcpy(dir, path, len);
	dir[len] = 0;
	*dirfd = open(len ? dir : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dirfd < 0)
		return -errno;
	*name = slash + 1;
	return 0;
}

/* Only the daemon's own user and root may talk to it. */
static bool peer_trusted(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* Read one line (at most max-1 bytes) within timeout_ms; 0 or -errno. */
static int read_line(int fd, char *line, size_t max, int timeout_ms)
{
	size_t len = 0;

	while (len + 1 < max) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = read(fd, line + len, max - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		len += (size_t)n;
		line[len] = 0;
		if (memchr(line, '\n', len)) {
			*strchr(line, '\n') = 0;
			return 0;
		}
	}
	return -EMSGSIZE;
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = send(fd, c, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static void answer(struct control *c, int fd)
{
	char line[CONTROL_LINE_MAX];
	struct buf reply = {0};

	if (!peer_trusted(fd) ||
	    read_line(fd, line, sizeof(line), REQUEST_TIMEOUT_MS))
		return;
	c->fn(c->ctx, line, &reply);
	if (!buf_append(&reply, "\n", 1))
		(void)write_all(fd, reply.data, reply.len);
	buf_release(&reply);
}

void control_run_ahead(struct control_sched *was)
{
	struct sched_param rt = {.sched_priority =
				     sched_get_priority_min(SCHED_FIFO)};
	struct sched_param param;
	pid_t tid = gettid();

	if (was) {
		pthread_getschedparam(pthread_self(), &was->policy, &param);
		was->priority = param.sched_priority;
		errno = 0;
		was->nice = getpriority(PRIO_PROCESS, (id_t)tid);
	}
	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt) &&
	    setpriority(PRIO_PROCESS, (id_t)tid, AHEAD_NICE))
		errno = 0;
}

void control_run_as_before(const struct control_sched *was)
{
	struct sched_param param = {.sched_priority = was->priority};

	if (pthread_setschedparam(pthread_self(), was->policy, &param))
		errno = 0;
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), was->nice))
		errno = 0;
}

static void *control_main(void *arg)
{
	struct control *c = arg;

	control_run_ahead(NULL);
	for (;;) {
		struct pollfd p[2] = {{.fd = c->listen_fd, .events = POLLIN},
				      {.fd = c->stop_fd, .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		answer(c, fd);
		close(fd);
	}
	return NULL;
}

static int listen_at(struct control *c)
{
	struct sockaddr_un sun;
	int rc = address_at(c->dirfd, c->name, &sun);

	if (rc)
		return rc;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		return -errno;
	/* A socket left by a daemon with our pid that died is stale. */
	unlinkat(c->dirfd, c->name, 0);
	if (bind(c->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    listen(c->listen_fd, 16))
		return -errno;
	return 0;
}

int control_start(const char *home, control_fn fn, void *ctx,
		  struct control **out)
{
	struct control *c = calloc(1, sizeof(*c));
	char dir[PATH_MAX];
	int rc;

	if (!c)
		return -ENOMEM;
	c->listen_fd = c->stop_fd = -1;
	c->fn = fn;
	c->ctx = ctx;
	snprintf(c->name, sizeof(c->name), "%ld.sock", (long)getpid());
	snprintf(dir, sizeof(dir), "%s/%s", home, HOME_RUN_DIR);
	rc = home_subdir(home, HOME_RUN_DIR);
	if (!rc && snprintf(c->path, sizeof(c->path), "%s/%s", dir, c->name) >=
		       (int)sizeof(c->path))
		rc = -ENAMETOOLONG;
	c->dirfd = rc ? -1 : open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (!rc && c->dirfd < 0)
		rc = -errno;
	if (!rc)
		rc = listen_at(c);
	if (!rc) {
		c->stop_fd = eventfd(0, EFD_CLOEXEC);
		rc = c->stop_fd < 0 ? -errno : 0;
	}
	if (!rc)
		rc = -pthread_create(&c->thread, NULL, control_main, c);
	if (rc) {
		if (c->listen_fd >= 0)
			unlinkat(c->dirfd, c->name, 0);
		c->thread = 0;
		control_stop(c);
		return rc;
	}
	*out = c;
	return 0;
}

const char *control_path(const struct control *c)
{
	return c->path;
}

void control_stop(struct control *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (c->thread) {
		if (write(c->stop_fd, &one, sizeof(one)) == sizeof(one))
			pthread_join(c->thread, NULL);
		unlinkat(c->dirfd, c->name, 0);
	}
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c);
}

/* Connect to path and send the request; the socket fd, or -errno. */
static int send_request(const char *path, const char *request)
{
	struct sockaddr_un sun;
	const char *name;
	int dirfd, fd, rc;

	rc = open_parent(path, &dirfd, &name);
	if (rc)
		return rc;
	rc = address_at(dirfd, name, &sun);
	/* Non-blocking: a daemon whose backlog is full (stuck) refuses at
	 * once (EAGAIN) rather than hold the command up. */
	fd =
	    rc ? -1
	       : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (!rc && fd < 0)
		rc = -errno;
	if (!rc && connect(fd, (struct sockaddr *)&sun, sizeof(sun)))
		rc = -errno;
	if (!rc)
		rc = write_all(fd, request, strlen(request));
	if (!rc)
		rc = write_all(fd, "\n", 1);
	close(dirfd);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return fd;
}

const char *control_socket_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

bool control_socket_gone(int rc)
{
	return rc == -ECONNREFUSED || rc == -ENOENT;
}

/* Milliseconds since some fixed point, for timeouts. */
static int64_t elapsed_ms(void)
{
	return clock_elapsed_ns() / 1000000;
}

void control_call_all(struct control_call *calls, size_t n, const char *request,
		      int timeout_ms)
{
	int64_t deadline = elapsed_ms() + timeout_ms;
	int *fds = calloc(n ? n : 1, sizeof(*fds));

	for (size_t i = 0; i < n; i++) {
		calls[i].reply[0] = 0;
		calls[i].rc =
		    fds ? send_request(calls[i].socket, request) : -ENOMEM;
		if (fds)
			fds[i] = calls[i].rc;
		if (calls[i].rc > 0)
			calls[i].rc = -EINPROGRESS;
	}
	/* The replies come in parallel: each daemon works on its own. */
	for (size_t i = 0; fds && i < n; i++) {
		int64_t left = deadline - elapsed_ms();

		if (fds[i] < 0)
			continue;
		calls[i].rc =
		    read_line(fds[i], calls[i].reply, sizeof(calls[i].reply),
			      left > 0 ? (int)left : 0);
		close(fds[i]);
	}
	free(fds);
}

struct control_call *control_call_mounts(const struct mount_record *m, size_t n,
					 const char *request, int timeout_ms)
{
	struct control_call *calls = calloc(n ? n : 1, sizeof(*calls));

	if (!calls)
		return NULL;
	for (size_t i = 0; i < n; i++)
		calls[i].socket = m[i].socket;
	control_call_all(calls, n, request, timeout_ms);
	return calls;
}

bool control_is_socket_name(const char *name)
{
	size_t len = strlen(name);

	return len > 5 && !strcmp(name + len - 5, ".sock");
}

/* The sockets in dir, as dir/NAME: an array of *n, or NULL. */
static char **list_sockets(const char *dir, size_t *n)
{
	DIR *d = opendir(dir);
	char **paths = NULL, **grown;
	struct dirent *e;

	*n = 0;
	while (d && (e = readdir(d))) {
		if (!control_is_socket_name(e->d_name))
			continue;
		grown = realloc(paths, (*n + 1) * sizeof(*paths));
		if (!grown)
			break;
		paths = grown;
		if (asprintf(&paths[*n], "%s/%s", dir, e->d_name) < 0)
			break;
		(*n)++;
	}
	if (d)
		closedir(d);
	return paths;
}

struct control_call *control_calls_to(char *const *paths, size_t n)
{
	size_t bytes = n * sizeof(struct control_call), at;
	struct control_call *calls;

	for (size_t i = 0; i < n; i++)
		bytes += strlen(paths[i]) + 1;
	calls = calloc(1, bytes);
	at = n * sizeof(struct control_call);
	for (size_t i = 0; calls && i < n; i++) {
		char *copy = (char *)calls + at;

		strcpy(copy, paths[i]);
		calls[i].socket = copy;
		at += strlen(copy) + 1;
	}
	return calls;
}

struct control_call *control_call_home(const char *home, const char *request,
				       int timeout_ms, size_t *n)
{
	char dir[PATH_MAX];
	char **paths = NULL;
	struct control_call *calls = NULL;

	*n = 0;
	if (snprintf(dir, sizeof(dir), "%s/%s", home, HOME_RUN_DIR) <
	    (int)sizeof(dir))
		paths = list_sockets(dir, n);
	if (*n)
		calls = control_calls_to(paths, *n);
	for (size_t i = 0; i < *n; i++)
		free(paths[i]);
	free(paths);
	if (!calls) {
		*n = 0;
		return NULL;
	}
	control_call_all(calls, *n, request, timeout_ms);
	return calls;
}
