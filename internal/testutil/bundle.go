package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// BusyboxPath is where Debian's busybox-static installs its static binary.
const BusyboxPath = "/bin/busybox"

// busyboxApplets are linked to busybox in the rootfs's /bin. Shell builtins
// (ulimit, umask, cd) need no link.
var busyboxApplets = []string{
	"sh", "echo", "cat", "ls", "id", "ps", "sleep", "true", "false", "hostname",
	"mount", "umount", "touch", "stty", "grep", "head", "tail", "readlink", "stat",
	"env", "pwd", "mkdir", "rm", "ln", "uptime", "sha256sum", "test", "[", "kill",
	"wc", "tr", "sed", "awk", "mknod", "dd", "cut", "uname", "sort", "chmod",
	"tty", "realpath", "printf", "sysctl", "nproc", "find", "date", "xargs",
}

// Bundle is an OCI bundle in a temporary directory: Dir/config.json and
// Dir/rootfs. Spec is the configuration written by Save; change it and call
// Save again to rewrite config.json.
type Bundle struct {
	Dir    string
	Rootfs string
	Spec   *specs.Spec

	err error // the first error of a BundleOption
}

// BundleOption changes a bundle's spec (or rootfs) before config.json is first
// written.
type BundleOption func(*Bundle)

// WithArgs sets process.args.
func WithArgs(args ...string) BundleOption {
	return func(b *Bundle) { b.Spec.Process.Args = args }
}

// WithShell sets process.args to `sh -c script`.
func WithShell(script string) BundleOption {
	return WithArgs("sh", "-c", script)
}

// WithEnv appends to process.env.
func WithEnv(env ...string) BundleOption {
	return func(b *Bundle) { b.Spec.Process.Env = append(b.Spec.Process.Env, env...) }
}

// WithMounts appends mounts.
func WithMounts(mounts ...specs.Mount) BundleOption {
	return func(b *Bundle) { b.Spec.Mounts = append(b.Spec.Mounts, mounts...) }
}

// WithNamespaces replaces linux.namespaces.
func WithNamespaces(ns ...specs.LinuxNamespace) BundleOption {
	return func(b *Bundle) { b.Spec.Linux.Namespaces = ns }
}

// WithWritableRoot makes root.readonly false.
func WithWritableRoot() BundleOption {
	return func(b *Bundle) { b.Spec.Root.Readonly = false }
}

// WithSpec applies an arbitrary change to the spec.
func WithSpec(f func(*specs.Spec)) BundleOption {
	return func(b *Bundle) { f(b.Spec) }
}

// WithRootfs applies an arbitrary change to the rootfs directory (after
// busybox and /etc are in place).
func WithRootfs(f func(rootfs string) error) BundleOption {
	return func(b *Bundle) {
		if err := f(b.Rootfs); err != nil && b.err == nil {
			b.err = fmt.Errorf("prepare rootfs %s: %w", b.Rootfs, err)
		}
	}
}

// NewBundle makes a bundle whose rootfs holds busybox (with applet links in
// /bin), /etc/passwd and /etc/group (root, nobody, and user 1000 "user"), and
// a config.json from DefaultSpec changed by opts. The directory is named
// "berth-e2e-bundle-*", is world-traversable (so a container in a user
// namespace can reach its rootfs) and is removed when t ends.
func NewBundle(t testing.TB, opts ...BundleOption) *Bundle {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Skipf("requires %s (Debian package busybox-static)", BusyboxPath)
	}
	dir, err := os.MkdirTemp("", "berth-e2e-bundle-")
	if err != nil {
		t.Fatalf("make bundle dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove bundle %s (is something still mounted under it?): %v", dir, err)
		}
	})
	b := &Bundle{Dir: dir, Rootfs: filepath.Join(dir, "rootfs"), Spec: DefaultSpec()}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod bundle: %v", err)
	}
	if err := buildRootfs(b.Rootfs); err != nil {
		t.Fatalf("build rootfs: %v", err)
	}
	for _, o := range opts {
		o(b)
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	b.Save(t)
	return b
}

// Save writes b.Spec to b.Dir/config.json.
func (b *Bundle) Save(t testing.TB) {
	t.Helper()
	data, err := json.MarshalIndent(b.Spec, "", "\t")
	if err != nil {
		t.Fatalf("encode config.json: %v", err)
	}
	if err := os.WriteFile(filepath.Join(b.Dir, "config.json"), data, 0o644); err != nil {
		t.Fatalf("write config.json: %v", err)
	}
}

// Path returns the host path of p inside the rootfs.
func (b *Bundle) Path(p string) string {
	return filepath.Join(b.Rootfs, p)
}

// WriteFile writes a file inside the rootfs, creating its parent directories.
func (b *Bundle) WriteFile(t testing.TB, p string, data string, mode os.FileMode) {
	t.Helper()
	host := b.Path(p)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(host, mode); err != nil {
		t.Fatal(err)
	}
}

func buildRootfs(rootfs string) error {
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user", "var", "run", "mnt"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		return err
	}
	if err := os.Chown(filepath.Join(rootfs, "home/user"), 1000, 1000); err != nil {
		return err
	}
	// A copy, not a link: a container that writes to its /bin/busybox must
	// not change the host's.
	if err := copyFile(BusyboxPath, filepath.Join(rootfs, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			return err
		}
	}
	if err := os.Symlink("bin", filepath.Join(rootfs, "sbin")); err != nil {
		return err
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n" +
			"user:x:1000:1000:user:/home/user:/bin/sh\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group": "root:x:0:\n" +
			"tty:x:5:\n" +
			"user:x:1000:\n" +
			"nogroup:x:65534:\n",
		"etc/hostname": "berth-e2e\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}
