// Command berth-runtime-init is the container init of berth-runtime, built
// as a binary of its own: the process that becomes a container (and every
// `exec`) starts this small Go program instead of the whole runtime,
// ~4 ms sooner on each create. berth-runtime runs it, sealed, when it lies
// beside berth-runtime and comes from the same build (see
// internal/runtime/initbin_linux.go); it is never run by hand.
package main

import (
	"os"

	"github.com/berth-project/berth/internal/runtime/initproc"
	// The namespace-entering C constructor of the init.
	_ "github.com/berth-project/berth/internal/runtime/nsenter"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] != "init" {
		os.Stderr.WriteString("berth-runtime-init: the container init of berth-runtime, which runs it; it takes no commands\n")
		os.Exit(2)
	}
	initproc.Init()
}
