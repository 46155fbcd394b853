package main

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

// parse runs berthd's flag and configuration parsing on args, without
// serving, and returns the runtime handlers and sandbox modes it read.
func parse(t *testing.T, args ...string) ([]string, map[string]string, error) {
	t.Helper()
	a := app()
	var runtimes []string
	var modes map[string]string
	a.Action = func(ctx context.Context, cmd *cli.Command) error {
		if p := cmd.String("config"); p != "" {
			if err := applyConfig(cmd, p); err != nil {
				return err
			}
		}
		var err error
		modes, err = sandboxModes(cmd)
		runtimes = cmd.StringSlice("runtime")
		return err
	}
	err := a.Run(context.Background(), append([]string{"berthd"}, args...))
	return runtimes, modes, err
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "berthd.toml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A [runtimes] entry is a path, or a table with the path and the sandbox
// mode; the default handler takes --default-runtime's mode.
func TestRuntimeHandlersConfig(t *testing.T) {
	cfg := writeConfig(t, `default-runtime = "runsc"
[runtimes]
runc = "/usr/sbin/runc"
runsc = { path = "/usr/local/bin/runsc", sandbox_mode = "infra" }
[runtimes.kata]
path = "/opt/kata/bin/kata-runtime"
sandbox_mode = "pinned"
`)
	runtimes, modes, err := parse(t, "--config", cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantRT := []string{"kata=/opt/kata/bin/kata-runtime", "runc=/usr/sbin/runc", "runsc=/usr/local/bin/runsc"}
	if !reflect.DeepEqual(runtimes, wantRT) {
		t.Errorf("runtimes = %q, want %q", runtimes, wantRT)
	}
	wantModes := map[string]string{"kata": "pinned", "runsc": "infra", "": "infra"}
	if !reflect.DeepEqual(modes, wantModes) {
		t.Errorf("sandbox modes = %v, want %v", modes, wantModes)
	}
	// The command line wins over the file.
	_, modes, err = parse(t, "--config", cfg, "--sandbox-mode", "runsc=pinned")
	if err != nil || modes["runsc"] != "pinned" || modes[""] != "pinned" {
		t.Errorf("--sandbox-mode over the file: %v, %v", modes, err)
	}
}

// Bad entries are refused with the file, the key and what is wrong.
func TestRuntimeHandlersConfigBad(t *testing.T) {
	for _, tc := range []struct{ toml, want string }{
		{"[runtimes]\nrunsc = 3\n", "runtimes.runsc: want a path or a table"},
		{"[runtimes]\nrunsc = { sandbox_mode = \"infra\" }\n", "runtimes.runsc: path is missing"},
		{"[runtimes]\nrunsc = { path = \"/x\", sandbox_mode = \"vm\" }\n", `runtimes.runsc: sandbox mode "vm": want pinned or infra`},
		{"[runtimes]\nrunsc = { path = \"/x\", args = \"--debug\" }\n", "runtimes.runsc: args must be a list of strings"},
		{"[runtimes]\nrunsc = { path = \"/x\", args = [1] }\n", "runtimes.runsc: args must be a list of strings"},
		{"[runtimes]\nrunsc = { path = \"/x\", flags = [] }\n", `runtimes.runsc: unknown key "flags"`},
		{"[runtimes]\nrunsc = { path = 1 }\n", "runtimes.runsc: path must be a string"},
		{"runtimes = \"runc\"\n", "runtimes must be a table"},
	} {
		cfg := writeConfig(t, tc.toml)
		_, _, err := parse(t, "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), cfg) {
			t.Errorf("%q: %v, want an error naming %s and saying %q", tc.toml, err, cfg, tc.want)
		}
	}
	for _, arg := range []string{"runsc", "=infra", "runsc=sandboxed"} {
		if _, _, err := parse(t, "--sandbox-mode", arg); err == nil || !strings.Contains(err.Error(), "--sandbox-mode") {
			t.Errorf("--sandbox-mode %s: %v, want an error naming the flag", arg, err)
		}
	}
}

// seccomp-use-default-when-empty is on unless the command line or the
// config file turns it off; the command line wins.
func TestSeccompDefaultWhenEmptySetting(t *testing.T) {
	off := writeConfig(t, "seccomp-use-default-when-empty = false\n")
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"--seccomp-use-default-when-empty=false"}, false},
		{[]string{"--config", off}, false},
		{[]string{"--config", off, "--seccomp-use-default-when-empty=true"}, true},
	} {
		a := app()
		var got bool
		a.Action = func(ctx context.Context, cmd *cli.Command) error {
			if p := cmd.String("config"); p != "" {
				if err := applyConfig(cmd, p); err != nil {
					return err
				}
			}
			got = cmd.Bool("seccomp-use-default-when-empty")
			return nil
		}
		if err := a.Run(context.Background(), append([]string{"berthd"}, c.args...)); err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if got != c.want {
			t.Errorf("%v: seccomp-use-default-when-empty %v, want %v", c.args, got, c.want)
		}
	}
}
