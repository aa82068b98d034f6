/*
 * failfs: an LD_PRELOAD shim that makes file-system calls fail for paths
 * under configured prefixes, so the fault suite (tests/integration/
 * it_faults_*.sh) can fill a disk or make it read-only for one directory
 * while everything else works, without root and without a mount.
 *
 *   FAILFS_CONTROL=FILE  the rules, re-read at every intercepted call, so a
 *                        test switches a fault on and off by rewriting FILE
 *                        (missing or empty: nothing fails). One rule a line:
 *                            ENOSPC /abs/path/prefix
 *                            EROFS  /abs/path/prefix
 *                        A path matches when it begins with the prefix
 *                        (string prefix: "/x/gateway.db" also covers
 *                        gateway.db-wal and gateway.db-shm).
 *   FAILFS_TRACE=FILE    optional: one line per injected failure
 *                        ("rename /x/y ENOSPC"), so a test can prove the
 *                        fault did fire.
 *
 * What fails, by errno (the way a real file system behaves):
 *   ENOSPC  a write that adds bytes (write, pwrite, writev, fallocate),
 *           creating a file that does not exist, mkdir, link, symlink and
 *           rename into or out of the prefix. Reading, opening an existing
 *           file, unlink and truncation still work.
 *   EROFS   every change: the above, plus opening for writing, unlink,
 *           rmdir, ftruncate and utimensat.
 * Calls on file descriptors are matched through /proc/self/fd/N. fsync and
 * reads always pass. Memory-mapped writes (SQLite's -shm) are not seen.
 *
 * Under AddressSanitizer the sanitizer runtime must come first:
 *   LD_PRELOAD="$(gcc -print-file-name=libasan.so) failfs.so"
 * (ASan's interceptors then call these, which call libc).
 *
 * Built by the fault tests themselves: gcc -shared -fPIC -O2 -o failfs.so
 * failfs.c -ldl. A test aid only: never installed, never linked into the
 * gateway.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define RULES_MAX 8
#define CONTROL_MAX 4096

enum fault { F_NONE = 0, F_NOSPC, F_ROFS };

/* Is it a change that fault f refuses? */
enum op_class {
	OP_GROW,   /* adds bytes or names: refused by both */
	OP_CHANGE, /* changes without adding: refused by EROFS only */
};

/* ---- the rules ---- */

/* Read with raw system calls: the shim must not call itself. */
static ssize_t control_read(char *buf, size_t size)
{
	const char *path = getenv("FAILFS_CONTROL");
	ssize_t n, total = 0;
	int fd;

	if (!path || !*path)
		return 0;
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	while ((size_t)total < size - 1 &&
	       (n = (ssize_t)syscall(SYS_read, fd, buf + total, size - 1 - (size_t)total)) > 0)
		total += n;
	syscall(SYS_close, fd);
	buf[total] = '\0';
	return total;
}

/* The fault that covers path, F_NONE when no rule does. */
static enum fault fault_for(const char *path)
{
	char rules[CONTROL_MAX];
	char *line, *save = NULL;

	if (!path || control_read(rules, sizeof(rules)) <= 0)
		return F_NONE;
	for (line = strtok_r(rules, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *prefix = strchr(line, ' ');
		enum fault f;

		if (!prefix)
			continue;
		*prefix++ = '\0';
		while (*prefix == ' ')
			prefix++;
		if (!strcmp(line, "ENOSPC"))
			f = F_NOSPC;
		else if (!strcmp(line, "EROFS"))
			f = F_ROFS;
		else
			continue;
		if (*prefix && !strncmp(path, prefix, strlen(prefix)))
			return f;
	}
	return F_NONE;
}

/* Any rule at all? (cheap: lets most calls skip the path look-up) */
static int armed(void)
{
	char rules[CONTROL_MAX];

	return control_read(rules, sizeof(rules)) > 0;
}

static void trace(const char *op, const char *path, int err)
{
	const char *file = getenv("FAILFS_TRACE");
	char line[PATH_MAX + 64];
	int fd, n;

	if (!file || !*file)
		return;
	n = snprintf(line, sizeof(line), "%s %s %s\n", op, path,
		     err == ENOSPC ? "ENOSPC" : "EROFS");
	if (n <= 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	fd = (int)syscall(SYS_openat, AT_FDCWD, file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
			  0600);
	if (fd < 0)
		return;
	syscall(SYS_write, fd, line, (size_t)n);
	syscall(SYS_close, fd);
}

/* 0 to go ahead; -1 with errno set when the fault refuses op on path. */
static int refuse(const char *op, const char *path, enum op_class cls)
{
	enum fault f = fault_for(path);
	int err;

	if (f == F_NONE || (f == F_NOSPC && cls != OP_GROW))
		return 0;
	err = f == F_NOSPC ? ENOSPC : EROFS;
	trace(op, path, err);
	errno = err;
	return -1;
}

/* dirfd + path as an absolute path (no normalisation). */
static int absolute(int dirfd, const char *path, char *out, size_t size)
{
	char base[PATH_MAX], link[64];
	ssize_t n;

	if (!path)
		return -1;
	if (path[0] == '/') {
		snprintf(out, size, "%s", path);
		return 0;
	}
	if (dirfd == AT_FDCWD) {
		if (!getcwd(base, sizeof(base)))
			return -1;
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		n = readlink(link, base, sizeof(base) - 1);
		if (n < 0)
			return -1;
		base[n] = '\0';
	}
	n = snprintf(out, size, "%s/%s", base, path);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

static int fd_path(int fd, char *out, size_t size)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, out, size - 1);
	if (n < 0)
		return -1;
	out[n] = '\0';
	return 0;
}

static int refuse_at(const char *op, int dirfd, const char *path, enum op_class cls)
{
	char abs[PATH_MAX];

	if (!armed() || absolute(dirfd, path, abs, sizeof(abs)) < 0)
		return 0;
	return refuse(op, abs, cls);
}

static int refuse_fd(const char *op, int fd, enum op_class cls)
{
	char path[PATH_MAX];

	if (fd < 0 || !armed() || fd_path(fd, path, sizeof(path)) < 0)
		return 0;
	return refuse(op, path, cls);
}

/* Opening: creating a new file grows; opening for writing changes. */
static int refuse_open(int dirfd, const char *path, int flags)
{
	char abs[PATH_MAX];
	struct stat st;

	if (!(flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)))
		return 0;
	if (!armed() || absolute(dirfd, path, abs, sizeof(abs)) < 0)
		return 0;
	if ((flags & O_CREAT) && syscall(SYS_newfstatat, AT_FDCWD, abs, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return refuse("create", abs, OP_GROW);
	return refuse("open-write", abs, OP_CHANGE);
}

/* ---- the real functions ---- */

#define REAL(type, name, args)                                            \
	static type(*real_##name) args;                                   \
	static type(*get_##name(void)) args                               \
	{                                                                 \
		if (!real_##name)                                         \
			*(void **)&real_##name = dlsym(RTLD_NEXT, #name); \
		return real_##name;                                       \
	}

REAL(int, open, (const char *, int, ...))
REAL(int, open64, (const char *, int, ...))
REAL(int, openat, (int, const char *, int, ...))
REAL(int, openat64, (int, const char *, int, ...))
REAL(ssize_t, write, (int, const void *, size_t))
REAL(ssize_t, pwrite, (int, const void *, size_t, off_t))
REAL(ssize_t, pwrite64, (int, const void *, size_t, off_t))
REAL(ssize_t, writev, (int, const struct iovec *, int))
REAL(int, ftruncate, (int, off_t))
REAL(int, ftruncate64, (int, off_t))
REAL(int, fallocate, (int, int, off_t, off_t))
REAL(int, posix_fallocate, (int, off_t, off_t))
REAL(int, rename, (const char *, const char *))
REAL(int, renameat, (int, const char *, int, const char *))
REAL(int, renameat2, (int, const char *, int, const char *, unsigned int))
REAL(int, mkdir, (const char *, mode_t))
REAL(int, mkdirat, (int, const char *, mode_t))
REAL(int, link, (const char *, const char *))
REAL(int, linkat, (int, const char *, int, const char *, int))
REAL(int, symlink, (const char *, const char *))
REAL(int, unlink, (const char *))
REAL(int, unlinkat, (int, const char *, int))
REAL(int, rmdir, (const char *))
REAL(int, utimensat, (int, const char *, const struct timespec[2], int))

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	if (refuse_open(AT_FDCWD, path, flags) < 0)
		return -1;
	return get_open()(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	if (refuse_open(AT_FDCWD, path, flags) < 0)
		return -1;
	return get_open64()(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	if (refuse_open(dirfd, path, flags) < 0)
		return -1;
	return get_openat()(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	if (refuse_open(dirfd, path, flags) < 0)
		return -1;
	return get_openat64()(dirfd, path, flags, mode);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	if (n && refuse_fd("write", fd, OP_GROW) < 0)
		return -1;
	return get_write()(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (n && refuse_fd("pwrite", fd, OP_GROW) < 0)
		return -1;
	return get_pwrite()(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (n && refuse_fd("pwrite", fd, OP_GROW) < 0)
		return -1;
	return get_pwrite64()(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (cnt > 0 && refuse_fd("writev", fd, OP_GROW) < 0)
		return -1;
	return get_writev()(fd, iov, cnt);
}

int ftruncate(int fd, off_t len)
{
	if (refuse_fd("ftruncate", fd, OP_CHANGE) < 0)
		return -1;
	return get_ftruncate()(fd, len);
}

int ftruncate64(int fd, off_t len)
{
	if (refuse_fd("ftruncate", fd, OP_CHANGE) < 0)
		return -1;
	return get_ftruncate64()(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	if (refuse_fd("fallocate", fd, OP_GROW) < 0)
		return -1;
	return get_fallocate()(fd, mode, off, len);
}

int posix_fallocate(int fd, off_t off, off_t len)
{
	if (refuse_fd("fallocate", fd, OP_GROW) < 0)
		return errno;
	return get_posix_fallocate()(fd, off, len);
}

int rename(const char *from, const char *to)
{
	if (refuse_at("rename", AT_FDCWD, to, OP_GROW) < 0 ||
	    refuse_at("rename", AT_FDCWD, from, OP_GROW) < 0)
		return -1;
	return get_rename()(from, to);
}

int renameat(int fd_from, const char *from, int fd_to, const char *to)
{
	if (refuse_at("rename", fd_to, to, OP_GROW) < 0 ||
	    refuse_at("rename", fd_from, from, OP_GROW) < 0)
		return -1;
	return get_renameat()(fd_from, from, fd_to, to);
}

int renameat2(int fd_from, const char *from, int fd_to, const char *to, unsigned int flags)
{
	if (refuse_at("rename", fd_to, to, OP_GROW) < 0 ||
	    refuse_at("rename", fd_from, from, OP_GROW) < 0)
		return -1;
	return get_renameat2()(fd_from, from, fd_to, to, flags);
}

int mkdir(const char *path, mode_t mode)
{
	if (refuse_at("mkdir", AT_FDCWD, path, OP_GROW) < 0)
		return -1;
	return get_mkdir()(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
	if (refuse_at("mkdir", dirfd, path, OP_GROW) < 0)
		return -1;
	return get_mkdirat()(dirfd, path, mode);
}

int link(const char *from, const char *to)
{
	if (refuse_at("link", AT_FDCWD, to, OP_GROW) < 0)
		return -1;
	return get_link()(from, to);
}

int linkat(int fd_from, const char *from, int fd_to, const char *to, int flags)
{
	if (refuse_at("link", fd_to, to, OP_GROW) < 0)
		return -1;
	return get_linkat()(fd_from, from, fd_to, to, flags);
}

int symlink(const char *target, const char *path)
{
	if (refuse_at("symlink", AT_FDCWD, path, OP_GROW) < 0)
		return -1;
	return get_symlink()(target, path);
}

int unlink(const char *path)
{
	if (refuse_at("unlink", AT_FDCWD, path, OP_CHANGE) < 0)
		return -1;
	return get_unlink()(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
	if (refuse_at("unlink", dirfd, path, OP_CHANGE) < 0)
		return -1;
	return get_unlinkat()(dirfd, path, flags);
}

int rmdir(const char *path)
{
	if (refuse_at("rmdir", AT_FDCWD, path, OP_CHANGE) < 0)
		return -1;
	return get_rmdir()(path);
}

int utimensat(int dirfd, const char *path, const struct timespec times[2], int flags)
{
	if (refuse_at("utimensat", dirfd, path, OP_CHANGE) < 0)
		return -1;
	return get_utimensat()(dirfd, path, times, flags);
}
