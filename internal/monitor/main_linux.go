package monitor

import (
	"bytes"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"
)

// detachedEnv tells berth-monitor that its launcher already detached it
// (Create sets it and reaps the monitor itself); without it the monitor
// forks once more, to leave a launcher that would never reap it.
const detachedEnv = "_BERTH_MONITOR_DETACHED"

// Main is berth-monitor's main function: `berth-monitor CONFIGFILE`, with
// fd 3 the launcher's report pipe (see Create). It returns the exit status.
func Main(args []string) int {
	// One container's stdio needs no parallelism; fewer Ps and a tight GC
	// keep the per-container price low.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(50)
	debug.SetMemoryLimit(16 << 20)

	var report *os.File
	if _, err := unix.FcntlInt(3, unix.F_GETFD, 0); err == nil {
		report = os.NewFile(3, "report")
	}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "berth-monitor: %v\n", err)
		if report != nil {
			writeLine(report, encodeReply(reply{Error: err.Error()}))
		}
		return 1
	}
	if len(args) == 3 && args[1] == "--pause" {
		return pause()
	}
	if len(args) == 3 && args[1] == "--spare" {
		// Started ahead of need (see Spare): the config file's path
		// comes on fd 4; without one this spare was not needed.
		path, err := readSparePath(4, SpareIdle)
		if err != nil {
			return 0
		}
		args = []string{args[0], path}
	}
	if len(args) != 2 {
		return fail(fmt.Errorf("usage: berth-monitor CONFIGFILE (got %d arguments)", len(args)-1))
	}
	if os.Getenv(detachedEnv) == "" {
		// Fork once more and exit, so the monitor is reparented away from
		// the launcher, which never has to wait for it.
		devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			return fail(fmt.Errorf("fork the monitor: %w", err))
		}
		files := []*os.File{devnull, devnull, devnull}
		if report != nil {
			files = append(files, report)
		}
		p, err := os.StartProcess("/proc/self/exe", []string{args[0], args[1]}, &os.ProcAttr{
			Env: append(os.Environ(), detachedEnv+"=1"), Files: files,
		})
		if err != nil {
			return fail(fmt.Errorf("fork the monitor: %w", err))
		}
		p.Release()
		return 0
	}
	os.Unsetenv(detachedEnv)
	if report != nil {
		unix.CloseOnExec(3) // not for the runtime, nor the container
	}
	data, err := os.ReadFile(args[1])
	if err != nil {
		return fail(fmt.Errorf("read monitor config: %w", err))
	}
	cfg, err := decodeConfig(data)
	if err != nil {
		return fail(fmt.Errorf("parse monitor config %s: %w", args[1], err))
	}
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	// The monitor's own complaints (and a panic) go to a file beside its
	// socket: its stderr is /dev/null.
	if f, err := os.OpenFile(filepath.Join(cfg.StateDir, "monitor.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600); err == nil {
		unix.Dup3(int(f.Fd()), 2, 0)
		unix.CloseOnExec(2)
		f.Close()
	}
	// SIGTERM, SIGINT and SIGHUP must not end the monitor: it would take
	// the container's stdio with it. Caught, not ignored: an ignored
	// signal would stay ignored in the runtime and the container.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP)
	go func() {
		for range sigs {
		}
	}()
	if err := runMonitor(cfg, report); err != nil {
		fmt.Fprintf(os.Stderr, "berth-monitor %s: %v\n", cfg.ID, err)
		return 1
	}
	return 0
}

// readSparePath reads one line, a config file's path, from fd, waiting at
// most idle; the pipe's end or the deadline is an error.
func readSparePath(fd int, idle time.Duration) (string, error) {
	// Non-blocking, so that the read can have a deadline.
	if err := unix.SetNonblock(fd, true); err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), "spare")
	defer f.Close()
	if err := f.SetReadDeadline(time.Now().Add(idle)); err != nil {
		return "", err
	}
	var b []byte
	buf := make([]byte, 512)
	for len(b) < 4096 {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return string(b[:i]), nil
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("spare monitor: config path over 4096 bytes")
}
