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
	// The new root holds exactly what the script put there.
	if got := runScript(t, script); got != "bin old" {
		t.Fatalf("after pivot_root / lists %q, want \"bin old\"", got)
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
	if got := runScript(t, script); got != "lower upper" {
		t.Fatalf("through the overlay the files read %q, want \"lower upper\"", got)
	}
}

// runScript runs a busybox shell script with a fresh directory as $1 and
// returns the words it printed, failing the test if the script fails.
func runScript(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/busybox", "sh", "-c", script, "sh", t.TempDir()).CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v, output:\n%s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}
