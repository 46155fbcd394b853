//go:build !amd64 && !arm64

package secmon

// sysNumbers is empty where Berth does not know the system call
// numbers: alert rules on system calls are refused there.
var sysNumbers = map[string]uint32{}
