/*
 * spool: the prison-side input directory (see spool.h and spool/README.md).
 *
 * A move out of incoming/new never goes onto an existing name
 * (RENAME_NOREPLACE), and moves only the file that was read: it is renamed
 * to a staging name in its destination first and compared there with what
 * was read (take_out); another file that a producer put under the name
 * meanwhile goes back to incoming/new. Into processed/ the moves are then
 * made durable by an fsync of processed/ only (once for a whole chunk of
 * files, spool_sync_processed; see there why incoming/new needs none);
 * into rejected/ by an fsync of both directories (rejections are rare). A
 * rejection writes its reason file before it moves the input, so a
 * rejected file is never found without its reason. spool_recover() puts
 * back what a crash left under a staging name. Files are read with
 * fsutil_read_untrusted() (no symlinks, regular files with one link only,
 * a size limit).
 *
 * Diagnostics name the spool directory and the file name; the contents of
 * a file never appear in them.
 */
#define _GNU_SOURCE /* renameat2() and RENAME_NOREPLACE (glibc 2.28, Linux 3.15) */
#include "spool.h"
#include "err.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUFFIX_MAX 9999       /* name.1 .. name.9999 before giving up */
#define FINAL_NAME_ROOM 200   /* leaves room for ".reason" and fsutil's temporary prefix */
#define REASON_SUFFIX ".reason"
#define STAGE_PREFIX ".taking." /* a file on its way out of incoming/new (take_out) */

/* ---- names ---- */

static int name_char(int c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	return !first && (c == '.' || c == '_' || c == '-');
}

int spool_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len < 5 || len > SPOOL_NAME_MAX || strcmp(name + len - 4, ".xml") != 0)
		return 0;
	for (size_t i = 0; i < len - 4; i++)
		if (!name_char((unsigned char)name[i], i == 0))
			return 0;
	return 1;
}

/* ---- opening ---- */

static int spool_dir(char *out, const char *root, const char *rel, mode_t mode)
{
	struct stat st;

	if (fsutil_path(out, PATH_MAX, root, rel) < 0)
		return GW_EINVALID;
	if (fsutil_mkdirs(out, mode) < 0)
		return gw_error_wrap(GW_ERROR, "spool %s", root);
	if (lstat(out, &st) < 0)
		return gw_error_set(GW_ERROR, "spool: cannot stat %s: %s", out, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return gw_error_set(GW_EINVALID, "spool: %s is not a directory (a symbolic link or "
				    "file is not accepted)", out);
	return 0;
}

static int same_device(const char *a, const char *b)
{
	struct stat sa, sb;

	if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
		return gw_error_set(GW_ERROR, "spool: cannot stat %s or %s: %s", a, b,
				    strerror(errno));
	if (sa.st_dev != sb.st_dev)
		return gw_error_set(GW_EINVALID, "spool: %s and %s are on different file systems; "
				    "files are moved between them by rename, so they must share one",
				    a, b);
	return 0;
}

int spool_open(struct spool *sp, const char *root)
{
	char incoming[PATH_MAX];
	size_t len;

	memset(sp, 0, sizeof(*sp));
	if (!root || !(len = strlen(root)) || len >= sizeof(sp->root))
		return gw_error_set(GW_EINVALID, "spool: no usable root directory given");
	memcpy(sp->root, root, len + 1);
	if (fsutil_mkdirs(root, 0750) < 0)
		return gw_error_wrap(GW_ERROR, "spool %s", root);
	if (spool_dir(incoming, root, "incoming", 0770) < 0 ||
	    spool_dir(sp->tmp, root, "incoming/tmp", 0770) < 0 ||
	    spool_dir(sp->new_dir, root, "incoming/new", 0770) < 0 ||
	    spool_dir(sp->processed, root, "processed", 0750) < 0 ||
	    spool_dir(sp->rejected, root, "rejected", 0750) < 0)
		return GW_ERROR;
	if (same_device(sp->tmp, sp->new_dir) < 0 || same_device(sp->new_dir, sp->processed) < 0 ||
	    same_device(sp->new_dir, sp->rejected) < 0)
		return GW_EINVALID;
	return 0;
}

/* ---- listing ---- */

static int push_name(char ***names, size_t *n, const char *name)
{
	char **grown = realloc(*names, (*n + 1) * sizeof(**names));
	char *copy;

	if (!grown)
		return gw_error_set(GW_ENOMEM, "out of memory listing the spool");
	*names = grown;
	if (!(copy = strdup(name)))
		return gw_error_set(GW_ENOMEM, "out of memory listing the spool");
	grown[(*n)++] = copy;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int spool_list_new(const struct spool *sp, struct spool_list *out)
{
	struct dirent *e;
	DIR *d;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!(d = opendir(sp->new_dir)))
		return gw_error_set(GW_ERROR, "spool: cannot read %s: %s", sp->new_dir, strerror(errno));
	while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue; /* dot files, "." and ".." are not ours to judge */
		if (spool_name_valid(e->d_name))
			rc = push_name(&out->names, &out->n_names, e->d_name);
		else
			rc = push_name(&out->bad_names, &out->n_bad, e->d_name);
	}
	if (rc == 0 && errno != 0)
		rc = gw_error_set(GW_ERROR, "spool: cannot read %s: %s", sp->new_dir, strerror(errno));
	closedir(d);
	if (rc < 0) {
		spool_list_free(out);
		return rc;
	}
	if (out->n_names)
		qsort(out->names, out->n_names, sizeof(*out->names), cmp_names);
	if (out->n_bad)
		qsort(out->bad_names, out->n_bad, sizeof(*out->bad_names), cmp_names);
	return 0;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void spool_list_free(struct spool_list *list)
{
	if (!list)
		return;
	free_names(list->names, list->n_names);
	free_names(list->bad_names, list->n_bad);
	memset(list, 0, sizeof(*list));
}

/* ---- reading ---- */

int spool_read(const struct spool *sp, const char *name, size_t max_bytes, gw_buf *out,
	       const char **reason, struct spool_id *id)
{
	struct stat st;
	int rc = fsutil_read_untrusted(sp->new_dir, name, max_bytes, out, reason, &st);

	if (id && (rc == 0 || *reason)) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->size = st.st_size;
		id->mtime = st.st_mtim;
	}
	return rc;
}

static bool same_file(const struct stat *st, const struct spool_id *id)
{
	return st->st_dev == id->dev && st->st_ino == id->ino && st->st_size == id->size &&
	       st->st_mtim.tv_sec == id->mtime.tv_sec && st->st_mtim.tv_nsec == id->mtime.tv_nsec;
}

int spool_check_same(const struct spool *sp, const char *name, const struct spool_id *id)
{
	char path[PATH_MAX];
	struct stat st;

	if (fsutil_path(path, sizeof(path), sp->new_dir, name) < 0)
		return GW_EINVALID;
	if (lstat(path, &st) < 0)
		return gw_error_set(GW_ETEMP, "spool %s: %s left incoming/new after it was read",
				    sp->root, name);
	if (!same_file(&st, id))
		return gw_error_set(GW_ETEMP, "spool %s: %s was replaced or rewritten after it was "
				    "read (a producer reused the name); the file stays in "
				    "incoming/new and is read at the next scan", sp->root, name);
	return 0;
}

/* ---- moving out of incoming/new ---- */

static int exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if (fsutil_path(path, sizeof(path), dir, name) < 0)
		return -1;
	return lstat(path, &st) == 0 || errno != ENOENT;
}

/*
 * 1 when dir/reason_name is a reason file left without its input: a
 * regular file with no reason of its own beside it (every input in
 * rejected/ has one, so it is no input) whose input the caller found
 * missing. Only a crash between writing a reason and moving its input
 * leaves one (spool_reject), and that input is then still in incoming/new
 * (or goes back there, spool_recover): its rejection writes the new reason
 * over the leftover, under the same name, instead of filing the input as
 * NAME.1 beside a stray reason.
 */
static int reason_left_over(const char *dir, const char *reason_name)
{
	char path[PATH_MAX], own[FINAL_NAME_ROOM + 48];
	struct stat st;

	if (fsutil_path(path, sizeof(path), dir, reason_name) < 0 || lstat(path, &st) < 0 ||
	    !S_ISREG(st.st_mode))
		return 0;
	if ((size_t)snprintf(own, sizeof(own), "%s" REASON_SUFFIX, reason_name) >= sizeof(own))
		return 0;
	return exists(dir, own) == 0;
}

/*
 * 1 when dir holds name, or name followed by companion (NULL: none) that
 * is not a left-over reason (reason_left_over).
 */
static int taken(const char *dir, const char *name, const char *companion)
{
	char with[FINAL_NAME_ROOM + 32];
	int rc = exists(dir, name);

	if (rc != 0 || !companion)
		return rc;
	if ((size_t)snprintf(with, sizeof(with), "%s%s", name, companion) >= sizeof(with))
		return -1;
	if ((rc = exists(dir, with)) != 1)
		return rc;
	return !reason_left_over(dir, with);
}

/*
 * A name in dir that nothing has: base, base.1, base.2 ... A base too long
 * to carry a suffix and ".reason" is cut to FINAL_NAME_ROOM bytes first
 * (only badly named input can be that long). With a companion (".reason"),
 * the name with it appended must be free too (or a reason left over by a
 * crash, reason_left_over): a rejected input may itself
 * be called "X.xml.reason", and the reason file of "X.xml" must never be
 * written over it.
 */
static int free_name(const char *dir, const char *name, const char *companion, char *out,
		     size_t outlen)
{
	char base[FINAL_NAME_ROOM + 1];

	snprintf(base, sizeof(base), "%.*s", FINAL_NAME_ROOM - 8, name);
	for (int i = 0; i <= SUFFIX_MAX; i++) {
		int n = i ? snprintf(out, outlen, "%s.%d", base, i) : snprintf(out, outlen, "%s", base);
		int rc;

		if (n < 0 || (size_t)n >= outlen)
			return gw_error_set(GW_EINVALID, "spool: no room for a final name for %s", base);
		if ((rc = taken(dir, out, companion)) < 0)
			return GW_EINVALID;
		if (!rc)
			return 0;
	}
	return gw_error_set(GW_EEXISTS, "spool: %s already holds %s and %d numbered copies", dir,
			    base, SUFFIX_MAX);
}

static void moved_to(struct spool_moved *out, enum spool_place place, const char *name)
{
	out->place = place;
	snprintf(out->name, sizeof(out->name), "%s", name);
}

/*
 * The cause at the end of an fsutil message ("cannot create X: No space left
 * on device" -> "No space left on device"): what an operator acts on, without
 * the temporary name.
 */
static const char *cause_of(const char *message)
{
	const char *cause = message, *p;

	while ((p = strstr(cause, ": ")) != NULL)
		cause = p + 2;
	return cause;
}

/*
 * rename() that never replaces: RENAME_NOREPLACE. A file system or kernel
 * without it (EINVAL: NFS; ENOSYS: before Linux 3.15) gets a look first,
 * then the rename: there a producer's rename could slip in between and be
 * replaced. -1 with errno.
 */
static int rename_noreplace(const char *from, const char *to)
{
	struct stat st;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (lstat(to, &st) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

/* One line of printable text: control characters become spaces. */
static int put_line(gw_buf *b, const char *text)
{
	for (const char *p = text; *p; p++) {
		char c = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
		if (gw_buf_put(b, &c, 1) < 0)
			return GW_ENOMEM;
	}
	return gw_buf_puts(b, "\n");
}

/* rejected/FINAL.reason ("code\nsentence\n"), durably; its name in reason_name. */
static int write_reason(const struct spool *sp, const char *final, const char *code,
			const char *sentence, char *reason_name, size_t reason_len)
{
	gw_buf text = GW_BUF_INIT;
	int rc;

	snprintf(reason_name, reason_len, "%s" REASON_SUFFIX, final);
	if (put_line(&text, code && *code ? code : "rejected") < 0 ||
	    put_line(&text, sentence && *sentence ? sentence : "no reason was given") < 0) {
		gw_buf_free(&text);
		return GW_ENOMEM;
	}
	rc = fsutil_write_durable(sp->rejected, reason_name, text.data, text.len, 0640);
	gw_buf_free(&text);
	return rc;
}

/*
 * A file taken out of incoming/new (dir/staged) that cannot go back there,
 * because a producer has put another file under its name meanwhile: kept in
 * rejected/ under a free name (only the gateway names files there, so no
 * producer's file can collide with it) with its reason, durably.
 */
static int keep_aside(const struct spool *sp, const char *dir, const char *staged,
		      const char *name, struct spool_moved *out)
{
	char final[FINAL_NAME_ROOM + 16], reason_name[FINAL_NAME_ROOM + 32], sentence[512];
	int rc;

	if ((rc = free_name(sp->rejected, name, REASON_SUFFIX, final, sizeof(final))) < 0)
		return rc;
	snprintf(sentence, sizeof(sentence), "%s was taken out of incoming/new to be checked "
		 "and could not be put back: a producer had put another file under that name "
		 "meanwhile. Unless the gateway's log shows it accepted or a duplicate, deliver "
		 "it again under a new name", name);
	if ((rc = write_reason(sp, final, SPOOL_REPLACED, sentence, reason_name,
			       sizeof(reason_name))) < 0 ||
	    (rc = fsutil_rename_durable(dir, staged, sp->rejected, final)) < 0)
		return rc;
	moved_to(out, SPOOL_KEPT, final);
	return 0;
}

/*
 * dir/staged back to incoming/new/name, never over a file there: 0 with
 * SPOOL_IN_NEW, or with SPOOL_KEPT when the name is taken (keep_aside).
 * Unsynced: a crash finds the file either there or under the staging name,
 * which spool_recover() takes it from. GW_ERROR with SPOOL_STAGED when it
 * cannot be moved at all.
 */
static int put_back(const struct spool *sp, const char *dir, const char *label,
		    const char *staged, const char *name, struct spool_moved *out)
{
	char from[PATH_MAX], to[PATH_MAX], cause[256];
	int err;

	moved_to(out, SPOOL_STAGED, staged);
	if (fsutil_path(from, sizeof(from), dir, staged) < 0 ||
	    fsutil_path(to, sizeof(to), sp->new_dir, name) < 0)
		return GW_EINVALID;
	if (rename_noreplace(from, to) == 0) {
		moved_to(out, SPOOL_IN_NEW, "");
		return 0;
	}
	err = errno;
	if (err == EEXIST && keep_aside(sp, dir, staged, name, out) == 0)
		return 0;
	snprintf(cause, sizeof(cause), "%s",
		 err == EEXIST ? cause_of(gw_error_last()) : strerror(err));
	return gw_error_set(GW_ERROR, "spool %s: cannot put %s back into incoming/new: %s; it "
			    "waits as %s%s until the next scan puts it back", sp->root, name, cause,
			    label, staged);
}

/* The end of the sentence for a file that was not the one read (GW_ETEMP). */
static int replaced(const struct spool *sp, const char *name, const struct spool_moved *out)
{
	if (out->place == SPOOL_KEPT)
		return gw_error_set(GW_ETEMP, "spool %s: %s was replaced or rewritten after it was "
				    "read (a producer reused the name), and the name was taken "
				    "again before that file could be put back: it is kept, never "
				    "read, as rejected/%s with reason " SPOOL_REPLACED, sp->root,
				    name, out->name);
	return gw_error_set(GW_ETEMP, "spool %s: %s was replaced or rewritten after it was read "
			    "(a producer reused the name); the file now under that name is back "
			    "in incoming/new and is read at the next scan", sp->root, name);
}

/* Stamp the acceptance time, so expiry counts days from when it was taken. */
static void touch(const char *path)
{
	(void)utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
}

/* Where a move out of incoming/new goes: processed/ or rejected/. */
struct dest {
	const char *dir;
	const char *label; /* "processed/" */
	bool stamp;        /* touch() on arrival (processed/: expiry) */
};

static int move_failed(const struct spool *sp, const char *name, const struct dest *d)
{
	return gw_error_set(GW_ERROR, "spool %s: cannot move %s from incoming/new to %s: %s",
			    sp->root, name, d->label, strerror(errno));
}

/* A bad name: whatever bears it is rejected for its name, so no check. */
static int take_out_unchecked(const struct spool *sp, const char *name, const struct dest *d,
			      const char *final, struct spool_moved *out)
{
	char from[PATH_MAX], to[PATH_MAX];

	moved_to(out, SPOOL_IN_NEW, "");
	if (fsutil_path(from, sizeof(from), sp->new_dir, name) < 0 ||
	    fsutil_path(to, sizeof(to), d->dir, final) < 0)
		return GW_EINVALID;
	if (rename_noreplace(from, to) < 0)
		return move_failed(sp, name, d);
	if (d->stamp)
		touch(to);
	moved_to(out, SPOOL_MOVED, final);
	return 0;
}

/*
 * incoming/new/name to d->dir/final, but only the file that was read (id):
 * renamed first to a staging name in d->dir (STAGE_PREFIX NAME: a dot name,
 * which no final name is, in a directory only the gateway writes), then
 * compared with id there, where no producer can replace it. So a
 * producer's rename between a check and a move cannot send an unread file
 * on, as it could with the check made first. The file read goes on to
 * final (its time stamped once it is known to be it); any other goes back
 * (put_back) and the caller gets GW_ETEMP.
 *
 * A crash at any step loses nothing: before the first rename the file is
 * in incoming/new; under the staging name spool_recover() puts it back
 * there at the next scan; under final it has arrived. What was read was
 * committed before the move (intake), so a file read again is recognised
 * by its SHA-256 and moved as a duplicate, with no second set of messages
 * (a rejection is simply made again).
 */
static int take_out(const struct spool *sp, const char *name, const struct spool_id *id,
		    const struct dest *d, const char *final, struct spool_moved *out)
{
	char from[PATH_MAX], staged[SPOOL_NAME_MAX + 16], at[PATH_MAX], to[PATH_MAX];
	char cause[256];
	struct stat st;

	if (!id)
		return take_out_unchecked(sp, name, d, final, out);
	moved_to(out, SPOOL_IN_NEW, "");
	if ((size_t)snprintf(staged, sizeof(staged), STAGE_PREFIX "%s", name) >= sizeof(staged) ||
	    fsutil_path(from, sizeof(from), sp->new_dir, name) < 0 ||
	    fsutil_path(at, sizeof(at), d->dir, staged) < 0 ||
	    fsutil_path(to, sizeof(to), d->dir, final) < 0)
		return gw_error_set(GW_EINVALID, "spool %s: no room for the names of %s", sp->root,
				    name);
	if (rename_noreplace(from, at) < 0)
		return move_failed(sp, name, d);
	if (sp->staged_hook)
		sp->staged_hook(sp, name);
	if (lstat(at, &st) < 0 || !same_file(&st, id))
		return put_back(sp, d->dir, d->label, staged, name, out) < 0
			       ? GW_ERROR : replaced(sp, name, out);
	if (d->stamp)
		touch(at);
	if (rename_noreplace(at, to) == 0) {
		moved_to(out, SPOOL_MOVED, final);
		return 0;
	}
	snprintf(cause, sizeof(cause), "%s", strerror(errno));
	if (put_back(sp, d->dir, d->label, staged, name, out) < 0)
		return gw_error_wrap(GW_ERROR, "spool %s: cannot move %s into %s%s: %s", sp->root,
				     name, d->label, final, cause);
	return gw_error_set(GW_ERROR, "spool %s: cannot move %s into %s%s: %s; %s", sp->root, name,
			    d->label, final, cause, out->place == SPOOL_KEPT ?
			    "its name was taken meanwhile, so it is kept in rejected/" :
			    "it is back in incoming/new");
}

int spool_move_processed(const struct spool *sp, const char *name, const struct spool_id *id,
			 struct spool_moved *out)
{
	const struct dest d = { sp->processed, "processed/", true };
	char final[FINAL_NAME_ROOM + 16];
	struct spool_moved ignored;
	int rc;

	out = out ? out : &ignored;
	moved_to(out, SPOOL_IN_NEW, "");
	if ((rc = free_name(sp->processed, name, NULL, final, sizeof(final))) < 0)
		return rc;
	return take_out(sp, name, id, &d, final, out);
}

/*
 * Only processed/ is synced, never incoming/new. The new name must be
 * durable before the file counts as accepted: an input must never vanish,
 * and the name in processed/ is the only one it has once the rename is
 * done. The old name's removal need not be: should a power cut lose it,
 * the file is found in incoming/new again, and intake recognises its bytes
 * by their SHA-256 (recorded in the store before the move) and moves it
 * again as a duplicate with no second set of messages (SPEC section 3:
 * the same bytes dropped twice are harmless). The same holds for a file
 * a power cut leaves under its staging name: spool_recover() puts it back.
 * Should a file system that does not journal the rename as one step come
 * back with the file under both names (one inode, two links), it is
 * rejected as "hard-linked" and kept in rejected/ with its reason: also no
 * loss and nothing doubled, and the same as an unsynced rename could
 * always leave behind.
 */
int spool_sync_processed(const struct spool *sp)
{
	char cause[256];

	if (fsutil_sync_dir(sp->processed) == 0)
		return 0;
	snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
	return gw_error_set(GW_ERROR, "spool %s: cannot sync processed/: %s", sp->root, cause);
}

int spool_accept(const struct spool *sp, const char *name, const struct spool_id *id,
		 struct spool_moved *out)
{
	struct spool_moved ignored;
	int rc;

	out = out ? out : &ignored;
	if ((rc = spool_move_processed(sp, name, id, out)) < 0)
		return rc;
	if ((rc = spool_sync_processed(sp)) < 0)
		return gw_error_wrap(rc, "spool %s: %s was moved to processed/%s, but the move may "
				     "not survive a power cut", sp->root, name, out->name);
	return 0;
}

/* The rename into rejected/ made durable: both directories synced. */
static int sync_rejection(const struct spool *sp, const char *name, const char *final)
{
	char cause[256];

	if (fsutil_sync_dir(sp->rejected) == 0 && fsutil_sync_dir(sp->new_dir) == 0)
		return 0;
	snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
	return gw_error_set(GW_ERROR, "spool %s: %s was moved to rejected/%s with its reason, "
			    "but the move may not survive a power cut: %s", sp->root, name, final,
			    cause);
}

/*
 * The reason first, durably; then the input (take_out). So an input is
 * never under a name in rejected/ without its reason beside it, whenever a
 * crash comes: before the reason is complete nothing is there; between the
 * two steps the input is still in incoming/new (or under the staging name,
 * put back by spool_recover) and a reason file has no input: that input's
 * next rejection writes over it (reason_left_over), so no stray is left
 * and no .1 is needed. A reason whose input did not move is removed at
 * once (best effort: should the removal not survive, the same applies).
 */
int spool_reject(const struct spool *sp, const char *name, const struct spool_id *id,
		 const char *code, const char *sentence, struct spool_moved *out)
{
	const struct dest d = { sp->rejected, "rejected/", false };
	char final[FINAL_NAME_ROOM + 16], reason_name[FINAL_NAME_ROOM + 32], path[PATH_MAX];
	struct spool_moved ignored;
	int rc;

	out = out ? out : &ignored;
	moved_to(out, SPOOL_IN_NEW, "");
	if ((rc = free_name(sp->rejected, name, REASON_SUFFIX, final, sizeof(final))) < 0)
		return rc;
	if ((rc = write_reason(sp, final, code, sentence, reason_name, sizeof(reason_name))) < 0) {
		char cause[256];
		snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
		return gw_error_set(rc, "spool %s: cannot write rejected/%s for %s: %s", sp->root,
				    reason_name, name, cause);
	}
	if ((rc = take_out(sp, name, id, &d, final, out)) < 0) {
		/* its input did not arrive (see above); unless kept there, reason and all */
		if (!(out->place == SPOOL_KEPT && !strcmp(out->name, final)) &&
		    fsutil_path(path, sizeof(path), sp->rejected, reason_name) == 0)
			(void)unlink(path);
		return rc;
	}
	return sync_rejection(sp, name, final);
}

/* ---- recovery ---- */

/* The first staging name in dir into staged (1), or none (0). */
static int find_staged(const char *dir, char *staged, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	if (!d)
		return gw_error_set(GW_ERROR, "spool: cannot read %s: %s", dir, strerror(errno));
	while (!found && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX)) != 0 ||
		    !e->d_name[strlen(STAGE_PREFIX)])
			continue;
		found = (size_t)snprintf(staged, len, "%s", e->d_name) < len;
	}
	closedir(d);
	return found;
}

static int sync_destinations(const struct spool *sp)
{
	char cause[256];

	if (fsutil_sync_dir(sp->processed) == 0 && fsutil_sync_dir(sp->rejected) == 0)
		return 0;
	snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
	return gw_error_set(GW_ERROR, "spool %s: cannot sync processed/ and rejected/: %s",
			    sp->root, cause);
}

int spool_recover(const struct spool *sp, char *name, size_t name_len, struct spool_moved *out)
{
	const struct dest dests[] = { { sp->processed, "processed/", true },
				      { sp->rejected, "rejected/", false } };
	char staged[SPOOL_MOVED_MAX];
	int rc;

	moved_to(out, SPOOL_IN_NEW, "");
	for (size_t i = 0; i < sizeof(dests) / sizeof(dests[0]); i++) {
		if ((rc = find_staged(dests[i].dir, staged, sizeof(staged))) < 0)
			return rc;
		if (!rc)
			continue;
		snprintf(name, name_len, "%s", staged + strlen(STAGE_PREFIX));
		if ((rc = put_back(sp, dests[i].dir, dests[i].label, staged, name, out)) < 0)
			return rc;
		return 1;
	}
	return sync_destinations(sp);
}

/* ---- expiry ---- */

static int expire_one(const struct spool *sp, const char *name, int64_t cutoff_ms)
{
	char path[PATH_MAX];
	struct stat st;
	int64_t mtime_ms;

	if (fsutil_path(path, sizeof(path), sp->processed, name) < 0)
		return GW_EINVALID;
	if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	if (mtime_ms >= cutoff_ms)
		return 0;
	if (unlink(path) < 0)
		return gw_error_set(GW_ERROR, "spool: cannot remove %s: %s", path, strerror(errno));
	return 1;
}

int spool_expire_processed(const struct spool *sp, int days, int64_t now_ms, int *removed)
{
	int64_t cutoff = now_ms - (int64_t)days * 86400000;
	struct dirent *e;
	int count = 0, rc = 0;
	DIR *d;

	if (removed)
		*removed = 0;
	if (days < 0)
		return gw_error_set(GW_EINVALID, "spool: processed files cannot be kept %d days", days);
	if (!(d = opendir(sp->processed)))
		return gw_error_set(GW_ERROR, "spool: cannot read %s: %s", sp->processed,
				    strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if ((rc = expire_one(sp, e->d_name, cutoff)) < 0)
			break;
		count += rc;
		rc = 0;
	}
	closedir(d);
	if (count && fsutil_sync_dir(sp->processed) < 0 && rc == 0)
		rc = GW_ERROR;
	if (removed)
		*removed = count;
	return rc;
}
