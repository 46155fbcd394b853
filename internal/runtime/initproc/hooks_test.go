package initproc

import (
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestHookTimeoutDefault(t *testing.T) {
	five := 5
	if got := hookTimeout(specs.Hook{Path: "/bin/true"}); got != defaultHookTimeout {
		t.Errorf("hook without timeout: bound %s, want the default %s", got, defaultHookTimeout)
	}
	if got := hookTimeout(specs.Hook{Path: "/bin/true", Timeout: &five}); got != 5*time.Second {
		t.Errorf("hook with timeout 5: bound %s, want 5s", got)
	}
	if got := HooksBound([]specs.Hook{{Path: "a"}, {Path: "b", Timeout: &five}}); got != defaultHookTimeout+7*time.Second {
		t.Errorf("HooksBound = %s", got)
	}
}

// A hook that never exits ends at its timeout, with the error saying so.
func TestRunHookTimesOut(t *testing.T) {
	one := 1
	err := runHook(specs.Hook{Path: "/bin/sleep", Args: []string{"sleep", "1000"}, Timeout: &one}, []byte("{}"))
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Errorf("runHook of a hook that never exits: %v, want a timeout", err)
	}
}
