// Command pull benchmarks a cold pull and unpack of a generated image of
// about 300 MB in 6 layers from Debian's docker-registry on 127.0.0.1:
// berth beside containerd (ctr image pull) and skopeo copy + umoci unpack,
// on the same machine in the same run. See README.md.
package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

func main() {
	layers := flag.Int("layers", 6, "layers in the generated image")
	layerMB := flag.Int("layer-mb", 50, "uncompressed MB per layer")
	runs := flag.Int("runs", 3, "cold pulls per tool (the median is reported)")
	peers := flag.Bool("peers", true, "also time containerd and skopeo+umoci")
	compare := flag.String("compare", "", "also time this berth binary (another version), each run right beside the tree's, the two in turn first")
	flag.Parse()
	if err := run(*layers, *layerMB, *runs, *peers, *compare); err != nil {
		fmt.Fprintln(os.Stderr, "bench/pull:", err)
		os.Exit(1)
	}
}

func run(nLayers, layerMB, runs int, peers bool, compare string) error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "berth-bench-pull-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	addr, stopRegistry, err := startRegistry(work)
	if err != nil {
		return err
	}
	defer stopRegistry()

	fmt.Printf("generating %d layers of %d MB...\n", nLayers, layerMB)
	ref := addr + "/bench/big:1"
	layers, err := generateAndPush(ctx, ref, nLayers, layerMB)
	if err != nil {
		return err
	}
	compressed := 0
	for _, l := range layers {
		compressed += len(l)
	}
	fmt.Printf("image %s: %d MB uncompressed, %.0f MB gzipped\n", ref, nLayers*layerMB, float64(compressed)/1e6)

	berth := filepath.Join(work, "berth")
	if out, err := exec.Command("go", "build", "-o", berth, "./cmd/berth").CombinedOutput(); err != nil {
		return fmt.Errorf("build berth: %v\n%s", err, out)
	}

	results := map[string]time.Duration{}
	var cpu, otherCPU, other []time.Duration
	var ratios []float64
	pull := func(bin, root string) (wall, cpu time.Duration, err error) {
		defer cleanupRoot(root)
		exec.Command("sync").Run() // the other pull's writes are not this one's
		cmd := exec.Command(bin, "--root", root, "pull", "-q", ref)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("%s pull: %v\n%s", bin, err, out)
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	results["berth"], err = median(runs, func(i int) (time.Duration, error) {
		root := filepath.Join(work, fmt.Sprintf("berth-root-%d", i))
		if compare == "" {
			d, c, err := pull(berth, root)
			cpu = append(cpu, c)
			return d, err
		}
		// Side by side, the two in turn first, so that a machine other
		// work loads meanwhile slows both alike.
		var d, od, c, oc time.Duration
		if i%2 == 0 {
			if d, c, err = pull(berth, root); err == nil {
				od, oc, err = pull(compare, root+"-other")
			}
		} else if od, oc, err = pull(compare, root+"-other"); err == nil {
			d, c, err = pull(berth, root)
		}
		cpu, otherCPU, other = append(cpu, c), append(otherCPU, oc), append(other, od)
		ratios = append(ratios, d.Seconds()/od.Seconds())
		return d, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("berth pull: median CPU time (user+sys) %.2f s\n", medianOf(cpu).Seconds())
	if compare != "" {
		sort.Float64s(ratios)
		results["berth-compare"] = medianOf(other)
		fmt.Printf("%s pull (berth-compare): median CPU time %.2f s; median of the runs' berth/berth-compare = %.2f\n",
			compare, medianOf(otherCPU).Seconds(), ratios[len(ratios)/2])
	}
	if !peers {
		fmt.Println("peers skipped (-peers=false)")
	} else if _, err := exec.LookPath("containerd"); err == nil {
		results["containerd"], err = median(runs, func(i int) (time.Duration, error) {
			return containerdPull(work, i, ref)
		})
		if err != nil {
			return err
		}
	} else {
		fmt.Println("containerd: not installed (apt-get install containerd)")
	}
	if !peers {
	} else if _, err := exec.LookPath("skopeo"); err == nil {
		results["skopeo+umoci"], err = median(runs, func(i int) (time.Duration, error) {
			dir := filepath.Join(work, fmt.Sprintf("skopeo-%d", i))
			os.MkdirAll(dir, 0o700)
			defer os.RemoveAll(dir)
			start := time.Now()
			if _, err := timeCmd("skopeo", "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+"/layout:1"); err != nil {
				return 0, err
			}
			if _, err := timeCmd("umoci", "unpack", "--image", dir+"/layout:1", dir+"/bundle"); err != nil {
				return 0, err
			}
			return time.Since(start), nil
		})
		if err != nil {
			return err
		}
	} else {
		fmt.Println("skopeo+umoci: not installed (apt-get install skopeo umoci)")
	}

	// The floor berth aims at: the decompressor alone on the same layers,
	// in memory, one layer at a time and two at once (both cores busy).
	for _, par := range []int{1, 2} {
		name := fmt.Sprintf("gunzip only x%d", par)
		if results[name], err = median(runs, func(int) (time.Duration, error) { return gunzipAll(layers, par) }); err != nil {
			return err
		}
	}

	fmt.Printf("\ncold pull + unpack, median of %d (gunzip only: klauspost/compress inflating the layers in memory, 1 or 2 at a time):\n", runs)
	names := make([]string, 0, len(results))
	for n := range results {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Printf("  %-14s %6.2f s   berth/%s = %.2f\n", n, results[n].Seconds(), n, results["berth"].Seconds()/results[n].Seconds())
	}
	return nil
}

// gunzipAll inflates every layer into io.Discard, par at a time.
func gunzipAll(layers [][]byte, par int) (time.Duration, error) {
	start := time.Now()
	sem := make(chan struct{}, par)
	errs := make(chan error, len(layers))
	for _, l := range layers {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			zr, err := gzip.NewReader(bytes.NewReader(l))
			if err == nil {
				_, err = io.Copy(io.Discard, zr)
			}
			errs <- err
		}()
	}
	for range layers {
		if err := <-errs; err != nil {
			return 0, fmt.Errorf("gunzip: %w", err)
		}
	}
	return time.Since(start), nil
}

func median(runs int, fn func(i int) (time.Duration, error)) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i < runs; i++ {
		exec.Command("sync").Run()
		d, err := fn(i)
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	return medianOf(ds), nil
}

func medianOf(ds []time.Duration) time.Duration {
	ds = append([]time.Duration(nil), ds...)
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func timeCmd(name string, args ...string) (time.Duration, error) {
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return time.Since(start), nil
}

// cleanupRoot removes a store; overlay snapshot directories need no unmount.
func cleanupRoot(root string) { os.RemoveAll(root) }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startRegistry(work string) (string, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(work, "registry"), addr)
	p := filepath.Join(work, "registry.yml")
	os.WriteFile(p, []byte(cfg), 0o600)
	cmd := exec.Command("docker-registry", "serve", p)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start docker-registry (apt-get install docker-registry): %w", err)
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for i := 0; i < 100; i++ {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			return addr, stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("docker-registry did not start")
}

// layerData makes n bytes that gzip to about half: runs of random bytes
// between runs of words.
func layerData(rng *rand.Rand, n int) []byte {
	words := []string{"berth ", "container ", "image ", "layer ", "overlay ", "registry ", "snapshot ", "digest "}
	b := make([]byte, 0, n)
	for len(b) < n {
		if rng.IntN(2) == 0 {
			for i := rng.IntN(512) + 64; i > 0; i-- {
				b = append(b, byte(rng.Uint32()))
			}
		} else {
			for i := rng.IntN(256) + 16; i > 0; i-- {
				b = append(b, words[rng.IntN(len(words))]...)
			}
		}
	}
	return b[:n]
}

func generateAndPush(ctx context.Context, ref string, nLayers, layerMB int) ([][]byte, error) {
	r, err := reference.Parse(ref)
	if err != nil {
		return nil, err
	}
	client := registry.New(registry.Options{})
	repo, err := client.Repository(r)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	img := ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	var layers [][]byte
	for l := 0; l < nLayers; l++ {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		// Files of 64 KiB to 4 MiB, as in real images.
		for left, i := layerMB<<20, 0; left > 0; i++ {
			size := min(left, 64<<10<<rng.IntN(7))
			data := layerData(rng, size)
			dir := fmt.Sprintf("layer%d/dir%d/", l, i%16)
			tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755})
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%sfile%d", dir, i), Mode: 0o644, Size: int64(size)})
			tw.Write(data)
			left -= size
		}
		tw.Close()
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.FromBytes(tb.Bytes()))
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(tb.Bytes())
		zw.Close()
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(zb.Bytes()), Size: int64(zb.Len())}
		if err := repo.PushBlob(ctx, desc, bytes.NewReader(zb.Bytes())); err != nil {
			return nil, err
		}
		m.Layers = append(m.Layers, desc)
		layers = append(layers, zb.Bytes())
	}
	cb, _ := json.Marshal(img)
	m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}
	if err := repo.PushBlob(ctx, m.Config, bytes.NewReader(cb)); err != nil {
		return nil, err
	}
	mb, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	return layers, repo.PushManifest(ctx, md, mb, r.Tag)
}

// containerdPull starts a private containerd, times `ctr image pull`
// (which also unpacks into its overlayfs snapshotter) and stops it.
func containerdPull(work string, i int, ref string) (time.Duration, error) {
	dir := filepath.Join(work, fmt.Sprintf("containerd-%d", i))
	sock := filepath.Join(dir, "containerd.sock")
	cfg := filepath.Join(dir, "config.toml")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(cfg, []byte(fmt.Sprintf("version = 2\nroot = %q\nstate = %q\n[grpc]\n  address = %q\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = true\n", dir+"/root", dir+"/state", sock)), 0o600)
	cmd := exec.Command("containerd", "--config", cfg, "--address", sock, "--root", dir+"/root", "--state", dir+"/state")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		exec.Command("umount", "-R", dir+"/root").Run()
		os.RemoveAll(dir)
	}()
	for j := 0; ; j++ {
		if exec.Command("ctr", "--address", sock, "version").Run() == nil {
			break
		}
		if j == 100 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			return 0, fmt.Errorf("containerd did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return timeCmd("ctr", "--address", sock, "image", "pull", "--plain-http", ref)
}
