package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"cloudkeys/app"
	"cloudkeys/config"
)

// serve runs the HTTP server until ctx ends (SIGINT/SIGTERM), then stops
// accepting, lets in-flight requests finish and closes the database.
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := app.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           a.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		// No connection-wide read or write timeout: a relayed stream may
		// last CLOUDKEYS_RELAY_MAX_DURATION. Each route sets its own
		// deadlines (server.withDeadlines, relay.Gateway).
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       nil,
	}
	base := "http://" + ln.Addr().String()
	log.Info("cloudkeys is listening", "addr", ln.Addr().String(), "env", cfg.Env,
		"graphql", base+"/graphql", "playground", playgroundURL(cfg, base), "database", cfg.DatabaseName())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func playgroundURL(cfg *config.Config, base string) string {
	if !cfg.Playground {
		return "off (CLOUDKEYS_PLAYGROUND=true turns it on)"
	}
	return base + "/"
}
