// Command berth-monitor is the per-container monitor: started by the engine
// as `berth-monitor CONFIGFILE`, it runs one container through an OCI
// runtime and supervises it until it exits for good. See internal/monitor.
//
// It imports only the standard library, golang.org/x/sys and
// internal/monitor: one runs per container, so its memory is the
// per-container price of Berth.
package main

import (
	"os"

	"github.com/berth-project/berth/internal/monitor"
)

func main() {
	os.Exit(monitor.Main(os.Args))
}
