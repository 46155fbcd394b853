// Package nsenter joins and creates a container's namespaces before the Go
// runtime starts (see nsenter.c). Importing it installs a C constructor that
// does nothing unless the process was started as a container init by package
// runtime, which sets _BERTH_INITPIPE. cmd/berth-runtime and
// cmd/berth-runtime-init import it: the init runs from either binary.
package nsenter

/*
#cgo CFLAGS: -Wall -O2
*/
import "C"
