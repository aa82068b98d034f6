/*
 * spool: the directory a prison's case system drops notices into (SPEC
 * section 3; the layout contract for producers is spool/README.md).
 *
 *   incoming/tmp   producers write here ...
 *   incoming/new   ... and rename complete files here (Maildir)
 *   processed/     accepted input, kept spool_expire_processed() days
 *   rejected/      rejected input NAME with NAME.reason (code, sentence)
 *
 * Nothing is ever deleted from incoming/new: a file leaves it only by a
 * rename into processed/ or rejected/ whose new name is made durable (the
 * destination directory is fsynced before the file counts as moved), and
 * never over another file (a taken name gets a suffix .1, .2, ...). Only
 * the gateway writes into processed/ and rejected/, and only one intake
 * runs at a time.
 */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include "buf.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SPOOL_NAME_MAX 132 /* [A-Za-z0-9][A-Za-z0-9._-]{0,127}.xml */

struct spool {
	char root[PATH_MAX];
	char tmp[PATH_MAX];       /* incoming/tmp */
	char new_dir[PATH_MAX];   /* incoming/new */
	char processed[PATH_MAX];
	char rejected[PATH_MAX];
};

/* The entries of incoming/new, each list sorted by name. */
struct spool_list {
	char **names;     /* well-named entries, to be read */
	size_t n_names;
	char **bad_names; /* other entries that are not dot files: reject as "bad-name" */
	size_t n_bad;
};

/*
 * Fill sp for the spool at root, creating missing directories (incoming/
 * group-writable for producers, processed/ and rejected/ 0750). Fails
 * when one is not a directory or they are not on one file system (renames
 * between them must be atomic).
 */
int spool_open(struct spool *sp, const char *root);

/* True when name is one the gateway takes from incoming/new. */
int spool_name_valid(const char *name);

int spool_list_new(const struct spool *sp, struct spool_list *out);
void spool_list_free(struct spool_list *list);

/* Which file a name pointed to when it was read, and how it looked then. */
struct spool_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

/*
 * Read incoming/new/name under the hostile-input rules. GW_EINVALID with
 * *reason ("symlink", "not-regular", "hard-linked", "too-large") when the
 * file must be rejected unread. id (NULL: not wanted) gets the file read.
 */
int spool_read(const struct spool *sp, const char *name, size_t max_bytes, gw_buf *out,
	       const char **reason, struct spool_id *id);

/*
 * 0 when incoming/new/name is still the file spool_read() read; GW_ETEMP
 * with a sentence when a producer replaced it (or took it away) since: it
 * must not be moved or rejected in the name of what was read before.
 */
int spool_check_same(const struct spool *sp, const char *name, const struct spool_id *id);

/*
 * Move incoming/new/name into processed/ (under a free name: name, name.1,
 * ...) and fsync processed/; final name in final_name when given.
 * incoming/new is not synced (spool.c says why that is safe).
 */
int spool_accept(const struct spool *sp, const char *name, char *final_name, size_t final_len);

/*
 * spool_accept() for several files with one directory sync:
 * spool_move_processed() renames without syncing anything, then one
 * spool_sync_processed() makes every such move durable. A moved file
 * counts as accepted only once that returned 0. On failure each names the
 * file or directory and the cause; a file whose rename failed is still in
 * incoming/new.
 */
int spool_move_processed(const struct spool *sp, const char *name, char *final_name,
			 size_t final_len);
int spool_sync_processed(const struct spool *sp);

/*
 * Reject incoming/new/name: first rejected/FINAL.reason is written durably
 * ("code\nsentence\n"), then the file is renamed durably to rejected/FINAL,
 * where FINAL is name or name.1, name.2 ... when taken. A crash between the
 * two leaves the input in incoming/new, to be rejected again.
 */
int spool_reject(const struct spool *sp, const char *name, const char *code,
		 const char *sentence, char *final_name, size_t final_len);

/* Remove files in processed/ accepted more than `days` days before now_ms. */
int spool_expire_processed(const struct spool *sp, int days, int64_t now_ms, int *removed);

#endif
