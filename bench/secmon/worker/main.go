// Command worker is the in-container half of bench/secmon: it times N
// fork+execs of a program, or N connect+close to a loopback server it
// runs itself, and prints the elapsed nanoseconds.
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: worker exec N PROG [ARGS...] | worker connect N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "exec":
		start := time.Now()
		for range n {
			if err := exec.Command(os.Args[3], os.Args[4:]...).Run(); err != nil {
				fail(err)
			}
		}
		fmt.Println(time.Since(start).Nanoseconds())
	case "connect":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		addr := ln.Addr().String()
		start := time.Now()
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail(err)
			}
			c.Close()
		}
		fmt.Println(time.Since(start).Nanoseconds())
	default:
		fail(fmt.Errorf("unknown workload %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "worker:", err)
	os.Exit(1)
}
