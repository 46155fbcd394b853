package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/oci"
	"github.com/berth-project/berth/internal/seccomp"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// This file turns a container's Config and HostConfig into the OCI runtime
// spec its runtime runs, with Docker's defaults and Docker's answers to bad
// input, so that `berth run` behaves as `docker run` does.

// MergeImageConfig completes the user's Config with the image's defaults,
// as Docker does: the user's values win, Env merges by key (image order
// first, then the user's new keys), an Entrypoint set by the user drops the
// image's Cmd unless the user also gave one, Labels, ExposedPorts and
// Volumes are unions. It is an error (ErrInvalidArgument) if nothing is
// left to run.
func MergeImageConfig(c Config, img image.RuntimeConfig) (Config, error) {
	out := c
	out.Env = mergeEnv(img.Env, c.Env)
	if len(c.Entrypoint) == 1 && c.Entrypoint[0] == "" {
		// docker's CLI sends --entrypoint "" as [""]: a cleared entrypoint.
		c.Entrypoint = []string{}
	}
	switch {
	case c.Entrypoint != nil:
		out.Entrypoint = slices.Clone(c.Entrypoint)
		// Docker: a new entrypoint does not inherit the image's
		// arguments, which were written for the old one.
		out.Cmd = slices.Clone(c.Cmd)
	default:
		out.Entrypoint = slices.Clone(img.Entrypoint)
		out.Cmd = slices.Clone(c.Cmd)
		if c.Cmd == nil {
			out.Cmd = slices.Clone(img.Cmd)
		}
	}
	if len(out.Entrypoint) == 0 && len(out.Cmd) == 0 {
		return Config{}, fmt.Errorf("no command specified: %w", errdefs.ErrInvalidArgument)
	}
	if out.WorkingDir == "" {
		out.WorkingDir = img.WorkingDir
	}
	if out.User == "" {
		out.User = img.User
	}
	if out.StopSignal == "" {
		out.StopSignal = img.StopSignal
	}
	if len(img.Labels) > 0 || c.Labels != nil {
		out.Labels = map[string]string{}
		for k, v := range img.Labels {
			out.Labels[k] = v
		}
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	out.ExposedPorts = unionSet(c.ExposedPorts, img.ExposedPorts)
	out.Volumes = unionSet(c.Volumes, img.Volumes)
	return out, nil
}

// unionSet adds keys to a copy of set; nil if both are empty.
func unionSet(set map[string]struct{}, keys []string) map[string]struct{} {
	if len(set) == 0 && len(keys) == 0 {
		return set
	}
	out := make(map[string]struct{}, len(set)+len(keys))
	for k := range set {
		out[k] = struct{}{}
	}
	for _, k := range keys {
		out[k] = struct{}{}
	}
	return out
}

// mergeEnv is Docker's ReplaceOrAppendEnvValues: each override replaces
// the base entry with its key in place or is appended; an override without
// "=" (`-e FOO` with FOO unset where the CLI ran) removes the key.
func mergeEnv(base, overrides []string) []string {
	out := slices.Clone(base)
	for _, o := range overrides {
		key, _, hasValue := strings.Cut(o, "=")
		i := slices.IndexFunc(out, func(e string) bool {
			k, _, _ := strings.Cut(e, "=")
			return k == key
		})
		switch {
		case !hasValue && i >= 0:
			out = slices.Delete(out, i, i+1)
		case !hasValue:
		case i >= 0:
			out[i] = o
		default:
			out = append(out, o)
		}
	}
	return out
}

// SpecInput is everything BuildSpec needs; the engine fills it.
type SpecInput struct {
	ID         string
	Config     Config // already merged with the image's (MergeImageConfig)
	HostConfig HostConfig
	// Rootfs is the mounted root file system (a host directory): root.path,
	// and where --user names are looked up.
	Rootfs string
	// Mounts are the volumes and binds the engine resolved (source = a
	// host path), and the /etc/hosts, /etc/resolv.conf, /etc/hostname
	// binds. They replace a default mount at the same destination.
	Mounts []specs.Mount
	// NetNSPath is the network namespace to join; "" with NetworkMode
	// "host" means the host's, otherwise a new one.
	NetNSPath string
	// IPCNSPath, UTSNSPath, PIDNSPath are namespaces to join; "" means a
	// new one, or the host's when the HostConfig mode says "host".
	IPCNSPath, UTSNSPath, PIDNSPath string
	CgroupsPath                     string // "/berth/<id>"
	// InitPath is the init binary run with --init (tini-static); it is
	// bound read-only at /sbin/docker-init, Docker's place.
	InitPath string
	// SeccompProfile is the content of the seccomp=FILE profile (Docker's
	// format), "" if none was given.
	SeccompProfile string
}

// initDestination is where Docker puts the --init binary.
const initDestination = "/sbin/docker-init"

// defaultShmSize is Docker's /dev/shm size.
const defaultShmSize = 64 << 20

// BuildSpec makes the runtime spec of a container: Docker's defaults
// (capabilities, seccomp, masked paths, private /dev) adjusted by the
// HostConfig. A fault in the input is an ErrInvalidArgument naming the flag
// or value at fault; what the host or the engine must supply first (an
// init binary, a capability the host withholds, the path of a
// "container:ID" namespace) is an ErrFailedPrecondition. It reads the
// rootfs's /etc/passwd and /etc/group and the host's /dev (--privileged),
// and changes nothing.
func BuildSpec(ctx context.Context, in SpecInput) (*specs.Spec, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, hc := in.Config, in.HostConfig
	if in.Rootfs == "" {
		return nil, fmt.Errorf("build spec: no rootfs: %w", errdefs.ErrInvalidArgument)
	}
	args := append(slices.Clone(c.Entrypoint), c.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("no command specified: %w", errdefs.ErrInvalidArgument)
	}
	sec, err := parseSecurityOpts(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}
	caps, err := tweakCapabilities(hc.CapAdd, hc.CapDrop, hc.Privileged)
	if err != nil {
		return nil, err
	}

	s := oci.DefaultSpec()
	s.Root = &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs}
	if len(hc.Annotations) > 0 {
		s.Annotations = maps.Clone(hc.Annotations)
	}
	p := s.Process
	p.Terminal = c.Tty
	// No rlimits: the container inherits its monitor's, as Docker's
	// containers inherit containerd's; a fixed value may exceed the hard
	// limit this host allows and fail the start.
	p.Rlimits = nil
	// Docker leaves no_new_privs off unless asked: setuid programs in
	// images (su, ping on old images) must keep working.
	p.NoNewPrivileges = sec.noNewPrivileges
	p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}

	user, err := resolveUser(ctx, in.Rootfs, c.User)
	if err != nil {
		return nil, err
	}
	switch hc.SupplementalGroupsPolicy {
	case "":
	case "Merge", "Strict":
		if hc.SupplementalGroupsPolicy == "Strict" {
			user.AdditionalGids = nil
		}
		// Kubernetes' identity (and containerd's, CRI-O's): the
		// primary group is among the supplementary ones too.
		if !slices.Contains(user.AdditionalGids, user.GID) {
			user.AdditionalGids = append([]uint32{user.GID}, user.AdditionalGids...)
		}
	default:
		return nil, fmt.Errorf("invalid supplemental groups policy %q: want Merge or Strict: %w", hc.SupplementalGroupsPolicy, errdefs.ErrInvalidArgument)
	}
	p.User = specs.User{UID: user.UID, GID: user.GID, AdditionalGids: user.AdditionalGids}
	for _, g := range hc.GroupAdd {
		gid, err := resolveGroup(in.Rootfs, g)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(p.User.AdditionalGids, gid) {
			p.User.AdditionalGids = append(p.User.AdditionalGids, gid)
		}
	}
	if hc.OomScoreAdj != 0 {
		if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
			return nil, fmt.Errorf("invalid --oom-score-adj %d: the range is -1000 to 1000: %w", hc.OomScoreAdj, errdefs.ErrInvalidArgument)
		}
		adj := hc.OomScoreAdj
		p.OOMScoreAdj = &adj
	}

	p.Cwd = c.WorkingDir
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	if !path.IsAbs(p.Cwd) {
		return nil, fmt.Errorf("invalid --workdir %q: not an absolute path: %w", p.Cwd, errdefs.ErrInvalidArgument)
	}

	var initMount []specs.Mount
	if hc.Init != nil && *hc.Init {
		if in.InitPath == "" {
			return nil, fmt.Errorf("--init: no init binary is configured: %w", errdefs.ErrFailedPrecondition)
		}
		args = append([]string{initDestination, "--"}, args...)
		initMount = []specs.Mount{{Destination: initDestination, Type: "bind", Source: in.InitPath, Options: []string{"bind", "ro", "nosuid", "nodev"}}}
	}
	p.Args = args

	if err := setNamespaces(s, in); err != nil {
		return nil, err
	}
	hostname := c.Hostname
	if hc.UTSMode == "host" && hostname == "" {
		hostname, _ = os.Hostname()
	}
	p.Env = containerEnv(c, hostname, user.Home)

	mounts, err := buildMounts(in, initMount)
	if err != nil {
		return nil, err
	}
	s.Mounts = mounts

	if hc.Privileged {
		devs, err := hostDevices(ctx, "/dev")
		if err != nil {
			return nil, err
		}
		s.Linux.Devices = devs
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	}
	if len(hc.Devices) > 0 {
		devs, rules, err := mappedDevices(ctx, hc.Devices)
		if err != nil {
			return nil, err
		}
		addDevices(s, devs)
		s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, rules...)
	}
	if hc.MaskedPaths != nil {
		s.Linux.MaskedPaths = slices.Clone(hc.MaskedPaths)
	}
	if hc.ReadonlyPaths != nil {
		s.Linux.ReadonlyPaths = slices.Clone(hc.ReadonlyPaths)
	}

	switch {
	case hc.Privileged || sec.seccomp == "unconfined":
		// Docker: --privileged runs without a filter, whatever profile
		// was named.
		s.Linux.Seccomp = nil
	case in.SeccompProfile != "":
		prof, err := parseDockerSeccomp([]byte(in.SeccompProfile), caps, runtime.GOARCH, kernelRelease())
		if err != nil {
			return nil, err
		}
		s.Linux.Seccomp = prof
	case sec.seccomp == "custom":
		return nil, fmt.Errorf("--security-opt seccomp=%s: the profile's content was not given: %w", sec.seccompFile, errdefs.ErrInvalidArgument)
	default:
		s.Linux.Seccomp = seccomp.DefaultProfileFor(caps)
	}

	res, err := buildResources(hc.Resources, currentHostLimits())
	if err != nil {
		return nil, err
	}
	res.Devices = s.Linux.Resources.Devices
	s.Linux.Resources = res

	sysctl, err := validateSysctls(hc)
	if err != nil {
		return nil, err
	}
	s.Linux.Sysctl = sysctl
	s.Linux.CgroupsPath = in.CgroupsPath
	return s, nil
}

// containerEnv is Docker's CreateDaemonEnvironment: PATH, HOSTNAME and
// TERM (with a terminal) first, each overridable by the Config's Env, and
// HOME from passwd when the Env has none.
func containerEnv(c Config, hostname, home string) []string {
	base := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + hostname}
	if c.Tty {
		base = append(base, "TERM=xterm")
	}
	env := mergeEnv(base, c.Env)
	if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, "HOME=") }) {
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}
	return env
}

// securityOpts are the parsed --security-opt values.
type securityOpts struct {
	noNewPrivileges bool
	seccomp         string // "" (default), "unconfined" or "custom"
	seccompFile     string
}

// parseSecurityOpts reads Docker's --security-opt forms, "key=value" and
// the older "key:value".
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var so securityOpts
	for _, o := range opts {
		if o == "no-new-privileges" {
			so.noNewPrivileges = true
			continue
		}
		key, value, ok := strings.Cut(o, "=")
		if !ok {
			key, value, ok = strings.Cut(o, ":")
		}
		switch {
		case ok && key == "no-new-privileges":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return so, fmt.Errorf("invalid --security-opt %q: no-new-privileges takes true or false: %w", o, errdefs.ErrInvalidArgument)
			}
			so.noNewPrivileges = b
		case ok && key == "seccomp" && value == "unconfined":
			so.seccomp, so.seccompFile = "unconfined", ""
		case ok && key == "seccomp" && (value == "builtin" || value == "default"):
			so.seccomp, so.seccompFile = "", ""
		case ok && key == "monitor" && value != "": // secmon.go
		case ok && key == "seccomp" && value != "":
			so.seccomp, so.seccompFile = "custom", value
		default:
			return so, fmt.Errorf("invalid --security-opt %q: supported are no-new-privileges[=true|false], seccomp=unconfined, seccomp=PROFILE and monitor=RULES: %w", o, errdefs.ErrInvalidArgument)
		}
	}
	return so, nil
}

// tweakCapabilities is Docker's TweakCapabilities: Docker's 14 defaults,
// minus --cap-drop, plus --cap-add; "ALL" in --cap-add gives every
// capability but the dropped ones, "ALL" in --cap-drop leaves only the
// added ones. --privileged gives all. "All" is the capabilities this
// process's bounding set holds, as Podman does, not every name Docker
// knows: a runtime cannot grant what its caller lacks, and fails the start
// with a bare EPERM if asked to.
func tweakCapabilities(adds, drops []string, privileged bool) ([]string, error) {
	add, err := normalizeCaps(adds, "--cap-add")
	if err != nil {
		return nil, err
	}
	drop, err := normalizeCaps(drops, "--cap-drop")
	if err != nil {
		return nil, err
	}
	all := hostCapabilities()
	for _, c := range add {
		if c != "ALL" && !slices.Contains(all, c) {
			return nil, fmt.Errorf("invalid --cap-add %s: this host does not give it to berth (not in the bounding set): %w", c, errdefs.ErrFailedPrecondition)
		}
	}
	var caps []string
	switch {
	case privileged:
		caps = all
	case slices.Contains(add, "ALL"):
		for _, c := range all {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
	case slices.Contains(drop, "ALL"):
		caps = add
	default:
		for _, c := range seccomp.DockerDefaultCaps() {
			if !slices.Contains(drop, c) {
				caps = append(caps, c)
			}
		}
		caps = append(caps, add...)
	}
	var out []string
	for _, c := range caps {
		if c != "ALL" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// hostCapabilities are the capabilities in this process's bounding set,
// in the spec's CAP_ form, sorted.
func hostCapabilities() []string {
	var out []string
	for _, c := range capability.ListKnown() {
		if ok, err := capability.GetBound(c); err == nil && ok {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	sort.Strings(out)
	return out
}

// normalizeCaps turns "net_admin", "CAP_NET_ADMIN", "Net_Admin" into
// "CAP_NET_ADMIN" and checks the name is a capability.
func normalizeCaps(names []string, flag string) ([]string, error) {
	known := oci.KnownCapabilities()
	var out []string
	for _, n := range names {
		c := strings.ToUpper(strings.TrimSpace(n))
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if c != "ALL" && !slices.Contains(known, c) {
			return nil, fmt.Errorf("invalid %s: unknown capability %q: %w", flag, n, errdefs.ErrInvalidArgument)
		}
		out = append(out, c)
	}
	return out, nil
}

// setNamespaces sets the namespaces, hostname and domainname.
func setNamespaces(s *specs.Spec, in SpecInput) error {
	hc := in.HostConfig
	nss := []specs.LinuxNamespace{{Type: specs.MountNamespace}}
	add := func(t specs.LinuxNamespaceType, mode, nsPath, flag string) error {
		switch {
		case nsPath != "":
			nss = append(nss, specs.LinuxNamespace{Type: t, Path: nsPath})
		case mode == "host":
		case strings.HasPrefix(mode, "container:"):
			// The engine resolves the other container into a path;
			// a private namespace here would silently ignore the flag.
			return fmt.Errorf("%s %s: the namespace to join was not resolved: %w", flag, mode, errdefs.ErrFailedPrecondition)
		default:
			nss = append(nss, specs.LinuxNamespace{Type: t})
		}
		return nil
	}
	// Only "host" and "container:ID" say anything about the namespace;
	// bridge, none and network names all get a new one (or NetNSPath).
	netMode := hc.NetworkMode
	if netMode != "host" && !strings.HasPrefix(netMode, "container:") {
		netMode = ""
	}
	for _, ns := range []struct {
		t                  specs.LinuxNamespaceType
		mode, path, flagNm string
	}{
		{specs.PIDNamespace, hc.PidMode, in.PIDNSPath, "--pid"},
		{specs.IPCNamespace, hc.IpcMode, in.IPCNSPath, "--ipc"},
		{specs.UTSNamespace, hc.UTSMode, in.UTSNSPath, "--uts"},
		{specs.NetworkNamespace, netMode, in.NetNSPath, "--network"},
	} {
		if err := add(ns.t, ns.mode, ns.path, ns.flagNm); err != nil {
			return err
		}
	}
	// Docker gives a private cgroup namespace on cgroup v2 only: on v1 it
	// would hide the paths tools expect.
	if cgroupV2() {
		nss = append(nss, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	s.Linux.Namespaces = nss
	// The hostname is set only in a UTS namespace of the container's own;
	// a joined one belongs to its sandbox.
	s.Hostname, s.Domainname = "", ""
	if hc.UTSMode != "host" && in.UTSNSPath == "" {
		s.Hostname, s.Domainname = in.Config.Hostname, in.Config.Domainname
	}
	return nil
}

func cgroupV2() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// buildMounts is Docker's mount list: the defaults, minus those a user
// mount replaces, then the user's mounts, parents before children.
func buildMounts(in SpecInput, extra []specs.Mount) ([]specs.Mount, error) {
	hc := in.HostConfig
	var user []specs.Mount
	for _, dest := range sortedKeys(hc.Tmpfs) {
		m, err := tmpfsMount(dest, hc.Tmpfs[dest], "--tmpfs")
		if err != nil {
			return nil, err
		}
		user = append(user, m)
	}
	for _, hm := range hc.Mounts {
		if hm.Type != "tmpfs" {
			continue // bind and volume mounts come resolved in in.Mounts
		}
		var opts []string
		if hm.TmpfsSize < 0 {
			return nil, fmt.Errorf("invalid --mount type=tmpfs,target=%s: negative size: %w", hm.Target, errdefs.ErrInvalidArgument)
		}
		if hm.TmpfsSize > 0 {
			opts = append(opts, fmt.Sprintf("size=%d", hm.TmpfsSize))
		}
		if hm.TmpfsMode != 0 {
			opts = append(opts, fmt.Sprintf("mode=%o", hm.TmpfsMode&0o7777))
		}
		if hm.ReadOnly {
			opts = append(opts, "ro")
		}
		m, err := tmpfsMount(hm.Target, strings.Join(opts, ","), "--mount type=tmpfs")
		if err != nil {
			return nil, err
		}
		user = append(user, m)
	}
	for _, m := range in.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("mount %s on %q: the destination is not an absolute path: %w", m.Source, m.Destination, errdefs.ErrInvalidArgument)
		}
		user = append(user, m)
	}
	user = append(user, extra...)

	seen := map[string]bool{}
	for i := range user {
		d := path.Clean(user[i].Destination)
		if d == "/" {
			return nil, fmt.Errorf("mount %s: the destination cannot be /: %w", user[i].Source, errdefs.ErrInvalidArgument)
		}
		if seen[d] {
			return nil, fmt.Errorf("duplicate mount point %s: %w", d, errdefs.ErrInvalidArgument)
		}
		seen[d] = true
		user[i].Destination = d
	}
	// Parents first, so a bind under a tmpfs lands on the tmpfs.
	sort.SliceStable(user, func(i, j int) bool {
		return strings.Count(user[i].Destination, "/") < strings.Count(user[j].Destination, "/")
	})

	var out []specs.Mount
	for _, m := range defaultMounts(hc) {
		if seen[m.Destination] || seen["/dev"] && strings.HasPrefix(m.Destination, "/dev/") {
			continue
		}
		out = append(out, m)
	}
	return append(out, user...), nil
}

// defaultMounts are Docker's: the runtime's usual file systems with /proc
// nosuid,noexec,nodev, a 64 MiB /dev/shm, and /sys and the cgroup file
// system read-only unless --privileged. With --ipc host the host's
// /dev/shm and /dev/mqueue are bound; with --ipc none there is no
// /dev/shm.
func defaultMounts(hc HostConfig) []specs.Mount {
	var out []specs.Mount
	for _, m := range oci.DefaultMounts() {
		switch m.Destination {
		case "/proc":
			m.Options = []string{"nosuid", "noexec", "nodev"}
		case "/dev/shm":
			switch hc.IpcMode {
			case "none":
				continue
			case "host":
				m = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
			default:
				m.Options = []string{"nosuid", "noexec", "nodev", "mode=1777", fmt.Sprintf("size=%d", defaultShmSize)}
			}
		case "/dev/mqueue":
			// A host without /dev/mqueue mounted keeps the default: an
			// mqueue file system mounted from the host's IPC namespace,
			// which the container shares, shows the same queues.
			if hc.IpcMode == "host" && fileExists("/dev/mqueue") {
				m = specs.Mount{Destination: "/dev/mqueue", Type: "bind", Source: "/dev/mqueue", Options: []string{"rbind", "nosuid", "noexec", "nodev"}}
			}
		case "/sys", "/sys/fs/cgroup":
			if hc.Privileged {
				m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				m.Options = append(m.Options, "rw")
			}
		}
		out = append(out, m)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// tmpfsFlagPairs are the mount flags an option may set or clear; a later
// option of a pair replaces an earlier one (Docker's MergeTmpfsOptions).
var tmpfsFlagPairs = [][]string{
	{"ro", "rw"}, {"exec", "noexec"}, {"suid", "nosuid"}, {"dev", "nodev"},
	{"atime", "noatime"}, {"diratime", "nodiratime"}, {"relatime", "norelatime"},
	{"strictatime", "nostrictatime"}, {"sync", "async"}, {"dirsync"}, {"mand", "nomand"},
	{"private", "rprivate", "shared", "rshared", "slave", "rslave"},
}

// tmpfsDataKeys are the tmpfs file system options Docker accepts.
var tmpfsDataKeys = []string{"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}

// tmpfsMount makes a tmpfs mount with Docker's defaults (noexec, nosuid,
// nodev) and the user's options, which override them.
func tmpfsMount(dest, options, flag string) (specs.Mount, error) {
	if !path.IsAbs(dest) || path.Clean(dest) == "/" {
		return specs.Mount{}, fmt.Errorf("invalid %s %q: the destination must be an absolute path other than /: %w", flag, dest, errdefs.ErrInvalidArgument)
	}
	opts := []string{"noexec", "nosuid", "nodev"}
	if options != "" {
		opts = append(opts, strings.Split(options, ",")...)
	}
	var merged []string
	replace := func(match func(string) bool, o string) {
		if i := slices.IndexFunc(merged, match); i >= 0 {
			merged[i] = o
			return
		}
		merged = append(merged, o)
	}
	for _, o := range opts {
		if pair := slices.IndexFunc(tmpfsFlagPairs, func(p []string) bool { return slices.Contains(p, o) }); pair >= 0 {
			p := tmpfsFlagPairs[pair]
			replace(func(m string) bool { return slices.Contains(p, m) }, o)
			continue
		}
		key, value, ok := strings.Cut(o, "=")
		if !ok || !slices.Contains(tmpfsDataKeys, key) || !validTmpfsValue(key, value) {
			return specs.Mount{}, fmt.Errorf("invalid %s %s: bad option %q: %w", flag, dest, o, errdefs.ErrInvalidArgument)
		}
		replace(func(m string) bool { return strings.HasPrefix(m, key+"=") }, o)
	}
	return specs.Mount{Destination: path.Clean(dest), Type: "tmpfs", Source: "tmpfs", Options: merged}, nil
}

// validTmpfsValue checks a tmpfs data option's value, so a bad one is
// named now rather than failing the mount at start.
func validTmpfsValue(key, value string) bool {
	if value == "" {
		return false
	}
	switch key {
	case "size", "nr_blocks", "nr_inodes":
		v := value
		if key == "size" && strings.HasSuffix(v, "%") {
			v = strings.TrimSuffix(v, "%")
		} else if n := len(v); n > 1 && strings.ContainsRune("kKmMgGtTpPeE", rune(v[n-1])) {
			v = v[:n-1]
		}
		_, err := strconv.ParseUint(v, 10, 64)
		return err == nil
	case "mode":
		m, err := strconv.ParseUint(value, 8, 32)
		return err == nil && m <= 0o7777
	case "uid", "gid":
		_, err := strconv.ParseUint(value, 10, 32)
		return err == nil
	case "mpol":
		// "interleave:0-3", "prefer:1", "local"...
		return strings.Trim(value, "abcdefghijklmnopqrstuvwxyz0123456789:-=/") == ""
	}
	return false
}

// maxHostDevices bounds the walk of the host's /dev for --privileged.
const maxHostDevices = 16384

// hostDevices lists the host's character and block devices under dir for a
// privileged container, as runc's HostDevices: not following links, and
// skipping the directories each container gets its own of.
func hostDevices(ctx context.Context, dir string) ([]specs.LinuxDevice, error) {
	var devs []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission)) {
				return nil // raced with a removal, or unreadable: skip
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				if p != dir {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if d.Name() == "console" || d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		dev, ok := deviceFromStat(p, &st)
		if !ok {
			return nil
		}
		if len(devs) >= maxHostDevices {
			return fmt.Errorf("more than %d devices", maxHostDevices)
		}
		devs = append(devs, dev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the host's devices in %s for --privileged: %w", dir, err)
	}
	return devs, nil
}

// hostLimits are the host facts the resource checks depend on.
type hostLimits struct {
	cpus      int    // CPUs this process may run on
	onlineCPU string // /sys/devices/system/cpu/online, "0-1"
	swap      bool   // the memory controller limits swap
}

func currentHostLimits() hostLimits {
	h := hostLimits{cpus: runtime.NumCPU()}
	if b, err := os.ReadFile("/sys/devices/system/cpu/online"); err == nil {
		h.onlineCPU = strings.TrimSpace(string(b))
	}
	if cgroupV2() {
		// The root cgroup has no memory.swap.max; any child shows
		// whether swap accounting is on.
		m, _ := filepath.Glob("/sys/fs/cgroup/*/memory.swap.max")
		h.swap = len(m) > 0
	} else {
		_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
		h.swap = err == nil
	}
	return h
}

// Docker's bounds.
const (
	minMemory    = 6 << 20
	minCPUShares = 2
	maxCPUShares = 262144
	cpuPeriod    = 100000 // µs, Docker's --cpus period
)

// buildResources converts Docker's Resources into the spec's, with
// Docker's checks and messages.
func buildResources(r Resources, host hostLimits) (*specs.LinuxResources, error) {
	bad := func(flag, format string, a ...any) error {
		return fmt.Errorf("invalid %s: %s: %w", flag, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	out := &specs.LinuxResources{}
	switch {
	case r.Memory != 0 && r.Memory < minMemory:
		return nil, bad("--memory", "Minimum memory limit allowed is 6MB")
	case r.MemorySwap < -1:
		return nil, bad("--memory-swap", "%d is below -1 (unlimited)", r.MemorySwap)
	case r.Memory == 0 && r.MemorySwap > 0:
		return nil, bad("--memory-swap", "You should always set the Memory limit when using Memoryswap limit")
	case r.Memory > 0 && r.MemorySwap > 0 && r.MemorySwap < r.Memory:
		return nil, bad("--memory-swap", "Minimum memoryswap limit should be larger than memory limit")
	case r.MemoryReservation < 0:
		return nil, bad("--memory-reservation", "negative value %d", r.MemoryReservation)
	case r.MemoryReservation > 0 && r.MemoryReservation < minMemory:
		return nil, bad("--memory-reservation", "Minimum memory reservation allowed is 6MB")
	case r.Memory > 0 && r.MemoryReservation > r.Memory:
		return nil, bad("--memory-reservation", "Minimum memory limit can not be less than memory reservation limit")
	}
	if r.Memory > 0 || r.MemoryReservation > 0 {
		out.Memory = &specs.LinuxMemory{}
	}
	if r.Memory > 0 {
		limit := r.Memory
		out.Memory.Limit = &limit
		swap := r.MemorySwap
		if swap == 0 {
			swap = 2 * r.Memory
		}
		// Without swap accounting Docker limits memory only (a swap
		// value would fail the start).
		if host.swap {
			out.Memory.Swap = &swap
		}
	}
	if r.MemoryReservation > 0 {
		res := r.MemoryReservation
		out.Memory.Reservation = &res
	}

	if r.NanoCPUs != 0 {
		if r.NanoCPUs < 0 || r.NanoCPUs < 1e7 || r.NanoCPUs > int64(host.cpus)*1e9 {
			return nil, bad("--cpus", "range of CPUs is from 0.01 to %d.00, as there are only %d CPUs available", host.cpus, host.cpus)
		}
		period, quota := uint64(cpuPeriod), r.NanoCPUs*cpuPeriod/1e9
		out.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota}
	}
	if r.CPUShares < 0 {
		return nil, bad("--cpu-shares", "negative value %d", r.CPUShares)
	}
	if r.CPUShares > 0 {
		// Docker clamps to the kernel's range rather than failing.
		shares := uint64(min(max(r.CPUShares, minCPUShares), maxCPUShares))
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		out.CPU.Shares = &shares
	}
	if r.CPUSetCPUs != "" {
		want, err := parseCPUList(r.CPUSetCPUs)
		if err != nil {
			return nil, bad("--cpuset-cpus", "%q: %v", r.CPUSetCPUs, err)
		}
		if have, err := parseCPUList(host.onlineCPU); err == nil && !cpusWithin(want, have) {
			return nil, bad("--cpuset-cpus", "Requested CPUs are not available - requested %s, available: %s", r.CPUSetCPUs, host.onlineCPU)
		}
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		out.CPU.Cpus = r.CPUSetCPUs
	}
	if r.CPUQuota != 0 || r.CPUPeriod != 0 {
		if r.NanoCPUs != 0 {
			return nil, bad("--cpu-quota", "conflicts with --cpus")
		}
		if r.CPUPeriod < 0 || (r.CPUPeriod > 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000)) {
			return nil, bad("--cpu-period", "%d is outside 1000 to 1000000 microseconds", r.CPUPeriod)
		}
		if r.CPUQuota > 0 && r.CPUQuota < 1000 {
			return nil, bad("--cpu-quota", "%d is below the minimum of 1000 microseconds", r.CPUQuota)
		}
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		if r.CPUPeriod > 0 {
			period := uint64(r.CPUPeriod)
			out.CPU.Period = &period
		}
		if r.CPUQuota != 0 {
			quota := r.CPUQuota
			out.CPU.Quota = &quota
		}
	}
	if r.CPUSetMems != "" {
		if _, err := parseCPUList(r.CPUSetMems); err != nil {
			return nil, bad("--cpuset-mems", "%q: %v", r.CPUSetMems, err)
		}
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		out.CPU.Mems = r.CPUSetMems
	}
	if r.PidsLimit != nil && *r.PidsLimit > 0 {
		limit := *r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &limit}
	}
	return out, nil
}

// maxCPU bounds CPU numbers in a cpuset: the kernel's NR_CPUS is at most
// 8192.
const maxCPU = 8192

// parseCPUList reads a cpuset list ("0-3,5") as ranges, never expanding it.
func parseCPUList(s string) ([][2]int, error) {
	if s == "" {
		return nil, errors.New("empty list")
	}
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= maxCPU || strings.HasPrefix(lo, "+") || strings.HasPrefix(hi, "+") {
			return nil, fmt.Errorf("bad range %q", part)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

func cpusWithin(want, have [][2]int) bool {
	for _, w := range want {
		for cpu := w[0]; cpu <= w[1]; cpu++ {
			if !slices.ContainsFunc(have, func(h [2]int) bool { return cpu >= h[0] && cpu <= h[1] }) {
				return false
			}
		}
	}
	return true
}

// namespacedSysctls are the kernel.* sysctls Docker allows: those of the
// IPC namespace.
var namespacedSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// validateSysctls allows Docker's namespaced sysctls only, and only when
// the container has that namespace: anything else would change the host.
func validateSysctls(hc HostConfig) (map[string]string, error) {
	if len(hc.Sysctls) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, k := range sortedKeys(hc.Sysctls) {
		v := hc.Sysctls[k]
		bad := func(why string) error {
			return fmt.Errorf("invalid --sysctl %s=%s: %s: %w", k, v, why, errdefs.ErrInvalidArgument)
		}
		// The runtime writes /proc/sys/<k with / for .>: no component
		// may be empty or hold a slash, or it could climb out.
		if strings.Contains(k, "/") || slices.Contains(strings.Split(k, "."), "") || strings.ContainsAny(v, "\n\x00") {
			return nil, bad("malformed name or value")
		}
		switch {
		case strings.HasPrefix(k, "net."):
			if hc.NetworkMode == "host" {
				return nil, bad("not allowed in the host's network namespace")
			}
		case slices.Contains(namespacedSysctls, k), strings.HasPrefix(k, "fs.mqueue."):
			if hc.IpcMode == "host" {
				return nil, bad("not allowed in the host's IPC namespace")
			}
		default:
			return nil, bad("not a namespaced sysctl (allowed: net.*, fs.mqueue.*, kernel.msg*, kernel.sem, kernel.shm*)")
		}
		out[k] = v
	}
	return out, nil
}

// maxSeccompProfile bounds a custom profile; Docker's default is 20 KB.
const maxSeccompProfile = 1 << 20

// dockerSeccompFilter is a rule's includes/excludes in Docker's profile.
type dockerSeccompFilter struct {
	Caps      []string `json:"caps"`
	Arches    []string `json:"arches"`
	MinKernel string   `json:"minKernel"`
}

// dockerSeccompProfile is Docker's seccomp profile format
// (github.com/moby/profiles/seccomp), a superset of the spec's.
type dockerSeccompProfile struct {
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet"`
	Architectures    []specs.Arch             `json:"architectures"`
	ListenerPath     string                   `json:"listenerPath"`
	ListenerMetadata string                   `json:"listenerMetadata"`
	Flags            []specs.LinuxSeccompFlag `json:"flags"`
	ArchMap          []struct {
		Arch      specs.Arch   `json:"architecture"`
		SubArches []specs.Arch `json:"subArchitectures"`
	} `json:"archMap"`
	Syscalls []struct {
		Name     string                   `json:"name"`
		Names    []string                 `json:"names"`
		Action   specs.LinuxSeccompAction `json:"action"`
		ErrnoRet *uint                    `json:"errnoRet"`
		Args     []specs.LinuxSeccompArg  `json:"args"`
		Includes *dockerSeccompFilter     `json:"includes"`
		Excludes *dockerSeccompFilter     `json:"excludes"`
	} `json:"syscalls"`
}

// goArchSeccomp maps GOARCH to Docker's architecture name (used in
// includes/excludes) and the spec's.
var goArchSeccomp = map[string]struct {
	docker string
	spec   specs.Arch
}{
	"386": {"x86", specs.ArchX86}, "amd64": {"amd64", specs.ArchX86_64},
	"arm": {"arm", specs.ArchARM}, "arm64": {"arm64", specs.ArchAARCH64},
	"loong64": {"loongarch64", specs.ArchLOONGARCH64}, "mips64": {"mips64", specs.ArchMIPS64},
	"mips64le": {"mipsel64", specs.ArchMIPSEL64}, "mipsle": {"mipsel", specs.ArchMIPSEL},
	"ppc64": {"ppc64", specs.ArchPPC64}, "ppc64le": {"ppc64le", specs.ArchPPC64LE},
	"riscv64": {"riscv64", specs.ArchRISCV64}, "s390x": {"s390x", specs.ArchS390X},
}

var seccompActions = []specs.LinuxSeccompAction{
	specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap,
	specs.ActErrno, specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify,
}

var seccompOps = []specs.LinuxSeccompOperator{
	specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
	specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual,
}

// parseDockerSeccomp reads a profile in Docker's format and resolves it,
// as Docker's LoadProfile does, for a container with bounding set caps on
// goarch under kernel release kernel: rules whose includes do not hold or
// whose excludes do are left out, and archMap keeps only this machine's
// architecture and its sub-architectures.
func parseDockerSeccomp(data []byte, caps []string, goarch, kernel string) (*specs.LinuxSeccomp, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("invalid seccomp profile: %s: %w", fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if len(data) > maxSeccompProfile {
		return nil, bad("%d bytes, more than the %d allowed", len(data), maxSeccompProfile)
	}
	var p dockerSeccompProfile
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, bad("%v", err)
	}
	if p.DefaultAction == "" {
		return nil, bad("defaultAction: missing")
	}
	if !slices.Contains(seccompActions, p.DefaultAction) {
		return nil, bad("defaultAction: unknown action %q", p.DefaultAction)
	}
	if len(p.Architectures) > 0 && len(p.ArchMap) > 0 {
		return nil, bad("both 'architectures' and 'archMap' are specified, use either 'architectures' or 'archMap'")
	}
	arch := goArchSeccomp[goarch]
	out := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		DefaultErrnoRet:  p.DefaultErrnoRet,
		Architectures:    p.Architectures,
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
		Flags:            p.Flags,
	}
	for _, a := range p.ArchMap {
		if arch.spec != "" && a.Arch == arch.spec {
			out.Architectures = append(out.Architectures, a.Arch)
			out.Architectures = append(out.Architectures, a.SubArches...)
		}
	}
	for i, sc := range p.Syscalls {
		field := fmt.Sprintf("syscalls[%d]", i)
		names := sc.Names
		if sc.Name != "" {
			if len(names) > 0 {
				return nil, bad("%s: use either 'name' or 'names'", field)
			}
			names = []string{sc.Name}
		}
		if len(names) == 0 || slices.Contains(names, "") {
			return nil, bad("%s.names: missing or empty", field)
		}
		if !slices.Contains(seccompActions, sc.Action) {
			return nil, bad("%s.action: unknown action %q", field, sc.Action)
		}
		for j, a := range sc.Args {
			if a.Index >= 6 {
				return nil, bad("%s.args[%d].index: %d is not below 6", field, j, a.Index)
			}
			if !slices.Contains(seccompOps, a.Op) {
				return nil, bad("%s.args[%d].op: unknown operator %q", field, j, a.Op)
			}
		}
		in, err := seccompFilterHolds(sc.Includes, caps, arch.docker, kernel, true)
		if err != nil {
			return nil, bad("%s.includes: %v", field, err)
		}
		ex, err := seccompFilterHolds(sc.Excludes, caps, arch.docker, kernel, false)
		if err != nil {
			return nil, bad("%s.excludes: %v", field, err)
		}
		if !in || ex {
			continue
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{
			Names: slices.Clone(names), Action: sc.Action, ErrnoRet: sc.ErrnoRet, Args: sc.Args,
		})
	}
	return out, nil
}

// seccompFilterHolds evaluates an includes (all conditions must hold) or
// an excludes (any condition excludes) filter; a nil or empty filter
// includes and does not exclude.
func seccompFilterHolds(f *dockerSeccompFilter, caps []string, arch, kernel string, includes bool) (bool, error) {
	if f == nil {
		return includes, nil
	}
	var kernelOK bool
	if f.MinKernel != "" {
		want, ok := parseKernelVersion(f.MinKernel)
		if !ok {
			return false, fmt.Errorf("minKernel: %q is not a kernel version such as 4.8", f.MinKernel)
		}
		have, _ := parseKernelVersion(kernel)
		kernelOK = have[0] > want[0] || have[0] == want[0] && have[1] >= want[1]
	}
	hasCap := func(c string) bool {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		return slices.Contains(caps, c)
	}
	if includes {
		if len(f.Arches) > 0 && !slices.Contains(f.Arches, arch) {
			return false, nil
		}
		for _, c := range f.Caps {
			if !hasCap(c) {
				return false, nil
			}
		}
		return f.MinKernel == "" || kernelOK, nil
	}
	if slices.Contains(f.Arches, arch) || slices.ContainsFunc(f.Caps, hasCap) {
		return true, nil
	}
	return f.MinKernel != "" && kernelOK, nil
}

// parseKernelVersion reads "6.1" or "6.1.0-13-amd64" as major, minor.
func parseKernelVersion(s string) ([2]int, bool) {
	major, rest, ok := strings.Cut(s, ".")
	if !ok {
		return [2]int{}, false
	}
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		rest = rest[:i]
	}
	a, err1 := strconv.Atoi(major)
	b, err2 := strconv.Atoi(rest)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return [2]int{}, false
	}
	return [2]int{a, b}, true
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}
