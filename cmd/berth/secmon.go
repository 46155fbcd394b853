package main

// The runtime security monitor's commands: `berth monitor events` and
// `berth monitor mechanisms`, and the --security-opt monitor=FILE check.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/berth-project/berth/internal/secmon"
)

// parseMonitorOpt checks a rules file now (a rule the host cannot
// enforce is refused before anything is made) and makes its path
// absolute; the engine reads the file again at each start.
func parseMonitorOpt(v string) (string, error) {
	if v == "" {
		return "", errors.New("name a rules file: monitor=FILE")
	}
	p, err := filepath.Abs(v)
	if err != nil {
		return "", err
	}
	if _, err := secmon.LoadRulesFile(p); err != nil {
		return "", err
	}
	return "monitor=" + p, nil
}

func monitorCommand() *cli.Command {
	return &cli.Command{
		Name:  "monitor",
		Usage: "Runtime security monitoring: alerts, mechanisms",
		Commands: []*cli.Command{
			{
				Name:  "events",
				Usage: "Show the monitor's alerts (one JSON object a line with --format json)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "wait for new alerts"},
					&cli.StringFlag{Name: "format", Usage: "json, or a table when empty"},
				},
				Action: monitorEvents,
			},
			{
				Name:  "mechanisms",
				Usage: "Show how each action on each event kind is enforced on this host, or why it is refused",
				Action: func(ctx context.Context, cmd *cli.Command) error {
					tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "EVENT\tACTION\tMECHANISM")
					for _, m := range secmon.Mechanisms() {
						how := m.Mechanism
						if how == "" {
							how = "refused: " + m.Reason
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Event, m.Action, how)
					}
					return tw.Flush()
				},
			},
		},
	}
}

func monitorEvents(ctx context.Context, cmd *cli.Command) error {
	format := cmd.String("format")
	if format != "" && format != "json" {
		return fmt.Errorf("--format %q: want json or nothing", format)
	}
	root, err := filepath.Abs(cmd.Root().String("root"))
	if err != nil {
		return err
	}
	if self, err := os.Executable(); err == nil {
		if bin := findBinary(self, "berth-secmon"); bin != "" {
			if err := secmon.Revive(ctx, secmon.Options{AgentBin: bin}); err != nil {
				fmt.Fprintln(os.Stderr, "berth: warning: the monitor agent:", err)
			}
		}
	}
	var tw *tabwriter.Writer
	if format == "" {
		tw = tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tRULE\tACTION\tCONTAINER\tPID\tPROCESS\tDETAIL")
		tw.Flush()
	}
	return secmon.ReadAlerts(ctx, secmon.AlertsPath(root), cmd.Bool("follow"), func(line []byte) error {
		if tw == nil {
			_, err := os.Stdout.Write(append(line, '\n'))
			return err
		}
		var a secmon.Alert
		if json.Unmarshal(line, &a) != nil {
			return nil
		}
		detail := ""
		switch {
		case a.Exec != nil:
			detail = "exec " + a.Exec.Path
			if a.Exec.Drift {
				detail += " (drift)"
			}
		case a.Connect != nil:
			detail = fmt.Sprintf("connect %s %s", a.Connect.Protocol, netJoin(a.Connect.Address, a.Connect.Port))
		case a.Syscall != nil:
			detail = fmt.Sprintf("%s%v", a.Syscall.Name, a.Syscall.Args)
		case a.File != nil:
			detail = "open for write " + a.File.Path
		}
		id := a.Container
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", a.Time.Local().Format("2006-01-02T15:04:05.000"), printable(a.Rule), a.Action, printable(id),
			a.Process.Pid, printable(strings.Join(a.Process.Argv, " ")), printable(detail))
		return tw.Flush()
	})
}

func netJoin(addr string, port int) string {
	if strings.Contains(addr, ":") {
		return fmt.Sprintf("[%s]:%d", addr, port)
	}
	return fmt.Sprintf("%s:%d", addr, port)
}

// printable replaces control characters: argv and paths come from the
// container and must not drive the user's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
