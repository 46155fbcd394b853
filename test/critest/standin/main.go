// Command standin builds offline stand-ins for the container images that
// critest (sigs.k8s.io/cri-tools v1.37.0) and bench/cri pull, and pushes
// them to a loopback registry under the same repository paths, so that a
// registries file whose mirrors point registry.k8s.io, k8s.gcr.io and
// gcr.io at that registry serves them.
//
// The images are made from Debian's busybox-static and from this binary,
// which is copied into them and plays the parts busybox cannot, chosen by
// the name it is started as:
//
//	pause   the pod infra process: waits for SIGTERM/SIGINT, reaps children
//	nnp     prints "Effective uid: N" (setuid root in the nonewprivs image)
//	nginx   an HTTP server that looks like nginx to critest: process 1's
//	        command line holds "master process", /var/run/nginx.pid exists,
//	        `pidof nginx` finds it
//	ipcs    `ipcs -m`: the System V shared memory segments, as util-linux
//	        prints them (Debian's busybox has no ipcs)
//	pgrep   `pgrep NAME`: the PIDs of processes whose name matches
//
// Started under any other name it builds and pushes the images:
//
//	standin -registry 127.0.0.1:5151 [-busybox /bin/busybox] [-list]
//
// The build is reproducible (fixed timestamps), so the image IDs are the
// same on every run. The one image critest names by a digest
// (test-image-digest@sha256:9700f9...) cannot be reproduced: its spec fails
// for every runtime here.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	name := filepath.Base(os.Args[0])
	var err error
	switch {
	case name == "pause":
		err = pause()
	case name == "nnp":
		fmt.Printf("Effective uid: %d\n", os.Geteuid())
	case strings.HasPrefix(name, "nginx"):
		err = nginx()
	case name == "ipcs":
		err = ipcs()
	case name == "pgrep":
		var found bool
		if found, err = pgrep(os.Args[1:]); err == nil && !found {
			os.Exit(1)
		}
	default:
		err = build()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// pause is the infra process of a pod: it exits on SIGTERM or SIGINT and,
// being process 1 of a shared PID namespace, reaps orphans.
func pause() error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return nil
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return nil
}

// nginxTitle is what nginx's master process shows as its command line;
// critest's namespace specs grep /proc/1/cmdline for "master process".
const nginxTitle = "nginx: master process nginx -g daemon off;"

// nginx serves /usr/share/nginx/html on $STANDIN_NGINX_PORT (80). It first
// re-executes itself (same PID) as /usr/sbin/nginx with nginx's process
// title as argv[0], so the command line and comm match the real nginx.
func nginx() error {
	if os.Args[0] != nginxTitle {
		return syscall.Exec("/usr/sbin/nginx", []string{nginxTitle}, os.Environ())
	}
	port := os.Getenv("STANDIN_NGINX_PORT")
	if port == "" {
		port = "80"
	}
	l, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	if err := os.WriteFile("/var/run/nginx.pid", []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir("/usr/share/nginx/html")), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func build() error {
	fs := flag.NewFlagSet("standin", flag.ContinueOnError)
	registry := fs.String("registry", "127.0.0.1:5151", "loopback registry (host:port) to push to")
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox (Debian's busybox-static)")
	sh := fs.String("sh", "", "a busybox that runs applets by their path (Debian's dynamic busybox, not the static one) to be the images' /bin/sh, with the libraries ldd lists; without it /bin/sh is the static busybox")
	list := fs.Bool("list", false, "print the image references stood in for and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *list {
		for _, s := range standins() {
			for _, r := range s.refs {
				fmt.Println(r)
			}
		}
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary to copy into the images: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return push(ctx, *registry, *busybox, *sh, self)
}

// ipcs prints the System V shared memory segments of the IPC namespace
// as util-linux's `ipcs -m` does; critest looks for a segment's id.
func ipcs() error {
	b, err := os.ReadFile("/proc/sysvipc/shm")
	if err != nil {
		return err
	}
	fmt.Printf("\n------ Shared Memory Segments --------\n%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n",
		"key", "shmid", "owner", "perms", "bytes", "nattch", "status")
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range lines[1:] {
		// key shmid perms size cpid lpid nattch uid ...
		f := strings.Fields(l)
		if len(f) < 8 {
			continue
		}
		key, _ := strconv.ParseInt(f[0], 10, 64)
		fmt.Printf("0x%08x %-10s %-10s %-10s %-10s %-10s\n", uint32(key), f[1], f[7], f[2], f[3], f[6])
	}
	return nil
}

// pgrep prints the PIDs of the processes whose name (comm) matches the
// regular expression args[0], and reports whether there was one.
func pgrep(args []string) (bool, error) {
	if len(args) != 1 {
		return false, errors.New("usage: pgrep PATTERN")
	}
	re, err := regexp.Compile(args[0])
	if err != nil {
		return false, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false, err
	}
	found := false
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && re.MatchString(strings.TrimSpace(string(comm))) {
			fmt.Println(pid)
			found = true
		}
	}
	return found, nil
}
