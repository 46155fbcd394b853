package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/testutil"
)

// After a reboot (simulated: every process of the test killed, the run
// root unmounted and wiped, the containers' cgroups, rules and interfaces
// gone) ps shows every container exited and `system boot` starts the
// always and unless-stopped ones again, ports and all (issue 8, test 12).
func TestEngineRecoveryAfterReboot(t *testing.T) {
	e := newEngine(t)
	port := freePort(t)
	// A network of the test's own: the default bridge is shared with
	// every other root on the host, whose containers may hold the same
	// addresses (each root leases them separately).
	netName := e.networkCreate()
	always := e.runD("--restart", "always", "--network", netName, "-p", fmt.Sprintf("%d:80", port), "--name", uniq("always"), e.image, "httpd", "-f", "-p", "80")
	unless := e.runD("--restart", "unless-stopped", "--name", uniq("unless"), e.image, "sleep", "3600")
	plain := e.runD("--name", uniq("plain"), e.image, "sleep", "3600")
	// Stopped by the user before the reboot: Docker starts an always
	// container again at boot, not an unless-stopped one.
	stoppedAlways := e.runD("--restart", "always", "--name", uniq("stopped-always"), e.image, "sleep", "3600")
	stoppedUnless := e.runD("--restart", "unless-stopped", "--name", uniq("stopped-unless"), e.image, "sleep", "3600")
	e.ok("stop", "--time", "1", stoppedAlways, stoppedUnless)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitForLong(t, "the published port to answer", 30*time.Second, func() bool { _, ok := httpGet(url); return ok })
	ids := []string{always, unless, plain, stoppedAlways, stoppedUnless}
	for _, id := range ids {
		e.recordIPs(id)
	}

	e.simulateReboot(ids)
	if _, ok := httpGet(url); ok {
		t.Fatalf("the port still answers after the simulated reboot")
	}

	var rows []map[string]any
	out := e.ok("ps", "-a", "--format", "json")
	if json.Unmarshal([]byte(out), &rows) != nil {
		rows = nil
		for _, l := range strings.Split(out, "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil {
				rows = append(rows, m)
			}
		}
	}
	if len(rows) != len(ids) {
		t.Errorf("ps -a after the reboot: %d rows, want %d:\n%s", len(rows), len(ids), out)
	}
	for _, r := range rows {
		if r["State"] != "exited" {
			t.Errorf("ps -a after the reboot: %v is %v, want exited", firstOf(r, "Names", "Name"), r["State"])
		}
	}

	e.ok("system", "boot")
	for id, want := range map[string]string{always: "running", unless: "running", plain: "exited", stoppedAlways: "running", stoppedUnless: "exited"} {
		if st := e.status(id); st != want {
			t.Errorf("after system boot: %s is %s, want %s", id[:12], st, want)
		}
	}
	waitForOut(t, "the always container's port to answer after system boot", 30*time.Second, func() (bool, string) {
		body, ok := httpGet(url)
		if ok {
			return true, ""
		}
		rules, _ := exec.Command("sh", "-c", fmt.Sprintf("iptables-save | grep -e %d -e %s; nft list ruleset | grep -e %d", port, always[:12], port)).CombinedOutput()
		return false, body + "\n" + e.berth("ps", "-a").stdout + e.berth("port", always).String() +
			e.inspectF(always, "{{json .NetworkSettings}}") + "\n" + string(rules) + "\n" + e.berth("exec", always, "sh", "-c", "ip a; ps").stdout
	})
}

// simulateReboot approximates what a reboot does to the test's
// containers: kill -9 of every process (monitors, containers), the run
// root unmounted and removed, the cgroups removed, and the iptables and
// nftables rules naming the containers deleted. The network namespaces
// die with their processes and bind mounts, and their veths with them.
func (e *engineT) simulateReboot(ids []string) {
	t := e.t
	t.Helper()
	markers := append([]string{e.root, e.runroot}, ids...)
	for range 3 {
		for _, pid := range enginePidsNaming(markers) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
		callersReapZombies("berth-monitor", "sleep", "httpd", "sh")
	}
	if left := enginePidsNaming(markers); len(left) > 0 {
		t.Fatalf("processes survived kill -9: %v", left)
	}
	mounts := testutil.MountsUnder(e.runroot)
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m, err)
		}
	}
	// A netns bind mount outside the run root (/run/netns) goes too.
	for _, d := range []string{"/run/netns"} {
		ents, _ := os.ReadDir(d)
		for _, ent := range ents {
			for _, id := range ids {
				if strings.Contains(ent.Name(), id[:12]) {
					syscall.Unmount(filepath.Join(d, ent.Name()), syscall.MNT_DETACH)
					os.Remove(filepath.Join(d, ent.Name()))
				}
			}
		}
	}
	if err := os.RemoveAll(e.runroot); err != nil {
		t.Fatalf("wipe the run root: %v", err)
	}
	os.MkdirAll(e.runroot, 0o711)
	for _, id := range ids {
		for _, cg := range testutil.FindCgroups(id) {
			if err := os.Remove(cg); err != nil {
				t.Logf("remove cgroup %s: %v", cg, err)
			}
		}
	}
	e.deleteRules(ids)
}

// deleteRules deletes the iptables rules and nftables rules that name one
// of ids (short form) or an address the test recorded, and the non-builtin
// iptables chains all of whose rules were deleted. Other rules of the host
// are left alone.
func (e *engineT) deleteRules(ids []string) {
	e.mu.Lock()
	var needles []string
	for ip := range e.ips {
		needles = append(needles, ip+"/", ip+":", ip+" ")
	}
	e.mu.Unlock()
	for _, id := range ids {
		needles = append(needles, id[:12])
	}
	e.deleteRulesMatching(needles)
}

// deleteRulesMatching deletes the iptables and nftables rules containing
// any of needles.
func (e *engineT) deleteRulesMatching(needles []string) {
	t := e.t
	if len(needles) == 0 {
		return
	}
	match := func(line string) bool {
		for _, n := range needles {
			if strings.Contains(line, n) {
				return true
			}
		}
		return false
	}
	run := func(name string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		return string(out), err
	}
	saved, err := run("iptables-save")
	if err == nil {
		table := ""
		total, hit := map[string]int{}, map[string]int{}
		var dels [][]string
		for _, line := range strings.Split(saved, "\n") {
			if strings.HasPrefix(line, "*") {
				table = line[1:]
			}
			if !strings.HasPrefix(line, "-A ") {
				continue
			}
			args := splitRule(line)
			total[table+" "+args[1]]++
			if match(line) {
				hit[table+" "+args[1]]++
				dels = append(dels, append([]string{"-t", table, "-D"}, args[1:]...))
			}
		}
		for _, d := range dels {
			if out, err := run("iptables", d...); err != nil {
				t.Logf("iptables %v: %v %s", d, err, out)
			}
		}
		for k, n := range hit {
			tc := strings.SplitN(k, " ", 2)
			if n == total[k] && strings.ToUpper(tc[1]) != tc[1] || n == total[k] && strings.HasPrefix(tc[1], "CNI-") {
				run("iptables", "-t", tc[0], "-X", tc[1])
			}
		}
	}
	// nftables: delete matching rules by handle.
	ruleset, err := run("nft", "-a", "list", "ruleset")
	if err != nil {
		return
	}
	var family, table, chain string
	for _, line := range strings.Split(ruleset, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "table":
			family, table = f[1], f[2]
		case len(f) >= 2 && f[0] == "chain":
			chain = f[1]
		case match(line) && strings.Contains(line, "# handle "):
			h := line[strings.LastIndex(line, "# handle ")+len("# handle "):]
			if out, err := run("nft", "delete", "rule", family, table, chain, "handle", strings.TrimSpace(h)); err != nil {
				t.Logf("nft delete rule %s %s %s handle %s: %v %s", family, table, chain, h, err, out)
			}
		}
	}
}

// splitRule splits an iptables-save rule line into arguments, honouring
// its double quotes (comments).
func splitRule(line string) []string {
	var args []string
	var cur strings.Builder
	inQ, esc, have := false, false, false
	for _, r := range line {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == '"':
			inQ = !inQ
			have = true
		case r == ' ' && !inQ:
			if have || cur.Len() > 0 {
				args = append(args, cur.String())
			}
			cur.Reset()
			have = false
		default:
			cur.WriteRune(r)
		}
	}
	if have || cur.Len() > 0 {
		args = append(args, cur.String())
	}
	return args
}

// splitRule is a parser of text the host's iptables-save writes.
func FuzzEngineSplitRule(f *testing.F) {
	f.Add(`-A POSTROUTING -s 10.231.3.0/24 -m comment --comment "name: \"net\" id: \"abc\"" -j CNI-123`)
	f.Add(`-A X "" -j`)
	f.Add(`"unterminated`)
	f.Add(`0000\ 000000000000`)
	f.Fuzz(func(t *testing.T, line string) {
		args := splitRule(line)
		for _, a := range args {
			if strings.Contains(a, " ") && !strings.ContainsAny(line, `"\`) {
				t.Fatalf("an argument with a space from a line without quotes or escapes: %q", a)
			}
		}
	})
}
