/*
 * fsutil: durable publish, durable rename, and hostile-input reading
 * (see fsutil.h). Write order follows OpenSMTPD's queue_fs.c: O_EXCL 0600,
 * write, fsync, close, rename, fsync of the directory.
 */
#define _GNU_SOURCE /* O_TMPFILE (Linux 3.11); linkat of /proc/self/fd/N */
#include "fsutil.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsutil_path(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= outlen)
		return gw_error_set(GW_EINVALID, "path too long: %s/%s", dir, name);
	return 0;
}

int fsutil_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return gw_error_set(GW_ERROR, "cannot open directory %s: %s", dir, strerror(errno));
	if (fsync(fd) < 0)
		rc = gw_error_set(GW_ERROR, "cannot fsync directory %s: %s", dir, strerror(errno));
	close(fd);
	return rc;
}

/* fsync the directory that holds path (trailing slashes aside): its entry durable. */
static int sync_parent(const char *path)
{
	char dir[PATH_MAX];
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	while (len > 0 && path[len - 1] != '/')
		len--;
	if (len == 0)
		return fsutil_sync_dir(".");
	if (len == 1)
		return fsutil_sync_dir("/");
	if (len - 1 >= sizeof(dir))
		return gw_error_set(GW_EINVALID, "path too long: %s", path);
	memcpy(dir, path, len - 1);
	dir[len - 1] = '\0';
	return fsutil_sync_dir(dir);
}

/*
 * mkdir, and when it made the directory, an fsync of its parent: a
 * directory whose own name is lost in a power cut takes everything stored
 * in it along (the first message of a new inbox, say).
 */
static int make_dir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0)
		return sync_parent(path);
	if (errno == EEXIST)
		return 0;
	return gw_error_set(GW_ERROR, "cannot create directory %s: %s", path, strerror(errno));
}

int fsutil_mkdirs(const char *dir, mode_t mode)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	int rc;

	if (len == 0 || len >= sizeof(path))
		return gw_error_set(GW_EINVALID, "bad directory path '%s'", dir);
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		rc = make_dir(path, mode);
		*p = '/';
		if (rc < 0)
			return rc;
	}
	return make_dir(path, mode);
}

static int write_all(int fd, const unsigned char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int fsutil_write_durable(const char *dir, const char *name, const void *data, size_t len,
			 mode_t mode)
{
	char tmp[PATH_MAX], final[PATH_MAX], tmpname[NAME_MAX + 1];
	int fd, rc = GW_ERROR;

	if (snprintf(tmpname, sizeof(tmpname), ".tmp.%ld.%s", (long)getpid(), name) >=
	    (int)sizeof(tmpname))
		return gw_error_set(GW_EINVALID, "file name too long: %s", name);
	if (fsutil_path(tmp, sizeof(tmp), dir, tmpname) < 0 ||
	    fsutil_path(final, sizeof(final), dir, name) < 0)
		return GW_EINVALID;

	unlink(tmp); /* a leftover of this pid from before a crash */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return gw_error_set(GW_ERROR, "cannot create %s: %s", tmp, strerror(errno));
	if (write_all(fd, data, len) < 0) {
		gw_error_set(GW_ERROR, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) < 0) {
		gw_error_set(GW_ERROR, "cannot fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		gw_error_set(GW_ERROR, "cannot close %s: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, final) < 0) {
		gw_error_set(GW_ERROR, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
		goto fail;
	}
	return fsutil_sync_dir(dir);
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int fsutil_rename_durable(const char *dir_from, const char *name_from, const char *dir_to,
			  const char *name_to)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (fsutil_path(from, sizeof(from), dir_from, name_from) < 0 ||
	    fsutil_path(to, sizeof(to), dir_to, name_to) < 0)
		return GW_EINVALID;
	if (rename(from, to) < 0)
		return gw_error_set(GW_ERROR, "cannot move %s to %s: %s", from, to, strerror(errno));
	if (fsutil_sync_dir(dir_to) < 0)
		return GW_ERROR;
	if (strcmp(dir_from, dir_to) != 0 && fsutil_sync_dir(dir_from) < 0)
		return GW_ERROR;
	return 0;
}

int fsutil_stage(const char *dir, const void *data, size_t len, mode_t mode, int *fd_out)
{
	int fd;

	*fd_out = -1;
	fd = open(dir, O_WRONLY | O_TMPFILE | O_CLOEXEC, mode);
	if (fd < 0) {
		/* Kernels or file systems without O_TMPFILE: the caller writes
		 * under the final name when it links. */
		if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)
			return 0;
		return gw_error_set(GW_ERROR, "cannot create a file in %s: %s", dir, strerror(errno));
	}
	if (write_all(fd, data, len) < 0) {
		gw_error_set(GW_ERROR, "cannot write a file in %s: %s", dir, strerror(errno));
		close(fd);
		return GW_ERROR;
	}
	if (fsync(fd) < 0) {
		gw_error_set(GW_ERROR, "cannot fsync a file in %s: %s", dir, strerror(errno));
		close(fd);
		return GW_ERROR;
	}
	*fd_out = fd;
	return 0;
}

int fsutil_stage_link(int fd, const char *dir, const char *name)
{
	char final[PATH_MAX], proc[64];

	if (fsutil_path(final, sizeof(final), dir, name) < 0)
		return GW_EINVALID;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (unlink(final) < 0 && errno != ENOENT)
		return gw_error_set(GW_ERROR, "cannot remove %s: %s", final, strerror(errno));
	if (linkat(AT_FDCWD, proc, AT_FDCWD, final, AT_SYMLINK_FOLLOW) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) /* no /proc */
			return gw_error_set(GW_ETEMP, "cannot name %s (is /proc mounted?): %s",
					    final, strerror(errno));
		return gw_error_set(GW_ERROR, "cannot name %s: %s", final, strerror(errno));
	}
	return 0;
}

/* Append the rest of fd to out; at most max_bytes of it. */
static int append_fd(int fd, const char *path, size_t max_bytes, gw_buf *out)
{
	unsigned char chunk[16384];
	size_t start = out->len;

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return gw_error_set(GW_ERROR, "cannot read %s: %s", path, strerror(errno));
		}
		if (n == 0)
			break;
		if (out->len - start + (size_t)n > max_bytes)
			return gw_error_set(GW_EINVALID, "%s is larger than the limit of %zu bytes",
					    path, max_bytes);
		if (gw_buf_put(out, chunk, (size_t)n) < 0)
			return GW_ENOMEM;
	}
	if (gw_buf_grow(out, 0) < 0) /* make sure an empty file still has a NUL */
		return GW_ENOMEM;
	out->data[out->len] = '\0';
	return 0;
}

static int read_fd(int fd, const char *path, size_t max_bytes, gw_buf *out)
{
	gw_buf_reset(out);
	return append_fd(fd, path, max_bytes, out);
}

int fsutil_read_untrusted(const char *dir, const char *name, size_t max_bytes, gw_buf *out,
			  const char **reason, struct stat *st)
{
	char path[PATH_MAX];
	struct stat lst, fst;
	int fd, rc;

	*reason = NULL;
	if (fsutil_path(path, sizeof(path), dir, name) < 0)
		return GW_EINVALID;
	if (lstat(path, &lst) < 0)
		return gw_error_set(GW_ERROR, "cannot stat %s: %s", path, strerror(errno));
	if (st)
		*st = lst; /* the entry refused, if it is refused before it is opened */
	if (S_ISLNK(lst.st_mode)) {
		*reason = "symlink";
		return gw_error_set(GW_EINVALID, "%s is a symbolic link; only regular files are accepted", name);
	}
	if (!S_ISREG(lst.st_mode)) {
		*reason = "not-regular";
		return gw_error_set(GW_EINVALID, "%s is not a regular file", name);
	}
	if (lst.st_nlink != 1) {
		*reason = "hard-linked";
		return gw_error_set(GW_EINVALID, "%s has %lu hard links; exactly one is required",
				    name, (unsigned long)lst.st_nlink);
	}
	if ((unsigned long long)lst.st_size > max_bytes) {
		*reason = "too-large";
		return gw_error_set(GW_EINVALID, "%s is %lld bytes, over the limit of %zu bytes", name,
				    (long long)lst.st_size, max_bytes);
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return gw_error_set(GW_ERROR, "cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &fst) < 0 || fst.st_dev != lst.st_dev || fst.st_ino != lst.st_ino ||
	    !S_ISREG(fst.st_mode) || fst.st_nlink != 1) {
		close(fd);
		*reason = "not-regular";
		return gw_error_set(GW_EINVALID, "%s changed while it was being opened", name);
	}
	rc = read_fd(fd, path, max_bytes, out);
	close(fd);
	if (rc == GW_EINVALID)
		*reason = "too-large";
	if (st)
		*st = fst;
	return rc;
}

int fsutil_read_private(const char *path, size_t max_bytes, gw_buf *out)
{
	struct stat st;
	int fd, rc;

	/* The checks apply to the file opened, so nothing can change in between. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return gw_error_set(errno == ENOENT ? GW_ENOTFOUND : GW_ERROR, "cannot open %s: %s",
				    path, strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = gw_error_set(GW_ERROR, "cannot stat %s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = gw_error_set(GW_EINVALID, "%s is not a regular file", path);
	else if (st.st_mode & (S_IRWXG | S_IRWXO))
		rc = gw_error_set(GW_EINVALID, "%s can be read or written by group or others "
				  "(mode %04o); make it mode 0600", path,
				  (unsigned)(st.st_mode & 07777));
	else
		rc = read_fd(fd, path, max_bytes, out);
	close(fd);
	return rc;
}

int fsutil_read_file(const char *path, size_t max_bytes, gw_buf *out)
{
	gw_buf_reset(out);
	return fsutil_append_file(path, max_bytes, out);
}

int fsutil_append_file(const char *path, size_t max_bytes, gw_buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return gw_error_set(GW_ERROR, "cannot open %s: %s", path, strerror(errno));
	rc = append_fd(fd, path, max_bytes, out);
	close(fd);
	return rc;
}

/*
 * Never open and close a file that exists: it may be a database this
 * process already has open through SQLite, and POSIX record locks belong
 * to the process, so closing any descriptor of the file drops every lock
 * the process holds on it, SQLite's too. Another process closing its
 * connection then finds the database unused and deletes the WAL that this
 * process goes on writing into (its commits would be lost).
 */
static int private_existing(const char *path, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return gw_error_set(GW_ERROR, "%s is not a regular file", path);
	if ((st->st_mode & 077) && chmod(path, 0600) < 0)
		return gw_error_set(GW_ERROR, "cannot make %s mode 0600: %s", path, strerror(errno));
	return 0;
}

int fsutil_prepare_private_file(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	int fd;

	if (slash && slash != path) {
		size_t len = (size_t)(slash - path);
		if (len >= sizeof(dir))
			return gw_error_set(GW_EINVALID, "path too long: %s", path);
		memcpy(dir, path, len);
		dir[len] = '\0';
		if (fsutil_mkdirs(dir, 0700) < 0)
			return GW_ERROR;
	}
	if (lstat(path, &st) == 0)
		return private_existing(path, &st);
	if (errno != ENOENT)
		return gw_error_set(GW_ERROR, "cannot stat %s: %s", path, strerror(errno));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd); /* new: nobody in this process has it open */
		/* Its name durable before anything is committed into it. */
		return sync_parent(path);
	}
	if (errno == EEXIST && lstat(path, &st) == 0) /* another process made it just now */
		return private_existing(path, &st);
	return gw_error_set(GW_ERROR, "cannot create %s: %s", path, strerror(errno));
}
