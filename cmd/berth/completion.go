package main

// Shell completion: `berth completion bash|zsh|fish` prints a script to
// source; the script calls berth back to complete commands and flags.

import "github.com/urfave/cli/v3"

// enableCompletion turns on urfave/cli's completion and shows its
// `completion` command (hidden by default) in the help.
func enableCompletion(root *cli.Command) {
	root.EnableShellCompletion = true
	root.ShellCompletionCommandName = "completion"
	root.ConfigureShellCompletionCommand = func(c *cli.Command) {
		c.Hidden = false
		c.Usage = "print a shell completion script: source <(berth completion bash)"
	}
}
