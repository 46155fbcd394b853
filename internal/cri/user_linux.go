package cri

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// processUser is the identity a running container's first process has
// (KEP-3619: kubelet reports it in the pod's status): its effective uid and
// gid and its supplementary groups, read from /proc. nil when the process
// is gone or its status cannot be read.
func processUser(pid int) *runtimeapi.ContainerUser {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return nil
	}
	u, ok := parseStatusUser(b)
	if !ok {
		return nil
	}
	return &runtimeapi.ContainerUser{Linux: u}
}

// parseStatusUser reads the Uid, Gid and Groups lines of a /proc/PID/status.
func parseStatusUser(b []byte) (*runtimeapi.LinuxContainerUser, bool) {
	u := &runtimeapi.LinuxContainerUser{}
	var haveUID, haveGID bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid":
			// real, effective, saved, filesystem: the effective one.
			if len(fields) < 2 {
				return nil, false
			}
			id, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return nil, false
			}
			if key == "Uid" {
				u.Uid, haveUID = id, true
			} else {
				u.Gid, haveGID = id, true
			}
		case "Groups":
			for _, f := range fields {
				g, err := strconv.ParseInt(f, 10, 64)
				if err != nil {
					return nil, false
				}
				u.SupplementalGroups = append(u.SupplementalGroups, g)
			}
		}
	}
	return u, haveUID && haveGID
}
