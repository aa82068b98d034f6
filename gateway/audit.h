/*
 * audit: the hash chain of the operator audit trail (SPEC section 10).
 *
 * The store appends one row per state change, in the same transaction as
 * the change (store_sqlite.c); this module owns what a row's hash is and
 * how a chain is judged, so every backend and every tool agrees.
 *
 * A row's hash, as lowercase hex:
 *
 *   hash = SHA-256( prev_hash || enc(seq) || enc(time_ms) || enc(event) ||
 *                   enc(subject) || enc(from_state) || enc(to_state) ||
 *                   enc(detail) )
 *
 * where prev_hash is the previous row's hash as 64 lowercase hex characters
 * (64 '0' for row 1) and enc(x) is a netstring: the byte length of x in
 * decimal, ':', the bytes of x, ','. Numbers are their decimal text. The
 * encoding is unambiguous and can be recomputed with sqlite3 and sha256sum
 * alone (docs/OPERATIONS.md shows how).
 *
 * Rows are numbered 1, 2, 3, ... without gaps. verify walks them in order
 * and names the first row that breaks the chain: a gap (a row removed), a
 * row whose hash does not match its content (changed, or forged without
 * recomputing), or a row that does not chain to its predecessor (inserted,
 * or its predecessor changed with a recomputed hash). The tail is checked
 * against a head (seq, hash) recorded outside the table: the store keeps it
 * in a file next to the database and in the log (event=audit-head).
 *
 * Limit, stated plainly: the chain has no key. Whoever can write both the
 * database and the head file can rewrite history consistently; the log
 * (journald, owned by root, best forwarded off the host) is the independent
 * witness. `gateway audit verify --head SEQ:HASH` checks against a head
 * taken from the log.
 */
#ifndef GW_AUDIT_H
#define GW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_HASH_HEX 65 /* 64 hex digits + NUL */

struct audit_row {
	int64_t seq;
	int64_t time_ms;
	char event[32];
	char subject[65];   /* message or notice id; may be empty */
	char from_state[16];
	char to_state[16];
	char detail[512];   /* never personal data */
	char prev_hash[AUDIT_HASH_HEX];
	char hash[AUDIT_HASH_HEX];
	bool malformed;     /* a field did not fit or was not text: never written so */
};

/* The head of a chain: its last row. seq 0: an empty chain. */
struct audit_head {
	int64_t seq;
	char hash[AUDIT_HASH_HEX];
};

/* 64 '0': the prev_hash of row 1. */
extern const char audit_genesis[AUDIT_HASH_HEX];

/* The hash of row (over row->prev_hash and its fields) into out. */
int audit_row_hash(const struct audit_row *row, char out[AUDIT_HASH_HEX]);

/* Copy text into a row field, cut at a UTF-8 boundary when too long. */
void audit_field_set(char *dst, size_t size, const char *src);

/*
 * Judging a chain: feed rows in seq order to audit_check_row(), then call
 * audit_check_end(). The first problem stops the walk (audit_check_row
 * returns 1) and is kept in problem[] as a sentence naming the row.
 */
struct audit_check {
	int64_t rows;            /* rows seen */
	struct audit_head last;  /* the last row seen */
	struct audit_head recorded; /* the head to compare with; seq -1: none */
	char recorded_hash_seen[AUDIT_HASH_HEX]; /* hash of row recorded.seq, if met */
	bool intact;
	int64_t beyond;          /* rows after a given head (not covered by it) */
	int64_t bad_seq;         /* the row named; 0 when intact */
	char problem[320];
};

/* recorded may be NULL (no head known: the tail cannot be checked). */
void audit_check_init(struct audit_check *c, const struct audit_head *recorded);
int audit_check_row(struct audit_check *c, const struct audit_row *row);
/*
 * Compares the tail with the recorded head. Returns 0 intact, 1 not, 2 not
 * because rows follow the recorded head (forged, or a commit whose head was
 * not written yet: audit_verify() looks again before it believes that).
 */
int audit_check_end(struct audit_check *c, const char *recorded_where);

/*
 * The whole verification: the recorded head (or `given`, e.g. from the
 * log), then every row. 0 intact, 1 not (c->problem names the first row),
 * negative on a store error. where gets the name of the head compared.
 * A given head is a witness from the past: rows after it are expected
 * (counted in c->beyond); rows after the recorded head file are not.
 */
struct store;
int audit_verify(struct store *st, const struct audit_head *given, struct audit_check *c,
		 char *where, size_t wherelen);

/* "SEQ:HASH" (as the log's audit-head line gives them) into a head. */
int audit_head_parse(const char *text, struct audit_head *out);

#endif
