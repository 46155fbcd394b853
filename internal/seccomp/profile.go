package seccomp

//go:generate go run gen_default.go

import (
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DockerDefaultCaps returns the bounding capabilities Docker gives a
// container unless told otherwise; DefaultProfile resolves the profile for
// them.
func DockerDefaultCaps() []string {
	return []string{
		"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
		"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
	}
}

// profileRule is one entry of Docker's profile: a spec rule plus the
// conditions under which it belongs in a container's filter.
type profileRule struct {
	names       []string
	action      specs.LinuxSeccompAction
	errnoRet    uint
	hasErrnoRet bool
	args        []specs.LinuxSeccompArg
	includes    condition
	excludes    condition
}

// condition is Docker's includes/excludes: architectures (Docker's names,
// e.g. "amd64", "s390x"), bounding capabilities and a minimum kernel.
type condition struct {
	caps      []string
	arches    []string
	minKernel string
}

// goArchToDocker maps GOARCH to the architecture names Docker's profile uses.
var goArchToDocker = map[string]string{
	"386": "x86", "amd64": "amd64", "arm": "arm", "arm64": "arm64",
	"loong64": "loongarch64", "mips64": "mips64", "mips64le": "mipsel64",
	"mipsle": "mipsel", "ppc64": "ppc64", "ppc64le": "ppc64le",
	"riscv64": "riscv64", "s390x": "s390x",
}

var dockerArchToSpec = map[string]specs.Arch{
	"x86": specs.ArchX86, "amd64": specs.ArchX86_64, "arm": specs.ArchARM,
	"arm64": specs.ArchAARCH64, "loongarch64": specs.ArchLOONGARCH64,
	"mips64": specs.ArchMIPS64, "mipsel64": specs.ArchMIPSEL64,
	"mipsel": specs.ArchMIPSEL, "ppc64": specs.ArchPPC64,
	"ppc64le": specs.ArchPPC64LE, "riscv64": specs.ArchRISCV64,
	"s390x": specs.ArchS390X,
}

// kernelVersion is a kernel release as major, minor.
type kernelVersion struct{ major, minor int }

func (k kernelVersion) atLeast(min string) bool {
	want, ok := parseKernel(min)
	return ok && (k.major > want.major || k.major == want.major && k.minor >= want.minor)
}

// parseKernel reads "6.18.44-fc" or "4.8" as major and minor.
func parseKernel(s string) (kernelVersion, bool) {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return kernelVersion{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	min, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return kernelVersion{}, false
	}
	return kernelVersion{major, min}, true
}

func resolveProfile(caps []string, goarch string, kernel kernelVersion) *specs.LinuxSeccomp {
	have := make([]string, len(caps))
	for i, c := range caps {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		have[i] = c
	}
	errno := uint(profileDefaultErrno)
	p := &specs.LinuxSeccomp{DefaultAction: profileDefaultAction, DefaultErrnoRet: &errno}
	arch := goArchToDocker[goarch]
	if native, ok := dockerArchToSpec[arch]; ok {
		if subs, ok := profileArchMap[native]; ok {
			p.Architectures = append([]specs.Arch{native}, subs...)
		}
	}
	for _, r := range profileRules {
		if !r.applies(have, arch, kernel) {
			continue
		}
		sc := specs.LinuxSyscall{
			Names:  slices.Clone(r.names),
			Action: r.action,
			Args:   slices.Clone(r.args),
		}
		if r.hasErrnoRet {
			ret := r.errnoRet
			sc.ErrnoRet = &ret
		}
		p.Syscalls = append(p.Syscalls, sc)
	}
	return p
}

// applies follows Docker: every included capability must be present and no
// excluded one; the architecture must be included and not excluded.
func (r profileRule) applies(caps []string, arch string, kernel kernelVersion) bool {
	in, ex := r.includes, r.excludes
	if len(in.arches) > 0 && !slices.Contains(in.arches, arch) || slices.Contains(ex.arches, arch) {
		return false
	}
	for _, c := range in.caps {
		if !slices.Contains(caps, c) {
			return false
		}
	}
	for _, c := range ex.caps {
		if slices.Contains(caps, c) {
			return false
		}
	}
	if in.minKernel != "" && !kernel.atLeast(in.minKernel) {
		return false
	}
	return ex.minKernel == "" || !kernel.atLeast(ex.minKernel)
}
