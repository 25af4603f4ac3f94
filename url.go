package main

import (
	"errors"
	"net/url"

	"cloudkeys/models"
)

// parseURLNoSecrets returns a postgres URL with its password removed.
func parseURLNoSecrets(s string) (string, error) {
	if !models.IsPostgres(s) {
		return "", errors.New("not a URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "postgres (unparsable URL)", nil
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	u.RawQuery = ""
	return u.String(), nil
}
