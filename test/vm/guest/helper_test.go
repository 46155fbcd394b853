//go:build berthvm

package guest

import (
	"fmt"
	"os"
	"strings"
)

// runHelper acts as the helper process name and returns its exit status.
func runHelper(name string) int {
	switch name {
	case "memhog":
		return memHog()
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 2
}

// memHog says which cgroup it is in, then touches ever more memory, up to
// 256 MiB: under a lower memory.max the OOM killer ends it first.
func memHog() int {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Printf("cgroup %s\n", strings.TrimSpace(string(self)))
	const chunk = 1 << 20
	var held [][]byte
	for len(held) < 256 {
		b := make([]byte, chunk)
		for i := 0; i < chunk; i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
	}
	fmt.Printf("touched %d MiB and was not killed\n", len(held))
	return 0
}
