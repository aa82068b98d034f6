/*
 * outcome: the SPEC section 6 table as code (see outcome.h). Pure.
 */
#include "outcome.h"
#include "err.h"

#include <curl/curl.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *outcome_name(enum outcome_kind kind)
{
	switch (kind) {
	case OUTCOME_DELIVERED:
		return "delivered";
	case OUTCOME_RETRY:
		return "retry";
	case OUTCOME_FAILED:
		return "failed";
	}
	return "unknown";
}

enum outcome_transport outcome_transport_from_curl(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return TRANSPORT_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return TRANSPORT_TIMEOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return TRANSPORT_CONNECT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return TRANSPORT_TLS;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return TRANSPORT_TOO_LARGE;
	default:
		return TRANSPORT_OTHER;
	}
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static bool is(const char *a, const char *b)
{
	return a && strcmp(a, b) == 0;
}

static void set(struct outcome *out, enum outcome_kind kind, bool answered, const char *fmt, ...)
	GW_PRINTF(4, 5);

static void set(struct outcome *out, enum outcome_kind kind, bool answered, const char *fmt, ...)
{
	va_list ap;

	out->kind = kind;
	out->partner_answered = answered;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

static void classify_transport(const struct outcome_input *in, struct outcome *out)
{
	static const char *const prefix[] = {
		[TRANSPORT_OK] = "", [TRANSPORT_TIMEOUT] = "timeout",
		[TRANSPORT_CONNECT] = "connection", [TRANSPORT_TLS] = "tls",
		[TRANSPORT_SERVER_ORG] = "tls: wrong server organisation",
		[TRANSPORT_TOO_LARGE] = "response too large", [TRANSPORT_OTHER] = "transfer",
	};
	const char *text = in->transport_text && *in->transport_text ? in->transport_text
								       : "no detail";

	set(out, OUTCOME_RETRY, false, "%s: %s", prefix[in->transport], text);
}

static void classify_200(const struct outcome_input *in, struct outcome *out)
{
	if (!in->receipt_present) {
		set(out, OUTCOME_RETRY, false, "HTTP 200 without a receipt");
		return;
	}
	if (!in->receipt_verified) {
		set(out, OUTCOME_RETRY, false, "receipt not verified: %s", or_empty(in->receipt_error));
		return;
	}
	if (is(in->receipt_status, "accepted") || is(in->receipt_status, "duplicate")) {
		set(out, OUTCOME_DELIVERED, true, "%s", in->receipt_status);
		return;
	}
	if (is(in->receipt_status, "rejected")) {
		set(out, OUTCOME_FAILED, true, "rejected by receiver: %s (with HTTP 200)",
		    or_empty(in->receipt_reason_code));
		return;
	}
	set(out, OUTCOME_RETRY, false, "receipt status '%s' unknown", or_empty(in->receipt_status));
}

static void classify_rejection(const struct outcome_input *in, struct outcome *out)
{
	if (!in->receipt_present) {
		set(out, OUTCOME_FAILED, true, "rejected (HTTP %ld without a receipt)",
		    in->http_status);
		return;
	}
	if (!in->receipt_verified) {
		set(out, OUTCOME_FAILED, true, "rejected (receipt not verified: %s)",
		    or_empty(in->receipt_error));
		return;
	}
	if (is(in->receipt_status, "rejected")) {
		set(out, OUTCOME_FAILED, true, "rejected by receiver: %s",
		    or_empty(in->receipt_reason_code));
		return;
	}
	set(out, OUTCOME_FAILED, true, "rejected (HTTP %ld contradicts receipt status %s)",
	    in->http_status, or_empty(in->receipt_status));
}

void outcome_classify(const struct outcome_input *in, struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	if (in->transport != TRANSPORT_OK) {
		classify_transport(in, out);
		return;
	}
	switch (in->http_status) {
	case 200:
		classify_200(in, out);
		return;
	case 400:
	case 409:
		classify_rejection(in, out);
		return;
	case 403:
		set(out, OUTCOME_FAILED, true, "refused: TLS client not allowed (HTTP 403)");
		return;
	case 413:
		set(out, OUTCOME_FAILED, true, "refused: message too large for receiver (HTTP 413)");
		return;
	default:
		break;
	}
	if (in->http_status == 429 || in->http_status >= 500)
		set(out, OUTCOME_RETRY, false, "temporary: HTTP %ld", in->http_status);
	else
		set(out, OUTCOME_RETRY, false, "unexpected HTTP %ld", in->http_status);
}
