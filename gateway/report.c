/*
 * report: the timeliness report and the certificates in use (report.h).
 * One pass over store.release_facts(), which comes ordered by sender unit
 * and release date, so a (unit, month) group is a run of rows and a
 * notice a run within it.
 */
#include "report.h"
#include "config.h"
#include "err.h"
#include "timeutil.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MS_PER_DAY INT64_C(86400000)

int report_lead_days(const struct gw_config *cfg, const char *endpoint)
{
	const struct config_endpoint *ep;

	if (!cfg || !endpoint || !*endpoint)
		return REPORT_DEFAULT_LEAD_DAYS;
	ep = config_endpoint_by_name(cfg, endpoint);
	/* config gives an endpoint without lead_days 14; a 0 written there means
	 * none (as at intake, flag_timeliness): only a day after the release is late */
	return ep ? ep->lead_days : REPORT_DEFAULT_LEAD_DAYS;
}

/* ---- timeliness ---- */

struct tl {
	const struct gw_config *cfg;
	struct report_timeliness_row *rows;
	size_t n, cap;
	struct report_timeliness_row *cur;
	char last_notice[65];
	int *leads; /* lead days of the current group's delivered recipients */
	size_t n_leads, cap_leads;
};

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

/* Close the current group: share and median. */
static void group_end(struct tl *t)
{
	struct report_timeliness_row *r = t->cur;

	if (!r)
		return;
	r->reached_share = r->recipients ? (double)r->reached / (double)r->recipients : 0.0;
	r->delivered = (long long)t->n_leads;
	if (t->n_leads) {
		qsort(t->leads, t->n_leads, sizeof(t->leads[0]), cmp_int);
		size_t mid = t->n_leads / 2;
		r->has_median = true;
		r->median_lead_days = t->n_leads % 2 ? (double)t->leads[mid]
						    : ((double)t->leads[mid - 1] + t->leads[mid]) / 2.0;
	}
	t->n_leads = 0;
	t->cur = NULL;
}

static int group_for(struct tl *t, const struct store_release_fact *f)
{
	char month[8];

	snprintf(month, sizeof(month), "%.7s", f->event_date);
	if (t->cur && strcmp(t->cur->sender_unit, f->sender_unit) == 0 &&
	    strcmp(t->cur->month, month) == 0)
		return 0;
	group_end(t);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct report_timeliness_row *rows = realloc(t->rows, cap * sizeof(*rows));
		if (!rows)
			return gw_error_set(GW_ENOMEM, "out of memory for the timeliness report");
		t->rows = rows;
		t->cap = cap;
	}
	t->cur = &t->rows[t->n++];
	memset(t->cur, 0, sizeof(*t->cur));
	snprintf(t->cur->sender_unit, sizeof(t->cur->sender_unit), "%s", f->sender_unit);
	memcpy(t->cur->month, month, sizeof(month));
	t->last_notice[0] = '\0';
	return 0;
}

static int add_lead(struct tl *t, int lead)
{
	if (t->n_leads == t->cap_leads) {
		size_t cap = t->cap_leads ? t->cap_leads * 2 : 64;
		int *leads = realloc(t->leads, cap * sizeof(*leads));
		if (!leads)
			return gw_error_set(GW_ENOMEM, "out of memory for the timeliness report");
		t->leads = leads;
		t->cap_leads = cap;
	}
	t->leads[t->n_leads++] = lead;
	return 0;
}

/* A delivered recipient: reached in time or late, and its lead time. */
static int delivered(struct tl *t, const struct store_release_fact *f)
{
	struct report_timeliness_row *r = t->cur;
	struct gw_date release;
	int64_t lead;

	if (!f->reached_ms || timeutil_parse_date(f->event_date, &release) < 0) {
		r->late++;
		return 0;
	}
	lead = timeutil_days_from_civil(release) -
	       timeutil_days_from_civil(timeutil_oslo_date(f->reached_ms));
	if (lead >= report_lead_days(t->cfg, f->endpoint))
		r->reached++;
	else
		r->late++;
	return add_lead(t, (int)lead);
}

static int take_fact(const struct store_release_fact *f, void *opaque)
{
	struct tl *t = opaque;
	struct report_timeliness_row *r;
	int rc;

	if ((rc = group_for(t, f)) < 0)
		return rc;
	r = t->cur;
	if (strcmp(t->last_notice, f->notice_id) != 0) {
		snprintf(t->last_notice, sizeof(t->last_notice), "%s", f->notice_id);
		r->notices++;
		if (f->weekend_release)
			r->weekend_releases++;
	}
	if (!f->message_id[0])
		return 0;
	r->recipients++;
	switch (f->state) {
	case MSG_DELIVERED:
		return delivered(t, f);
	case MSG_HELD:
		if (strcmp(f->reason, "no consent") == 0)
			r->held_no_consent++;
		else
			r->held_other++;
		return 0;
	case MSG_FAILED:
		r->failed++;
		return 0;
	case MSG_QUEUED:
	case MSG_SENDING:
		r->pending++;
		return 0;
	default: /* cancelled; superseded cannot be in the latest revision */
		r->cancelled++;
		return 0;
	}
}

static int check_date(const char *what, const char *date)
{
	struct gw_date d;

	if (!date || !*date)
		return 0;
	if (timeutil_parse_date(date, &d) < 0)
		return gw_error_set(GW_EINVALID, "%s date '%s' is not a date (YYYY-MM-DD)", what,
				    date);
	return 0;
}

int report_timeliness(store *st, const struct gw_config *cfg, const char *from, const char *to,
		      struct report_timeliness_row **rows, size_t *n)
{
	struct tl t;
	int rc;

	*rows = NULL;
	*n = 0;
	if ((rc = check_date("--from", from)) < 0 || (rc = check_date("--to", to)) < 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.cfg = cfg;
	rc = st->ops->release_facts(st, from, to, take_fact, &t);
	group_end(&t);
	free(t.leads);
	if (rc < 0) {
		free(t.rows);
		return rc;
	}
	*rows = t.rows;
	*n = t.n;
	return 0;
}

/* ---- certificates ---- */

struct certs {
	struct report_cert *rows;
	size_t n, cap;
	int64_t now_ms;
};

static struct report_cert *cert_row(struct certs *c, const char *role, const char *file)
{
	struct report_cert *r;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct report_cert *rows = realloc(c->rows, cap * sizeof(*rows));
		if (!rows)
			return NULL;
		c->rows = rows;
		c->cap = cap;
	}
	r = &c->rows[c->n++];
	memset(r, 0, sizeof(*r));
	snprintf(r->role, sizeof(r->role), "%s", role);
	snprintf(r->file, sizeof(r->file), "%s", file);
	return r;
}

static void describe(struct report_cert *r, X509 *x, int64_t now_ms)
{
	const ASN1_TIME *na = X509_get0_notAfter(x);
	struct tm tm;
	int64_t secs;

	X509_NAME_oneline(X509_get_subject_name(x), r->subject, (int)sizeof(r->subject));
	if (!na || ASN1_TIME_to_tm(na, &tm) != 1) {
		snprintf(r->error, sizeof(r->error), "the certificate has no readable notAfter");
		return;
	}
	strftime(r->not_after, sizeof(r->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	secs = (int64_t)timegm(&tm) - now_ms / 1000;
	r->days_left = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
}

static int add_file(struct certs *c, const char *role, const char *file)
{
	struct report_cert *r;
	FILE *fp = fopen(file, "r");
	X509 *x;
	int found = 0;

	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->rows[i].file, file) == 0) { /* e.g. an endpoint's default trust */
			if (fp)
				fclose(fp);
			return 0;
		}
	if (!fp) {
		if (!(r = cert_row(c, role, file)))
			return gw_error_set(GW_ENOMEM, "out of memory listing certificates");
		snprintf(r->error, sizeof(r->error), "cannot be read");
		return 0;
	}
	while ((x = PEM_read_X509(fp, NULL, NULL, NULL)) != NULL) {
		found++;
		if (!(r = cert_row(c, role, file))) {
			X509_free(x);
			fclose(fp);
			return gw_error_set(GW_ENOMEM, "out of memory listing certificates");
		}
		describe(r, x, c->now_ms);
		X509_free(x);
	}
	ERR_clear_error();
	fclose(fp);
	if (!found) {
		if (!(r = cert_row(c, role, file)))
			return gw_error_set(GW_ENOMEM, "out of memory listing certificates");
		snprintf(r->error, sizeof(r->error), "holds no PEM certificate");
	}
	return 0;
}

int report_certificates(const struct gw_config *cfg, int64_t now_ms, struct report_cert **rows,
			size_t *n)
{
	struct certs c = { NULL, 0, 0, now_ms ? now_ms : timeutil_now_ms() };
	char role[96];
	int rc = 0;

	*rows = NULL;
	*n = 0;
	if (cfg->identity.cert[0])
		rc = add_file(&c, "identity", cfg->identity.cert);
	for (size_t i = 0; rc == 0 && i < cfg->identity.n_trust; i++)
		rc = add_file(&c, "trust", cfg->identity.trust[i]);
	for (size_t e = 0; rc == 0 && e < cfg->n_endpoints; e++) {
		const struct config_endpoint *ep = &cfg->endpoints[e];
		snprintf(role, sizeof(role), "endpoint %s trust", ep->name);
		for (size_t i = 0; rc == 0 && i < ep->n_trust; i++)
			rc = add_file(&c, role, ep->trust[i]);
		snprintf(role, sizeof(role), "endpoint %s encrypt", ep->name);
		for (size_t i = 0; rc == 0 && i < ep->n_encrypt_cert; i++)
			rc = add_file(&c, role, ep->encrypt_cert[i]);
	}
	if (rc < 0) {
		free(c.rows);
		return rc;
	}
	*rows = c.rows;
	*n = c.n;
	return 0;
}
