package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one command's flags and usage. Every command parses its flags
// with its own FlagSet (ContinueOnError), so that -h/--help prints that
// command's usage on stdout and succeeds, and a wrong flag or argument
// prints the usage on stderr and exits 2.
type command struct {
	name     string // as typed: "keys retire"
	synopsis string // "cloudkeys keys retire [flags] KID"
	about    string // what it does, a paragraph or two
	fs       *flag.FlagSet
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package's own messages are replaced by ours (parse): its
	// "Usage of serve:" would name the wrong command and go to one stream.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{name: name, synopsis: synopsis, about: about, fs: fs}
}

// printUsage writes the synopsis, the description and every flag.
func (c *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", c.synopsis, strings.TrimRight(c.about, "\n"))
	fmt.Fprint(w, "\nflags:\n")
	c.fs.SetOutput(w)
	c.fs.PrintDefaults()
	c.fs.SetOutput(io.Discard)
	fmt.Fprint(w, "  -h, --help\n    \tprint this help and exit\n")
}

// parse parses args, flags and positional arguments in any order (a "--"
// ends the flags), and returns the positional ones. -h or --help prints the
// usage on stdout and returns flag.ErrHelp, which run turns into success.
func (c *command) parse(args []string, stdout, stderr io.Writer) ([]string, error) {
	var positional []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printUsage(stdout)
				return nil, flag.ErrHelp
			}
			return nil, c.usageError(stderr, "%v", err)
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
}

// usageError prints what is wrong and the usage on stderr and returns the
// error that makes the process exit 2.
func (c *command) usageError(stderr io.Writer, format string, args ...any) error {
	err := &usageError{fmt.Errorf(c.name+": "+format, args...)}
	fmt.Fprintf(stderr, "%s\n\n", err)
	c.printUsage(stderr)
	return err
}

// noArgs refuses positional arguments.
func (c *command) noArgs(args []string, stderr io.Writer) error {
	if len(args) > 0 {
		return c.usageError(stderr, "unexpected arguments: %s", strings.Join(args, " "))
	}
	return nil
}

// usageError is a wrong command line: the usage has been printed already,
// and the process exits 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// group is a command made of subcommands (keys, users).
type group struct {
	name  string // "keys"
	usage string // the whole usage text
}

// pick returns the subcommand and its arguments; done is set when there is
// nothing more to run (help was printed: err is nil, or the command line is
// wrong: err is a usage error).
func (g group) pick(args []string, known []string, stdout, stderr io.Writer) (sub string, rest []string, done bool, err error) {
	if len(args) == 0 {
		return "", nil, true, g.usageError(stderr, "no command given")
	}
	sub, rest = args[0], args[1:]
	switch {
	case sub == "help" && len(args) > 1:
		sub, rest = args[1], []string{"-h"} // keys help status = keys status -h
	case sub == "-h" || sub == "--help" || sub == "-help" || sub == "help":
		fmt.Fprint(stdout, g.usage)
		return "", nil, true, nil
	case strings.HasPrefix(sub, "-"):
		return "", nil, true, g.usageError(stderr, "flag provided but not defined: %s (flags go after the command)", sub)
	}
	for _, k := range known {
		if sub == k {
			return sub, rest, false, nil
		}
	}
	return "", nil, true, g.usageError(stderr, "unknown command %q", sub)
}

func (g group) usageError(stderr io.Writer, format string, args ...any) error {
	err := &usageError{fmt.Errorf(g.name+": "+format, args...)}
	fmt.Fprintf(stderr, "%s\n\n%s", err, g.usage)
	return err
}
