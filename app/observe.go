package app

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"cloudkeys/auth"
	"cloudkeys/metrics"
	"cloudkeys/models"
	"cloudkeys/relay"
	"cloudkeys/traces"
)

// openObservability builds the metrics (when CLOUDKEYS_METRICS_ADDR is set)
// and the tracing (when an OTLP endpoint is), and hooks what Open has
// built so far to them: the database pool, the failures of enc to open a
// stored key, and the GORM tracing plugin. With neither configured it
// builds nothing and everything stays unhooked. It runs before any
// goroutine uses the database handle.
func (a *App) openObservability(ctx context.Context, enc *models.Encryption) error {
	cfg := a.Config
	if cfg.MetricsAddr != "" {
		a.Metrics = metrics.New()
		if sqlDB, err := a.DB.DB(); err == nil {
			a.Metrics.DatabasePool(sqlDB)
		}
		enc.OnOpenFailure = a.Metrics.KeyOpenFailed
	}
	t, err := traces.New(ctx, traces.Options{Endpoint: cfg.TracesEndpoint})
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	a.Tracing = t
	a.Log.Info("sending traces", "endpoint", redactedEndpoint(cfg.TracesEndpoint))
	return a.DB.Use(t.GORM())
}

// redactedEndpoint is the OTLP endpoint as logged: without a user or a
// query, which could hold a credential.
func redactedEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(not a URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// authObserver is what the account service tells of sign-ins: the metrics,
// or nobody.
func (a *App) authObserver() auth.Observer {
	if a.Metrics == nil {
		return nil
	}
	return a.Metrics
}

// relayObserver is what the relay tells of its calls: the metrics, or
// nobody.
func (a *App) relayObserver() relay.Observer {
	if a.Metrics == nil {
		return nil
	}
	return a.Metrics
}

// upstreamTracing wraps the relay's upstream transport in the tracing's
// client spans, or is nil.
func (a *App) upstreamTracing() func(http.RoundTripper) http.RoundTripper {
	if a.Tracing == nil {
		return nil
	}
	return a.Tracing.Transport
}

// shutdownTracing sends the spans still buffered (at most 5 s).
func (a *App) shutdownTracing() error {
	if a.Tracing == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return a.Tracing.Shutdown(ctx)
}
