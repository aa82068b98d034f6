/*
 * report: numbers for operators computed from the store and the
 * configuration, shared by the command line (operator.c), the web view and
 * the metrics. Read-only; nothing here writes.
 *
 * Timeliness (SPEC section 9, the national audit's question). One row per
 * prison (the notice's sender unit) and month of the release date. Exactly:
 *
 *   notice      a release notice at its latest revision, counted when that
 *               revision is a release (a notice later withdrawn is not) and
 *               its release date is within [from, to]. Its sender unit and
 *               release date are those of the latest revision.
 *   recipient   a message of that latest revision (one per recipient).
 *   reached     delivered, and the Oslo date of the first verified
 *               accepted or duplicate receipt is on or before the release
 *               date minus the endpoint's lead_days (default 14; 0
 *               means on or before the release date itself).
 *   late        delivered after that date, or delivered without a receipt
 *               that proves it (never expected; kept visible).
 *   held_no_consent  held with the reason "no consent".
 *   held_other  held for any other reason (no endpoint, encryption, ...).
 *   failed      failed.
 *   pending     queued or sending: not decided yet.
 *   cancelled   cancelled (by a withdrawal of some services or an operator).
 *   weekend_releases  notices whose release is flagged weekend-release.
 *   median_lead_days  median over delivered recipients with a receipt of
 *               (release date - Oslo date of the receipt) in days; the mean
 *               of the middle two when their number is even.
 *   reached_share     reached / recipients (0 when there are none).
 *
 * recipients = reached + late + held_no_consent + held_other + failed +
 * pending + cancelled, always.
 */
#ifndef GW_REPORT_H
#define GW_REPORT_H

#include "store.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_config;

#define REPORT_DEFAULT_LEAD_DAYS 14

struct report_timeliness_row {
	char sender_unit[128];
	char month[8]; /* YYYY-MM of the release date */
	long long notices;
	long long recipients;
	long long reached;
	double reached_share;
	long long late;
	long long held_no_consent;
	long long held_other;
	long long failed;
	long long pending;
	long long cancelled;
	long long weekend_releases;
	long long delivered; /* recipients the median is over */
	bool has_median;     /* false when nothing was delivered with a receipt */
	double median_lead_days;
};

/*
 * The rows for release dates in [from, to] (YYYY-MM-DD, inclusive; NULL or
 * "" for open ends), ordered by sender unit and month. cfg gives each
 * endpoint's lead_days (NULL: 14 for all). *rows is malloc'd (NULL when
 * *n is 0): free with free(). GW_EINVALID when a date is not YYYY-MM-DD.
 */
int report_timeliness(store *st, const struct gw_config *cfg, const char *from, const char *to,
		      struct report_timeliness_row **rows, size_t *n);

/*
 * The lead days the report uses for an endpoint name: its lead_days as
 * configured (14 when the key is absent; 0, when written, is 0 days, as at
 * intake), or 14 for a name that is not configured.
 */
int report_lead_days(const struct gw_config *cfg, const char *endpoint);

/*
 * Every certificate in use: our identity certificate, the identity trust
 * anchors, each endpoint's own trust anchors and encryption certificates
 * (a PEM file may hold several; each is a row; a file is listed once, under
 * the first role that uses it: an endpoint without its own trust uses the
 * identity trust). days_left is whole days
 * until notAfter, rounded down (negative once expired). Files that cannot
 * be read come as a row with error set.
 */
struct report_cert {
	char role[96];          /* "identity", "trust", "endpoint nav trust", "endpoint nav encrypt" */
	char file[PATH_MAX];
	char subject[256];
	char not_after[32];     /* 2027-01-31T12:00:00Z */
	long long days_left;
	char error[160];        /* non-empty: the file could not be read */
};
int report_certificates(const struct gw_config *cfg, int64_t now_ms, struct report_cert **rows,
			size_t *n);

#endif
