// Package buildinfo reads what Go recorded in the binary about its build:
// the module version, the VCS revision and the Go version. `cloudkeys
// version`, the server heartbeats and the build_info metric all say the
// same thing, from here.
//
// What may import it: anything; it imports only the standard library.
package buildinfo

import "runtime/debug"

// Info is what the build information says about this binary.
type Info struct {
	Module   string // the main module's version: a tag, a pseudo-version or (devel); (unknown) without build information
	Revision string // the VCS revision, "" when not recorded (go run, go test, -buildvcs=false)
	Time     string // the revision's commit time, "" when not recorded
	Modified bool   // the working tree had uncommitted changes
	Go       string // the Go version, "" without build information
}

// Read returns the build information of the running binary.
func Read() Info {
	v := Info{Module: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	v.Module = "(devel)"
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

// Short is the version in one word or two: "v1.2.3", "(devel) 1a2b3c4d5e6f",
// "(devel) 1a2b3c4d5e6f+modified".
func (v Info) Short() string {
	out := v.Module
	if rev := v.Revision; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += " " + rev
		if v.Modified {
			out += "+modified"
		}
	}
	return out
}
