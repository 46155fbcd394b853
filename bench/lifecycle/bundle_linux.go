package main

import (
	"debug/elf"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// busyboxPath is where Debian's busybox-static installs its binary.
const busyboxPath = "/bin/busybox"

// seccompProfile is a Docker-like default profile in the runtime-spec's
// format: errno EPERM for everything but an allow list of common syscalls.
// The architectures are filled in for the host at run time.
//
//go:embed testdata/seccomp.json
var seccompProfile []byte

// scenario is one bundle configuration that every runtime runs.
type scenario struct {
	name   string // "default" or "limits"
	idPart string // inserted into container ids so scenarios never collide
	about  string // one line for the table heading
	limits bool
}

var (
	scenarioDefault = scenario{name: "default", about: "config as `runc spec`, terminal false"}
	scenarioLimits  = scenario{name: "limits", idPart: "limits-", limits: true,
		about: "plus memory 256 MiB, cpu 50000/100000 shares 512, pids 128, seccomp (testdata/seccomp.json)"}
)

// checkBusybox fails unless /bin/busybox is a static binary: a dynamic one
// (Debian's "busybox" rather than "busybox-static") cannot run in a rootfs
// that holds nothing else.
func checkBusybox() error {
	f, err := elf.Open(busyboxPath)
	if err != nil {
		return fmt.Errorf("open %s (install the Debian package busybox-static): %w", busyboxPath, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: install the Debian package busybox-static", busyboxPath)
		}
	}
	return nil
}

// writeBundle creates dir/rootfs with busybox and a "true" link to it, and
// dir/config.json for sc.
func writeBundle(dir string, sc scenario) error {
	bin := filepath.Join(dir, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("create bundle rootfs: %w", err)
	}
	if err := copyFile(busyboxPath, filepath.Join(bin, "busybox")); err != nil {
		return err
	}
	if err := os.Symlink("busybox", filepath.Join(bin, "true")); err != nil {
		return fmt.Errorf("link true to busybox: %w", err)
	}
	spec, err := bundleSpec(sc)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(spec, "", "\t")
	if err != nil {
		return fmt.Errorf("encode config.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		return fmt.Errorf("write config.json: %w", err)
	}
	return nil
}

func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("copy %s to %s: %w", src, dst, cerr)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

// bundleSpec is what `runc spec` writes, with terminal false and /bin/true as
// the process. ociVersion is 1.1.0 for every runtime because crun 1.8.1
// rejects anything newer, and runc 1.1 accepts it; one config for all keeps
// the comparison fair.
func bundleSpec(sc scenario) (*specs.Spec, error) {
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	spec := &specs.Spec{
		Version: "1.1.0",
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: []string{"true"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps, Ambient: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "berth-bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	if !sc.limits {
		return spec, nil
	}
	var (
		memory       int64  = 256 << 20
		quota        int64  = 50000
		period       uint64 = 100000
		shares       uint64 = 512
		pids         int64  = 128
		errnoEPERM   uint   = 1
		linuxSeccomp specs.LinuxSeccomp
	)
	r := spec.Linux.Resources
	r.Memory = &specs.LinuxMemory{Limit: &memory}
	r.CPU = &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period}
	r.Pids = &specs.LinuxPids{Limit: &pids}
	if err := json.Unmarshal(seccompProfile, &linuxSeccomp); err != nil {
		return nil, fmt.Errorf("decode testdata/seccomp.json: %w", err)
	}
	if linuxSeccomp.DefaultErrnoRet == nil {
		linuxSeccomp.DefaultErrnoRet = &errnoEPERM
	}
	arches, err := seccompArches(runtime.GOARCH)
	if err != nil {
		return nil, err
	}
	linuxSeccomp.Architectures = arches
	spec.Linux.Seccomp = &linuxSeccomp
	return spec, nil
}

// seccompArches lists the native architecture and the compat ones a process
// could switch to, as Docker's default profile does.
func seccompArches(goarch string) ([]specs.Arch, error) {
	switch goarch {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}, nil
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}, nil
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}, nil
	case "s390x":
		return []specs.Arch{specs.ArchS390X, specs.ArchS390}, nil
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}, nil
	}
	return nil, errors.New("seccomp profile: no architecture list for " + goarch)
}
