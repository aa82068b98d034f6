/*
 * testutil: see testutil.h.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *env_or(const char *name, const char *fallback)
{
	const char *v = getenv(name);
	return v && *v ? v : fallback;
}

static char *ring_slot(void)
{
	static char ring[8][PATH_MAX];
	static unsigned next;
	return ring[next++ % 8];
}

const char *tu_pki(const char *name)
{
	char *slot = ring_slot();
	snprintf(slot, PATH_MAX, "%s/%s", env_or("GW_PKI_DIR", "build/pki"), name);
	return slot;
}

const char *tu_src(const char *rel)
{
	char *slot = ring_slot();
	snprintf(slot, PATH_MAX, "%s/%s", env_or("GW_SOURCE_DIR", "."), rel);
	return slot;
}

void tu_read(const char *path, gw_buf *out)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	gw_buf_reset(out);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(gw_buf_put(out, chunk, n), 0);
	fclose(f);
	assert_int_equal(gw_buf_grow(out, 0), 0);
	out->data[out->len] = '\0';
}

void tu_rmrf(const char *path)
{
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fail_msg("cannot remove %s", path);
}

const char *tu_tmpdir(const char *tag)
{
	char *slot = ring_slot();
	snprintf(slot, PATH_MAX, "%s/tmp/%s.%ld", env_or("GW_BINARY_DIR", "build"), tag,
		 (long)getpid());
	tu_rmrf(slot);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", slot);
	if (system(cmd) != 0)
		fail_msg("cannot create %s", slot);
	return slot;
}

void tu_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		fail_msg("cannot create %s: %s", path, strerror(errno));
	if (len && fwrite(data, 1, len, f) != len)
		fail_msg("cannot write %s", path);
	fclose(f);
}
