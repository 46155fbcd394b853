//go:build berthvm

package guest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestPivotRoot checks what a runtime's container init does: in a new mount
// namespace, pivot_root into a fresh root. It fails on an initramfs root,
// which is why the VM switches onto a tmpfs first.
func TestPivotRoot(t *testing.T) {
	script := `set -e
root=$1
mount -t tmpfs berth-guest-root "$root"
mkdir "$root/bin" "$root/old"
cp /bin/busybox "$root/bin/busybox"
cd "$root"
/bin/busybox unshare -m /bin/busybox sh -c '
	/bin/busybox mount --make-rprivate /
	/bin/busybox pivot_root . old
	cd /
	/bin/busybox umount -l /old
	/bin/busybox ls /
'
cd /
umount "$root"`
	out, err := exec.Command("/bin/busybox", "sh", "-c", script, "sh", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("pivot_root into a new root: %v, output:\n%s", err, out)
	}
	// The new root holds exactly what the script put there.
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "bin old" {
		t.Fatalf("after pivot_root / lists %q, want [bin old]", got)
	}
}

// TestOverlayMount checks that the overlay module the VM loads works: a file
// of the lower layer shows through, a new one lands in the upper layer.
func TestOverlayMount(t *testing.T) {
	script := `set -e
d=$1
mkdir "$d/lower" "$d/upper" "$d/work" "$d/merged"
echo lower >"$d/lower/a"
mount -t overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" berth-guest-overlay "$d/merged"
cat "$d/merged/a"
echo upper >"$d/merged/b"
umount "$d/merged"
cat "$d/upper/b"`
	out, err := exec.Command("/bin/busybox", "sh", "-c", script, "sh", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("overlay mount: %v, output:\n%s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "lower upper" {
		t.Fatalf("overlay mount printed %q, want [lower upper]", got)
	}
}
