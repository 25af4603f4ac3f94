package main

import (
	"fmt"
	"io"
	"runtime/debug"
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

// buildVersion is what the build information says about this binary.
type buildVersion struct {
	Module   string // the main module's version: a tag, a pseudo-version or (devel)
	Revision string // the VCS revision, "" when not recorded
	Time     string // the revision's commit time
	Modified bool   // the working tree had uncommitted changes
	Go       string
}

func readBuildVersion() buildVersion {
	v := buildVersion{Module: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Version != "" {
		v.Module = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func versionText() string {
	v := readBuildVersion()
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
