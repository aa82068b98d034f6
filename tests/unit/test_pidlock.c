/*
 * test_pidlock: one process at a time on a lock file (the sender's DB.lock).
 * The lock is taken and the holder's pid written; a second taker is refused
 * at once with the path and that pid, and changes nothing; release (or the
 * holder's end, a crash included) frees it; the descriptor is close-on-exec;
 * the file is made 0600 in a 0700 directory; a symlink or a directory in its
 * place is refused.
 */
#include "testutil.h"
#include "err.h"
#include "pidlock.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct fixture {
	char dir[400];
	char db_dir[450];
	char lock[512];
};

static int setup(void **state)
{
	static struct fixture f;

	snprintf(f.dir, sizeof(f.dir), "%s", tu_tmpdir("pidlock"));
	if (snprintf(f.db_dir, sizeof(f.db_dir), "%s/db", f.dir) >= (int)sizeof(f.db_dir) ||
	    snprintf(f.lock, sizeof(f.lock), "%s/gateway.db.lock", f.db_dir) >= (int)sizeof(f.lock))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	tu_rmrf(f->dir);
	return 0;
}

static void content(const char *path, char *out, size_t len)
{
	gw_buf b = GW_BUF_INIT;

	tu_read(path, &b);
	snprintf(out, len, "%.*s", (int)b.len, b.data ? (const char *)b.data : "");
	gw_buf_free(&b);
}

static void test_take_writes_pid(void **state)
{
	struct fixture *f = *state;
	char text[32], want[32];
	struct stat st;
	int fd = -1;

	assert_ok(pidlock_take(&fd, f->lock));
	assert_true(fd >= 0);
	content(f->lock, text, sizeof(text));
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	assert_string_equal(text, want);
	assert_int_equal(stat(f->lock, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC); /* nothing exec'd inherits it */
	assert_int_equal(stat(f->db_dir, &st), 0); /* made for it */
	assert_int_equal(st.st_mode & 0777, 0700);
	pidlock_release(fd);
}

static void test_second_taker_refused(void **state)
{
	struct fixture *f = *state;
	char before[32], after[32], pid[32];
	int fd = -1, fd2 = 7;

	assert_ok(pidlock_take(&fd, f->lock));
	content(f->lock, before, sizeof(before));
	assert_int_equal(pidlock_take(&fd2, f->lock), GW_EEXISTS);
	assert_int_equal(fd2, -1);
	assert_non_null(strstr(gw_error_last(), f->lock));
	snprintf(pid, sizeof(pid), "process %ld", (long)getpid());
	assert_non_null(strstr(gw_error_last(), pid));
	content(f->lock, after, sizeof(after));
	assert_string_equal(after, before);
	pidlock_release(fd);
	/* released: the next one takes it */
	assert_ok(pidlock_take(&fd2, f->lock));
	pidlock_release(fd2);
}

/* A holder that ends without releasing (a crash) leaves the lock free. */
static void test_holder_end_frees(void **state)
{
	struct fixture *f = *state;
	int status, fd = -1, ready[2];
	char c, pid[32];
	pid_t child;

	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int cfd;

		close(ready[0]);
		if (pidlock_take(&cfd, f->lock) != 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		pause(); /* killed below, without releasing */
		_exit(0);
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(pidlock_take(&fd, f->lock), GW_EEXISTS);
	snprintf(pid, sizeof(pid), "process %ld", (long)child);
	assert_non_null(strstr(gw_error_last(), pid));
	kill(child, SIGKILL);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_ok(pidlock_take(&fd, f->lock));
	pidlock_release(fd);
}

static void test_not_a_regular_file(void **state)
{
	struct fixture *f = *state;
	char target[600];
	struct stat st;
	int fd = 7;

	assert_ok(pidlock_take(&fd, f->lock)); /* makes the directory */
	pidlock_release(fd);
	assert_int_equal(unlink(f->lock), 0);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(symlink(target, f->lock), 0);
	assert_int_equal(pidlock_take(&fd, f->lock), GW_ERROR);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(gw_error_last(), "not a regular file"));
	assert_int_equal(lstat(target, &st), -1); /* nothing made through the link */
	assert_int_equal(unlink(f->lock), 0);
	assert_int_equal(mkdir(f->lock, 0700), 0);
	assert_int_equal(pidlock_take(&fd, f->lock), GW_ERROR);
	assert_int_equal(fd, -1);
	assert_int_equal(rmdir(f->lock), 0);
	pidlock_release(-1); /* fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_take_writes_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_taker_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_holder_end_frees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_regular_file, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
