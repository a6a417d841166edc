package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load builds the configuration: defaults, then the YAML file at path (none
// when path is ""), then the environment (getenv; nil means os.Getenv). It
// returns a validated Config, or an error listing every problem. Callers
// that apply flags afterwards call Validate again.
func Load(path string, getenv func(string) string) (*Config, error) {
	c, err := loadUnvalidated(path, getenv)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func loadUnvalidated(path string, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := decode(b, c); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	return c, nil
}

// decode reads YAML into c, refusing unknown keys and trailing documents.
func decode(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return fmt.Errorf("parse YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("parse YAML: more than one document")
	}
	return nil
}

// EnvVar documents one environment variable.
type EnvVar struct {
	Name  string
	Field string // the YAML key it overrides, or "(secret)"
	set   func(c *Config, v string) error
}

// EnvVars lists the environment variables Load reads.
func EnvVars() []EnvVar { return envVars }

var envVars = []EnvVar{
	{"CSPINE_DATA_DIR", "data_dir", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"CSPINE_DICOM_LISTEN", "dicom.listen", func(c *Config, v string) error { c.DICOM.Listen = v; return nil }},
	{"CSPINE_AE_TITLE", "dicom.ae_title", func(c *Config, v string) error { c.DICOM.AETitle = v; return nil }},
	{"CSPINE_ALLOWED_PEERS", "dicom.allowed_peers (comma-separated AE@HOST)", func(c *Config, v string) error {
		c.DICOM.AllowedPeers = nil
		for _, s := range splitList(v) {
			p, err := ParsePeer(s)
			if err != nil {
				return err
			}
			c.DICOM.AllowedPeers = append(c.DICOM.AllowedPeers, p)
		}
		return nil
	}},
	{"CSPINE_DESTINATIONS", "destinations (comma-separated AE@HOST:PORT)", func(c *Config, v string) error {
		c.Dests = nil
		for _, s := range splitList(v) {
			d, err := ParseDestination(s)
			if err != nil {
				return err
			}
			c.Dests = append(c.Dests, d)
		}
		return nil
	}},
	{"CSPINE_ROUTING_DEFAULT", "routing.default", func(c *Config, v string) error { c.Routing.Default = v; return nil }},
	{"CSPINE_HTTP_LISTEN", "http.listen", func(c *Config, v string) error { c.HTTP.Listen = v; return nil }},
	{"CSPINE_DATABASE_DSN", "database.dsn (may hold a password)", func(c *Config, v string) error {
		c.Database.DSN, c.envDSN = v, v
		return nil
	}},
	{"CSPINE_MODEL_DIR", "pipeline.model_dir", func(c *Config, v string) error { c.Pipeline.ModelDir = v; return nil }},
	{"CSPINE_PIPELINE_THREADS", "pipeline.threads", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		c.Pipeline.Threads = n
		return nil
	}},
	{"CSPINE_PIPELINE_DEVICE", "pipeline.device", func(c *Config, v string) error { c.Pipeline.Device = v; return nil }},
	{"CSPINE_STUDY_QUIET_TIME", "study.quiet_time", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("not a duration (like 30s): %q", v)
		}
		c.Study.QuietTime = d
		return nil
	}},
	{"CSPINE_PULL_PEER", "pull.peer (AE@HOST:PORT)", func(c *Config, v string) error {
		if v == "" {
			c.Pull.Peer = nil
			return nil
		}
		d, err := ParseDestination(v)
		if err != nil {
			return err
		}
		c.Pull.Peer = &d
		return nil
	}},
	{"CSPINE_SCHEDULE_PULL", "schedules.pull", func(c *Config, v string) error { c.Schedules.Pull = v; return nil }},
	{"CSPINE_SCHEDULE_RETRY_SWEEP", "schedules.retry_sweep", func(c *Config, v string) error { c.Schedules.RetrySweep = v; return nil }},
	{"CSPINE_SCHEDULE_RETENTION", "schedules.retention", func(c *Config, v string) error { c.Schedules.Retention = v; return nil }},
	{"CSPINE_SCHEDULE_DAILY_SUMMARY", "schedules.daily_summary", func(c *Config, v string) error { c.Schedules.DailySummary = v; return nil }},
	{"CSPINE_LOG_LEVEL", "log.level", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"CSPINE_LOG_FORMAT", "log.format", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"CSPINE_SESSION_KEY", "(secret) session signing key", func(c *Config, v string) error { c.Secrets.SessionKey = v; return nil }},
	{"CSPINE_ADMIN_PASSWORD", "(secret) first admin password", func(c *Config, v string) error { c.Secrets.AdminPassword = v; return nil }},
}

// applyEnv applies every set CSPINE_* variable; all bad values are
// reported together.
func (c *Config) applyEnv(getenv func(string) string) error {
	var probs []Problem
	for _, e := range envVars {
		v, ok := lookup(getenv, e.Name)
		if !ok {
			continue
		}
		if err := e.set(c, v); err != nil {
			probs = append(probs, Problem{Field: "$" + e.Name, Msg: err.Error()})
		}
	}
	if len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// lookup treats an empty variable as unset.
func lookup(getenv func(string) string, name string) (string, bool) {
	v := strings.TrimSpace(getenv(name))
	return v, v != ""
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// DSN returns the database DSN, defaulting to the SQLite file in DataDir.
func (c *Config) DSN() string {
	if c.Database.DSN != "" {
		return c.Database.DSN
	}
	return "sqlite:" + filepath.Join(c.DataDir, "cspine.db")
}

// RedactedDSN is DSN() fit for logs (password replaced).
func (c *Config) RedactedDSN() string {
	dsn := c.DSN()
	if strings.HasPrefix(dsn, "sqlite:") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}

// ModelDir returns the model directory, defaulting into DataDir.
func (c *Config) ModelDir() string {
	if c.Pipeline.ModelDir != "" {
		return c.Pipeline.ModelDir
	}
	return filepath.Join(c.DataDir, "models")
}

// Destination returns the destination with a name.
func (c *Config) Destination(name string) (Destination, bool) {
	for _, d := range c.Dests {
		if d.Name == name {
			return d, true
		}
	}
	return Destination{}, false
}

// DestinationsFor returns where the reports of a study received from
// callingAE go: the ByCallingAE mapping, else Default ("calling": the
// destination whose AE title is callingAE). An empty result means the
// configuration names no destination for that caller.
func (c *Config) DestinationsFor(callingAE string) []Destination {
	names, ok := c.Routing.ByCallingAE[callingAE]
	if !ok {
		def := c.Routing.Default
		if def == "" || def == RoutingCalling {
			for _, d := range c.Dests {
				if d.AETitle == callingAE {
					return []Destination{d}
				}
			}
			return nil
		}
		names = []string{def}
	}
	var out []Destination
	for _, n := range names {
		if d, ok := c.Destination(n); ok {
			out = append(out, d)
		}
	}
	return out
}

// SlogLevel is Log.Level as a slog.Level.
func (c *Config) SlogLevel() slog.Level {
	switch c.Log.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Backoff is the configured retry delay of attempt n (1-based) without
// jitter: BackoffBase·2^(n−1), capped at BackoffMax.
func (j Jobs) Backoff(n int) time.Duration {
	d := j.BackoffBase
	for i := 1; i < n && d < j.BackoffMax; i++ {
		d *= 2
	}
	return min(d, j.BackoffMax)
}
