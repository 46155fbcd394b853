package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogJSONLastError: with --log FILE --log-format json a failing command
// leaves its error as the last line, {"level":"error","msg":...}: the shape
// containerd's go-runc reads to report why the runtime failed.
func TestLogJSONLastError(t *testing.T) {
	rt := newRuntime(t)
	logFile := filepath.Join(t.TempDir(), "log.json")
	res := rt.Do("--log", logFile, "--log-format", "json", "state", "berth-e2e-no-such-container")
	if res.ExitCode == 0 {
		t.Fatalf("state of a missing container succeeded: %s", res)
	}
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatalf("--log file: %v", err)
	}
	defer f.Close()
	var last map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("--log-format json wrote a line that is not JSON: %q: %v", sc.Text(), err)
		}
		last = rec
	}
	if last == nil {
		t.Fatal("--log file is empty after a failed command")
	}
	if last["level"] != "error" {
		t.Errorf(`last log record's level = %v, want "error" (lower case, as go-runc compares it)`, last["level"])
	}
	if msg, _ := last["msg"].(string); !strings.Contains(msg, "berth-e2e-no-such-container") && !strings.Contains(msg, "does not exist") {
		t.Errorf("last log record's msg = %q, want the error", msg)
	}
}
