// The container init's stage, started before the Go runtime of
// `berth-runtime create`.
//
// A create is two Go starts one after the other: berth-runtime's own
// (~7 ms on this VM) and, once it has read the spec, the init's (~6 ms).
// Two Go programs started side by side take ~9.5 ms here, one after the
// other ~14. So for a plain create this constructor reads the namespaces
// of config.json, forks and execs the init's stage (nsenter.c) from the
// init binary beside this one, sealed as sealedInit seals it, and sends it
// its namespace config at once: the stage makes the namespaces and forks
// the init, whose Go runtime then starts beside the runtime's.
//
// It only proposes. The Go code (runtime.Prespawn) adopts the stage only
// when the spec it has validated asks for exactly these namespaces and the
// binary's build ID is its init's; otherwise it kills the stage and the
// init and starts its own. So a config this scanner reads wrongly costs
// time, never a wrong namespace. Anything out of the plain case means no
// prespawn: a flag this file does not know, a console socket, preserved
// fds, not root, a namespace joined by path, a user or time namespace
// (their set-up needs the runtime's answers), JSON the scanner does not
// follow. The cgroup namespace is left to the init, which makes it once
// the runtime has put it in the container's cgroup (a cgroup namespace is
// rooted where its maker is).
//
// When the config looks plainer still (a mount namespace of its own, no
// hooks, no terminal, no idmapped mounts, no seccomp notify rules) and no
// --pidfd-socket is given,
// the Go runtime is not started at all: the stage execs berth-runtime
// itself, sealed, with create's arguments, and the container's init does
// create's work (runtime.SelfCreate: the spec, the cgroups, the state)
// before it sets up the container. This process waits for its answer and
// writes the pid file: one Go start per create instead of two. The init
// still decides from the spec it validates: a config it cannot take that
// way is handed back ("fallback"), and this process then goes on to the Go
// create as if nothing had been started. A failure is handed to the Go
// code too (berth_self_*), which reports it as create does and removes
// what the init made.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prespawn.h"

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

// What the Go code takes (fastpath.go); sock < 0: nothing was started.
int berth_pre_sock = -1, berth_pre_pid = -1, berth_pre_bin = -1;
unsigned long berth_pre_flags;
// A create the init did itself and that failed: the line that says why
// (the stage's "E ..." line for SELF_STAGE, the init's JSON reply for
// SELF_REPLY, the error itself for SELF_MESSAGE; NULL for SELF_TIMEOUT and
// SELF_EOF), and the init, killed and reaped (-1 when there was none).
char *berth_self_line;
int berth_self_kind, berth_self_pid = -1;
// berth_self_kind's values; runtime.SelfFailure numbers them alike.
enum { SELF_STAGE = 1, SELF_REPLY, SELF_TIMEOUT, SELF_EOF, SELF_MESSAGE };

// How long a self-creating init may take to answer: its create and its
// setup, each bounded by initStepTimeout (a minute) on the Go path.
#define SELF_TIMEOUT_MS (2 * 60 * 1000)

// The largest config.json read here; a larger one goes the Go way.
#define PRE_MAX_CONFIG (1 << 20)
// How deep the scanner follows nested values.
#define PRE_MAX_DEPTH 64

struct jscan {
	const char *p, *end;
};

static void js_ws(struct jscan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int js_eat(struct jscan *s, char c)
{
	js_ws(s);
	if (s->p < s->end && *s->p == c) {
		s->p++;
		return 1;
	}
	return 0;
}

// js_string reads a string; *str and *len are its raw bytes between the
// quotes, *esc says whether they hold an escape or a non-ASCII byte (for
// a key: encoding/json folds case with Unicode's rules, so "ſ" can match
// an "s"; the callers give up on such keys). 0 on malformed input.
static int js_string(struct jscan *s, const char **str, size_t *len, int *esc)
{
	js_ws(s);
	if (s->p >= s->end || *s->p != '"')
		return 0;
	const char *start = ++s->p;
	*esc = 0;
	while (s->p < s->end && *s->p != '"') {
		if ((unsigned char)*s->p < 0x20)
			return 0;
		if ((unsigned char)*s->p >= 0x80)
			*esc = 1;
		if (*s->p == '\\') {
			*esc = 1;
			if (++s->p >= s->end)
				return 0;
		}
		s->p++;
	}
	if (s->p >= s->end)
		return 0;
	*str = start;
	*len = (size_t)(s->p - start);
	s->p++;
	return 1;
}

static int js_value(struct jscan *s, int depth);

// js_members walks an object (after its '{'), calling member for each key
// with the scanner at the value; member returns 0 to stop, else it has
// consumed the value. 0 on malformed input.
static int js_members(struct jscan *s, int depth, int (*member)(struct jscan *, const char *, size_t, int, void *), void *arg)
{
	if (js_eat(s, '}'))
		return 1;
	for (;;) {
		const char *k;
		size_t klen;
		int esc;
		if (!js_string(s, &k, &klen, &esc) || !js_eat(s, ':'))
			return 0;
		if (member != NULL) {
			if (!member(s, k, klen, esc, arg))
				return 0;
		} else if (!js_value(s, depth + 1)) {
			return 0;
		}
		if (js_eat(s, ','))
			continue;
		return js_eat(s, '}');
	}
}

static int js_value(struct jscan *s, int depth)
{
	if (depth > PRE_MAX_DEPTH)
		return 0;
	js_ws(s);
	if (s->p >= s->end)
		return 0;
	const char *str;
	size_t len;
	int esc;
	switch (*s->p) {
	case '"':
		return js_string(s, &str, &len, &esc);
	case '{':
		s->p++;
		return js_members(s, depth, NULL, NULL);
	case '[':
		s->p++;
		if (js_eat(s, ']'))
			return 1;
		for (;;) {
			if (!js_value(s, depth + 1))
				return 0;
			if (js_eat(s, ','))
				continue;
			return js_eat(s, ']');
		}
	default:
		// A number or a literal: the characters they are made of.
		if (*s->p == '\0' || strchr("-0123456789tfnrueals.+E", *s->p) == NULL)
			return 0;
		while (s->p < s->end && *s->p != '\0' && strchr("-0123456789tfnrueals.+E", *s->p) != NULL)
			s->p++;
		return 1;
	}
}

// js_null consumes a null if one is next.
static int js_null(struct jscan *s)
{
	js_ws(s);
	if (s->end - s->p >= 4 && memcmp(s->p, "null", 4) == 0) {
		s->p += 4;
		return 1;
	}
	return 0;
}

// keyis compares a key as encoding/json matches it to a field: without
// regard to case. An escaped key is never the one sought (0), and the
// caller gives up on it (see keyesc).
static int keyis(const char *k, size_t klen, int esc, const char *name)
{
	return !esc && klen == strlen(name) && strncasecmp(k, name, klen) == 0;
}

// js_sought begins a member callback that looks for one key: 0 to stop
// (an escaped key, the key twice), 1 when the member is done (another key,
// its value skipped at depth, or the key with null), 2 when the scanner is
// at the sought key's value.
static int js_sought(struct jscan *s, const char *k, size_t klen, int esc, const char *name, int *seen, int depth)
{
	if (esc)
		return 0;
	if (!keyis(k, klen, esc, name))
		return js_value(s, depth);
	if ((*seen)++)
		return 0;
	return js_null(s) ? 1 : 2;
}

struct nsentry {
	int has_type, has_path;
	unsigned long flag;
};

static int ns_member(struct jscan *s, const char *k, size_t klen, int esc, void *arg)
{
	struct nsentry *e = arg;
	if (esc)
		return 0;
	int type = keyis(k, klen, esc, "type"), path = keyis(k, klen, esc, "path");
	if (!type && !path)
		return js_value(s, 2);
	const char *v;
	size_t vlen;
	int vesc;
	if (!js_string(s, &v, &vlen, &vesc) || vesc)
		return 0;
	if (path) {
		if (e->has_path++ || vlen > 0)
			return 0; // joined by path: the stage needs the runtime
		return 1;
	}
	if (e->has_type++)
		return 0;
	static const struct {
		const char *name;
		unsigned long flag;
	} types[] = {
		{"pid", CLONE_NEWPID}, {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
		{"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"cgroup", CLONE_NEWCGROUP},
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (vlen == strlen(types[i].name) && memcmp(v, types[i].name, vlen) == 0) {
			e->flag = types[i].flag;
			return 1;
		}
	}
	return 0; // user, time, or one the Go code will refuse
}

struct linuxscan {
	int seen_ns;
	unsigned long flags;
};

static int linux_member(struct jscan *s, const char *k, size_t klen, int esc, void *arg)
{
	struct linuxscan *l = arg;
	int r = js_sought(s, k, klen, esc, "namespaces", &l->seen_ns, 1);
	if (r != 2)
		return r;
	if (!js_eat(s, '['))
		return 0;
	if (js_eat(s, ']'))
		return 1;
	for (;;) {
		struct nsentry e = {0};
		if (!js_eat(s, '{') || !js_members(s, 1, ns_member, &e) || !e.has_type || (l->flags & e.flag))
			return 0;
		l->flags |= e.flag;
		if (js_eat(s, ','))
			continue;
		return js_eat(s, ']');
	}
}

struct topscan {
	int seen_linux;
	struct linuxscan lx;
};

static int top_member(struct jscan *s, const char *k, size_t klen, int esc, void *arg)
{
	struct topscan *t = arg;
	int r = js_sought(s, k, klen, esc, "linux", &t->seen_linux, 0);
	if (r != 2)
		return r;
	return js_eat(s, '{') && js_members(s, 0, linux_member, &t->lx);
}

int berth_pre_scan(const char *data, size_t len, unsigned long *flags)
{
	struct jscan s = {data, data + len};
	struct topscan t = {0};
	if (!js_eat(&s, '{') || !js_members(&s, 0, top_member, &t))
		return 0;
	js_ws(&s);
	if (s.p != s.end)
		return 0;
	*flags = t.lx.flags;
	return 1;
}

// pre_flag reads the flag at argv[*i] ("-x", "--x", "--x=v"): *name and
// *nlen name it, *val is its value when given with "=" (else NULL).
static void pre_flag(char **argv, int i, const char **name, size_t *nlen, const char **val)
{
	const char *a = argv[i] + 1;
	if (*a == '-')
		a++;
	const char *eq = strchr(a, '=');
	*name = a;
	*nlen = eq ? (size_t)(eq - a) : strlen(a);
	*val = eq ? eq + 1 : NULL;
}

static int flagis(const char *name, size_t nlen, const char *want)
{
	return nlen == strlen(want) && strncmp(name, want, nlen) == 0;
}

// pre_bundle finds the bundle of a plain `create`: NULL when argv is
// anything else. *pidfile is its --pid-file (or NULL); *pidfd says whether
// it has a --pidfd-socket.
static const char *pre_bundle(int argc, char **argv, const char **pidfile, int *pidfd)
{
	int i = 1;
	const char *name, *val;
	size_t nlen;
	// The global flags that berth's callers pass (see fastpath.c).
	for (; i < argc && argv[i][0] == '-'; i++) {
		pre_flag(argv, i, &name, &nlen, &val);
		if (flagis(name, nlen, "root") || flagis(name, nlen, "log") || flagis(name, nlen, "log-format")) {
			if (val == NULL && ++i >= argc)
				return NULL;
			continue;
		}
		if (flagis(name, nlen, "debug") && val == NULL)
			continue;
		return NULL;
	}
	if (i >= argc || strcmp(argv[i], "create") != 0)
		return NULL;
	const char *bundle = ".";
	int ids = 0;
	for (i++; i < argc; i++) {
		if (argv[i][0] != '-' || argv[i][1] == '\0') {
			ids++;
			continue;
		}
		pre_flag(argv, i, &name, &nlen, &val);
		if (flagis(name, nlen, "bundle") || flagis(name, nlen, "b")) {
			if (val == NULL && ++i >= argc)
				return NULL;
			bundle = val ? val : argv[i];
		} else if (flagis(name, nlen, "pid-file") || flagis(name, nlen, "pidfd-socket")) {
			if (val == NULL && ++i >= argc)
				return NULL;
			if (flagis(name, nlen, "pidfd-socket"))
				*pidfd = 1;
			else
				*pidfile = val ? val : argv[i];
		} else if ((flagis(name, nlen, "no-pivot") || flagis(name, nlen, "no-new-keyring")) && val == NULL) {
			continue;
		} else {
			return NULL; // --console-socket, --preserve-fds, "--", ...
		}
	}
	return ids == 1 && bundle[0] != '\0' ? bundle : NULL;
}

// pre_namespaces reads BUNDLE/config.json's namespaces as flags, and
// *plain says whether the init could do create's work (berth_pre_plain).
static int pre_namespaces(const char *bundle, unsigned long *flags, int *plain)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int)sizeof(path))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return 0;
	struct stat st;
	char *buf = NULL;
	int ok = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size <= PRE_MAX_CONFIG &&
	    (buf = malloc((size_t)st.st_size)) != NULL) {
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		ok = got == (size_t)st.st_size && berth_pre_scan(buf, got, flags);
		*plain = ok && (*flags & CLONE_NEWNS) && berth_pre_plain(buf, got);
	}
	free(buf);
	close(fd);
	return ok;
}

// pre_seal opens the init binary beside this one (*bin, for its build ID),
// or this binary when self is set, and returns a read-only detached mount
// of it to exec, as sealBinary makes one; -1 when it cannot.
static int pre_seal(int *bin, int self_exe)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self));
	if (n <= 0 || n >= (ssize_t)sizeof(self) || self[0] != '/')
		return -1;
	self[n] = '\0';
	char *slash = strrchr(self, '/');
	char path[PATH_MAX];
	// This binary as it runs, not what its path names now (an upgrade
	// may have replaced it).
	if (self_exe)
		snprintf(path, sizeof(path), "/proc/self/exe");
	else if (snprintf(path, sizeof(path), "%.*s/berth-runtime-init", (int)(slash - self), self) >= (int)sizeof(path))
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -1;
	}
	int tree = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (tree < 0) {
		close(fd);
		return -1;
	}
	// struct mount_attr: attr_set, attr_clr, propagation, userns_fd.
	uint64_t attr[4] = {0x00000001 /* MOUNT_ATTR_RDONLY */ | 0x00000004 /* MOUNT_ATTR_NODEV */, 0, 0, 0};
	if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, attr, sizeof(attr)) < 0) {
		close(tree);
		close(fd);
		return -1;
	}
	*bin = fd;
	return tree;
}

// berth_pre_plain says whether a config.json looks like one the init can
// create itself: no "hooks", no terminal, no idmapped mounts (an "idmap"
// option or a mount's uid/gidMappings), no seccomp notify rules (whose fd
// the runtime passes on). Only a guess that saves a wasted start: the init
// decides from the spec it validates.
int berth_pre_plain(const char *data, size_t len)
{
	static const char *const not_plain[] = {"\"hooks\"", "idmap", "Mappings\"", "SCMP_ACT_NOTIFY", "listenerPath"};
	for (size_t i = 0; i < sizeof(not_plain) / sizeof(not_plain[0]); i++)
		if (memmem(data, len, not_plain[i], strlen(not_plain[i])) != NULL)
			return 0;
	const char *p = data, *end = data + len;
	while ((p = memmem(p, (size_t)(end - p), "\"terminal\"", 10)) != NULL) {
		p += 10;
		struct jscan sc = {p, end};
		if (js_eat(&sc, ':')) {
			js_ws(&sc);
			if (sc.p < end && *sc.p != 'f')
				return 0;
		}
	}
	return 1;
}

// self_ms is CLOCK_MONOTONIC in milliseconds.
static long long self_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// selfrd reads the lines of the stage and the init from their socket,
// a read(2) per chunk rather than per byte.
struct selfrd {
	int fd;
	long long deadline; // self_ms
	size_t start, end;  // of what buf holds unread
	char buf[4096];
};

// self_line reads one line into out: its length with the newline replaced
// by NUL, -1 at EOF or on an error, -2 at the deadline. A line longer than
// size is an error.
static int self_line(struct selfrd *r, char *out, size_t size)
{
	size_t n = 0;
	for (;;) {
		while (r->start < r->end) {
			char c = r->buf[r->start++];
			if (c == '\n') {
				out[n] = '\0';
				return (int)n;
			}
			if (n + 1 >= size)
				return -1;
			out[n++] = c;
		}
		long long left = r->deadline - self_ms();
		if (left <= 0)
			return -2;
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int p = poll(&pfd, 1, (int)left);
		if (p < 0 && errno == EINTR)
			continue;
		if (p == 0)
			return -2;
		if (p < 0)
			return -1;
		ssize_t got = read(r->fd, r->buf, sizeof(r->buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		r->start = 0;
		r->end = (size_t)got;
	}
}

// self_pidfile writes pid to path as writePidFile does: a temporary file
// beside it, renamed over it. 0 or -errno.
static int self_pidfile(const char *path, int pid)
{
	char tmp[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) + 1 : 0;
	if (snprintf(tmp, sizeof(tmp), "%.*s.pid-XXXXXX", dirlen, path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	char num[16];
	int n = snprintf(num, sizeof(num), "%d", pid);
	int err = 0;
	if (write(fd, num, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	if (close(fd) < 0 && err == 0)
		err = -errno;
	if (err == 0 && rename(tmp, path) < 0)
		err = -errno;
	if (err != 0)
		unlink(tmp);
	return err;
}

// self_fail hands a failed self-create to the Go code: kind and line as
// berth_self_* say, the init killed and reaped first.
static void self_fail(int kind, char *line, int init)
{
	if (init > 0) {
		kill(init, SIGKILL);
		waitpid(init, NULL, 0);
	}
	berth_self_kind = kind;
	berth_self_line = line;
	berth_self_pid = init;
}

// self_create waits for the answer of an init that does create's work
// (stage: the stage's pid; sock: this end of its socket). It exits on
// success; it returns after a fallback (nothing made, the init gone) or a
// failure (berth_self_* set) for the Go code to go on.
static void self_create(int sock, pid_t stage, const char *pidfile)
{
	struct selfrd rd = {.fd = sock, .deadline = self_ms() + SELF_TIMEOUT_MS};
	char *line = malloc(64 << 10);
	if (line == NULL) {
		kill(stage, SIGKILL);
		waitpid(stage, NULL, 0);
		self_fail(SELF_EOF, NULL, -1);
		return;
	}
	int n = self_line(&rd, line, 64 << 10);
	// The stage exits once it has named the init (or failed).
	if (n == -2)
		kill(stage, SIGKILL);
	waitpid(stage, NULL, 0);
	if (n < 0) {
		self_fail(n == -2 ? SELF_TIMEOUT : SELF_EOF, NULL, -1);
		free(line);
		return;
	}
	int init = strncmp(line, "P ", 2) == 0 ? atoi(line + 2) : 0;
	if (init <= 0) {
		self_fail(SELF_STAGE, line, -1);
		return;
	}
	n = self_line(&rd, line, 64 << 10);
	if (n < 0) {
		self_fail(n == -2 ? SELF_TIMEOUT : SELF_EOF, NULL, init);
		free(line);
		return;
	}
	if (strcmp(line, "{\"type\":\"fallback\"}") == 0) {
		kill(init, SIGKILL);
		waitpid(init, NULL, 0);
		free(line);
		return;
	}
	if (strcmp(line, "{\"type\":\"ready\"}") != 0) {
		self_fail(SELF_REPLY, line, init);
		return;
	}
	if (pidfile != NULL) {
		int err = self_pidfile(pidfile, init);
		if (err != 0) {
			snprintf(line, 64 << 10, "--pid-file: %s: %s", pidfile, strerror(-err));
			self_fail(SELF_MESSAGE, line, init);
			return;
		}
	}
	_exit(0);
}

// Before procs.c's constructor, which runs the process on one CPU while
// the Go runtime starts: the stage and the init must not inherit that.
__attribute__((constructor(101))) static void berth_prespawn(int argc, char **argv, char **envp)
{
	(void)envp;
	if (getenv("_BERTH_INITPIPE") != NULL || getenv("LISTEN_FDS") != NULL || getenv("BERTH_NO_PRESPAWN") != NULL ||
	    geteuid() != 0)
		return;
	const char *pidfile = NULL;
	int pidfd = 0, plain = 0;
	const char *bundle = pre_bundle(argc, argv, &pidfile, &pidfd);
	unsigned long flags;
	if (bundle == NULL || !pre_namespaces(bundle, &flags, &plain))
		return;
	int self = plain && !pidfd && getenv("BERTH_NO_SELF_CREATE") == NULL && argc < 250;
	// The stage inherits stdio, as the Go path passes it: all three
	// must be open, or the socket could take one of their numbers.
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return;
	int bin = -1;
	int tree = pre_seal(&bin, self);
	if (tree < 0)
		return;
	// As runtime.New does, but before the fork: the init, orphaned when
	// the stage exits, must be this process's child, whose pid no other
	// process can take before it is reaped (the pidfd for --pidfd-socket).
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		close(tree);
		close(bin);
		return;
	}
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		close(tree);
		close(bin);
		return;
	}
	char pipeenv[32];
	snprintf(pipeenv, sizeof(pipeenv), "_BERTH_INITPIPE=%d", sp[1]);
	char *args[256] = {"berth-runtime", "init", NULL};
	char *env[] = {pipeenv, "_BERTH_PREFDS=1", "GOMAXPROCS=1", NULL};
	char selfenv[64];
	if (self) {
		// The init reads create's arguments after "init"; its flags
		// name the namespaces the stage makes.
		for (int a = 1; a < argc; a++)
			args[a + 1] = argv[a];
		args[argc + 1] = NULL;
		snprintf(selfenv, sizeof(selfenv), "_BERTH_SELFCREATE=%lu", flags & ~(unsigned long)CLONE_NEWCGROUP);
		env[1] = selfenv;
	}
	pid_t pid = fork();
	if (pid == 0) {
		// Only the child's end of the socket crosses the exec.
		if (fcntl(sp[1], F_SETFD, 0) == 0)
			syscall(SYS_execveat, tree, "", args, env, AT_EMPTY_PATH);
		_exit(127);
	}
	close(sp[1]);
	close(tree);
	// The stage reads this before anything else (nsenter.c's protocol);
	// CLONE_NEWCGROUP is the init's to make.
	char msg[64];
	int n = snprintf(msg + 4, sizeof(msg) - 4, "clone %lu\n", flags & ~(unsigned long)CLONE_NEWCGROUP);
	uint32_t len = (uint32_t)n;
	memcpy(msg, &len, 4);
	// MSG_NOSIGNAL: a stage that is gone already (a binary that is no
	// init at all) must not end this process with SIGPIPE, which the Go
	// runtime, not started yet, does not ignore.
	if (pid < 0 || send(sp[0], msg, (size_t)n + 4, MSG_NOSIGNAL) != n + 4) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		close(sp[0]);
		close(bin);
		return;
	}
	if (self) {
		self_create(sp[0], pid, pidfile);
		close(sp[0]);
		close(bin);
		return;
	}
	berth_pre_sock = sp[0];
	berth_pre_pid = pid;
	berth_pre_bin = bin;
	berth_pre_flags = flags;
}
