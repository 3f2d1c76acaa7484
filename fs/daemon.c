/* daemon: fork first, report the mount's outcome to the waiting parent. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int ready_fd = -1;

int daemon_fork(void)
{
	int fds[2];
	pid_t pid;
	char status = 1;
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	if (pid > 0) {
		close(fds[1]);
		do
			n = read(fds[0], &status, 1);
		while (n < 0 && errno == EINTR);
		/* The child's exit code; no byte: it died before it could
		 * say. */
		_exit(n == 1 ? status : 1);
	}
	close(fds[0]);
	ready_fd = fds[1];
	setsid();
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

void daemon_ready(int status)
{
	char byte = (char)status;

	if (ready_fd < 0)
		return;
	while (write(ready_fd, &byte, 1) < 0 && errno == EINTR)
		;
	close(ready_fd);
	ready_fd = -1;
	if (status == 0) {
		detach_stdio();
		if (chdir("/"))
			return;
	}
}
