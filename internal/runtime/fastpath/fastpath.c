// The plain cases of `berth-runtime start ID`, `delete ID`, `kill ID [SIG]`
// and `state ID`, done before the Go runtime starts.
//
// Starting a Go process costs about 10 ms on a VM where page faults are
// expensive, most of what these commands take; a container's life runs
// start and delete once, and callers such as CRI-O and Podman ask for its
// state again and again. create writes ROOT/ID/fastpath
// (fastpath_linux.go) for a container whose start and delete run no hooks
// and whose cgroups are plain cgroupfs directories. This constructor
// handles exactly those commands, with no global flags but --root, --log
// and --log-format (what containerd's shim, Docker, CRI-O, Podman and
// berth's monitor pass), delete's --force and kill's signal, and returns to
// the Go code, which does the same work in full, whenever anything is not
// the plain case:
// no fastpath file, a container not in the state the command expects,
// processes left in the cgroup, an error before the first side effect.
//
// Format of the fastpath file, one item a line:
//   berth-fastpath 1
//   pid PID
//   start STARTTIME        (field 22 of /proc/PID/stat at create)
//   cgroup PATH            (each cgroup directory; under /sys/fs/cgroup/)
//   parent PATH            (a shared parent removed when it is empty)
//   bound SECONDS          (optional: how long start waits for the init;
//                           60 when absent)
//   pidns own              (optional: the container has its own pid
//                           namespace, which SIGKILL of the init empties)
//   end
// and fastpath-state beside it: what `state` prints, with the status
// written as "\u0001" (fastpath_linux.go).
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define FP_MAX_PATHS 32
#define FP_FILE_MAX 16384

struct fastpath {
	long pid;
	unsigned long long start;
	long bound; // seconds start waits for the init's answer
	int ownpidns; // the container has a pid namespace of its own
	int ncgroups, nparents;
	char *cgroups[FP_MAX_PATHS];
	char *parents[FP_MAX_PATHS];
	char buf[FP_FILE_MAX];
};

// fp_valid_id is checkID of state.go: ^[\w+\-.]+$, not . or .., at most 1024
// bytes; a leading '-' would be a flag to the Go command line.
static int fp_valid_id(const char *id)
{
	size_t n = strlen(id);
	if (n == 0 || n > 1024 || strcmp(id, ".") == 0 || strcmp(id, "..") == 0 || id[0] == '-')
		return 0;
	for (const char *p = id; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '+' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

// fp_read reads a whole small file at dirfd/name; -1 if it cannot or it
// does not fit.
static ssize_t fp_read(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		if (len == size) {
			close(fd);
			return -1;
		}
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	return (ssize_t)len;
}

static int fp_plain_path(const char *p)
{
	return strncmp(p, "/sys/fs/cgroup/", 15) == 0 && strstr(p, "..") == NULL && strstr(p, "//") == NULL;
}

// fp_parse reads the fastpath file; 0 if it is missing or not exactly in
// the format above.
static int fp_parse(int dirfd, struct fastpath *fp)
{
	ssize_t n = fp_read(dirfd, "fastpath", fp->buf, sizeof(fp->buf) - 1);
	if (n <= 0)
		return 0;
	fp->buf[n] = '\0';
	fp->pid = 0;
	fp->start = 0;
	fp->bound = 60;
	fp->ownpidns = 0;
	fp->ncgroups = fp->nparents = 0;
	int line = 0, ended = 0;
	char *save = NULL;
	for (char *l = strtok_r(fp->buf, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save), line++) {
		if (ended)
			return 0;
		if (line == 0) {
			if (strcmp(l, "berth-fastpath 1") != 0)
				return 0;
		} else if (strncmp(l, "pid ", 4) == 0) {
			char *end;
			errno = 0;
			fp->pid = strtol(l + 4, &end, 10);
			if (errno || *end || fp->pid <= 0)
				return 0;
		} else if (strncmp(l, "start ", 6) == 0) {
			char *end;
			errno = 0;
			fp->start = strtoull(l + 6, &end, 10);
			if (errno || *end || fp->start == 0)
				return 0;
		} else if (strncmp(l, "bound ", 6) == 0) {
			char *end;
			errno = 0;
			fp->bound = strtol(l + 6, &end, 10);
			if (errno || *end || fp->bound <= 0)
				return 0;
		} else if (strncmp(l, "cgroup ", 7) == 0) {
			if (fp->ncgroups == FP_MAX_PATHS || !fp_plain_path(l + 7))
				return 0;
			fp->cgroups[fp->ncgroups++] = l + 7;
		} else if (strncmp(l, "parent ", 7) == 0) {
			if (fp->nparents == FP_MAX_PATHS || !fp_plain_path(l + 7))
				return 0;
			fp->parents[fp->nparents++] = l + 7;
		} else if (strcmp(l, "pidns own") == 0) {
			fp->ownpidns = 1;
		} else if (strcmp(l, "end") == 0) {
			ended = 1;
		} else {
			return 0;
		}
	}
	return ended && fp->pid > 0 && fp->start > 0;
}

// fp_alive is processAlive of state.go: pid is still the process that
// started at start, and not a zombie.
static int fp_alive(long pid, unsigned long long start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	ssize_t n = fp_read(AT_FDCWD, path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL)
		return 0;
	p++;
	// Fields after the command: state is the first, starttime the 20th.
	char *save = NULL, *state = NULL, *st = NULL;
	int i = 0;
	for (char *f = strtok_r(p, " ", &save); f != NULL; f = strtok_r(NULL, " ", &save), i++) {
		if (i == 0)
			state = f;
		if (i == 19) {
			st = f;
			break;
		}
	}
	if (state == NULL || st == NULL || state[0] == 'Z' || state[0] == 'X')
		return 0;
	return strtoull(st, NULL, 10) == start;
}

// fp_frozen: one of the container's cgroups is frozen or freezing (v1
// freezer.state not THAWED, v2 cgroup.freeze 1): its init cannot answer.
// With paused it is frozenNow of bounds_linux.go, which decides `state`'s
// "paused": a v1 cgroup FROZEN only through an ancestor
// (freezer.self_freezing 0) is not paused.
static int fp_frozen(const struct fastpath *fp, int paused)
{
	char path[PATH_MAX], buf[32];
	for (int i = 0; i < fp->ncgroups; i++) {
		snprintf(path, sizeof(path), "%s/freezer.state", fp->cgroups[i]);
		ssize_t n = fp_read(AT_FDCWD, path, buf, sizeof(buf) - 1);
		if (n > 0 && strncmp(buf, "THAWED", 6) != 0) {
			if (!paused || strncmp(buf, "FROZEN", 6) != 0)
				return 1; // FREEZING: a pause under way
			snprintf(path, sizeof(path), "%s/freezer.self_freezing", fp->cgroups[i]);
			n = fp_read(AT_FDCWD, path, buf, sizeof(buf) - 1);
			if (n <= 0 || buf[0] != '0' || (n > 1 && buf[1] != '\n'))
				return 1;
		}
		snprintf(path, sizeof(path), "%s/cgroup.freeze", fp->cgroups[i]);
		n = fp_read(AT_FDCWD, path, buf, sizeof(buf) - 1);
		if (n > 0 && buf[0] == '1')
			return 1;
	}
	return 0;
}

// The --log file (-1 without one) and its format, as the Go path opens and
// writes it (cmd/berth-runtime/main.go): containerd's shim reports the
// last error-level record of that file as the runtime's error.
static int fp_logfd = -1, fp_logjson;

// fp_log_error appends msg to the --log file as one error record, in the
// shape of the Go path's slog handlers: JSON
// {"time":"...","level":"error","msg":"..."} or text
// time=... level=error msg="...".
static void fp_log_error(const char *msg)
{
	char line[8192];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char when[64];
	size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	if (fp_logjson)
		snprintf(when + w, sizeof(when) - w, ".%09ldZ", ts.tv_nsec);
	else
		snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);
	size_t n = (size_t)snprintf(line, sizeof(line),
			     fp_logjson ? "{\"time\":\"%s\",\"level\":\"error\",\"msg\":\"" : "time=%s level=error msg=\"", when);
	// Room is kept for the longest escape (6 bytes) and the line's end.
	for (const unsigned char *p = (const unsigned char *)msg; *p && n < sizeof(line) - 10; p++) {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			line[n++] = '\\';
			line[n++] = (char)c;
		} else if (c == '\n') {
			line[n++] = '\\';
			line[n++] = 'n';
		} else if (c == '\t') {
			line[n++] = '\\';
			line[n++] = 't';
		} else if (c < 0x20 || c == 0x7f) {
			n += (size_t)snprintf(line + n, sizeof(line) - n, fp_logjson ? "\\u%04x" : "\\x%02x", c);
		} else {
			line[n++] = (char)c;
		}
	}
	memcpy(line + n, fp_logjson ? "\"}\n" : "\"\n", fp_logjson ? 3 : 2);
	n += fp_logjson ? 3 : 2;
	ssize_t r;
	do
		r = write(fp_logfd, line, n);
	while (r < 0 && errno == EINTR);
}

static void fp_fail(const char *msg)
{
	fprintf(stderr, "berth-runtime: %s\n", msg);
	if (fp_logfd >= 0)
		fp_log_error(msg);
	_exit(1);
}

// fp_start is Runtime.Start for a created container without hooks.
static void fp_start(int dirfd)
{
	struct fastpath *fp = malloc(sizeof(*fp));
	if (fp == NULL || !fp_parse(dirfd, fp) || !fp_alive(fp->pid, fp->start))
		goto fallback;
	struct stat st;
	if (fstatat(dirfd, "exec.fifo", &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISFIFO(st.st_mode))
		goto fallback;
	// The Go path says why.
	if (fp_frozen(fp, 0))
		goto fallback;
	// Non-blocking, so that an init that dies before opening its end
	// cannot hang us; poll reports POLLHUP only once a writer came and went.
	int fd = openat(dirfd, "exec.fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		goto fallback;
	// From here the init may go on: no way back to the Go path.
	static char msg[1 << 16], rest[4096];
	size_t len = 0;
	int grace = 0;
	// Every wait is bounded: the init runs the startContainer hooks
	// before it answers (their bound is in fp->bound), and a frozen init
	// never answers.
	long waited = 0, since_check = 0;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, grace ? 200 : 5);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (r == 0) {
			if (grace)
				break;
			waited += 5, since_check += 5;
			if (since_check >= 100) {
				since_check = 0;
				if (fp_frozen(fp, 0))
					fp_fail("cannot start a container whose cgroup is frozen (paused from outside the runtime?): resume or thaw it first");
				if (waited / 1000 >= fp->bound) {
					char err[128];
					snprintf(err, sizeof(err), "container init did not answer start within %lds", fp->bound);
					fp_fail(err);
				}
			}
			// A short-lived process may already have run and exited;
			// its init opened the fifo, so the data is about to come.
			if (!fp_alive(fp->pid, fp->start))
				grace = 1;
			continue;
		}
		// Past the buffer (a hook's very long error) the rest is read
		// and dropped, so that the init never blocks on a full fifo.
		int full = len == sizeof(msg) - 1;
		ssize_t n = full ? read(fd, rest, sizeof(rest)) : read(fd, msg + len, sizeof(msg) - 1 - len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			break;
		if (!full)
			len += (size_t)n;
	}
	close(fd);
	msg[len] = '\0';
	if (len == 0)
		fp_fail("container init exited before start");
	if (strcmp(msg, "0") != 0) {
		// A startContainer hook failed: the init reports why.
		int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)fp->pid, 0);
		if (pidfd >= 0) {
			if (fp_alive(fp->pid, fp->start))
				syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			close(pidfd);
		}
		unlinkat(dirfd, "exec.fifo", 0);
		fp_fail(msg[0] == '1' ? msg + 1 : msg);
	}
	if (unlinkat(dirfd, "exec.fifo", 0) < 0) {
		char err[256];
		snprintf(err, sizeof(err), "remove exec fifo: %s", strerror(errno));
		fp_fail(err);
	}
	_exit(0);
fallback:
	free(fp);
}

// fp_cgroup_empty: no process in the cgroup at path (or no such cgroup).
static int fp_cgroup_empty(const char *path)
{
	char procs[PATH_MAX], c;
	if (snprintf(procs, sizeof(procs), "%s/cgroup.procs", path) >= (int)sizeof(procs))
		return 0;
	int fd = open(procs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	return n == 0;
}

// fp_delete is Runtime.Delete for a stopped container without hooks whose
// cgroups hold no process. Every check comes before anything is removed;
// a cgroup that will not go returns to the Go path, which finishes the job
// from the same state.
static void fp_delete(int dirfd, const char *dir)
{
	struct fastpath *fp = malloc(sizeof(*fp));
	if (fp == NULL || !fp_parse(dirfd, fp))
		goto fallback;
	// The lock of lockDir in state.go.
	if (flock(dirfd, LOCK_EX) < 0)
		goto fallback;
	if (fp_alive(fp->pid, fp->start))
		goto fallback; // created or running: the Go path kills or refuses
	for (int i = 0; i < fp->ncgroups; i++)
		if (!fp_cgroup_empty(fp->cgroups[i]))
			goto fallback; // processes outlived the init: the Go path kills them
	int dfd2 = dup(dirfd);
	DIR *d = dfd2 < 0 ? NULL : fdopendir(dfd2);
	if (d == NULL) {
		if (dfd2 >= 0)
			close(dfd2);
		goto fallback;
	}
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN) {
			closedir(d);
			goto fallback; // the state directory holds only files
		}
	}
	for (int i = 0; i < fp->ncgroups; i++) {
		if (rmdir(fp->cgroups[i]) < 0 && errno != ENOENT) {
			closedir(d);
			goto fallback;
		}
	}
	for (int i = 0; i < fp->nparents; i++)
		rmdir(fp->parents[i]); // fails while other containers use it
	rewinddir(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, e->d_name, 0) < 0 && errno != ENOENT) {
			closedir(d);
			goto fallback;
		}
	}
	closedir(d);
	if (rmdir(dir) < 0 && errno != ENOENT) {
		char err[PATH_MAX + 64];
		snprintf(err, sizeof(err), "remove state: remove %s: %s", dir, strerror(errno));
		fp_fail(err);
	}
	_exit(0);
fallback:
	free(fp);
	// Closing dirfd (by the caller) drops the lock for the Go path.
}

// fp_signal is the number of the signal s names, for the names callers
// send (with or without SIG, in any case) and plain numbers 1 to 64; 0 for
// anything else, which the Go path parses.
static int fp_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {
		{"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT},   {"HUP", SIGHUP},   {"QUIT", SIGQUIT},
		{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}, {"WINCH", SIGWINCH},
		{"PWR", SIGPWR},   {"ALRM", SIGALRM},
	};
	if (*s >= '1' && *s <= '9') {
		char *end;
		errno = 0;
		long n = strtol(s, &end, 10);
		return errno || *end || n > 64 ? 0 : (int)n;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	return 0;
}

// fp_kill is Runtime.Kill of one signal to the live init of a container,
// without --all: through a pidfd, checked against the init's start time
// after it is opened, as signalProcess does. The Go path takes a stopped
// container (its error), SIGKILL of a container without its own pid
// namespace (every process of the cgroup) and SIGKILL of a frozen one
// (thawed after), and any failure: nothing was signalled before it.
static void fp_kill(int dirfd, int sig)
{
	struct fastpath *fp = malloc(sizeof(*fp));
	if (fp == NULL || !fp_parse(dirfd, fp))
		goto fallback;
	if (sig == SIGKILL && (!fp->ownpidns || fp_frozen(fp, 0)))
		goto fallback;
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)fp->pid, 0);
	if (pidfd < 0)
		goto fallback;
	if (!fp_alive(fp->pid, fp->start) || syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
		close(pidfd);
		goto fallback;
	}
	close(pidfd);
	_exit(0);
fallback:
	free(fp);
}

// fp_write_all writes len bytes of b to fd; 0 on failure.
static int fp_write_all(int fd, const char *b, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		b += n;
		len -= (size_t)n;
	}
	return 1;
}

// fp_state is Runtime.State: create's template (fastpath-state) with the
// status r.status would find, and pid 0 once stopped. Anything unexpected
// (no template, a template without the pid or status it should hold) is
// the Go path's.
static void fp_state(int dirfd)
{
	static char tmpl[1 << 16];
	struct fastpath *fp = malloc(sizeof(*fp));
	if (fp == NULL || !fp_parse(dirfd, fp))
		goto fallback;
	ssize_t n = fp_read(dirfd, "fastpath-state", tmpl, sizeof(tmpl) - 1);
	if (n <= 0)
		goto fallback;
	tmpl[n] = '\0';
	char pidkey[64];
	snprintf(pidkey, sizeof(pidkey), "\"pid\": %ld,", fp->pid);
	static const char statuskey[] = "\"status\": \"\\u0001\"";
	char *p1 = strstr(tmpl, pidkey), *p2 = p1 == NULL ? NULL : strstr(p1, statuskey);
	if (p2 == NULL)
		goto fallback;
	const char *status;
	struct stat st;
	if (!fp_alive(fp->pid, fp->start))
		status = "stopped";
	else if (fstatat(dirfd, "exec.fifo", &st, AT_SYMLINK_NOFOLLOW) == 0)
		status = "created";
	else if (fp_frozen(fp, 1))
		status = "paused";
	else
		status = "running";
	// A stopped container's state has pid 0, as publicState gives it.
	const char *pid = strcmp(status, "stopped") == 0 ? "\"pid\": 0," : pidkey;
	char mid[64];
	snprintf(mid, sizeof(mid), "\"status\": \"%s\"", status);
	const char *between = p1 + strlen(pidkey), *rest = p2 + strlen(statuskey);
	if (!fp_write_all(1, tmpl, (size_t)(p1 - tmpl)) || !fp_write_all(1, pid, strlen(pid)) ||
	    !fp_write_all(1, between, (size_t)(p2 - between)) || !fp_write_all(1, mid, strlen(mid)) ||
	    !fp_write_all(1, rest, strlen(rest)))
		fp_fail("state: write standard output failed");
	_exit(0);
fallback:
	free(fp);
}

// fp_flag takes the global flag name at argv[*i], as urfave/cli reads it:
// one or two dashes, its value in the next argument or after '='. 1 with
// *val set and *i past the flag; 0 if argv[*i] is another flag.
static int fp_flag(int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i] + 1;
	if (*a == '-')
		a++;
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*val = a + n + 1;
		*i += 1;
		return 1;
	}
	if (a[n] == '\0' && *i + 1 < argc) {
		*val = argv[*i + 1];
		*i += 2;
		return 1;
	}
	return 0;
}

__attribute__((constructor)) static void berth_fastpath(int argc, char **argv, char **envp)
{
	(void)envp;
	const char *env = getenv("_BERTH_INITPIPE");
	if ((env != NULL && *env != '\0') || argc < 3)
		return;
	// The defaults of main.go's flags.
	const char *root = "/run/berth", *log = "", *format = "text";
	int i = 1;
	while (i < argc && argv[i][0] == '-') {
		if (fp_flag(argc, argv, &i, "root", &root) || fp_flag(argc, argv, &i, "log", &log) ||
		    fp_flag(argc, argv, &i, "log-format", &format))
			continue;
		return; // --debug, --systemd-cgroup, anything else: the Go path
	}
	if (i >= argc || root[0] == '\0')
		return;
	if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
		return; // the Go path names the bad format
	const char *cmd = argv[i++];
	int start = strcmp(cmd, "start") == 0, del = strcmp(cmd, "delete") == 0;
	int kill = strcmp(cmd, "kill") == 0, state = strcmp(cmd, "state") == 0;
	// delete --force of a stopped container is a plain delete (containerd
	// and Docker send it after the plain one); a container whose init
	// still runs goes to the Go path, which kills it.
	if (del && i < argc && (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-force") == 0 || strcmp(argv[i], "-f") == 0))
		i++;
	// kill ID [SIGNAL]; --all, or a flag after the ID, is the Go path's.
	if ((!start && !del && !kill && !state) || !(argc == i + 1 || (kill && argc == i + 2)))
		return;
	const char *id = argv[i];
	if (!fp_valid_id(id))
		return;
	int sig = SIGTERM; // kill's default, as in commands.go
	if (kill && argc == i + 2 && (sig = fp_signal(argv[i + 1])) == 0)
		return;
	char dir[PATH_MAX];
	if (snprintf(dir, sizeof(dir), "%s/%s", root, id) >= (int)sizeof(dir))
		return;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return;
	if (log[0] != '\0') {
		// Made even when nothing is logged, as the Go path does.
		fp_logfd = open(log, O_CREAT | O_WRONLY | O_APPEND | O_SYNC | O_CLOEXEC, 0644);
		if (fp_logfd < 0) {
			close(dirfd);
			return; // the Go path reports it
		}
		fp_logjson = strcmp(format, "json") == 0;
	}
	if (start)
		fp_start(dirfd);
	else if (del)
		fp_delete(dirfd, dir);
	else if (kill)
		fp_kill(dirfd, sig);
	else
		fp_state(dirfd);
	close(dirfd);
	if (fp_logfd >= 0) {
		close(fp_logfd);
		fp_logfd = -1;
	}
}
