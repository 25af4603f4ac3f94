package main

import (
	"context"
	"strings"
	"testing"

	"cloudkeys/models"
)

func TestUsersCreateAdmin(t *testing.T) {
	e := env(testEnv(t.TempDir()))

	// Before migrate: refused, naming migrate; no database is created.
	code, _, errOut := e.runMain(t, "correct horse\n", "users", "create-admin", "--email", "root@example.com")
	if code != 1 || !strings.Contains(errOut, "pending migrations") || !strings.Contains(errOut, "cloudkeys migrate") {
		t.Fatalf("create-admin before migrate: exit %d\n%s", code, errOut)
	}
	wantEntries(t, e["CLOUDKEYS_DATA_DIR"])
	if code, _, errOut := e.runMain(t, "", "migrate"); code != 0 {
		t.Fatalf("migrate: %s", errOut)
	}

	// A pending account exists first (as after a production register).
	app := e.open(t)
	if _, err := models.InsertUser(context.Background(), app.DB, models.NewUser{Email: "ada@example.com", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	app.Close()

	for _, tc := range []struct {
		stdin, email string
		why          string
	}{
		{"", "root@example.com", "no password on standard input"},
		{"\n", "root@example.com", "no password on standard input"},
		{"short\n", "root@example.com", "password must be 8 to 128 characters"},
		{strings.Repeat("p", 129) + "\n", "root@example.com", "password must be 8 to 128 characters"},
		{"correct horse\n", "not an email", "--email: email must"},
		{"correct horse\n", "ADA@example.com", "an account with email ada@example.com already exists (PENDING, not an approved admin)"},
	} {
		code, out, errOut := e.runMain(t, tc.stdin, "users", "create-admin", "--email", tc.email)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.why) || !strings.HasPrefix(errOut, "cloudkeys users create-admin: ") {
			t.Errorf("stdin %q, --email %q: exit %d, stdout %q, stderr %q (want %q)", tc.stdin, tc.email, code, out, errOut, tc.why)
		}
	}

	// One line is read, CRLF or not; what follows is ignored.
	code, out, errOut := e.runMain(t, "correct horse battery\r\nsecond line\n", "users", "create-admin", "--email", "root@example.com", "--data-dir", e["CLOUDKEYS_DATA_DIR"])
	if code != 0 || !strings.Contains(out, "created root@example.com: an approved admin") {
		t.Fatalf("create-admin: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "correct horse") {
		t.Fatal("the password was printed")
	}
	app = e.open(t)
	defer app.Close()
	u, err := models.UserByEmail(context.Background(), app.DB, "root@example.com")
	if err != nil || !u.IsActiveAdmin() || u.ApprovedAt == nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=1024,") {
		t.Fatalf("the admin as stored: %+v %v", u, err)
	}
	if _, _, err := app.Auth.Hasher().Verify(context.Background(), "correct horse battery", u.PasswordHash); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := app.Auth.Hasher().Verify(context.Background(), "correct horse battery", u.PasswordHash); !ok {
		t.Fatal("the stored hash is not of the line read")
	}

	// Again: an approved admin already; nothing changes.
	code, _, errOut = e.runMain(t, "another password\n", "users", "create-admin", "--email", "root@example.com")
	if code != 1 || !strings.Contains(errOut, "is an approved admin already; nothing was changed") {
		t.Fatalf("create-admin again: exit %d\n%s", code, errOut)
	}
	again, _ := models.UserByEmail(context.Background(), app.DB, "root@example.com")
	if again.PasswordHash != u.PasswordHash {
		t.Fatal("the password changed")
	}
}
