package server

import (
	"strings"

	"cloudkeys/graph"
	"cloudkeys/models"
)

// The costs gqlgen's complexity limit (CLOUDKEYS_MAX_COMPLEXITY) adds up.
// A field costs 1 plus what it selects, except:
const (
	// expensiveCost is the cost of a field that hashes a password with
	// Argon2id (64 MiB and tens of milliseconds each), counts a sign-in
	// attempt, rotates a refresh token or calls a provider (up to 10 s): at
	// the default limit of 2000, a request holds at most nine of them, so
	// aliases cannot batch hundreds of password guesses into one request —
	// a request over the limit is refused whole before any field runs.
	expensiveCost = 200
	// defaultPage and maxPage mirror users(first: Int = 50), 1–100.
	defaultPage, maxPage = 50, 100
)

// complexity returns the schema's custom costs. Lists cost their most
// rows times what each row selects: users(first) its page size, and
// cloudCredentials (not paginated) maxCredentials, the per-owner cap — so
// the complexity limit bounds how many rows one request can make the
// server load and decrypt, aliases included. A page of 100 users with every
// field (about 1,500) or a full list of 100 credentials with every field
// (1,001) fits the default limit; two of either do not.
//
// Relay keys: a credential's list is bounded by maxRelayKeys (live keys per
// credential) and priced at it; Query.relayKeys, over every credential, is
// priced the same (the bound would be maxCredentials × maxRelayKeys, which
// no selection could afford: listing keys decrypts nothing). usageByDay
// costs its days (1–366) times what each day selects.
func complexity(maxCredentials, maxRelayKeys int) graph.ComplexityRoot {
	var c graph.ComplexityRoot
	c.Mutation.Register = func(child int, _ graph.RegisterInput) int { return expensiveCost + child }
	c.Mutation.Login = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.RefreshToken = func(child int, _ string) int { return expensiveCost + child }
	c.Mutation.ChangePassword = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.ResetUserPassword = func(child int, _, _ string) int { return expensiveCost + child }
	c.Mutation.CreateUser = func(child int, _ graph.RegisterInput) int { return expensiveCost + child }
	c.User.Sessions = func(child int) int { return 1 + models.MaxLiveSessions*child }
	c.Mutation.TestCloudCredential = func(child int, _ string) int { return expensiveCost + child }
	c.Query.CloudCredentials = func(child int) int { return credentialListCost(maxCredentials, child) }
	c.Query.RelayKeys = func(child int) int { return 1 + maxRelayKeys*child }
	c.CloudCredential.RelayKeys = func(child int) int { return 1 + maxRelayKeys*child }
	usageDays := func(child int, days *int) int {
		n := 30
		if days != nil {
			n = min(max(*days, 1), models.MaxUsageDays)
		}
		return 1 + n*child
	}
	c.CloudCredential.UsageByDay = usageDays
	c.RelayKey.UsageByDay = usageDays
	c.Mutation.CreateRelayKey = func(child int, _ graph.CreateRelayKeyInput) int { return 10 + child }
	c.Query.Users = func(child int, _ *models.UserStatus, first *int, _ *string) int {
		n := defaultPage
		if first != nil {
			n = min(max(*first, 1), maxPage)
		}
		return 1 + n*child
	}
	return c
}

func credentialListCost(maxCredentials, child int) int { return 1 + maxCredentials*child }

// FullCredentialListCost is the cost of a cloudCredentials list that
// selects every scalar and enum field of CloudCredential (cost 1 each; the
// relay keys and usage are objects a listing need not select) at the cap of
// maxCredentials rows.
func FullCredentialListCost(maxCredentials int) int {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	fields := 0
	for _, f := range schema.Types["CloudCredential"].Fields {
		if t := schema.Types[f.Type.Name()]; !strings.HasPrefix(f.Name, "__") && t != nil && (t.Kind == "SCALAR" || t.Kind == "ENUM") {
			fields++
		}
	}
	return credentialListCost(maxCredentials, fields)
}
