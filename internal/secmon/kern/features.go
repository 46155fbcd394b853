package kern

// Features says what this kernel offers the monitor beyond the programs
// every supported kernel loads: each field is why a feature is missing,
// "" when it is there.
type Features struct {
	// LSM: BPF LSM programs load and run (deny on exec and open in the
	// kernel, for any runtime).
	LSM string
	// ConnectKill: the connect programs may call bpf_send_signal.
	ConnectKill string
}
