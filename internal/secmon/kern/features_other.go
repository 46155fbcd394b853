//go:build !linux

package kern

// ProbeLSM says BPF LSM is missing: BPF is Linux's.
func ProbeLSM() string { return "not Linux" }

// ProbeConnectKill says bpf_send_signal is missing: BPF is Linux's.
func ProbeConnectKill() string { return "not Linux" }

// ProbeLSMCached is ProbeLSM.
func ProbeLSMCached(string) string { return ProbeLSM() }
