/*
 * testutil: small helpers shared by the cmocka unit tests. Paths come from
 * the environment CTest sets (GW_SOURCE_DIR, GW_BINARY_DIR, GW_PKI_DIR).
 */
#ifndef GW_TESTUTIL_H
#define GW_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "err.h"

/* Fails the test unless EXPR returns 0, with gw_error_last()'s message. */
#define assert_ok(expr)                                                              \
	do {                                                                         \
		int rc_ = (expr);                                                    \
		if (rc_ != 0)                                                        \
			fail_msg("%s returned %d: %s", #expr, rc_, gw_error_last()); \
	} while (0)

/*
 * Path helpers return one of 8 static slots, reused round-robin by tu_pki,
 * tu_src and tu_tmpdir: copy a path you keep across more than a few calls.
 */
/* A path under the development PKI, e.g. tu_pki("nav-ec.pem"). */
const char *tu_pki(const char *name);
/* A path under the source tree, e.g. tu_src("schemas"). */
const char *tu_src(const char *rel);
/* Read a whole file; fails the test on error. */
void tu_read(const char *path, gw_buf *out);
/* A fresh empty directory under the build tree's tmp/ (removed by tu_rmrf). */
const char *tu_tmpdir(const char *tag);
void tu_rmrf(const char *path);
/* Write a file (mode 0644); fails the test on error. */
void tu_write(const char *path, const void *data, size_t len);

/*
 * Group set-up and tear-down for tests that read XML: xmlread_init and the
 * schemas of the source tree (fails the test on error); xmlread_shutdown.
 */
int tu_xml_schemas_setup(void **state);
int tu_xml_schemas_teardown(void **state);

/*
 * Run a shell command with its stderr (and its stdout too when
 * with_stdout) going to the file log, shown when the command fails. Fails
 * the test unless the command exited normally; returns its exit status.
 */
int tu_run(const char *cmd, const char *log, int with_stdout);

#endif
