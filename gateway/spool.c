/*
 * spool: the prison-side input directory (see spool.h and spool/README.md).
 *
 * A move out of incoming/new never goes onto an existing name. Into
 * processed/ it is a rename, then an fsync of processed/ only (once for a
 * whole chunk of files, spool_sync_processed; see there why incoming/new
 * needs none); into rejected/ it is fsutil_rename_durable() (rename, then
 * fsync of both directories: rejections are rare). A rejection writes its
 * reason file before it moves the input, so a rejected file is never found
 * without its reason. Files are read with
 * fsutil_read_untrusted() (no symlinks, regular files with one link only,
 * a size limit).
 *
 * Diagnostics name the spool directory and the file name; the contents of
 * a file never appear in them.
 */
#include "spool.h"
#include "err.h"
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SUFFIX_MAX 9999       /* name.1 .. name.9999 before giving up */
#define FINAL_NAME_ROOM 200   /* leaves room for ".reason" and fsutil's temporary prefix */
#define REASON_SUFFIX ".reason"

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

	if (rc == 0 && id) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->size = st.st_size;
		id->mtime = st.st_mtim;
	}
	return rc;
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
	if (st.st_dev != id->dev || st.st_ino != id->ino || st.st_size != id->size ||
	    st.st_mtim.tv_sec != id->mtime.tv_sec || st.st_mtim.tv_nsec != id->mtime.tv_nsec)
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

/* 1 when dir holds name, or name followed by companion (NULL: none). */
static int taken(const char *dir, const char *name, const char *companion)
{
	char with[FINAL_NAME_ROOM + 32];
	int rc = exists(dir, name);

	if (rc != 0 || !companion)
		return rc;
	if ((size_t)snprintf(with, sizeof(with), "%s%s", name, companion) >= sizeof(with))
		return -1;
	return exists(dir, with);
}

/*
 * A name in dir that nothing has: base, base.1, base.2 ... A base too long
 * to carry a suffix and ".reason" is cut to FINAL_NAME_ROOM bytes first
 * (only badly named input can be that long). With a companion (".reason"),
 * the name with it appended must be free too: a rejected input may itself
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

static void copy_out(char *dst, size_t dstlen, const char *src)
{
	if (dst && dstlen)
		snprintf(dst, dstlen, "%s", src);
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
 * A failed fsutil_rename_durable() out of incoming/new, in an operator's
 * words: where the file is now and why. The rename itself failed when the
 * file is still in incoming/new; otherwise only the directory sync did.
 */
static int move_failed(const struct spool *sp, const char *name, const char *to, int rc)
{
	char path[PATH_MAX], cause[256];
	struct stat st;

	snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
	if (fsutil_path(path, sizeof(path), sp->new_dir, name) == 0 && lstat(path, &st) == 0)
		return gw_error_set(rc, "spool %s: cannot move %s from incoming/new to %s: %s",
				    sp->root, name, to, cause);
	return gw_error_wrap(rc, "spool %s: %s was moved to %s, but the move may not survive a "
			     "power cut", sp->root, name, to);
}

/* Stamp the acceptance time, so expiry counts days from when it was taken. */
static void touch(const char *dir, const char *name)
{
	char path[PATH_MAX];

	if (fsutil_path(path, sizeof(path), dir, name) == 0)
		(void)utimensat(AT_FDCWD, path, NULL, AT_SYMLINK_NOFOLLOW);
}

int spool_move_processed(const struct spool *sp, const char *name, char *final_name,
			 size_t final_len)
{
	char final[FINAL_NAME_ROOM + 16], from[PATH_MAX], to[PATH_MAX];
	int rc;

	if ((rc = free_name(sp->processed, name, NULL, final, sizeof(final))) < 0)
		return rc;
	if (fsutil_path(from, sizeof(from), sp->new_dir, name) < 0 ||
	    fsutil_path(to, sizeof(to), sp->processed, final) < 0)
		return GW_EINVALID;
	touch(sp->new_dir, name);
	if (rename(from, to) < 0)
		return gw_error_set(GW_ERROR, "spool %s: cannot move %s from incoming/new to "
				    "processed/: %s", sp->root, name, strerror(errno));
	copy_out(final_name, final_len, final);
	return 0;
}

/*
 * Only processed/ is synced, never incoming/new. The new name must be
 * durable before the file counts as accepted: an input must never vanish,
 * and the name in processed/ is the only one it has once the rename is
 * done. The old name's removal need not be: should a power cut lose it,
 * the file is found in incoming/new again, and intake recognises its bytes
 * by their SHA-256 (recorded in the store before the move) and moves it
 * again as a duplicate with no second set of messages (SPEC section 3:
 * the same bytes dropped twice are harmless). Should a file system that
 * does not journal the rename as one step come back with the file under
 * both names (one inode, two links), it is rejected as "hard-linked" and
 * kept in rejected/ with its reason: also no loss and nothing doubled, and
 * the same as an unsynced rename could always leave behind.
 */
int spool_sync_processed(const struct spool *sp)
{
	char cause[256];

	if (fsutil_sync_dir(sp->processed) == 0)
		return 0;
	snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
	return gw_error_set(GW_ERROR, "spool %s: cannot sync processed/: %s", sp->root, cause);
}

int spool_accept(const struct spool *sp, const char *name, char *final_name, size_t final_len)
{
	char final[FINAL_NAME_ROOM + 16];
	int rc;

	if ((rc = spool_move_processed(sp, name, final, sizeof(final))) < 0)
		return rc;
	if ((rc = spool_sync_processed(sp)) < 0)
		return gw_error_wrap(rc, "spool %s: %s was moved to processed/%s, but the move may "
				     "not survive a power cut", sp->root, name, final);
	copy_out(final_name, final_len, final);
	return 0;
}

/*
 * A reason file whose input stayed in incoming/new goes (best effort, so the
 * next attempt writes it again under the same name); the error store keeps
 * the move's failure.
 */
static void drop_orphan_reason(const struct spool *sp, const char *name, const char *reason_name)
{
	char path[PATH_MAX];
	struct stat st;

	if (fsutil_path(path, sizeof(path), sp->new_dir, name) < 0 || lstat(path, &st) < 0)
		return; /* the input did move: its reason file belongs to it */
	if (fsutil_path(path, sizeof(path), sp->rejected, reason_name) == 0)
		(void)unlink(path); /* not synced: should it come back, the next name is used */
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

int spool_reject(const struct spool *sp, const char *name, const char *code,
		 const char *sentence, char *final_name, size_t final_len)
{
	char final[FINAL_NAME_ROOM + 16], reason_name[FINAL_NAME_ROOM + 32];
	gw_buf text = GW_BUF_INIT;
	int rc;

	if ((rc = free_name(sp->rejected, name, REASON_SUFFIX, final, sizeof(final))) < 0)
		return rc;
	snprintf(reason_name, sizeof(reason_name), "%s" REASON_SUFFIX, final);
	if (put_line(&text, code && *code ? code : "rejected") < 0 ||
	    put_line(&text, sentence && *sentence ? sentence : "no reason was given") < 0) {
		gw_buf_free(&text);
		return GW_ENOMEM;
	}
	rc = fsutil_write_durable(sp->rejected, reason_name, text.data, text.len, 0640);
	gw_buf_free(&text);
	if (rc < 0) {
		char cause[256];
		snprintf(cause, sizeof(cause), "%s", cause_of(gw_error_last()));
		return gw_error_set(rc, "spool %s: cannot write rejected/%s for %s: %s", sp->root,
				    reason_name, name, cause);
	}
	if ((rc = fsutil_rename_durable(sp->new_dir, name, sp->rejected, final)) < 0) {
		rc = move_failed(sp, name, "rejected/", rc);
		drop_orphan_reason(sp, name, reason_name);
		return rc;
	}
	copy_out(final_name, final_len, final);
	return 0;
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
