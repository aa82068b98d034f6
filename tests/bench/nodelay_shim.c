/*
 * nodelay_shim: an LD_PRELOAD experiment, not part of the product. It sets
 * TCP_NODELAY on every socket the process accepts (accept4, which libevent's
 * listener uses), to show what the receiver's answers cost without Nagle's
 * algorithm holding back the second TLS record of a response until the
 * client's delayed ACK (about 40 ms on Linux).
 *
 * Used by `BENCH_RECEIVER_NODELAY=1 tests/bench/run.sh BUILD_DIR` (the
 * table then says WHAT-IF in its header).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static int (*real)(int, struct sockaddr *, socklen_t *, int);
	int one = 1, s;

	if (!real) {
		void *sym = dlsym(RTLD_NEXT, "accept4");
		*(void **)&real = sym;
	}
	s = real(fd, addr, len, flags);
	if (s >= 0)
		(void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return s;
}
