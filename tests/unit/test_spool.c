/*
 * test_spool: the spool contract of SPEC section 3. Which names are taken,
 * ignored or rejected; that a rejection keeps the bytes next to a reason
 * file with code and sentence; that nothing is ever overwritten; moves of
 * several files into processed/ with one directory sync; expiry of
 * processed files.
 */
#include "testutil.h"
#include "spool.h"
#include "err.h"

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define NOW INT64_C(1795392000000) /* 2026-11-22T00:00:00Z */

static const char *drop(const struct spool *sp, const char *name, const char *text)
{
	static char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", sp->new_dir, name);
	tu_write(path, text, strlen(text));
	return path;
}

static void read_text(const char *dir, const char *name, gw_buf *out)
{
	char path[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	tu_read(path, out);
}

static bool present(const char *dir, const char *name)
{
	char path[PATH_MAX + 256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

static void test_open_creates_layout(void **state)
{
	char root[PATH_MAX];
	char sub[PATH_MAX + 64];
	struct spool sp;
	struct stat st;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-open"));
	snprintf(sub, sizeof(sub), "%s/spool", root);
	assert_int_equal(spool_open(&sp, sub), 0);
	assert_true(present(sub, "incoming/tmp"));
	assert_true(present(sub, "incoming/new"));
	assert_true(present(sub, "processed"));
	assert_true(present(sub, "rejected"));
	/* Opening again validates what is there. */
	assert_int_equal(spool_open(&sp, sub), 0);

	/* A subdirectory replaced by a file is refused. */
	snprintf(sub, sizeof(sub), "%s/bad", root);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(sub, sizeof(sub), "%s/bad/processed", root);
	tu_write(sub, "x", 1);
	snprintf(sub, sizeof(sub), "%s/bad", root);
	assert_true(spool_open(&sp, sub) < 0);
	assert_int_equal(stat(sub, &st), 0);
	tu_rmrf(root);
}

static void test_names(void **state)
{
	char long_ok[140], too_long[140];

	memset(long_ok, 'a', 128);
	memcpy(long_ok + 128, ".xml", 5);
	memset(too_long, 'a', 129);
	memcpy(too_long + 129, ".xml", 5);

	assert_true(spool_name_valid("KDI-2026-000123.xml"));
	assert_true(spool_name_valid("a.xml"));
	assert_true(spool_name_valid("0_x.y-z.xml"));
	assert_true(spool_name_valid(long_ok));
	assert_false(spool_name_valid(too_long));
	assert_false(spool_name_valid(".xml"));
	assert_false(spool_name_valid("-a.xml"));
	assert_false(spool_name_valid("_a.xml"));
	assert_false(spool_name_valid("a.XML"));
	assert_false(spool_name_valid("a.xml.tmp"));
	assert_false(spool_name_valid("a b.xml"));
	assert_false(spool_name_valid("a\n.xml"));
	assert_false(spool_name_valid("\xc3\xa6.xml"));
}

static void test_list_sorts_ignores_dot_files_and_separates_bad_names(void **state)
{
	char root[PATH_MAX];
	struct spool_list list;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-list"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "b.xml", "<b/>");
	drop(&sp, "a.xml", "<a/>");
	drop(&sp, ".hidden.xml", "<h/>");
	drop(&sp, "notes.txt", "x");
	drop(&sp, "c.xml.part", "x");

	assert_int_equal(spool_list_new(&sp, &list), 0);
	assert_int_equal(list.n_names, 2);
	assert_string_equal(list.names[0], "a.xml");
	assert_string_equal(list.names[1], "b.xml");
	assert_int_equal(list.n_bad, 2);
	assert_string_equal(list.bad_names[0], "c.xml.part");
	assert_string_equal(list.bad_names[1], "notes.txt");
	spool_list_free(&list);
	tu_rmrf(root);
}

static void test_reject_writes_reason_and_keeps_bytes(void **state)
{
	char root[PATH_MAX];
	gw_buf buf = GW_BUF_INIT;
	char final[256];
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-reject"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "n.xml", "<Notice>broken");
	assert_int_equal(spool_reject(&sp, "n.xml", "malformed", "n.xml: line 1:\nbroken",
				      final, sizeof(final)),
			 0);
	assert_string_equal(final, "n.xml");
	assert_false(present(sp.new_dir, "n.xml"));
	read_text(sp.rejected, "n.xml", &buf);
	assert_string_equal((char *)buf.data, "<Notice>broken");
	read_text(sp.rejected, "n.xml.reason", &buf);
	assert_string_equal((char *)buf.data, "malformed\nn.xml: line 1: broken\n");

	/* The same name again: a numbered name, nothing overwritten. */
	drop(&sp, "n.xml", "<second/>");
	assert_int_equal(spool_reject(&sp, "n.xml", "schema-invalid", "second", final,
				      sizeof(final)),
			 0);
	assert_string_equal(final, "n.xml.1");
	read_text(sp.rejected, "n.xml", &buf);
	assert_string_equal((char *)buf.data, "<Notice>broken");
	read_text(sp.rejected, "n.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<second/>");
	read_text(sp.rejected, "n.xml.1.reason", &buf);
	assert_string_equal((char *)buf.data, "schema-invalid\nsecond\n");
	gw_buf_free(&buf);
	tu_rmrf(root);
}

/*
 * A badly named input "r.xml.reason" is rejected under its own name; the
 * reason file of a later "r.xml" must not be written over it.
 */
static void test_reason_file_never_overwrites_an_input(void **state)
{
	char root[PATH_MAX];
	gw_buf buf = GW_BUF_INIT;
	char final[256];
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-reason"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "r.xml.reason", "<first input/>");
	assert_int_equal(spool_reject(&sp, "r.xml.reason", "bad-name", "bad name", final,
				      sizeof(final)),
			 0);
	assert_string_equal(final, "r.xml.reason");
	drop(&sp, "r.xml", "<second input/>");
	assert_int_equal(spool_reject(&sp, "r.xml", "malformed", "broken", final, sizeof(final)),
			 0);
	assert_string_equal(final, "r.xml.1");
	read_text(sp.rejected, "r.xml.reason", &buf);
	assert_string_equal((char *)buf.data, "<first input/>");
	read_text(sp.rejected, "r.xml.reason.reason", &buf);
	assert_string_equal((char *)buf.data, "bad-name\nbad name\n");
	read_text(sp.rejected, "r.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<second input/>");
	read_text(sp.rejected, "r.xml.1.reason", &buf);
	assert_string_equal((char *)buf.data, "malformed\nbroken\n");
	assert_false(present(sp.rejected, "r.xml"));
	gw_buf_free(&buf);
	tu_rmrf(root);
}

static void test_accept_never_overwrites(void **state)
{
	char root[PATH_MAX];
	gw_buf buf = GW_BUF_INIT;
	char final[256];
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-accept"));
	assert_int_equal(spool_open(&sp, root), 0);
	for (int i = 0; i < 3; i++) {
		char text[16];
		snprintf(text, sizeof(text), "<v%d/>", i);
		drop(&sp, "k.xml", text);
		assert_int_equal(spool_accept(&sp, "k.xml", final, sizeof(final)), 0);
	}
	assert_string_equal(final, "k.xml.2");
	read_text(sp.processed, "k.xml", &buf);
	assert_string_equal((char *)buf.data, "<v0/>");
	read_text(sp.processed, "k.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<v1/>");
	read_text(sp.processed, "k.xml.2", &buf);
	assert_string_equal((char *)buf.data, "<v2/>");
	assert_false(present(sp.new_dir, "k.xml"));

	/* Accepting a file that is not there fails and moves nothing. */
	assert_true(spool_accept(&sp, "gone.xml", NULL, 0) < 0);
	gw_buf_free(&buf);
	tu_rmrf(root);
}

/*
 * Several accepted files, one directory sync: each rename takes a free name
 * (never over a file), the files leave incoming/new at once, and the sync
 * of processed/ is a separate step that names the spool when it fails.
 */
static void test_move_several_then_sync_once(void **state)
{
	char root[PATH_MAX], final[256];
	gw_buf buf = GW_BUF_INIT;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-batch"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "a.xml", "<a/>");
	assert_int_equal(spool_accept(&sp, "a.xml", final, sizeof(final)), 0);
	assert_string_equal(final, "a.xml");
	drop(&sp, "a.xml", "<a again/>");
	drop(&sp, "b.xml", "<b/>");
	assert_int_equal(spool_move_processed(&sp, "a.xml", final, sizeof(final)), 0);
	assert_string_equal(final, "a.xml.1");
	assert_int_equal(spool_move_processed(&sp, "b.xml", final, sizeof(final)), 0);
	assert_string_equal(final, "b.xml");
	assert_false(present(sp.new_dir, "a.xml"));
	assert_false(present(sp.new_dir, "b.xml"));
	assert_int_equal(spool_sync_processed(&sp), 0);
	read_text(sp.processed, "a.xml", &buf);
	assert_string_equal((char *)buf.data, "<a/>");
	read_text(sp.processed, "a.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<a again/>");

	/* A file that is not there: the message names the spool and the file. */
	assert_true(spool_move_processed(&sp, "gone.xml", final, sizeof(final)) < 0);
	assert_non_null(strstr(gw_error_last(), "cannot move gone.xml from incoming/new to "
					       "processed/"));
	assert_non_null(strstr(gw_error_last(), root));

	/* processed/ gone: the sync fails with a sentence naming it. */
	tu_rmrf(sp.processed);
	assert_true(spool_sync_processed(&sp) < 0);
	assert_non_null(strstr(gw_error_last(), "cannot sync processed/"));
	gw_buf_free(&buf);
	tu_rmrf(root);
}

static void test_read_applies_hostile_rules(void **state)
{
	char root[PATH_MAX];
	gw_buf buf = GW_BUF_INIT;
	char target[PATH_MAX + 256], link_path[PATH_MAX + 256];
	const char *reason = NULL;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-read"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "ok.xml", "<ok/>");
	assert_int_equal(spool_read(&sp, "ok.xml", 1024, &buf, &reason, NULL), 0);
	assert_string_equal((char *)buf.data, "<ok/>");
	assert_int_equal(spool_read(&sp, "ok.xml", 3, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "too-large");

	snprintf(target, sizeof(target), "%s/ok.xml", sp.new_dir);
	snprintf(link_path, sizeof(link_path), "%s/link.xml", sp.new_dir);
	assert_int_equal(symlink(target, link_path), 0);
	assert_int_equal(spool_read(&sp, "link.xml", 1024, &buf, &reason, NULL), GW_EINVALID);
	assert_string_equal(reason, "symlink");
	/* Rejecting moves the link itself, never its target. */
	assert_int_equal(spool_reject(&sp, "link.xml", reason, gw_error_last(), NULL, 0), 0);
	assert_true(present(sp.new_dir, "ok.xml"));
	assert_true(present(sp.rejected, "link.xml"));
	gw_buf_free(&buf);
	tu_rmrf(root);
}

/*
 * A producer that reuses a name (renames another file over it) after intake
 * read it: the file under the name is no longer the one read, and intake
 * must neither move nor reject it in the old one's name.
 */
static void test_check_same_sees_a_replaced_file(void **state)
{
	char root[PATH_MAX], from[PATH_MAX + 64], to[PATH_MAX + 64];
	gw_buf buf = GW_BUF_INIT;
	const char *reason = NULL;
	struct spool_id id;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-same"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "n.xml", "<first/>");
	assert_int_equal(spool_read(&sp, "n.xml", 1024, &buf, &reason, &id), 0);
	assert_int_equal(spool_check_same(&sp, "n.xml", &id), 0);
	/* the Maildir way: written in tmp/, renamed over the old name */
	snprintf(from, sizeof(from), "%s/n.xml", sp.tmp);
	snprintf(to, sizeof(to), "%s/n.xml", sp.new_dir);
	tu_write(from, "<second/>", 9);
	assert_int_equal(rename(from, to), 0);
	assert_int_equal(spool_check_same(&sp, "n.xml", &id), GW_ETEMP);
	assert_non_null(strstr(gw_error_last(), "replaced or rewritten"));
	assert_int_equal(unlink(to), 0);
	assert_int_equal(spool_check_same(&sp, "n.xml", &id), GW_ETEMP);
	gw_buf_free(&buf);
	tu_rmrf(root);
}

static void set_mtime(const char *dir, const char *name, int64_t ms)
{
	char path[PATH_MAX + 256];
	struct timeval tv[2];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	tv[0].tv_sec = tv[1].tv_sec = (time_t)(ms / 1000);
	tv[0].tv_usec = tv[1].tv_usec = 0;
	assert_int_equal(utimes(path, tv), 0);
}

static void test_expire_processed(void **state)
{
	char root[PATH_MAX];
	struct spool sp;
	int removed = -1;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-expire"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "old.xml", "<o/>");
	drop(&sp, "new.xml", "<n/>");
	assert_int_equal(spool_accept(&sp, "old.xml", NULL, 0), 0);
	assert_int_equal(spool_accept(&sp, "new.xml", NULL, 0), 0);
	set_mtime(sp.processed, "old.xml", NOW - 31 * INT64_C(86400000));
	set_mtime(sp.processed, "new.xml", NOW - 29 * INT64_C(86400000));

	assert_int_equal(spool_expire_processed(&sp, 30, NOW, &removed), 0);
	assert_int_equal(removed, 1);
	assert_false(present(sp.processed, "old.xml"));
	assert_true(present(sp.processed, "new.xml"));
	assert_int_equal(spool_expire_processed(&sp, -1, NOW, &removed), GW_EINVALID);
	tu_rmrf(root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_creates_layout),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_list_sorts_ignores_dot_files_and_separates_bad_names),
		cmocka_unit_test(test_reject_writes_reason_and_keeps_bytes),
		cmocka_unit_test(test_reason_file_never_overwrites_an_input),
		cmocka_unit_test(test_accept_never_overwrites),
		cmocka_unit_test(test_move_several_then_sync_once),
		cmocka_unit_test(test_read_applies_hostile_rules),
		cmocka_unit_test(test_check_same_sees_a_replaced_file),
		cmocka_unit_test(test_expire_processed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
