package main

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"cloudkeys/relay/fakeprovider"
)

// On SIGTERM an open relay stream gets the drain period, then ends (its
// upstream call cancelled), and the usage counted so far is still written.
func TestShutdownEndsOpenStreamsAfterTheDrain(t *testing.T) {
	fake := fakeprovider.Start(t, fakeprovider.Options{EventDelay: 100 * time.Millisecond, Events: 1000}) // a 100 s stream
	dir := t.TempDir()
	vars := testEnv(dir)
	vars["CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS"] = "true"
	vars["CLOUDKEYS_SHUTDOWN_DRAIN"] = "500ms"
	vars["CLOUDKEYS_RELAY_USAGE_FLUSH"] = "1m" // only the stop writes it
	base, logs, stop := startRun(t, vars)

	post(t, base, "", `mutation { register(input: {email: "ada@example.com", password: "correct horse"}) { id } }`)
	login := post(t, base, "", `mutation { login(email: "ada@example.com", password: "correct horse") { accessToken } }`)
	token := login["data"].(map[string]any)["login"].(map[string]any)["accessToken"].(string)
	cred := post(t, base, token, `mutation { createCloudCredential(input: {name: "p", backendType: OPENAI, apiKey: "sk-drain-test-key-0123456789", baseUrl: "`+fake.URL+`"}) { id } }`)
	credID := cred["data"].(map[string]any)["createCloudCredential"].(map[string]any)["id"].(string)
	key := post(t, base, token, `mutation { createRelayKey(input: {credentialId: "`+credID+`", name: "k"}) { secret } }`)
	secret := key["data"].(map[string]any)["createRelayKey"].(map[string]any)["secret"].(string)

	req, _ := http.NewRequest("POST", base+"/relay/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("the stream did not start: %v", err)
	}

	stopped := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	took := time.Since(stopped)
	if took < 400*time.Millisecond || took > 20*time.Second {
		t.Errorf("serve stopped %v after the signal, want the drain period (500ms) and not the stream's 100 s", took)
	}
	ended := make(chan struct{})
	go func() {
		for {
			if _, err := br.ReadString('\n'); err != nil {
				close(ended)
				return
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream was still open after the server stopped")
	}
	select {
	case <-fake.Last().Canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream call was not cancelled")
	}
	if !strings.Contains(logs.String(), "drain period over") {
		t.Errorf("no log line about ending the open requests:\n%s", logs)
	}

	// The usage of the cut stream was written at the stop.
	app := env(vars).open(t)
	defer app.Close()
	var n int64
	if err := app.DB.Raw("SELECT COALESCE(SUM(requests), 0) FROM relay_usage").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d requests recorded after the stop, want the cut stream's 1", n)
	}
}
