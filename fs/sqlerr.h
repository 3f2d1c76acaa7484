/*
 * sqlerr: SQLite result codes as the -errno values the rest of govfs uses,
 * shared by the SQLite backends of the catalog and the audit log.
 */
#ifndef GOVFS_SQLERR_H
#define GOVFS_SQLERR_H

#include <sqlite3.h>

/* 0 for OK, ROW and DONE; else the nearest -errno (-EIO by default). */
int sql_rc(int rc);

#endif
