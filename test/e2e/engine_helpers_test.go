package e2e

// Helpers of the engine tests (engine_*_test.go): they drive the `berth`
// CLI as a user would (`berth run -d -p ...`), each test on a --root and
// --runroot of its own, with a busybox image built here and served by
// Debian's docker-registry on 127.0.0.1, and check after each test that
// nothing of its containers is left on the host.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-project/berth/internal/testutil"
)

// engineCmdTimeout bounds every berth command of the tests: a command that
// hangs fails its test instead of the whole binary at -timeout.
const engineCmdTimeout = 60 * time.Second

// engineImages are the test images, pushed once per test binary to a
// registry shared by the tests.
type engineImages struct {
	registry string // host:port
	// Plain is busybox with every applet linked in /bin, /etc/passwd and
	// /etc/group (root, nobody, app 1000, which is also in staff 50),
	// /index.html; Cmd ["sh"].
	Plain string
	// Vol is Plain plus VOLUME /data (holding /data/seed), ExposedPorts
	// 80/tcp and Cmd httpd in the foreground.
	Vol string
}

var (
	engineImagesOnce sync.Once
	engineImagesVal  engineImages
	engineImagesErr  error
)

// engineTestImages starts the shared registry and pushes the test images
// the first time a test asks. The registry keeps its blobs in memory and
// dies with the test binary (parent-death signal), so it leaves nothing on
// disk or running once the binary exits; TestMain is not ours to extend.
func engineTestImages(t *testing.T) engineImages {
	t.Helper()
	engineImagesOnce.Do(func() {
		engineImagesVal, engineImagesErr = buildEngineImages()
	})
	if errors.Is(engineImagesErr, errNoRegistry) || errors.Is(engineImagesErr, os.ErrNotExist) {
		t.Skipf("engine tests: %v", engineImagesErr)
	}
	if engineImagesErr != nil {
		t.Fatalf("engine test images: %v", engineImagesErr)
	}
	return engineImagesVal
}

var errNoRegistry = errors.New("needs Debian's docker-registry package (listed in .ci/apt-packages)")

func buildEngineImages() (engineImages, error) {
	addr, err := startSharedRegistry()
	if err != nil {
		return engineImages{}, err
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return engineImages{}, fmt.Errorf("needs Debian's busybox-static at /bin/busybox: %w", err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return engineImages{}, fmt.Errorf("busybox --list: %w", err)
	}
	base, err := engineLayer(bb, strings.Fields(string(out)), nil)
	if err != nil {
		return engineImages{}, err
	}
	plain, err := mutate.AppendLayers(empty.Image, base)
	if err != nil {
		return engineImages{}, err
	}
	plain, err = engineConfig(plain, v1.Config{
		Cmd:        []string{"sh"},
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir: "/",
	})
	if err != nil {
		return engineImages{}, err
	}
	seed, err := engineLayer(nil, nil, map[string]string{"data/seed": "seeded by the image\n"})
	if err != nil {
		return engineImages{}, err
	}
	vol, err := mutate.AppendLayers(plain, seed)
	if err != nil {
		return engineImages{}, err
	}
	vol, err = engineConfig(vol, v1.Config{
		Cmd:          []string{"httpd", "-f", "-p", "80"},
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		WorkingDir:   "/",
		Volumes:      map[string]struct{}{"/data": {}},
		ExposedPorts: map[string]struct{}{"80/tcp": {}},
	})
	if err != nil {
		return engineImages{}, err
	}
	// Users write localhost:PORT; the registry listens on 127.0.0.1.
	addr = strings.Replace(addr, "127.0.0.1", "localhost", 1)
	imgs := engineImages{
		registry: addr,
		Plain:    addr + "/berth-test/busybox:latest",
		Vol:      addr + "/berth-test/busybox-vol:latest",
	}
	for ref, img := range map[string]v1.Image{imgs.Plain: plain, imgs.Vol: vol} {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			return engineImages{}, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
		err = remote.Write(r, img, remote.WithContext(ctx))
		cancel()
		if err != nil {
			return engineImages{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	return imgs, nil
}

// engineConfig sets the image's config and its platform (this machine's).
func engineConfig(img v1.Image, c v1.Config) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = c
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	return mutate.ConfigFile(img, cf)
}

// engineLayer builds a layer: busybox in /bin with a link per applet when
// bb is set, the /etc files and /index.html, and extra files.
func engineLayer(bb []byte, applets []string, extra map[string]string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(p string, mode int64) {
		tw.WriteHeader(&tar.Header{Name: p + "/", Typeflag: tar.TypeDir, Mode: mode})
	}
	file := func(p, data string, mode int64) {
		tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(data))})
		tw.Write([]byte(data))
	}
	if bb != nil {
		for _, d := range []string{"bin", "etc", "root", "home", "var", "usr", "usr/bin", "sbin", "dev", "proc", "sys", "run"} {
			dir(d, 0o755)
		}
		dir("tmp", 0o1777)
		tw.WriteHeader(&tar.Header{Name: "home/app/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000})
		tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
		tw.Write(bb)
		seen := map[string]bool{"busybox": true}
		for _, a := range applets {
			if a = filepath.Base(a); seen[a] {
				continue
			}
			seen[a] = true
			tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox"})
		}
		file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644)
		file("etc/group", "root:x:0:\nstaff:x:50:app\napp:x:1000:\nnogroup:x:65534:\n", 0o644)
		file("index.html", "hello from berth httpd\n", 0o644)
		// A file that is not executable, for run's exit code 126.
		file("notexec", "#!/bin/sh\necho no\n", 0o644)
	}
	var names []string
	for p := range extra {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		dir(filepath.Dir(p), 0o755)
		file(p, extra[p], 0o644)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}

// startSharedRegistry starts docker-registry on 127.0.0.1 with in-memory
// storage. It is started from a goroutine locked to its thread that never
// ends, so the parent-death signal (which follows the creating thread)
// fires only when the test binary exits.
func startSharedRegistry() (string, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return "", errNoRegistry
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	l.Close()
	cfg, err := os.CreateTemp("", "berth-e2e-registry-*.yml")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(cfg, "version: 0.1\nlog:\n  level: error\nstorage:\n  inmemory: {}\nhttp:\n  addr: %s\n", addr)
	cfg.Close()
	// The registry reads its configuration at start; the file goes once
	// the registry answers.
	defer os.Remove(cfg.Name())
	var log bytes.Buffer
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread must outlive the registry
		cmd := exec.Command(bin, "serve", cfg.Name())
		cmd.Stdout, cmd.Stderr = &log, &log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		select {} // keep the thread
	}()
	if err := <-started; err != nil {
		return "", err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; ; i++ {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr, nil
		}
		if i == 200 {
			return "", fmt.Errorf("docker-registry did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// engineBinaries finds berth, berth-monitor and berth-runtime: $BERTH_CLI
// for berth, else bin/ beside $BERTH_RUNTIME (as `make test` sets it), else
// the repository's bin/.
func engineBinaries(t *testing.T) (berth, binDir string) {
	t.Helper()
	testutil.RequiresRoot(t)
	binDir = ""
	if rt := os.Getenv("BERTH_RUNTIME"); rt != "" && filepath.Base(rt) == "berth-runtime" {
		binDir = filepath.Dir(rt)
	} else if abs, err := filepath.Abs("../../bin"); err == nil {
		binDir = abs
	}
	berth = os.Getenv("BERTH_CLI")
	if berth == "" {
		berth = filepath.Join(binDir, "berth")
	}
	if _, err := os.Stat(berth); err != nil {
		t.Fatalf("the berth CLI %s: %v (run `make build`, or set BERTH_CLI)", berth, err)
	}
	return berth, binDir
}

// engineT is one test's engine: its root and run root, the image it
// pulled, and what it made, for cleanup and the leak check.
type engineT struct {
	t       *testing.T
	bin     string // berth
	binDir  string
	root    string
	runroot string
	images  engineImages
	image   string // images.Plain, pulled

	mu        sync.Mutex
	ids       map[string]bool // every container id seen under root
	ips       map[string]bool // container addresses seen in inspect
	subnets   []string        // subnets of the networks the test made
	nets      []string        // names of the networks the test made
	ifsBefore map[string]bool
	stopPoll  chan struct{}
	pollDone  chan struct{}
}

// newEngine gives the test a private berth root and run root with the
// test image pulled, and registers the cleanup: `rm -f` of every container,
// removal of the networks and volumes, then leakCheck.
func newEngine(t *testing.T) *engineT {
	t.Helper()
	bin, binDir := engineBinaries(t)
	imgs := engineTestImages(t)
	e := &engineT{
		t: t, bin: bin, binDir: binDir, images: imgs, image: imgs.Plain,
		root: filepath.Join(t.TempDir(), "root"),
		ids:  map[string]bool{}, ips: map[string]bool{},
		ifsBefore: engineInterfaces(),
		stopPoll:  make(chan struct{}), pollDone: make(chan struct{}),
	}
	// Unix socket paths are limited to 108 bytes: a short run root.
	rr, err := os.MkdirTemp("/tmp", "be")
	if err != nil {
		t.Fatal(err)
	}
	e.runroot = rr
	if err := os.MkdirAll(e.root, 0o711); err != nil {
		t.Fatal(err)
	}
	reg := fmt.Sprintf(`{"registries": {%q: {"insecure": true}}}`, imgs.registry)
	if err := os.WriteFile(filepath.Join(e.root, "registries.json"), []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	go e.pollIDs()
	t.Cleanup(e.cleanup)
	e.ok("pull", e.image)
	return e
}

// pollIDs records the containers that exist under root while the test
// runs, so leakCheck knows the ids of containers that were removed (run
// --rm, rm) too.
func (e *engineT) pollIDs() {
	defer close(e.pollDone)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		e.scanIDs()
		select {
		case <-e.stopPoll:
			return
		case <-tick.C:
		}
	}
}

func (e *engineT) scanIDs() {
	var found []string
	for _, d := range []string{filepath.Join(e.root, "containers"), filepath.Join(e.runroot, "containers")} {
		ents, _ := os.ReadDir(d)
		for _, ent := range ents {
			if engineIsID(ent.Name()) {
				found = append(found, ent.Name())
			}
		}
	}
	e.mu.Lock()
	for _, id := range found {
		e.ids[id] = true
	}
	e.mu.Unlock()
}

func engineIsID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// result is what a berth command did.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// berth runs `berth --root R --runroot RR args...` with a 60 s timeout.
// Its output goes to files, not pipes: a monitor that `run -d` leaves
// behind may hold the command's stdout, which must not keep the test
// waiting.
func (e *engineT) berth(args ...string) result {
	e.t.Helper()
	return e.berthIn(nil, args...)
}

// berthIn is berth with stdin.
func (e *engineT) berthIn(stdin []byte, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineCmdTimeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	dir := e.t.TempDir()
	outF, _ := os.Create(filepath.Join(dir, "stdout"))
	errF, _ := os.Create(filepath.Join(dir, "stderr"))
	cmd.Stdout, cmd.Stderr = outF, errF
	err := cmd.Run()
	outF.Close()
	errF.Close()
	out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	serr, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	r := result{args: args, stdout: string(out), stderr: string(serr)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		r.code = -1
		e.t.Errorf("berth %s: timed out after %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), engineCmdTimeout, out, serr)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		// Errorf, not Fatalf: berth is also called from goroutines.
		r.code = -1
		e.t.Errorf("berth %s: %v", strings.Join(args, " "), err)
	}
	e.scanIDs()
	return r
}

// command is an exec.Cmd of berth with the test's roots, killed at ctx's
// end; berth-monitor and berth-runtime are found beside berth, and on PATH.
func (e *engineT) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, append([]string{"--root", e.root, "--runroot", e.runroot}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+e.binDir+":"+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// ok runs berth and fails the test unless it exits 0; it returns stdout
// trimmed.
func (e *engineT) ok(args ...string) string {
	e.t.Helper()
	r := e.berth(args...)
	if r.code != 0 {
		e.t.Fatalf("%s", r)
	}
	return strings.TrimSpace(r.stdout)
}

// runD is `run -d args...`; it returns the container id.
func (e *engineT) runD(args ...string) string {
	e.t.Helper()
	id := e.ok(append([]string{"run", "-d"}, args...)...)
	if !engineIsID(id) {
		e.t.Fatalf("run -d printed %q, want a 64-hex container id", id)
	}
	return id
}

// inspect returns `inspect -f TEMPLATE ref`, trimmed.
func (e *engineT) inspectF(ref, template string) string {
	e.t.Helper()
	return e.ok("inspect", "-f", template, ref)
}

// inspect returns the container's inspect JSON.
func (e *engineT) inspect(ref string) map[string]any {
	e.t.Helper()
	out := e.ok("inspect", ref)
	var list []map[string]any
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 {
		e.t.Fatalf("inspect %s: want a JSON array of one object: %v\n%s", ref, err, out)
	}
	return list[0]
}

// status is .State.Status ("" if berth cannot say).
func (e *engineT) status(ref string) string {
	e.t.Helper()
	r := e.berth("inspect", "-f", "{{.State.Status}}", ref)
	return strings.TrimSpace(r.stdout)
}

// waitStatus polls until ref's status is want.
func (e *engineT) waitStatus(ref, want string) {
	e.t.Helper()
	var last string
	waitForLong(e.t, fmt.Sprintf("%s to be %s", ref, want), 60*time.Second, func() bool {
		last = e.status(ref)
		return last == want
	})
	_ = last
}

// waitForLong is waitFor with a deadline of the caller's choosing, for
// waits that span container starts on a loaded 2-core machine.
func waitForLong(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitForOut is waitForLong for a condition that also says what it last
// saw, for the failure message.
func waitForOut(t *testing.T, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uniq returns prefix-<random>, unique across parallel runs.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%08x", prefix, rand.Uint32())
}

// engineSubnetBase is a random third octet base, so two test binaries on
// one host are unlikely to pick the same subnets.
var (
	engineSubnetMu   sync.Mutex
	engineSubnetNext = 1 + rand.IntN(200)
)

// subnet returns a fresh 10.231.N.0/24 and records it for the leak check.
func (e *engineT) subnet() string {
	engineSubnetMu.Lock()
	n := engineSubnetNext
	engineSubnetNext = engineSubnetNext%250 + 1
	engineSubnetMu.Unlock()
	s := fmt.Sprintf("10.231.%d.0/24", n)
	e.mu.Lock()
	e.subnets = append(e.subnets, s)
	e.mu.Unlock()
	return s
}

// networkCreate makes a network with a fresh subnet; it returns its name.
func (e *engineT) networkCreate() string {
	e.t.Helper()
	n := uniq("net")
	e.ok("network", "create", "--subnet", e.subnet(), n)
	e.mu.Lock()
	e.nets = append(e.nets, n)
	e.mu.Unlock()
	return n
}

// freePort returns a TCP port free on the host now, outside the ephemeral
// range (testutil.FreePort says why).
func freePort(t *testing.T) int {
	t.Helper()
	return testutil.FreePort(t)
}

// httpGet fetches url with a short timeout; ok is false on any failure.
func httpGet(url string) (string, bool) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err.Error(), false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String(), resp.StatusCode == 200
}

// cleanup removes what the test made through berth, then checks the host.
func (e *engineT) cleanup() {
	t := e.t
	// Every container of the root is the test's; those ps cannot list
	// (a run killed half way) are in e.ids.
	e.scanIDs()
	e.mu.Lock()
	var ids []string
	for id := range e.ids {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	if r := e.berth("ps", "-a", "-q", "--no-trunc"); r.code == 0 {
		for _, id := range strings.Fields(r.stdout) {
			if engineIsID(id) && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	for _, id := range ids {
		e.recordIPs(id)
	}
	for _, id := range ids {
		if !fileExists(filepath.Join(e.root, "containers", id)) && e.berth("inspect", id).code != 0 {
			continue // removed by the test
		}
		if r := e.berth("rm", "-f", "-v", id); r.code != 0 {
			t.Errorf("cleanup: %s", r)
		}
	}
	for _, n := range e.userNetworks() {
		if r := e.berth("network", "rm", n); r.code != 0 {
			t.Errorf("cleanup: %s", r)
		}
	}
	if r := e.berth("volume", "ls", "-q"); r.code == 0 {
		for _, v := range strings.Fields(r.stdout) {
			if strings.HasPrefix(v, "-") {
				continue
			}
			e.berth("volume", "rm", "-f", v)
		}
	}
	close(e.stopPoll)
	<-e.pollDone
	e.leakCheck()
	// What the engine left of the test's networks goes, once reported:
	// the next test must not inherit it.
	if e.t.Failed() {
		e.mu.Lock()
		var needles []string
		for _, s := range e.subnets {
			if _, n, err := net.ParseCIDR(s); err == nil {
				needles = append(needles, strings.TrimSuffix(n.IP.String(), ".0")+".")
			}
		}
		for id := range e.ids {
			needles = append(needles, id[:12])
		}
		e.mu.Unlock()
		e.deleteRulesMatching(needles)
	}
	os.RemoveAll(e.runroot)
}

// userNetworks are the networks the test made that the root still has.
func (e *engineT) userNetworks() []string {
	r := e.berth("network", "ls", "--format", "{{.Name}}")
	if r.code != 0 {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, n := range strings.Fields(r.stdout) {
		if slices.Contains(e.nets, n) {
			names = append(names, n)
		}
	}
	return names
}

// recordIPs remembers a container's addresses, for the rule check.
func (e *engineT) recordIPs(ref string) {
	r := e.berth("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", ref)
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ip := range strings.Fields(r.stdout) {
		if net.ParseIP(ip) != nil {
			e.ips[ip] = true
		}
	}
}

// leakCheck reports everything of the test's containers still on the
// host: a process naming the test's root, run root or a container id; a
// mount under the roots or naming an id; a cgroup /berth/<id>; a new
// interface holding one of the test's subnets or enslaved to such a
// bridge; an iptables or nftables rule naming an id, a container address
// or a test subnet; a network namespace file naming an id. Waits briefly
// for processes to go (a monitor exits after its container).
func (e *engineT) leakCheck() {
	t := e.t
	t.Helper()
	for _, l := range e.leaks(true) {
		t.Errorf("leak: %s", l)
	}
}

// leaks lists the leaks; processes get a few seconds to exit first.
func (e *engineT) leaks(bool) []string { return e.leaksOf(true) }

// leaksOf lists the leaks of the containers in e.ids and of the test's
// networks; withRoots also counts any process or mount naming the test's
// root or run root (false while a container of the test should run).
func (e *engineT) leaksOf(withRoots bool, except ...string) []string {
	wait := true
	e.mu.Lock()
	var ids, ips []string
	for id := range e.ids {
		if !slices.Contains(except, id) {
			ids = append(ids, id)
		}
	}
	for ip := range e.ips {
		ips = append(ips, ip)
	}
	subnets := append([]string(nil), e.subnets...)
	e.mu.Unlock()
	var markers []string
	if withRoots {
		markers = append(markers, e.root, e.runroot)
	}
	for _, id := range ids {
		markers = append(markers, id)
	}
	var found []string
	// A network's DNS server (`berth system dns RUNROOT/network NAME`)
	// lives as long as the network: only those of removed networks count.
	live := e.userNetworks()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pids []int
		if len(markers) > 0 {
			pids = enginePidsNaming(markers)
		}
		pids = slices.DeleteFunc(pids, func(pid int) bool {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
			return slices.Contains(args, "dns") && slices.Contains(live, args[len(args)-1])
		})
		if len(pids) == 0 || !wait || time.Now().After(deadline) {
			for _, pid := range pids {
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				found = append(found, fmt.Sprintf("process %d %q", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
			}
			break
		}
		callersReapZombies("berth", "berth-monitor", "berth-runtime", "sh", "sleep", "httpd")
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range engineMounts() {
		for _, mk := range markers {
			if strings.Contains(m, mk) {
				found = append(found, "mount "+m)
				break
			}
		}
	}
	for _, id := range ids {
		for _, cg := range testutil.FindCgroups(id) {
			found = append(found, "cgroup "+cg)
		}
		for _, d := range []string{"/run/netns", "/var/run/netns"} {
			ents, _ := os.ReadDir(d)
			for _, ent := range ents {
				if strings.Contains(ent.Name(), id) || strings.Contains(ent.Name(), id[:12]) {
					found = append(found, "netns file "+filepath.Join(d, ent.Name()))
				}
			}
		}
	}
	// Interfaces: bridges holding a test subnet, and veths on them.
	var prefixes []string
	for _, s := range subnets {
		_, n, err := net.ParseCIDR(s)
		if err == nil {
			prefixes = append(prefixes, strings.TrimSuffix(n.IP.String(), ".0")+".")
		}
	}
	ours := map[string]bool{}
	liveNets := e.userNetworks()
	for ifname := range engineInterfaces() {
		if e.ifsBefore[ifname] {
			continue
		}
		ifc, err := net.InterfaceByName(ifname)
		if err != nil {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			for _, p := range prefixes {
				if strings.HasPrefix(a.String(), p) {
					ours[ifname] = true
					// A network the test still has keeps its bridge.
					if len(liveNets) == 0 {
						found = append(found, "interface "+ifname+" with "+a.String())
					}
				}
			}
		}
	}
	for ifname := range engineInterfaces() {
		if master, err := os.Readlink("/sys/class/net/" + ifname + "/master"); err == nil && ours[filepath.Base(master)] {
			found = append(found, "interface "+ifname+" on bridge "+filepath.Base(master))
		}
	}
	// Rules.
	var rules []string
	for _, c := range [][]string{{"iptables-save"}, {"ip6tables-save"}, {"nft", "list", "ruleset"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := exec.CommandContext(ctx, c[0], c[1:]...).Output()
		cancel()
		rules = append(rules, strings.Split(string(out), "\n")...)
	}
	needles := append([]string{}, prefixes...)
	for _, id := range ids {
		needles = append(needles, id[:12])
	}
	// Addresses on the shared default bridge are handed out again to
	// other roots' containers: only the test's own subnets' count.
	for _, ip := range ips {
		for _, p := range prefixes {
			if strings.HasPrefix(ip, p) {
				needles = append(needles, ip+"/", ip+" ", ip+":")
			}
		}
	}
	seen := map[string]bool{}
	for _, line := range rules {
		if networkMasquerade(line) {
			continue
		}
		for _, n := range needles {
			if strings.Contains(line, n) && !seen[line] {
				seen[line] = true
				found = append(found, "rule "+strings.TrimSpace(line))
			}
		}
	}
	return found
}

// networkMasquerade reports whether a rule is a network's own masquerade
// rule (one per Berth bridge network, made at its first attach, removed
// with it) while that network's bridge exists: not a container's leak.
// Once the network is removed, a rule left is reported.
func networkMasquerade(line string) bool {
	var bridge string
	switch {
	case strings.Contains(line, "MASQUERADE") && strings.Contains(line, "berth network "):
		_, rest, ok := strings.Cut(line, "! -o ")
		if !ok {
			return false
		}
		bridge, _, _ = strings.Cut(rest, " ")
	case strings.Contains(line, "masquerade") && strings.Contains(line, `oifname != "`):
		_, rest, _ := strings.Cut(line, `oifname != "`)
		bridge, _, _ = strings.Cut(rest, `"`)
	default:
		return false
	}
	_, err := os.Stat("/sys/class/net/" + bridge)
	return bridge != "" && err == nil
}

// engineInterfaces is the set of the host's interface names.
func engineInterfaces() map[string]bool {
	ifs, _ := net.Interfaces()
	m := map[string]bool{}
	for _, i := range ifs {
		m[i.Name] = true
	}
	return m
}

// engineMounts returns the mount points and sources of the host's mount
// table (mount namespace of the test), one line each.
func engineMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 5 {
			out = append(out, unescapeOctal(fields[4])+" (root "+unescapeOctal(fields[3])+")")
		}
	}
	return out
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &v); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// snapshotDirs lists the snapshot directories under root, to check that a
// failed run left none beyond the image's.
func (e *engineT) snapshotDirs() []string {
	m, _ := filepath.Glob(filepath.Join(e.root, "snapshots", "snapshots", "*"))
	sort.Strings(m)
	return m
}

// wantOneSentence checks that stderr is one line naming what is wrong.
func wantOneSentence(t *testing.T, r result, mentions ...string) {
	t.Helper()
	msg := strings.TrimSpace(r.stderr)
	if msg == "" || strings.Count(msg, "\n") > 0 {
		t.Errorf("berth %s: want one line on stderr, got %q", strings.Join(r.args, " "), msg)
	}
	for _, m := range mentions {
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(m)) {
			t.Errorf("berth %s: the error %q does not mention %q", strings.Join(r.args, " "), msg, m)
		}
	}
}

// hostAddress returns a non-loopback IPv4 address of the host, or "".
func hostAddress() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !strings.HasPrefix(n.IP.String(), "10.231.") {
			return n.IP.String()
		}
	}
	return ""
}

// enginePidsNaming returns the processes whose command line or cgroup
// names any of markers (a container's processes sit in /berth/<id>).
func enginePidsNaming(markers []string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, m := range markers {
			if bytes.Contains(cmdline, []byte(m)) || bytes.Contains(cg, []byte(m)) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// loggingRuntime writes a runtime that appends its arguments, one call a
// line, to the returned calls file and then runs real with them.
func loggingRuntime(t *testing.T, real string) (wrapper, calls string) {
	t.Helper()
	dir := t.TempDir()
	calls, wrapper = filepath.Join(dir, "calls"), filepath.Join(dir, "logged-runtime")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec %s \"$@\"\n", calls, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, calls
}
