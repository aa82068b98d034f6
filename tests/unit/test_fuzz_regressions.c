/*
 * test_fuzz_regressions: every input the fuzzers once broke the gateway
 * with, replayed through the same entry code the fuzzers run
 * (tests/fuzz/fuzz_entry.c, compiled into this test), plus the seed
 * corpora as a smoke test of that code.
 *
 * Inputs: tests/fuzz/regressions/TARGET/ and tests/fuzz/corpus/TARGET/
 * for TARGET notice, message, receipt and config; every regular file whose
 * name does not start with '.' and is not README.md. A replay passes when
 * the entry function returns FUZZ_OK: no property broken. Memory errors and
 * leaks show as a crash of this test in the sanitizer build (make asan).
 */
#include "testutil.h"

/* One translation unit: the unit-test build compiles only this file and testutil.c. */
#include "../fuzz/fuzz_entry.c"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static int setup(void **state)
{
	char pki[PATH_MAX];
	const char *src = tu_src("");

	(void)state;
	snprintf(pki, sizeof(pki), "%s", tu_pki(""));
	if (fuzz_entry_init(pki, src) != 0)
		fail_msg("fuzz_entry_init failed (GW_PKI_DIR %s, GW_SOURCE_DIR %s)", pki, src);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fuzz_entry_shutdown();
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay every input in tests/fuzz/KIND/TARGET; returns how many ran. */
static size_t replay_dir(const char *kind, const char *target)
{
	fuzz_entry_fn fn = fuzz_entry_by_name(target);
	char rel[PATH_MAX], dir[PATH_MAX], path[PATH_MAX * 2];
	char **names = NULL;
	size_t n = 0, cap = 0, i, ran = 0;
	struct dirent *e;
	DIR *d;

	assert_non_null(fn);
	snprintf(rel, sizeof(rel), "tests/fuzz/%s/%s", kind, target);
	snprintf(dir, sizeof(dir), "%s", tu_src(rel));
	d = opendir(dir);
	if (!d)
		return 0; /* no regressions for this target yet */
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md"))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			names = realloc(names, cap * sizeof(*names));
			assert_non_null(names);
		}
		names[n] = strdup(e->d_name);
		assert_non_null(names[n]);
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);

	for (i = 0; i < n; i++) {
		gw_buf bytes = GW_BUF_INIT;
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			tu_read(path, &bytes);
			if (fn(bytes.data ? bytes.data : (const uint8_t *)"", bytes.len) != FUZZ_OK)
				fail_msg("%s/%s/%s breaks a property (see stderr)", kind, target,
					 names[i]);
			ran++;
		}
		gw_buf_free(&bytes);
		free(names[i]);
	}
	free(names);
	return ran;
}

static void replay(const char *target)
{
	size_t seeds = replay_dir("corpus", target);
	size_t regressions = replay_dir("regressions", target);

	print_message("%s: %zu seeds, %zu regressions replayed\n", target, seeds, regressions);
	assert_true(seeds > 0);
}

static void test_notice(void **state)
{
	(void)state;
	replay("notice");
}

static void test_message(void **state)
{
	(void)state;
	replay("message");
}

static void test_receipt(void **state)
{
	(void)state;
	replay("receipt");
}

static void test_config(void **state)
{
	(void)state;
	replay("config");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notice),
		cmocka_unit_test(test_message),
		cmocka_unit_test(test_receipt),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
