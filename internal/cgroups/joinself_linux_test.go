package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testutil"
)

// TestJoinSelf: a process joins the cgroup it made on every hierarchy, and
// when one refuses it (a v1 cpuset without cpus) it is back in its own
// cgroups everywhere, so the new cgroup can be removed. The joining is
// done by a child process (this test binary again), never the test itself.
func TestJoinSelf(t *testing.T) {
	if id := os.Getenv("BERTH_TEST_JOINSELF"); id != "" {
		m, err := New(Config{ID: id, CgroupsPath: "/" + id})
		if err == nil {
			err = m.JoinSelf()
		}
		if err != nil {
			fmt.Println("JOIN ERROR:", err)
		}
		cg, _ := os.ReadFile("/proc/self/cgroup")
		fmt.Print(string(cg))
		return
	}
	testutil.RequiresRoot(t)
	if IsV2() {
		t.Skip("the refusal this test causes is of cgroup v1's cpuset (no cpus); this host runs cgroup v2 only")
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuset"); err != nil {
		t.Skip("no cgroup v1 cpuset hierarchy on this host")
	}
	join := func(t *testing.T, id string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestJoinSelf$")
		cmd.Env = append(os.Environ(), "BERTH_TEST_JOINSELF="+id)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprintf("refused=%v", refuse), func(t *testing.T) {
			id := fmt.Sprintf("berth-unit-joinself-%d-%v", os.Getpid(), refuse)
			m, err := New(Config{ID: id, CgroupsPath: "/" + id})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Apply(-1); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := m.Destroy(); err != nil {
					t.Errorf("remove the cgroup after the child: %v", err)
				}
			})
			if refuse {
				if err := os.WriteFile(filepath.Join(m.Path("cpuset"), "cpuset.cpus"), []byte("\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out := join(t, id)
			if got := strings.Contains(out, "JOIN ERROR"); got != refuse {
				t.Fatalf("join with refused=%v: %s", refuse, out)
			}
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if strings.HasPrefix(l, "JOIN ERROR") || strings.HasPrefix(l, "PASS") || l == "" {
					continue
				}
				if in := strings.HasSuffix(l, "/"+id); in == refuse {
					t.Errorf("refused=%v: the child's cgroup %q", refuse, l)
				}
			}
		})
	}
}
