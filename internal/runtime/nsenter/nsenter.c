// The namespace half of the container init, run before the Go runtime starts.
//
// Go programs are multi-threaded from their first instruction, and the kernel
// refuses setns(2) into user and mount namespaces and unshare(CLONE_NEWUSER)
// for multi-threaded processes. So the runtime re-executes itself with
// _BERTH_INITPIPE set; this constructor then runs while the process is still
// single-threaded, joins and creates the container's namespaces in the order
// the kernel needs, and forks once so that the Go init that follows is inside
// the new (or joined) PID and time namespaces. The parent half of this
// protocol lives in nsenter.go (package runtime's spawn code).
//
// Protocol on the init pipe (a SOCK_STREAM socket):
//   parent -> child: u32 length, then that many bytes of "key value\n" lines:
//       join TYPE PATH   setns into PATH (TYPE: user mnt pid net ipc uts cgroup time)
//       clone FLAGS      unshare these CLONE_NEW* flags (decimal)
//       usermap 1        ask the parent to write uid_map/gid_map after unshare
//       timens LINE      a line for /proc/self/timens_offsets
//   child -> parent: "U\n" (write my maps) answered by one byte; "P <pid>\n" the
//   pid of the final init (as the parent sees it); "E <errno> <msg>\n" on error.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif

#define MAX_JOINS 16

struct join {
	int type;
	char *path;
	int fd;
};

static int syncfd = -1;

static void writeall(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

static void bail(const char *fmt, ...)
{
	char msg[1024];
	char out[1100];
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int n = snprintf(out, sizeof(out), "E %d %s: %s\n", saved, msg, strerror(saved));
	if (n > 0 && syncfd >= 0)
		writeall(syncfd, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1);
	_exit(1);
}

static int readall(int fd, void *buf, size_t len)
{
	char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EPIPE;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int nstype(const char *name)
{
	static const struct {
		const char *name;
		int flag;
	} types[] = {
		{"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}, {"pid", CLONE_NEWPID},
		{"net", CLONE_NEWNET}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
		{"cgroup", CLONE_NEWCGROUP}, {"time", CLONE_NEWTIME},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(types[i].name, name) == 0)
			return types[i].flag;
	return 0;
}

static void join_ns(struct join *j)
{
	if (setns(j->fd, j->type) < 0)
		bail("setns %s", j->path);
	close(j->fd);
}

__attribute__((constructor)) static void berth_nsenter(void)
{
	const char *env = getenv("_BERTH_INITPIPE");
	if (env == NULL || *env == '\0')
		return;
	syncfd = atoi(env);

	// Keep the runtime binary out of reach of the container's processes
	// while it runs inside the container's namespaces: a non-dumpable
	// process's /proc/PID/exe and memory cannot be opened by them
	// (CVE-2019-5736). execve of the user's program makes it dumpable again.
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		bail("prctl PR_SET_DUMPABLE");

	uint32_t len;
	if (readall(syncfd, &len, sizeof(len)) < 0)
		bail("read namespace config length");
	if (len > 1 << 20) {
		errno = EINVAL;
		bail("namespace config of %u bytes", len);
	}
	char *cfg = calloc(1, (size_t)len + 1);
	if (cfg == NULL)
		bail("allocate namespace config");
	if (readall(syncfd, cfg, len) < 0)
		bail("read namespace config");

	struct join joins[MAX_JOINS];
	int njoins = 0;
	unsigned long cloneflags = 0;
	int usermap = 0;
	char timens[1024] = "";

	for (char *line = strtok(cfg, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		char *val = strchr(line, ' ');
		if (val == NULL)
			continue;
		*val++ = '\0';
		if (strcmp(line, "join") == 0) {
			char *path = strchr(val, ' ');
			if (path == NULL || njoins == MAX_JOINS) {
				errno = EINVAL;
				bail("bad join line");
			}
			*path++ = '\0';
			joins[njoins].type = nstype(val);
			joins[njoins].path = path;
			if (joins[njoins].type == 0) {
				errno = EINVAL;
				bail("unknown namespace type %s", val);
			}
			njoins++;
		} else if (strcmp(line, "clone") == 0) {
			cloneflags = strtoul(val, NULL, 10);
		} else if (strcmp(line, "usermap") == 0) {
			usermap = atoi(val);
		} else if (strcmp(line, "timens") == 0) {
			strncat(timens, val, sizeof(timens) - strlen(timens) - 2);
			strcat(timens, "\n");
		}
	}

	// Open every namespace before joining any: once in the container's
	// mount namespace, /proc/PID paths of the host no longer resolve.
	for (int i = 0; i < njoins; i++) {
		joins[i].fd = open(joins[i].path, O_RDONLY | O_CLOEXEC);
		if (joins[i].fd < 0)
			bail("open namespace %s", joins[i].path);
	}

	// The user namespace comes first: it owns every namespace created or
	// joined after it.
	int in_userns = 0;
	for (int i = 0; i < njoins; i++)
		if (joins[i].type == CLONE_NEWUSER) {
			join_ns(&joins[i]);
			in_userns = 1;
		}
	if (cloneflags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			bail("unshare user namespace");
		if (usermap) {
			// The parent writes our maps; it needs us dumpable for
			// that only while no container process can exist yet.
			if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
				bail("prctl PR_SET_DUMPABLE");
			writeall(syncfd, "U\n", 2);
			char ack;
			if (readall(syncfd, &ack, 1) < 0)
				bail("wait for uid/gid maps");
			if (ack != 'u') {
				errno = EINVAL;
				bail("uid/gid maps not written");
			}
			if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
				bail("prctl PR_SET_DUMPABLE");
		}
		in_userns = 1;
	}
	// Root of the user namespace, whether made or joined: a joined one
	// (another container's) does not map the host uid we still have, and
	// files made with an unmapped owner fail with EOVERFLOW (runc
	// userns.bats "userns join other container userns").
	// A joined one that does not map 0 (EINVAL) is left as it was.
	if (in_userns) {
		int joined = !(cloneflags & CLONE_NEWUSER);
		if (setresgid(0, 0, 0) < 0 && !(joined && errno == EINVAL))
			bail("setresgid to root of the user namespace");
		if (setresuid(0, 0, 0) < 0 && !(joined && errno == EINVAL))
			bail("setresuid to root of the user namespace");
	}
	for (int i = 0; i < njoins; i++)
		if (joins[i].type != CLONE_NEWUSER)
			join_ns(&joins[i]);
	if (cloneflags & ~(unsigned long)CLONE_NEWUSER) {
		if (unshare((int)(cloneflags & ~(unsigned long)CLONE_NEWUSER)) < 0)
			bail("unshare namespaces 0x%lx", cloneflags & ~(unsigned long)CLONE_NEWUSER);
	}
	if (timens[0] != '\0') {
		// Not dumpable, our /proc/self files belong to the host's
		// root, which a user namespace does not map: open would fail
		// with EACCES (runc timens.bats "simple timens + userns").
		// Dumpable only for the open, before any container process.
		if (in_userns && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			bail("prctl PR_SET_DUMPABLE");
		int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			bail("open /proc/self/timens_offsets");
		if (in_userns && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			bail("prctl PR_SET_DUMPABLE");
		if (write(fd, timens, strlen(timens)) < 0)
			bail("write time namespace offsets");
		close(fd);
	}

	// New PID and time namespaces only take effect for children: fork once,
	// always, so the init is the same kind of process on every path.
	pid_t pid = fork();
	if (pid < 0)
		bail("fork container init");
	if (pid > 0) {
		char msg[32];
		int n = snprintf(msg, sizeof(msg), "P %d\n", pid);
		writeall(syncfd, msg, (size_t)n);
		_exit(0);
	}
	if (setsid() < 0)
		bail("setsid");
	free(cfg);
}
