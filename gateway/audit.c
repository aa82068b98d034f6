/*
 * audit: row hashes and the judgement of a chain (see audit.h). The hash
 * and the checks are pure; audit_verify() reads the rows and the recorded
 * head through store.h. store_sqlite.c hashes with this module and
 * operator.c judges with it, so both always agree on what a row's hash is.
 */
#include "audit.h"
#include "err.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char audit_genesis[AUDIT_HASH_HEX] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static int put_netstring(EVP_MD_CTX *md, const char *bytes, size_t len)
{
	char prefix[32];
	int n = snprintf(prefix, sizeof(prefix), "%zu:", len);

	if (n < 0 || !EVP_DigestUpdate(md, prefix, (size_t)n) ||
	    (len && !EVP_DigestUpdate(md, bytes, len)) || !EVP_DigestUpdate(md, ",", 1))
		return -1;
	return 0;
}

static int put_text(EVP_MD_CTX *md, const char *text)
{
	return put_netstring(md, text, strlen(text));
}

static int put_number(EVP_MD_CTX *md, int64_t v)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%" PRId64, v);

	return n < 0 ? -1 : put_netstring(md, text, (size_t)n);
}

int audit_row_hash(const struct audit_row *row, char out[AUDIT_HASH_HEX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok;

	if (!md)
		return gw_error_set(GW_ENOMEM, "out of memory hashing an audit row");
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
	     EVP_DigestUpdate(md, row->prev_hash, strlen(row->prev_hash)) &&
	     put_number(md, row->seq) == 0 && put_number(md, row->time_ms) == 0 &&
	     put_text(md, row->event) == 0 && put_text(md, row->subject) == 0 &&
	     put_text(md, row->from_state) == 0 && put_text(md, row->to_state) == 0 &&
	     put_text(md, row->detail) == 0 && EVP_DigestFinal_ex(md, digest, &len) && len == 32;
	EVP_MD_CTX_free(md);
	if (!ok)
		return gw_error_set(GW_ERROR, "cannot compute SHA-256 of audit row %" PRId64,
				    row->seq);
	for (unsigned i = 0; i < len; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0xf];
	}
	out[64] = '\0';
	return 0;
}

void audit_field_set(char *dst, size_t size, const char *src)
{
	size_t len = src ? strlen(src) : 0;

	if (len >= size) {
		len = size - 1;
		/* do not cut a UTF-8 sequence: back up over continuation bytes */
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--;
	}
	if (len)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

void audit_check_init(struct audit_check *c, const struct audit_head *recorded)
{
	memset(c, 0, sizeof(*c));
	c->intact = true;
	c->recorded.seq = -1;
	if (recorded)
		c->recorded = *recorded;
	memcpy(c->last.hash, audit_genesis, sizeof(c->last.hash));
}

static int broken(struct audit_check *c, int64_t seq, const char *fmt, ...) GW_PRINTF(3, 4);
static int broken(struct audit_check *c, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->problem, sizeof(c->problem), fmt, ap);
	va_end(ap);
	c->intact = false;
	c->bad_seq = seq;
	return 1;
}

int audit_check_row(struct audit_check *c, const struct audit_row *row)
{
	int64_t expected = c->last.seq + 1;
	char computed[AUDIT_HASH_HEX];

	if (!c->intact)
		return 1;
	if (row->seq < expected)
		return broken(c, row->seq,
			      "audit row %" PRId64 " was inserted (rows are numbered from 1 without"
			      " repeats; %" PRId64 " was expected)",
			      row->seq, expected);
	if (row->seq > expected) {
		if (expected == 1 && row->seq == 2)
			return broken(c, 1, "audit row 1 is missing (the trail starts at row 2)");
		if (expected == 1)
			return broken(c, 1,
				      "audit rows 1 to %" PRId64 " are missing (the trail starts"
				      " at row %" PRId64 ")",
				      row->seq - 1, row->seq);
		if (row->seq == expected + 1)
			return broken(c, expected,
				      "audit row %" PRId64 " is missing (chain gap between %" PRId64
				      " and %" PRId64 ")",
				      expected, c->last.seq, row->seq);
		return broken(c, expected,
			      "audit rows %" PRId64 " to %" PRId64 " are missing (chain gap between"
			      " %" PRId64 " and %" PRId64 ")",
			      expected, row->seq - 1, c->last.seq, row->seq);
	}
	if (row->malformed)
		return broken(c, row->seq,
			      "audit row %" PRId64 " was altered (a field holds what the gateway"
			      " never writes)",
			      row->seq);
	if (audit_row_hash(row, computed) < 0)
		return broken(c, row->seq, "audit row %" PRId64 " cannot be hashed: %s", row->seq,
			      gw_error_last());
	if (strcmp(computed, row->hash) != 0)
		return broken(c, row->seq,
			      "audit row %" PRId64 " was altered (its hash does not match its"
			      " content)",
			      row->seq);
	if (strcmp(row->prev_hash, c->last.hash) != 0) {
		if (row->seq == 1)
			return broken(c, 1, "audit row 1 was inserted or altered (it does not start"
					    " the chain)");
		return broken(c, row->seq,
			      "audit row %" PRId64 " was inserted or its predecessor %" PRId64
			      " altered (it does not chain to row %" PRId64 ")",
			      row->seq, c->last.seq, c->last.seq);
	}
	c->rows++;
	c->last.seq = row->seq;
	memcpy(c->last.hash, row->hash, sizeof(c->last.hash));
	if (row->seq == c->recorded.seq)
		memcpy(c->recorded_hash_seen, row->hash, sizeof(c->recorded_hash_seen));
	return 0;
}

int audit_check_end(struct audit_check *c, const char *where)
{
	const struct audit_head *r = &c->recorded;

	if (!c->intact)
		return 1;
	if (r->seq < 0) {
		if (c->rows == 0)
			return 0;
		broken(c, c->last.seq + 1,
		       "no head is recorded (%s is missing): the last rows may have been removed;"
		       " verify with --head SEQ:HASH from the log (event=audit-head)",
		       where);
		return 1;
	}
	if (r->seq > c->last.seq) {
		if (r->seq == c->last.seq + 1)
			broken(c, r->seq,
			       "audit row %" PRId64 " is missing from the end (the trail ends at row"
			       " %" PRId64 "; %s records row %" PRId64 " as the head)",
			       r->seq, c->last.seq, where, r->seq);
		else
			broken(c, c->last.seq + 1,
			       "audit rows %" PRId64 " to %" PRId64 " are missing from the end (the"
			       " trail ends at row %" PRId64 "; %s records row %" PRId64
			       " as the head)",
			       c->last.seq + 1, r->seq, c->last.seq, where, r->seq);
		return 1;
	}
	if (r->seq > 0 && strcmp(c->recorded_hash_seen, r->hash) != 0) {
		broken(c, r->seq,
		       "audit row %" PRId64 " differs from the head recorded in %s (the trail was"
		       " rewritten from row %" PRId64 " or earlier)",
		       r->seq, where, r->seq);
		return 1;
	}
	if (c->last.seq > r->seq) {
		broken(c, r->seq + 1,
		       "audit row %" PRId64 " was inserted after the head recorded in %s (row %"
		       PRId64 "): forged, or committed just before a crash (the log's"
		       " audit-head lines tell which)",
		       r->seq + 1, where, r->seq);
		return 2;
	}
	return 0;
}

struct walk_ctx {
	struct audit_check *c;
};

static int walk_row(const struct audit_row *row, void *opaque)
{
	struct walk_ctx *w = opaque;

	return audit_check_row(w->c, row);
}

static int walk_once(store *st, const struct audit_head *head, const char *where,
		     struct audit_check *c)
{
	struct walk_ctx w = { c };
	int rc;

	audit_check_init(c, head);
	if ((rc = st->ops->audit_walk(st, walk_row, &w)) < 0)
		return rc;
	return audit_check_end(c, where);
}

int audit_verify(store *st, const struct audit_head *given, struct audit_check *c,
		 char *where, size_t wherelen)
{
	struct audit_head head;
	char file[PATH_MAX + 32];
	int rc;

	snprintf(where, wherelen, "the given head");
	if (given) {
		head = *given;
		rc = walk_once(st, &head, where, c);
		if (rc == 2) { /* rows committed after the witness was taken */
			c->intact = true;
			c->bad_seq = 0;
			c->problem[0] = '\0';
			c->beyond = c->last.seq - head.seq;
			rc = 0;
		}
		return rc < 0 ? rc : rc != 0;
	}
	/* The head before the rows: a commit in between makes it lag, never lead. */
	for (int attempt = 0;; attempt++) {
		rc = st->ops->audit_recorded_head(st, &head, file, sizeof(file));
		snprintf(where, wherelen, "%s", file);
		if (rc == GW_ENOTFOUND)
			return walk_once(st, NULL, where, c);
		if (rc < 0)
			return rc;
		rc = walk_once(st, &head, where, c);
		if (rc != 2 || attempt == 3)
			return rc < 0 ? rc : rc != 0;
		/* rows past the head: a commit whose head is being written? */
		usleep(100 * 1000);
	}
}

int audit_head_parse(const char *text, struct audit_head *out)
{
	const char *colon = strchr(text, ':');
	char *end;
	long long seq;

	if (!colon)
		colon = strchr(text, ' ');
	if (!colon)
		return gw_error_set(GW_EINVALID, "a head is SEQ:HASH, e.g. 17:3fa2...; got '%s'",
				    text);
	errno = 0;
	seq = strtoll(text, &end, 10);
	if (errno || end != colon || seq < 0)
		return gw_error_set(GW_EINVALID, "a head is SEQ:HASH; '%s' has no row number", text);
	colon++;
	if (strlen(colon) < 64 || strspn(colon, "0123456789abcdef") != 64 ||
	    (colon[64] && colon[64] != '\n'))
		return gw_error_set(GW_EINVALID, "a head is SEQ:HASH with 64 lowercase hex digits");
	out->seq = seq;
	memcpy(out->hash, colon, 64);
	out->hash[64] = '\0';
	return 0;
}
