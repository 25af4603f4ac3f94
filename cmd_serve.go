package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cloudkeys/app"
	"cloudkeys/config"
)

const serveAbout = `Run the server: GraphQL at /graphql, the playground at / (development),
/healthz and /readyz. With no configuration it keeps an SQLite database and
generated development secrets in ./data. CLOUDKEYS_ENV=production refuses to
start without an explicit JWT secret and encryption keys ('cloudkeys init'
writes them). Pending database migrations are applied at start-up unless
--no-migrate. Every flag has an environment variable (in brackets); the
flag wins. The README lists all the variables.`

// serveCommand runs the HTTP server until ctx ends (SIGINT/SIGTERM), then
// stops accepting, lets in-flight requests finish and closes the database.
func serveCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCommand("serve", "cloudkeys serve [flags]", serveAbout)
	cfg := config.Read(getenv)
	cfg.ServeFlags(c.fs)
	rest, err := c.parse(args, stdout, stderr)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest, stderr); err != nil {
		return err
	}
	if err := cfg.Finish(true); err != nil {
		return err
	}
	return serve(ctx, cfg, stderr)
}

func serve(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	log := app.NewLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	a, err := app.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	stopHUP := reloadOnHUP(a)
	defer stopHUP()
	stopMetrics, err := serveMetrics(a)
	if err != nil {
		return err
	}
	defer stopMetrics()

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
	log.Info("shutting down: finishing in-flight requests", "drain", cfg.ShutdownDrain)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownDrain)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Open relay streams outlived the drain period: end them (their
		// upstream calls are cancelled), then close as usual, so that the
		// usage counted so far is still flushed.
		log.Warn("drain period over: ending the requests still open", "error", err)
		srv.Close()
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

// reloadOnHUP reloads the key file on every SIGHUP until the returned
// function is called (ReloadKeys logs what it did, or why it could not).
func reloadOnHUP(a *app.App) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-hup:
				_ = a.ReloadKeys("SIGHUP")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}

// serveMetrics serves a's metrics at /metrics on their own listener,
// CLOUDKEYS_METRICS_ADDR (never on the main one: scrapers, not clients,
// reach it), until the returned function is called; without metrics it
// does nothing. Anything but GET /metrics is 404.
func serveMetrics(a *app.App) (stop func(), err error) {
	if a.Metrics == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", a.Config.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener (CLOUDKEYS_METRICS_ADDR): %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.Metrics.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	a.Log.Info("metrics are served", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/metrics")
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("the metrics listener stopped", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
