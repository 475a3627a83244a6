//go:build linux && cgo

// Package startbound drops a Keep's bounding set before its Go runtime
// starts, when the shim gives it (confine.BoundingEnv): a C constructor,
// which runs while the process has one thread, so that every thread the
// runtime and the engine make has the container's bounding set from its
// start, and confinement need not drop it on each thread (libcap's psx
// signals every thread once per capability: 27 capabilities, 7 threads,
// 3 ms). The runtime binary imports it; the shim, which links no cgo, does
// not. A Keep without it drops the set on each thread as before.
package startbound

/*
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/prctl.h>

#ifndef PR_CAPBSET_READ
#define PR_CAPBSET_READ 23
#endif
#ifndef PR_CAPBSET_DROP
#define PR_CAPBSET_DROP 24
#endif

// The bounding set to keep, as "0x..." (confine.BoundingEnv). A value that
// is not a mask is ignored: the Keep then drops the set itself, and says
// why it cannot if it cannot.
__attribute__((constructor)) static void enarx_start_bounding(void) {
	const char *v = getenv("ENARX_KEEP_BOUNDING");
	if (v == NULL || strncmp(v, "0x", 2) != 0 || v[2] == '\0') {
		return;
	}
	char *end = NULL;
	errno = 0;
	unsigned long long keep = strtoull(v + 2, &end, 16);
	if (errno != 0 || end == NULL || *end != '\0') {
		return;
	}
	for (int c = 0; c < 64; c++) {
		int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		if (in < 0) {
			break; // past the kernel's last capability
		}
		if (in == 1 && !(keep & (1ULL << c))) {
			(void)prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
		}
	}
}
*/
import "C"
