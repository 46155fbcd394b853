package network

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
)

var idRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// validateID keeps a container ID usable as a file name under StateDir.
func validateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("container ID %q must be 1 to 128 characters of [a-zA-Z0-9_.-]: %w", id, errdefs.ErrInvalidArgument)
	}
	return nil
}

func (m *Manager) netnsPath(id string) string {
	return filepath.Join(m.cfg.StateDir, "netns", id)
}

// NewNetNS creates a network namespace for the sandbox id, pinned by a bind
// mount on StateDir/netns/<id>, with its loopback up.
func (m *Manager) NewNetNS(ctx context.Context, id string) (string, error) {
	if err := validateID(id); err != nil {
		return "", err
	}
	p := m.netnsPath(id)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", fmt.Errorf("create netns directory: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("network namespace of %s: %w", id, errdefs.ErrAlreadyExists)
		}
		return "", fmt.Errorf("create netns file for %s: %w", id, err)
	}
	f.Close()
	if err := onOwnThread(func() error { return enterNewNetNS(p) }); err != nil {
		unix.Unmount(p, unix.MNT_DETACH)
		os.Remove(p)
		return "", fmt.Errorf("create network namespace for %s: %w", id, err)
	}
	return p, nil
}

func enterNewNetNS(p string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Mount(self, p, "none", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s: %w", p, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set loopback up: %w", err)
	}
	return nil
}

// RemoveNetNS unpins and deletes the sandbox's namespace file; the
// namespace goes when its last process does. Removing one already gone is
// not an error.
func (m *Manager) RemoveNetNS(ctx context.Context, id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	p := m.netnsPath(id)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount network namespace %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network namespace %s: %w", p, err)
	}
	return nil
}

// inNetNS runs f on a thread in the namespace at path.
func inNetNS(path string, f func() error) error {
	return onOwnThread(func() error {
		h, err := netns.GetFromPath(path)
		if err != nil {
			return fmt.Errorf("open network namespace %s: %w", path, err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("enter network namespace %s: %w", path, err)
		}
		return f()
	})
}

// onOwnThread runs f, which may move its thread into another network
// namespace, on a locked thread, and puts the thread back into the
// namespace it came from afterwards. Only then is the thread handed back to
// the scheduler; if it cannot be put back it stays locked and the runtime
// ends it with the goroutine. Ending it is not enough by itself: the
// thread may be the process's main thread, which the runtime never ends,
// and which would then hold the namespace (and its veths) alive.
func onOwnThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("open this thread's network namespace: %w", err)
			return
		}
		defer orig.Close()
		err = f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// deleteLink removes a network interface of the host if it exists.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("find interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(l); err != nil {
		return fmt.Errorf("delete interface %s: %w", name, err)
	}
	return nil
}

// hostPrefixes are the IPv4 subnets the host's routes already use, which a
// new network must not shadow.
func hostPrefixes() []netip.Prefix {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		if ones == 0 {
			continue
		}
		if a, ok := netip.AddrFromSlice(r.Dst.IP.To4()); ok {
			out = append(out, netip.PrefixFrom(a, ones).Masked())
		}
	}
	return out
}
