/*
 * pidlock: an exclusive, non-blocking flock(2) on a lock file that holds
 * the holder's pid (see pidlock.h).
 */
#include "pidlock.h"
#include "err.h"
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define PID_TEXT 24

/* The pid its holder wrote into the file; 0 when there is none (yet). */
static long holder_pid(int fd)
{
	char text[PID_TEXT];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	char *end;
	long pid;

	if (n <= 0)
		return 0;
	text[n] = '\0';
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno || end == text || *end != '\n' || pid <= 0)
		return 0; /* a pid is whole only with its newline */
	return pid;
}

/*
 * Best effort: a holder whose pid could not be written (a full disk) still
 * holds the lock, and a part written without its newline is read as no pid.
 */
static int write_pid(int fd)
{
	char text[PID_TEXT];
	int n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());

	if (n <= 0 || ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n)
		return -1;
	return 0;
}

static int refused(int fd, const char *path)
{
	long pid = holder_pid(fd);

	close(fd);
	if (pid > 0)
		return gw_error_set(GW_EEXISTS, "%s is held by process %ld", path, pid);
	return gw_error_set(GW_EEXISTS, "%s is held by another process", path);
}

static int open_lock_file(const char *path, int *fd)
{
	struct stat st;

	if (fsutil_prepare_private_file(path) < 0)
		return gw_error_wrap(GW_ERROR, "lock file");
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (*fd < 0)
		return gw_error_set(GW_ERROR, "cannot open the lock file %s: %s", path,
				    errno == ELOOP ? "it is a symbolic link" : strerror(errno));
	if (fstat(*fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(*fd);
		*fd = -1;
		return gw_error_set(GW_ERROR, "the lock file %s is not a regular file", path);
	}
	return 0;
}

int pidlock_take(int *fd, const char *path)
{
	int lock_fd = -1;
	int rc = open_lock_file(path, &lock_fd);

	*fd = -1;
	if (rc < 0)
		return rc;
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return refused(lock_fd, path);
		rc = gw_error_set(GW_ERROR, "cannot lock %s: %s", path, strerror(errno));
		close(lock_fd);
		return rc;
	}
	write_pid(lock_fd); /* best effort */
	*fd = lock_fd;
	return 0;
}

void pidlock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
