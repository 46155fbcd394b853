package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEngineDevice: `berth run --device` gives the container a host device
// at the path asked for, with only the access asked for; a host path that is
// not a device is refused, naming it, with nothing left behind.
func TestEngineDevice(t *testing.T) {
	e := newEngine(t)
	// /dev/loop-control is not among the devices every container may
	// open, so the device cgroup's rule for it is the mapping's alone;
	// opening it changes nothing.
	out := e.ok("run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", "--device", "/dev/null:/opt/null", e.image, "sh", "-c",
		"ls -ln /dev/lc /opt/null | cut -c1; exec 3</dev/lc && echo read-open-ok; echo x > /opt/null && echo null-ok; (exec 4>/dev/lc) 2>&1 || echo write-refused")
	for _, want := range []string{"c\nc\n", "read-open-ok", "null-ok", "Operation not permitted", "write-refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output %q lacks %q", out, want)
		}
	}

	r := e.berth("run", "--rm", "--device", "/etc/passwd:/dev/x", e.image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "/etc/passwd") || !strings.Contains(r.stderr, "not a character or block device") {
		t.Errorf("a non-device path: %v; want a failure naming it", r)
	}
	r = e.berth("run", "--rm", "--device", "/dev/zero:/dev/z:rx", e.image, "true")
	if r.code != 125 || !strings.Contains(r.stderr, `"rx"`) {
		t.Errorf("bad permissions: %v; want exit 125 naming them", r)
	}
	if ids := strings.Fields(e.ok("ps", "-aq")); len(ids) != 0 {
		t.Errorf("refused runs left containers: %v", ids)
	}
}

// TestCRIDevice: CreateContainer's devices reach the container.
func TestCRIDevice(t *testing.T) {
	c := newCRI(t)
	pod, _ := c.podConfig("dev")
	ctr := c.ctrConfig("d", []string{"sh", "-c", "exec 3</dev/crilc && echo read-open-ok; (exec 4>/dev/crilc) || echo write-refused; sleep 300"},
		map[string]any{"devices": []map[string]any{{"container_path": "/dev/crilc", "host_path": "/dev/loop-control", "permissions": "r"}}})
	_, ids := c.runPod(pod, "dev", ctr)
	waitForOut(t, "the container's output", 30*time.Second, func() (bool, string) {
		out := c.crictlRun("logs", ids[0])
		return strings.Contains(out.stdout, "write-refused") && strings.Contains(out.stdout, "read-open-ok"), out.stdout + out.stderr
	})
	bad := c.ctrConfig("bad", []string{"true"},
		map[string]any{"devices": []map[string]any{{"container_path": "dev/x", "host_path": "/dev/zero", "permissions": "r"}}})
	p := c.crictl("pods", "--name", "dev", "-q")
	if r := c.crictlRun("create", p, bad, pod); r.code == 0 || !strings.Contains(r.stderr, "config.devices[0]") {
		t.Errorf("a relative container path: %+v; want a refusal naming config.devices[0]", r)
	}
}

// TestCRISupplementalGroupsPolicy: Merge (the default) adds the groups the
// image's /etc/group gives the user (app is in staff, 50) to the pod's
// supplemental groups; Strict uses the pod's alone; both include the
// primary group (1000), as Kubernetes expects; ContainerStatus reports the
// identity the process runs with.
func TestCRISupplementalGroupsPolicy(t *testing.T) {
	c := newCRI(t)
	pod, _ := c.podConfig("groups")
	script := []string{"sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status; sleep 300"}
	sc := func(policy int) map[string]any {
		return map[string]any{"linux": map[string]any{"security_context": map[string]any{
			"run_as_user": map[string]any{"value": 1000}, "supplemental_groups": []int{1234}, "supplemental_groups_policy": policy,
		}}}
	}
	_, ids := c.runPod(pod, "groups", c.ctrConfig("merge", script, sc(0)), c.ctrConfig("strict", script, sc(1)))
	for i, want := range []string{"Groups:\t50 1000 1234", "Groups:\t1000 1234"} {
		waitForOut(t, "the container's groups", 30*time.Second, func() (bool, string) {
			out := c.crictlRun("logs", ids[i]).stdout
			for _, line := range strings.Split(out, "\n") {
				if strings.TrimSpace(line) == want {
					return true, out
				}
			}
			return false, out
		})
		raw := c.crictl("inspect", ids[i])
		var st struct {
			Status struct {
				User struct {
					Linux struct {
						UID    string   `json:"uid"`
						Groups []string `json:"supplementalGroups"`
					} `json:"linux"`
				} `json:"user"`
			} `json:"status"`
		}
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("crictl inspect: %v\n%s", err, raw)
		}
		u := st.Status.User.Linux
		if wantGroups := strings.Fields(strings.TrimPrefix(want, "Groups:")); u.UID != "1000" || !slices.Equal(u.Groups, wantGroups) {
			t.Errorf("crictl inspect %s: status.user = %+v, want uid 1000 and groups %v", ids[i], u, wantGroups)
		}
	}
}
