package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
)

// The unit `system boot --print-unit` writes runs this berth with the
// state directories it was given.
func TestBootUnit(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = app().Run(context.Background(), []string{"berth", "--root", "/srv/b root", "--runroot", "/run/b", "system", "boot", "--print-unit"})
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[Service]", "Type=oneshot", `"--root" "/srv/b root" "--runroot" "/run/b" "--namespace" "default" "system" "boot"`, "WantedBy=multi-user.target"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("unit lacks %q:\n%s", want, out)
		}
	}
}
