package network

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"time"
)

// inflightWait bounds how long Detach waits for plugins of an ADD that is
// still running.
const inflightWait = 30 * time.Second

// waitForPlugins waits until no CNI plugin runs for containerID. A berth
// command killed during an ADD leaves its plugin processes running (they
// are not its process group's business once it is gone); a DEL that ran
// before they finished would be undone by them, leaving rules and leases
// behind. Plugins are found by the CNI_CONTAINERID the runtime passes in
// their environment.
func waitForPlugins(ctx context.Context, containerID string) {
	want := []byte("CNI_CONTAINERID=" + containerID + "\x00")
	deadline := time.Now().Add(inflightWait)
	for pluginRunning(want) && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func pluginRunning(want []byte) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		if bytes.Contains(append(env, 0), want) {
			return true
		}
	}
	return false
}
