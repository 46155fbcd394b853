package logs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock returns a Writer clock that advances one second per call from a
// fixed start, so --since can be tested without sleeping.
func clock(start time.Time) func() time.Time {
	var mu sync.Mutex
	t := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func newTestWriter(t *testing.T, maxSize int64, maxFiles int) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctr.log")
	w, err := NewWriter(path, maxSize, maxFiles)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

var recordRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [PF] `)

func TestWriterFormat(t *testing.T) {
	w, path := newTestWriter(t, 0, 0)
	w.Write(Stdout, []byte("hello\nwor"))
	w.Write(Stdout, []byte("ld\n\n"))
	w.Write(Stderr, []byte("oops\n"))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	want := []string{"stdout F hello", "stdout P wor", "stdout F ld", "stdout F ", "stderr F oops"}
	if len(lines) != len(want) {
		t.Fatalf("log has %d lines, want %d:\n%s", len(lines), len(want), data)
	}
	for i, l := range lines {
		if !recordRE.MatchString(l) {
			t.Errorf("line %d %q is not a CRI record", i, l)
		}
		if _, rest, _ := strings.Cut(l, " "); rest != want[i] {
			t.Errorf("line %d = %q, want %q", i, rest, want[i])
		}
	}
	var out bytes.Buffer
	var errOut bytes.Buffer
	if err := Read(context.Background(), path, ReadOptions{Tail: -1, Stdout: &out, Stderr: &errOut}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\nworld\n\n" || errOut.String() != "oops\n" {
		t.Errorf("Read gave stdout %q stderr %q", out.String(), errOut.String())
	}
}

func TestWriterSplitsLongLines(t *testing.T) {
	w, path := newTestWriter(t, 0, 0)
	long := strings.Repeat("x", 2*MaxLineSize+10)
	w.Write(Stdout, []byte(long+"\n"))
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], " P ") || !strings.Contains(lines[2], " F ") {
		t.Fatalf("a %d-byte line gave %d records", len(long), len(lines))
	}
	var out bytes.Buffer
	Read(context.Background(), path, ReadOptions{Tail: -1, Stdout: &out})
	if out.String() != long+"\n" {
		t.Errorf("reassembled line has %d bytes, want %d", out.Len(), len(long)+1)
	}
}

func TestRotationAndTail(t *testing.T) {
	w, path := newTestWriter(t, 200, 2)
	for i := 0; i < 40; i++ {
		w.Write(Stdout, []byte(strings.Repeat("a", 10)+string(rune('A'+i%26))+"\n"))
	}
	for _, p := range []string{path, path + ".1", path + ".2"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("rotated file missing: %v", err)
		}
		if fi.Size() > 200 {
			t.Errorf("%s has %d bytes, over the 200 limit", p, fi.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("%s.3 kept with maxFiles 2", path)
	}
	// The tail spans the current and the rotated files: LOG holds fewer
	// than 6 records of ~50 bytes.
	var out bytes.Buffer
	if err := Read(context.Background(), path, ReadOptions{Tail: 6, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 34; i < 40; i++ {
		want.WriteString(strings.Repeat("a", 10) + string(rune('A'+i%26)) + "\n")
	}
	if out.String() != want.String() {
		t.Errorf("tail 6 = %q, want %q", out.String(), want.String())
	}
	out.Reset()
	Read(context.Background(), path, ReadOptions{Tail: 0, Stdout: &out})
	if out.Len() != 0 {
		t.Errorf("tail 0 printed %q", out.String())
	}
}

func TestSinceUntilTimestamps(t *testing.T) {
	w, path := newTestWriter(t, 0, 0)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.now = clock(start)
	for _, s := range []string{"one\n", "two\n", "thr", "ee\n", "four\n"} {
		w.Write(Stdout, []byte(s))
	}
	var out bytes.Buffer
	// "three" began at +3s; its F record came at +4s. The message's time is
	// its first record's.
	err := Read(context.Background(), path, ReadOptions{Tail: -1, Since: start.Add(2 * time.Second), Until: start.Add(3 * time.Second), Timestamps: true, Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-01-02T03:04:07Z two\n2026-01-02T03:04:08Z three\n"
	if out.String() != want {
		t.Errorf("since/until = %q, want %q", out.String(), want)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	w, path := newTestWriter(t, 100, 1)
	w.Write(Stdout, []byte("before\n"))
	var mu sync.Mutex
	var out bytes.Buffer
	done := make(chan struct{})
	var finished bool
	lw := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	})
	go func() {
		defer close(done)
		err := Read(context.Background(), path, ReadOptions{Follow: true, Tail: -1, Stdout: lw, PollInterval: 5 * time.Millisecond,
			Done: func() bool { mu.Lock(); defer mu.Unlock(); return finished }})
		if err != nil {
			t.Error(err)
		}
	}()
	var want strings.Builder
	want.WriteString("before\n")
	for i := 0; i < 30; i++ {
		line := strings.Repeat("b", 20) + string(rune('a'+i%26)) + "\n"
		w.Write(Stdout, []byte(line))
		want.WriteString(line)
		// Wait for the follower to catch up so each rotation is seen: the
		// follower only knows LOG and LOG.1.
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return out.Len() == want.Len() })
	}
	w.Write(Stdout, []byte("prompt$ "))
	want.WriteString("prompt$ ")
	mu.Lock()
	finished = true
	mu.Unlock()
	<-done
	if out.String() != want.String() {
		t.Errorf("follow printed %q, want %q", out.String(), want.String())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 5000; i++ {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10s")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestParseLineRejects(t *testing.T) {
	for _, l := range []string{
		"", "garbage", "2016-10-06T00:17:09.669794202Z", "2016-10-06T00:17:09Z stdin F x",
		"2016-10-06T00:17:09Z stdout X x", "yesterday stdout F x", "2016-10-06T00:17:09Z stdout",
	} {
		if _, err := ParseLine([]byte(l)); err == nil {
			t.Errorf("ParseLine(%q) accepted it", l)
		}
	}
	e, err := ParseLine([]byte("2016-10-06T00:17:09.669794202Z stderr P a b "))
	if err != nil || e.Stream != Stderr || !e.Partial || string(e.Content) != "a b " || e.Time.Nanosecond() != 669794202 {
		t.Errorf("ParseLine = %+v, %v", e, err)
	}
}

func TestReadSkipsMalformedAndOverlong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	data := "junk\n" + strings.Repeat("z", 200000) + "\n2016-10-06T00:17:09Z stdout F ok\n"
	os.WriteFile(path, []byte(data), 0o600)
	var out bytes.Buffer
	if err := Read(context.Background(), path, ReadOptions{Tail: -1, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "ok\n" {
		t.Errorf("Read = %q", out.String())
	}
}

func TestWriterRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "log")
	os.Symlink(target, link)
	if _, err := NewWriter(link, 0, 0); err == nil {
		t.Fatal("NewWriter followed a symlink")
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("2016-10-06T00:17:09.669794202Z stdout F log content"))
	f.Add([]byte("2016-10-06T00:17:09Z stderr P "))
	f.Add([]byte("2016-10-06T00:17:09Z stdout F"))
	f.Add([]byte("x y z"))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			return
		}
		// What parses round-trips through the writer's encoding.
		if bytes.IndexByte(e.Content, '\n') >= 0 {
			return
		}
		again, err := ParseLine(bytes.TrimSuffix(appendRecord(nil, e.Time, e.Stream, e.Partial, e.Content), []byte("\n")))
		if err != nil || again.Stream != e.Stream || again.Partial != e.Partial || !bytes.Equal(again.Content, e.Content) || !again.Time.Equal(e.Time) {
			t.Fatalf("round trip of %q: %+v, %v", line, again, err)
		}
	})
}
