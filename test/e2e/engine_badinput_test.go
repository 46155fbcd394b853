package e2e

import (
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// Bad input (issue 8, test 11): each run exits 125 with one sentence
// naming what is wrong and leaves nothing; a command that is not found
// exits 127, one that cannot be executed 126.
func TestEngineBadInput(t *testing.T) {
	e := newEngine(t)
	netName := e.networkCreate()
	taken := uniq("taken")
	e.runD("--name", taken, e.image, "sleep", "3600")
	baseline := e.snapshotDirs()
	leases := e.leases()
	wantPs := e.ok("ps", "-a", "-q", "--no-trunc")

	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	missing := "/nonexistent-" + uniq("bind")
	noNet := uniq("nonet")

	for _, c := range []struct {
		what     string
		args     []string
		mentions []string
	}{
		{"unknown image", []string{e.images.registry + "/berth-test/nonexistent:latest"}, []string{"nonexistent"}},
		{"-p abc", []string{"-p", "abc", e.image}, []string{"abc"}},
		{"--memory -1", []string{"--memory", "-1", e.image}, []string{"memory"}},
		{"--restart bogus", []string{"--restart", "bogus", e.image}, []string{"bogus"}},
		{"name taken", []string{"--name", taken, e.image}, []string{taken, "already in use"}},
		{"host port bound", []string{"--network", netName, "-p", fmt.Sprintf("%d:80", busy), e.image}, []string{fmt.Sprint(busy)}},
		{"missing bind source", []string{"--mount", "type=bind,source=" + missing + ",target=/mnt", e.image}, []string{missing}},
		{"unknown network", []string{"--network", noNet, e.image}, []string{noNet}},
	} {
		t.Run(c.what, func(t *testing.T) {
			args := append([]string{"run", "-d"}, c.args...)
			args = append(args, "sleep", "3600")
			r := e.berth(args...)
			if r.code != 125 {
				t.Errorf("%s: exit %d, want 125\n%s", c.what, r.code, r)
			}
			wantOneSentence(t, r, c.mentions...)
			if got := e.ok("ps", "-a", "-q", "--no-trunc"); got != wantPs {
				t.Errorf("%s left a container: ps -a -q: %q, want %q", c.what, got, wantPs)
			}
			if got := e.snapshotDirs(); !slices.Equal(got, baseline) {
				t.Errorf("%s left snapshots: %v, had %v", c.what, got, baseline)
			}
			if got := e.leases(); !slices.Equal(got, leases) {
				t.Errorf("%s left address leases: %v, had %v", c.what, got, leases)
			}
			if missing != "" && fileExists(missing) {
				t.Errorf("%s made the missing bind source %s", c.what, missing)
			}
			for _, l := range e.leaksExcept(taken) {
				t.Errorf("%s: leak: %s", c.what, l)
			}
			e.removeAllBut(wantPs)
		})
	}

	for _, c := range []struct {
		cmd  []string
		want int
	}{
		{[]string{"no-such-command"}, 127},
		{[]string{"/notexec"}, 126},
	} {
		r := e.berth(append([]string{"run", "--rm", e.image}, c.cmd...)...)
		if r.code != c.want {
			t.Errorf("run %v: exit %d, want %d\n%s", c.cmd, r.code, c.want, r)
		}
		if got := e.ok("ps", "-a", "-q", "--no-trunc"); got != wantPs {
			t.Errorf("run --rm %v left a container: %q", c.cmd, got)
		}
		e.removeAllBut(wantPs)
	}
}

// leaksExcept is leaksOf(false) less what belongs to the running
// container ref (its process, cgroup, mounts and rules are expected).
// The id is left out inside leaksOf, not by editing the id set: the id
// poller adds every container it sees back into that set.
func (e *engineT) leaksExcept(ref string) []string {
	e.t.Helper()
	return e.leaksOf(false, e.ok("inspect", "-f", "{{.Id}}", ref))
}

// removeAllBut removes (rm -f -v) every container not in keep (ps -q
// output), so one case's leftovers do not fail the next.
func (e *engineT) removeAllBut(keep string) {
	e.t.Helper()
	for _, id := range strings.Fields(e.ok("ps", "-a", "-q", "--no-trunc")) {
		if !strings.Contains(keep, id) {
			e.berth("rm", "-f", "-v", id)
		}
	}
}

// leases lists the host-local address leases under the run root (files
// named by the address), to check a failed run released its address.
func (e *engineT) leases() []string {
	var out []string
	filepath.WalkDir(e.runroot, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && net.ParseIP(d.Name()) != nil {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}
