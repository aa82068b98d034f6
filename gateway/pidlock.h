/*
 * pidlock: one process at a time on a resource, by an exclusive flock(2) on
 * a lock file that names its holder's pid. `gateway send` takes one beside
 * its database ("DB.lock") before it opens the store, so a second sender
 * stops before it can queue the running one's messages again
 * (docs/OPERATIONS.md, "One sender per database").
 *
 * pidlock_take() makes the file when missing (mode 0600, its directory
 * 0700: fsutil_prepare_private_file), opens it O_CLOEXEC | O_NOFOLLOW (a
 * program exec'd never inherits it; a symlink is refused) and takes
 * LOCK_EX | LOCK_NB: it never waits. The holder's pid is then written into
 * the file for the message another process gets (best effort: the lock is
 * what counts, not the pid). The lock lasts as long as the descriptor: until
 * pidlock_release() or the end of the process, a crash included (the
 * kernel drops it). A fork without exec would share it: callers do not fork.
 * The file is never removed: a newcomer could otherwise lock a new file of
 * that name while the holder still holds the old one.
 *
 * Diagnostics: GW_EEXISTS when another holds the lock (the message names the
 * file and, when it can be read, the holder's pid); GW_ERROR when the file
 * cannot be made or opened, or is not a regular file.
 */
#ifndef GW_PIDLOCK_H
#define GW_PIDLOCK_H

/* Take the lock on path; *fd is its descriptor, -1 on failure. */
int pidlock_take(int *fd, const char *path);
/* Release it (close the descriptor). -1 is fine. */
void pidlock_release(int fd);

#endif
