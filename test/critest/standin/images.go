package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every file's and image's time: the images are reproducible.
var epoch = time.Unix(0, 0).UTC()

const (
	k8sE2E  = "registry.k8s.io/e2e-test-images/"
	criTest = "gcr.io/k8s-staging-cri-tools/"
	envPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// layerKind names the layers an image is made of, above busybox.
type layerKind int

const (
	withStandin layerKind = 1 << iota // /standin with /pause linked to it (images without busybox)
	withNNP                           // /usr/local/bin/nnp, setuid root
	withHTML                          // index pages for the web servers
)

// standin is one image and the references it is pushed under.
type standin struct {
	refs    []string
	busybox bool // the busybox layer (with /etc/passwd, /etc/group and the standin's parts)
	layers  layerKind
	marker  string // a file /<marker> that makes images differ, as cri-tools' image-test
	group   bool   // /etc/passwd and /etc/group of image-predefined-group
	config  v1.Config
	index   bool // pushed as an image index (one linux/GOARCH entry), as cri-tools' images are
}

func standins() []standin {
	sh := v1.Config{Cmd: []string{"sh"}, Env: []string{envPath}}
	user := func(u string) v1.Config { c := sh; c.User = u; return c }
	nginx := func(port string) v1.Config {
		return v1.Config{
			Cmd:          []string{"nginx", "-g", "daemon off;"},
			Env:          []string{envPath, "STANDIN_NGINX_PORT=" + port},
			ExposedPorts: map[string]struct{}{port + "/tcp": {}},
			StopSignal:   "SIGQUIT",
		}
	}
	out := []standin{
		{refs: []string{k8sE2E + "busybox:1.29-2", k8sE2E + "busybox:1.36.1-1"}, busybox: true, config: sh},
		{refs: []string{"registry.k8s.io/pause:3.6", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.10", "k8s.gcr.io/pause:3.9"},
			layers: withStandin, config: v1.Config{Entrypoint: []string{"/pause"}, User: "65535:65535"}, index: true},
		{refs: []string{k8sE2E + "nginx:1.14-2"}, busybox: true, layers: withHTML, config: nginx("80")},
		{refs: []string{criTest + "hostnet-nginx-" + runtime.GOARCH}, busybox: true, layers: withHTML, config: nginx("12003")},
		{refs: []string{k8sE2E + "httpd:2.4.39-4"}, busybox: true, layers: withHTML, config: v1.Config{
			// Apache greets on stderr and critest looks for "httpd" in the
			// log; busybox's httpd is silent until a request.
			Cmd:          []string{"/bin/sh", "-c", "echo 'httpd (stand-in): listening on port 80' >&2; exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs"},
			Env:          []string{envPath},
			ExposedPorts: map[string]struct{}{"80/tcp": {}}, StopSignal: "SIGWINCH"}},
		{refs: []string{k8sE2E + "nonewprivs:1.3"}, busybox: true, layers: withNNP, config: v1.Config{
			Entrypoint: []string{"/usr/local/bin/nnp"}, Env: []string{envPath}}},
		{refs: []string{criTest + "test-image-user-uid"}, busybox: true, config: user("1002"), index: true},
		{refs: []string{criTest + "test-image-user-username"}, busybox: true, config: user("www-data"), index: true},
		{refs: []string{criTest + "test-image-user-uid-group"}, busybox: true, config: user("1003:1004"), index: true},
		{refs: []string{criTest + "test-image-user-username-group"}, busybox: true, config: user("www-data:1004"), index: true},
		{refs: []string{criTest + "test-image-predefined-group"}, busybox: true, group: true, config: user("1000"), index: true},
		{refs: []string{criTest + "test-image-tags:1", criTest + "test-image-tags:2", criTest + "test-image-tags:3"},
			busybox: true, marker: "same-image", config: sh, index: true},
	}
	for _, n := range []string{"test-image-1", "test-image-2", "test-image-3", "test-image-latest", "test-image-digest"} {
		out = append(out, standin{refs: []string{criTest + n + ":latest"}, busybox: true, marker: n, config: sh, index: true})
	}
	for _, tag := range []string{"test", "all"} {
		out = append(out, standin{refs: []string{criTest + "test-image-tag:" + tag}, busybox: true, marker: tag, config: sh, index: true})
	}
	return out
}

// mirrorPath is ref's repository and tag on the loopback registry: the
// registry host is dropped, as a mirror serves the same repository paths.
func mirrorPath(ref string) string {
	_, rest, _ := strings.Cut(ref, "/")
	return rest
}

// files builds the tar layers once; images share them (same digests).
type files struct {
	busybox, standin, nnp, html, group v1.Layer
}

func push(ctx context.Context, registry, busyboxPath, shPath, self string) error {
	var f files
	bin, err := os.ReadFile(self)
	if err != nil {
		return fmt.Errorf("read %s: %w", self, err)
	}
	if f.busybox, err = busyboxLayer(busyboxPath, shPath, bin, false); err != nil {
		return err
	}
	if f.group, err = busyboxLayer(busyboxPath, shPath, bin, true); err != nil {
		return err
	}
	if f.standin, err = layer([]entry{
		{name: "standin", mode: 0o755, data: bin},
		{name: "pause", link: "/standin"},
	}); err != nil {
		return err
	}
	if f.nnp, err = layer([]entry{
		{name: "usr/", mode: 0o755}, {name: "usr/local/", mode: 0o755}, {name: "usr/local/bin/", mode: 0o755},
		{name: "usr/local/bin/nnp", mode: 0o755 | 0o4000, data: bin},
	}); err != nil {
		return err
	}
	page := []byte("<html><body><h1>Welcome to nginx!</h1><p>It works!</p></body></html>\n")
	if f.html, err = layer([]entry{
		{name: "usr/", mode: 0o755}, {name: "usr/share/", mode: 0o755}, {name: "usr/share/nginx/", mode: 0o755},
		{name: "usr/share/nginx/html/", mode: 0o755}, {name: "usr/share/nginx/html/index.html", mode: 0o644, data: page},
		{name: "usr/local/", mode: 0o755}, {name: "usr/local/apache2/", mode: 0o755},
		{name: "usr/local/apache2/htdocs/", mode: 0o755}, {name: "usr/local/apache2/htdocs/index.html", mode: 0o644, data: page},
	}); err != nil {
		return err
	}
	for _, s := range standins() {
		if err := pushOne(ctx, registry, f, s); err != nil {
			return err
		}
	}
	return nil
}

func pushOne(ctx context.Context, registry string, f files, s standin) error {
	var layers []v1.Layer
	switch {
	case s.group:
		layers = append(layers, f.group)
	case s.busybox:
		layers = append(layers, f.busybox)
	}
	for _, l := range []struct {
		k layerKind
		l v1.Layer
	}{{withStandin, f.standin}, {withNNP, f.nnp}, {withHTML, f.html}} {
		if s.layers&l.k != 0 {
			layers = append(layers, l.l)
		}
	}
	if s.marker != "" {
		m, err := layer([]entry{{name: s.marker, mode: 0o644}})
		if err != nil {
			return err
		}
		layers = append(layers, m)
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created, cf.Config = "linux", runtime.GOARCH, v1.Time{Time: epoch}, s.config
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	for _, r := range s.refs {
		ref, err := name.ParseReference(registry+"/"+mirrorPath(r), name.Insecure)
		if err != nil {
			return fmt.Errorf("stand-in for %s: %w", r, err)
		}
		opts := []remote.Option{remote.WithContext(ctx)}
		if s.index {
			idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), mutate.IndexAddendum{
				Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}},
			})
			err = remote.WriteIndex(ref, idx, opts...)
		} else {
			err = remote.Write(ref, img, opts...)
		}
		if err != nil {
			return fmt.Errorf("push the stand-in for %s to %s: %w", r, ref, err)
		}
		fmt.Printf("%s -> %s\n", r, ref)
	}
	return nil
}

// entry is one file of a layer: a directory (name ends in /), a symlink
// (link set), a hard link (hardlink set) or a regular file.
type entry struct {
	name     string
	mode     int64
	link     string // a symlink's target
	hardlink string // a hard link's target (a name in the layer)
	data     []byte
}

func layer(entries []entry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.link, 0o777
		case e.hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hardlink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// standinApplets are the applets busybox images get from standin.
var standinApplets = []string{"ipcs", "pgrep"}

const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
daemon:x:1:
www-data:x:33:
users:x:100:
nogroup:x:65534:
`

// busyboxLayer is busybox with every applet linked at its usual path, the
// directories a Linux image has and the users of busybox's image, plus
// this binary (standin) as /usr/sbin/nginx and as the applets critest
// runs that Debian's busybox lacks (ipcs, pgrep). With predefined, it
// adds image-predefined-group's default-user (1000) and
// group-defined-in-image (50000). With sh, that binary is /bin/sh (see
// shEntries).
func busyboxLayer(busybox, sh string, standin []byte, predefined bool) (v1.Layer, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("read busybox (Debian's busybox-static): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	pw, gr := passwd, group
	if predefined {
		pw += "default-user:x:1000:1000::/home/default-user:/bin/sh\n"
		gr += "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n"
	}
	es := []entry{{name: "bin/", mode: 0o755}, {name: "bin/busybox", mode: 0o755, data: bin}}
	for _, d := range []string{"usr", "usr/sbin", "etc", "root", "home", "var", "var/run", "var/www", "proc", "sys", "dev"} {
		es = append(es, entry{name: d + "/", mode: 0o755})
	}
	es = append(es, entry{name: "tmp/", mode: 0o1777},
		entry{name: "etc/passwd", mode: 0o644, data: []byte(pw)},
		entry{name: "etc/group", mode: 0o644, data: []byte(gr)})
	// As in busybox's image: every applet in /bin, a hard link (its mode
	// is the file's: containerd applies a hard link header's mode; critest
	// masks /bin/ls and expects sh to run still, which a symlink to
	// /bin/busybox would not survive).
	applets := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		a := path.Base(p)
		if a == "busybox" || applets[a] {
			continue
		}
		applets[a] = true
		if a == "sh" && sh != "" {
			continue
		}
		es = append(es, entry{name: "bin/" + a, mode: 0o755, hardlink: "bin/busybox"})
	}
	if sh != "" {
		shEs, err := shEntries(ctx, sh)
		if err != nil {
			return nil, err
		}
		es = append(es, shEs...)
	}
	es = append(es, entry{name: "standin", mode: 0o755, data: standin},
		entry{name: "usr/sbin/nginx", link: "/standin"})
	for _, a := range standinApplets {
		if !applets[a] { // busybox's own first
			es = append(es, entry{name: "bin/" + a, mode: 0o755, hardlink: "standin"})
		}
	}
	return layer(es)
}

// shEntries are /bin/sh from a busybox built without
// FEATURE_SH_STANDALONE, and the libraries it loads. Busybox's image is
// such a build: its sh runs `ls` as the file /bin/ls, so masking /bin/ls
// stops it (critest's MaskedPaths spec), where Debian's static busybox
// would run its own ls applet and never look at the file.
func shEntries(ctx context.Context, sh string) ([]entry, error) {
	bin, err := os.ReadFile(sh)
	if err != nil {
		return nil, fmt.Errorf("read the sh busybox: %w", err)
	}
	out, err := exec.CommandContext(ctx, "ldd", sh).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", sh, err)
	}
	es := []entry{{name: "bin/sh", mode: 0o755, data: bin}}
	dirs := map[string]bool{"bin": true}
	for _, l := range strings.Split(string(out), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
		// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
		f := strings.Fields(l)
		lib := ""
		switch {
		case len(f) >= 3 && f[1] == "=>" && strings.HasPrefix(f[2], "/"):
			lib = f[2]
		case len(f) >= 1 && strings.HasPrefix(f[0], "/"):
			lib = f[0]
		default:
			continue
		}
		data, err := os.ReadFile(lib)
		if err != nil {
			return nil, fmt.Errorf("read %s, which %s loads: %w", lib, sh, err)
		}
		rel := strings.TrimPrefix(path.Clean(lib), "/")
		var parents []string
		for d := path.Dir(rel); d != "."; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				es = append(es, entry{name: d + "/", mode: 0o755})
			}
		}
		es = append(es, entry{name: rel, mode: 0o755, data: data})
	}
	return es, nil
}
