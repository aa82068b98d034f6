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

#endif
