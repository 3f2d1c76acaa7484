/*
 * daemon: going to the background so that `govfs` returns only once the
 * mount is live, or with the reason it could not be.  Unlike
 * fuse_daemonize(), the fork comes first, so that every thread (audit
 * writer, block cache, refresher) starts in the process that serves.
 */
#ifndef GOVFS_DAEMON_H
#define GOVFS_DAEMON_H

/*
 * Fork.  The parent waits for the child's daemon_ready() and exits with the
 * status it gives (1 if the child dies first); only the child returns, 0,
 * in a new session.  -errno if the fork fails.
 */
int daemon_fork(void) __attribute__((warn_unused_result));

/*
 * Tell the waiting parent the outcome (0: serving).  On 0, stdin, stdout
 * and stderr go to /dev/null and the working directory to /.  Does nothing
 * when there is no parent waiting (foreground).
 */
void daemon_ready(int status);

#endif
