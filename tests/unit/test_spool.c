/*
 * test_spool: the spool contract of SPEC section 3. Which names are taken,
 * ignored or rejected; that a rejection keeps the bytes next to a reason
 * file with code and sentence; that nothing is ever overwritten; moves of
 * several files into processed/ with one directory sync; expiry of
 * processed files.
 *
 * Only the file that was read leaves incoming/new: one a producer renamed
 * over the name after the read goes back there (or, when the name was
 * taken again meanwhile, is kept in rejected/ with its reason), for a move
 * and a rejection alike; the time is stamped after the check; what a crash
 * leaves under a staging name is put back (spool_recover); a reason file
 * left by a crash between reason and move is written over by the next
 * rejection of that name, never leaving a stray beside a NAME.1, and at no
 * point of that crash is an input without its reason.
 */
#include "testutil.h"
#include "spool.h"
#include "err.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
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
	struct spool_moved mv;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-reject"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "n.xml", "<Notice>broken");
	assert_int_equal(spool_reject(&sp, "n.xml", NULL, "malformed", "n.xml: line 1:\nbroken",
				      &mv),
			 0);
	assert_string_equal(mv.name, "n.xml");
	assert_false(present(sp.new_dir, "n.xml"));
	read_text(sp.rejected, "n.xml", &buf);
	assert_string_equal((char *)buf.data, "<Notice>broken");
	read_text(sp.rejected, "n.xml.reason", &buf);
	assert_string_equal((char *)buf.data, "malformed\nn.xml: line 1: broken\n");

	/* The same name again: a numbered name, nothing overwritten. */
	drop(&sp, "n.xml", "<second/>");
	assert_int_equal(spool_reject(&sp, "n.xml", NULL, "schema-invalid", "second", &mv),
			 0);
	assert_string_equal(mv.name, "n.xml.1");
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
	struct spool_moved mv;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-reason"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "r.xml.reason", "<first input/>");
	assert_int_equal(spool_reject(&sp, "r.xml.reason", NULL, "bad-name", "bad name", &mv),
			 0);
	assert_string_equal(mv.name, "r.xml.reason");
	drop(&sp, "r.xml", "<second input/>");
	assert_int_equal(spool_reject(&sp, "r.xml", NULL, "malformed", "broken", &mv),
			 0);
	assert_string_equal(mv.name, "r.xml.1");
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
	struct spool_moved mv;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-accept"));
	assert_int_equal(spool_open(&sp, root), 0);
	for (int i = 0; i < 3; i++) {
		char text[16];
		snprintf(text, sizeof(text), "<v%d/>", i);
		drop(&sp, "k.xml", text);
		assert_int_equal(spool_accept(&sp, "k.xml", NULL, &mv), 0);
	}
	assert_string_equal(mv.name, "k.xml.2");
	read_text(sp.processed, "k.xml", &buf);
	assert_string_equal((char *)buf.data, "<v0/>");
	read_text(sp.processed, "k.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<v1/>");
	read_text(sp.processed, "k.xml.2", &buf);
	assert_string_equal((char *)buf.data, "<v2/>");
	assert_false(present(sp.new_dir, "k.xml"));

	/* Accepting a file that is not there fails and moves nothing. */
	assert_true(spool_accept(&sp, "gone.xml", NULL, NULL) < 0);
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
	char root[PATH_MAX];
	struct spool_moved mv;
	gw_buf buf = GW_BUF_INIT;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-batch"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "a.xml", "<a/>");
	assert_int_equal(spool_accept(&sp, "a.xml", NULL, &mv), 0);
	assert_string_equal(mv.name, "a.xml");
	drop(&sp, "a.xml", "<a again/>");
	drop(&sp, "b.xml", "<b/>");
	assert_int_equal(spool_move_processed(&sp, "a.xml", NULL, &mv), 0);
	assert_string_equal(mv.name, "a.xml.1");
	assert_int_equal(spool_move_processed(&sp, "b.xml", NULL, &mv), 0);
	assert_string_equal(mv.name, "b.xml");
	assert_false(present(sp.new_dir, "a.xml"));
	assert_false(present(sp.new_dir, "b.xml"));
	assert_int_equal(spool_sync_processed(&sp), 0);
	read_text(sp.processed, "a.xml", &buf);
	assert_string_equal((char *)buf.data, "<a/>");
	read_text(sp.processed, "a.xml.1", &buf);
	assert_string_equal((char *)buf.data, "<a again/>");

	/* A file that is not there: the message names the spool and the file. */
	assert_true(spool_move_processed(&sp, "gone.xml", NULL, &mv) < 0);
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
	assert_int_equal(spool_reject(&sp, "link.xml", NULL, reason, gw_error_last(), NULL), 0);
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

/* A producer renames a file written in incoming/tmp onto incoming/new/NAME (Maildir). */
static void producer_renames(const struct spool *sp, const char *name, const char *text)
{
	char from[PATH_MAX + 64], to[PATH_MAX + 64];

	snprintf(from, sizeof(from), "%s/%s", sp->tmp, name);
	snprintf(to, sizeof(to), "%s/%s", sp->new_dir, name);
	tu_write(from, text, strlen(text));
	assert_int_equal(rename(from, to), 0);
}

static void expect_text(const char *dir, const char *name, const char *text)
{
	gw_buf buf = GW_BUF_INIT;

	read_text(dir, name, &buf);
	assert_string_equal((char *)buf.data, text);
	gw_buf_free(&buf);
}

/* Every entry of dir, dot files (a staging name) included. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void read_id(const struct spool *sp, const char *name, struct spool_id *id)
{
	gw_buf buf = GW_BUF_INIT;
	const char *reason = NULL;

	assert_int_equal(spool_read(sp, name, 1024, &buf, &reason, id), 0);
	gw_buf_free(&buf);
}

/*
 * A producer renames another file onto a name between the read and the
 * move: the move takes the file out to check it and puts the new one back,
 * unread, never into processed/ or rejected/ in the name of the first;
 * read again, it moves.
 */
static void test_move_takes_only_the_file_read(void **state)
{
	char root[PATH_MAX];
	struct spool_moved mv;
	struct spool_id id;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-only-read"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "n.xml", "<first/>");
	read_id(&sp, "n.xml", &id);
	producer_renames(&sp, "n.xml", "<second/>");
	assert_int_equal(spool_move_processed(&sp, "n.xml", &id, &mv), GW_ETEMP);
	assert_int_equal(mv.place, SPOOL_IN_NEW);
	assert_non_null(strstr(gw_error_last(), "replaced or rewritten after it was read"));
	assert_non_null(strstr(gw_error_last(), "back in incoming/new"));
	expect_text(sp.new_dir, "n.xml", "<second/>");
	assert_int_equal(entries(sp.processed), 0); /* nothing, not even a staging name */

	/* A rejection alike: neither the file nor a reason is left in rejected/. */
	read_id(&sp, "n.xml", &id);
	producer_renames(&sp, "n.xml", "<third/>");
	assert_int_equal(spool_reject(&sp, "n.xml", &id, "malformed", "broken", &mv), GW_ETEMP);
	assert_int_equal(mv.place, SPOOL_IN_NEW);
	expect_text(sp.new_dir, "n.xml", "<third/>");
	assert_int_equal(entries(sp.rejected), 0);

	read_id(&sp, "n.xml", &id);
	assert_int_equal(spool_move_processed(&sp, "n.xml", &id, &mv), 0);
	assert_int_equal(mv.place, SPOOL_MOVED);
	assert_string_equal(mv.name, "n.xml");
	assert_int_equal(spool_sync_processed(&sp), 0);
	expect_text(sp.processed, "n.xml", "<third/>");
	assert_false(present(sp.new_dir, "n.xml"));
	tu_rmrf(root);
}

/* The producer who takes the name again while the gateway has the file out. */
static void take_name_again(const struct spool *sp, const char *name)
{
	producer_renames(sp, name, "<fourth/>");
}

/*
 * Replaced after the read, and the name taken again while the replacement
 * was out to be checked: it cannot go back, so it is kept, unread, in
 * rejected/ under a name no producer can give, with reason
 * replaced-before-move; the newest file stays in incoming/new.
 */
static void test_name_taken_again_keeps_the_file_aside(void **state)
{
	char root[PATH_MAX];
	gw_buf buf = GW_BUF_INIT;
	struct spool_moved mv;
	struct spool_id id;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-kept"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "n.xml", "<first/>");
	read_id(&sp, "n.xml", &id);
	producer_renames(&sp, "n.xml", "<third/>");
	sp.staged_hook = take_name_again;
	assert_int_equal(spool_move_processed(&sp, "n.xml", &id, &mv), GW_ETEMP);
	assert_int_equal(mv.place, SPOOL_KEPT);
	assert_string_equal(mv.name, "n.xml");
	assert_non_null(strstr(gw_error_last(), "kept, never read, as rejected/n.xml"));
	expect_text(sp.rejected, "n.xml", "<third/>");
	read_text(sp.rejected, "n.xml.reason", &buf);
	assert_true(!strncmp((char *)buf.data, SPOOL_REPLACED "\n", strlen(SPOOL_REPLACED) + 1));
	expect_text(sp.new_dir, "n.xml", "<fourth/>");
	assert_int_equal(entries(sp.processed), 0);
	sp.staged_hook = NULL;
	gw_buf_free(&buf);
	tu_rmrf(root);
}

/* Expiry counts from the move: the time is stamped on arrival, after the check. */
static void test_time_stamped_after_the_check(void **state)
{
	char root[PATH_MAX], path[PATH_MAX + 64];
	struct spool_moved mv;
	struct spool_id id;
	struct spool sp;
	struct stat st;
	struct timeval tv[2] = { { 1000000000, 0 }, { 1000000000, 0 } };

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-stamp"));
	assert_int_equal(spool_open(&sp, root), 0);
	assert_int_equal(utimes(drop(&sp, "old.xml", "<o/>"), tv), 0); /* written long ago */
	read_id(&sp, "old.xml", &id);
	assert_int_equal(spool_move_processed(&sp, "old.xml", &id, &mv), 0);
	snprintf(path, sizeof(path), "%s/old.xml", sp.processed);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(st.st_mtime > time(NULL) - 60);
	tu_rmrf(root);
}

/* What a crash left half-way (a staging name) goes back to incoming/new. */
static void test_recover_puts_staged_files_back(void **state)
{
	char root[PATH_MAX], path[PATH_MAX + 64], name[SPOOL_MOVED_MAX];
	struct spool_moved mv;
	struct spool sp;
	int back = 0, kept = 0, rc;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-recover"));
	assert_int_equal(spool_open(&sp, root), 0);
	snprintf(path, sizeof(path), "%s/.taking.a.xml", sp.processed);
	tu_write(path, "<a/>", 4);
	snprintf(path, sizeof(path), "%s/.taking.b.xml", sp.rejected);
	tu_write(path, "<b/>", 4);
	snprintf(path, sizeof(path), "%s/.taking.c.xml", sp.processed);
	tu_write(path, "<c/>", 4);
	drop(&sp, "c.xml", "<another c/>"); /* c.xml's name is taken meanwhile */
	while ((rc = spool_recover(&sp, name, sizeof(name), &mv)) == 1) {
		if (mv.place == SPOOL_KEPT) {
			assert_string_equal(name, "c.xml");
			assert_string_equal(mv.name, "c.xml");
			kept++;
		} else {
			assert_int_equal(mv.place, SPOOL_IN_NEW);
			back++;
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(back, 2);
	assert_int_equal(kept, 1);
	expect_text(sp.new_dir, "a.xml", "<a/>");
	expect_text(sp.new_dir, "b.xml", "<b/>");
	expect_text(sp.new_dir, "c.xml", "<another c/>");
	expect_text(sp.rejected, "c.xml", "<c/>");
	assert_true(present(sp.rejected, "c.xml.reason"));
	assert_int_equal(entries(sp.processed), 0);
	assert_int_equal(entries(sp.rejected), 2);
	tu_rmrf(root);
}

/*
 * A reason file whose input never arrived (a crash between the two steps
 * of a rejection) is written over by the next rejection of that input:
 * it is filed under its own name, not NAME.1 beside a stray reason.
 */
static void test_left_over_reason_is_written_over(void **state)
{
	static const char left[] = "malformed\nx.xml: first try\n";
	char root[PATH_MAX], path[PATH_MAX + 64];
	struct spool_moved mv;
	struct spool sp;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-left-over"));
	assert_int_equal(spool_open(&sp, root), 0);
	snprintf(path, sizeof(path), "%s/x.xml.reason", sp.rejected);
	tu_write(path, left, sizeof(left) - 1);
	drop(&sp, "x.xml", "<broken");
	assert_int_equal(spool_reject(&sp, "x.xml", NULL, "malformed", "x.xml: again", &mv), 0);
	assert_string_equal(mv.name, "x.xml");
	expect_text(sp.rejected, "x.xml", "<broken");
	expect_text(sp.rejected, "x.xml.reason", "malformed\nx.xml: again\n");
	assert_int_equal(entries(sp.rejected), 2);
	tu_rmrf(root);
}

/* The crash: the process dies once the input is out of incoming/new, before the check. */
static void die(const struct spool *sp, const char *name)
{
	(void)sp;
	(void)name;
	_exit(0);
}

/*
 * A rejection killed half-way: its reason is durable, its input under the
 * staging name. Never an input in rejected/ without its reason; the next
 * start puts the input back and its rejection then files it under its own
 * name with its reason, nothing left over.
 */
static void test_rejection_crash_leaves_no_stray(void **state)
{
	char root[PATH_MAX], name[SPOOL_MOVED_MAX];
	struct spool_moved mv;
	struct spool_id id;
	struct spool sp;
	int status = -1;
	pid_t pid;

	snprintf(root, sizeof(root), "%s", tu_tmpdir("spool-crash"));
	assert_int_equal(spool_open(&sp, root), 0);
	drop(&sp, "x.xml", "<broken");
	read_id(&sp, "x.xml", &id);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sp.staged_hook = die;
		(void)spool_reject(&sp, "x.xml", &id, "malformed", "x.xml: broken", &mv);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(present(sp.rejected, "x.xml.reason"));
	assert_false(present(sp.rejected, "x.xml")); /* no input without its reason */
	assert_false(present(sp.new_dir, "x.xml"));

	assert_int_equal(spool_recover(&sp, name, sizeof(name), &mv), 1);
	assert_string_equal(name, "x.xml");
	assert_int_equal(mv.place, SPOOL_IN_NEW);
	assert_int_equal(spool_recover(&sp, name, sizeof(name), &mv), 0);
	read_id(&sp, "x.xml", &id);
	assert_int_equal(spool_reject(&sp, "x.xml", &id, "malformed", "x.xml: broken", &mv), 0);
	assert_string_equal(mv.name, "x.xml");
	expect_text(sp.rejected, "x.xml", "<broken");
	expect_text(sp.rejected, "x.xml.reason", "malformed\nx.xml: broken\n");
	assert_int_equal(entries(sp.rejected), 2);
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
	assert_int_equal(spool_accept(&sp, "old.xml", NULL, NULL), 0);
	assert_int_equal(spool_accept(&sp, "new.xml", NULL, NULL), 0);
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
		cmocka_unit_test(test_move_takes_only_the_file_read),
		cmocka_unit_test(test_name_taken_again_keeps_the_file_aside),
		cmocka_unit_test(test_time_stamped_after_the_check),
		cmocka_unit_test(test_recover_puts_staged_files_back),
		cmocka_unit_test(test_left_over_reason_is_written_over),
		cmocka_unit_test(test_rejection_crash_leaves_no_stray),
		cmocka_unit_test(test_expire_processed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
