/*
 * fsutil: the durable file operations everything else relies on.
 *
 * fsutil_write_durable() is the one way a file is published: create a
 * temporary name with O_EXCL and mode 0600 (or the mode given), write, fsync,
 * close, rename over the final name, fsync the directory. A reader either
 * sees the whole file or nothing, across a crash at any point.
 *
 * fsutil_open_untrusted() opens a file someone else dropped (the spool) the
 * way Postfix's safe_open does: no symlinks, regular files only, exactly one
 * link, fstat must match lstat, and a size limit.
 */
#ifndef GW_FSUTIL_H
#define GW_FSUTIL_H

#include "buf.h"

#include <stddef.h>
#include <sys/types.h>

struct stat;

/* Write data to dir/name durably. mode is the final file's mode (0600 usual). */
int fsutil_write_durable(const char *dir, const char *name, const void *data, size_t len,
			 mode_t mode);

/* Rename dir_from/name_from to dir_to/name_to and fsync both directories. */
int fsutil_rename_durable(const char *dir_from, const char *name_from, const char *dir_to,
			  const char *name_to);

/*
 * Two steps for a file that must be durable before it may have its name
 * (the receiver's inbox: written outside a lock, named under it).
 * fsutil_stage() writes data into an anonymous file in dir (O_TMPFILE) and
 * fsyncs it; *fd is its descriptor, or -1 when the file system cannot make
 * anonymous files (then nothing was written). A crash before the link leaves
 * nothing behind. fsutil_stage_link() gives it dir/name, replacing a file
 * of that name; the directory is NOT synced (sync it once for several
 * links). GW_ETEMP when the link cannot be made this way (no /proc): write
 * by name instead. Close fd afterwards either way.
 */
int fsutil_stage(const char *dir, const void *data, size_t len, mode_t mode, int *fd);
int fsutil_stage_link(int fd, const char *dir, const char *name);

/* fsync a directory so renames and creations inside it are durable. */
int fsutil_sync_dir(const char *dir);

/* Create dir (and parents) with mode if missing. */
int fsutil_mkdirs(const char *dir, mode_t mode);

/*
 * Read an untrusted file into out. Fails with GW_EINVALID and a reason code
 * in *reason ("not-regular", "symlink", "hard-linked", "too-large") when the
 * file must be rejected without being parsed; GW_ERROR for I/O faults.
 * st (NULL: not wanted) gets the status of the file that was read, or with
 * a reason code that of the entry refused (lstat, or fstat for one that
 * grew past the limit while it was read).
 */
int fsutil_read_untrusted(const char *dir, const char *name, size_t max_bytes, gw_buf *out,
			  const char **reason, struct stat *st);

/*
 * Read a secret (a key) up to max_bytes: a regular file that neither group
 * nor others may read or write, checked on the descriptor that is read.
 * GW_ENOTFOUND when it does not exist, GW_EINVALID when it is not private.
 */
int fsutil_read_private(const char *path, size_t max_bytes, gw_buf *out);
/* Read a whole trusted file (configuration, certificates) up to max_bytes. */
int fsutil_read_file(const char *path, size_t max_bytes, gw_buf *out);
/* The same, appended to what out holds (max_bytes counts this file only). */
int fsutil_append_file(const char *path, size_t max_bytes, gw_buf *out);

/*
 * Make sure a private file exists before a library opens it (a database):
 * its directory is created (0700) when missing, the file is created with
 * mode 0600, refused when it is not a regular file or a symlink, and made
 * 0600 when group or others could read it. An existing file is never opened
 * (closing a descriptor would drop this process's SQLite locks on it), so
 * it is safe to call while the process has the database open already.
 */
int fsutil_prepare_private_file(const char *path);

/* Join dir and name into out (size outlen); fails when it would not fit. */
int fsutil_path(char *out, size_t outlen, const char *dir, const char *name);

#endif
