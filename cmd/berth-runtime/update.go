package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/runtime"
)

// updateCommand is runc's `update`: new limits for a container that runs,
// from a runtime-spec LinuxResources JSON (--resources) or from flags.
func updateCommand() *cli.Command {
	str := func(name, usage string) cli.Flag { return &cli.StringFlag{Name: name, Usage: usage} }
	return &cli.Command{
		Name: "update", Usage: "update a container's resource limits", ArgsUsage: "<container-id>",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resources", Aliases: []string{"r"}, Usage: "LinuxResources JSON file, or - for stdin (flags are then ignored)"},
			&cli.IntFlag{Name: "blkio-weight", Usage: "block IO weight, 10..1000"},
			str("cpu-period", "CPU CFS period in µs"),
			str("cpu-quota", "CPU CFS quota in µs per period (-1: none)"),
			str("cpu-burst", "CPU CFS burst in µs"),
			str("cpu-share", "CPU shares (relative weight)"),
			str("cpu-rt-period", "CPU realtime period in µs"),
			str("cpu-rt-runtime", "CPU realtime runtime in µs"),
			str("cpu-idle", "1: SCHED_IDLE for the cgroup"),
			str("cpuset-cpus", "CPUs to run on (e.g. 0-1,3)"),
			str("cpuset-mems", "memory nodes to use"),
			str("memory", "memory limit (e.g. 64M; -1: none)"),
			str("memory-reservation", "memory soft limit"),
			str("memory-swap", "memory+swap limit (-1: none)"),
			str("kernel-memory", "ignored (deprecated, as in runc)"),
			str("kernel-memory-tcp", "ignored (deprecated, as in runc)"),
			&cli.IntFlag{Name: "pids-limit", Usage: "maximum number of processes (-1: none)"},
			str("l3-cache-schema", "Intel RDT (not supported)"),
			str("mem-bw-schema", "Intel RDT (not supported)"),
		},
		Action: withID(func(ctx context.Context, r *runtime.Runtime, id string, cmd *cli.Command) error {
			res, err := updateResources(cmd)
			if err != nil {
				return err
			}
			return r.Update(ctx, id, res)
		}),
	}
}

func updateResources(cmd *cli.Command) (*specs.LinuxResources, error) {
	if in := cmd.String("resources"); in != "" {
		var rd io.Reader = os.Stdin
		if in != "-" {
			f, err := os.Open(in)
			if err != nil {
				return nil, fmt.Errorf("--resources: %w", err)
			}
			defer f.Close()
			rd = f
		}
		var res specs.LinuxResources
		dec := json.NewDecoder(rd)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&res); err != nil {
			return nil, fmt.Errorf("--resources %s: not a runtime-spec LinuxResources object: %w", in, err)
		}
		return &res, nil
	}
	for _, f := range []string{"l3-cache-schema", "mem-bw-schema"} {
		if cmd.IsSet(f) {
			return nil, fmt.Errorf("--%s: Intel RDT is not supported by berth-runtime", f)
		}
	}
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{}, CPU: &specs.LinuxCPU{}}
	for _, u := range []struct {
		flag string
		dst  **uint64
	}{{"cpu-period", &res.CPU.Period}, {"cpu-burst", &res.CPU.Burst}, {"cpu-share", &res.CPU.Shares}, {"cpu-rt-period", &res.CPU.RealtimePeriod}} {
		if v := cmd.String(u.flag); v != "" {
			n, perr := strconv.ParseUint(v, 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("--%s %q: not a non-negative integer", u.flag, v)
			}
			*u.dst = &n
		}
	}
	for _, i := range []struct {
		flag string
		dst  **int64
	}{{"cpu-quota", &res.CPU.Quota}, {"cpu-rt-runtime", &res.CPU.RealtimeRuntime}} {
		if v := cmd.String(i.flag); v != "" {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil {
				return nil, fmt.Errorf("--%s %q: not an integer", i.flag, v)
			}
			*i.dst = &n
		}
	}
	for _, m := range []struct {
		flag string
		dst  **int64
	}{{"memory", &res.Memory.Limit}, {"memory-reservation", &res.Memory.Reservation}, {"memory-swap", &res.Memory.Swap}} {
		if v := cmd.String(m.flag); v != "" {
			n, perr := ramInBytes(v)
			if perr != nil {
				return nil, fmt.Errorf("--%s: %w", m.flag, perr)
			}
			*m.dst = &n
		}
	}
	// Lifting the memory limit needs the swap limit lifted too, or the
	// kernel refuses memory > memsw (runc does the same).
	if l := res.Memory.Limit; l != nil && *l == -1 && res.Memory.Swap == nil {
		unlimited := int64(-1)
		res.Memory.Swap = &unlimited
	}
	if v := cmd.String("cpu-idle"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || (n != 0 && n != 1) {
			return nil, fmt.Errorf("--cpu-idle %q: want 0 or 1", v)
		}
		res.CPU.Idle = &n
	}
	res.CPU.Cpus, res.CPU.Mems = cmd.String("cpuset-cpus"), cmd.String("cpuset-mems")
	if w := cmd.Int("blkio-weight"); w != 0 {
		if w < 10 || w > 1000 {
			return nil, fmt.Errorf("--blkio-weight %d: outside 10..1000", w)
		}
		bw := uint16(w)
		res.BlockIO = &specs.LinuxBlockIO{Weight: &bw}
	}
	if l := int64(cmd.Int("pids-limit")); l != 0 {
		res.Pids = &specs.LinuxPids{Limit: &l}
	}
	return res, nil
}

// splitRAMSize splits a size as `^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$`
// matches it into the number and the unit letter (which may be ""). It is
// hand-written so that berth-runtime links no regexp package (compiled at
// start in every process, the container's init included).
func splitRAMSize(s string) (num, unit string, ok bool) {
	digits := func(s string) int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	}
	n := digits(s)
	if n == 0 {
		return "", "", false
	}
	if n < len(s) && s[n] == '.' {
		if f := digits(s[n+1:]); f > 0 {
			n += 1 + f
		}
	}
	num, rest := s[:n], s[n:]
	rest = strings.TrimPrefix(rest, " ")
	if rest != "" && strings.ContainsRune("kKmMgGtTpP", rune(rest[0])) {
		unit, rest = rest[:1], rest[1:]
	}
	if rest != "" && (rest[0] == 'i' || rest[0] == 'I') {
		rest = rest[1:]
	}
	if rest != "" && (rest[0] == 'b' || rest[0] == 'B') {
		rest = rest[1:]
	}
	return num, unit, rest == ""
}

// ramInBytes parses a memory size as runc's flags take it (docker/go-units
// RAMInBytes: binary multiples, "64M", "1.5g", "512MiB"), or -1.
func ramInBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	num, unit, ok := splitRAMSize(s)
	if !ok {
		return 0, fmt.Errorf("%q is not a size (e.g. 64M, 1g, 1048576, or -1 for no limit)", s)
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size: %w", s, err)
	}
	if unit != "" {
		n *= float64(int64(1) << (10 * (1 + strings.Index("kmgtp", strings.ToLower(unit)))))
	}
	return int64(n), nil
}
