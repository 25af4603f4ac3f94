// Package config reads cloudkeys' configuration from the command line and
// the environment (flags win). Every setting has a development default, so
// `cloudkeys serve` runs with none; production (CLOUDKEYS_ENV=production)
// refuses to start without the secrets it must not generate.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"cloudkeys/auth"
	"cloudkeys/probe"
)

// Config is the whole configuration.
type Config struct {
	Env     string // "development" or "production"
	Addr    string
	DataDir string
	// DatabaseURL is a postgres:// URL, an SQLite file path, or empty for
	// DataDir/cloudkeys.db.
	DatabaseURL string

	JWTSecret       []byte // empty: generated into DataDir (development only)
	JWTSecretSource string // where JWTSecret came from, for the log
	JWTIssuer       string
	JWTAudience     string
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	RefreshGrace    time.Duration

	Argon2 auth.Params
	// HashConcurrency is how many Argon2id hashes may run at once: given
	// explicitly, or sized from HashMemoryBudgetMiB (each hash holds
	// Argon2.MemoryKiB) and capped at the number of CPUs.
	HashConcurrency     int
	HashMemoryBudgetMiB int
	HashWait            time.Duration

	// EncryptionKeys is a JWK Set (JSON); EncryptionKeysFile a path to one.
	// With neither, DataDir/encryption-keys.json is used (development only).
	EncryptionKeys     []byte
	EncryptionKeysFile string
	AllowMissingKeys   bool
	// KeyCheckInterval is how often a server checks its key file for
	// changes and the database for the active kid (SPEC §10: at most 10 s;
	// CLOUDKEYS_KEY_CHECK_INTERVAL).
	KeyCheckInterval time.Duration
	// HeartbeatInterval is how often a server records its heartbeat, and
	// HeartbeatLive how long after one it still counts as live
	// (CLOUDKEYS_HEARTBEAT_INTERVAL, CLOUDKEYS_HEARTBEAT_LIVE: 10 s, 30 s).
	HeartbeatInterval time.Duration
	HeartbeatLive     time.Duration
	// InstanceID names this server in heartbeats and in what the keys
	// commands print (CLOUDKEYS_INSTANCE_ID; default host-pid-random).
	InstanceID string

	LoginMaxPerEmail int
	LoginMaxPerAddr  int
	LoginWindow      time.Duration
	TrustedProxies   []netip.Prefix

	CORSOrigins    []string
	Introspection  bool
	Playground     bool
	MaxBodyBytes   int64
	MaxComplexity  int
	MaxDepth       int
	MaxAliases     int
	MaxTokens      int
	RequestTimeout time.Duration

	// MaxCredentialsPerUser caps how many cloud credentials one account may
	// store (at least 1); a cloudCredentials list is priced at it in the
	// complexity limit, so aliased lists cannot decrypt unbounded rows.
	MaxCredentialsPerUser int

	AllowPrivateBaseURLs bool
	// ProbeTimeout bounds one testCloudCredential call (SPEC: 10 s).
	ProbeTimeout time.Duration

	// The relay (SPEC §8).
	RelayMaxKeysPerCredential int           // live relay keys per credential
	RelayMaxBodyBytes         int64         // request body (413)
	RelayHeaderTimeout        time.Duration // to the provider's response headers (504)
	RelayMaxDuration          time.Duration // a whole relayed call
	RelayUsageFlush           time.Duration // how often counted usage is written

	// Registration is "open" (anyone may register) or "closed" (only
	// admins create accounts, with createUser): CLOUDKEYS_REGISTRATION.
	Registration string
	// ShutdownDrain is how long a stopping server (SIGTERM) lets in-flight
	// requests, open relay streams included, finish before it ends them
	// (CLOUDKEYS_SHUTDOWN_DRAIN).
	ShutdownDrain time.Duration
	// RegisterMaxPerAddr bounds register calls per client address per
	// RegisterWindow (CLOUDKEYS_REGISTER_MAX_PER_ADDR; 0: no limit).
	RegisterMaxPerAddr int
	RegisterWindow     time.Duration

	LogLevel  string
	LogFormat string // "text" or "json"

	// MetricsAddr is the address of the Prometheus metrics listener
	// (CLOUDKEYS_METRICS_ADDR, --metrics-addr); "" turns metrics off.
	MetricsAddr string
	// TracesEndpoint is where OpenTelemetry spans are sent (OTLP/HTTP),
	// from the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as it is) or
	// OTEL_EXPORTER_OTLP_ENDPOINT (with /v1/traces); "" turns tracing off,
	// as do OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none.
	TracesEndpoint string

	// FirstUserAdmin makes the first account ever registered an approved
	// admin (SPEC §3, §10): the default in development; in production only
	// with CLOUDKEYS_FIRST_USER_ADMIN=true — there the first admin is made
	// with 'cloudkeys users create-admin'.
	FirstUserAdmin bool
	// NoMigrate (serve --no-migrate) refuses to start while migrations are
	// pending instead of applying them.
	NoMigrate bool

	// AuditKey keys the audit trail's chain (SPEC §9), from
	// CLOUDKEYS_AUDIT_KEY or _FILE; read and checked when given.
	AuditKey       []byte
	AuditKeySource string
	// AuditRetention is how long audit events are kept
	// (CLOUDKEYS_AUDIT_RETENTION, 365 days); older ones are pruned, with a
	// checkpoint that keeps the chain verifiable.
	AuditRetention time.Duration

	// Now is the clock of tokens, sessions and the login throttle; nil is
	// the system clock. Not configurable: tests set it to move time.
	Now func() time.Time

	secretVars secretVars // the secrets' variables, read by Finish
	envErr     error      // the first malformed variable, reported by Finish
}

// secretVars are the variables that give secrets by value or by file.
type secretVars struct{ jwt, jwtFile, audit, auditFile string }

// Production reports whether the server runs in production mode.
func (c *Config) Production() bool { return c.Env == "production" }

// Load reads the configuration of `serve` from args (the flags after the
// command name) and getenv: Read, the flags of ServeFlags, then Finish with
// the secrets.
func Load(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := Read(getenv)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.ServeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := c.Finish(true); err != nil {
		return nil, err
	}
	return c, nil
}

// Read reads every setting from getenv, with the development defaults for
// those not set. It checks nothing yet: a command binds its flags to the
// fields (ServeFlags, DatabaseFlags), parses them, then calls Finish, which
// reports a malformed variable or a setting it refuses.
func Read(getenv func(string) string) *Config {
	env := envReader{getenv: getenv}
	c := &Config{
		Env:                 env.str("CLOUDKEYS_ENV", "development"),
		Addr:                env.str("CLOUDKEYS_ADDR", "127.0.0.1:8080"),
		DataDir:             env.str("CLOUDKEYS_DATA_DIR", "data"),
		DatabaseURL:         env.str("CLOUDKEYS_DATABASE_URL", ""),
		JWTIssuer:           env.str("CLOUDKEYS_JWT_ISSUER", "cloudkeys"),
		JWTAudience:         env.str("CLOUDKEYS_JWT_AUDIENCE", "cloudkeys"),
		AccessTokenTTL:      env.duration("CLOUDKEYS_ACCESS_TOKEN_TTL", 15*time.Minute),
		RefreshTokenTTL:     env.duration("CLOUDKEYS_REFRESH_TOKEN_TTL", 30*24*time.Hour),
		RefreshGrace:        env.duration("CLOUDKEYS_REFRESH_REUSE_GRACE", 10*time.Second),
		HashConcurrency:     env.integer("CLOUDKEYS_HASH_CONCURRENCY", 0),
		HashMemoryBudgetMiB: env.integer("CLOUDKEYS_HASH_MEMORY_BUDGET_MIB", 256),
		HashWait:            env.duration("CLOUDKEYS_HASH_WAIT", 2*time.Second),
		EncryptionKeys:      []byte(getenv("CLOUDKEYS_ENCRYPTION_KEYS")),
		EncryptionKeysFile:  env.str("CLOUDKEYS_ENCRYPTION_KEYS_FILE", ""),
		LoginMaxPerEmail:    env.integer("CLOUDKEYS_LOGIN_MAX_PER_EMAIL", 5),
		LoginMaxPerAddr:     env.integer("CLOUDKEYS_LOGIN_MAX_PER_ADDR", 50),
		LoginWindow:         env.duration("CLOUDKEYS_LOGIN_WINDOW", 15*time.Minute),
		CORSOrigins:         env.list("CLOUDKEYS_CORS_ORIGINS"),
		MaxBodyBytes:        int64(env.integer("CLOUDKEYS_MAX_BODY_BYTES", 1<<20)),
		MaxComplexity:       env.integer("CLOUDKEYS_MAX_COMPLEXITY", 2000),
		MaxDepth:            env.integer("CLOUDKEYS_MAX_DEPTH", 12),
		MaxAliases:          env.integer("CLOUDKEYS_MAX_ALIASES", 30),
		MaxTokens:           env.integer("CLOUDKEYS_MAX_TOKENS", 1000),
		RequestTimeout:      env.duration("CLOUDKEYS_REQUEST_TIMEOUT", 30*time.Second),
		ProbeTimeout:        env.duration("CLOUDKEYS_PROBE_TIMEOUT", probe.DefaultTimeout),
		LogLevel:            env.str("CLOUDKEYS_LOG_LEVEL", "info"),
		LogFormat:           env.str("CLOUDKEYS_LOG_FORMAT", "text"),
		Argon2: auth.Params{
			MemoryKiB:   uint32(env.integerIn("CLOUDKEYS_ARGON2_MEMORY_KIB", int(auth.DefaultParams.MemoryKiB), 64, 4<<20)),
			Iterations:  uint32(env.integerIn("CLOUDKEYS_ARGON2_ITERATIONS", int(auth.DefaultParams.Iterations), 1, 64)),
			Parallelism: uint8(env.integerIn("CLOUDKEYS_ARGON2_PARALLELISM", int(auth.DefaultParams.Parallelism), 1, 255)),
			SaltLength:  auth.DefaultParams.SaltLength,
			KeyLength:   auth.DefaultParams.KeyLength,
		},
	}
	prod := c.Env == "production"
	c.Introspection = env.boolean("CLOUDKEYS_INTROSPECTION", !prod)
	c.Playground = env.boolean("CLOUDKEYS_PLAYGROUND", !prod)
	c.FirstUserAdmin = env.boolean("CLOUDKEYS_FIRST_USER_ADMIN", !prod)
	c.AllowPrivateBaseURLs = env.boolean("CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS", false)
	c.TrustedProxies = env.prefixes("CLOUDKEYS_TRUSTED_PROXIES")
	c.MaxCredentialsPerUser = env.integer("CLOUDKEYS_MAX_CREDENTIALS_PER_USER", 100)
	c.RelayMaxKeysPerCredential = env.integerIn("CLOUDKEYS_RELAY_MAX_KEYS_PER_CREDENTIAL", 20, 1, 1000)
	c.RelayMaxBodyBytes = int64(env.integerIn("CLOUDKEYS_RELAY_MAX_BODY_BYTES", 10<<20, 1, 1<<30))
	c.RelayHeaderTimeout = env.duration("CLOUDKEYS_RELAY_HEADER_TIMEOUT", 120*time.Second)
	c.RelayMaxDuration = env.duration("CLOUDKEYS_RELAY_MAX_DURATION", 10*time.Minute)
	c.RelayUsageFlush = env.duration("CLOUDKEYS_RELAY_USAGE_FLUSH", 10*time.Second)
	c.Registration = env.str("CLOUDKEYS_REGISTRATION", "open")
	c.RegisterMaxPerAddr = env.integerIn("CLOUDKEYS_REGISTER_MAX_PER_ADDR", 10, 0, 1_000_000)
	c.RegisterWindow = time.Hour
	c.ShutdownDrain = env.duration("CLOUDKEYS_SHUTDOWN_DRAIN", 30*time.Second)
	c.MetricsAddr = env.str("CLOUDKEYS_METRICS_ADDR", "")
	c.TracesEndpoint = tracesEndpoint(getenv)
	c.KeyCheckInterval = env.duration("CLOUDKEYS_KEY_CHECK_INTERVAL", 10*time.Second)
	c.HeartbeatInterval = env.duration("CLOUDKEYS_HEARTBEAT_INTERVAL", 10*time.Second)
	c.HeartbeatLive = env.duration("CLOUDKEYS_HEARTBEAT_LIVE", 30*time.Second)
	c.InstanceID = env.str("CLOUDKEYS_INSTANCE_ID", "")
	c.AuditRetention = env.duration("CLOUDKEYS_AUDIT_RETENTION", 365*24*time.Hour)
	c.secretVars = secretVars{
		jwt: getenv("CLOUDKEYS_JWT_SECRET"), jwtFile: getenv("CLOUDKEYS_JWT_SECRET_FILE"),
		audit: getenv("CLOUDKEYS_AUDIT_KEY"), auditFile: getenv("CLOUDKEYS_AUDIT_KEY_FILE"),
	}
	c.envErr = env.err
	return c
}

// tracesEndpoint is the OTLP/HTTP traces URL the standard OTEL_* variables
// give ("" when none does, or tracing is switched off), as the OpenTelemetry
// specification reads them.
func tracesEndpoint(getenv func(string) string) string {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		strings.EqualFold(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), "none") {
		return ""
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); u != "" {
		return u
	}
	if u := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); u != "" {
		return strings.TrimRight(u, "/") + "/v1/traces"
	}
	return ""
}

// DatabaseFlags binds the flags that say where the database is:
// --data-dir and --database-url.
func (c *Config) DatabaseFlags(fs *flag.FlagSet) {
	c.DataDirFlag(fs)
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "postgres:// URL or SQLite file (CLOUDKEYS_DATABASE_URL)")
}

// DataDirFlag binds --data-dir alone.
func (c *Config) DataDirFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the SQLite file and generated development secrets (CLOUDKEYS_DATA_DIR)")
}

// ServeFlags binds the flags of `serve`.
func (c *Config) ServeFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (CLOUDKEYS_ADDR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "listen address of the Prometheus metrics, apart from --addr; empty: no metrics (CLOUDKEYS_METRICS_ADDR)")
	c.DatabaseFlags(fs)
	fs.BoolVar(&c.AllowMissingKeys, "allow-missing-keys", false, "start even if stored API keys use encryption keys missing from the key set (those read NEEDS_REENTRY)")
	fs.BoolVar(&c.NoMigrate, "no-migrate", false, "do not apply pending database migrations: refuse to start while any is pending ('cloudkeys migrate' applies them)")
}

// Finish checks what Read and the flags gave. With secrets (serve), it also
// reads the JWT secret and the audit key, and production requires the JWT
// secret and the encryption keys; the operator's commands (keys, migrate,
// users) pass false: they sign no token, and find the keys themselves if
// they need them.
func (c *Config) Finish(secrets bool) error {
	if c.envErr != nil {
		return c.envErr
	}
	switch c.Env {
	case "development", "production":
	default:
		return fmt.Errorf("CLOUDKEYS_ENV must be development or production, not %q", c.Env)
	}
	if secrets {
		if err := c.loadJWTSecret(); err != nil {
			return err
		}
		if err := c.loadAuditKey(); err != nil {
			return err
		}
		if c.Production() && len(c.EncryptionKeys) == 0 && c.EncryptionKeysFile == "" {
			return errors.New("production needs encryption keys: set CLOUDKEYS_ENCRYPTION_KEYS (a JWK Set) or CLOUDKEYS_ENCRYPTION_KEYS_FILE")
		}
	}
	if c.LoginWindow <= 0 && (c.LoginMaxPerEmail > 0 || c.LoginMaxPerAddr > 0) {
		return errors.New("CLOUDKEYS_LOGIN_WINDOW must be longer than 0 while a login limit is set (set CLOUDKEYS_LOGIN_MAX_PER_EMAIL and _PER_ADDR to 0 to turn the throttle off)")
	}
	if c.AccessTokenTTL <= 0 || c.RefreshTokenTTL <= 0 {
		return errors.New("CLOUDKEYS_ACCESS_TOKEN_TTL and CLOUDKEYS_REFRESH_TOKEN_TTL must be longer than 0")
	}
	if c.RelayHeaderTimeout <= 0 || c.RelayMaxDuration <= 0 || c.RelayUsageFlush <= 0 || c.RelayUsageFlush > time.Minute {
		return errors.New("CLOUDKEYS_RELAY_HEADER_TIMEOUT and CLOUDKEYS_RELAY_MAX_DURATION must be longer than 0, and CLOUDKEYS_RELAY_USAGE_FLUSH between 0 and 1m (lastUsedAt is at most a minute stale)")
	}
	if c.KeyCheckInterval <= 0 || c.KeyCheckInterval > 10*time.Second {
		return fmt.Errorf("CLOUDKEYS_KEY_CHECK_INTERVAL is %s: it must be longer than 0 and at most 10s (servers pick up a new key file and active key within it)", c.KeyCheckInterval)
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval > 10*time.Second || c.HeartbeatLive <= c.HeartbeatInterval {
		return fmt.Errorf("CLOUDKEYS_HEARTBEAT_INTERVAL (%s) must be longer than 0 and at most 10s, and CLOUDKEYS_HEARTBEAT_LIVE (%s) longer than it", c.HeartbeatInterval, c.HeartbeatLive)
	}
	if c.ShutdownDrain <= 0 {
		return errors.New("CLOUDKEYS_SHUTDOWN_DRAIN must be longer than 0")
	}
	if c.Registration != "open" && c.Registration != "closed" {
		return fmt.Errorf("CLOUDKEYS_REGISTRATION is %q: it must be open or closed", c.Registration)
	}
	if c.HashConcurrency == 0 {
		c.HashConcurrency = HashSlots(c.HashMemoryBudgetMiB, c.Argon2.MemoryKiB, runtime.NumCPU())
	}
	return nil
}

// HashSlots sizes the hashing semaphore to a memory budget: as many hashes
// of memoryKiB as fit in budgetMiB, at least one, and no more than the CPUs
// that can run them.
func HashSlots(budgetMiB int, memoryKiB uint32, cpus int) int {
	n := budgetMiB * 1024 / max(int(memoryKiB), 1)
	return max(1, min(n, cpus))
}

// MinJWTSecretLen is the shortest JWT secret accepted, in bytes (HS256 wants
// at least 256 bits).
const MinJWTSecretLen = 32

func (c *Config) loadJWTSecret() error {
	secret, source, err := readSecret("CLOUDKEYS_JWT_SECRET", c.secretVars.jwt, c.secretVars.jwtFile)
	switch {
	case err != nil:
		return err
	case secret == nil && c.Production():
		return errors.New("production needs a JWT secret: set CLOUDKEYS_JWT_SECRET or CLOUDKEYS_JWT_SECRET_FILE (at least 32 bytes; 'cloudkeys init' writes one)")
	case secret == nil:
		return nil // generated into the data directory by the caller
	}
	if len(secret) < MinJWTSecretLen {
		return fmt.Errorf("the JWT secret from %s is too short: it needs at least %d bytes", source, MinJWTSecretLen)
	}
	c.JWTSecret, c.JWTSecretSource = secret, source
	return nil
}

// MinAuditKeyLen is the shortest audit key accepted, in bytes.
const MinAuditKeyLen = 32

// loadAuditKey reads CLOUDKEYS_AUDIT_KEY or _FILE, the key of the audit
// trail's chain (SPEC §9), and checks its length. Production requires it
// ('cloudkeys init' writes one); in development, without one, the caller
// generates one into the data directory (AuditKeyPath).
func (c *Config) loadAuditKey() error {
	key, source, err := readSecret("CLOUDKEYS_AUDIT_KEY", c.secretVars.audit, c.secretVars.auditFile)
	switch {
	case err != nil:
		return err
	case key == nil && c.Production():
		return errors.New("production needs an audit key: set CLOUDKEYS_AUDIT_KEY or CLOUDKEYS_AUDIT_KEY_FILE (at least 32 bytes; 'cloudkeys init' writes one)")
	case key == nil:
		return nil
	}
	if len(key) < MinAuditKeyLen {
		return fmt.Errorf("the audit key from %s is too short: it needs at least %d bytes", source, MinAuditKeyLen)
	}
	c.AuditKey, c.AuditKeySource = key, source
	return nil
}

// readSecret reads the secret of variable name, given by value or in the
// file named by name_FILE (trailing line breaks trimmed); nil if neither
// is set.
func readSecret(name, value, file string) ([]byte, string, error) {
	switch {
	case value != "" && file != "":
		return nil, "", fmt.Errorf("set %s or %s_FILE, not both", name, name)
	case value != "":
		return []byte(value), name, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("read %s_FILE: %w", name, err)
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), file, nil
	}
	return nil, "", nil
}

// AuditKeyPath is where a development audit key is generated.
func (c *Config) AuditKeyPath() string { return filepath.Join(c.DataDir, "audit-key") }

// LoadAuditKey reads the audit key for a command that records or checks
// audit events without serving (cloudkeys audit verify, the keys
// commands): CLOUDKEYS_AUDIT_KEY or _FILE, or, in development, the data
// directory's generated file if there is one. It returns nil, nil when
// there is none (development only).
func (c *Config) LoadAuditKey() ([]byte, error) {
	if err := c.loadAuditKey(); err != nil {
		return nil, err
	}
	if c.AuditKey != nil {
		return c.AuditKey, nil
	}
	b, err := os.ReadFile(c.AuditKeyPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the audit key: %w", err)
	}
	c.AuditKey, c.AuditKeySource = b, c.AuditKeyPath()
	return b, nil
}

// JWTSecretPath is where a development JWT secret is generated.
func (c *Config) JWTSecretPath() string { return filepath.Join(c.DataDir, "jwt-secret") }

// EncryptionKeysPath is the key file used when no keys are configured.
func (c *Config) EncryptionKeysPath() string {
	if c.EncryptionKeysFile != "" {
		return c.EncryptionKeysFile
	}
	return filepath.Join(c.DataDir, "encryption-keys.json")
}

// envReader reads typed variables, remembering the first malformed one.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) str(name, def string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return def
}

func (e *envReader) fail(name, v, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("%s=%q: want %s", name, v, want)
	}
}

func (e *envReader) duration(name string, def time.Duration) time.Duration {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(name, v, "a duration such as 15m or 10s")
		return def
	}
	return d
}

func (e *envReader) integer(name string, def int) int {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(name, v, "a whole number")
		return def
	}
	return n
}

// integerIn is integer with bounds: a value outside [lo, hi] is refused
// rather than wrapped or clamped.
func (e *envReader) integerIn(name string, def, lo, hi int) int {
	n := e.integer(name, def)
	if n < lo || n > hi {
		e.fail(name, e.getenv(name), fmt.Sprintf("a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (e *envReader) boolean(name string, def bool) bool {
	v := e.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(name, v, "true or false")
		return def
	}
	return b
}

func (e *envReader) list(name string) []string {
	var out []string
	for _, s := range strings.Split(e.getenv(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (e *envReader) prefixes(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range e.list(name) {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				e.fail(name, s, "IP addresses or CIDR prefixes, comma-separated")
				continue
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			e.fail(name, s, "IP addresses or CIDR prefixes, comma-separated")
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}
