package config

import (
	"net/url"

	"cloudkeys/models"
)

// DatabaseName names the configured database without its credentials, for
// logs: "sqlite data/cloudkeys.db", or a PostgreSQL URL without its password
// and query string (which can carry one too).
func (c *Config) DatabaseName() string {
	if !models.IsPostgres(c.DatabaseURL) {
		return "sqlite " + models.Options{URL: c.DatabaseURL, DataDir: c.DataDir}.SQLitePath()
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		return "postgres (unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery = ""
	return u.String()
}
