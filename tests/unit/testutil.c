/*
 * testutil: see testutil.h.
 */
#include "testutil.h"
#include "testutil_intake.h"
#include "xmlread.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/*
 * Only under the build tree's tmp/: a path from a reused slot (testutil.h)
 * once pointed into the PKI and removed a key.
 */
void tu_rmrf(const char *path)
{
	char cmd[PATH_MAX + 16], root[PATH_MAX];
	snprintf(root, sizeof(root), "%s/tmp/", env_or("GW_BINARY_DIR", "build"));
	if (strncmp(path, root, strlen(root)) != 0 || strstr(path, "/../"))
		fail_msg("refusing to remove %s: not under %s", path, root);
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

int tu_xml_schemas_setup(void **state)
{
	(void)state;
	assert_ok(xmlread_init());
	assert_ok(xmlread_schemas_load(tu_src("schemas")));
	return 0;
}

int tu_xml_schemas_teardown(void **state)
{
	(void)state;
	xmlread_shutdown();
	return 0;
}

int tu_run(const char *cmd, const char *log, int with_stdout)
{
	char full[4096];
	int status;

	snprintf(full, sizeof(full), with_stdout ? "%s >'%s' 2>&1" : "%s 2>'%s'", cmd, log);
	status = system(full);
	assert_true(status != -1 && WIFEXITED(status));
	if (WEXITSTATUS(status) != 0) {
		gw_buf out = GW_BUF_INIT;
		tu_read(log, &out);
		print_message("%s\n%s\n", cmd, (char *)out.data);
		gw_buf_free(&out);
	}
	return WEXITSTATUS(status);
}

void tu_intake_open(struct tu_intake *fx, const unsigned char *pseudonym_key,
		    size_t pseudonym_key_len, int64_t (*now_ms)(void))
{
	char path[PATH_MAX];

	assert_ok(spool_open(&fx->spool, fx->cfg.gateway.spool));
	snprintf(path, sizeof(path), "%s", fx->cfg.gateway.db);
	assert_ok(store_sqlite_open(&fx->st, path));
	assert_ok(signer_open(&fx->sig, tu_pki("gateway.key"), tu_pki("gateway.pem")));
	fx->in.cfg = &fx->cfg;
	fx->in.st = fx->st;
	fx->in.sig = fx->sig;
	fx->in.pseudonym_key = pseudonym_key;
	fx->in.pseudonym_key_len = pseudonym_key_len;
	fx->in.spool = &fx->spool;
	fx->in.now_ms = now_ms;
}

void tu_intake_close(struct tu_intake *fx)
{
	intake_close(&fx->in);
	signer_close(fx->sig);
	fx->st->ops->close(fx->st);
	tu_rmrf(fx->dir);
}
