package config_test

import (
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/config"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cspine.yaml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return p
}

func TestDefaultsAreValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load("", env(nil))
	require.NoError(t, err)
	require.Equal(t, "sqlite:cspine-data/cspine.db", c.DSN())
	require.Equal(t, "CSPINE", c.DICOM.AETitle)
	require.Equal(t, 30*time.Second, c.Study.QuietTime)
	require.Equal(t, filepath.Join("cspine-data", "models"), c.ModelDir())
}

func TestExampleFileIsValid(t *testing.T) {
	t.Parallel()
	c, err := config.Load("cspine.example.yaml", env(nil))
	require.NoError(t, err)
	require.Len(t, c.Dests, 2)
	require.Equal(t, config.Destination{Name: "PACS", AETitle: "PACS", Host: "10.0.0.5", Port: 104}, c.Dests[0])
	require.Equal(t, "archive", c.Dests[1].Name)
	require.Equal(t, []config.Peer{{AETitle: "PACS", Host: "10.0.0.5"}, {AETitle: "*", Host: "10.0.20.0/24"}}, c.DICOM.AllowedPeers)
	require.Equal(t, 0.5, *c.Pipeline.Review.C7MinConfidence)
	require.Nil(t, c.Pipeline.Review.C7ObscuredMinProb)
	require.Equal(t, "PACS@10.0.0.5:104", c.Pull.Peer.String())

	// Routing: mapping first, then back to the caller.
	require.Equal(t, []string{"PACS", "archive"}, names(c.DestinationsFor("CR_ROOM_3")))
	require.Equal(t, []string{"PACS"}, names(c.DestinationsFor("PACS")))
	require.Empty(t, c.DestinationsFor("UNKNOWN"))
}

func names(ds []config.Destination) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func TestEnvironmentOverrides(t *testing.T) {
	t.Parallel()
	p := write(t, "dicom:\n  ae_title: FROMFILE\nlog:\n  level: debug\n")
	c, err := config.Load(p, env(map[string]string{
		"CSPINE_AE_TITLE":         "FROMENV",
		"CSPINE_DATABASE_DSN":     "postgres://cspine:s3cret@db:5432/cspine",
		"CSPINE_ALLOWED_PEERS":    "PACS@10.1.1.1, MOD2",
		"CSPINE_DESTINATIONS":     "PACS@10.1.1.1:104",
		"CSPINE_STUDY_QUIET_TIME": "5s",
		"CSPINE_SESSION_KEY":      strings.Repeat("k", 32),
		"CSPINE_PULL_PEER":        "QR@10.1.1.2:11112",
	}))
	require.NoError(t, err)
	require.Equal(t, "FROMENV", c.DICOM.AETitle)
	require.Equal(t, "debug", c.Log.Level, "file value kept when no variable")
	require.Equal(t, "postgres://cspine:s3cret@db:5432/cspine", c.DSN(), "a password is allowed from the environment")
	require.NotContains(t, c.RedactedDSN(), "s3cret")
	require.Equal(t, []config.Peer{{AETitle: "PACS", Host: "10.1.1.1"}, {AETitle: "MOD2"}}, c.DICOM.AllowedPeers)
	require.Equal(t, 5*time.Second, c.Study.QuietTime)
	require.Equal(t, strings.Repeat("k", 32), c.Secrets.SessionKey)
	require.Equal(t, 11112, c.Pull.Peer.Port)

	// A password put into the DSN later (a flag) is refused.
	c.Database.DSN = "postgres://cspine:other@db/cspine"
	require.ErrorContains(t, c.Validate(), "secrets come only from the environment")
}

// TestValidationErrors: each bad configuration is refused with a message
// naming the key and the problem.
func TestValidationErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings of the error
	}{
		{name: "unknown key", yaml: "dicom:\n  ae_titel: X\n", want: []string{"line 2", "field ae_titel not found"}},
		{name: "bad yaml", yaml: "dicom: [\n", want: []string{"parse YAML"}},
		{name: "two documents", yaml: "log:\n  level: info\n---\nlog:\n  level: warn\n", want: []string{"more than one document"}},
		{name: "duration as number", yaml: "study:\n  quiet_time: 30\n", want: []string{"line 2", "time.Duration"}},
		{name: "bad duration", yaml: "study:\n  quiet_time: soon\n", want: []string{"soon"}},
		{name: "ae title too long", yaml: "dicom:\n  ae_title: ABCDEFGHIJKLMNOPQ\n", want: []string{"dicom.ae_title", "longer than 16"}},
		{name: "ae title backslash", yaml: "dicom:\n  ae_title: 'A\\B'\n", want: []string{"dicom.ae_title", "not allowed"}},
		{name: "ae title blank", yaml: "dicom:\n  ae_title: '  '\n", want: []string{"dicom.ae_title", "empty"}},
		{name: "listen without port", yaml: "dicom:\n  listen: localhost\n", want: []string{"dicom.listen", "HOST:PORT"}},
		{name: "listen bad port", yaml: "http:\n  listen: ':99999'\n", want: []string{"http.listen", "bad port"}},
		{name: "peer bad host", yaml: "dicom:\n  allowed_peers: ['PACS@bad host']\n", want: []string{"line 2", "PACS@bad host"}},
		{name: "destination short form without port", yaml: "destinations: ['PACS@10.0.0.1']\n", want: []string{"AE@HOST:PORT"}},
		{name: "destination port out of range", yaml: "destinations:\n  - {ae_title: PACS, host: h, port: 70000}\n", want: []string{"destinations[0]", "70000"}},
		{name: "duplicate destination", yaml: "destinations: ['PACS@h:104', 'PACS@g:104']\n", want: []string{"destinations[1].name", "used twice"}},
		{name: "routing to unknown", yaml: "routing:\n  default: nowhere\n", want: []string{"routing.default", "nowhere"}},
		{name: "routing map to unknown", yaml: "destinations: ['PACS@h:104']\nrouting:\n  by_calling_ae:\n    MOD: [PACS, ghost]\n", want: []string{"routing.by_calling_ae.MOD", "ghost"}},
		{name: "password in file", yaml: "database:\n  dsn: postgres://u:pw@db/cspine\n", want: []string{"database.dsn", "PGPASSWORD"}},
		{name: "password parameter in file", yaml: "database:\n  dsn: postgres://u@db/cspine?password=pw\n", want: []string{"database.dsn", "password parameter"}},
		{name: "unknown database", yaml: "database:\n  dsn: mysql://db/cspine\n", want: []string{"database.dsn", "mysql"}},
		{name: "empty sqlite path", yaml: "database:\n  dsn: 'sqlite:'\n", want: []string{"database.dsn", "no file path"}},
		{name: "tls without files", yaml: "dicom:\n  tls:\n    enabled: true\n    require_client_cert: true\n",
			want: []string{"dicom.tls.cert_file", "dicom.tls.key_file", "dicom.tls.require_client_cert"}},
		{name: "tls missing file", yaml: "http:\n  tls:\n    enabled: true\n    cert_file: /nonexistent/cert.pem\n    key_file: /nonexistent/key.pem\n",
			want: []string{"http.tls.cert_file", "cannot read /nonexistent/cert.pem"}},
		{name: "bad device", yaml: "pipeline:\n  device: tpu\n", want: []string{"pipeline.device", "tpu"}},
		{name: "threshold out of range", yaml: "pipeline:\n  review:\n    c7_min_confidence: 1.5\n", want: []string{"pipeline.review.c7_min_confidence", "0–1"}},
		{name: "thresholds file missing", yaml: "pipeline:\n  thresholds_file: /nonexistent.json\n", want: []string{"pipeline.thresholds_file"}},
		{name: "bad cron", yaml: "schedules:\n  retention: 'every night'\n", want: []string{"schedules.retention", "cron"}},
		{name: "six-field cron", yaml: "schedules:\n  pull: '0 */15 * * * *'\n", want: []string{"schedules.pull"}},
		{name: "quiet time zero", yaml: "study:\n  quiet_time: 0s\n", want: []string{"study.quiet_time"}},
		{name: "jobs", yaml: "jobs:\n  max_attempts: 0\n  lease: 10ms\n  backoff_base: 1m\n  backoff_max: 1s\n  send_workers: -1\n",
			want: []string{"jobs.max_attempts", "jobs.lease", "jobs.backoff_max", "jobs.send_workers", "4 problems"}},
		{name: "pull modality", yaml: "pull:\n  peer: QR@h:104\n  modalities: [cr]\n", want: []string{"pull.modalities[0]"}},
		{name: "retention negative", yaml: "retention:\n  spool_days: -1\n", want: []string{"retention.spool_days"}},
		{name: "job retention negative", yaml: "retention:\n  job_days: -5\n", want: []string{"retention.job_days"}},
		{name: "log", yaml: "log:\n  level: verbose\n  format: xml\n", want: []string{"log.level", "log.format"}},
		{name: "short session key", env: map[string]string{"CSPINE_SESSION_KEY": "short"}, want: []string{"$CSPINE_SESSION_KEY", "32"}},
		{name: "short admin password", env: map[string]string{"CSPINE_ADMIN_PASSWORD": "admin"}, want: []string{"$CSPINE_ADMIN_PASSWORD"}},
		{name: "env bad number", env: map[string]string{"CSPINE_PIPELINE_THREADS": "many"}, want: []string{"$CSPINE_PIPELINE_THREADS", "not an integer"}},
		{name: "env bad duration", env: map[string]string{"CSPINE_STUDY_QUIET_TIME": "30"}, want: []string{"$CSPINE_STUDY_QUIET_TIME"}},
		{name: "env bad peer", env: map[string]string{"CSPINE_ALLOWED_PEERS": "PACS@, @x"}, want: []string{"$CSPINE_ALLOWED_PEERS"}},
		{name: "env bad destination", env: map[string]string{"CSPINE_DESTINATIONS": "PACS@h:x"}, want: []string{"$CSPINE_DESTINATIONS", "not a number"}},
		{name: "env bad ae", env: map[string]string{"CSPINE_AE_TITLE": "THIS_TITLE_IS_WAY_TOO_LONG"}, want: []string{"dicom.ae_title"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := ""
			if tc.yaml != "" {
				path = write(t, tc.yaml)
			}
			_, err := config.Load(path, env(tc.env))
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestAllProblemsReportedTogether(t *testing.T) {
	t.Parallel()
	p := write(t, "dicom:\n  ae_title: ''\nlog:\n  level: loud\npipeline:\n  device: gpu\n")
	_, err := config.Load(p, env(nil))
	var ve *config.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Problems, 3)
	require.Equal(t, "dicom.ae_title", ve.Problems[0].Field) // sorted by key
}

func TestHelpers(t *testing.T) {
	t.Parallel()
	c := config.Default()
	require.Equal(t, slog.LevelInfo, c.SlogLevel())
	c.Log.Level = "debug"
	require.Equal(t, slog.LevelDebug, c.SlogLevel())
	require.Equal(t, 10*time.Second, c.Jobs.Backoff(1))
	require.Equal(t, 40*time.Second, c.Jobs.Backoff(3))
	require.Equal(t, time.Hour, c.Jobs.Backoff(50))
	require.Equal(t, "sqlite:cspine-data/cspine.db", c.RedactedDSN())
}

func TestMissingFile(t *testing.T) {
	t.Parallel()
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"), env(nil))
	require.ErrorContains(t, err, "no such file")
}

func TestEmptyFileMeansDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(write(t, ""), env(nil))
	require.NoError(t, err)
	require.Equal(t, config.Default().DICOM, c.DICOM)
}

func TestParsePeerAndDestination(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want config.Peer
		err  bool
	}{
		{in: "PACS@10.0.0.1", want: config.Peer{AETitle: "PACS", Host: "10.0.0.1"}},
		{in: "PACS@pacs.example.org", want: config.Peer{AETitle: "PACS", Host: "pacs.example.org"}},
		{in: "*@192.168.0.0/16", want: config.Peer{AETitle: "*", Host: "192.168.0.0/16"}},
		{in: "PACS@::1", want: config.Peer{AETitle: "PACS", Host: "::1"}},
		{in: "MOD", want: config.Peer{AETitle: "MOD"}},
		{in: "@host", err: true},
		{in: "PACS@ho st", err: true},
	} {
		got, err := config.ParsePeer(tc.in)
		if tc.err {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got)
	}
	d, err := config.ParseDestination("STORESCP@[::1]:4242")
	require.NoError(t, err)
	require.Equal(t, "[::1]:4242", d.Address())
	require.Equal(t, "STORESCP@[::1]:4242", d.String())
	for _, bad := range []string{"STORESCP", "STORESCP@host", "@h:1", "S@h:0", "S@h:-5"} {
		_, err := config.ParseDestination(bad)
		require.Error(t, err, bad)
	}
}

func TestEnvVarsDocumented(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, e := range config.EnvVars() {
		require.True(t, strings.HasPrefix(e.Name, "CSPINE_"), e.Name)
		require.NotEmpty(t, e.Field, e.Name)
		require.False(t, seen[e.Name], "duplicate %s", e.Name)
		seen[e.Name] = true
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	p := write(t, "dicom:\n  ae_title: '' # fixed by the flag\nhttp:\n  listen: 127.0.0.1:9000\n")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c *config.Config)
		wantErr string
	}{
		{
			name: "flags win over file and environment",
			args: []string{"--config", p, "--ae-title", "FLAGAE", "--listen", "127.0.0.1:11113", "--database", "sqlite:/tmp/x.db",
				"--allow", "PACS@10.0.0.1", "--allow", "MOD", "--destination", "STORESCP@127.0.0.1:4242", "--data-dir", "/tmp/d"},
			env: map[string]string{"CSPINE_AE_TITLE": "ENVAE", "CSPINE_HTTP_LISTEN": "127.0.0.1:9100"},
			check: func(t *testing.T, c *config.Config) {
				require.Equal(t, "FLAGAE", c.DICOM.AETitle)
				require.Equal(t, "127.0.0.1:11113", c.DICOM.Listen)
				require.Equal(t, "127.0.0.1:9100", c.HTTP.Listen, "environment over file")
				require.Equal(t, "sqlite:/tmp/x.db", c.DSN())
				require.Equal(t, "/tmp/d", c.DataDir)
				require.Len(t, c.DICOM.AllowedPeers, 2)
				require.Equal(t, "STORESCP@127.0.0.1:4242", c.Dests[0].String())
				require.Equal(t, []string{"STORESCP"}, names(c.DestinationsFor("STORESCP")))
			},
		},
		{name: "file value invalid without the flag", args: []string{"--config", p}, wantErr: "dicom.ae_title"},
		{name: "bad allow", args: []string{"--ae-title", "X", "--allow", "A@b c"}, wantErr: "--allow"},
		{name: "bad destination", args: []string{"--destination", "nohost"}, wantErr: "--destination"},
		{name: "password in flag", args: []string{"--database", "postgres://u:pw@h/db"}, wantErr: "PGPASSWORD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			f := config.BindFlags(fs)
			require.NoError(t, fs.Parse(tc.args))
			c, err := f.Load(env(tc.env))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			tc.check(t, c)
			require.NotContains(t, f.String(), "database")
		})
	}
}
