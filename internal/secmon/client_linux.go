package secmon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/errdefs"
	"github.com/berth-project/berth/internal/secmon/kern"
	"github.com/berth-project/berth/internal/secmon/landlock"
)

// AnnotationRules is the pod annotation (CRI) or container label whose
// value is a rules file's content, added to the container's rules.
const AnnotationRules = "berth.dev/secmon-rules"

// SecurityOptKey is the `--security-opt monitor=FILE` key.
const SecurityOptKey = "monitor"

// Options place the agent; zero values take the defaults.
type Options struct {
	AgentDir string // DefaultAgentDir
	PinDir   string // DefaultPinDir
	// AgentBin is the berth-secmon binary (the hook and the agent).
	AgentBin string
}

func (o Options) withDefaults() Options {
	if o.AgentDir == "" {
		o.AgentDir = DefaultAgentDir
	}
	if o.PinDir == "" {
		o.PinDir = DefaultPinDir
	}
	return o
}

// GlobalRulesPath is the engine's global rules file.
func GlobalRulesPath(root string) string { return filepath.Join(root, "secmon.yaml") }

// AlertsPath is the engine's alerts log.
func AlertsPath(root string) string { return filepath.Join(root, "secmon", "alerts.jsonl") }

// LoadRulesFile parses a rules file; source names it in errors.
func LoadRulesFile(path string) (*RuleSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("monitor rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRulesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("monitor rules %s: %w", path, err)
	}
	return ParseRules(b, path)
}

// ContainerRules gathers a container's rules: the engine's global file
// (ROOT/secmon.yaml, if present), the files of --security-opt monitor=,
// and the AnnotationRules label. nil when there are none.
func ContainerRules(root string, securityOpts []string, labels map[string]string) (*RuleSet, error) {
	var sets []*RuleSet
	if rs, err := LoadRulesFile(GlobalRulesPath(root)); err == nil {
		sets = append(sets, rs)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, o := range securityOpts {
		if f, ok := strings.CutPrefix(o, SecurityOptKey+"="); ok {
			rs, err := LoadRulesFile(f)
			if err != nil {
				return nil, fmt.Errorf("--security-opt %s: %w", o, err)
			}
			sets = append(sets, rs)
		}
	}
	if v := labels[AnnotationRules]; v != "" {
		rs, err := ParseRules([]byte(v), AnnotationRules)
		if err != nil {
			return nil, err
		}
		sets = append(sets, rs)
	}
	return Merge(sets...)
}

// Prepare readies a container with rules before its creation: it writes
// the registration to regPath (in the container's run directory), adds
// the seccomp denies to the spec and the createRuntime hook that puts
// the rules in the kernel before the container's first instruction.
func Prepare(o Options, rs *RuleSet, reg Registration, regPath string, spec *specs.Spec) error {
	o = o.withDefaults()
	plan, err := rs.Plan(reg.Container)
	if err != nil {
		return err
	}
	if len(plan.Seccomp) > 0 {
		if err := addSeccompDenies(spec, plan.Seccomp); err != nil {
			return err
		}
	}
	if plan.NeedsLandlock() {
		v, err := plan.Landlock.Encode()
		if err != nil {
			return err
		}
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[landlock.Annotation] = v
	}
	if plan.Empty() {
		return nil
	}
	if o.AgentBin == "" {
		return fmt.Errorf("monitor rules: no berth-secmon binary: %w", errdefs.ErrFailedPrecondition)
	}
	reg.Rules, reg.Webhook, reg.LSM = rs.Rules, rs.Webhook, plan.NeedsLSM()
	b, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(regPath, b); err != nil {
		return fmt.Errorf("monitor registration: %w", err)
	}
	if spec.Hooks == nil {
		spec.Hooks = &specs.Hooks{}
	}
	timeout := 30
	spec.Hooks.CreateRuntime = append(spec.Hooks.CreateRuntime, specs.Hook{
		Path:    o.AgentBin,
		Args:    []string{"berth-secmon", "hook", "--agent-dir", o.AgentDir, "--pin-dir", o.PinDir, regPath},
		Timeout: &timeout,
	})
	return nil
}

// addSeccompDenies makes the denied system calls fail in the spec's
// seccomp profile (see mergeSeccompDenies); without a profile
// (--privileged, seccomp=unconfined), in one that allows everything else.
func addSeccompDenies(spec *specs.Spec, denies []SeccompDeny) error {
	if err := initCallsDenied(spec, denies); err != nil {
		return err
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	if spec.Linux.Seccomp == nil {
		spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	}
	return mergeSeccompDenies(spec.Linux.Seccomp, denies)
}

// initCallsDenied refuses denies that would stop the container from
// starting. Without no_new_privs (or with a notify listener) Berth's
// runtime, as runc, loads the filter while it still has CAP_SYS_ADMIN,
// before it switches to the container's user: setresgid(gid, gid, gid),
// setresuid(uid, uid, uid) and capset then run under the filter.
func initCallsDenied(spec *specs.Spec, denies []SeccompDeny) error {
	p := spec.Process
	if p == nil || (p.NoNewPrivileges && !hasNotify(spec)) {
		return nil // the filter is loaded right before execve
	}
	uid, gid := uint64(p.User.UID), uint64(p.User.GID)
	calls := []struct {
		name string
		args [6]uint64
		show string
	}{
		{"setresgid", [6]uint64{gid, gid, gid}, fmt.Sprintf("setresgid(%d, %d, %d)", gid, gid, gid)},
		{"setresuid", [6]uint64{uid, uid, uid}, fmt.Sprintf("setresuid(%d, %d, %d)", uid, uid, uid)},
		{"capset", [6]uint64{}, "capset"},
	}
	for _, d := range denies {
		for _, c := range calls {
			if !slices.Contains(d.Syscalls, c.name) {
				continue
			}
			lists, conditional := d.When[c.name]
			hit := !conditional || c.name == "capset" // its arguments are pointers
			for _, args := range lists {
				hit = hit || argsMatch(args, c.args)
			}
			if hit {
				return fmt.Errorf("monitor rule %q denies %s, which the runtime makes after it loads the seccomp filter, to switch to the container's user: the container would not start; run it with --security-opt no-new-privileges (the filter is then loaded last), or as another user: %w",
					d.Rule, c.show, errdefs.ErrFailedPrecondition)
			}
		}
	}
	return nil
}

func hasNotify(spec *specs.Spec) bool {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return false
	}
	for _, s := range spec.Linux.Seccomp.Syscalls {
		if s.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// call sends one request to the agent.
func call(ctx context.Context, dir string, req request) (response, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", filepath.Join(dir, "agent.sock"))
	if err != nil {
		return response{}, err
	}
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.SetDeadline(deadline)
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return response{}, err
	}
	var resp response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		return response{}, fmt.Errorf("the agent's answer: %w", err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// EnsureAgent starts the agent unless one answers: detached (its own
// session), so that it outlives the berth command that started it.
func EnsureAgent(ctx context.Context, o Options) error {
	o = o.withDefaults()
	if _, err := call(ctx, o.AgentDir, request{Op: "ping"}); err == nil {
		return nil
	}
	if err := os.MkdirAll(o.AgentDir, 0o700); err != nil {
		return fmt.Errorf("agent directory: %w", err)
	}
	// One starter at a time; the others find its agent.
	lock, err := lockFile(ctx, filepath.Join(o.AgentDir, "spawn.lock"), 30*time.Second)
	if err != nil {
		return fmt.Errorf("start the monitor agent: %w", err)
	}
	defer lock.Close()
	if _, err := call(ctx, o.AgentDir, request{Op: "ping"}); err == nil {
		return nil
	}
	if o.AgentBin == "" {
		return errors.New("start the monitor agent: no berth-secmon binary")
	}
	logf, err := os.OpenFile(filepath.Join(o.AgentDir, "agent.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(o.AgentBin, "agent", "--agent-dir", o.AgentDir, "--pin-dir", o.PinDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the monitor agent: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("the monitor agent exited at start (%v); see %s", err, filepath.Join(o.AgentDir, "agent.log"))
		case <-timeout:
			return fmt.Errorf("the monitor agent did not answer within 20s; see %s", filepath.Join(o.AgentDir, "agent.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if _, err := call(ctx, o.AgentDir, request{Op: "ping"}); err == nil {
				return nil
			}
		}
	}
}

// Hook is the createRuntime hook: state is the OCI state on its stdin.
// It finds the container's cgroup v2, starts the agent if needed and
// waits until the container's rules are in the kernel; an error fails
// the container's creation (never a container left unwatched).
func Hook(ctx context.Context, o Options, regPath string, state io.Reader) error {
	o = o.withDefaults()
	var st specs.State
	if err := json.NewDecoder(io.LimitReader(state, 1<<20)).Decode(&st); err != nil {
		return fmt.Errorf("the OCI state on stdin: %w", err)
	}
	b, err := os.ReadFile(regPath)
	if err != nil {
		return fmt.Errorf("monitor registration: %w", err)
	}
	var reg Registration
	if err := json.Unmarshal(b, &reg); err != nil {
		return fmt.Errorf("monitor registration %s: %w", regPath, err)
	}
	if st.ID != reg.Container.ID {
		return fmt.Errorf("monitor registration %s is for container %s, not %s", regPath, reg.Container.ID, st.ID)
	}
	dir, id, err := CgroupOf(st.Pid)
	if err != nil {
		return err
	}
	reg.CgroupDir, reg.CgroupID = dir, id
	for attempt := 0; ; attempt++ {
		if err := EnsureAgent(ctx, o); err != nil {
			return err
		}
		resp, err := call(ctx, o.AgentDir, request{Op: "add", Reg: &reg})
		if err == nil {
			if reg.LSM && !resp.LSM {
				return fmt.Errorf("monitor rules of container %s: the running agent (pid in %s) does not carry out exec and open denies with BPF LSM programs (a berth-secmon from before them): restart it (it restores its containers from %s): %w",
					reg.Container.ID, filepath.Join(o.AgentDir, "agent.pid"), filepath.Join(o.AgentDir, "containers"), errdefs.ErrFailedPrecondition)
			}
			return nil
		}
		// An agent that was exiting (its last container just went)
		// refuses; the next one takes the container.
		if attempt < 20 && (err.Error() == errAgentExiting.Error() || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist)) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return fmt.Errorf("monitor rules of container %s: %w", reg.Container.ID, err)
	}
}

// CgroupOf finds a process's cgroup on the v2 hierarchy (on a hybrid
// host, the one mounted at /sys/fs/cgroup/unified) and its id, which is
// what bpf_get_current_cgroup_id returns. A process in the v2 root is
// refused: rules there would apply to the whole host.
func CgroupOf(pid int) (string, uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return "", 0, fmt.Errorf("the container's cgroup: %w", err)
	}
	var rel string
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			rel = p
		}
	}
	if rel == "" || rel == "/" {
		return "", 0, fmt.Errorf("process %d has no cgroup of its own on the v2 hierarchy; the monitor filters by that cgroup: %w", pid, errdefs.ErrFailedPrecondition)
	}
	mnt := unifiedMount()
	if mnt == "" {
		return "", 0, fmt.Errorf("no cgroup v2 hierarchy mounted: %w", errdefs.ErrFailedPrecondition)
	}
	dir := filepath.Join(mnt, filepath.Clean(rel))
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "", 0, fmt.Errorf("the container's cgroup %s: %w", dir, err)
	}
	return dir, st.Ino, nil
}

// unifiedMount is where the cgroup v2 hierarchy is mounted: beside the v1
// ones on a hybrid host, or at /sys/fs/cgroup; "" if nowhere.
func unifiedMount() string {
	for _, m := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var sfs unix.Statfs_t
		if unix.Statfs(m, &sfs) == nil && sfs.Type == unix.CGROUP2_SUPER_MAGIC {
			return m
		}
	}
	return ""
}

// Release tells the agent a container is gone. Without an agent it
// removes the registration itself and, with none left, the pins.
func Release(ctx context.Context, o Options, id string) error {
	o = o.withDefaults()
	reg := filepath.Join(o.AgentDir, "containers", id+".json")
	if _, err := os.Stat(reg); errors.Is(err, os.ErrNotExist) {
		return nil // not registered (no rules): no agent to ask
	}
	if _, err := call(ctx, o.AgentDir, request{Op: "remove", ID: id}); err == nil {
		return nil
	}
	lock, err := lockFile(ctx, filepath.Join(o.AgentDir, "agent.lock"), 0)
	if err != nil {
		return nil // an agent is starting: its sweep drops the container
	}
	defer lock.Close()
	os.Remove(reg)
	if ents, _ := os.ReadDir(filepath.Join(o.AgentDir, "containers")); len(ents) == 0 {
		return kern.Unpin(o.PinDir)
	}
	return nil
}

// AgentStats reads the agent's counters.
func AgentStats(ctx context.Context, o Options) (Stats, error) {
	o = o.withDefaults()
	resp, err := call(ctx, o.AgentDir, request{Op: "stats"})
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	err = json.Unmarshal(resp.Stats, &st)
	return st, err
}

// Revive starts the agent when containers are registered and none
// answers (it was killed, or crashed): the kernel has gone on enforcing,
// and the events it queued meanwhile become alerts. `berth monitor events`
// calls it.
func Revive(ctx context.Context, o Options) error {
	o = o.withDefaults()
	ents, err := os.ReadDir(filepath.Join(o.AgentDir, "containers"))
	if err != nil || len(ents) == 0 {
		return nil
	}
	return EnsureAgent(ctx, o)
}

// CheckRuntime refuses a plan with Landlock denials for a runtime that
// does not apply them: runc and crun would ignore the annotation and run
// the container unprotected. The runtime says so in its `features`
// document (landlock.Annotation = landlock.FeatureValue). name is the
// runtime's configured name and bin its binary, for the message.
func CheckRuntime(ctx context.Context, plan *Plan, name, bin string) error {
	if !plan.NeedsLandlock() {
		return nil
	}
	var rules []string
	for _, x := range slices.Concat(plan.Landlock.Exec, plan.Landlock.Write) {
		if !slices.Contains(rules, x.Rule) {
			rules = append(rules, x.Rule)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "features").Output()
	var f struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err == nil {
		err = json.Unmarshal(out, &f)
	}
	if err != nil || f.Annotations[landlock.Annotation] != landlock.FeatureValue {
		return fmt.Errorf("monitor rules %s deny exec or open through Landlock, which runtime %q (%s) does not apply (only berth-runtime does): refusing the container rather than run it unprotected: %w",
			strings.Join(quoteAll(rules), ", "), name, bin, errdefs.ErrFailedPrecondition)
	}
	return nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = fmt.Sprintf("%q", s[i])
	}
	return out
}
