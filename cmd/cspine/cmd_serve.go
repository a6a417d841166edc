package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cspine/cspine/assembly"
	"github.com/cspine/cspine/config"
	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/ops"
	"github.com/cspine/cspine/pipeline"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/pipeline/stages"
	"github.com/cspine/cspine/report/dicomio"
	"github.com/cspine/cspine/review"
	"github.com/cspine/cspine/schedule"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/worker"
)

func init() {
	register(command{
		name:    "serve",
		summary: "run the node: DICOM C-STORE SCP, analysis, reports back to PACS, scheduled pulls, HTTP",
		usage: `Usage: cspine serve [--config FILE] [--listen HOST:PORT] [--ae-title AE] [--http HOST:PORT]
                    [--database DSN] [--data-dir DIR] [--allow AE@HOST]... [--destination AE@HOST:PORT]...
                    [--models DIR] [--ort-lib FILE]

Runs the node as a service. Configuration comes from built-in defaults, then
the YAML file of --config, then CSPINE_* environment variables, then these
flags; it is validated on start and every problem is reported at once.
Secrets come only from the environment (PGPASSWORD or CSPINE_DATABASE_DSN).

Received instances are kept in DATA_DIR/spool and recorded in the database
before the C-STORE is answered; a study is complete after study.quiet_time
without a new instance; its lateral images are analysed by durable jobs
(shared by every node on one PostgreSQL), and the SR and the overlay go back
by C-STORE to the configured destinations (routing.default "calling": the
destination whose AE title sent the study), retried with exponential backoff.

HTTP: /healthz, /readyz, /metrics (Prometheus). SIGINT or SIGTERM stops the
node gracefully: no new associations, running ones and running jobs get
a grace period, unfinished jobs go back to the queue.`,
		run: runServe,
	})
}

// repeated is a repeatable string flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

type serveFlags struct {
	config, listen, aeTitle, httpListen, database, dataDir, models, ortLib string
	allow, destinations                                                    repeated
}

// loadServeConfig builds the configuration: file, environment, flags.
func loadServeConfig(f *serveFlags, set map[string]bool, getenv func(string) string) (*config.Config, error) {
	cfg, err := config.Load(f.config, getenv)
	if err != nil {
		return nil, err
	}
	if set["listen"] {
		cfg.DICOM.Listen = f.listen
	}
	if set["ae-title"] {
		cfg.DICOM.AETitle = f.aeTitle
	}
	if set["http"] {
		cfg.HTTP.Listen = f.httpListen
	}
	if set["database"] {
		cfg.Database.DSN = f.database
	}
	if set["data-dir"] {
		cfg.DataDir = f.dataDir
	}
	if set["models"] {
		cfg.Pipeline.ModelDir = f.models
	}
	var probs []string
	if len(f.allow) > 0 {
		cfg.DICOM.AllowedPeers = nil
		for _, a := range f.allow {
			p, err := config.ParsePeer(a)
			if err != nil {
				probs = append(probs, fmt.Sprintf("--allow %q: %v", a, err))
				continue
			}
			cfg.DICOM.AllowedPeers = append(cfg.DICOM.AllowedPeers, p)
		}
	}
	for _, d := range f.destinations {
		dest, err := config.ParseDestination(d)
		if err != nil {
			probs = append(probs, fmt.Sprintf("--destination %q: %v", d, err))
			continue
		}
		if _, dup := cfg.Destination(dest.Name); !dup {
			cfg.Dests = append(cfg.Dests, dest)
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("%w: %s", errUsage, strings.Join(probs, "; "))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.Log.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	o := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, o))
	}
	return slog.New(slog.NewJSONHandler(w, o))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["serve"]
	fs := newFlagSet(c, stderr)
	var f serveFlags
	fs.StringVar(&f.config, "config", "", "YAML configuration file")
	fs.StringVar(&f.listen, "listen", "", "DICOM listen address HOST:PORT (dicom.listen)")
	fs.StringVar(&f.aeTitle, "ae-title", "", "our AE title (dicom.ae_title)")
	fs.StringVar(&f.httpListen, "http", "", "HTTP listen address HOST:PORT (http.listen)")
	fs.StringVar(&f.database, "database", "", "database DSN: postgres://... or sqlite:PATH (database.dsn)")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory: spool, reports, default SQLite database (data_dir)")
	fs.Var(&f.allow, "allow", "accepted caller AE@HOST (repeatable; replaces dicom.allowed_peers)")
	fs.Var(&f.destinations, "destination", "report destination AE@HOST:PORT (repeatable; added to destinations)")
	fs.StringVar(&f.models, "models", "", "model directory (pipeline.model_dir)")
	fs.StringVar(&f.ortLib, "ort-lib", "", "ONNX Runtime shared library (default $CSPINE_ORT_LIB or package ort's search)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %v", errUsage, fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	cfg, err := loadServeConfig(&f, set, nil)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	if f.ortLib == "" {
		f.ortLib = os.Getenv("CSPINE_ORT_LIB")
	}
	n, err := newNode(ctx, cfg, f.ortLib, log)
	if err != nil {
		return err
	}
	return n.run(ctx)
}

// node is the wired service.
type node struct {
	cfg     *config.Config
	log     *slog.Logger
	db      *store.DB
	st      *models.Store
	models  *stages.Models
	dicom   *dicomnode.Node
	dicomLn net.Listener
	httpSrv *http.Server
	httpLn  net.Listener
	pools   []*jobs.Pool
	asm     *assembly.Assembler
	sched   *schedule.Scheduler
	metrics *ops.Metrics
	jc      *jobs.Client
	ingest  *ingest.Handler
	// stopping is set when shutdown begins: /readyz then answers 503 so
	// that a load balancer stops sending work here.
	stopping atomic.Bool
}

func (n *node) notify() {
	for _, p := range n.pools {
		p.Notify()
	}
}

// modelDir picks the model directory: the configured one when it exists
// or was set explicitly, else the search of package stages
// ($CSPINE_MODELS, refmodels/).
func modelDir(cfg *config.Config) (string, error) {
	if cfg.Pipeline.ModelDir != "" {
		return cfg.Pipeline.ModelDir, nil
	}
	if _, err := os.Stat(filepath.Join(cfg.ModelDir(), stages.ManifestFile)); err == nil {
		return cfg.ModelDir(), nil
	}
	return stages.ResolveModelDir("")
}

func thresholds(cfg *config.Config) (*pipeline.Thresholds, error) {
	th := pipeline.DefaultThresholds()
	if cfg.Pipeline.ThresholdsFile != "" {
		var err error
		if th, err = pipeline.LoadThresholds(cfg.Pipeline.ThresholdsFile); err != nil {
			return nil, err
		}
	}
	r := cfg.Pipeline.Review
	if r.C7MinConfidence != nil {
		th.C7MinConfidence = *r.C7MinConfidence
	}
	if r.C7MaxDisagreementMM != nil {
		th.C7MaxDisagreementMM = *r.C7MaxDisagreementMM
	}
	if r.C7ObscuredMinProb != nil {
		th.C7ObscuredMinProb = *r.C7ObscuredMinProb
	}
	return &th, nil
}

func tlsConfig(t config.TLS, server bool) (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: %s holds no PEM certificate", t.CAFile)
		}
		if server {
			c.ClientCAs = pool
		} else {
			c.RootCAs = pool
		}
	}
	if server && t.RequireClientCert {
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// nodeDevice identifies this deployment in the reports: the same on every
// node sharing the AE title, so that any node produces identical reports.
func nodeDevice(cfg *config.Config) dicomio.Device {
	uid := os.Getenv("CSPINE_DEVICE_UID")
	if uid == "" {
		uid = dicomio.UID("cspine", "node", cfg.DICOM.AETitle)
	}
	return dicomio.Device{Manufacturer: "cspine project", ModelName: "cspine", Name: dicomio.Shorten(cfg.DICOM.AETitle, 16),
		UID: uid, SoftwareVersion: serveVersion()}
}

// nodeName names this node's own incoming directory in a data directory
// that several nodes share: host name and DICOM port, stable across
// restarts.
func nodeName(cfg *config.Config) string {
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(cfg.DICOM.Listen)
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, host+"-"+port)
	return strings.Trim(name, ".")
}

// serveVersion is the module version of this build ("devel" for a
// development build).
func serveVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func newNode(ctx context.Context, cfg *config.Config, ortLib string, log *slog.Logger) (_ *node, err error) {
	n := &node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	log.Info("starting cspine node", "ae_title", cfg.DICOM.AETitle, "dicom", cfg.DICOM.Listen, "http", cfg.HTTP.Listen,
		"database", cfg.RedactedDSN(), "data_dir", cfg.DataDir)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	n.db, err = store.Open(ctx, cfg.DSN(), &store.Options{MaxOpenConns: cfg.Database.MaxOpenConns, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := n.db.MigrateUp(ctx); err != nil {
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	n.st = models.NewStore(n.db.Gorm)
	if err := bootstrapAdmin(ctx, n.st, cfg, log); err != nil {
		return nil, err
	}

	// The measuring instrument.
	dir, err := modelDir(cfg)
	if err != nil {
		return nil, err
	}
	n.models, err = stages.Load(stages.Config{ModelDir: dir, ORTLibrary: ortLib, Threads: cfg.Pipeline.Threads,
		PreferCUDA: cfg.Pipeline.Device == "cuda", Logger: log})
	if err != nil {
		return nil, fmt.Errorf("load models: %w", err)
	}
	th, err := thresholds(cfg)
	if err != nil {
		return nil, err
	}
	an, err := pipeline.New(worker.CapturingStages{Inner: n.models}, pipeline.Config{Thresholds: th})
	if err != nil {
		return nil, err
	}
	info := n.models.Info()
	mode := result.ModeHierarchical
	if cfg.Pipeline.SingleStage {
		mode = result.ModeSingleStage
	}
	log.Info("models loaded", "name", info.Name, "version", info.Version, "provider", info.Provider, "mode", mode)

	// Jobs and metrics.
	n.jc = jobs.NewClient(n.db.Gorm, jobs.ClientConfig{})
	n.metrics = ops.NewMetrics(n.jc.Counts, log)
	dests := func(callingAE string) []worker.Destination {
		var out []worker.Destination
		for _, d := range cfg.DestinationsFor(callingAE) {
			out = append(out, worker.Destination{Name: d.Name, AETitle: d.AETitle, Host: d.Host, Port: d.Port, TLS: d.TLS})
		}
		return out
	}
	tlsDests := map[string]bool{}
	for _, d := range cfg.Dests {
		tlsDests[d.Name] = d.TLS
	}
	dicomTLSClient, err := tlsConfig(cfg.DICOM.TLS, false)
	if err != nil {
		return nil, err
	}
	lim := cfg.DICOM.Limits
	timeouts := association.Timeouts{ARTIM: lim.ARTIMTimeout, Idle: lim.IdleTimeout, Read: lim.ReadTimeout, Write: lim.WriteTimeout}
	analyzeW, err := worker.NewAnalyzer(n.st, worker.AnalyzerConfig{DataDir: cfg.DataDir, Pipeline: an,
		ModelName: info.Name, ModelVersion: info.Version, Device: nodeDevice(cfg), Route: dests,
		SendMaxAttempts: cfg.Jobs.MaxAttempts, OnAnalysis: n.metrics.ObserveAnalysis, Notify: n.notify, Logger: log})
	if err != nil {
		return nil, err
	}
	sendW, err := worker.NewSender(n.st, worker.SenderConfig{DataDir: cfg.DataDir, CallingAETitle: cfg.DICOM.AETitle,
		TLS: dicomTLSClient, TLSDestinations: tlsDests, Timeouts: timeouts, Logger: log,
		OnSent: func(_ *models.Transfer, d time.Duration) {
			n.metrics.ReportsDelivered.Inc()
			n.metrics.DeliverySeconds.Observe(d.Seconds())
		}})
	if err != nil {
		return nil, err
	}
	var pullPeers = map[string]schedule.Peer{}
	if cfg.Pull.Peer != nil {
		p := cfg.Pull.Peer
		pullPeers[p.Name] = schedule.Peer{Name: p.Name, AETitle: p.AETitle, Host: p.Host, Port: p.Port}
	}
	pullW, err := schedule.NewPuller(n.st, schedule.PullConfig{OurAETitle: cfg.DICOM.AETitle, Peers: pullPeers,
		Modalities: cfg.Pull.Modalities, BodyParts: cfg.Pull.BodyParts, Timeouts: timeouts, Logger: log})
	if err != nil {
		return nil, err
	}
	fin := &worker.Finisher{St: n.st, Jobs: n.jc, Log: log, Next: func(j *models.Job, o jobs.Outcome, err error, _ time.Duration) {
		if o != "" {
			n.metrics.JobsFinished.WithLabelValues(j.Kind, string(o)).Inc()
		}
		if j.Kind == jobs.KindSend && (o == jobs.OutcomeRetry || o == jobs.OutcomeDead) {
			n.metrics.SendFailures.WithLabelValues(string(o)).Inc()
		}
	}}
	backoff := jobs.ExponentialBackoff(cfg.Jobs.BackoffBase, cfg.Jobs.BackoffMax, 0.1)
	for _, k := range []struct {
		kind string
		n    *int
		w    jobs.Worker
	}{
		{jobs.KindAnalyze, cfg.Jobs.AnalyzeWorkers, analyzeW},
		{jobs.KindSend, cfg.Jobs.SendWorkers, sendW},
		{jobs.KindPull, cfg.Jobs.PullWorkers, pullW},
	} {
		if k.n == nil || *k.n <= 0 {
			continue
		}
		p, err := jobs.NewPool(n.db.Gorm, jobs.PoolConfig{Workers: map[string]jobs.Worker{k.kind: k.w}, Concurrency: *k.n,
			Lease: cfg.Jobs.Lease, Timeout: cfg.Jobs.Timeout, Logger: log, OnFinish: fin.OnFinish,
			Client: jobs.ClientConfig{Backoff: backoff}})
		if err != nil {
			return nil, err
		}
		n.pools = append(n.pools, p)
	}

	// Study assembly.
	n.asm, err = assembly.New(n.st, assembly.Config{QuietTime: cfg.Study.QuietTime,
		Policy: assembly.Policy{IncludeFlexionExtension: cfg.Pipeline.Views.IncludeFlexionExtension,
			IncludeOblique: cfg.Pipeline.Views.IncludeOblique},
		Model: assembly.Model{Name: info.Name, Version: info.Version, Mode: mode}, MaxAttempts: cfg.Jobs.MaxAttempts,
		Logger: log, OnAssembled: func(_ int64, selected int) {
			n.metrics.StudiesAssembled.WithLabelValues(fmt.Sprint(selected > 0)).Inc()
			if selected > 0 {
				n.notify()
			}
		}})
	if err != nil {
		return nil, err
	}

	// Scheduled work.
	spoolDays := 0
	if cfg.Retention.SpoolDays != nil {
		spoolDays = *cfg.Retention.SpoolDays
	}
	jobDays := 0
	if cfg.Retention.JobDays != nil {
		jobDays = *cfg.Retention.JobDays
	}
	pullPeer := ""
	if cfg.Pull.Peer != nil {
		pullPeer = cfg.Pull.Peer.Name
	}
	n.sched, err = schedule.New(n.st, n.jc, schedule.Config{Pull: cfg.Schedules.Pull, RetrySweep: cfg.Schedules.RetrySweep,
		Retention: cfg.Schedules.Retention, DailySummary: cfg.Schedules.DailySummary, PullPeer: pullPeer,
		Lookback: cfg.Pull.Lookback, SpoolDays: spoolDays, JobDays: jobDays, DataDir: cfg.DataDir, Logger: log, Notify: n.notify})
	if err != nil {
		return nil, err
	}

	// The DICOM node.
	spool, err := services.NewSpoolStore(filepath.Join(cfg.DataDir, "spool"))
	if err != nil {
		return nil, err
	}
	spool.Logger = log
	// The write-ahead spool answers a C-STORE after one fdatasync; the
	// spool file and the row follow within milliseconds (ingest.Options.WAL).
	// Each receiving association holds one segment: allow one per
	// association and a spare, so that a C-STORE never waits for a segment
	// while the disk has room (segments are made only when needed).
	walMax := max(int64(ingest.DefaultWALMaxBytes), int64(lim.MaxAssociations+1)*ingest.DefaultWALSegmentSize)
	h, err := ingest.New(n.st, spool, cfg.DataDir, &ingest.Options{Logger: log, NodeName: nodeName(cfg), WAL: true,
		WALMaxBytes: walMax,
		OnOutcome:   func(o string) { n.metrics.ReceivedInstances.WithLabelValues(o).Inc() }})
	if err != nil {
		return nil, err
	}
	if k, err := h.CleanIncoming(); err != nil {
		return nil, err
	} else if k > 0 {
		log.Info("removed partial files of an earlier run from the spool's incoming directory", "files", k)
	}
	// Instances answered success before a crash but not yet recorded are
	// recorded before the node listens (for up to startupFlushWait).
	if _, err := h.Start(ctx); err != nil {
		return nil, err
	}
	n.ingest = h
	const startupFlushWait = 30 * time.Second
	// Bounded: a record that cannot be written yet (the database down)
	// must not keep the node from listening; the materialiser goes on in
	// the background (and C-STOREs are answered A700 while it fails).
	fctx, cancel := context.WithTimeout(ctx, startupFlushWait)
	err = h.Flush(fctx)
	cancel()
	if err != nil && ctx.Err() == nil {
		log.Warn("write-ahead spool: instances answered success before the restart are not all recorded yet; "+
			"listening anyway, they are recorded in the background", "wait", startupFlushWait, "err", err)
	} else if err != nil {
		return nil, err
	}
	var peers []association.Peer
	for _, p := range cfg.DICOM.AllowedPeers {
		peers = append(peers, association.Peer{AETitle: p.AETitle, Host: p.Host})
	}
	if len(peers) == 0 {
		log.Warn("dicom.allowed_peers is empty: any caller is accepted")
	}
	dicomTLS, err := tlsConfig(cfg.DICOM.TLS, true)
	if err != nil {
		return nil, err
	}
	n.dicom, err = dicomnode.New(dicomnode.Config{AETitles: []string{cfg.DICOM.AETitle}, AllowedPeers: peers,
		AcceptAllStorage: cfg.DICOM.AcceptAllStorage, MaxPDULength: lim.MaxPDULength, MaxAssociations: lim.MaxAssociations,
		MaxObjectSize: lim.MaxObjectSize, Timeouts: timeouts, TLS: dicomTLS, Logger: log}, h)
	if err != nil {
		return nil, err
	}
	if n.dicomLn, err = net.Listen("tcp", cfg.DICOM.Listen); err != nil {
		return nil, fmt.Errorf("dicom listen: %w", err)
	}

	// HTTP.
	httpTLS, err := tlsConfig(cfg.HTTP.TLS, true)
	if err != nil {
		return nil, err
	}
	ui, err := reviewUI(n, log)
	if err != nil {
		return nil, fmt.Errorf("review ui: %w", err)
	}
	n.httpSrv = &http.Server{Handler: ops.Handler(ops.HandlerOpts{Metrics: n.metrics, UI: ui,
		Ready: map[string]ops.Check{"database": n.db.Ping, "node": func(context.Context) error {
			if n.stopping.Load() {
				return errors.New("shutting down")
			}
			return nil
		}}}),
		ReadHeaderTimeout: 10 * time.Second, TLSConfig: httpTLS}
	if n.httpLn, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
		return nil, fmt.Errorf("http listen: %w", err)
	}
	return n, nil
}

// bootstrapAdmin creates the first administrator account ("admin") from
// CSPINE_ADMIN_PASSWORD when the database has no account yet.
func bootstrapAdmin(ctx context.Context, st *models.Store, cfg *config.Config, log *slog.Logger) error {
	if cfg.Secrets.AdminPassword == "" {
		return nil
	}
	users, err := st.UserList(ctx)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return nil
	}
	if _, err := review.CreateUser(ctx, st, "admin", "Administrator", "admin", cfg.Secrets.AdminPassword); err != nil {
		return fmt.Errorf("create the first administrator: %w", err)
	}
	log.Info("created the first administrator account", "username", "admin")
	return nil
}

// reviewUI builds the review UI of package review (issue 8), mounted at
// "/" by ops.Handler: worklist, case view and the /api/v1 JSON API. Amended
// reports go to the destinations of the report they amend, through the
// same durable send queue.
func reviewUI(n *node, log *slog.Logger) (http.Handler, error) {
	cfg := n.cfg
	return review.New(review.Deps{DB: n.db.Gorm, Logger: log, DataDir: cfg.DataDir,
		Outbox: review.SameDestinations{MaxAttempts: cfg.Jobs.MaxAttempts}, Notify: n.notify,
		Device: nodeDevice(cfg),
		Config: review.Config{SecureCookies: cfg.HTTP.BehindTLSProxy || cfg.HTTP.TLS.Enabled, SessionTTL: cfg.HTTP.SessionTTL}})
}

func (n *node) run(ctx context.Context) error {
	log := n.log
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	for _, p := range n.pools {
		if err := p.Start(runCtx); err != nil {
			n.close()
			return err
		}
	}
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := n.asm.Run(runCtx); err != nil {
			errc <- fmt.Errorf("assembly: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		err := n.dicom.Serve(runCtx, n.dicomLn)
		if err != nil && !errors.Is(err, dicomnode.ErrNodeClosed) && !errors.Is(err, context.Canceled) {
			errc <- fmt.Errorf("dicom: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		var err error
		if n.httpSrv.TLSConfig != nil {
			err = n.httpSrv.ServeTLS(n.httpLn, "", "")
		} else {
			err = n.httpSrv.Serve(n.httpLn)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
		}
	}()
	n.sched.Start()
	log.Info("cspine node ready", "dicom", n.dicomLn.Addr().String(), "http", n.httpLn.Addr().String())

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("node failed; shutting down", "err", runErr)
	}
	// Graceful shutdown: stop taking work, let what runs finish.
	n.stopping.Store(true)
	grace, graceCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer graceCancel()
	if err := n.dicom.Shutdown(grace); err != nil {
		log.Warn("dicom shutdown", "err", err)
	}
	if err := n.ingest.Close(grace); err != nil {
		log.Warn("ingest: instances left in the write-ahead spool for the next start", "err", err)
	}
	n.sched.Stop(grace)
	var pw sync.WaitGroup
	for _, p := range n.pools {
		pw.Add(1)
		go func() { defer pw.Done(); p.Stop(grace) }()
	}
	pw.Wait()
	if err := n.httpSrv.Shutdown(grace); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancel()
	wg.Wait()
	n.close()
	log.Info("cspine node stopped")
	return runErr
}

func (n *node) close() {
	if n.ingest != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.ingest.Close(ctx)
		cancel()
	}
	if n.dicomLn != nil {
		n.dicomLn.Close()
	}
	if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.models != nil {
		n.models.Close()
	}
	if n.db != nil {
		n.db.Close()
	}
}
