package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/trust"
)

// TestTrustRecheckedAtStart: an image allowed when the container was
// created is refused at its next start once the policy tightens, and at
// create; nothing is started or recorded. Relaxing the policy again takes
// effect at once, without reopening anything.
func TestTrustRecheckedAtStart(t *testing.T) {
	e := testEngine(t)
	ctx := context.Background()
	policy := filepath.Join(e.opts.Root, "policy.json")
	var decisions []trust.Decision
	e.opts.Trust = trust.New(trust.Options{
		Root: e.opts.Root, PolicyPaths: []string{policy}, Images: e.images,
		OnDecision: func(d trust.Decision) { decisions = append(decisions, d) },
	})
	c, err := e.Create(ctx, CreateOptions{Config: Config{Image: testImage, Cmd: []string{"true"}}, HostConfig: HostConfig{NetworkMode: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Wait(ctx, c.ID); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(policy, []byte(`{"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": {"localhost/berth-engine-test": [{"type": "reject"}]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = e.Start(ctx, c.ID)
	if !errors.Is(err, trust.ErrRefused) || !strings.Contains(err.Error(), "image localhost/berth-engine-test:latest refused by policy") {
		t.Fatalf("start after the policy tightened: %v", err)
	}
	if got, err := e.Inspect(ctx, c.ID); err != nil || got.State.Running || got.State.Pid != 0 {
		t.Fatalf("refused container: %+v, %v", got.State, err)
	}
	if _, err := e.Create(ctx, CreateOptions{Name: "refused", Config: Config{Image: testImage}, HostConfig: HostConfig{NetworkMode: "none"}}); !errors.Is(err, trust.ErrRefused) {
		t.Fatalf("create after the policy tightened: %v", err)
	}
	if _, err := e.Inspect(ctx, "refused"); err == nil {
		t.Fatal("a refused create left a container")
	}
	last := decisions[len(decisions)-1]
	if last.Allowed || last.Stage != "create" || last.Scope != "localhost/berth-engine-test" {
		t.Errorf("last decision %+v", last)
	}

	os.Remove(policy)
	if _, err := e.Start(ctx, c.ID); err != nil {
		t.Fatalf("start after the policy was removed: %v", err)
	}
	e.Wait(ctx, c.ID)
}
