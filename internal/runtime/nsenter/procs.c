// One CPU while the Go runtime starts (see procs.go).
//
// The Go runtime sizes its scheduler from the CPUs the process may run on
// (sched_getaffinity) unless GOMAXPROCS is set, and reads the environment
// from the process's initial stack, which a constructor cannot extend. So
// this constructor lets the process run on its first allowed CPU only;
// the runtime then starts with one P and no second thread to wake, and
// the first package initialiser (berth_restore_affinity, from procs.go)
// gives every thread its mask back before any Go code can start a
// process. Not done for the container init (_BERTH_INITPIPE: it gets
// GOMAXPROCS=1 from the runtime, and its affinity is the container's) nor
// when the caller set GOMAXPROCS.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

static cpu_set_t saved_mask;
static int pinned;

__attribute__((constructor)) static void berth_one_cpu(void)
{
	if (getenv("_BERTH_INITPIPE") != NULL || getenv("GOMAXPROCS") != NULL)
		return;
	// More CPUs than a cpu_set_t holds fail with EINVAL: left alone.
	if (sched_getaffinity(0, sizeof(saved_mask), &saved_mask) < 0 || CPU_COUNT(&saved_mask) < 2)
		return;
	cpu_set_t one;
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++) {
		if (CPU_ISSET(i, &saved_mask)) {
			CPU_SET(i, &one);
			break;
		}
	}
	if (sched_setaffinity(0, sizeof(one), &one) == 0)
		pinned = 1;
}

// berth_restore_affinity gives every thread of the process the mask it
// started with; 0 or -errno. It lists the threads until one pass finds
// none left to change: a thread made meanwhile by one not yet restored is
// seen by the next pass, and one made by a restored thread inherits its
// mask.
int berth_restore_affinity(void)
{
	if (!pinned)
		return 0;
	for (int pass = 0; pass < 100; pass++) {
		DIR *d = opendir("/proc/self/task");
		if (d == NULL)
			return -errno;
		int changed = 0;
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			pid_t tid = (pid_t)atoi(e->d_name);
			if (tid <= 0)
				continue;
			cpu_set_t cur;
			if (sched_getaffinity(tid, sizeof(cur), &cur) < 0)
				continue; // the thread exited
			if (CPU_EQUAL(&cur, &saved_mask))
				continue;
			if (sched_setaffinity(tid, sizeof(saved_mask), &saved_mask) < 0 && errno != ESRCH) {
				int err = errno;
				closedir(d);
				return -err;
			}
			changed = 1;
		}
		closedir(d);
		if (!changed) {
			pinned = 0;
			return 0;
		}
	}
	return -EAGAIN;
}
