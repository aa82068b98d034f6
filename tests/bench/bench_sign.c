/*
 * bench_sign: signed messages per second through the gateway's own code
 * path (what intake's seal() does per recipient): consent-filtered copy of a
 * real notice, message_build, signer_sign_to_bytes, receipt_digest.
 *
 *   bench_sign SRC_DIR KEY CERT SECONDS
 *
 * Prints one line: "signed_per_s=N messages=M seconds=S bytes=B".
 * Single thread: compare with one core of `openssl speed`.
 */
#include "buf.h"
#include "err.h"
#include "ident.h"
#include "message.h"
#include "notice.h"
#include "receipt.h"
#include "signer.h"
#include "timeutil.h"
#include "xmlread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_file(const char *path, gw_buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!f)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (gw_buf_put(out, chunk, n) < 0) {
			fclose(f);
			return -1;
		}
	fclose(f);
	return 0;
}

static void copy(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src);
}

int main(int argc, char **argv)
{
	char path[4096];
	gw_buf file = GW_BUF_INIT, out = GW_BUF_INIT;
	struct notice_rules rules = { true, 0, 0 };
	struct notice n;
	const char *reason = NULL;
	signer *sig = NULL;
	double seconds, t0, t1;
	long count = 0;
	size_t bytes = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: bench_sign SRC_DIR KEY CERT SECONDS\n");
		return 2;
	}
	seconds = atof(argv[4]);
	snprintf(path, sizeof(path), "%s/schemas", argv[1]);
	if (xmlread_init() < 0 || xmlread_schemas_load(path) < 0 || dsig_init() < 0) {
		fprintf(stderr, "bench_sign: init: %s\n", gw_error_last());
		return 1;
	}
	snprintf(path, sizeof(path), "%s/spool/demo/01-release-full-consent.xml", argv[1]);
	if (read_file(path, &file) < 0 ||
	    notice_parse(&n, file.data, file.len, &rules, "notice", &reason) < 0) {
		fprintf(stderr, "bench_sign: %s: %s\n", path, gw_error_last());
		return 1;
	}
	if (signer_open(&sig, argv[2], argv[3]) < 0) {
		fprintf(stderr, "bench_sign: %s\n", gw_error_last());
		return 1;
	}
	t0 = now_s();
	do {
		for (int i = 0; i < 20; i++) {
			xmlDocPtr body = NULL, msg = NULL;
			struct msg_header h;
			char digest[45];

			memset(&h, 0, sizeof(h));
			if (ident_uuid4_new(h.message_id) < 0)
				goto fail;
			timeutil_format_utc(timeutil_now_ms(), h.created, sizeof(h.created));
			copy(h.from_orgnr, sizeof(h.from_orgnr), signer_orgnr(sig));
			copy(h.to_orgnr, sizeof(h.to_orgnr), "889960221");
			copy(h.service, sizeof(h.service), "nav");
			copy(h.notice_id, sizeof(h.notice_id), n.id);
			h.revision = n.revision;
			copy(h.kind, sizeof(h.kind), n.kind);
			if (notice_filtered_copy(&n, SVC_NAV, notice_grant_for(&n, SVC_NAV)->categories, &body) < 0 ||
			    message_build(&msg, &h, xmlDocGetRootElement(body)) < 0)
				goto fail;
			xmlFreeDoc(body);
			gw_buf_reset(&out);
			if (signer_sign_to_bytes(sig, msg, &out) < 0 ||
			    receipt_digest(out.data, out.len, digest) < 0)
				goto fail;
			xmlFreeDoc(msg);
			bytes = out.len;
			count++;
		}
		t1 = now_s();
	} while (t1 - t0 < seconds);
	printf("signed_per_s=%.1f messages=%ld seconds=%.3f bytes=%zu\n", (double)count / (t1 - t0),
	       count, t1 - t0, bytes);
	gw_buf_free(&out);
	gw_buf_free(&file);
	signer_close(sig);
	notice_free(&n);
	dsig_shutdown();
	xmlread_shutdown();
	return 0;
fail:
	fprintf(stderr, "bench_sign: %s\n", gw_error_last());
	return 1;
}
