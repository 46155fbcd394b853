//go:build !linux

package kern

// Probe reports that nothing is there: BPF is Linux's.
func Probe() Features { return Features{LSM: "not Linux", ConnectKill: "not Linux"} }
