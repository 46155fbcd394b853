// Command trust measures what image trust costs `berth run`: `run --rm
// --network none IMAGE true` under a sigstoreSigned policy with three
// admission rules (non-root user, an attested SBOM, no critical
// vulnerability) beside the same with no policy, the two taking turns, and
// separately the first run's verification (signature and attestation
// fetched from the registry, rules evaluated) that later runs find cached.
//
// The image (Debian's static busybox, user 1000) is built here, signed and
// attested the way cosign does (an ECDSA P-256 key, the .sig and .att tags)
// and served by an in-process registry on 127.0.0.1. Each side has a root
// of its own under a temporary directory, removed at the end. Needs root
// and bin/berth (make build).
//
//	go run ./bench/trust [-n 50] [-berth bin/berth]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/internal/reference"
	berthregistry "github.com/berth-project/berth/internal/registry"
)

const rules = `rules:
  - name: non-root
    expression: image.user != "" && image.user != "root" && image.user != "0"
    message: the image runs as root
  - name: require-sbom
    expression: sbom != null
    message: no SBOM attested
  - name: no-critical-vulns
    expression: '!vulnerabilities.exists(v, v.severity == "critical")'
    message: critical vulnerabilities
`

const sbom = `{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
 "components": [{"type": "application", "name": "busybox", "version": "1.35.0", "purl": "pkg:deb/debian/busybox-static@1.35.0"}],
 "vulnerabilities": []}`

func main() {
	n := flag.Int("n", 50, "runs of each side")
	berth := flag.String("berth", "bin/berth", "the berth binary")
	flag.Parse()
	if err := run(*n, *berth); err != nil {
		fmt.Fprintln(os.Stderr, "bench/trust:", err)
		os.Exit(1)
	}
}

type side struct {
	name, root, runroot string
	extra               []string
}

func (s side) cmd(ctx context.Context, berth string, args ...string) (time.Duration, error) {
	full := append([]string{"--root", s.root, "--runroot", s.runroot}, s.extra...)
	c := exec.CommandContext(ctx, berth, append(full, args...)...)
	c.Env = append(os.Environ(), "PATH="+filepath.Dir(berth)+":"+os.Getenv("PATH"))
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	err := c.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("berth %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return d, nil
}

func run(n int, berth string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root")
	}
	berth, err := filepath.Abs(berth)
	if err != nil {
		return err
	}
	if _, err := os.Stat(berth); err != nil {
		return fmt.Errorf("%v (make build)", err)
	}
	dir, err := os.MkdirTemp("", "berth-bench-trust-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := host + "/bench/busybox:1"

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	pub := filepath.Join(dir, "release.pub")
	if err := os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return err
	}
	if err := pushSigned(ref, key); err != nil {
		return err
	}

	mk := func(name string) (side, error) {
		s := side{name: name, root: filepath.Join(dir, name)}
		var err error
		if s.runroot, err = os.MkdirTemp("/tmp", "bt"); err != nil {
			return s, err
		}
		return s, os.MkdirAll(s.root, 0o711)
	}
	plain, err := mk("plain")
	if err != nil {
		return err
	}
	defer os.RemoveAll(plain.runroot)
	plain.extra = []string{"--policy", filepath.Join(plain.root, "no-policy.json"), "--admission", filepath.Join(plain.root, "no-rules.yaml")}
	trusted, err := mk("trusted")
	if err != nil {
		return err
	}
	defer os.RemoveAll(trusted.runroot)
	policy := `{"default": [{"type": "reject"}], "transports": {"docker": {"` + host + `/bench": [{"type": "sigstoreSigned", "keyPath": "` + pub + `", "signedIdentity": {"type": "matchRepository"}}]}}}`
	if err := os.WriteFile(filepath.Join(trusted.root, "policy.json"), []byte(policy), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(trusted.root, "admission.yaml"), []byte(rules), 0o644); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	for _, s := range []side{plain, trusted} {
		if _, err := s.cmd(ctx, berth, "pull", "-q", ref); err != nil {
			return err
		}
	}
	runArgs := []string{"run", "--rm", "--network", "none", ref, "true"}
	// One run each to warm the page cache; the trusted side's first run
	// is the verification that later runs find cached.
	if _, err := plain.cmd(ctx, berth, runArgs...); err != nil {
		return err
	}
	first, err := trusted.cmd(ctx, berth, runArgs...)
	if err != nil {
		return err
	}
	var verify []time.Duration
	for i := 0; i < 5; i++ {
		d, err := trusted.cmd(ctx, berth, "image", "verify", ref)
		if err != nil {
			return err
		}
		verify = append(verify, d)
	}
	var a, b []time.Duration
	for i := 0; i < n; i++ {
		for _, s := range []side{plain, trusted} {
			d, err := s.cmd(ctx, berth, runArgs...)
			if err != nil {
				return err
			}
			if s.name == "plain" {
				a = append(a, d)
			} else {
				b = append(b, d)
			}
		}
	}
	pa, pb := p50(a), p50(b)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("berth run --rm --network none IMAGE true, p50 of %d interleaved runs (%s, %d CPUs, load %s)\n", n, time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("  no policy:                          %7.1f ms\n", ms(pa))
	fmt.Printf("  sigstoreSigned + 3 rules (cached):  %7.1f ms  (%+.1f ms)\n", ms(pb), ms(pb-pa))
	fmt.Printf("  first run, verified (uncached):     %7.1f ms  (%+.1f ms over the cached p50)\n", ms(first), ms(first-pb))
	fmt.Printf("  berth image verify (uncached), p50 of 5: %.1f ms\n", ms(p50(verify)))
	return nil
}

func p50(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// pushSigned builds the busybox image, pushes it as ref, and pushes a
// cosign-style signature and SBOM attestation of it made with key.
func pushSigned(ref string, key *ecdsa.PrivateKey) error {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))})
	tw.Write(bb)
	for _, a := range []string{"sh", "true"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777})
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tb.Bytes())
	zw.Close()
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config: ocispec.ImageConfig{User: "1000", Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromBytes(tb.Bytes())}}})
	r, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	c := berthregistry.New(berthregistry.Options{})
	repo, err := c.Repository(r)
	if err != nil {
		return err
	}
	ctx := context.Background()
	push := func(tag string, config []byte, layers ...layer) (digest.Digest, error) {
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}}
		if err := repo.PushBlob(ctx, m.Config, bytes.NewReader(config)); err != nil {
			return "", err
		}
		for _, l := range layers {
			d := ocispec.Descriptor{MediaType: l.mediaType, Digest: digest.FromBytes(l.blob), Size: int64(len(l.blob)), Annotations: l.annotations}
			if err := repo.PushBlob(ctx, d, bytes.NewReader(l.blob)); err != nil {
				return "", err
			}
			m.Layers = append(m.Layers, d)
		}
		b, _ := json.Marshal(m)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(b), Size: int64(len(b))}
		return desc.Digest, repo.PushManifest(ctx, desc, b, tag)
	}
	d, err := push(r.Tag, cfg, layer{ocispec.MediaTypeImageLayerGzip, gz.Bytes(), nil})
	if err != nil {
		return err
	}
	sign := func(b []byte) string {
		sum := sha256.Sum256(b)
		sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
		return base64.StdEncoding.EncodeToString(sig)
	}
	payload := []byte(`{"critical":{"identity":{"docker-reference":"` + r.Name() + `"},"image":{"docker-manifest-digest":"` + d.String() + `"},"type":"cosign container image signature"},"optional":null}`)
	empty := []byte("{}")
	tag := d.Algorithm().String() + "-" + d.Encoded()
	if _, err := push(tag+".sig", empty, layer{"application/vnd.dev.cosign.simplesigning.v1+json", payload,
		map[string]string{"dev.cosignproject.cosign/signature": sign(payload)}}); err != nil {
		return err
	}
	st, _ := json.Marshal(map[string]any{"_type": "https://in-toto.io/Statement/v0.1", "predicateType": "https://cyclonedx.org/bom",
		"subject": []map[string]any{{"name": r.Name(), "digest": map[string]string{"sha256": d.Encoded()}}}, "predicate": json.RawMessage(sbom)})
	const pt = "application/vnd.in-toto+json"
	pae := []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(pt), pt, len(st), st))
	env, _ := json.Marshal(map[string]any{"payloadType": pt, "payload": base64.StdEncoding.EncodeToString(st),
		"signatures": []map[string]string{{"keyid": "", "sig": sign(pae)}}})
	_, err = push(tag+".att", empty, layer{"application/vnd.dsse.envelope.v1+json", env,
		map[string]string{"dev.cosignproject.cosign/signature": "", "predicateType": "https://cyclonedx.org/bom"}})
	return err
}

type layer struct {
	mediaType   string
	blob        []byte
	annotations map[string]string
}
