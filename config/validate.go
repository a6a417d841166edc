package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Problem is one invalid setting.
type Problem struct {
	Field string // YAML path, or $VARIABLE
	Msg   string
}

// ValidationError lists every problem found.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		fmt.Fprintf(&b, "config: %s: %s", e.Problems[0].Field, e.Problems[0].Msg)
		return b.String()
	}
	fmt.Fprintf(&b, "config: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Field, p.Msg)
	}
	return b.String()
}

type checker struct{ probs []Problem }

func (ch *checker) add(field, format string, args ...any) {
	ch.probs = append(ch.probs, Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (ch *checker) err(field string, err error) {
	if err != nil {
		ch.add(field, "%v", err)
	}
}

// Validate checks every setting and reports all problems at once.
func (c *Config) Validate() error {
	ch := &checker{}
	if strings.TrimSpace(c.DataDir) == "" {
		ch.add("data_dir", "is required")
	}
	// DICOM.
	ch.err("dicom.listen", checkListen(c.DICOM.Listen))
	ch.err("dicom.ae_title", CheckAETitle(c.DICOM.AETitle))
	for i, p := range c.DICOM.AllowedPeers {
		ch.err(fmt.Sprintf("dicom.allowed_peers[%d]", i), p.check())
	}
	l := c.DICOM.Limits
	if l.MaxAssociations < 1 || l.MaxAssociations > 10000 {
		ch.add("dicom.limits.max_associations", "%d is outside 1–10000", l.MaxAssociations)
	}
	if l.MaxPDULength < 4096 || l.MaxPDULength > 64<<20 {
		ch.add("dicom.limits.max_pdu_length", "%d is outside 4096–67108864 bytes", l.MaxPDULength)
	}
	if l.MaxObjectSize < 1<<20 {
		ch.add("dicom.limits.max_object_size", "%d bytes is below 1 MiB", l.MaxObjectSize)
	}
	for name, d := range map[string]time.Duration{
		"artim_timeout": l.ARTIMTimeout, "idle_timeout": l.IdleTimeout, "read_timeout": l.ReadTimeout, "write_timeout": l.WriteTimeout,
	} {
		if d < time.Second {
			ch.add("dicom.limits."+name, "%s is below 1s", d)
		}
	}
	checkTLS(ch, "dicom.tls", c.DICOM.TLS)

	// Destinations and routing.
	names := map[string]bool{}
	for i, d := range c.Dests {
		f := fmt.Sprintf("destinations[%d]", i)
		ch.err(f, d.check())
		if d.Name == "" {
			ch.add(f+".name", "is required")
		} else if names[d.Name] {
			ch.add(f+".name", "%q is used twice", d.Name)
		}
		names[d.Name] = true
	}
	if def := c.Routing.Default; def != "" && def != RoutingCalling && !names[def] {
		ch.add("routing.default", "%q is neither %q nor a destination name", def, RoutingCalling)
	}
	callers := make([]string, 0, len(c.Routing.ByCallingAE))
	for ae := range c.Routing.ByCallingAE {
		callers = append(callers, ae)
	}
	sort.Strings(callers)
	for _, ae := range callers {
		f := "routing.by_calling_ae." + ae
		ch.err(f, CheckAETitle(ae))
		if len(c.Routing.ByCallingAE[ae]) == 0 {
			ch.add(f, "lists no destination")
		}
		for _, n := range c.Routing.ByCallingAE[ae] {
			if !names[n] {
				ch.add(f, "%q is not a destination name", n)
			}
		}
	}

	// HTTP.
	ch.err("http.listen", checkListen(c.HTTP.Listen))
	checkTLS(ch, "http.tls", c.HTTP.TLS)
	if c.HTTP.SessionTTL < time.Minute || c.HTTP.SessionTTL > 7*24*time.Hour {
		ch.add("http.session_ttl", "%s is outside 1m–168h", c.HTTP.SessionTTL)
	}

	// Database.
	ch.err("database.dsn", c.checkDSN())
	if c.Database.MaxOpenConns < 1 {
		ch.add("database.max_open_conns", "%d is below 1", c.Database.MaxOpenConns)
	}

	// Pipeline.
	p := c.Pipeline
	if p.Device != "cpu" && p.Device != "cuda" {
		ch.add("pipeline.device", "%q is not \"cpu\" or \"cuda\"", p.Device)
	}
	if p.Threads < 0 || p.Threads > 1024 {
		ch.add("pipeline.threads", "%d is outside 0–1024 (0: ONNX Runtime chooses)", p.Threads)
	}
	if p.ThresholdsFile != "" {
		ch.err("pipeline.thresholds_file", checkFile(p.ThresholdsFile))
	}
	unit := func(f string, v *float64) {
		if v != nil && (*v < 0 || *v > 1) {
			ch.add(f, "%g is outside 0–1", *v)
		}
	}
	unit("pipeline.review.c7_min_confidence", p.Review.C7MinConfidence)
	unit("pipeline.review.c7_obscured_min_prob", p.Review.C7ObscuredMinProb)
	if v := p.Review.C7MaxDisagreementMM; v != nil && (*v <= 0 || *v > 100) {
		ch.add("pipeline.review.c7_max_disagreement_mm", "%g is outside (0, 100] mm", *v)
	}

	// Study and jobs.
	if c.Study.QuietTime < time.Second || c.Study.QuietTime > 24*time.Hour {
		ch.add("study.quiet_time", "%s is outside 1s–24h", c.Study.QuietTime)
	}
	j := c.Jobs
	for name, n := range map[string]*int{"analyze_workers": j.AnalyzeWorkers, "send_workers": j.SendWorkers, "pull_workers": j.PullWorkers} {
		if n != nil && (*n < 0 || *n > 256) {
			ch.add("jobs."+name, "%d is outside 0–256", *n)
		}
	}
	if j.Lease < time.Second {
		ch.add("jobs.lease", "%s is below 1s", j.Lease)
	}
	if j.MaxAttempts < 1 || j.MaxAttempts > 1000 {
		ch.add("jobs.max_attempts", "%d is outside 1–1000", j.MaxAttempts)
	}
	if j.BackoffBase <= 0 {
		ch.add("jobs.backoff_base", "%s must be positive", j.BackoffBase)
	}
	if j.BackoffMax < j.BackoffBase {
		ch.add("jobs.backoff_max", "%s is below backoff_base %s", j.BackoffMax, j.BackoffBase)
	}
	if j.Timeout < time.Second {
		ch.add("jobs.timeout", "%s is below 1s", j.Timeout)
	}

	// Pull.
	if c.Pull.Peer != nil {
		ch.err("pull.peer", c.Pull.Peer.check())
		if len(c.Pull.Modalities) == 0 {
			ch.add("pull.modalities", "is empty: nothing would be queried")
		}
	}
	if c.Pull.Lookback < time.Minute || c.Pull.Lookback > 366*24*time.Hour {
		ch.add("pull.lookback", "%s is outside 1m–8784h", c.Pull.Lookback)
	}
	for i, m := range c.Pull.Modalities {
		if !isCS(m) {
			ch.add(fmt.Sprintf("pull.modalities[%d]", i), "%q is not a DICOM code string (A–Z, 0–9, _; up to 16)", m)
		}
	}
	for i, b := range c.Pull.BodyParts {
		if !isCS(b) {
			ch.add(fmt.Sprintf("pull.body_parts[%d]", i), "%q is not a DICOM code string (A–Z, 0–9, _; up to 16)", b)
		}
	}

	// Schedules.
	for name, spec := range map[string]string{
		"pull": c.Schedules.Pull, "retry_sweep": c.Schedules.RetrySweep,
		"retention": c.Schedules.Retention, "daily_summary": c.Schedules.DailySummary,
	} {
		if spec == "" {
			continue
		}
		if _, err := cron.ParseStandard(spec); err != nil {
			ch.add("schedules."+name, "%q is not a cron schedule (5 fields, or @every 1m, @daily...): %v", spec, err)
		}
	}
	if n := c.Retention.JobDays; n != nil && (*n < 0 || *n > 36500) {
		ch.add("retention.job_days", "%d is outside 0–36500 (0 keeps for ever)", *n)
	}
	if n := c.Retention.SpoolDays; n != nil && (*n < 0 || *n > 36500) {
		ch.add("retention.spool_days", "%d is outside 0–36500 (0 keeps for ever)", *n)
	}

	// Log and secrets.
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		ch.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		ch.add("log.format", "%q is not json or text", c.Log.Format)
	}
	if k := c.Secrets.SessionKey; k != "" && len(k) < 32 {
		ch.add("$CSPINE_SESSION_KEY", "is %d bytes; use at least 32 random bytes", len(k))
	}
	if pw := c.Secrets.AdminPassword; pw != "" && len(pw) < 12 {
		ch.add("$CSPINE_ADMIN_PASSWORD", "is shorter than 12 characters")
	}

	sort.SliceStable(ch.probs, func(i, k int) bool { return ch.probs[i].Field < ch.probs[k].Field })
	if len(ch.probs) > 0 {
		return &ValidationError{Problems: ch.probs}
	}
	return nil
}

func (c *Config) checkDSN() error {
	dsn := c.DSN()
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//") == "" {
			return fmt.Errorf("sqlite DSN has no file path (want sqlite:PATH)")
		}
		return nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return fmt.Errorf("postgres URL does not parse")
		}
		if u.Host == "" {
			return fmt.Errorf("postgres URL has no host")
		}
		if _, has := u.User.Password(); has && dsn != c.envDSN {
			return fmt.Errorf("holds a password; secrets come only from the environment: " +
				"set PGPASSWORD, or the whole DSN in CSPINE_DATABASE_DSN")
		}
		if _, has := u.Query()["password"]; has && dsn != c.envDSN {
			return fmt.Errorf("holds a password parameter; set PGPASSWORD or CSPINE_DATABASE_DSN instead")
		}
		return nil
	default:
		scheme, _, _ := strings.Cut(dsn, ":")
		return fmt.Errorf("unknown scheme %q (want postgres://... or sqlite:PATH)", scheme)
	}
}

func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		if err := checkHostName(host); err != nil {
			return err
		}
	}
	return nil
}

func checkTLS(ch *checker, field string, t TLS) {
	if !t.Enabled {
		return
	}
	if t.CertFile == "" {
		ch.add(field+".cert_file", "is required when TLS is enabled")
	} else {
		ch.err(field+".cert_file", checkFile(t.CertFile))
	}
	if t.KeyFile == "" {
		ch.add(field+".key_file", "is required when TLS is enabled")
	} else {
		ch.err(field+".key_file", checkFile(t.KeyFile))
	}
	if t.CAFile != "" {
		ch.err(field+".ca_file", checkFile(t.CAFile))
	}
	if t.RequireClientCert && t.CAFile == "" {
		ch.add(field+".require_client_cert", "needs ca_file to verify client certificates")
	}
}

func checkFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", path, err)
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

func isCS(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == ' ') {
			return false
		}
	}
	return true
}
