package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cloudkeys/schema"
)

// runMain runs the command line in-process as main does, stdin given, and
// returns the exit status and what went to stdout and stderr.
func (e env) runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), append([]string{"cloudkeys"}, args...), e.get, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// commandFlags is every command and subcommand with the flags its usage
// must list.
var commandFlags = []struct {
	args  []string
	flags []string
}{
	{[]string{"serve"}, []string{"-addr", "-data-dir", "-database-url", "-allow-missing-keys", "-no-migrate"}},
	{[]string{"init"}, []string{"-dir"}},
	{[]string{"migrate"}, []string{"-data-dir", "-database-url"}},
	{[]string{"users", "create-admin"}, []string{"-email", "-data-dir", "-database-url"}},
	{[]string{"keys", "status"}, []string{"-data-dir", "-database-url"}},
	{[]string{"keys", "add"}, []string{"-data-dir"}},
	{[]string{"keys", "activate"}, []string{"-data-dir", "-database-url", "-force"}},
	{[]string{"keys", "rotate"}, []string{"-data-dir", "-database-url", "-wait"}},
	{[]string{"keys", "rewrap"}, []string{"-data-dir", "-database-url", "-force", "-wait"}},
	{[]string{"keys", "retire"}, []string{"-data-dir", "-database-url"}},
	{[]string{"audit", "verify"}, []string{"-data-dir", "-database-url", "-head"}},
	{[]string{"schema"}, nil},
	{[]string{"version"}, nil},
}

// Every command answers -h and --help with its own usage, every flag
// listed, on stdout, exit 0, doing nothing else; a wrong flag prints the
// usage on stderr and exits 2.
func TestEveryCommandHelpAndWrongFlag(t *testing.T) {
	for _, c := range commandFlags {
		name := strings.Join(c.args, " ")
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			for _, help := range []string{"-h", "--help", "-help"} {
				code, out, errOut := e.runMain(t, "", append(c.args, help)...)
				if code != 0 || errOut != "" {
					t.Fatalf("%s %s: exit %d, stderr %q", name, help, code, errOut)
				}
				if !strings.HasPrefix(out, "usage: cloudkeys "+name) {
					t.Fatalf("%s %s: not its own usage:\n%s", name, help, out)
				}
				for _, f := range append(c.flags, "-h, --help") {
					if !strings.Contains(out, "  "+f) {
						t.Fatalf("%s %s: the usage does not list %s:\n%s", name, help, f, out)
					}
				}
				if strings.Contains(out, "Usage of") || strings.Contains(out, "directive @auth") {
					t.Fatalf("%s %s: printed something else:\n%s", name, help, out)
				}
			}
			// Help after other flags works too, and still runs nothing.
			if len(c.flags) > 0 && c.flags[0] == "-data-dir" {
				if code, _, _ := e.runMain(t, "", append(c.args, "--data-dir", "elsewhere", "-h")...); code != 0 {
					t.Fatalf("%s --data-dir x -h: exit %d", name, code)
				}
			}
			code, out, errOut := e.runMain(t, "", append(c.args, "--no-such-flag")...)
			if code != 2 || out != "" {
				t.Fatalf("%s --no-such-flag: exit %d, stdout %q", name, code, out)
			}
			if !strings.Contains(errOut, "flag provided but not defined: -no-such-flag") || !strings.Contains(errOut, "usage: cloudkeys "+name) {
				t.Fatalf("%s --no-such-flag: stderr:\n%s", name, errOut)
			}
			wantEntries(t, e["CLOUDKEYS_DATA_DIR"]) // nothing was run
		})
	}
}

// Wrong arguments (not flags) exit 2 with the usage of the command at fault.
func TestBadArgumentsExit2(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		usage string // the usage printed
		why   string
	}{
		{nil, "usage: cloudkeys <command>", ""},
		{[]string{"frobnicate"}, "usage: cloudkeys <command>", `unknown command "frobnicate"`},
		{[]string{"--frobnicate"}, "usage: cloudkeys <command>", `unknown command "--frobnicate"`},
		{[]string{"serve", "now"}, "usage: cloudkeys serve", "unexpected arguments: now"},
		{[]string{"serve", "--addr"}, "usage: cloudkeys serve", "flag needs an argument: -addr"},
		{[]string{"serve", "--allow-missing-keys=maybe"}, "usage: cloudkeys serve", "invalid boolean value"},
		{[]string{"schema", "graphql"}, "usage: cloudkeys schema", "unexpected arguments: graphql"},
		{[]string{"version", "--short"}, "usage: cloudkeys version", "-short"},
		{[]string{"init", "somewhere"}, "usage: cloudkeys init", "unexpected arguments: somewhere"},
		{[]string{"init", "--dir", ""}, "usage: cloudkeys init", "--dir must name a directory"},
		{[]string{"migrate", "up"}, "usage: cloudkeys migrate", "unexpected arguments: up"},
		{[]string{"keys"}, "usage: cloudkeys keys <command>", "keys: no command given"},
		{[]string{"keys", "destroy"}, "usage: cloudkeys keys <command>", `keys: unknown command "destroy"`},
		{[]string{"keys", "--data-dir", "x", "status"}, "usage: cloudkeys keys <command>", "flags go after the command"},
		{[]string{"keys", "retire"}, "usage: cloudkeys keys retire", "name the key to remove"},
		{[]string{"keys", "retire", "k-1", "k-2"}, "usage: cloudkeys keys retire", "unexpected arguments: k-2"},
		{[]string{"keys", "status", "extra"}, "usage: cloudkeys keys status", "unexpected arguments: extra"},
		{[]string{"keys", "add", "extra"}, "usage: cloudkeys keys add", "unexpected arguments: extra"},
		{[]string{"keys", "add", "--force"}, "usage: cloudkeys keys add", "flag provided but not defined: -force"},
		{[]string{"keys", "activate"}, "usage: cloudkeys keys activate", "name the key to activate"},
		{[]string{"keys", "activate", "k-1", "k-2"}, "usage: cloudkeys keys activate", "unexpected arguments: k-2"},
		{[]string{"keys", "activate", "k-1", "--force=maybe"}, "usage: cloudkeys keys activate", "invalid boolean value"},
		{[]string{"keys", "rotate", "--wait", "soon"}, "usage: cloudkeys keys rotate", "invalid value"},
		{[]string{"keys", "rotate", "--wait=-1s"}, "usage: cloudkeys keys rotate", "--wait must not be negative"},
		{[]string{"keys", "rotate", "now"}, "usage: cloudkeys keys rotate", "unexpected arguments: now"},
		{[]string{"keys", "rewrap", "--wait"}, "usage: cloudkeys keys rewrap", "flag needs an argument: -wait"},
		{[]string{"users"}, "usage: cloudkeys users <command>", "users: no command given"},
		{[]string{"users", "delete"}, "usage: cloudkeys users <command>", `users: unknown command "delete"`},
		{[]string{"users", "create-admin"}, "usage: cloudkeys users create-admin", "--email is required"},
		{[]string{"users", "create-admin", "ada@example.com"}, "usage: cloudkeys users create-admin", "unexpected arguments: ada@example.com"},
	} {
		e := newEnv(t)
		code, out, errOut := e.runMain(t, "correct horse\n", tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.usage) || !strings.Contains(errOut, tc.why) {
			t.Errorf("cloudkeys %s: exit %d (want 2), stdout %q, stderr:\n%s", strings.Join(tc.args, " "), code, out, errOut)
		}
		wantEntries(t, e["CLOUDKEYS_DATA_DIR"])
	}
}

func TestTopLevelHelp(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, out, errOut := e.runMain(t, "", args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: cloudkeys <command>") {
			t.Fatalf("%v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
		for _, cmd := range []string{"serve", "init", "migrate", "users create-admin", "keys", "schema", "version"} {
			if !strings.Contains(out, "\n  "+cmd+" ") {
				t.Fatalf("the usage does not list %s:\n%s", cmd, out)
			}
		}
	}
	// help COMMAND is COMMAND -h; the groups take help SUBCOMMAND too.
	for _, args := range [][]string{{"help", "serve"}, {"help", "keys"}, {"keys", "help", "retire"}, {"users", "help", "create-admin"}, {"users", "-h"}} {
		code, out, _ := e.runMain(t, "", args...)
		if code != 0 || !strings.HasPrefix(out, "usage: cloudkeys ") {
			t.Fatalf("%v: exit %d:\n%s", args, code, out)
		}
	}
	if _, out, _ := e.runMain(t, "", "keys", "help", "retire"); !strings.HasPrefix(out, "usage: cloudkeys keys retire [flags] KID") {
		t.Fatalf("keys help retire:\n%s", out)
	}
}

func TestSchemaCommandOutput(t *testing.T) {
	code, out, _ := newEnv(t).runMain(t, "", "schema")
	if code != 0 || out != schema.SDL() {
		t.Fatalf("schema: exit %d", code)
	}
}

func TestVersionCommand(t *testing.T) {
	e := newEnv(t)
	for _, arg := range []string{"version", "--version"} {
		code, out, errOut := e.runMain(t, "", arg)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "cloudkeys ") || !strings.Contains(out, "\nrevision ") {
			t.Fatalf("%s: exit %d, stderr %q, stdout:\n%s", arg, code, errOut, out)
		}
	}
}

// A failure is one line on stderr, exit 1 — in JSON when the log format
// is JSON, for serve (whose start-up failures read like its log) and for
// the other commands alike.
func TestFailuresInTheLogFormat(t *testing.T) {
	prod := env{"CLOUDKEYS_ENV": "production", "CLOUDKEYS_DATA_DIR": t.TempDir()}
	code, out, errOut := prod.runMain(t, "", "serve", "--addr", "127.0.0.1:0")
	if code != 1 || out != "" || !strings.Contains(errOut, `level=ERROR msg="cloudkeys serve failed" error=`) || !strings.Contains(errOut, "CLOUDKEYS_JWT_SECRET") {
		t.Fatalf("text: exit %d, stderr:\n%s", code, errOut)
	}
	prod["CLOUDKEYS_LOG_FORMAT"] = "json"
	for _, args := range [][]string{{"serve"}, {"keys", "status"}} {
		code, out, errOut = prod.runMain(t, "", args...)
		if code != 1 || out != "" {
			t.Fatalf("%v: exit %d, stdout %q", args, code, out)
		}
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		var rec map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
			t.Fatalf("%v: the failure is not JSON: %v\n%s", args, err, errOut)
		}
		if rec["level"] != "ERROR" || rec["msg"] != "cloudkeys "+strings.Join(args, " ")+" failed" || !strings.Contains(rec["error"].(string), "production needs") {
			t.Fatalf("%v: %v", args, rec)
		}
		for _, l := range lines {
			if !json.Valid([]byte(l)) {
				t.Fatalf("%v: a line that is not JSON: %q", args, l)
			}
		}
	}
	// Without JSON, the operator's commands print one plain line.
	delete(prod, "CLOUDKEYS_LOG_FORMAT")
	if code, _, errOut := prod.runMain(t, "", "keys", "status"); code != 1 || !strings.HasPrefix(errOut, "cloudkeys keys status: production needs") {
		t.Fatalf("keys status: exit %d, %q", code, errOut)
	}
}

// The built binary: main's exit codes, and the VCS revision in version
// (a test binary carries none, so this one is built).
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	head, gitErr := exec.Command("git", "rev-parse", "HEAD").Output()
	vcs := "-buildvcs=false"
	if gitErr == nil {
		vcs = "-buildvcs=true"
	}
	bin := filepath.Join(t.TempDir(), "cloudkeys")
	args := []string{"build", vcs, "-o", bin}
	if raceEnabled {
		args = append(args, "-race") // shares the test build's cache
	}
	if out, err := exec.Command(goCmd, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	runBin := func(vars []string, args ...string) (int, string, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "CLOUDKEYS_DATA_DIR=" + dataDir}, vars...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errOut.String()
	}

	for _, arg := range []string{"version", "--version"} {
		code, out, _ := runBin(nil, arg)
		if code != 0 {
			t.Fatalf("%s: exit %d", arg, code)
		}
		if gitErr == nil && !strings.Contains(out, "revision "+strings.TrimSpace(string(head))) {
			t.Fatalf("%s does not name the revision %s:\n%s", arg, head, out)
		}
		if gitErr != nil && !strings.Contains(out, "revision unknown") {
			t.Fatalf("%s:\n%s", arg, out)
		}
	}
	for _, tc := range []struct {
		args []string
		code int
		in   string // "out" or "err": where the usage goes
	}{
		{[]string{"serve", "-h"}, 0, "out"},
		{[]string{"keys", "status", "-h"}, 0, "out"},
		{[]string{"schema", "--help"}, 0, "out"},
		{[]string{"serve", "--bogus"}, 2, "err"},
		{[]string{"keys", "rewrap", "--bogus"}, 2, "err"},
		{[]string{}, 2, "err"},
	} {
		code, out, errOut := runBin(nil, tc.args...)
		where := map[string]string{"out": out, "err": errOut}[tc.in]
		if code != tc.code || !strings.Contains(where, "usage: cloudkeys") || strings.Contains(out+errOut, "Usage of") || strings.Contains(out, "directive @auth") {
			t.Fatalf("%v: exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, out, errOut)
		}
	}
	code, _, errOut := runBin([]string{"CLOUDKEYS_ENV=production", "CLOUDKEYS_LOG_FORMAT=json"}, "serve")
	if code != 1 || !json.Valid([]byte(strings.TrimSpace(errOut))) || !strings.Contains(errOut, `"level":"ERROR"`) {
		t.Fatalf("production start-up failure: exit %d, stderr:\n%s", code, errOut)
	}
	wantEntries(t, dataDir)
}
