//go:build cgo

package seccomp

import (
	"encoding/json"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func uintp(v uint) *uint { return &v }

func TestValidate(t *testing.T) {
	lib := version{2, 5, 4}
	// A kernel that knows every flag but SPEC_ALLOW.
	kernelHas := func(f specs.LinuxSeccompFlag) bool { return f != specs.LinuxSeccompFlagSpecAllow }
	allow := func(names ...string) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: names, Action: specs.ActAllow}
	}
	notify := specs.LinuxSyscall{Names: []string{"mount"}, Action: specs.ActNotify}
	base := func(mod func(c *specs.LinuxSeccomp)) *specs.LinuxSeccomp {
		c := &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno,
			Syscalls:      []specs.LinuxSyscall{allow("read", "write"), allow("close")},
		}
		mod(c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  *specs.LinuxSeccomp
		want string // "" means valid
	}{
		{"nil config", nil, ""},
		{"minimal", base(func(c *specs.LinuxSeccomp) {}), ""},
		{"unknown syscall names are fine", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls = append(c.Syscalls, allow("no_such_syscall_berth"))
		}), ""},
		{"everything", base(func(c *specs.LinuxSeccomp) {
			c.DefaultErrnoRet = uintp(38)
			c.Architectures = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
			c.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog,
				specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC"}
			c.ListenerPath = "/run/berth/agent.sock"
			c.ListenerMetadata = "x"
			c.Syscalls = append(c.Syscalls, notify,
				specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActTrace, ErrnoRet: uintp(65535)},
				specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{
					{Index: 0, Op: specs.OpMaskedEqual, Value: 0x7e020000, ValueTwo: 0},
					{Index: 5, Op: specs.OpLessEqual, Value: 1},
				}})
		}), ""},
		{"no default action", base(func(c *specs.LinuxSeccomp) { c.DefaultAction = "" }),
			`linux.seccomp.defaultAction: required`},
		{"unknown default action", base(func(c *specs.LinuxSeccomp) { c.DefaultAction = "SCMP_ACT_FOO" }),
			`linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"`},
		{"notify default action", base(func(c *specs.LinuxSeccomp) {
			c.DefaultAction = specs.ActNotify
			c.ListenerPath = "/run/a.sock"
		}), `linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action`},
		{"default errno on allow", base(func(c *specs.LinuxSeccomp) {
			c.DefaultAction = specs.ActAllow
			c.DefaultErrnoRet = uintp(1)
		}), `linux.seccomp.defaultErrnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_ALLOW`},
		{"default errno too big", base(func(c *specs.LinuxSeccomp) { c.DefaultErrnoRet = uintp(65536) }),
			`linux.seccomp.defaultErrnoRet: 65536 is out of range (0 to 65535)`},
		{"unknown arch", base(func(c *specs.LinuxSeccomp) {
			c.Architectures = []specs.Arch{specs.ArchX86_64, "SCMP_ARCH_VAX"}
		}), `linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"`},
		{"arch newer than libseccomp", base(func(c *specs.LinuxSeccomp) {
			c.Architectures = []specs.Arch{specs.ArchLOONGARCH64}
		}), `linux.seccomp.architectures[0]: SCMP_ARCH_LOONGARCH64 needs libseccomp 2.6.0, this runtime has 2.5.4`},
		{"unknown flag", base(func(c *specs.LinuxSeccomp) {
			c.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, "SECCOMP_FILTER_FLAG_FOO"}
		}), `linux.seccomp.flags[1]: unknown flag "SECCOMP_FILTER_FLAG_FOO"`},
		{"wait killable without notify", base(func(c *specs.LinuxSeccomp) {
			c.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
		}), `linux.seccomp.flags[0]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a syscall with action SCMP_ACT_NOTIFY`},
		{"flag the kernel lacks", base(func(c *specs.LinuxSeccomp) {
			c.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}
		}), `linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_SPEC_ALLOW is not supported by this kernel`},
		{"unknown action", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls = append(c.Syscalls, allow("a"), specs.LinuxSyscall{Names: []string{"mount"}, Action: "SCMP_ACT_FOO"})
		}), `linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"`},
		{"no names", base(func(c *specs.LinuxSeccomp) { c.Syscalls[1].Names = nil }),
			`linux.seccomp.syscalls[1].names: at least one syscall name is required`},
		{"empty name", base(func(c *specs.LinuxSeccomp) { c.Syscalls[0].Names[1] = "" }),
			`linux.seccomp.syscalls[0].names[1]: empty syscall name`},
		{"errno on allow", base(func(c *specs.LinuxSeccomp) { c.Syscalls[1].ErrnoRet = uintp(1) }),
			`linux.seccomp.syscalls[1].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_ALLOW`},
		{"errno on kill", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls[1] = specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActKill, ErrnoRet: uintp(0)}
		}), `linux.seccomp.syscalls[1].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take an errno, not SCMP_ACT_KILL`},
		{"errno too big", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls[0] = specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActErrno, ErrnoRet: uintp(1 << 20)}
		}), `linux.seccomp.syscalls[0].errnoRet: 1048576 is out of range (0 to 65535)`},
		{"seven args", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls[0].Args = make([]specs.LinuxSeccompArg, 7)
			for i := range c.Syscalls[0].Args {
				c.Syscalls[0].Args[i] = specs.LinuxSeccompArg{Index: uint(i % 6), Op: specs.OpEqualTo}
			}
		}), `linux.seccomp.syscalls[0].args: 7 conditions, at most 6 are allowed`},
		{"arg index 6", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls[1].Args = []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo}, {Index: 6, Op: specs.OpEqualTo}}
		}), `linux.seccomp.syscalls[1].args[1].index: 6 is out of range (0 to 5)`},
		{"unknown op", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls[1].Args = []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_LIKE"}}
		}), `linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_LIKE"`},
		// Ignored, as runc does: a seccomp agent's listenerPath set for
		// every container whatever its profile (runc seccomp-notify.bats
		// "ignore listener path if no notify act").
		{"listener without notify", base(func(c *specs.LinuxSeccomp) { c.ListenerPath = "/run/a.sock" }), ""},
		{"notify without listener", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls = append(c.Syscalls, notify)
		}), `linux.seccomp.syscalls[2].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath`},
		{"listener path too long", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls = append(c.Syscalls, notify)
			c.ListenerPath = "/" + strings.Repeat("a", 107)
		}), `linux.seccomp.listenerPath: 108 bytes, longer than a unix socket path can be (107)`},
		{"notify on write", base(func(c *specs.LinuxSeccomp) {
			c.Syscalls = append(c.Syscalls, specs.LinuxSyscall{Names: []string{"mount", "write"}, Action: specs.ActNotify})
			c.ListenerPath = "/run/a.sock"
		}), `linux.seccomp.syscalls[2].names[1]: SCMP_ACT_NOTIFY cannot be used for the write syscall: the container init needs it to hand over the listener`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.cfg, lib, kernelHas)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("validate:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestValidateLinkedLibrary checks Validate against the libseccomp this
// package is linked with, which knows x86_64 and aarch64 whatever its age.
func TestValidateLinkedLibrary(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
	}
	if err := Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// FuzzValidate decodes arbitrary JSON as linux.seccomp. Validate must not
// panic, must name the field at fault, and whatever it accepts must compile.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg specs.LinuxSeccomp
		if json.Unmarshal(data, &cfg) != nil {
			return
		}
		err := Validate(&cfg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "linux.seccomp.") {
				t.Fatalf("error does not name a field: %v", err)
			}
			return
		}
		if _, err := Compile(&cfg); err != nil {
			t.Fatalf("Validate accepted a config that does not compile: %v\n%s", err, data)
		}
	})
}
