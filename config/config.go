// Package config is cspine's configuration: one YAML file, checked on
// start with every problem reported at once, then overridden by
// environment variables (and, in cspine serve, by flags).
//
// Precedence, lowest first: built-in defaults, the YAML file, CSPINE_*
// environment variables, command-line flags. Unknown YAML keys are errors.
//
// Secrets never come from the file: a database password is given by
// CSPINE_DATABASE_DSN or PGPASSWORD (a password inside database.dsn in the
// file is refused), the session signing key by CSPINE_SESSION_KEY and the
// first administrator's password by CSPINE_ADMIN_PASSWORD.
package config

import (
	"time"
)

// Config is the whole node configuration.
type Config struct {
	// DataDir holds the spool, the reports, and the default SQLite
	// database (default "cspine-data", relative to the working directory).
	DataDir string `yaml:"data_dir"`

	DICOM     DICOM         `yaml:"dicom"`
	HTTP      HTTP          `yaml:"http"`
	Database  Database      `yaml:"database"`
	Pipeline  Pipeline      `yaml:"pipeline"`
	Study     Study         `yaml:"study"`
	Jobs      Jobs          `yaml:"jobs"`
	Pull      Pull          `yaml:"pull"`
	Schedules Schedules     `yaml:"schedules"`
	Retention Retention     `yaml:"retention"`
	Log       Log           `yaml:"log"`
	Routing   Routing       `yaml:"routing"`
	Dests     []Destination `yaml:"destinations"`

	// Secrets come from the environment only.
	Secrets Secrets `yaml:"-"`

	envDSN string // CSPINE_DATABASE_DSN, the one DSN allowed a password
}

// DICOM configures the node's Application Entity.
type DICOM struct {
	// Listen is the C-STORE SCP address, HOST:PORT (default ":11112").
	Listen string `yaml:"listen"`
	// AETitle we answer to and call as (default "CSPINE"; 1–16
	// characters of the default repertoire, no backslash).
	AETitle string `yaml:"ae_title"`
	// AllowedPeers are the callers accepted, each "AE@HOST" (HOST an IP
	// address, a CIDR prefix or a host name), "AE" (any host) or "*@HOST"
	// (any title). Empty accepts any caller (a warning is logged).
	AllowedPeers []Peer `yaml:"allowed_peers"`
	// AcceptAllStorage also stores (but never measures) any Storage SOP
	// class, instead of only CR and DX.
	AcceptAllStorage bool   `yaml:"accept_all_storage"`
	Limits           Limits `yaml:"limits"`
	TLS              TLS    `yaml:"tls"`
}

// Limits bound the DICOM service.
type Limits struct {
	// MaxAssociations at once (default 32).
	MaxAssociations int `yaml:"max_associations"`
	// MaxPDULength we announce, in bytes (default 1 MiB; 4 KiB–64 MiB).
	MaxPDULength uint32 `yaml:"max_pdu_length"`
	// MaxObjectSize of one received data set, in bytes (default 4 GiB).
	MaxObjectSize int64 `yaml:"max_object_size"`
	// Timeouts (defaults: ARTIM 30s, idle 120s, read 60s, write 60s).
	ARTIMTimeout time.Duration `yaml:"artim_timeout"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// TLS configures a TLS listener (DICOM TLS profile or HTTPS).
type TLS struct {
	Enabled  bool   `yaml:"enabled"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile verifies client (and, when sending, server) certificates.
	CAFile string `yaml:"ca_file"`
	// RequireClientCert demands a client certificate signed by CAFile.
	RequireClientCert bool `yaml:"require_client_cert"`
}

// Destination is a DICOM peer that receives reports by C-STORE. In YAML it
// is a mapping or the short form "AE@HOST:PORT" (named after its AE).
type Destination struct {
	// Name used by routing and stored with each transfer (default AETitle).
	Name    string `yaml:"name"`
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
	Port    int    `yaml:"port"`
	// TLS uses the DICOM TLS profile to reach it (dicom.tls.ca_file
	// verifies it).
	TLS bool `yaml:"tls"`
}

// RoutingCalling is the Routing.Default value that sends reports back to
// the destination whose AE title is the calling AE title of the study.
const RoutingCalling = "calling"

// Routing chooses where a study's reports go.
type Routing struct {
	// Default: RoutingCalling (the default), or a destination name.
	Default string `yaml:"default"`
	// ByCallingAE maps a calling AE title to destination names; it takes
	// precedence over Default.
	ByCallingAE map[string][]string `yaml:"by_calling_ae"`
}

// HTTP configures the web service: review UI, API, health and metrics.
type HTTP struct {
	// Listen address (default "127.0.0.1:8080").
	Listen string `yaml:"listen"`
	TLS    TLS    `yaml:"tls"`
	// BehindTLSProxy marks session cookies Secure although this listener
	// speaks plain HTTP (TLS ends at a reverse proxy).
	BehindTLSProxy bool `yaml:"behind_tls_proxy"`
	// SessionTTL of a reviewer login (default 8h).
	SessionTTL time.Duration `yaml:"session_ttl"`
}

// Database names the database.
type Database struct {
	// DSN: "postgres://user@host:5432/db?sslmode=..." or "sqlite:PATH"
	// (default sqlite:<data_dir>/cspine.db). No password here.
	DSN string `yaml:"dsn"`
	// MaxOpenConns of the PostgreSQL pool (default 10).
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Pipeline configures the measurement.
type Pipeline struct {
	// ModelDir holds the ONNX models and their manifest (default
	// <data_dir>/models).
	ModelDir string `yaml:"model_dir"`
	// Threads for ONNX Runtime's intra-op pool (default 0: its own choice).
	Threads int `yaml:"threads"`
	// Device: "cpu" (default) or "cuda".
	Device string `yaml:"device"`
	// SingleStage runs the global model alone (baseline; not for clinical
	// use). With the shipped thresholds every such result is flagged for
	// review: the C7 risk model needs the specialists' features.
	SingleStage bool `yaml:"single_stage"`
	// ThresholdsFile replaces the shipped, calibrated review thresholds
	// (a JSON file in pipeline's thresholds format).
	ThresholdsFile string `yaml:"thresholds_file"`
	// Review overrides single thresholds; unset keeps the calibrated value.
	Review ReviewThresholds `yaml:"review"`
	// Views widen the images measured.
	Views Views `yaml:"views"`
}

// ReviewThresholds override calibrated review thresholds one by one.
type ReviewThresholds struct {
	C7MinConfidence     *float64 `yaml:"c7_min_confidence"`      // 0..1
	C7MaxDisagreementMM *float64 `yaml:"c7_max_disagreement_mm"` // > 0
	C7ObscuredMinProb   *float64 `yaml:"c7_obscured_min_prob"`   // 0..1
}

// Views says which non-neutral lateral views are measured too.
type Views struct {
	IncludeFlexionExtension bool `yaml:"include_flexion_extension"`
	IncludeOblique          bool `yaml:"include_oblique"`
}

// Study configures study assembly.
type Study struct {
	// QuietTime after a study's last instance before it is complete
	// (default 30s).
	QuietTime time.Duration `yaml:"quiet_time"`
}

// Jobs configures the durable job workers.
type Jobs struct {
	// Concurrency per job kind on this node (defaults: analyze 1, send 4,
	// pull 1). 0 disables a kind on this node.
	AnalyzeWorkers *int `yaml:"analyze_workers"`
	SendWorkers    *int `yaml:"send_workers"`
	PullWorkers    *int `yaml:"pull_workers"`
	// Lease of a claimed job (default 1m).
	Lease time.Duration `yaml:"lease"`
	// MaxAttempts before a job is dead (default 10).
	MaxAttempts int `yaml:"max_attempts"`
	// BackoffBase and BackoffMax of the exponential retry delay
	// (defaults 10s and 1h).
	BackoffBase time.Duration `yaml:"backoff_base"`
	BackoffMax  time.Duration `yaml:"backoff_max"`
	// Timeout of one attempt (default 10m).
	Timeout time.Duration `yaml:"timeout"`
}

// Pull configures the scheduled query/retrieve from a PACS.
type Pull struct {
	// Peer is the Q/R SCP, "AE@HOST:PORT"; empty disables pulling.
	Peer *Destination `yaml:"peer"`
	// Lookback is how far back each pull queries (default 24h).
	Lookback time.Duration `yaml:"lookback"`
	// Modalities queried (default CR, DX).
	Modalities []string `yaml:"modalities"`
	// BodyParts accepted in the query (default CSPINE, NECK; empty list = any).
	BodyParts []string `yaml:"body_parts"`
}

// Schedules are cron specifications (5 fields, or @every/@daily...) in
// the node's local time zone; "" disables a task.
type Schedules struct {
	Pull         string `yaml:"pull"`          // default "*/15 * * * *" (only with pull.peer)
	RetrySweep   string `yaml:"retry_sweep"`   // default "@every 1m"
	Retention    string `yaml:"retention"`     // default "30 3 * * *"
	DailySummary string `yaml:"daily_summary"` // default "0 7 * * *"
}

// Retention configures the spool purge.
type Retention struct {
	// SpoolDays keeps received images this many days after their study is
	// complete (default 30; 0 keeps them for ever).
	SpoolDays *int `yaml:"spool_days"`
	// JobDays keeps completed and cancelled jobs this many days after they
	// finished (default 90; 0 keeps them for ever). Dead jobs are kept.
	JobDays *int `yaml:"job_days"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // json (default) or text
}

// Secrets are read from the environment only.
type Secrets struct {
	// SessionKey signs session and CSRF tokens (CSPINE_SESSION_KEY, at
	// least 32 bytes); empty: a random key per start (sessions end on
	// restart).
	SessionKey string
	// AdminPassword creates the first admin account when none exists
	// (CSPINE_ADMIN_PASSWORD).
	AdminPassword string
}

// Default returns the built-in configuration.
func Default() *Config {
	return &Config{
		DataDir: "cspine-data",
		DICOM: DICOM{
			Listen:  ":11112",
			AETitle: "CSPINE",
			Limits: Limits{
				MaxAssociations: 32, MaxPDULength: 1 << 20, MaxObjectSize: 4 << 30,
				ARTIMTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
				ReadTimeout: 60 * time.Second, WriteTimeout: 60 * time.Second,
			},
		},
		HTTP:     HTTP{Listen: "127.0.0.1:8080", SessionTTL: 8 * time.Hour},
		Database: Database{MaxOpenConns: 10},
		Pipeline: Pipeline{Device: "cpu"},
		Study:    Study{QuietTime: 30 * time.Second},
		Jobs: Jobs{
			AnalyzeWorkers: ptr(1), SendWorkers: ptr(4), PullWorkers: ptr(1),
			Lease: time.Minute, MaxAttempts: 10, BackoffBase: 10 * time.Second, BackoffMax: time.Hour,
			Timeout: 10 * time.Minute,
		},
		Pull: Pull{Lookback: 24 * time.Hour, Modalities: []string{"CR", "DX"}, BodyParts: []string{"CSPINE", "NECK"}},
		Schedules: Schedules{
			Pull: "*/15 * * * *", RetrySweep: "@every 1m", Retention: "30 3 * * *", DailySummary: "0 7 * * *",
		},
		Retention: Retention{SpoolDays: ptr(30), JobDays: ptr(90)},
		Log:       Log{Level: "info", Format: "json"},
		Routing:   Routing{Default: RoutingCalling},
	}
}

func ptr[T any](v T) *T { return &v }
