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
 * the file that was read leaves: a producer may rename another file over
 * the name after it was read, and that one stays (see spool_move_processed).
 * Only the gateway writes into processed/ and rejected/, and only one
 * intake runs at a time.
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
	/* Tests only (NULL from spool_open): called when a file was taken out of
	 * incoming/new to be checked, before the check, so a test can play the
	 * producer who reuses the name just then. */
	void (*staged_hook)(const struct spool *sp, const char *name);
};

/* The reason code of a file kept in rejected/ unread (SPOOL_KEPT). */
#define SPOOL_REPLACED "replaced-before-move"

/* Where a file is after spool_move_processed(), spool_reject() or spool_recover(). */
enum spool_place {
	SPOOL_IN_NEW, /* incoming/new under its own name: it did not move, or went back */
	SPOOL_MOVED,  /* under its final name in processed/ or rejected/ */
	SPOOL_STAGED, /* half-way, under a staging name in processed/ or rejected/ (a
		       * dot name): spool_recover() puts it back into incoming/new */
	SPOOL_KEPT,   /* rejected/NAME with reason SPOOL_REPLACED: it was not the file
		       * read and could not go back, a producer having taken its name
		       * again; never read */
};

#define SPOOL_MOVED_MAX 224
struct spool_moved {
	enum spool_place place;
	char name[SPOOL_MOVED_MAX]; /* its name in that directory; "" for SPOOL_IN_NEW */
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
 * file must be rejected unread. id (NULL: not wanted) gets the file read,
 * or the entry refused (with *reason): what a move must find.
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
 * Move incoming/new/name into processed/ under a free name (name, name.1,
 * ...) without syncing anything; then one spool_sync_processed() makes
 * every such move durable (incoming/new is not synced: spool.c says why
 * that is safe). A moved file counts as accepted only once that returned
 * 0. *out (may be NULL) says where the file is, whatever the outcome.
 *
 * With id (what spool_read() read) only that file moves: it is renamed to
 * a staging name in processed/ first and compared with id there, so no
 * producer renaming another file onto the name can get that one moved in
 * its place (a check before the rename leaves that gap). Not the file
 * read: it goes back to incoming/new (SPOOL_IN_NEW, read at the next scan)
 * without ever replacing a file there; when a producer has taken the name
 * again meanwhile, it is kept in rejected/ with reason SPOOL_REPLACED
 * (SPOOL_KEPT); GW_ETEMP either way, with a sentence that says which.
 * Without id (tests, bad names) whatever bears the name moves.
 *
 * Other failures name the file or directory and the cause; the file is
 * then in incoming/new, or, when even the way back failed, under its
 * staging name (SPOOL_STAGED) until spool_recover().
 */
int spool_move_processed(const struct spool *sp, const char *name, const struct spool_id *id,
			 struct spool_moved *out);
int spool_sync_processed(const struct spool *sp);
/* One file: spool_move_processed(), then spool_sync_processed(). */
int spool_accept(const struct spool *sp, const char *name, const struct spool_id *id,
		 struct spool_moved *out);

/*
 * Reject incoming/new/name: first rejected/FINAL.reason is written durably
 * ("code\nsentence\n"), then the file is moved to rejected/FINAL as
 * spool_move_processed() moves it (only the file read, with id; NULL for a
 * bad name, which is rejected whatever bears it) and both directories are
 * synced. FINAL is name or name.1, name.2 ... when taken. A crash between
 * the two leaves the input in incoming/new (or under its staging name, put
 * back by spool_recover()), to be rejected again, and a reason without its
 * input, which that rejection writes over: never an input without its
 * reason, never a stray reason beside a NAME.1. *out as for
 * spool_move_processed(); SPOOL_MOVED with an error when only the sync
 * failed.
 */
int spool_reject(const struct spool *sp, const char *name, const struct spool_id *id,
		 const char *code, const char *sentence, struct spool_moved *out);

/*
 * What a crash (or a failed way back) left under a staging name in
 * processed/ or rejected/: one file per call goes back to incoming/new
 * (SPOOL_IN_NEW), or to rejected/ (SPOOL_KEPT) when its name is taken
 * there; 1 with its incoming name in name, 0 when none is left (then
 * processed/ and rejected/ are synced, so moves whose sync failed before
 * are durable too), or a negative code (it stays staged). Run before any
 * move of a process, and after a move or sync failed; never while a move
 * is under way.
 */
int spool_recover(const struct spool *sp, char *name, size_t name_len, struct spool_moved *out);

/* Remove files in processed/ accepted more than `days` days before now_ms. */
int spool_expire_processed(const struct spool *sp, int days, int64_t now_ms, int *removed);

#endif
