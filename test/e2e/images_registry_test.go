package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// imagesBerth returns the berth binary: $BERTH_CLI, or one built now.
func imagesBerth(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERTH_CLI"); p != "" {
		return p
	}
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/berth-project/berth/cmd/berth")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}

// imagesRegistry starts Debian's docker-registry on 127.0.0.1 and returns
// its host:port; it is stopped at cleanup.
func imagesRegistry(t *testing.T) string {
	t.Helper()
	return imagesRegistryWith(t, "")
}

// imagesRegistryWith starts docker-registry with extra configuration
// (YAML, top level); %DIR% in it is its temporary directory.
func imagesRegistryWith(t *testing.T, extra string) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("needs Debian's docker-registry package (listed in .ci/apt-packages)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfg += strings.ReplaceAll(extra, "%DIR%", dir)
	os.WriteFile(filepath.Join(dir, "config.yml"), []byte(cfg), 0o600)
	cmd := exec.Command(bin, "serve", filepath.Join(dir, "config.yml"))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if i == 100 {
			t.Fatalf("docker-registry did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// imagesRun runs berth with --root root and returns its stdout; it fails
// the test if berth fails.
func imagesRun(t *testing.T, berth, root string, args ...string) string {
	t.Helper()
	out, err := imagesTry(berth, root, args...)
	if err != nil {
		t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func imagesTry(berth, root string, args ...string) (string, error) {
	cmd := exec.Command(berth, append([]string{"--root", root}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// imagesRootfs writes a gzipped root file system with Debian's static busybox.
func imagesRootfs(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs Debian's busybox-static at /bin/busybox")
	}
	p := filepath.Join(t.TempDir(), "rootfs.tar.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"})
	tw.Close()
	zw.Close()
	f.Close()
	return p
}

type imagesListed struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	Digest string `json:"digest"`
}

func imagesList(t *testing.T, berth, root string) []imagesListed {
	t.Helper()
	var out []imagesListed
	if err := json.Unmarshal([]byte(imagesRun(t, berth, root, "images", "--format", "json")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// imagesStoreFiles lists the blobs and snapshot directories left in a root.
func imagesStoreFiles(root string) []string {
	var left []string
	for _, glob := range []string{"content/blobs/sha256/*", "snapshots/snapshots/*"} {
		m, _ := filepath.Glob(filepath.Join(root, glob))
		left = append(left, m...)
	}
	return left
}

func TestImagesThroughDockerRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	berth := imagesBerth(t)
	reg := imagesRegistry(t)
	rootfs := imagesRootfs(t)
	builder, puller, loader := t.TempDir(), t.TempDir(), t.TempDir()
	name := reg + "/berth-test/busybox:1"

	imagesRun(t, berth, builder, "import", "--change", "CMD=sh", "--change", "ENV=GREETING=hi", rootfs, name)
	if out := imagesRun(t, berth, builder, "push", name); !strings.Contains(out, "Pushed "+name+"@sha256:") {
		t.Fatalf("push said %q", out)
	}

	// Two pulls at once into one store: both succeed, one image.
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = imagesTry(berth, puller, "pull", name)
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || !strings.Contains(outs[i], "Pulled "+name) {
			t.Fatalf("concurrent pull %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	list := imagesList(t, berth, puller)
	if len(list) != 1 || list[0].Name != name {
		t.Fatalf("images after pull: %+v", list)
	}
	table := imagesRun(t, berth, puller, "images")
	if !strings.Contains(table, reg+"/berth-test/busybox") || !strings.Contains(table, list[0].ID[7:19]) {
		t.Errorf("images table lacks the image:\n%s", table)
	}

	var inspected []struct {
		RuntimeConfig struct {
			Env []string `json:"Env"`
			Cmd []string `json:"Cmd"`
		} `json:"runtimeConfig"`
		Snapshot string `json:"snapshot"`
	}
	if err := json.Unmarshal([]byte(imagesRun(t, berth, puller, "image", "inspect", name)), &inspected); err != nil {
		t.Fatal(err)
	}
	if len(inspected) != 1 || strings.Join(inspected[0].RuntimeConfig.Cmd, " ") != "sh" || !strings.Contains(strings.Join(inspected[0].RuntimeConfig.Env, " "), "GREETING=hi") {
		t.Errorf("inspect: %+v", inspected)
	}

	// A failed pull is not listed.
	if out, err := imagesTry(berth, puller, "pull", reg+"/berth-test/busybox:missing"); err == nil || !strings.Contains(out, "not found") {
		t.Errorf("pull of a missing tag: %v %s", err, out)
	}
	imagesRun(t, berth, puller, "tag", name, "berth-test/copy:2")
	if got := imagesList(t, berth, puller); len(got) != 2 {
		t.Fatalf("images after failed pull and tag: %+v", got)
	}

	archive := filepath.Join(t.TempDir(), "images.tar")
	imagesRun(t, berth, puller, "save", "-o", archive, name, "berth-test/copy:2")
	if out := imagesRun(t, berth, loader, "load", "-i", archive); !strings.Contains(out, "Loaded image: "+name) {
		t.Errorf("load said %q", out)
	}
	if got := imagesList(t, berth, loader); len(got) != 2 || got[0].ID != list[0].ID {
		t.Errorf("images after load: %+v", got)
	}

	imagesRun(t, berth, puller, "rmi", name)
	if left := imagesStoreFiles(puller); len(left) == 0 {
		t.Errorf("rmi of one of two names removed the image's data")
	}
	imagesRun(t, berth, puller, "rmi", "docker.io/berth-test/copy:2")
	imagesRun(t, berth, puller, "image", "prune")
	if left := imagesStoreFiles(puller); len(left) != 0 {
		t.Errorf("after rmi and prune the store still holds %v", left)
	}
	if got := imagesList(t, berth, puller); len(got) != 0 {
		t.Errorf("images after rmi: %+v", got)
	}
}

// imagesPasswordHash is bcrypt("berth-secret"), for docker-registry's htpasswd.
const imagesPasswordHash = "$2a$10$s.jF4sBWdrwwKti.zxVFEOvEdt5sNhDfy/he70Y951XFFgMSmEvEC"

func TestImagesLogin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay snapshots")
	}
	berth := imagesBerth(t)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	os.WriteFile(htpasswd, []byte("berth:"+imagesPasswordHash+"\n"), 0o600)
	reg := imagesRegistryWith(t, "auth:\n  htpasswd:\n    realm: berth-test\n    path: "+htpasswd+"\n")
	root := t.TempDir()
	name := reg + "/private/busybox:1"
	imagesRun(t, berth, root, "import", imagesRootfs(t), name)

	if out, err := imagesTry(berth, root, "push", name); err == nil || !strings.Contains(out, "berth login "+reg) {
		t.Fatalf("push without a login: %v\n%s", err, out)
	}
	if out, err := imagesTry(berth, root, "login", "-u", "berth", "-p", "wrong", reg); err == nil || !strings.Contains(out, "401") {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	imagesRun(t, berth, root, "login", "-u", "berth", "-p", "berth-secret", reg)
	imagesRun(t, berth, root, "push", name)
	other := t.TempDir()
	// Another store logs in through a credentials file of its own.
	authFile := filepath.Join(t.TempDir(), "auth.json")
	if out, err := imagesTry(berth, other, "pull", name); err == nil {
		t.Fatalf("pull without a login succeeded: %s", out)
	}
	imagesRun(t, berth, other, "--authfile", authFile, "login", "-u", "berth", "-p", "berth-secret", reg)
	imagesRun(t, berth, other, "--authfile", authFile, "pull", name)
	imagesRun(t, berth, root, "logout", reg)
	if b, _ := os.ReadFile(filepath.Join(root, "auth.json")); strings.Contains(string(b), reg) {
		t.Errorf("logout left the credentials: %s", b)
	}
}
