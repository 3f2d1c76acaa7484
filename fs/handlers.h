/*
 * handlers: the FUSE request handlers of a mount (govfs_ops).  Each one
 * checks the caller's uid against the current state, records what it
 * serves or refuses in the audit log, and replies; writes of every kind
 * are refused with EROFS.  Open files are handles that the handlers own
 * from open to release.
 */
#ifndef GOVFS_HANDLERS_H
#define GOVFS_HANDLERS_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>

#include "caller.h"
#include "mount_state.h"

extern const struct fuse_lowlevel_ops govfs_ops;

/* Data files: active, not held, and the clock inside [valid_from,
 * valid_until). */
bool data_readable(const struct mount_state *st);

/*
 * Queue one record about revision of the agreement (who may be NULL, err
 * an errno or 0); 0, or -EIO if the log failed.  *ticket, when ticket is
 * not NULL, is the record's, for audit_log_wait.
 */
int audit(int64_t revision, const struct caller *who, const char *event,
	  const char *path, int64_t off, int64_t len, int64_t bytes, int err,
	  uint64_t handle, uint64_t *ticket);

#endif
