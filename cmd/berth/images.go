package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v3"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/berth-project/berth/internal/image"
	"github.com/berth-project/berth/internal/metadata"
	"github.com/berth-project/berth/internal/reference"
	"github.com/berth-project/berth/internal/registry"
)

func needArgs(cmd *cli.Command, n int, usage string) error {
	if cmd.Args().Len() != n {
		return fmt.Errorf("usage: berth %s %s", cmd.Name, usage)
	}
	return nil
}

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download an image and unpack it",
		ArgsUsage: "REFERENCE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platform", Usage: "os/arch[/variant] to choose from a multi-platform image"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the image digest"},
			&cli.IntFlag{Name: "max-downloads", Value: 3, Usage: "layers downloaded at once"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "REFERENCE"); err != nil {
				return err
			}
			if _, err := reference.Parse(cmd.Args().First()); err != nil {
				return err
			}
			platform, err := image.ParsePlatform(cmd.String("platform"))
			if err != nil {
				return err
			}
			return withStore(ctx, cmd, func(e *env, svc *image.Service) error {
				// A short name goes through registries.conf's aliases and
				// unqualified-search-registries, when it has them.
				res, err := e.registry.ResolveName(cmd.Args().First())
				if err != nil {
					return err
				}
				svc.MaxDownloads = cmd.Int("max-downloads")
				var img metadata.Image
				_, err = res.PullFirst(ctx, e.registry, func(ctx context.Context, ref reference.Reference) error {
					p := newProgress(os.Stdout, cmd.Bool("quiet"))
					var err error
					img, err = svc.Pull(ctx, ref, image.PullOptions{Platform: platform, Progress: p.event})
					p.wait()
					return err
				})
				if err != nil {
					return err
				}
				if cmd.Bool("quiet") {
					fmt.Println(img.Target.Digest)
					return nil
				}
				fmt.Printf("Digest: %s\nPulled %s\n", img.Target.Digest, img.Name)
				return nil
			})
		},
	}
}

// resolveShortImage applies registries.conf's short-name resolution (see
// registry.Config.ResolveName) to a container's image where it names
// other candidates than Docker's normalisation: an image already stored
// (by that name or ID, or under a candidate, in order) is used; else,
// unless --pull never, the first search registry that has it is pulled.
// The engine then finds the image by its full name.
func resolveShortImage(ctx context.Context, svc *image.Service, req *createRequest) error {
	name := req.opts.Config.Image
	if !registry.IsShortName(name) {
		return nil
	}
	if req.opts.Pull != "always" {
		if _, err := svc.Resolve(ctx, name); err == nil {
			return nil
		}
	}
	res, err := svc.Registry.ResolveName(name)
	if err != nil || res.Rationale == "" {
		return err
	}
	if req.opts.Pull != "always" {
		for _, c := range res.Candidates {
			if _, err := svc.Resolve(ctx, c.String()); err == nil {
				req.opts.Config.Image = c.String()
				return nil
			}
		}
	}
	if req.opts.Pull == "never" {
		req.opts.Config.Image = res.Candidates[0].String() // the engine says it is not stored
		return nil
	}
	platform, err := image.ParsePlatform(req.opts.Platform)
	if err != nil {
		return err
	}
	got, err := res.PullFirst(ctx, svc.Registry, func(ctx context.Context, ref reference.Reference) error {
		p := newProgress(os.Stderr, req.quiet)
		_, err := svc.Pull(ctx, ref, image.PullOptions{Platform: platform, Progress: p.event})
		p.wait()
		return err
	})
	if err != nil {
		return err
	}
	req.opts.Config.Image, req.opts.Pull = got.String(), "missing"
	return nil
}

func imagesCommand() *cli.Command {
	return &cli.Command{
		Name:  "images",
		Usage: "list images",
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Usage: "\"json\" for one JSON array"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return withContent(ctx, cmd, func(_ *env, svc *image.Service) error {
				list, err := svc.List(ctx)
				if err != nil {
					return err
				}
				switch cmd.String("format") {
				case "json":
					return json.NewEncoder(os.Stdout).Encode(list)
				case "", "table":
				default:
					return fmt.Errorf("unknown --format %q (want table or json)", cmd.String("format"))
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE")
				for _, s := range list {
					repo, tag := s.Name, "<none>"
					if ref, err := reference.Parse(s.Name); err == nil {
						repo = strings.TrimSuffix(strings.TrimSuffix(ref.Familiar(), "@"+ref.Digest.String()), ":"+ref.Tag)
						if ref.Tag != "" {
							tag = ref.Tag
						}
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", repo, tag, s.ID.Encoded()[:12], ago(s.Created), humanSize(s.Size))
				}
				return tw.Flush()
			})
		},
	}
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "N/A"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return "Less than a minute ago"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func humanSize(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fGB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fMB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fkB", float64(n)/1e3)
	}
	return fmt.Sprintf("%dB", n)
}

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "manage images",
		Commands: []*cli.Command{
			imageVerifyCommand(),
			{
				Name:      "inspect",
				Usage:     "show an image's manifest, config and container defaults as JSON",
				ArgsUsage: "IMAGE...",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					if cmd.Args().Len() == 0 {
						return fmt.Errorf("usage: berth image inspect IMAGE...")
					}
					return withContent(ctx, cmd, func(_ *env, svc *image.Service) error {
						var out []image.Details
						for _, n := range cmd.Args().Slice() {
							d, err := svc.Inspect(ctx, n)
							if err != nil {
								return err
							}
							out = append(out, d)
						}
						enc := json.NewEncoder(os.Stdout)
						enc.SetIndent("", "  ")
						return enc.Encode(out)
					})
				},
			},
			{
				Name:  "prune",
				Usage: "remove blobs and snapshots that no image uses",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					return withStore(ctx, cmd, func(_ *env, svc *image.Service) error {
						res, err := svc.GC(ctx)
						if err != nil {
							return err
						}
						fmt.Printf("Removed %d blobs and %d snapshots\nTotal reclaimed space: %s\n", res.Blobs, res.Snapshots, humanSize(res.Bytes))
						return nil
					})
				},
			},
			imagesCommand(), tagCommand(), rmiCommand(), pullCommand(), pushCommand(), saveCommand(), loadCommand(), importCommand(),
		},
	}
}

func tagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "give an image another name",
		ArgsUsage: "SOURCE TARGET",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 2, "SOURCE TARGET"); err != nil {
				return err
			}
			return withContent(ctx, cmd, func(_ *env, svc *image.Service) error {
				_, err := svc.Tag(ctx, cmd.Args().Get(0), cmd.Args().Get(1))
				return err
			})
		},
	}
}

func rmiCommand() *cli.Command {
	return &cli.Command{
		Name:      "rmi",
		Aliases:   []string{"rm"},
		Usage:     "remove images (by name or ID) and what only they used",
		ArgsUsage: "IMAGE...",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return fmt.Errorf("usage: berth rmi IMAGE...")
			}
			return withStore(ctx, cmd, func(_ *env, svc *image.Service) error {
				for _, n := range cmd.Args().Slice() {
					name, err := svc.Remove(ctx, n)
					if err != nil {
						return err
					}
					fmt.Println("Untagged:", name)
				}
				return nil
			})
		},
	}
}

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "upload an image to a registry",
		ArgsUsage: "IMAGE [DESTINATION]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() < 1 || cmd.Args().Len() > 2 {
				return fmt.Errorf("usage: berth push IMAGE [DESTINATION]")
			}
			return withContent(ctx, cmd, func(_ *env, svc *image.Service) error {
				progress := func(e image.ProgressEvent) {
					if !cmd.Bool("quiet") {
						fmt.Printf("%s: %s\n", e.Digest.Encoded()[:12], e.Status)
					}
				}
				ref, err := svc.Push(ctx, cmd.Args().Get(0), cmd.Args().Get(1), progress)
				if err != nil {
					return err
				}
				fmt.Println("Pushed", ref)
				return nil
			})
		},
	}
}

func saveCommand() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "write images to a tar archive (OCI layout + docker-archive)",
		ArgsUsage: "IMAGE...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default stdout)"},
			&cli.StringFlag{Name: "format", Value: "docker-archive", Usage: "docker-archive (OCI layout plus manifest.json) or oci-archive"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return fmt.Errorf("usage: berth save [-o FILE] IMAGE...")
			}
			ociOnly := false
			switch cmd.String("format") {
			case "docker-archive":
			case "oci-archive":
				ociOnly = true
			default:
				return fmt.Errorf("unknown --format %q (want docker-archive or oci-archive)", cmd.String("format"))
			}
			return withContent(ctx, cmd, func(_ *env, svc *image.Service) error {
				var w io.Writer = os.Stdout
				out := cmd.String("output")
				if out != "" {
					f, err := os.CreateTemp(dirOf(out), ".berth-save-*")
					if err != nil {
						return err
					}
					defer os.Remove(f.Name())
					defer f.Close()
					w = f
				}
				if err := svc.Save(ctx, w, cmd.Args().Slice(), ociOnly); err != nil {
					return err
				}
				if f, ok := w.(*os.File); ok && out != "" {
					if err := f.Close(); err != nil {
						return err
					}
					return os.Rename(f.Name(), out)
				}
				return nil
			})
		},
	}
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return "."
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "load images from an OCI layout or docker-archive tar",
		Flags: []cli.Flag{&cli.StringFlag{Name: "input", Aliases: []string{"i"}, Usage: "file to read (default stdin)"}},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			var r io.Reader = os.Stdin
			if in := cmd.String("input"); in != "" {
				f, err := os.Open(in)
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			return withStore(ctx, cmd, func(_ *env, svc *image.Service) error {
				names, err := svc.Load(ctx, r)
				for _, n := range names {
					fmt.Println("Loaded image:", n)
				}
				return err
			})
		},
	}
}

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "make an image from a root file system tarball (- for stdin)",
		ArgsUsage: "FILE|- REFERENCE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "platform"},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "CMD=..., ENTRYPOINT=..., ENV=K=V, WORKDIR=..., USER=... (CMD and ENTRYPOINT split on spaces)"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 2, "FILE|- REFERENCE"); err != nil {
				return err
			}
			platform, err := image.ParsePlatform(cmd.String("platform"))
			if err != nil {
				return err
			}
			opts := image.ImportOptions{Name: cmd.Args().Get(1), Platform: platform}
			for _, c := range cmd.StringSlice("change") {
				k, v, _ := strings.Cut(c, "=")
				switch strings.ToUpper(k) {
				case "CMD":
					opts.Config.Cmd = strings.Fields(v)
				case "ENTRYPOINT":
					opts.Config.Entrypoint = strings.Fields(v)
				case "ENV":
					opts.Config.Env = append(opts.Config.Env, v)
				case "WORKDIR":
					opts.Config.WorkingDir = v
				case "USER":
					opts.Config.User = v
				default:
					return fmt.Errorf("--change %q: unknown instruction %q", c, k)
				}
			}
			var r io.Reader = os.Stdin
			if f := cmd.Args().Get(0); f != "-" {
				fh, err := os.Open(f)
				if err != nil {
					return err
				}
				defer fh.Close()
				r = fh
			}
			return withStore(ctx, cmd, func(_ *env, svc *image.Service) error {
				img, err := svc.Import(ctx, r, opts)
				if err != nil {
					return err
				}
				fmt.Println(img.Target.Digest)
				return nil
			})
		},
	}
}

func loginCommand() *cli.Command {
	return &cli.Command{
		Name:      "login",
		Usage:     "check credentials with a registry and store them",
		ArgsUsage: "REGISTRY",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "username", Aliases: []string{"u"}},
			&cli.StringFlag{Name: "password", Aliases: []string{"p"}},
			&cli.BoolFlag{Name: "password-stdin", Usage: "read the password from stdin"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "REGISTRY"); err != nil {
				return err
			}
			e, err := newEnv(cmd)
			if err != nil {
				return err
			}
			password := cmd.String("password")
			if cmd.Bool("password-stdin") {
				b, err := io.ReadAll(os.Stdin)
				if err != nil {
					return err
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if cmd.String("username") == "" || password == "" {
				return fmt.Errorf("login: --username and --password (or --password-stdin) are required")
			}
			store, err := credentials.NewStore(e.authFile, credentials.StoreOptions{AllowPlaintextPut: true})
			if err != nil {
				return err
			}
			cred := auth.Credential{Username: cmd.String("username"), Password: password}
			if err := e.registry.Login(ctx, store, cmd.Args().First(), cred); err != nil {
				return err
			}
			fmt.Println("Login Succeeded")
			return nil
		},
	}
}

func logoutCommand() *cli.Command {
	return &cli.Command{
		Name:      "logout",
		Usage:     "forget the credentials of a registry",
		ArgsUsage: "REGISTRY",
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if err := needArgs(cmd, 1, "REGISTRY"); err != nil {
				return err
			}
			e, err := newEnv(cmd)
			if err != nil {
				return err
			}
			store, err := credentials.NewStore(e.authFile, credentials.StoreOptions{AllowPlaintextPut: true})
			if err != nil {
				return err
			}
			if err := credentials.Logout(ctx, store, cmd.Args().First()); err != nil {
				return err
			}
			fmt.Println("Removing login credentials for", cmd.Args().First())
			return nil
		},
	}
}
