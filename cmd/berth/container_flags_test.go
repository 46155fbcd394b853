package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
)

// parseRun parses `berth run ARGS...` through the real command tree (so
// flag wiring such as unsplit commas is tested too), with getenv standing
// for the environment.
func parseRun(t *testing.T, env map[string]string, args ...string) (*createRequest, error) {
	t.Helper()
	root := app()
	run := root.Command("run")
	var req *createRequest
	var perr error
	run.Action = func(_ context.Context, cmd *cli.Command) error {
		req, perr = parseCreate(cmd, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		return perr
	}
	err := root.Run(context.Background(), append([]string{"berth", "run"}, args...))
	if err != nil && perr == nil {
		t.Fatalf("berth run %q: %v", args, err)
	}
	return req, perr
}

func mustParse(t *testing.T, args ...string) engine.CreateOptions {
	t.Helper()
	req, err := parseRun(t, nil, args...)
	if err != nil {
		t.Fatalf("berth run %q: %v", args, err)
	}
	return req.opts
}

func wantError(t *testing.T, want string, args ...string) {
	t.Helper()
	_, err := parseRun(t, nil, args...)
	if err == nil {
		t.Fatalf("berth run %q: no error, want %q", args, want)
	}
	if err.Error() != want {
		t.Fatalf("berth run %q:\n got %q\nwant %q", args, err.Error(), want)
	}
}

func TestPublish(t *testing.T) {
	pb := func(ip, port string) engine.PortBinding { return engine.PortBinding{HostIP: ip, HostPort: port} }
	for _, tc := range []struct {
		in   string
		want map[string][]engine.PortBinding
	}{
		{"80", map[string][]engine.PortBinding{"80/tcp": {pb("", "")}}},
		{"8080:80", map[string][]engine.PortBinding{"80/tcp": {pb("", "8080")}}},
		{":80", map[string][]engine.PortBinding{"80/tcp": {pb("", "")}}},
		{"0:80", map[string][]engine.PortBinding{"80/tcp": {pb("", "")}}},
		{"127.0.0.1:8080:80/udp", map[string][]engine.PortBinding{"80/udp": {pb("127.0.0.1", "8080")}}},
		{"127.0.0.1::80", map[string][]engine.PortBinding{"80/tcp": {pb("127.0.0.1", "")}}},
		{"[::1]:8080:80/SCTP", map[string][]engine.PortBinding{"80/sctp": {pb("::1", "8080")}}},
		{"8000-8001:80-81", map[string][]engine.PortBinding{"80/tcp": {pb("", "8000")}, "81/tcp": {pb("", "8001")}}},
		{"80-81", map[string][]engine.PortBinding{"80/tcp": {pb("", "")}, "81/tcp": {pb("", "")}}},
	} {
		o := mustParse(t, "-p", tc.in, "img")
		if !reflect.DeepEqual(o.HostConfig.PortBindings, tc.want) {
			t.Errorf("-p %s: got %+v, want %+v", tc.in, o.HostConfig.PortBindings, tc.want)
		}
		for p := range tc.want {
			if _, ok := o.Config.ExposedPorts[p]; !ok {
				t.Errorf("-p %s: %s not exposed", tc.in, p)
			}
		}
	}
	// Two -p for one container port keep both bindings.
	o := mustParse(t, "-p", "8080:80", "--publish", "127.0.0.1:9090:80", "img")
	if got := o.HostConfig.PortBindings["80/tcp"]; len(got) != 2 {
		t.Errorf("two bindings of 80/tcp: got %+v", got)
	}

	for _, tc := range []struct{ in, why string }{
		{"8080:abc", `invalid container port "abc": not a port number`},
		{"70000:80", `invalid host port "70000": a port is between 1 and 65535`},
		{"0", `invalid container port "0": a port is between 1 and 65535`},
		{"80/foo", `unknown protocol "foo" (want tcp, udp or sctp)`},
		{"::1:8080:80", `too many colons (put an IPv6 address in brackets: [::1]:8080:80)`},
		{"1.2.3:80:80", `invalid host IP "1.2.3"`},
		{"[::1:80:80", `unclosed '[' around the IPv6 address`},
		{"8000-8002:80-81", `the host and container port ranges differ in length`},
		{"81-80", `invalid container port "81-80": the range ends before it starts`},
		{"", `invalid container port "": not a port number`},
		{"+80", `invalid container port "+80": not a port number`},
	} {
		wantError(t, `invalid argument "`+tc.in+`" for "-p, --publish" flag: `+tc.why, "-p", tc.in, "img")
	}
}

func TestVolume(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, want string }{
		{"data:/data", "data:/data"},
		{"/host/dir:/ctr:ro", "/host/dir:/ctr:ro"},
		{"/host//dir/:/ctr/../x:rw,z", "/host/dir:/x:rw,z"},
		{"/anon", "/anon"},
		{"/anon:ro", "/anon:ro"},
		{"./rel:/x", filepath.Join(wd, "rel") + ":/x"},
		{"my_vol.1:/x:nocopy", "my_vol.1:/x:nocopy"},
	} {
		o := mustParse(t, "-v", tc.in, "img")
		if want := []string{tc.want}; !reflect.DeepEqual(o.HostConfig.Binds, want) {
			t.Errorf("-v %s: got %q, want %q", tc.in, o.HostConfig.Binds, want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"a:/x", `"a" is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)`},
		{"data:rel", `the mount target "rel" is not an absolute path`},
		{"/h:/c:bogus", `unknown volume option "bogus" (want ro or rw)`},
		{"/h:/c:ro,rw", `give ro or rw, not both`},
		{"a:b:c:d", `too many colons: want SOURCE:TARGET[:OPTIONS]`},
		{"/h:/", `cannot mount on /`},
		{":/x", `the source is empty`},
		{"../../etc:/x:ro:rw", `too many colons: want SOURCE:TARGET[:OPTIONS]`},
		{"vol/../..:/x", `"vol/../.." is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)`},
	} {
		wantError(t, `invalid argument "`+tc.in+`" for "-v, --volume" flag: `+tc.why, "-v", tc.in, "img")
	}
	wantError(t, `invalid argument "/y:/x" for "-v, --volume" flag: duplicate mount point /x`, "-v", "a1:/x", "-v", "/y:/x", "img")
	wantError(t, `invalid argument "/x" for "--tmpfs" flag: duplicate mount point /x`, "--mount", "type=volume,target=/x/", "--tmpfs", "/x", "img")
}

func TestMount(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want engine.Mount
	}{
		{"type=bind,src=/h,dst=/c,readonly", engine.Mount{Type: "bind", Source: "/h", Target: "/c", ReadOnly: true}},
		{"type=bind,source=/h,target=/c,ro=false", engine.Mount{Type: "bind", Source: "/h", Target: "/c"}},
		{"source=vol,target=/d", engine.Mount{Type: "volume", Source: "vol", Target: "/d"}},
		{"type=volume,destination=/d", engine.Mount{Type: "volume", Target: "/d"}},
		{"type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777", engine.Mount{Type: "tmpfs", Target: "/t", TmpfsSize: 64 << 20, TmpfsMode: 0o1777}},
		{`type=bind,"source=/a,b",target=/x`, engine.Mount{Type: "bind", Source: "/a,b", Target: "/x"}},
	} {
		o := mustParse(t, "--mount", tc.in, "img")
		if want := []engine.Mount{tc.want}; !reflect.DeepEqual(o.HostConfig.Mounts, want) {
			t.Errorf("--mount %s: got %+v, want %+v", tc.in, o.HostConfig.Mounts, want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"type=bind,src=/h", `the target is missing (target=/path)`},
		{"type=bind,src=rel,dst=/c", `the bind source "rel" is not an absolute path`},
		{"type=bind,dst=/c", `a bind mount needs a source`},
		{"type=tmpfs,src=/x,dst=/c", `a tmpfs has no source`},
		{"type=nfs,dst=/c", `unknown mount type "nfs" (want bind, volume, tmpfs or image)`},
		{"type=bind,src=/h,dst=/c,propagation=x", `unknown option "propagation" (want type, source, target, readonly, image-subpath, tmpfs-size, tmpfs-mode)`},
		{"type=bind,src=/h,dst=/c,tmpfs-size=1m", `tmpfs-size and tmpfs-mode are for type=tmpfs, not bind`},
		{"type=tmpfs,dst=/c,tmpfs-size=lots", `tmpfs-size "lots" is not a size such as 64m`},
		{"type=tmpfs,dst=/c,tmpfs-mode=999", `tmpfs-mode "999" is not an octal mode such as 1777`},
		{"dst=/c,readonly=maybe", `readonly="maybe" is not true or false`},
		{"dst=/c,target=/d", `"target" is given twice`},
		{"src=../x,dst=/c", `"../x" is not a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)`},
		{"dst=rel", `the target "rel" is not an absolute path`},
		{"dst", `"target" needs a value (target=...)`},
	} {
		wantError(t, `invalid argument "`+tc.in+`" for "--mount" flag: `+tc.why, "--mount", tc.in, "img")
	}
}

func TestTmpfs(t *testing.T) {
	o := mustParse(t, "--tmpfs", "/run:size=64m,mode=1777,noexec", "--tmpfs", "/tmp", "img")
	want := map[string]string{"/run": "size=64m,mode=1777,noexec", "/tmp": ""}
	if !reflect.DeepEqual(o.HostConfig.Tmpfs, want) {
		t.Errorf("got %v, want %v", o.HostConfig.Tmpfs, want)
	}
	wantError(t, `invalid argument "/x:size=big" for "--tmpfs" flag: size="big" is not a size such as 64m`, "--tmpfs", "/x:size=big", "img")
	wantError(t, `invalid argument "/x:suid=1" for "--tmpfs" flag: the option "suid" takes no value`, "--tmpfs", "/x:suid=1", "img")
	wantError(t, `invalid argument "x" for "--tmpfs" flag: the path "x" is not absolute`, "--tmpfs", "x", "img")
}

func TestResources(t *testing.T) {
	o := mustParse(t, "-m", "64m", "--memory-swap", "1g", "--memory-reservation", "512k", "--cpus", "1.5",
		"--cpu-shares", "512", "--cpuset-cpus", "0-1,3", "--pids-limit", "100", "img")
	r := o.HostConfig.Resources
	pids := int64(100)
	want := engine.Resources{Memory: 64 << 20, MemorySwap: 1 << 30, MemoryReservation: 512 << 10, NanoCPUs: 1_500_000_000,
		CPUShares: 512, CPUSetCPUs: "0-1,3", PidsLimit: &pids}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("got %+v, want %+v", r, want)
	}
	for in, want := range map[string]int64{"1.5g": 3 << 29, "100": 100, "2GB": 2 << 30, "0.001": 1_000_000} {
		if in == "0.001" {
			if got := mustParse(t, "--cpus", in, "img").HostConfig.NanoCPUs; got != want {
				t.Errorf("--cpus %s: got %d, want %d", in, got, want)
			}
			continue
		}
		if got := mustParse(t, "--memory", in, "img").HostConfig.Memory; got != want {
			t.Errorf("--memory %s: got %d, want %d", in, got, want)
		}
	}
	if got := mustParse(t, "-m", "1g", "--memory-swap", "-1", "img").HostConfig.MemorySwap; got != -1 {
		t.Errorf("--memory-swap -1: got %d", got)
	}
	wantError(t, `invalid argument "64x" for "-m, --memory" flag: not a size: give bytes or a number with b, k, m or g (64m)`, "-m", "64x", "img")
	wantError(t, `invalid argument "-1" for "-m, --memory" flag: not a size: give bytes or a number with b, k, m or g (64m)`, "-m", "-1", "img")
	wantError(t, `invalid argument "32m" for "--memory-swap" flag: the memory+swap limit must not be below --memory`, "-m", "64m", "--memory-swap", "32m", "img")
	wantError(t, `invalid argument "1g" for "--memory-swap" flag: a memory+swap limit needs --memory too`, "--memory-swap", "1g", "img")
	wantError(t, `invalid argument "abc" for "--cpus" flag: not a decimal number of CPUs`, "--cpus", "abc", "img")
	wantError(t, `invalid argument "1e3" for "--cpus" flag: not a decimal number of CPUs`, "--cpus", "1e3", "img")
	wantError(t, `invalid argument "-1" for "--cpus" flag: not a decimal number of CPUs`, "--cpus", "-1", "img")
	// Found by fuzzing: big.Rat would compute this number before refusing it.
	wantError(t, `invalid argument "1e999999999" for "--cpus" flag: not a decimal number of CPUs`, "--cpus", "1e999999999", "img")
	wantError(t, `invalid argument "0.0000000001" for "--cpus" flag: too precise: at most 9 decimal places`, "--cpus", "0.0000000001", "img")
	wantError(t, `invalid argument "3-1" for "--cpuset-cpus" flag: the range "3-1" is backwards or too big`, "--cpuset-cpus", "3-1", "img")
	wantError(t, `invalid argument "x" for "--pids-limit" flag: not a number of processes (-1: unlimited)`, "--pids-limit", "x", "img")
}

func TestRestart(t *testing.T) {
	for in, want := range map[string]engine.RestartPolicy{
		"no": {Name: "no"}, "always": {Name: "always"}, "unless-stopped": {Name: "unless-stopped"},
		"on-failure": {Name: "on-failure"}, "on-failure:3": {Name: "on-failure", MaximumRetryCount: 3},
	} {
		if got := mustParse(t, "--restart", in, "img").HostConfig.RestartPolicy; got != want {
			t.Errorf("--restart %s: got %+v, want %+v", in, got, want)
		}
	}
	wantError(t, `invalid argument "always:3" for "--restart" flag: a maximum retry count is only for on-failure, not "always"`, "--restart", "always:3", "img")
	wantError(t, `invalid argument "on-failure:x" for "--restart" flag: the maximum retry count "x" is not a whole number`, "--restart", "on-failure:x", "img")
	wantError(t, `invalid argument "sometimes" for "--restart" flag: unknown restart policy "sometimes" (want no, on-failure[:N], always or unless-stopped)`, "--restart", "sometimes", "img")
	wantError(t, `conflicting options: --restart and --rm`, "--rm", "--restart", "always", "img")
}

func TestEnv(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "env")
	content := "\xef\xbb\xbf# comment\n\nA=1\n  B=two words\nFROM_HOST\nUNSET\nC=x=y\n"
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	req, err := parseRun(t, map[string]string{"FROM_HOST": "h", "E": "e"}, "--env-file", f, "-e", "A=override,with comma", "-e", "E", "-e", "NOPE", "img", "ls", "-l")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "FROM_HOST=h", "C=x=y", "A=override,with comma", "E=e"}
	if !reflect.DeepEqual(req.opts.Config.Env, want) {
		t.Errorf("env: got %q, want %q", req.opts.Config.Env, want)
	}
	// Flags after the image belong to the command.
	if want := []string{"ls", "-l"}; !reflect.DeepEqual(req.opts.Config.Cmd, want) || req.opts.Config.Labels != nil {
		t.Errorf("cmd: got %q (labels %v), want %q", req.opts.Config.Cmd, req.opts.Config.Labels, want)
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("OK=1\nBAD NAME=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantError(t, `invalid argument "`+bad+`" for "--env-file" flag: line 2: the name "BAD NAME" contains whitespace`, "--env-file", bad, "img")
	missing := filepath.Join(dir, "missing")
	wantError(t, `invalid argument "`+missing+`" for "--env-file" flag: open `+missing+`: no such file or directory`, "--env-file", missing, "img")
	wantError(t, `invalid argument "=x" for "-e, --env" flag: the variable's name is empty`, "-e", "=x", "img")

	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte("A="+strings.Repeat("x", maxFlagFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	wantError(t, `invalid argument "`+big+`" for "--env-file" flag: larger than 4194304 bytes`, "--env-file", big, "img")

	labels := filepath.Join(dir, "labels")
	if err := os.WriteFile(labels, []byte("a=1\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := mustParse(t, "--label-file", labels, "-l", "a=2", "--label", "c", "img")
	if want := map[string]string{"a": "2", "b": "", "c": ""}; !reflect.DeepEqual(o.Config.Labels, want) {
		t.Errorf("labels: got %v, want %v", o.Config.Labels, want)
	}
}

func TestConfigFlags(t *testing.T) {
	seccomp := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(seccomp, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := mustParse(t, "--name", "web", "-d", "-i", "-t", "--entrypoint", "", "-w", "/srv", "-u", "1000:1000", "-h", "box",
		"--network", "front", "--network", "back", "--network-alias", "www", "--dns", "1.1.1.1", "--dns-search", "example.com",
		"--dns-option", "ndots:2", "--add-host", "db:10.0.0.2", "--add-host", "gw=host-gateway",
		"--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN", "--cap-drop", "all",
		"--security-opt", "no-new-privileges", "--security-opt", "seccomp="+seccomp, "--init", "--read-only",
		"--stop-signal", "term", "--stop-timeout", "30", "--health-cmd", "curl -f localhost", "--health-interval", "5s",
		"--health-retries", "3", "--sysctl", "net.ipv4.ip_forward=1", "--ipc", "host", "--pid", "container:db", "--uts", "host",
		"--expose", "9000-9001/udp", "-P", "--pull", "never", "--platform", "linux/arm64", "--runtime", "crun", "img")
	c, h := o.Config, o.HostConfig
	yes := true
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", o.Name, "web"},
		{"entrypoint", c.Entrypoint, []string{}},
		{"cmd", c.Cmd, []string(nil)},
		{"stdio", [5]bool{c.Tty, c.OpenStdin, c.AttachStdin, c.AttachStdout, c.StdinOnce}, [5]bool{true, true, false, false, false}},
		{"workdir", c.WorkingDir, "/srv"},
		{"user", c.User, "1000:1000"},
		{"hostname", c.Hostname, "box"},
		{"network mode", h.NetworkMode, "front"},
		{"networks", o.Networks, map[string]engine.EndpointConfig{"front": {Aliases: []string{"www"}}, "back": {}}},
		{"dns", [3][]string{h.DNS, h.DNSSearch, h.DNSOptions}, [3][]string{{"1.1.1.1"}, {"example.com"}, {"ndots:2"}}},
		{"extra hosts", h.ExtraHosts, []string{"db:10.0.0.2", "gw:host-gateway"}},
		{"cap add", h.CapAdd, []string{"CAP_NET_ADMIN"}},
		{"cap drop", h.CapDrop, []string{"CAP_CHOWN", "ALL"}},
		{"security", h.SecurityOpt, []string{"no-new-privileges", "seccomp=" + seccomp}},
		{"init", h.Init, &yes},
		{"read-only", h.ReadonlyRootfs, true},
		{"stop signal", c.StopSignal, "SIGTERM"},
		{"stop timeout", *c.StopTimeout, 30},
		{"health", c.Healthcheck, &engine.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: 5e9, Retries: 3}},
		{"sysctl", h.Sysctls, map[string]string{"net.ipv4.ip_forward": "1"}},
		{"namespaces", [3]string{h.IpcMode, h.PidMode, h.UTSMode}, [3]string{"host", "container:db", "host"}},
		{"exposed", c.ExposedPorts, map[string]struct{}{"9000/udp": {}, "9001/udp": {}}},
		{"publish all", h.PublishAllPorts, true},
		{"pull", [3]string{o.Pull, o.Platform, h.Runtime}, [3]string{"never", "linux/arm64", "crun"}},
		{"restart default", h.RestartPolicy, engine.RestartPolicy{Name: "no"}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
	fg := mustParse(t, "-i", "--entrypoint", "/bin/sh", "img").Config
	if !fg.AttachStdin || !fg.StdinOnce || !fg.AttachStdout || !reflect.DeepEqual(fg.Entrypoint, []string{"/bin/sh"}) {
		t.Errorf("foreground -i: got %+v", fg)
	}
	if hc := mustParse(t, "--no-healthcheck", "img").Config.Healthcheck; !reflect.DeepEqual(hc, &engine.HealthConfig{Test: []string{"NONE"}}) {
		t.Errorf("--no-healthcheck: got %+v", hc)
	}
	if o := mustParse(t, "img"); o.Config.Entrypoint != nil || o.HostConfig.Init != nil || o.Config.StopTimeout != nil || o.Pull != "missing" {
		t.Errorf("defaults: got %+v", o)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "-bad"}, `invalid argument "-bad" for "--name" flag: a name is letters, digits, '_', '.' and '-', starting with a letter or digit`},
		{[]string{"-w", "rel"}, `invalid argument "rel" for "-w, --workdir" flag: the working directory must be an absolute path`},
		{[]string{"--network", "host", "--network", "x"}, `invalid argument "host" for "--network, --net" flag: none, host and container: cannot be combined with other networks`},
		{[]string{"--network-alias", "a"}, `invalid argument "a" for "--network-alias, --net-alias" flag: aliases are only for user-defined networks (give --network NAME)`},
		{[]string{"--network", "bridge", "--network-alias", "a"}, `invalid argument "a" for "--network-alias, --net-alias" flag: aliases are only for user-defined networks`},
		{[]string{"--dns", "dns.example"}, `invalid argument "dns.example" for "--dns" flag: not an IP address`},
		{[]string{"--add-host", "db"}, `invalid argument "db" for "--add-host" flag: want HOST:IP`},
		{[]string{"--add-host", "db:nowhere"}, `invalid argument "db:nowhere" for "--add-host" flag: "nowhere" is not an IP address`},
		{[]string{"--cap-add", "FLY"}, `invalid argument "FLY" for "--cap-add" flag: unknown capability`},
		{[]string{"--security-opt", "apparmor=x"}, `invalid argument "apparmor=x" for "--security-opt" flag: apparmor is not supported by berth`},
		{[]string{"--security-opt", "seccomp=/nonexistent/p.json"}, `invalid argument "seccomp=/nonexistent/p.json" for "--security-opt" flag: the seccomp profile: stat /nonexistent/p.json: no such file or directory`},
		{[]string{"--stop-signal", "SIGNOPE"}, `invalid argument "SIGNOPE" for "--stop-signal" flag: unknown signal`},
		{[]string{"--stop-timeout", "soon"}, `invalid argument "soon" for "--stop-timeout" flag: not a number of seconds`},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, `conflicting options: --no-healthcheck and --health-*`},
		{[]string{"--health-interval", "5"}, `invalid argument "5" for "--health-interval" flag: not a duration such as 30s or 1m30s`},
		{[]string{"--ipc", "weird"}, `invalid argument "weird" for "--ipc" flag: unknown mode (want private, shareable, host, none or container:NAME)`},
		{[]string{"--uts", "container:x"}, `invalid argument "container:x" for "--uts" flag: unknown mode (want host)`},
		{[]string{"--pull", "sometimes"}, `invalid argument "sometimes" for "--pull" flag: want missing, always or never`},
		{[]string{"--sysctl", "novalue"}, `invalid argument "novalue" for "--sysctl" flag: want KEY=VALUE`},
		{[]string{"--expose", "http"}, `invalid argument "http" for "--expose" flag: not a port number`},
		{[]string{"-l", "=v"}, `invalid argument "=v" for "-l, --label" flag: the label's key is empty`},
		{[]string{"-h", "bad_host-"}, `invalid argument "bad_host-" for "-h, --hostname" flag: not a valid host name (labels of 1-63 letters, digits and '-')`},
	} {
		wantError(t, tc.want, append(tc.args, "img")...)
	}
	wantError(t, `"berth run" requires at least 1 argument: berth run [OPTIONS] IMAGE [COMMAND] [ARG...]`)
}

func TestSignal(t *testing.T) {
	for in, want := range map[string]string{"TERM": "SIGTERM", "sigkill": "SIGKILL", "9": "SIGKILL", "SIGRTMIN+3": "SIGRTMIN+3", "HUP": "SIGHUP"} {
		got, err := parseSignal(in)
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "NOPE", "-1"} {
		if got, err := parseSignal(in); err == nil {
			t.Errorf("parseSignal(%q) = %q, want an error", in, got)
		}
	}
}

// The parsers see whatever a user (or a script fed hostile input) types:
// they must not panic, and what they accept must be well formed.

func FuzzParsePublish(f *testing.F) {
	for _, s := range []string{"80", "8080:80/udp", "[::1]:8080:80", "127.0.0.1::80", "8000-8001:80-81", "1-65535", "::", "[", "0:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		maps, err := parsePublish(s)
		if err != nil {
			return
		}
		if len(maps) == 0 || len(maps) > 65535 {
			t.Fatalf("%q: %d ports", s, len(maps))
		}
		for _, m := range maps {
			if ports, err := parseExpose(m.port); err != nil || len(ports) != 1 || ports[0] != m.port {
				t.Fatalf("%q gave the bad port key %q", s, m.port)
			}
			if m.binding.HostPort != "" {
				if _, err := parsePort(m.binding.HostPort, false); err != nil {
					t.Fatalf("%q gave the bad host port %q", s, m.binding.HostPort)
				}
			}
		}
	})
}

func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"data:/data", "/h:/c:ro", "/anon", "./x:/y", "a:b:c:d", "/h:/c:ro,rw", "vol:/x/../..", "\x00:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bind, target, err := parseVolume(s)
		if err != nil {
			return
		}
		if !filepath.IsAbs(target) || filepath.Clean(target) != target || target == "/" || strings.ContainsRune(bind, 0) {
			t.Fatalf("%q gave the target %q (bind %q)", s, target, bind)
		}
		// What was accepted must be accepted again unchanged.
		bind2, target2, err := parseVolume(bind)
		if err != nil || bind2 != bind || target2 != target {
			t.Fatalf("%q → %q is not stable: %q %q %v", s, bind, bind2, target2, err)
		}
	})
}

func FuzzParseMount(f *testing.F) {
	for _, s := range []string{"type=bind,src=/h,dst=/c,readonly", "type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1777", `"a=b,c"`, "dst=/x,ro=1", "type=volume,source=v,target=/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMount(s)
		if err != nil {
			return
		}
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target || m.Target == "/" {
			t.Fatalf("%q gave the target %q", s, m.Target)
		}
		switch m.Type {
		case "bind":
			if !filepath.IsAbs(m.Source) {
				t.Fatalf("%q gave the bind source %q", s, m.Source)
			}
		case "volume":
			if m.Source != "" && !volumeName.MatchString(m.Source) {
				t.Fatalf("%q gave the volume %q", s, m.Source)
			}
		case "tmpfs":
			if m.Source != "" || m.TmpfsMode > 0o7777 || m.TmpfsSize < 0 {
				t.Fatalf("%q gave %+v", s, m)
			}
		default:
			t.Fatalf("%q gave the type %q", s, m.Type)
		}
	})
}

func TestShortFlagsCombine(t *testing.T) {
	req, err := parseRun(t, nil, "-dit", "-p", "80", "-e", "A=1", "img", "sh", "-c", "echo -it")
	if err != nil {
		t.Fatal(err)
	}
	c := req.opts.Config
	if !req.detach || !c.Tty || !c.OpenStdin || !reflect.DeepEqual(c.Env, []string{"A=1"}) || !reflect.DeepEqual(c.Cmd, []string{"sh", "-c", "echo -it"}) {
		t.Errorf("-dit: got detach %v, config %+v", req.detach, c)
	}
}

func FuzzParseKV(f *testing.F) {
	for _, s := range []string{"A=1\n# c\n\nB\n", "\xef\xbb\xbfX=y", "BAD NAME=1", "=x", "A=\x00", "\xff=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines, err := parseKV(strings.NewReader(s), func(k string) (string, bool) { return "v", k == "B" })
		if err != nil {
			return
		}
		for _, l := range lines {
			k, _, ok := strings.Cut(l, "=")
			if !ok || k == "" || strings.ContainsAny(k, " \t\n") || strings.ContainsRune(l, 0) {
				t.Fatalf("%q gave the line %q", s, l)
			}
		}
	})
}

// FuzzSmallParsers runs the one-value parsers on the same input: none may
// panic, and what they accept must be in range.
func FuzzSmallParsers(f *testing.F) {
	for _, s := range []string{"/run:size=64m,mode=1777", "1.5", "64m", "on-failure:3", "SIGRTMIN+3", "10m", "2026-01-02T03:04:05Z", "ctrl-p,ctrl-q", "db:10.0.0.1", "0-3,5", "1700000000.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, _, err := parseTmpfs(s); err == nil && (!filepath.IsAbs(p) || p == "/") {
			t.Fatalf("tmpfs %q gave the path %q", s, p)
		}
		if n, err := parseCPUs(s); err == nil && n < 0 {
			t.Fatalf("cpus %q gave %d", s, n)
		}
		if n, err := parseMemory(s, true); err == nil && n < -1 {
			t.Fatalf("memory %q gave %d", s, n)
		}
		if p, err := parseRestart(s); err == nil && (p.MaximumRetryCount < 0 || p.Name == "") {
			t.Fatalf("restart %q gave %+v", s, p)
		}
		if sig, err := parseSignal(s); err == nil && sig == "" {
			t.Fatalf("signal %q gave nothing", s)
		}
		_, _ = parseTimeFlag(s, psNow)
		if keys, err := parseDetachKeys(s); err == nil && len(keys) == 0 {
			t.Fatalf("detach keys %q gave none", s)
		}
		if h, err := parseAddHost(s); err == nil && !strings.Contains(h, ":") {
			t.Fatalf("add-host %q gave %q", s, h)
		}
		_ = validCPUSet(s)
		_, _, _ = parseCopyArgs(s, s)
		if ports, err := parseExpose(s); err == nil && len(ports) == 0 {
			t.Fatalf("expose %q gave none", s)
		}
	})
}
