/*
 * store_sqlite: what only the SQLite backend of store.h can answer. Callers
 * use store.h; this is for diagnostics (operators, tests) that must see the
 * durability settings of the live connection, which no other connection
 * can read back (PRAGMA synchronous is per connection).
 */
#ifndef GW_STORE_SQLITE_H
#define GW_STORE_SQLITE_H

#include "store.h"

struct store_sqlite_settings {
	char journal_mode[16]; /* "wal" */
	int synchronous;       /* 2 = FULL */
	int foreign_keys;      /* 1 = on */
	int busy_timeout_ms;
	int schema_version;    /* PRAGMA user_version */
	int temp_store;        /* 2 = MEMORY (journals never go to temporary files) */
};

/* The settings of st's connection; st must come from store_sqlite_open(). */
int store_sqlite_settings(store *st, struct store_sqlite_settings *out);

/*
 * PRAGMA quick_check on st's file (page structure, records, NOT NULL and
 * CHECK constraints; not index contents), for at most budget_ms: a progress
 * handler stops it there. 0 when it found nothing wrong, with *complete
 * saying whether it read the whole file; GW_ERROR with an operator's
 * sentence (the file, what to do) when the file is damaged. It reads every
 * page: about 0.5 s per GiB from the page cache, 20 s per GiB from a cold
 * disk on the reference machine (docs/OPERATIONS.md).
 */
int store_sqlite_check(store *st, int budget_ms, bool *complete);

#endif
