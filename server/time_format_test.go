package server_test

// One precision for the Time scalar (scalar.TimeLayout): every Time field,
// whatever its source (a database column with microseconds, a JWT's whole
// seconds, a client's argument), is written as RFC 3339 in UTC with exactly
// three fractional digits.

import (
	"regexp"
	"testing"
	"time"
)

var timeFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

func wantTimeFormat(t *testing.T, field, v string) {
	t.Helper()
	if !timeFormat.MatchString(v) {
		t.Errorf("%s = %q, want RFC 3339 in UTC with milliseconds (2026-12-03T12:00:00.000Z)", field, v)
	}
}

// The createdAt of a user (a database column) and the expiresAt of a login
// payload (a JWT's exp, whole seconds) have the same format, and so does
// every other Time field.
func TestTimeOnePrecision(t *testing.T) {
	t.Parallel()
	app := startApp(t, relayConfig(t))
	c := app.client(t)
	u := c.register("ada@example.com", "correct horse")
	p := c.login("ada@example.com", "correct horse")

	wantTimeFormat(t, "register.createdAt", u.CreatedAt)
	wantTimeFormat(t, "login.expiresAt", p.ExpiresAt)
	wantTimeFormat(t, "login.refreshExpiresAt", p.RefreshExpiresAt)
	wantTimeFormat(t, "login.user.createdAt", p.User.CreatedAt)
	if len(u.CreatedAt) != len(p.ExpiresAt) {
		t.Errorf("createdAt %q and expiresAt %q differ in length", u.CreatedAt, p.ExpiresAt)
	}
	if p.User.CreatedAt != u.CreatedAt {
		t.Errorf("the same createdAt written twice differs: %q, %q", u.CreatedAt, p.User.CreatedAt)
	}
	// A JWT's exp has whole seconds: it still gets three digits.
	if exp, _ := time.Parse(time.RFC3339, p.ExpiresAt); exp.Nanosecond() != 0 || p.ExpiresAt[19:] != ".000Z" {
		t.Errorf("expiresAt %q: want whole seconds written as .000Z", p.ExpiresAt)
	}
	// Strings compare as the instants do: the token expires after the account was made.
	if !(u.CreatedAt < p.ExpiresAt && p.ExpiresAt < p.RefreshExpiresAt) {
		t.Errorf("createdAt %q, expiresAt %q, refreshExpiresAt %q do not sort as instants", u.CreatedAt, p.ExpiresAt, p.RefreshExpiresAt)
	}

	me := c.withToken(p.AccessToken)
	var got struct {
		CreatedAt  string  `json:"createdAt"`
		ApprovedAt *string `json:"approvedAt"`
		Sessions   []struct {
			CreatedAt, LastUsedAt, ExpiresAt string
		} `json:"sessions"`
	}
	me.must(`{ me { createdAt approvedAt sessions { createdAt lastUsedAt expiresAt } } }`, nil, "me", &got)
	wantTimeFormat(t, "me.createdAt", got.CreatedAt)
	if got.ApprovedAt != nil { // the first account is approved by nobody: null
		wantTimeFormat(t, "me.approvedAt", *got.ApprovedAt)
	}
	if len(got.Sessions) != 1 {
		t.Fatalf("sessions: %+v", got.Sessions)
	}
	for name, v := range map[string]string{"createdAt": got.Sessions[0].CreatedAt, "lastUsedAt": got.Sessions[0].LastUsedAt, "expiresAt": got.Sessions[0].ExpiresAt} {
		wantTimeFormat(t, "me.sessions."+name, v)
	}
	if got.Sessions[0].ExpiresAt != p.RefreshExpiresAt {
		t.Errorf("the session expires at %q, the refresh token at %q", got.Sessions[0].ExpiresAt, p.RefreshExpiresAt)
	}

	cred := me.createCred(openAIInput("fmt", apiKey(t)))
	wantTimeFormat(t, "createCloudCredential.createdAt", cred.CreatedAt)
	wantTimeFormat(t, "createCloudCredential.updatedAt", cred.UpdatedAt)

	// An argument in another zone with microseconds comes back in UTC,
	// truncated to milliseconds.
	in := time.Now().Add(time.Hour).Truncate(time.Second).Add(123456 * time.Microsecond).In(time.FixedZone("", -(9*3600 + 30*60)))
	k, _ := me.createRelayKey(cred.ID, map[string]any{"name": "fmt", "expiresAt": in.Format(time.RFC3339Nano)})
	var rk struct {
		CreatedAt string `json:"createdAt"`
		ExpiresAt string `json:"expiresAt"`
	}
	var keys []map[string]any
	me.must(`{ relayKeys { id createdAt expiresAt } }`, nil, "relayKeys", &keys)
	for _, key := range keys {
		if key["id"] == k.ID {
			rk.CreatedAt, _ = key["createdAt"].(string)
			rk.ExpiresAt, _ = key["expiresAt"].(string)
		}
	}
	wantTimeFormat(t, "relayKeys.createdAt", rk.CreatedAt)
	if want := in.UTC().Format("2006-01-02T15:04:05") + ".123Z"; rk.ExpiresAt != want {
		t.Errorf("relay key expiresAt given as %s reads %q, want %q", in.Format(time.RFC3339Nano), rk.ExpiresAt, want)
	}
}
