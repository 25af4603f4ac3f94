package main

import (
	"fmt"
	"io"

	"cloudkeys/buildinfo"
)

// versionCommand runs `cloudkeys version` (and `cloudkeys --version`).
func versionCommand(args []string, stdout, stderr io.Writer) error {
	c := newCommand("version", "cloudkeys version",
		"Print the module version, the VCS revision the binary was built from (and\nwhether the working tree had changes), and the Go version, from the build\ninformation Go records in the binary.")
	rest, err := c.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest, stderr); err != nil {
		return err
	}
	_, err = io.WriteString(stdout, versionText())
	return err
}

func versionText() string {
	v := buildinfo.Read()
	out := fmt.Sprintf("cloudkeys %s\n", v.Module)
	switch {
	case v.Revision == "":
		out += "revision unknown (built without VCS information, e.g. by go run or go test, or with -buildvcs=false)\n"
	case v.Modified:
		out += fmt.Sprintf("revision %s (modified: built with uncommitted changes)\n", v.Revision)
	default:
		out += fmt.Sprintf("revision %s\n", v.Revision)
	}
	if v.Time != "" {
		out += fmt.Sprintf("committed %s\n", v.Time)
	}
	if v.Go != "" {
		out += fmt.Sprintf("built with %s\n", v.Go)
	}
	return out
}
