package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/errdefs"
)

func newTestStore(t *testing.T, ns string) *store {
	return &store{path: filepath.Join(t.TempDir(), "engine.db"), ns: []byte(ns)}
}

func TestStoreNameIsReservedOnce(t *testing.T) {
	s := newTestStore(t, "default")
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.add(&record{Container: Container{ID: newID(), Name: "/web", Created: time.Now()}})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, errdefs.ErrAlreadyExists):
			t.Fatalf("add: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of 10 concurrent adds of one name succeeded, want 1", ok)
	}
	recs, err := s.list()
	if err != nil || len(recs) != 1 {
		t.Fatalf("list: %d records, %v", len(recs), err)
	}
}

func TestStoreGetByNameIDAndPrefix(t *testing.T) {
	s := newTestStore(t, "default")
	a := &record{Container: Container{ID: "abc123" + fmt.Sprint(newID()[:58]), Name: "/one", Created: time.Now()}}
	b := &record{Container: Container{ID: "abd456" + fmt.Sprint(newID()[:58]), Name: "/two", Created: time.Now()}}
	for _, r := range []*record{a, b} {
		if err := s.add(r); err != nil {
			t.Fatal(err)
		}
	}
	for ref, want := range map[string]string{"one": a.ID, "/two": b.ID, a.ID: a.ID, "abc": a.ID, "abd4": b.ID} {
		r, err := s.get(ref)
		if err != nil || r.ID != want {
			t.Errorf("get(%q) = %v, %v; want %s", ref, r, err, want)
		}
	}
	if _, err := s.get("ab"); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("get of an ambiguous prefix: %v, want ErrInvalidArgument", err)
	}
	if _, err := s.get("nosuch"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("get(nosuch): %v, want ErrNotFound", err)
	}
	if err := s.remove(a.ID); err != nil {
		t.Fatal(err)
	}
	// The name is free again.
	if err := s.add(&record{Container: Container{ID: newID(), Name: "/one"}}); err != nil {
		t.Fatalf("reuse of a removed container's name: %v", err)
	}
}

func TestStoreNamespacesAreSeparate(t *testing.T) {
	s := newTestStore(t, "default")
	k := &store{path: s.path, ns: []byte("k8s.io")}
	if err := s.add(&record{Container: Container{ID: newID(), Name: "/web"}}); err != nil {
		t.Fatal(err)
	}
	if err := k.add(&record{Container: Container{ID: newID(), Name: "/web"}}); err != nil {
		t.Fatalf("one name in two namespaces: %v", err)
	}
	if recs, _ := k.list(); len(recs) != 1 {
		t.Fatalf("k8s.io lists %d containers, want 1", len(recs))
	}
}

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in       string
		src, dst string
		ro       bool
		bad      bool
	}{
		{in: "/data", dst: "/data"},
		{in: "vol:/data", src: "vol", dst: "/data"},
		{in: "/host:/ctr:ro", src: "/host", dst: "/ctr", ro: true},
		{in: "/host:/ctr:rw,z", src: "/host", dst: "/ctr"},
		{in: "/host:relative", bad: true},
		{in: "a:b:c:d", bad: true},
		{in: "/host:/ctr:bogus", bad: true},
		{in: ":/ctr", bad: true},
	} {
		src, dst, ro, err := parseBind(tc.in)
		if tc.bad {
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Errorf("parseBind(%q): %v, want ErrInvalidArgument", tc.in, err)
			}
			continue
		}
		if err != nil || src != tc.src || dst != tc.dst || ro != tc.ro {
			t.Errorf("parseBind(%q) = %q %q %v %v", tc.in, src, dst, ro, err)
		}
	}
}

func FuzzParseBind(f *testing.F) {
	for _, s := range []string{"/data", "v:/d", "/a:/b:ro", "a:b:c:d", ":", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		src, dst, _, err := parseBind(s)
		if err != nil {
			return
		}
		if dst == "" || dst[0] != '/' {
			t.Fatalf("parseBind(%q) accepted destination %q", s, dst)
		}
		_ = src
	})
}

func TestPortSpecs(t *testing.T) {
	hc := HostConfig{PortBindings: map[string][]PortBinding{
		"80/tcp": {{HostIP: "127.0.0.1", HostPort: "8080"}},
		"53/udp": {{HostPort: "5353"}},
	}, PublishAllPorts: true}
	cfg := Config{ExposedPorts: map[string]struct{}{"443/tcp": {}, "80/tcp": {}}}
	ps, err := portSpecs(hc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []portSpec{
		{HostPort: 0, ContainerPort: 443, Protocol: "tcp"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
	}
	if fmt.Sprint(ps) != fmt.Sprint(want) {
		t.Fatalf("portSpecs = %v, want %v", ps, want)
	}
	for _, bad := range []map[string][]PortBinding{
		{"80/sctp": nil}, {"abc/tcp": nil}, {"80/tcp": {{HostPort: "99999"}}}, {"0/tcp": nil},
	} {
		if _, err := portSpecs(HostConfig{PortBindings: bad}, Config{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("portSpecs(%v): %v, want ErrInvalidArgument", bad, err)
		}
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		p      RestartPolicy
		rm, ok bool
	}{
		{RestartPolicy{}, false, true},
		{RestartPolicy{Name: "no"}, true, true},
		{RestartPolicy{Name: "always"}, false, true},
		{RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}, false, true},
		{RestartPolicy{Name: "always"}, true, false},
		{RestartPolicy{Name: "always", MaximumRetryCount: 2}, false, false},
		{RestartPolicy{Name: "sometimes"}, false, false},
	} {
		err := checkRestartPolicy(tc.p, tc.rm)
		if (err == nil) != tc.ok {
			t.Errorf("checkRestartPolicy(%+v, rm=%v) = %v", tc.p, tc.rm, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for s, ok := range map[string]bool{"web": true, "a.b-c_d": true, "1x": true, "": false, "-x": false, "a/b": false, "a b": false, "_x": false} {
		if validName(s) != ok {
			t.Errorf("validName(%q) = %v", s, !ok)
		}
	}
}

func TestStatusText(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		st   State
		want string
	}{
		{State{Status: "running", StartedAt: now.Add(-3 * time.Minute)}, "Up 3 minutes"},
		{State{Status: "exited", ExitCode: 137, FinishedAt: now.Add(-5 * time.Second)}, "Exited (137) 5 seconds ago"},
		{State{Status: "created"}, "Created"},
		{State{Status: "running", StartedAt: now.Add(-5 * time.Second), Health: &HealthStatus{Status: "healthy"}}, "Up 5 seconds (healthy)"},
	} {
		if got := statusText(tc.st); got != tc.want {
			t.Errorf("statusText(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
}

func TestParseSignal(t *testing.T) {
	for s, want := range map[string]int{"KILL": 9, "sigterm": 15, "SIGHUP": 1, "9": 9} {
		n, err := parseSignal(s)
		if err != nil || int(n) != want {
			t.Errorf("parseSignal(%q) = %d, %v", s, n, err)
		}
	}
	for _, s := range []string{"", "BOGUS", "0", "99"} {
		if _, err := parseSignal(s); err == nil {
			t.Errorf("parseSignal(%q) accepted", s)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2"}, []string{"B=3", "C=4"})
	if fmt.Sprint(got) != "[A=1 B=3 C=4]" {
		t.Fatalf("mergeEnv = %v", got)
	}
}
