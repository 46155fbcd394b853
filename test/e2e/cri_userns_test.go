package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Pods with a user namespace of their own (kubelet's hostUsers: false),
// through berthd as kubelet drives it: the pod's root is an unprivileged
// host user, the image's files are still root's inside (idmapped layers),
// kubelet's volumes are idmapped when the mount carries the pod's
// mappings and plain otherwise, the pod owns its network namespace (its
// sysctls apply), the pod's containers share one user namespace, and
// removing the pod leaves no pin, mount or process.

// usernsHostID is where the pods' IDs start on the host (kubelet gives
// each pod 65536 from 65536 up).
const usernsHostID = 100000

// openForPodRoot lets an unprivileged host user (the pod's root) through
// the test's private directories (t.TempDir makes them 0700).
func openForPodRoot(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		for ; d != "/" && d != "."; d = filepath.Dir(d) {
			st, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func usernsMapping(length int) []map[string]any {
	return []map[string]any{{"container_id": 0, "host_id": usernsHostID, "length": length}}
}

// usernsPod writes a pod config with the pod's own user namespace.
func (c *criT) usernsPod(name string, sysctls map[string]string, uids, gids []map[string]any) string {
	cfg := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "e2e", "uid": uniq("uid"), "attempt": 0},
		"hostname":      name,
		"log_directory": filepath.Join(c.logDir, name),
		"linux": map[string]any{
			"sysctls": sysctls,
			"security_context": map[string]any{"namespace_options": map[string]any{
				"pid":            1,                                                     // CONTAINER, kubelet's default
				"userns_options": map[string]any{"mode": 0, "uids": uids, "gids": gids}, // POD
			}},
		},
	}
	return c.writeJSON(name+"-pod.json", cfg)
}

// ctrPid is the host PID of a running container (crictl inspect's info).
func (c *criT) ctrPid(id string) int {
	c.t.Helper()
	var st struct {
		Info struct {
			State struct {
				Pid int `json:"Pid"`
			} `json:"State"`
		} `json:"info"` // the engine's inspection
	}
	if err := json.Unmarshal([]byte(c.crictl("inspect", "-o", "json", id)), &st); err != nil || st.Info.State.Pid <= 0 {
		c.t.Fatalf("crictl inspect %s: no pid (%v)", id, err)
	}
	return st.Info.State.Pid
}

func hostUID(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	return ""
}

func fileOwner(t *testing.T, p string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Uid
}

func TestCRIPodUserNamespace(t *testing.T) {
	c := newCRI(t)
	info := c.crictl("info")
	if !strings.Contains(info, `"user_namespaces": true`) {
		t.Fatalf("crictl info does not offer user namespaces for the default handler:\n%s", info)
	}
	plain, mapped := t.TempDir(), t.TempDir()
	openForPodRoot(t, c.root, c.runroot, plain, mapped)
	// kubelet's emptyDir is 0777: the pod's root is "others" on the host.
	if err := os.Chmod(plain, 0o777); err != nil {
		t.Fatal(err)
	}
	pod := c.usernsPod("uns", map[string]string{"net.ipv4.ip_unprivileged_port_start": "100"}, usernsMapping(65536), usernsMapping(65536))
	mounts := map[string]any{"mounts": []map[string]any{
		{"container_path": "/plain", "host_path": plain},
		// The CRI's proto names these two in camel case.
		{"container_path": "/mapped", "host_path": mapped, "uidMappings": usernsMapping(65536), "gidMappings": usernsMapping(65536)},
	}}
	a := c.ctrConfig("a", []string{"sh", "-c", "echo uid=$(id -u); cat /proc/self/uid_map; ls -ln /bin/busybox; " +
		"echo x > /plain/f && echo plain-ok; echo y > /mapped/g && echo mapped-ok; ls -ln /mapped; echo z > /rootfile && echo rootfs-ok; " +
		"echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); echo etc=$(stat -c %u:%g /etc/hosts /etc/resolv.conf /etc/hostname); sleep 3600"}, mounts)
	b := c.ctrConfig("b", []string{"sleep", "3601"}, nil)
	p, ids := c.runPod(pod, "uns", a, b)
	var out string
	waitForOut(t, "container a's checks", 30*time.Second, func() (bool, string) {
		out = c.crictl("logs", ids[0])
		return strings.Contains(out, "etc="), out
	})
	for _, want := range []string{"uid=0", "plain-ok", "mapped-ok", "rootfs-ok", "port=100", "etc=0:0 0:0 0:0"} {
		if !strings.Contains(out, want) {
			t.Errorf("container a's output lacks %q:\n%s", want, out)
		}
	}
	if t.Failed() {
		b, _ := os.ReadFile(filepath.Join(c.runroot, "containers", ids[0], "config.json"))
		t.Logf("config.json: %s", b)
	}
	if f := strings.Fields(firstLineWith(out, "/bin/busybox")); len(f) < 4 || f[2] != "0" || f[3] != "0" {
		t.Errorf("ls -ln /bin/busybox inside = %q, want owner 0 0 (the image's files are root's)", firstLineWith(out, "/bin/busybox"))
	}
	if f := strings.Fields(firstLineWith(out, " 100000 ")); len(f) != 3 || f[0] != "0" || f[1] != "100000" || f[2] != "65536" {
		t.Errorf("uid_map inside = %q, want 0 100000 65536", firstLineWith(out, " 100000 "))
	}
	// On the host: the plain volume has the pod's host IDs, the idmapped
	// one the IDs the files have inside.
	if u := fileOwner(t, filepath.Join(plain, "f")); u != usernsHostID {
		t.Errorf("a file the pod's root wrote to the plain volume is owned by %d on the host, want %d", u, usernsHostID)
	}
	if u := fileOwner(t, filepath.Join(mapped, "g")); u != 0 {
		t.Errorf("a file the pod's root wrote to the idmapped volume is owned by %d on the host, want 0", u)
	}
	pa, pb := c.ctrPid(ids[0]), c.ctrPid(ids[1])
	for _, pid := range []int{pa, pb} {
		if u := hostUID(t, pid); u != fmt.Sprint(usernsHostID) {
			t.Errorf("container process %d runs as host uid %s, want %d", pid, u, usernsHostID)
		}
	}
	nsA, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pa))
	nsB, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pb))
	self, _ := os.Readlink("/proc/self/ns/user")
	if nsA == "" || nsA != nsB || nsA == self {
		t.Errorf("user namespaces: a %s, b %s, host %s: want one of the pod's own for both", nsA, nsB, self)
	}
	// The runtime's way to the rootfs is open to the pod's root only.
	var gate syscall.Stat_t
	if err := syscall.Stat(filepath.Join(c.runroot, "rootfs", ids[0]), &gate); err != nil || gate.Mode&0o777 != 0o710 || gate.Gid != usernsHostID {
		t.Errorf("the rootfs gate directory: mode %o gid %d (%v), want 0710 and the pod's root group %d", gate.Mode&0o777, gate.Gid, err, usernsHostID)
	}
	if ip := c.inspectp(p).Status.Network.IP; ip == "" {
		t.Errorf("the pod has no IP: CNI did not run in its network namespace")
	}
	// Exec joins the same namespace.
	if got := c.crictl("exec", ids[1], "id", "-u"); got != "0" {
		t.Errorf("crictl exec id -u = %q, want 0", got)
	}

	// berthd killed and started again finds the pod and its namespaces.
	c.kill9()
	c.start()
	if st := c.inspectp(p).Status.State; st != "SANDBOX_READY" {
		t.Errorf("the pod after berthd's restart: %s, want SANDBOX_READY", st)
	}
	if got := c.crictl("exec", ids[0], "cat", "/proc/self/uid_map"); !strings.Contains(got, "100000") {
		t.Errorf("exec after berthd's restart: uid_map %q", got)
	}

	pins := filepath.Join(c.runroot, "sandboxes", p)
	if _, err := os.Stat(filepath.Join(pins, "user")); err != nil {
		t.Errorf("the pod's user namespace pin: %v", err)
	}
	c.crictl("stopp", p)
	c.crictl("rmp", p)
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("the pod's run directory %s is still there after rmp (%v)", pins, err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, c.runroot) || strings.Contains(l, c.root) {
			t.Errorf("a mount is left after rmp: %s", l)
		}
	}
	for _, pid := range []int{pa, pb} {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && hostUID(t, pid) == fmt.Sprint(usernsHostID) {
			t.Errorf("container process %d still runs after rmp", pid)
		}
	}
}

// A pod that shares one PID namespace keeps its pause process inside its
// user namespace (its containers mount /proc for that PID namespace).
func TestCRIPodUserNamespaceSharedPID(t *testing.T) {
	c := newCRI(t)
	openForPodRoot(t, c.root, c.runroot)
	podPath := c.usernsPod("unspid", nil, usernsMapping(65536), usernsMapping(65536))
	var cfg map[string]any
	b, _ := os.ReadFile(podPath)
	json.Unmarshal(b, &cfg)
	cfg["linux"].(map[string]any)["security_context"].(map[string]any)["namespace_options"].(map[string]any)["pid"] = 0 // POD
	podPath = c.writeJSON("unspid-pod2.json", cfg)
	a := c.ctrConfig("a", []string{"sleep", "3602"}, nil)
	bb := c.ctrConfig("b", []string{"sh", "-c", "echo uid=$(id -u); ps -o pid,args; sleep 3603"}, nil)
	p, ids := c.runPod(podPath, "unspid", a, bb)
	waitForOut(t, "container b's ps", 30*time.Second, func() (bool, string) {
		out := c.crictl("logs", ids[1])
		return strings.Contains(out, "sleep 3602") && strings.Contains(out, "uid=0"), out
	})
	// PID 1 of the pod is berth-pause (the C one make build puts beside
	// berth-monitor), not the Go monitor's pause mode.
	if line := firstLineWith(c.crictl("logs", ids[1]), "--pause"); !strings.Contains(line, "berth-pause --pause") || strings.Fields(line)[0] != "1" {
		t.Errorf("the pod's PID 1: %q; want berth-pause --pause", line)
	}
	c.crictl("rmp", "-f", p)
}

// Mappings kubelet would not send are refused, naming the field, and
// leave nothing behind.
func TestCRIPodUserNamespaceBadInput(t *testing.T) {
	c := newCRI(t)
	two := append(usernsMapping(65536), map[string]any{"container_id": 65536, "host_id": 300000, "length": 65536})
	for _, tc := range []struct {
		name       string
		uids, gids []map[string]any
		want       string
	}{
		{"two", two, usernsMapping(65536), "uids: want one contiguous range, got 2"},
		{"short", usernsMapping(1000), usernsMapping(1000), "length: 1000"},
		{"hostroot", []map[string]any{{"container_id": 0, "host_id": 0, "length": 65536}}, usernsMapping(65536), "host_id: 0"},
		{"notroot", []map[string]any{{"container_id": 1, "host_id": usernsHostID, "length": 65536}}, usernsMapping(65536), "container_id: 1"},
		{"nogids", usernsMapping(65536), nil, "gids: want one contiguous range, got 0"},
	} {
		r := c.crictlRun("runp", c.usernsPod("bad"+tc.name, nil, tc.uids, tc.gids))
		if r.code == 0 || !strings.Contains(r.stderr, "InvalidArgument") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: %s; want InvalidArgument naming %q", tc.name, r, tc.want)
		}
	}
	// runc 1.1 has no idmapped mounts: its handler offers no user
	// namespaces, and a pod asking for one there is refused.
	if r := c.crictlRun("runp", "--runtime", "runc", c.usernsPod("badrunc", nil, usernsMapping(65536), usernsMapping(65536))); r.code == 0 || !strings.Contains(r.stderr, "FailedPrecondition") || !strings.Contains(r.stderr, "does not offer pod user namespaces") {
		t.Errorf("a userns pod on runc: %s; want FailedPrecondition", r)
	}
	if out := c.crictl("pods", "-q"); out != "" {
		t.Errorf("pods after refused requests: %q", out)
	}
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

// A pod with a user namespace whose CNI ADD fails (after its namespaces
// are pinned: CNI runs in the pod's network namespace) leaves nothing:
// no pin, netns file, mount, holder process or lease.
func TestCRIPodUserNamespaceCNIFailure(t *testing.T) {
	bin := t.TempDir()
	plugin := "#!/bin/sh\ncase \"$CNI_COMMAND\" in\n" +
		"VERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}' ;;\n" +
		"ADD) cat >/dev/null; echo '{\"cniVersion\":\"1.0.0\",\"code\":100,\"msg\":\"no network for this pod\"}'; exit 1 ;;\n" +
		"*) cat >/dev/null; exit 0 ;;\nesac\n"
	if err := os.WriteFile(filepath.Join(bin, "berth-test-userns"), []byte(plugin), 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCRIWith(t, func(c *criT, args []string) []string {
		list := `{"cniVersion":"1.0.0","name":"faulty-userns","plugins":[{"type":"berth-test-userns"}]}`
		return withCNIConfList(t, args, t.TempDir(), list, bin)
	})
	openForPodRoot(t, c.root, c.runroot)
	r := c.crictlRun("runp", c.usernsPod("unscni", nil, usernsMapping(65536), usernsMapping(65536)))
	if r.code == 0 || !strings.Contains(r.stderr, "no network for this pod") {
		t.Fatalf("runp: %s; want the plugin's refusal", r)
	}
	if out := c.crictl("pods", "-q"); out != "" {
		t.Errorf("pods after the failure: %q", out)
	}
	for _, d := range []string{filepath.Join(c.runroot, "sandboxes"), filepath.Join(c.runroot, "network", "netns")} {
		if ents, _ := os.ReadDir(d); len(ents) > 0 {
			t.Errorf("%s holds %d entries after the failure", d, len(ents))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), c.runroot) {
		t.Errorf("mounts under %s are left after the failure", c.runroot)
	}
	for _, pid := range enginePidsNaming([]string{"--pause"}) {
		// Only this test's: a holder runs as the pod's root.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil && strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", usernsHostID)) {
			t.Errorf("a pod namespace holder still runs: pid %d", pid)
		}
	}
}
