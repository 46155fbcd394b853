//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "lifecycle: OCI runtimes and this benchmark need Linux")
	os.Exit(1)
}
