package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/errdefs"
)

var psNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func psSample() []engine.Summary {
	return []engine.Summary{
		{
			ID: strings.Repeat("ab", 32), Names: []string{"/web"}, Image: "nginx:1.27", Command: "/docker-entrypoint.sh nginx -g 'daemon off;'",
			Created: psNow.Add(-3 * time.Minute), State: "running", Status: "Up 3 minutes",
			Ports: []engine.PortSummary{
				{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
				{IP: "::", PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
				{PrivatePort: 443, Type: "tcp"},
			},
			Labels: map[string]string{"tier": "front", "app": "shop"},
		},
		{
			ID: strings.Repeat("cd", 32), Names: []string{"/job"}, Image: "sha256:" + strings.Repeat("ef", 32), Command: "true",
			Created: psNow.Add(-2 * time.Hour), State: "exited", Status: "Exited (0) 5 seconds ago",
		},
		{ID: strings.Repeat("01", 32), Names: []string{"/new"}, Image: "alpine", Command: "sh", Created: psNow.Add(-30 * time.Second), State: "created"},
	}
}

func psRows(noTrunc bool) []psRow {
	var rows []psRow
	for _, s := range psSample() {
		rows = append(rows, newPSRow(s, psNow, noTrunc))
	}
	return rows
}

func renderString(t *testing.T, format string, rows []psRow) string {
	t.Helper()
	var b bytes.Buffer
	if err := render(&b, format, psTable, psHeader, rows); err != nil {
		t.Fatalf("render %q: %v", format, err)
	}
	return b.String()
}

func TestPSTable(t *testing.T) {
	got := renderString(t, "", psRows(false))
	want := `CONTAINER ID   IMAGE          COMMAND                  CREATED          STATUS                     PORTS                                              NAMES
abababababab   nginx:1.27     "/docker-entrypoint.…"   3 minutes ago    Up 3 minutes               0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp   web
cdcdcdcdcdcd   efefefefefef   "true"                   2 hours ago      Exited (0) 5 seconds ago                                                      job
010101010101   alpine         "sh"                     30 seconds ago   Created                                                                       new
`
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestPSFormats(t *testing.T) {
	rows := psRows(false)
	if got, want := renderString(t, "{{.Names}}", rows), "web\njob\nnew\n"; got != want {
		t.Errorf("{{.Names}}: got %q, want %q", got, want)
	}
	if got, want := renderString(t, `{{.ID}}\t{{.Label "tier"}}`, rows[:1]), "abababababab\tfront\n"; got != want {
		t.Errorf("label template: got %q, want %q", got, want)
	}
	if got, want := renderString(t, `table {{.Names}}\t{{.Label "tier"}}`, rows[:2]), "NAMES     TIER\nweb       front\njob       \n"; got != want {
		t.Errorf("table template: got %q, want %q", got, want)
	}
	if got, want := renderString(t, `{{.Labels}}`, rows[:1]), "app=shop,tier=front\n"; got != want {
		t.Errorf("labels: got %q, want %q", got, want)
	}
	js := renderString(t, "json", rows[:1])
	if !strings.HasPrefix(js, `{"ID":"abababababab","Image":"nginx:1.27",`) || strings.Count(js, "\n") != 1 || strings.Contains(js, "header") {
		t.Errorf("json: got %s", js)
	}
	full := psRows(true)[0]
	if full.ID != strings.Repeat("ab", 32) || full.Command != `"/docker-entrypoint.sh nginx -g 'daemon off;'"` {
		t.Errorf("--no-trunc: got %+v", full)
	}
	if err := checkFormat("{{.Nope"); err == nil {
		t.Error("a broken template was accepted")
	} else if code, _ := exitStatus(err); code != 125 {
		t.Errorf("a broken template exits %d, want 125", code)
	}
}

func TestInspectTemplate(t *testing.T) {
	c := engine.Container{ID: "abc", State: engine.State{Status: "running", Pid: 1234567},
		HostConfig:      engine.HostConfig{DNS: []string{"1.1.1.1"}},
		NetworkSettings: engine.NetworkSettings{Networks: map[string]*engine.EndpointSettings{"front": {IPAddress: "10.89.0.2"}}}}
	for format, want := range map[string]string{
		"{{.Id}} {{.State.Status}} {{.State.Pid}}":                   "abc running 1234567\n",
		"{{json .HostConfig.Dns}}":                                   `["1.1.1.1"]` + "\n",
		"{{.NetworkSettings.Networks.front.IPAddress}}":              "10.89.0.2\n",
		`{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}`: "front\n",
		`{{index .HostConfig.Dns 0}}`:                                "1.1.1.1\n",
		`{{upper .State.Status}}`:                                    "RUNNING\n",
	} {
		tmpl, err := inspectTemplate(format)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := execInspect(&b, tmpl, c); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if b.String() != want {
			t.Errorf("%s: got %q, want %q", format, b.String(), want)
		}
	}
}

func TestInspectFallback(t *testing.T) {
	get := func(_ context.Context, kind, name string) (any, error) {
		switch {
		case kind == "container":
			return nil, fmt.Errorf("inspect: %w", errdefs.ErrNotImplemented)
		case kind == "network" && name == "net":
			return "the network", nil
		case kind == "volume" && name == "bad name":
			return nil, fmt.Errorf("volume name %q: %w", name, errdefs.ErrInvalidArgument)
		case kind == "volume" && name == "broken":
			return nil, errors.New("disk on fire")
		}
		return nil, fmt.Errorf("%s %s: %w", kind, name, errdefs.ErrNotFound)
	}
	ctx := context.Background()
	if obj, err := inspectOne(ctx, inspectKinds, "net", get); err != nil || obj != "the network" {
		t.Errorf("net: got %v, %v", obj, err)
	}
	if _, err := inspectOne(ctx, inspectKinds, "nothing", get); !errdefs.IsNotFound(err) || err.Error() != "no such object: nothing: not found" {
		t.Errorf("nothing: got %v", err)
	}
	if _, err := inspectOne(ctx, inspectKinds, "bad name", get); !errdefs.IsNotFound(err) {
		t.Errorf("bad name: got %v, want not found", err)
	}
	if _, err := inspectOne(ctx, inspectKinds, "broken", get); err == nil || err.Error() != "disk on fire" {
		t.Errorf("broken: got %v", err)
	}
	if _, err := inspectOne(ctx, []string{"container"}, "x", get); !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("--type container: got %v", err)
	}
}

func TestPorts(t *testing.T) {
	ports := map[string][]engine.PortBinding{
		"80/tcp":  {{HostIP: "0.0.0.0", HostPort: "8080"}, {HostIP: "::", HostPort: "8080"}},
		"53/udp":  {{HostPort: "5353"}},
		"443/tcp": nil,
	}
	got, err := portLines(ports, "")
	if want := "53/udp -> 0.0.0.0:5353\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080"; err != nil || strings.Join(got, "\n") != want {
		t.Errorf("all: got %q, %v", got, err)
	}
	got, err = portLines(ports, "80/tcp")
	if want := "0.0.0.0:8080\n[::]:8080"; err != nil || strings.Join(got, "\n") != want {
		t.Errorf("80/tcp: got %q, %v", got, err)
	}
	if _, err := portLines(ports, "443/tcp"); !errdefs.IsNotFound(err) {
		t.Errorf("443/tcp: got %v, want not found", err)
	}
}

func TestCopyArgs(t *testing.T) {
	for _, tc := range []struct {
		a, b     string
		src, dst copyEnd
		err      string
	}{
		{a: "web:/etc/hosts", b: ".", src: copyEnd{"web", "/etc/hosts"}, dst: copyEnd{path: "."}},
		{a: "-", b: "web:/tmp", src: copyEnd{path: "-"}, dst: copyEnd{"web", "/tmp"}},
		{a: "/with:colon", b: "web:/x", src: copyEnd{path: "/with:colon"}, dst: copyEnd{"web", "/x"}},
		{a: "./a:b", b: "web:/x", src: copyEnd{path: "./a:b"}, dst: copyEnd{"web", "/x"}},
		{a: "a:/x", b: "b:/y", err: "copying between containers is not supported: one side must be a host path"},
		{a: "/x", b: "/y", err: "one side must be CONTAINER:PATH"},
		{a: "web:", b: "/y", err: "the container's path is empty"},
	} {
		src, dst, err := parseCopyArgs(tc.a, tc.b)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("cp %s %s: got %v, want %q", tc.a, tc.b, err, tc.err)
			}
			continue
		}
		if err != nil || src != tc.src || dst != tc.dst {
			t.Errorf("cp %s %s: got %+v %+v %v", tc.a, tc.b, src, dst, err)
		}
	}
}

func TestTimeFlag(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"10m":                  now.Add(-10 * time.Minute),
		"2026-04-30T10:00:00Z": time.Date(2026, 4, 30, 10, 0, 0, 0, time.UTC),
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 500_000_000),
	} {
		got, err := parseTimeFlag(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: got %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "-5m", "1700000000.1234567891", "12:00"} {
		if got, err := parseTimeFlag(in, now); err == nil {
			t.Errorf("%q: got %v, want an error", in, got)
		}
	}
}

func TestFormatEvent(t *testing.T) {
	ev := engine.Event{Type: "container", Action: "start", Actor: engine.EventActor{ID: "abc", Attributes: map[string]string{"name": "web", "image": "nginx"}},
		TimeNano: time.Date(2026, 5, 1, 12, 0, 0, 5, time.UTC).UnixNano()}
	got := formatEvent(ev)
	want := time.Unix(0, ev.TimeNano).Format("2006-01-02T15:04:05.000000000Z07:00") + " container start abc (image=nginx, name=web)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStatsRow(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	prev := engine.Stats{Read: t0, CPUNanos: 1e9}
	s := engine.Stats{ID: strings.Repeat("a", 64), Name: "/web", Read: t0.Add(time.Second), CPUNanos: 1.5e9,
		MemUsage: 50 << 20, MemLimit: 200 << 20, NetRx: 1500, NetTx: 648, BlockRead: 0, BlockWrite: 4096, Pids: 3}
	got := newStatsRow(s, &prev)
	want := statsRow{ID: "aaaaaaaaaaaa", Container: "aaaaaaaaaaaa", Name: "web", CPUPerc: "50.00%", MemUsage: "50MiB / 200MiB",
		MemPerc: "25.00%", NetIO: "1.5kB / 648B", BlockIO: "0B / 4.1kB", PIDs: "3"}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestExitCodes runs the real command tree against an empty root: the
// engine's stubs and missing objects must give Docker's codes.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"run", "--bogus", "img"}, 125},
		{[]string{"run", "-p", "x", "img"}, 125},
		{[]string{"stop", "--bogus", "c"}, 125},
		{[]string{"ps", "--format", "{{"}, 125},
		{[]string{"kill", "-s", "NOPE", "c"}, 125},
		{[]string{"network", "create", "--subnet", "10.0.0.1/24", "n1"}, 125},
		{[]string{"network", "create", "--gateway", "10.1.0.1", "--subnet", "10.0.0.0/24", "n1"}, 125},
		{[]string{"volume", "create", "x"}, 125},
		{[]string{"inspect", "--type", "pod", "x"}, 125},
	} {
		root := app()
		root.Writer, root.ErrWriter = io.Discard, io.Discard
		args := append([]string{"berth", "--root", dir + "/root", "--runroot", dir + "/run"}, tc.args...)
		err := root.Run(context.Background(), args)
		if code, msg := exitStatus(err); code != tc.code {
			t.Errorf("berth %q: exit %d (%s), want %d", tc.args, code, msg, tc.code)
		}
	}
	// The container's own code passes through, and 126/127 say why.
	if code, msg := exitStatus(&engine.ExitError{Code: 3}); code != 3 || msg != "" {
		t.Errorf("exit 3: got %d %q", code, msg)
	}
	if code, msg := exitStatus(runFailure(&engine.ExitError{Code: 127, Err: errors.New(`exec: "nope": not found`)})); code != 127 || msg == "" {
		t.Errorf("127: got %d %q", code, msg)
	}
	if code, _ := exitStatus(runFailure(fmt.Errorf("create: %w", errdefs.ErrNotFound))); code != 125 {
		t.Errorf("run failure: got %d, want 125", code)
	}
	if code, _ := exitStatus(fmt.Errorf("stop: %w", errdefs.ErrNotFound)); code != 1 {
		t.Errorf("stop failure: got %d, want 1", code)
	}
}

func TestEngineOptions(t *testing.T) {
	root := &cli.Command{Name: "berth", Flags: app().Flags}
	var opts engine.Options
	root.Action = func(_ context.Context, cmd *cli.Command) error {
		var err error
		opts, err = engineOptions(cmd, "/var/lib/berth", nil)
		return err
	}
	if err := root.Run(context.Background(), []string{"berth", "--runtime", "/opt/rt/my-runtime", "--cni-plugin-dir", "/a, /b,", "--namespace", "k8s.io"}); err != nil {
		t.Fatal(err)
	}
	if opts.DefaultRuntime != "my-runtime" || opts.Runtimes["my-runtime"] != "/opt/rt/my-runtime" {
		t.Errorf("runtime path: got %q %v", opts.DefaultRuntime, opts.Runtimes)
	}
	if strings.Join(opts.CNIPluginDirs, "|") != "/a|/b" || opts.Namespace != "k8s.io" || opts.RunRoot != "/run/berth" || len(opts.Self) != 1 {
		t.Errorf("got %+v", opts)
	}
	for name, p := range opts.Runtimes {
		if !strings.HasSuffix(p, "/"+name) {
			t.Errorf("runtime %s at %s", name, p)
		}
	}
	if opts.CgroupDriver != "cgroupfs" {
		t.Errorf("default cgroup manager %q, want cgroupfs", opts.CgroupDriver)
	}
	// Podman's --cgroup-manager: an unknown one is refused; systemd only
	// where systemd is PID 1.
	if err := root.Run(context.Background(), []string{"berth", "--cgroup-manager", "sytemd"}); err == nil || !strings.Contains(err.Error(), "--cgroup-manager") {
		t.Errorf("--cgroup-manager sytemd: %v, want an error naming the flag", err)
	}
	err := root.Run(context.Background(), []string{"berth", "--cgroup-manager", "systemd"})
	if _, statErr := os.Stat("/run/systemd/system"); statErr == nil {
		if err != nil || opts.CgroupDriver != "systemd" {
			t.Errorf("--cgroup-manager systemd where systemd runs: %v, driver %q", err, opts.CgroupDriver)
		}
	} else if err == nil || !strings.Contains(err.Error(), "PID 1 is not systemd") {
		t.Errorf("--cgroup-manager systemd without systemd: %v, want an error naming PID 1", err)
	}
}

func TestDetachKeys(t *testing.T) {
	for in, want := range map[string]string{"": "\x10\x11", "ctrl-p,ctrl-q": "\x10\x11", "ctrl-a,x": "\x01x", "ctrl-@,ctrl-_,CTRL-Z": "\x00\x1f\x1a"} {
		got, err := parseDetachKeys(in)
		if err != nil || string(got) != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"ctrl-1", "ctrl-pq", "ab", ",", "ctrl-"} {
		if _, err := parseDetachKeys(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

// chunkReader hands out one chunk a Read, as a terminal does keystrokes.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func TestDetachReader(t *testing.T) {
	for _, tc := range []struct {
		chunks   []string
		out      string
		detached bool
	}{
		{[]string{"ls\n", "exit\n"}, "ls\nexit\n", false},
		{[]string{"ab\x10", "\x11cd"}, "ab", true},
		{[]string{"a\x10b\x10\x10", "\x11"}, "a\x10b\x10", true},
		{[]string{"x\x10"}, "x\x10", false},
		{[]string{"\x10\x11"}, "", true},
	} {
		detached := false
		r := &detachReader{r: &chunkReader{chunks: tc.chunks}, keys: []byte{0x10, 0x11}, detach: func() { detached = true }}
		var out bytes.Buffer
		buf := make([]byte, 2)
		var err error
		for {
			var n int
			n, err = r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if out.String() != tc.out || detached != tc.detached {
			t.Errorf("%q: got %q detached %v, want %q %v", tc.chunks, out.String(), detached, tc.out, tc.detached)
		}
		if tc.detached != errors.Is(err, errDetached) {
			t.Errorf("%q: ended with %v", tc.chunks, err)
		}
	}
}
