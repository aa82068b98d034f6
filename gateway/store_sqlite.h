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
};

/* The settings of st's connection; st must come from store_sqlite_open(). */
int store_sqlite_settings(store *st, struct store_sqlite_settings *out);

#endif
