/*
 * test_log: one key=value line per event, quoted where needed, written
 * whole; the level threshold holds back what is below it.
 */
#include "testutil.h"
#include "log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Run fn with stderr sent to a file, and return what it wrote. */
static void capture(void (*fn)(void), gw_buf *out)
{
	const char *dir = tu_tmpdir("log");
	char path[512];
	int saved = dup(STDERR_FILENO), fd;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0 && saved >= 0);
	dup2(fd, STDERR_FILENO);
	close(fd);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	tu_read(path, out);
	tu_rmrf(dir);
}

static void log_quoting(void)
{
	gw_log_set_level(GW_LOG_INFO);
	gw_log(GW_LOG_INFO, "rejected", "file", "a b.xml", "reason", "say \"no\"", "code",
	       "invalid-nin", "empty", "", "ctl", "x\ny", NULL);
	gw_log(GW_LOG_DEBUG, "hidden", NULL);
	gw_log(GW_LOG_ERROR, "shown", NULL);
}

static void test_line_format_and_quoting(void **state)
{
	gw_buf out = GW_BUF_INIT;
	const char *text;

	capture(log_quoting, &out);
	text = (const char *)out.data;
	assert_non_null(strstr(text, " level=info event=rejected file=\"a b.xml\" reason=\"say \\\"no\\\"\""
				     " code=invalid-nin empty=\"\" ctl=\"x y\"\n"));
	assert_null(strstr(text, "hidden"));
	assert_non_null(strstr(text, " level=error event=shown\n"));
	assert_int_equal(strncmp(text, "ts=", 3), 0);
	/* Exactly two lines: the control character did not break the line. */
	assert_int_equal(text[out.len - 1], '\n');
	size_t lines = 0;
	for (size_t i = 0; i < out.len; i++)
		lines += text[i] == '\n';
	assert_int_equal(lines, 2);
	gw_buf_free(&out);
}

/* A real-looking nin, a synthetic one and a D-number; 11 digits failing the check digits stay. */
static void log_nins(void)
{
	gw_log_set_level(GW_LOG_INFO);
	gw_log(GW_LOG_WARN, "rejected", "file", "15039012488.xml", "error",
	       "cannot read /spool/incoming/new/a-02918510055-b.xml", "other", "x45039010066",
	       "not", "15039012489 and 123456789012", "hash", "15039012488", NULL);
}

static void test_nin_masked_in_values(void **state)
{
	gw_buf out = GW_BUF_INIT;
	const char *text;

	capture(log_nins, &out);
	text = (const char *)out.data;
	assert_non_null(strstr(text, " file=***********.xml"));
	assert_non_null(strstr(text, "a-***********-b.xml"));
	assert_non_null(strstr(text, " other=x***********")); /* a D-number: 45 = 5 + 40 */
	assert_non_null(strstr(text, " not=\"15039012489 and 123456789012\""));
	assert_non_null(strstr(text, " hash=15039012488"));
	assert_null(strstr(text, "02918510055"));
	gw_buf_free(&out);
}

static void test_parse_level(void **state)
{
	enum gw_log_level level;

	assert_int_equal(gw_log_parse_level("warn", &level), 0);
	assert_int_equal(level, GW_LOG_WARN);
	assert_true(gw_log_parse_level("loud", &level) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_format_and_quoting),
		cmocka_unit_test(test_nin_masked_in_values),
		cmocka_unit_test(test_parse_level),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
