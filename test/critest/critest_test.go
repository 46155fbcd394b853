//go:build linux && critest

// Package critest runs critest, the CRI validation suite of
// sigs.k8s.io/cri-tools v1.37.0, against berthd (or containerd) through
// run.sh, with the short focus below: a few minutes of the specs every
// CRI runtime must pass. It is behind the build tag "critest", off `make
// test`:
//
//	make build && go test -tags critest -count=1 -v ./test/critest/
//
// CRITEST_RUNTIME=containerd runs the same specs against a private
// containerd; CRITEST_FOCUS and CRITEST_SKIP replace the regexes. critest
// uses host ports 12000-12003: one run at a time per machine.
package critest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"

	"github.com/berth-project/berth/internal/testutil"
)

// shortFocus and shortSkip select the short run: the pod, container,
// image, networking and runtime-info specs kubelet depends on every
// day, without the slow or host-specific ones (AppArmor, SELinux, NRI,
// user namespaces, image volumes, the benchmarks, streaming): 39 of
// critest's 142 specs.
const (
	shortFocus = `Runtime info|PodSandbox|Container.*(should support (basic|lifecycle|ContainerStatus|ListContainers|starting)|runtime should support (removing|starting|stopping|listing|adding|execSync|exec))|Image Manager.*(public image with tag|public image without tag)|Networking|Multiple Containers`
	shortSkip  = `AppArmor|SELinux|NRI|UserNamespaces|Image Volume|[Bb]enchmark|Streaming|reopening container log|Windows`
)

// runTimeout bounds the whole critest run.
const runTimeout = 25 * time.Minute

func TestCritest(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	missing := func(format string, args ...any) {
		t.Helper()
		if ci {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		missing("critest needs root (it runs pods)")
	}
	for _, b := range []struct{ path, pkg string }{
		{"docker-registry", "docker-registry"},
		{"busybox", "busybox-static"},
		{"/usr/lib/cni/bridge", "containernetworking-plugins"},
		{"iptables", "iptables"},
	} {
		if _, err := exec.LookPath(b.path); err != nil {
			missing("critest needs %s: apt-get install %s", b.path, b.pkg)
		}
	}
	if _, err := exec.LookPath("go"); err != nil {
		if _, err := os.Stat("/usr/local/go/bin/go"); err != nil {
			missing("critest is built with the Go toolchain, which is not on PATH or in /usr/local/go")
		}
	}
	// critest's networking and port-forward specs bind these host ports.
	for _, port := range []int{12000, 12001, 12002, 12003} {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			missing("critest needs host port %d free: %v", port, err)
			continue
		}
		l.Close()
	}
	rt := os.Getenv("CRITEST_RUNTIME")
	if rt == "" {
		rt = "berthd"
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	env := os.Environ()
	switch rt {
	case "berthd":
		bin := os.Getenv("BERTHD")
		if bin == "" {
			bin = filepath.Join(repo, "bin", "berthd")
		}
		for _, b := range []string{bin, filepath.Join(filepath.Dir(bin), "berth-monitor"), filepath.Join(filepath.Dir(bin), "berth-runtime")} {
			if _, err := os.Stat(b); err != nil {
				t.Fatalf("%s is missing: run `make build` first (or set BERTHD)", b)
			}
		}
		env = append(env, "BERTHD="+bin)
	case "containerd":
		for _, b := range []struct{ path, pkg string }{{"containerd", "containerd"}, {"runc", "runc"}} {
			if _, err := exec.LookPath(b.path); err != nil {
				missing("CRITEST_RUNTIME=containerd needs %s: apt-get install %s", b.path, b.pkg)
			}
		}
	default:
		t.Fatalf("CRITEST_RUNTIME=%q: want berthd or containerd", rt)
	}

	work, err := os.MkdirTemp("", "berth-critest-")
	if err != nil {
		t.Fatal(err)
	}
	suffix := randHex(3)
	bridge := "crit" + suffix
	env = append(env,
		"CRITEST_WORK="+work,
		"CRITEST_REGISTRY_PORT="+freePort(t),
		"CRITEST_BRIDGE="+bridge,
		"CRITEST_SUBNET="+freeSubnet(t),
		"PATH="+os.Getenv("PATH")+":/usr/local/go/bin",
	)
	runSh := filepath.Join(repo, "test", "critest", "run.sh")
	endpoint := "unix://" + filepath.Join(work, rt, rt+".sock")
	t.Cleanup(func() { cleanup(t, runSh, env, work, endpoint, bridge) })

	focus, skip := shortFocus, shortSkip
	if v, ok := os.LookupEnv("CRITEST_FOCUS"); ok {
		focus = v
	}
	if v, ok := os.LookupEnv("CRITEST_SKIP"); ok {
		skip = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, runSh, "all", rt, "-ginkgo.focus="+focus, "-ginkgo.skip="+skip)
	cmd.Env = env
	cmd.WaitDelay = 30 * time.Second
	out, runErr := cmd.CombinedOutput()
	t.Logf("run.sh all %s:\n%s", rt, out)
	log := filepath.Join(work, "critest-"+rt+".log")
	res, err := parseLog(log)
	if err != nil {
		t.Fatalf("critest did not report (run.sh: %v): %v", runErr, err)
	}
	t.Logf("critest against %s: ran %d of %d specs: %d passed, %d failed, %d skipped", rt, res.ran, res.total, res.passed, res.failed, res.skipped)
	if res.failed > 0 || runErr != nil {
		// Copy the log out of the work directory the cleanup removes.
		keep := filepath.Join(os.TempDir(), "critest-"+rt+"-"+suffix+".log")
		_ = copyFile(log, keep)
		t.Fatalf("critest: %d specs failed (full log: %s):\n%s", res.failed, keep, strings.Join(res.failedSpecs, "\n"))
	}
	if res.passed == 0 {
		t.Fatalf("critest passed no spec: the focus %q selects none?", focus)
	}
}

type result struct {
	ran, total, passed, failed, skipped int
	failedSpecs                         []string
}

var (
	ranRe    = regexp.MustCompile(`^Ran (\d+) of (\d+) Specs`)
	countsRe = regexp.MustCompile(`(\d+) Passed \| (\d+) Failed \| \d+ Pending \| (\d+) Skipped`)
)

// parseLog reads ginkgo's summary from critest's output.
func parseLog(path string) (result, error) {
	var r result
	f, err := os.Open(path)
	if err != nil {
		return r, err
	}
	defer f.Close()
	found := false
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if m := ranRe.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &r.ran)
			fmt.Sscan(m[2], &r.total)
		}
		if m := countsRe.FindStringSubmatch(l); m != nil {
			fmt.Sscan(m[1], &r.passed)
			fmt.Sscan(m[2], &r.failed)
			fmt.Sscan(m[3], &r.skipped)
			found = true
		}
		if s := strings.TrimSpace(l); strings.HasPrefix(s, "[FAIL] ") && !seen[s] {
			seen[s] = true
			r.failedSpecs = append(r.failedSpecs, s)
		}
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	if !found {
		return r, fmt.Errorf("no ginkgo summary in %s", path)
	}
	return r, nil
}

// cleanup removes every pod left on the runtime, stops what run.sh
// started, deletes the bridge, and checks that nothing stays mounted
// under the work directory before removing it.
func cleanup(t *testing.T, runSh string, env []string, work, endpoint, bridge string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := os.Stat(strings.TrimPrefix(endpoint, "unix://")); err == nil {
		if rs, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(endpoint).
			WithConnectionTimeout(10 * time.Second).WithTracerProvider(nil).Build(ctx); err == nil {
			pods, _ := rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
			for _, p := range pods {
				if err := rs.StopPodSandbox(ctx, p.Id); err != nil {
					t.Errorf("clean up: stop pod %s: %v", p.Id, err)
				}
				if err := rs.RemovePodSandbox(ctx, p.Id); err != nil {
					t.Errorf("clean up: remove pod %s: %v", p.Id, err)
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, runSh, "stop")
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("run.sh stop: %v\n%s", err, out)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "link", "del", bridge).CombinedOutput(); err != nil {
			t.Errorf("delete bridge %s: %v\n%s", bridge, err, out)
		}
	}
	if m := testutil.MountsUnder(work); len(m) > 0 {
		t.Errorf("left mounted under %s: %v", work, m)
		return // removing would descend into them
	}
	if err := os.RemoveAll(work); err != nil {
		t.Errorf("remove %s: %v", work, err)
	}
}

// freeSubnet picks a /16 in 10.200-10.249 that no address on the host
// overlaps: another run's bridge with the same subnet would take the
// routes to the pods.
func freeSubnet(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	start := int(randHex(1)[0]) % 50
	for i := 0; i < 50; i++ {
		_, cand, _ := net.ParseCIDR(fmt.Sprintf("10.%d.0.0/16", 200+(start+i)%50))
		used := false
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && (cand.Contains(n.IP) || n.Contains(cand.IP)) {
				used = true
			}
		}
		if !used {
			return cand.String()
		}
	}
	t.Fatal("no free /16 in 10.200.0.0-10.249.255.255 for the pod network")
	return ""
}

func freePort(t *testing.T) string {
	return fmt.Sprint(testutil.FreePort(t))
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
