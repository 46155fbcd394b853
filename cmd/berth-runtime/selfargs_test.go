package main

import (
	"slices"
	"strings"
	"testing"
)

// TestParseSelfArgs: the self-creating init reads create's arguments in
// every form prespawn.c lets through, as the CLI would.
func TestParseSelfArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want selfArgs
	}{
		{[]string{"create", "c1"}, selfArgs{root: "/run/berth", logFormat: "text", id: "c1"}},
		{[]string{"--root", "/r", "--log", "/l", "--log-format", "json", "--debug", "create", "--bundle", "/b", "--pid-file", "/p", "c2"},
			selfArgs{root: "/r", logPath: "/l", logFormat: "json", debug: true, id: "c2"}},
		{[]string{"--root=/r", "-log=/l", "-log-format=yaml", "create", "-b", "/b", "--pidfd-socket", "/s", "--no-pivot", "--no-new-keyring", "c3"},
			selfArgs{root: "/r", logPath: "/l", logFormat: "yaml", id: "c3"}},
		{[]string{"-root", "/r", "create", "c4", "--bundle=/b", "-pid-file=/p"}, selfArgs{root: "/r", logFormat: "text", id: "c4"}},
	} {
		got := parseSelfArgs(tc.args)
		bundle := map[string]string{"c1": ".", "c2": "/b", "c3": "/b", "c4": "/b"}[tc.want.id]
		if got.root != tc.want.root || got.logPath != tc.want.logPath || got.logFormat != tc.want.logFormat || got.debug != tc.want.debug ||
			got.id != tc.want.id || got.opt.Bundle != bundle {
			t.Errorf("parseSelfArgs(%q) = %+v, want %+v with bundle %q", tc.args, got, tc.want, bundle)
		}
		if pivot := tc.want.id == "c3"; got.opt.NoPivot != pivot || got.opt.NoNewKeyring != pivot {
			t.Errorf("parseSelfArgs(%q): no-pivot %v, no-new-keyring %v", tc.args, got.opt.NoPivot, got.opt.NoNewKeyring)
		}
	}
}

// FuzzParseSelfArgs: any argv (NUL-separated here) is read without a
// panic, and an id, when there is one, is an argument that was given.
func FuzzParseSelfArgs(f *testing.F) {
	f.Add("--root\x00/r\x00create\x00--bundle\x00/b\x00id")
	f.Add("-log=\x00create\x00-b")
	f.Add("create\x00-\x00--pid-file")
	f.Fuzz(func(t *testing.T, argv string) {
		args := strings.Split(argv, "\x00")
		a := parseSelfArgs(args)
		if a.id != "" && !slices.Contains(args, a.id) {
			t.Fatalf("parseSelfArgs(%q): id %q is none of the arguments", args, a.id)
		}
	})
}
