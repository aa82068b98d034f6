/*
 * test_fsutil: durable publish and the hostile-input rules of the spool.
 */
#include "testutil.h"
#include "fsutil.h"
#include "err.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_write_durable_publishes_whole_file_0600(void **state)
{
	const char *dir = tu_tmpdir("fsutil-write");
	char path[512];
	struct stat st;
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(fsutil_write_durable(dir, "a.xml", "hello", 5, 0600), 0);
	snprintf(path, sizeof(path), "%s/a.xml", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	tu_read(path, &buf);
	assert_string_equal((char *)buf.data, "hello");
	gw_buf_free(&buf);
	tu_rmrf(dir);
}

/* Several trusted files into one buffer (the gateway's CRL bundle for curl). */
static void test_append_keeps_what_was_read_before(void **state)
{
	const char *dir = tu_tmpdir("fsutil-append");
	char one[512], two[512];
	gw_buf buf = GW_BUF_INIT;

	assert_int_equal(fsutil_write_durable(dir, "one.crl", "first\n", 6, 0600), 0);
	assert_int_equal(fsutil_write_durable(dir, "two.crl", "second\n", 7, 0600), 0);
	snprintf(one, sizeof(one), "%s/one.crl", dir);
	snprintf(two, sizeof(two), "%s/two.crl", dir);
	assert_int_equal(fsutil_append_file(one, 6, &buf), 0);
	assert_int_equal(fsutil_append_file(two, 7, &buf), 0); /* the limit is per file */
	assert_string_equal((char *)buf.data, "first\nsecond\n");
	assert_int_equal(fsutil_append_file(two, 6, &buf), GW_EINVALID);
	assert_int_equal(fsutil_read_file(two, 7, &buf), 0); /* reading starts afresh */
	assert_string_equal((char *)buf.data, "second\n");
	gw_buf_free(&buf);
	tu_rmrf(dir);
}

static void test_untrusted_refuses_symlink_hardlink_and_large(void **state)
{
	const char *dir = tu_tmpdir("fsutil-untrusted");
	char a[512], b[512], c[512];
	gw_buf buf = GW_BUF_INIT;
	const char *reason;

	snprintf(a, sizeof(a), "%s/plain.xml", dir);
	snprintf(b, sizeof(b), "%s/link.xml", dir);
	snprintf(c, sizeof(c), "%s/hard.xml", dir);
	tu_write(a, "<x/>", 4);
	assert_int_equal(fsutil_read_untrusted(dir, "plain.xml", 100, &buf, &reason, NULL), 0);
	assert_int_equal(buf.len, 4);

	assert_int_equal(fsutil_read_untrusted(dir, "plain.xml", 3, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "too-large");

	assert_int_equal(symlink(a, b), 0);
	assert_int_equal(fsutil_read_untrusted(dir, "link.xml", 100, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "symlink");

	assert_int_equal(link(a, c), 0);
	assert_int_equal(fsutil_read_untrusted(dir, "hard.xml", 100, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "hard-linked");
	assert_non_null(strstr(gw_error_last(), "hard links"));

	assert_int_equal(fsutil_read_untrusted(dir, ".", 100, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "not-regular");
	gw_buf_free(&buf);
	tu_rmrf(dir);
}

/* A secret is read only when group and others have no access to it. */
static void test_read_private_refuses_loose_modes(void **state)
{
	static const mode_t loose[] = { 0640, 0604, 0620, 0602, 0660 };
	const char *dir = tu_tmpdir("fsutil-private");
	char path[512];
	gw_buf buf = GW_BUF_INIT;

	snprintf(path, sizeof(path), "%s/secret.key", dir);
	assert_int_equal(fsutil_read_private(path, 64, &buf), GW_ENOTFOUND);
	tu_write(path, "0123456789abcdef", 16);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(fsutil_read_private(path, 64, &buf), 0);
	assert_int_equal(buf.len, 16);
	assert_memory_equal(buf.data, "0123456789abcdef", 16);
	assert_int_equal(fsutil_read_private(path, 8, &buf), GW_EINVALID); /* too large */
	for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
		assert_int_equal(chmod(path, loose[i]), 0);
		assert_int_equal(fsutil_read_private(path, 64, &buf), GW_EINVALID);
		assert_non_null(strstr(gw_error_last(), "group or others"));
	}
	assert_int_equal(fsutil_read_private(dir, 64, &buf), GW_EINVALID); /* a directory */
	gw_buf_free(&buf);
	tu_rmrf(dir);
}

/* A database's file: made 0600 (directory too), loose modes fixed, odd files refused. */
static void test_prepare_private_file(void **state)
{
	const char *dir = tu_tmpdir("fsutil-private");
	char path[512], link_path[512], sub[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/db/store.db", dir);
	assert_int_equal(fsutil_prepare_private_file(path), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(fsutil_prepare_private_file(path), 0);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	snprintf(link_path, sizeof(link_path), "%s/db/link.db", dir);
	assert_int_equal(symlink(path, link_path), 0);
	assert_int_equal(fsutil_prepare_private_file(link_path), GW_ERROR);
	assert_non_null(strstr(gw_error_last(), "not a regular file"));
	snprintf(sub, sizeof(sub), "%s/db/adir", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(fsutil_prepare_private_file(sub), GW_ERROR);
	tu_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_durable_publishes_whole_file_0600),
		cmocka_unit_test(test_append_keeps_what_was_read_before),
		cmocka_unit_test(test_untrusted_refuses_symlink_hardlink_and_large),
		cmocka_unit_test(test_read_private_refuses_loose_modes),
		cmocka_unit_test(test_prepare_private_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
