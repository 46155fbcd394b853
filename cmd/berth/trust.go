package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/engine"
	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/registry"
	"github.com/berth-project/berth/internal/trust"
)

// trustFlags are the global flags of image trust.
func trustFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "policy", Usage: "signature policy, containers-policy.json (default ROOT/policy.json, then /etc/containers/policy.json; with neither every image is accepted)"},
		&cli.StringFlag{Name: "admission", Usage: "admission rules, YAML (default ROOT/admission.yaml)"},
		&cli.StringFlag{Name: "registries-d", Usage: "containers-registries.d directory, shown in decisions (default ROOT/registries.d, then /etc/containers/registries.d)"},
	}
}

// newChecker builds the trust checker from the global flags; its
// decisions go to the audit log and the events.
func newChecker(cmd *cli.Command, e *env, images trust.Images) *trust.Checker {
	root := cmd.Root()
	policies := []string{filepath.Join(e.root, "policy.json"), "/etc/containers/policy.json"}
	if p := root.String("policy"); p != "" {
		policies = []string{p}
	}
	admission := root.String("admission")
	if admission == "" {
		admission = filepath.Join(e.root, "admission.yaml")
	}
	ns := root.String("namespace")
	return trust.New(trust.Options{
		Root:           e.root,
		PolicyPaths:    policies,
		AdmissionPath:  admission,
		RegistriesDirs: trust.RegistriesDirs(e.root, root.String("registries-d")),
		Registry:       e.registry,
		Images:         images,
		OnDecision: func(d trust.Decision) {
			if d.Stage == "verify" {
				return
			}
			action := "verify"
			if !d.Allowed {
				action = "refuse"
			}
			attrs := map[string]string{"digest": d.Digest.String(), "stage": d.Stage, "container": d.Container}
			if d.Rule != "" {
				attrs["rule"] = d.Rule
			} else if d.Requirement != "" {
				attrs["requirement"] = d.Requirement
			}
			if d.Reason != "" {
				attrs["reason"] = d.Reason
			}
			engine.RecordImageEvent(e.root, ns, action, d.Reference, attrs)
		},
	})
}

// imageVerifyCommand explains, requirement by requirement and rule by
// rule, whether an image would be allowed to run now.
func imageVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "explain whether the policy and admission rules allow a stored image, requirement by requirement and rule by rule, without running it",
		ArgsUsage: "IMAGE",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "format", Usage: "json"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "IMAGE"); err != nil {
				return err
			}
			return withStore(ctx, cmd, func(e *env, svc *image.Service) error {
				det, err := svc.Inspect(ctx, cmd.Args().First())
				if err != nil {
					return err
				}
				d, err := e.trust.Explain(ctx, trust.Request{Reference: det.Name, Digest: det.Digest})
				if err != nil {
					return err
				}
				if cmd.String("format") == "json" {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(d); err != nil {
						return err
					}
				} else {
					printDecision(d)
				}
				if !d.Allowed {
					return &statusError{code: 1, err: d.Err()}
				}
				return nil
			})
		},
	}
}

func printDecision(d trust.Decision) {
	fmt.Printf("Image:  %s\nDigest: %s\nPolicy: %s", d.Reference, d.Digest, d.Policy)
	if d.Policy != "none" {
		scope := d.Scope
		if scope == "" {
			scope = `"" (the docker transport's default)`
		}
		fmt.Printf(" (scope %s)", scope)
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tNAME\tVERDICT\tDETAIL")
	for _, s := range d.Steps {
		v := "deny"
		switch {
		case s.Kind == "registries.d":
			v = "info"
		case s.Skipped:
			v = "skip"
		case s.Allowed:
			v = "allow"
		case s.Kind == "attestation" || s.Kind == "attestations":
			v = "ignored"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Kind, s.Name, v, s.Message)
	}
	w.Flush()
	if d.Allowed {
		fmt.Println("Decision: allowed")
	} else {
		fmt.Println("Decision: refused")
	}
}

// trustPolicy says which policy is in force, for `berth info`.
func trustPolicy(cmd *cli.Command) string {
	e, err := newEnv(cmd)
	if err != nil {
		return "error: " + err.Error()
	}
	return newChecker(cmd, e, nil).Describe()
}

// registriesInfo says which registries.d and search registries are in
// force, for `berth info`.
func registriesInfo(cmd *cli.Command) (registriesD, search string) {
	e, err := newEnv(cmd)
	if err != nil {
		return "error: " + err.Error(), ""
	}
	search = "none (short names are Docker Hub's)"
	if regs, source := e.registry.SearchRegistries(); source != "" {
		search = "[" + strings.Join(regs, ", ") + "] from " + source
	}
	return newChecker(cmd, e, nil).DescribeRegistriesD(), search
}

// registriesFlags are the global flags of containers-registries.conf and certs.d.
func registriesFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "registries-conf", Usage: "containers-registries.conf v2 file (default ROOT/registries.conf, then /etc/containers/registries.conf), with the drop-ins of its registries.conf.d"},
		&cli.StringFlag{Name: "certs-dir", Value: "/etc/containers/certs.d", Usage: "per-registry TLS: DIR/HOST[:PORT]/ca.crt, *.cert and *.key"},
	}
}

// loadRegistriesConf adds registries.conf and certs.d to cfg.
func loadRegistriesConf(cmd *cli.Command, root string, cfg *registry.Config) error {
	cfg.CertsDir = cmd.Root().String("certs-dir")
	paths, dropIns := registry.RegistriesConfPaths(root, cmd.Root().String("registries-conf"))
	return cfg.LoadRegistriesConfDirs(paths, dropIns)
}
