/*
 * bench_daemon: drive a gateway process for the benchmarks and read what
 * the kernel knows about it. Three modes:
 *
 *   bench_daemon run LOG -- CMD...
 *       Run CMD (stderr appended to LOG) to its end. Prints
 *       "wall_ms=W maxrss_kb=K status=S" (wait4's ru_maxrss: the peak
 *       resident set of CMD and any child it waited for).
 *
 *   bench_daemon start LOG SECONDS -- CMD...
 *       Start CMD (a daemon), wait for its "event=started" log line (store
 *       opened, recover_sending done, engine and events set up; the first
 *       scan and dispatch follow at once), stay SECONDS, then read VmHWM
 *       from /proc and stop it with SIGTERM. Prints "startup_ms=T vmhwm_kb=K".
 *
 *   bench_daemon latency LOG SPOOL NOTICES N -- CMD...
 *       Start CMD (`gateway send` without --until-idle), wait for it to be
 *       up, then N times: copy the next file of directory NOTICES into
 *       SPOOL/incoming/tmp, note the time, rename it into SPOOL/incoming/new
 *       and wait for the daemon's "event=delivered" line (written after the
 *       verified receipt is committed). One file at a time, 20 ms apart.
 *       Prints "n=N p50_ms= p90_ms= p99_ms= max_ms= vmhwm_kb=K"; exits 1
 *       if a file is not delivered within 10 s.
 *
 * The log lines are read from a pipe as the daemon writes them and copied
 * to LOG, so the moment is when the line is written, not its millisecond
 * timestamp.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192
#define DELIVER_TIMEOUT_MS 10000
#define START_TIMEOUT_MS 120000

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct child {
	pid_t pid;
	int fd;       /* read end of its stderr */
	FILE *log;
	char buf[LINE_MAX_BYTES];
	size_t len;
};

static void die(const char *what)
{
	fprintf(stderr, "bench_daemon: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void spawn(struct child *c, const char *log, char **argv, int pipe_stderr)
{
	int p[2] = { -1, -1 };

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (!(c->log = fopen(log, "a")))
		die(log);
	if (pipe_stderr && pipe(p) < 0)
		die("pipe");
	if ((c->pid = fork()) < 0)
		die("fork");
	if (c->pid == 0) {
		int fd = pipe_stderr ? p[1] : fileno(c->log);
		dup2(fd, 2);
		if (pipe_stderr) {
			close(p[0]);
			close(p[1]);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "bench_daemon: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pipe_stderr) {
		close(p[1]);
		c->fd = p[0];
	}
}

/*
 * Wait up to timeout_ms for a log line containing `want` (NULL: any line is
 * read and dropped until the timeout). Returns 1 when found, 0 on timeout,
 * -1 when the child closed its stderr.
 */
static int wait_line(struct child *c, const char *want, double timeout_ms)
{
	double end = now_ms() + timeout_ms;

	for (;;) {
		char *nl;
		while ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
			size_t n = (size_t)(nl - c->buf) + 1;
			int hit;
			*nl = '\0';
			hit = want && strstr(c->buf, want) != NULL;
			fprintf(c->log, "%s\n", c->buf);
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			if (hit)
				return 1;
		}
		double left = end - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { c->fd, POLLIN, 0 };
		int rc = poll(&pfd, 1, (int)left + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			die("poll");
		if (rc == 0)
			continue;
		if (c->len == sizeof(c->buf)) /* an overlong line: drop it */
			c->len = 0;
		ssize_t got = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		c->len += (size_t)got;
	}
}

static long vmhwm_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int stop(struct child *c)
{
	int status = 0;

	kill(c->pid, SIGTERM);
	while (wait_line(c, NULL, 50) == 0 && waitpid(c->pid, &status, WNOHANG) == 0)
		;
	if (waitpid(c->pid, &status, 0) < 0 && errno != ECHILD)
		die("waitpid");
	wait_line(c, NULL, 0);
	fclose(c->log);
	return status;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double pct(const double *sorted, int n, double p)
{
	int i = (int)(p / 100.0 * n + 0.999999) - 1; /* nearest-rank */
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return sorted[i];
}

static int copy_file(const char *from, const char *to)
{
	char chunk[65536];
	int in = open(from, O_RDONLY), out;
	ssize_t n;

	if (in < 0)
		return -1;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, chunk, sizeof(chunk))) > 0)
		if (write(out, chunk, (size_t)n) != n) {
			n = -1;
			break;
		}
	close(in);
	if (close(out) < 0 || n < 0)
		return -1;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int only_xml(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return n > 4 && strcmp(d->d_name + n - 4, ".xml") == 0;
}

static char **after_dashes(int argc, char **argv, int at)
{
	if (argc <= at + 1 || strcmp(argv[at], "--") != 0) {
		fprintf(stderr, "bench_daemon: expected -- CMD...\n");
		exit(2);
	}
	return argv + at + 1;
}

static int mode_run(int argc, char **argv)
{
	struct child c;
	struct rusage ru;
	int status;
	double t0 = now_ms();

	spawn(&c, argv[2], after_dashes(argc, argv, 3), 0);
	if (wait4(c.pid, &status, 0, &ru) < 0)
		die("wait4");
	printf("wall_ms=%.1f maxrss_kb=%ld status=%d\n", now_ms() - t0, ru.ru_maxrss,
	       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(c.log);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int mode_start(int argc, char **argv)
{
	struct child c;
	double t0 = now_ms(), up;
	long kb;
	int rc;

	spawn(&c, argv[2], after_dashes(argc, argv, 4), 1);
	rc = wait_line(&c, "event=started", START_TIMEOUT_MS);
	up = now_ms() - t0;
	if (rc != 1) {
		fprintf(stderr, "bench_daemon: the daemon did not start (see %s)\n", argv[2]);
		stop(&c);
		return 1;
	}
	wait_line(&c, NULL, atof(argv[3]) * 1000.0);
	kb = vmhwm_kb(c.pid);
	stop(&c);
	printf("startup_ms=%.1f vmhwm_kb=%ld\n", up, kb);
	return 0;
}

static int mode_latency(int argc, char **argv)
{
	const char *spool = argv[3], *dir = argv[4];
	int n = atoi(argv[5]), lost = 0, files;
	struct dirent **names;
	struct child c;
	double *lat;
	long kb;

	files = scandir(dir, &names, only_xml, by_name);
	if (files < n || n <= 0) {
		fprintf(stderr, "bench_daemon: %s holds %d notices, %d wanted\n", dir, files, n);
		return 2;
	}
	if (!(lat = calloc((size_t)n, sizeof(*lat))))
		die("calloc");
	spawn(&c, argv[2], after_dashes(argc, argv, 6), 1);
	if (wait_line(&c, "event=started", START_TIMEOUT_MS) != 1) {
		fprintf(stderr, "bench_daemon: the daemon did not start (see %s)\n", argv[2]);
		stop(&c);
		return 1;
	}
	wait_line(&c, NULL, 200); /* let it settle */
	for (int i = 0; i < n; i++) {
		char from[4096], tmp[4096], dst[4096];
		double t0;
		int rc;

		snprintf(from, sizeof(from), "%s/%s", dir, names[i]->d_name);
		snprintf(tmp, sizeof(tmp), "%s/incoming/tmp/%s", spool, names[i]->d_name);
		snprintf(dst, sizeof(dst), "%s/incoming/new/%s", spool, names[i]->d_name);
		if (copy_file(from, tmp) < 0)
			die(tmp);
		t0 = now_ms();
		if (rename(tmp, dst) < 0)
			die(dst);
		rc = wait_line(&c, "event=delivered", DELIVER_TIMEOUT_MS);
		lat[i] = now_ms() - t0;
		if (rc != 1) {
			fprintf(stderr, "bench_daemon: %s not delivered within %d ms\n", names[i]->d_name,
				DELIVER_TIMEOUT_MS);
			lost++;
			break;
		}
		wait_line(&c, NULL, 20); /* idle gap; reads the lines that follow */
	}
	kb = vmhwm_kb(c.pid);
	stop(&c);
	if (lost)
		return 1;
	qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
	printf("n=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f vmhwm_kb=%ld\n", n,
	       pct(lat, n, 50), pct(lat, n, 90), pct(lat, n, 99), lat[n - 1], kb);
	for (int i = 0; i < files; i++)
		free(names[i]);
	free(names);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 4 && strcmp(argv[1], "run") == 0)
		return mode_run(argc, argv);
	if (argc > 5 && strcmp(argv[1], "start") == 0)
		return mode_start(argc, argv);
	if (argc > 7 && strcmp(argv[1], "latency") == 0)
		return mode_latency(argc, argv);
	fprintf(stderr, "usage: bench_daemon run LOG -- CMD...\n"
			"       bench_daemon start LOG SECONDS -- CMD...\n"
			"       bench_daemon latency LOG SPOOL NOTICES N -- CMD...\n");
	return 2;
}
