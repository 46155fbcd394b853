package nsenter

import (
	"os"
	goruntime "runtime"
)

// Every berth-runtime process is short-lived and does its work on one
// goroutine at a time, so one P is enough. With a P per CPU the runtime
// starts more threads during package initialisation (net/netip's
// unique.Make wakes a second P, which needs a new thread) and gives each P
// its own spans: more page faults and more RSS in every create. Set here,
// in the first package of the binary whose dependencies are ready (the
// spec initialises packages in import-path order), before the heavy
// initialisers run. A GOMAXPROCS the caller set is kept.
func init() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		goruntime.GOMAXPROCS(1)
	}
}
