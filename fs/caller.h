/*
 * caller: who is behind a FUSE request, for the audit log.  A request
 * carries the calling thread's id; the log names the process (its thread
 * group) and that process's name, read once from /proc.
 */
#ifndef GOVFS_CALLER_H
#define GOVFS_CALLER_H

#include <stdint.h>
#include <sys/types.h>

#define CALLER_COMM_LEN 16

struct caller {
	int64_t uid;
	int64_t pid; /* the process (thread group), not the thread */
	char comm[CALLER_COMM_LEN + 1];
};

/*
 * Resolve thread tid of user uid.  When /proc no longer knows the thread,
 * pid is tid and comm is empty.
 */
void caller_resolve(uid_t uid, pid_t tid, struct caller *out);

#endif
