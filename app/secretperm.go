package app

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"cloudkeys/config"
)

// A secret file — the encryption key file, the JWT secret file, the audit
// key file — that group or others may read gives the secret to every
// account of the machine (issue 11). At start-up (and when a key file is
// reloaded) such a file is a warning in development and a refusal in
// production; both name the file and the fix.

// checkSecretFiles checks the files the configuration read secrets from.
func checkSecretFiles(cfg *config.Config, src KeySource, log *slog.Logger) error {
	var errs []error
	check := func(what, path string) {
		if err := checkSecretFile(cfg, log, what, path); err != nil {
			errs = append(errs, err)
		}
	}
	if !src.Env && src.File != "" {
		check("encryption key file", src.File)
	}
	if cfg.JWTSecretSource != "" && cfg.JWTSecretSource != "CLOUDKEYS_JWT_SECRET" {
		check("JWT secret file", cfg.JWTSecretSource)
	}
	if cfg.AuditKeySource != "" && cfg.AuditKeySource != "CLOUDKEYS_AUDIT_KEY" {
		check("audit key file", cfg.AuditKeySource)
	}
	return errors.Join(errs...)
}

// checkSecretFile returns, in production, an error when group or others
// may read the file at path; in development it logs a warning instead.
func checkSecretFile(cfg *config.Config, log *slog.Logger, what, path string) error {
	problem := secretFileProblem(path)
	if problem == "" {
		return nil
	}
	fix := fmt.Sprintf("run chmod 600 %s (and keep it owned by the account cloudkeys runs as)", path)
	if cfg.Production() {
		return fmt.Errorf("refusing to use the %s %s: it is %s; %s", what, path, problem, fix)
	}
	log.Warn("a secret file is "+problem+": production refuses to start with it; "+fix, "file", path, "what", what)
	return nil
}

// secretFileProblem says how the file at path is readable beyond its
// owner ("" when it is not, or cannot be told: Windows has no such mode
// bits, and a file that cannot be stat'ed fails where it is read).
func secretFileProblem(path string) string {
	if runtime.GOOS == "windows" {
		return ""
	}
	info, err := os.Stat(path)
	if err != nil {
		return ""
	}
	perm := info.Mode().Perm()
	var who []string
	if perm&0o040 != 0 {
		who = append(who, "group")
	}
	if perm&0o004 != 0 {
		who = append(who, "others")
	}
	if len(who) == 0 {
		return ""
	}
	return fmt.Sprintf("readable by %s (mode %04o)", strings.Join(who, " and "), perm&fs.ModePerm)
}
