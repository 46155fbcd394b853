// Package fastpath answers berth-runtime's plain `start`, `delete`, `kill`
// and `state` in C, in a constructor that runs before the Go runtime starts
// (see fastpath.c), and leaves every other case to the Go code. Only
// cmd/berth-runtime imports it: the container init's own binary
// (cmd/berth-runtime-init) takes no commands.
package fastpath

/*
#cgo CFLAGS: -Wall -O2
*/
import "C"
