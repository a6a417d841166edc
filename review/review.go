// Package review is cspine's quality-assurance tool: a worklist of analysed
// images (flagged results first), a case view that shows the source image
// the way a viewer would with the 23 landmarks and measurement lines, and the
// reviewer's actions (approve as is, correct by moving landmarks, reject as
// not measurable). Approving or correcting issues an amended report (a new
// SR revision with VerificationFlag VERIFIED and a new overlay) on the node's
// durable send path; the machine result is never changed, the human result
// is stored beside it.
//
// Everything the browser page does goes through a versioned JSON REST API
// under /api/v1, described by the OpenAPI document at /api/v1/openapi.json.
// The page itself (plain HTML, JavaScript and CSS) is embedded in the binary.
//
// Security: reviewer accounts with roles (reviewer, admin) and bcrypt
// password hashes, server-side sessions whose cookie is HttpOnly,
// SameSite=Strict and Secure behind TLS, a synchronizer CSRF token on every
// state-changing request, a login rate limit, and an audit event for every
// case view and every action (who, when, what, before and after). No patient
// data appears in URLs or in logs at info level: cases are addressed by
// database ids.
package review

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"gorm.io/gorm"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/geometry"
	"github.com/cspine/cspine/report/dicomio"
)

// Deps is what the review tool needs from the node.
type Deps struct {
	// DB is the node's database (a pool, not a transaction).
	DB *gorm.DB
	// Logger receives request errors and security events (no patient data
	// at Info). Default slog.Default().
	Logger *slog.Logger
	// DataDir is the node's data directory: source instances are read from
	// DataDir/Instance.SpoolPath, amended reports are written under
	// DataDir/reports and recorded relative to it.
	DataDir string
	// Outbox stores the transfers of an issued report and enqueues their
	// send jobs, in the transaction that stores the report. Default:
	// SameDestinations (where the predecessor report went).
	Outbox Outbox
	// Notify, when set, is called after a report was enqueued (to wake the
	// send workers, e.g. jobs.Pool.Notify).
	Notify func()
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Device identifies this node in the amended reports (required).
	Device dicomio.Device
	// InstitutionName written into the amended reports.
	InstitutionName string
	// Organization is the verifying organization of amended reports
	// (Type 1 in the SR; default InstitutionName, else "cspine").
	Organization string
	// Config tunes sessions and limits.
	Config Config
}

// Config tunes the review tool. Zero values mean defaults.
type Config struct {
	// SecureCookies marks the session cookie Secure. Set it when the node
	// serves HTTPS or sits behind a TLS-terminating proxy; requests that
	// arrive over TLS get Secure cookies regardless.
	SecureCookies bool
	// AllowedOrigins are extra values of the Origin header accepted on
	// state changes besides the request's own host, e.g.
	// "https://cspine.hospital.example" when a reverse proxy rewrites Host.
	AllowedOrigins []string
	// SessionTTL is how long a session lives without activity (default 8h).
	SessionTTL time.Duration
	// LoginAttempts is how many failed logins one username may have per
	// LoginWindow before further attempts are refused with 429 (default 5
	// per 15 minutes); one client address may have four times as many.
	LoginAttempts int
	LoginWindow   time.Duration
	// ImageCache is how many decoded source images are kept in memory
	// (default 4; a 2500×2048 radiograph takes 20 MB).
	ImageCache int
	// Limits are the anatomical plausibility ranges used when parameters
	// are recomputed (default geometry.DefaultLimits()).
	Limits *geometry.Limits
}

func (c Config) withDefaults() Config {
	if c.SessionTTL <= 0 {
		c.SessionTTL = 8 * time.Hour
	}
	if c.LoginAttempts <= 0 {
		c.LoginAttempts = 5
	}
	if c.LoginWindow <= 0 {
		c.LoginWindow = 15 * time.Minute
	}
	if c.ImageCache <= 0 {
		c.ImageCache = 4
	}
	if c.Limits == nil {
		l := geometry.DefaultLimits()
		c.Limits = &l
	}
	return c
}

// Outbox puts an issued report on the node's durable send path.
type Outbox interface {
	// Enqueue creates the report's transfers and their send jobs through
	// tx (the transaction that stores the report) and returns the
	// transfers. prev is the report it amends.
	Enqueue(ctx context.Context, tx *models.Store, rep, prev *models.Report) ([]models.Transfer, error)
}

// server holds the handler's state.
type server struct {
	deps    Deps
	cfg     Config
	store   *models.Store
	log     *slog.Logger
	now     func() time.Time
	limiter *loginLimiter
	images  *imageCache
	// imageAudit limits image-access audit events to one per session,
	// case and hour.
	imageAudit auditOnce
	mux        *http.ServeMux
}

// New returns the review tool's HTTP handler, to be mounted at "/" on the
// node's HTTP port: the page at /, its assets under /static/, and the API
// under /api/v1/.
func New(deps Deps) (http.Handler, error) {
	if deps.DB == nil {
		return nil, errors.New("review: Deps.DB is required")
	}
	if deps.DataDir == "" {
		return nil, errors.New("review: Deps.DataDir is required")
	}
	if err := deps.Device.Validate(); err != nil {
		return nil, fmt.Errorf("review: Deps.Device: %w", err)
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Outbox == nil {
		deps.Outbox = SameDestinations{}
	}
	if deps.Organization == "" {
		deps.Organization = deps.InstitutionName
	}
	if deps.Organization == "" {
		deps.Organization = "cspine"
	}
	cfg := deps.Config.withDefaults()
	s := &server{
		deps:    deps,
		cfg:     cfg,
		store:   models.NewStore(deps.DB),
		log:     deps.Logger,
		now:     deps.Now,
		limiter: newLoginLimiter(cfg.LoginAttempts, cfg.LoginWindow),
		images:  newImageCache(cfg.ImageCache),
		mux:     http.NewServeMux(),
	}
	s.routes()
	return s.middleware(s.mux), nil
}
