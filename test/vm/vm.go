// Package vm runs a program inside a throwaway Linux VM that has only the
// unified cgroup hierarchy, so that Berth's cgroup v2 support is tested on a
// real v2 kernel from hosts (like our development machines) that run v1.
//
// The VM is Debian's kernel under qemu (with KVM where the host offers a
// usable one, else with software emulation), booted from an initramfs that
// run.sh in this directory builds from busybox-static and the files it is
// given, or (Config.Systemd) from a cached Debian disk image with systemd as
// PID 1. Run drives run.sh; see its header for what the VM provides. Tests
// that run in the VM live in guest/.
package vm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Config says what to put into the VM and how to run it.
type Config struct {
	// Files maps absolute paths in the VM to host paths copied there.
	Files map[string]string
	// Env is the program's extra environment, as NAME=VALUE.
	Env []string
	// KernelArgs are added to the guest kernel's command line (e.g.
	// "preempt=full").
	KernelArgs []string
	// Memory is the guest's memory as qemu -m takes it; empty means 1024M.
	Memory string
	// Timeout bounds the VM's run (boot, program, power-off; not the
	// one-time build of the systemd image); zero means run.sh's default of
	// 600s.
	Timeout time.Duration
	// Systemd boots Debian with systemd as PID 1 (and dbus, containerd,
	// Podman) from a disk image built once by systemd-root.sh, instead of
	// the busybox initramfs; the program runs from a unit after the boot.
	Systemd bool
	// Accel is the accelerator tried first: "" or "auto" (KVM where
	// /dev/kvm is usable), "kvm" or "tcg". A VM that KVM cannot start runs
	// under TCG instead, and the console says so.
	Accel string
	// Console, if set, receives the VM's console (kernel messages and the
	// program's stdout and stderr) line by line as it arrives, on the
	// goroutine that called Run.
	Console func(line string)
}

// Harness statuses of run.sh, reported as errors by Run.
const (
	statusTimeout = 124
	statusFailed  = 125
)

// Run boots the VM, runs program with args in it, and returns the program's
// exit status. The error is non-nil only when the VM itself failed: it could
// not be built or booted, timed out, or stopped without reporting a status.
func Run(ctx context.Context, cfg Config, program string, args ...string) (int, error) {
	script, err := scriptPath()
	if err != nil {
		return 0, err
	}
	cmdArgs := []string{script}
	if cfg.Memory != "" {
		cmdArgs = append(cmdArgs, "--mem", cfg.Memory)
	}
	if cfg.Timeout > 0 {
		secs := int(cfg.Timeout.Round(time.Second) / time.Second)
		cmdArgs = append(cmdArgs, "--timeout", strconv.Itoa(max(secs, 1)))
	}
	vmPaths := make([]string, 0, len(cfg.Files))
	for vmPath := range cfg.Files {
		vmPaths = append(vmPaths, vmPath)
	}
	sort.Strings(vmPaths)
	for _, vmPath := range vmPaths {
		cmdArgs = append(cmdArgs, "--file", cfg.Files[vmPath]+":"+vmPath)
	}
	for _, e := range cfg.Env {
		cmdArgs = append(cmdArgs, "--env", e)
	}
	for _, a := range cfg.KernelArgs {
		cmdArgs = append(cmdArgs, "--cmdline", a)
	}
	if cfg.Systemd {
		cmdArgs = append(cmdArgs, "--systemd")
	}
	cmdArgs = append(cmdArgs, "--", program)
	cmdArgs = append(cmdArgs, args...)

	cmd := exec.CommandContext(ctx, "bash", cmdArgs...)
	if cfg.Accel != "" {
		cmd.Env = append(os.Environ(), "BERTH_VM_ACCEL="+cfg.Accel)
	}
	// run.sh ends qemu's process group when it gets SIGTERM; SIGKILL would
	// leave qemu running until its own timeout.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	console, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", script, err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("run %s: %w", script, err)
	}
	copyLines(console, cfg.Console)
	err = cmd.Wait()

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case ctx.Err() != nil:
		return 0, fmt.Errorf("run %s: %w", script, ctx.Err())
	case !errors.As(err, &exitErr):
		return 0, fmt.Errorf("run %s: %w", script, err)
	}
	status := exitErr.ExitCode()
	// run.sh explains its own failures on stderr; the program's stderr goes
	// to the console, so a message there means the harness failed.
	if msg := harnessMessage(stderr.String()); msg != "" && (status == statusTimeout || status == statusFailed) {
		return status, fmt.Errorf("test VM: %s", msg)
	}
	if status < 0 {
		return status, fmt.Errorf("run %s: %w", script, err)
	}
	return status, nil
}

// scriptPath finds run.sh beside this file, whichever package's test calls Run.
func scriptPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("locate test/vm/run.sh: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "run.sh"), nil
}

// copyLines hands each line of r to each, until r ends.
func copyLines(r io.Reader, each func(string)) {
	if each == nil {
		_, _ = io.Copy(io.Discard, r)
		return
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		each(sc.Text())
	}
	// A line longer than the buffer ends the scan; drain the rest so run.sh
	// never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// harnessMessage returns run.sh's own messages from its stderr.
func harnessMessage(stderr string) string {
	var msgs []string
	for _, line := range strings.Split(stderr, "\n") {
		if msg, ok := strings.CutPrefix(line, "run.sh: error: "); ok {
			msgs = append(msgs, msg)
		}
	}
	return strings.Join(msgs, "; ")
}
