package secmon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"reflect"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"go.yaml.in/yaml/v3"

	"github.com/berth-project/berth/internal/errdefs"
)

// Event kinds a rule may name.
const (
	EventExec      = "exec"
	EventOpen      = "open"
	EventConnect   = "connect"
	EventAccept    = "accept"
	EventSetuid    = "setuid"
	EventPtrace    = "ptrace"
	EventMount     = "mount"
	EventModule    = "module"
	EventBPF       = "bpf"
	EventNamespace = "namespace"
	EventExit      = "exit"
)

// Actions a rule may take.
const (
	ActionAlert = "alert"
	ActionDeny  = "deny"
	ActionKill  = "kill"
)

// Scopes of a kill rule.
const (
	ScopeProcess   = "process"
	ScopeContainer = "container"
)

var eventKinds = []string{EventExec, EventOpen, EventConnect, EventAccept, EventSetuid, EventPtrace, EventMount, EventModule, EventBPF, EventNamespace, EventExit}

// Limits on a rules file, against a hostile or mistaken one.
const (
	maxRulesBytes     = 1 << 20
	maxRules          = 256
	maxConditionBytes = 4096
	maxNameBytes      = 128
)

// Rule is one rule as written in a rules file.
type Rule struct {
	Name      string `yaml:"name" json:"name"`
	Event     string `yaml:"event" json:"event"`
	Condition string `yaml:"condition" json:"condition"`
	Action    string `yaml:"action" json:"action"`
	// Scope is what a kill rule kills: "process" (the default, the
	// offending process, in the kernel) or "container" (then every
	// process of the container's cgroup too, by the agent through
	// cgroup.kill, right after).
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// Source names where the rule came from (a file, "--security-opt",
	// an annotation), for messages.
	Source string `yaml:"-" json:"source,omitempty"`
	// Line is the rule's line in its source.
	Line int `yaml:"-" json:"line,omitempty"`
}

// RuleSet is a parsed and type-checked list of rules.
type RuleSet struct {
	Rules []Rule
	// Webhook is the file's `webhook:` URL (the first of the merged
	// sets' that has one): each alert is POSTed there as JSON.
	Webhook  string
	programs []cel.Program
	asts     []*cel.Ast
	env      *cel.Env
	// host is what the kernel offers: Plan picks the mechanisms by it.
	host host
}

// Vars the conditions see, as CEL types (fields by their cel tags).
type (
	// ExecVars is `exec`.
	ExecVars struct {
		Path   string     `cel:"path"`
		Argv   []string   `cel:"argv"`
		Drift  bool       `cel:"drift"`
		Parent ParentVars `cel:"parent"`
	}
	// ParentVars is `exec.parent`, the process that ran the exec'ing
	// one: Name is its comm (from the kernel), Path its executable as
	// the container sees it (read by the agent, best effort: "" when the
	// parent has exited or is outside the container).
	ParentVars struct {
		Pid  int64  `cel:"pid"`
		Name string `cel:"name"`
		Path string `cel:"path"`
	}
	// ExitVars is `exit`, a process's end (its last thread): Code is
	// its exit status (0-255) when it exited, Signal the signal that
	// killed it (0 when it exited), Core whether that dumped core.
	ExitVars struct {
		Code   int64 `cel:"code"`
		Signal int64 `cel:"signal"`
		Core   bool  `cel:"core"`
	}
	// ConnectVars is `connect`.
	ConnectVars struct {
		Address  string `cel:"address"`
		Port     int64  `cel:"port"`
		Protocol string `cel:"protocol"`
	}
	// FileVars is `file`.
	FileVars struct {
		Path  string `cel:"path"`
		Write bool   `cel:"write"`
	}
	// SyscallVars is `syscall`, for the system call kinds (ptrace,
	// mount, module, bpf, namespace, setuid): its name and first four
	// arguments as integers.
	SyscallVars struct {
		Name string  `cel:"name"`
		Args []int64 `cel:"args"`
	}
	// ProcessVars is `process`, the acting process.
	ProcessVars struct {
		Pid  int64  `cel:"pid"`
		Path string `cel:"path"`
		UID  int64  `cel:"uid"`
	}
	// PodVars is `container.pod`.
	PodVars struct {
		Namespace string `cel:"namespace"`
		Name      string `cel:"name"`
	}
	// ContainerVars is `container`.
	ContainerVars struct {
		ID     string            `cel:"id"`
		Name   string            `cel:"name"`
		Image  string            `cel:"image"`
		Labels map[string]string `cel:"labels"`
		Pod    PodVars           `cel:"pod"`
	}
)

// Container is what the monitor knows of a container: the `container`
// variable of the rules and the fields of its alerts.
type Container struct {
	ID          string            `json:"id"`
	Name        string            `json:"name,omitempty"`
	Image       string            `json:"image,omitempty"`
	ImageDigest string            `json:"imageDigest,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Pod         *Pod              `json:"pod,omitempty"`
}

// Pod names the pod of a container run by the CRI server.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (c Container) vars() ContainerVars {
	v := ContainerVars{ID: c.ID, Name: c.Name, Image: c.Image, Labels: c.Labels}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if c.Pod != nil {
		v.Pod = PodVars{Namespace: c.Pod.Namespace, Name: c.Pod.Name}
	}
	return v
}

// newEnv is the CEL environment of conditions: the variables above and
// inCIDR(address, "net/len").
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[ExecVars](), reflect.TypeFor[ConnectVars](), reflect.TypeFor[FileVars](),
			reflect.TypeFor[ProcessVars](), reflect.TypeFor[ContainerVars](), reflect.TypeFor[PodVars](), reflect.TypeFor[SyscallVars](),
			reflect.TypeFor[ParentVars](), reflect.TypeFor[ExitVars](),
			ext.ParseStructTags(true)),
		cel.Variable("exit", cel.ObjectType("secmon.ExitVars")),
		cel.Variable("syscall", cel.ObjectType("secmon.SyscallVars")),
		cel.Variable("exec", cel.ObjectType("secmon.ExecVars")),
		cel.Variable("connect", cel.ObjectType("secmon.ConnectVars")),
		cel.Variable("file", cel.ObjectType("secmon.FileVars")),
		cel.Variable("process", cel.ObjectType("secmon.ProcessVars")),
		cel.Variable("container", cel.ObjectType("secmon.ContainerVars")),
		cel.Function("inCIDR",
			cel.Overload("inCIDR_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(inCIDR))),
		ext.Strings(),
	)
}

func inCIDR(addr, cidr ref.Val) ref.Val {
	a, ok1 := addr.Value().(string)
	c, ok2 := cidr.Value().(string)
	if !ok1 || !ok2 {
		return types.NewErr("inCIDR takes two strings")
	}
	p, err := netip.ParsePrefix(c)
	if err != nil {
		return types.NewErr("inCIDR: %v", err)
	}
	ip, err := netip.ParseAddr(a)
	if err != nil {
		return types.False
	}
	return types.Bool(p.Contains(ip.Unmap()) || p.Contains(ip))
}

// ParseRules reads a rules file: `rules:` a list of {name, event,
// condition, action}. source names the file in errors. Every fault is an
// ErrInvalidArgument naming the rule and, for a condition, the position in
// it.
func ParseRules(data []byte, source string) (*RuleSet, error) {
	return parseRules(data, source, thisHost())
}

func parseRules(data []byte, source string, h host) (*RuleSet, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%s: %s: %w", source, fmt.Sprintf(format, a...), errdefs.ErrInvalidArgument)
	}
	if len(data) > maxRulesBytes {
		return nil, bad("larger than %d bytes", maxRulesBytes)
	}
	var doc struct {
		Rules   []yaml.Node `yaml:"rules"`
		Webhook string      `yaml:"webhook"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, bad("no rules")
		}
		return nil, bad("%v", err)
	}
	if len(doc.Rules) > maxRules {
		return nil, bad("%d rules, at most %d", len(doc.Rules), maxRules)
	}
	var rules []Rule
	seen := map[string]bool{}
	for i, n := range doc.Rules {
		var r Rule
		if n.Kind != yaml.MappingNode {
			return nil, bad("rule %d (line %d): not a mapping of name, event, condition, action (and scope)", i+1, n.Line)
		}
		for k := 0; k+1 < len(n.Content); k += 2 {
			switch key := n.Content[k]; key.Value {
			case "name", "event", "condition", "action", "scope":
			default:
				return nil, bad("rule %d (line %d): unknown field %q", i+1, key.Line, key.Value)
			}
		}
		if err := n.Decode(&r); err != nil {
			return nil, bad("rule %d (line %d): %v", i+1, n.Line, err)
		}
		r.Source, r.Line = source, n.Line
		rules = append(rules, r)
		if err := checkRule(r); err != nil {
			return nil, bad("rule %d (line %d): %v", i+1, n.Line, err)
		}
		if seen[r.Name] {
			return nil, bad("rule %q (line %d): a second rule of that name", r.Name, n.Line)
		}
		seen[r.Name] = true
	}
	if len(rules) == 0 {
		return nil, bad("no rules")
	}
	if doc.Webhook != "" {
		u, err := url.Parse(doc.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("webhook %q: not an http or https URL", doc.Webhook)
		}
	}
	rs, err := compileRules(rules, h)
	if err != nil {
		return nil, err
	}
	rs.Webhook = doc.Webhook
	return rs, nil
}

func checkRule(r Rule) error {
	switch {
	case r.Name == "":
		return errors.New("no name")
	case len(r.Name) > maxNameBytes:
		return fmt.Errorf("name longer than %d bytes", maxNameBytes)
	case strings.ContainsFunc(r.Name, func(c rune) bool { return c < ' ' || c == 0x7f }):
		return fmt.Errorf("name %q has control characters", r.Name)
	}
	found := false
	for _, k := range eventKinds {
		found = found || k == r.Event
	}
	if !found {
		return fmt.Errorf("rule %q: event %q: not one of %s", r.Name, r.Event, strings.Join(eventKinds, ", "))
	}
	switch r.Action {
	case ActionAlert, ActionDeny, ActionKill:
	default:
		return fmt.Errorf("rule %q: action %q: not one of alert, deny, kill", r.Name, r.Action)
	}
	switch r.Scope {
	case "", ScopeProcess:
	case ScopeContainer:
		if r.Action != ActionKill {
			return fmt.Errorf("rule %q: scope container is for kill rules, not %s", r.Name, r.Action)
		}
	default:
		return fmt.Errorf("rule %q: scope %q: not process or container", r.Name, r.Scope)
	}
	if strings.TrimSpace(r.Condition) == "" {
		return fmt.Errorf("rule %q: no condition (write `true` for every event)", r.Name)
	}
	if len(r.Condition) > maxConditionBytes {
		return fmt.Errorf("rule %q: condition longer than %d bytes", r.Name, maxConditionBytes)
	}
	return nil
}

// CompileRules type-checks the rules' conditions (already parsed, from
// one or more sources) and checks that the host can do what each asks.
func CompileRules(rules []Rule) (*RuleSet, error) {
	return compileRules(rules, thisHost())
}

func compileRules(rules []Rule, h host) (*RuleSet, error) {
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("rules environment: %w", err)
	}
	rs := &RuleSet{Rules: rules, env: env, host: h}
	for _, r := range rules {
		where := fmt.Sprintf("%s: rule %q (line %d)", r.Source, r.Name, r.Line)
		if err := checkRule(r); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", r.Source, err, errdefs.ErrInvalidArgument)
		}
		ast, iss := env.Compile(r.Condition)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%s: condition: %s: %w", where, strings.ReplaceAll(iss.Err().Error(), "\n", " "), errdefs.ErrInvalidArgument)
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			return nil, fmt.Errorf("%s: condition: gives %s, not a bool: %w", where, ast.OutputType(), errdefs.ErrInvalidArgument)
		}
		if err := checkVars(ast, r.Event); err != nil {
			return nil, fmt.Errorf("%s: condition: %v: %w", where, err, errdefs.ErrInvalidArgument)
		}
		if err := h.can(r); err != nil {
			return nil, fmt.Errorf("%s: %v: %w", where, err, errdefs.ErrNotImplemented)
		}
		prg, err := env.Program(ast, cel.CostLimit(100000))
		if err != nil {
			return nil, fmt.Errorf("%s: condition: %w", where, err)
		}
		rs.programs = append(rs.programs, prg)
		rs.asts = append(rs.asts, ast)
	}
	// Every kernel rule must compile for the kernel now, not at the
	// container's start: compile against a container with no fields.
	if _, err := rs.Plan(Container{ID: "check"}); err != nil {
		return nil, err
	}
	return rs, nil
}

// Merge concatenates rule sets (global, container, pod) into one.
func Merge(sets ...*RuleSet) (*RuleSet, error) {
	var all []Rule
	hook := ""
	for _, s := range sets {
		if s != nil {
			all = append(all, s.Rules...)
			if hook == "" {
				hook = s.Webhook
			}
		}
	}
	if len(all) == 0 {
		return nil, nil
	}
	rs, err := CompileRules(all)
	if err != nil {
		return nil, err
	}
	rs.Webhook = hook
	return rs, nil
}

// eventVar is the variable of the event a kind of rule sees.
var eventVar = map[string]string{EventExec: "exec", EventConnect: "connect", EventAccept: "connect", EventOpen: "file",
	EventPtrace: "syscall", EventMount: "syscall", EventModule: "syscall", EventBPF: "syscall", EventNamespace: "syscall", EventSetuid: "syscall",
	EventExit: "exit"}

// checkVars refuses a condition that reads another kind's event (a
// connect rule reading exec.path would never be true).
func checkVars(a *cel.Ast, event string) error {
	bad := firstIdent(a.NativeRep().Expr(), func(n string) bool {
		switch n {
		case "exec", "connect", "file", "syscall", "exit":
			return eventVar[event] != n
		}
		return false
	})
	if bad != "" {
		return fmt.Errorf("a %s rule cannot use %s.*", event, bad)
	}
	return nil
}

// Input is one event as the conditions see it.
type Input struct {
	Exec      *ExecVars
	Connect   *ConnectVars
	File      *FileVars
	Syscall   *SyscallVars
	Exit      *ExitVars
	Process   ProcessVars
	Container Container
}

// Eval evaluates rule i's condition for an event in user space (alert
// rules). An evaluation error (a missing label key) is false and the
// error.
func (rs *RuleSet) Eval(i int, in Input) (bool, error) {
	vars := map[string]any{"process": in.Process, "container": in.Container.vars()}
	vars["exec"], vars["connect"], vars["file"], vars["syscall"] = ExecVars{Argv: []string{}}, ConnectVars{}, FileVars{}, SyscallVars{Args: []int64{}}
	vars["exit"] = ExitVars{}
	if in.Exit != nil {
		vars["exit"] = *in.Exit
	}
	if in.Syscall != nil {
		vars["syscall"] = *in.Syscall
	}
	if in.Exec != nil {
		vars["exec"] = *in.Exec
	}
	if in.Connect != nil {
		vars["connect"] = *in.Connect
	}
	if in.File != nil {
		vars["file"] = *in.File
	}
	out, _, err := rs.programs[i].Eval(vars)
	if err != nil {
		return false, err
	}
	b, _ := out.Value().(bool)
	return b, nil
}
