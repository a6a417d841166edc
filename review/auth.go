package review

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/cspine/cspine/models"
)

// SessionCookie is the name of the session cookie.
const SessionCookie = "cspine_session"

// CSRFHeader carries the session's CSRF token on state-changing requests.
const CSRFHeader = "X-CSRF-Token"

// bcryptCost is the work factor of password hashes (about 250 ms per check
// on a current server core); tests lower it.
var bcryptCost = 12

// MinPasswordLength is the shortest password accepted.
const MinPasswordLength = 12

// HashPassword returns a bcrypt hash of a password, refusing passwords
// shorter than MinPasswordLength or longer than bcrypt's 72 bytes.
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return "", fmt.Errorf("password must have at least %d characters", MinPasswordLength)
	}
	if len(password) > 72 {
		return "", errors.New("password must be at most 72 bytes (bcrypt's limit)")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the username is unknown, so that a
// failed login takes as long whether or not the account exists.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("cspine-no-such-user-password"), bcryptCost)
	return h
})

// CreateUser adds an account with a bcrypt hash of password (for the
// `cspine user add` command and for tests).
func CreateUser(ctx context.Context, st *models.Store, username, displayName, role, password string) (*models.User, error) {
	if err := validUsername(username); err != nil {
		return nil, err
	}
	h, err := HashPassword(password)
	if err != nil {
		return nil, err
	}
	u := &models.User{Username: username, DisplayName: displayName, Role: role, PasswordHash: h}
	if err := st.UserInsert(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

func validUsername(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("username must have 1 to 64 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return fmt.Errorf("username may contain only letters, digits and . _ - @ (got %q)", r)
		}
	}
	return nil
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("review: crypto/rand failed: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// sessionFrom returns the account and session of the request's cookie, or
// nils when there is no valid session.
func (s *server) sessionFrom(r *http.Request) (*models.User, *models.Session, error) {
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" || len(ck.Value) > 100 {
		return nil, nil, nil
	}
	ctx := r.Context()
	now := s.now()
	se, err := s.store.SessionGetByTokenHash(ctx, tokenHash(ck.Value), now)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := s.store.UserGetByID(ctx, se.UserID)
	if errors.Is(err, models.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		return nil, nil, nil
	}
	// Sliding expiry, written at most once a minute.
	if now.Sub(se.LastSeenAt) > time.Minute {
		if err := s.store.SessionTouch(ctx, se.ID, now.Add(s.cfg.SessionTTL)); err != nil && !errors.Is(err, models.ErrNotFound) {
			return nil, nil, err
		}
	}
	return u, se, nil
}

// checkCSRF requires the session's token in the X-CSRF-Token header and,
// when the browser sends an Origin, that it is this site.
func (s *server) checkCSRF(r *http.Request, se *models.Session) error {
	if o := r.Header.Get("Origin"); o != "" && !s.sameOrigin(o, r) {
		return errCSRF
	}
	tok := r.Header.Get(CSRFHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(se.CSRFToken)) != 1 {
		return errCSRF
	}
	return nil
}

// sameOrigin accepts the request's own host and the configured
// AllowedOrigins (the public address when a proxy rewrites Host).
func (s *server) sameOrigin(origin string, r *http.Request) bool {
	for _, a := range s.cfg.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return u.Host == r.Host
}

func (s *server) setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     SessionCookie,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.cfg.SecureCookies || r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type userJSON struct {
	ID          int64      `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"display_name"`
	Role        string     `json:"role"`
	Disabled    bool       `json:"disabled"`
	LastLoginAt *time.Time `json:"last_login_at,omitempty"`
}

func userOut(u *models.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role, Disabled: u.Disabled, LastLoginAt: u.LastLoginAt}
}

type sessionJSON struct {
	User      userJSON  `json:"user"`
	CSRFToken string    `json:"csrf_token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *server) handleLogin(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	// Login has no session yet, hence no CSRF token: refuse cross-site
	// posts by their Origin (SameSite=Strict covers the cookie itself).
	if o := r.Header.Get("Origin"); o != "" && !s.sameOrigin(o, r) {
		return errCSRF
	}
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Username == "" || req.Password == "" {
		return errBadRequest("username and password are required")
	}
	ctx := r.Context()
	addr := clientHost(r)
	now := s.now()
	if wait := s.limiter.blocked(now, addrKey(addr), "user:"+strings.ToLower(req.Username)); wait > 0 {
		s.log.Warn("review: login rate limited", "request_id", c.requestID, "remote_addr", addr)
		return &apiError{status: http.StatusTooManyRequests, code: "rate_limited", msg: "too many failed logins; try again later", retryAfter: wait}
	}
	u, err := s.store.UserGetByUsername(ctx, req.Username)
	if err != nil && !errors.Is(err, models.ErrNotFound) {
		return err
	}
	ok := false
	if err == nil {
		ok = bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(req.Password)) == nil && !u.Disabled
	} else {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(req.Password))
	}
	if !ok {
		s.limiter.fail(now, addrKey(addr), "user:"+strings.ToLower(req.Username))
		p := models.AuditEventInsertParams{Actor: "anonymous", Action: "auth.login_failed", EntityType: "user",
			RemoteAddr: addr, RequestID: c.requestID, After: map[string]string{"username": req.Username}}
		if u != nil && u.ID != 0 {
			_ = s.store.UserRecordLogin(ctx, u.ID, false)
			p.EntityID = fmt.Sprint(u.ID)
		}
		if _, err := s.store.AuditEventInsert(ctx, p); err != nil {
			return err
		}
		return &apiError{status: http.StatusUnauthorized, code: "bad_credentials", msg: "wrong username or password, or the account is disabled"}
	}
	s.limiter.reset("user:" + strings.ToLower(req.Username))
	if _, err := s.store.SessionDeleteExpired(ctx, now); err != nil {
		s.log.Warn("review: delete expired sessions", "err", err)
	}
	tok := randomToken()
	se := &models.Session{UserID: u.ID, TokenHash: tokenHash(tok), CSRFToken: randomToken(), RemoteAddr: addr,
		ExpiresAt: now.Add(s.cfg.SessionTTL)}
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		if err := tx.SessionInsert(ctx, se); err != nil {
			return err
		}
		if err := tx.UserRecordLogin(ctx, u.ID, true); err != nil {
			return err
		}
		uid := u.ID
		_, err := tx.AuditEventInsert(ctx, models.AuditEventInsertParams{Actor: u.Username, ActorUserID: &uid,
			Action: "auth.login", EntityType: "user", EntityID: fmt.Sprint(u.ID), RemoteAddr: addr, RequestID: c.requestID})
		return err
	})
	if err != nil {
		return err
	}
	s.log.Info("review: login", "request_id", c.requestID, "user_id", u.ID)
	s.setSessionCookie(w, r, tok, 0) // a browser-session cookie; the server ends idle sessions
	writeJSON(w, http.StatusOK, sessionJSON{User: userOut(u), CSRFToken: se.CSRFToken, ExpiresAt: se.ExpiresAt})
	return nil
}

func (s *server) handleLogout(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	ctx := r.Context()
	err := s.store.InTx(ctx, func(tx *models.Store) error {
		if err := tx.SessionDelete(ctx, c.session.ID); err != nil {
			return err
		}
		return s.audit(ctx, tx, r, c, "auth.logout", "user", c.user.ID, nil, nil)
	})
	if err != nil {
		return err
	}
	s.setSessionCookie(w, r, "", -1)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) handleSession(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	writeJSON(w, http.StatusOK, sessionJSON{User: userOut(c.user), CSRFToken: c.session.CSRFToken, ExpiresAt: c.session.ExpiresAt})
	return nil
}

func (s *server) handleUsers(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	us, err := s.store.UserList(r.Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(us))
	for i := range us {
		out = append(out, userOut(&us[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

type userCreateRequest struct {
	Username    string `json:"username"`
	DisplayName string `json:"display_name"`
	Role        string `json:"role"`
	Password    string `json:"password"`
}

func (s *server) handleUserCreate(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	var req userCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Role != models.RoleReviewer && req.Role != models.RoleAdmin {
		return errBadRequest("role must be %q or %q", models.RoleReviewer, models.RoleAdmin)
	}
	if err := validUsername(req.Username); err != nil {
		return errBadRequest("%v", err)
	}
	h, err := HashPassword(req.Password)
	if err != nil {
		return errBadRequest("%v", err)
	}
	ctx := r.Context()
	u := &models.User{Username: req.Username, DisplayName: req.DisplayName, Role: req.Role, PasswordHash: h}
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		if err := tx.UserInsert(ctx, u); err != nil {
			if errors.Is(err, models.ErrAlreadyExists) {
				return errConflict("username %q is taken", req.Username)
			}
			return err
		}
		return s.audit(ctx, tx, r, c, "user.create", "user", u.ID, nil, userOut(u))
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, userOut(u))
	return nil
}

// audit records an action of the request's user in tx.
func (s *server) audit(ctx context.Context, tx *models.Store, r *http.Request, c *reqCtx, action, entityType string, entityID int64, before, after any) error {
	uid := c.user.ID
	_, err := tx.AuditEventInsert(ctx, models.AuditEventInsertParams{
		Actor: c.user.Username, ActorUserID: &uid, Action: action, EntityType: entityType,
		EntityID: fmt.Sprint(entityID), Before: before, After: after, RemoteAddr: clientHost(r), RequestID: c.requestID,
	})
	return err
}

// clientHost is the peer's address without the port (X-Forwarded-For is
// not trusted: it is set by whoever sends the request).
func clientHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// addrKey is the limiter key of a client address. An address gets
// addrFactor times the attempts of a username: several reviewers may sit
// behind one hospital NAT.
func addrKey(addr string) string { return "addr:" + addr }

const addrFactor = 4

// loginLimiter counts failed logins per key (client address, username) in a
// fixed window. It is per process: several nodes each apply the limit.
type loginLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	fails  map[string]*failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func newLoginLimiter(max int, window time.Duration) *loginLimiter {
	return &loginLimiter{max: max, window: window, fails: map[string]*failWindow{}}
}

// blocked returns how long until the first of keys may try again, or 0.
func (l *loginLimiter) blocked(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		f := l.fails[k]
		if f == nil {
			continue
		}
		if now.Sub(f.start) >= l.window {
			delete(l.fails, k)
			continue
		}
		limit := l.max
		if strings.HasPrefix(k, "addr:") {
			limit *= addrFactor
		}
		if f.n >= limit {
			if d := l.window - now.Sub(f.start); d > wait {
				wait = d
			}
		}
	}
	return wait
}

func (l *loginLimiter) fail(now time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.fails) > 100000 { // bound memory under a flood of names
		for k, f := range l.fails {
			if now.Sub(f.start) >= l.window {
				delete(l.fails, k)
			}
		}
	}
	for _, k := range keys {
		f := l.fails[k]
		if f == nil || now.Sub(f.start) >= l.window {
			f = &failWindow{start: now}
			l.fails[k] = f
		}
		f.n++
	}
}

func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.fails, key)
}

type ctxKey int

const requestIDKey ctxKey = 1

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

func (s *server) handleUserDisable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return s.setDisabled(w, r, c, true)
}

func (s *server) handleUserEnable(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	return s.setDisabled(w, r, c, false)
}

// setDisabled disables or enables an account; disabling also ends its
// sessions. Administrators cannot disable themselves (someone must be
// left to undo it).
func (s *server) setDisabled(w http.ResponseWriter, r *http.Request, c *reqCtx, disabled bool) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if disabled && id == c.user.ID {
		return errConflict("you cannot disable your own account")
	}
	ctx := r.Context()
	u, err := s.store.UserGetByID(ctx, id)
	if errors.Is(err, models.ErrNotFound) {
		return errNotFound(fmt.Sprintf("user %d", id))
	}
	if err != nil {
		return err
	}
	before := userOut(u)
	err = s.store.InTx(ctx, func(tx *models.Store) error {
		if err := tx.UserSetDisabled(ctx, id, disabled); err != nil {
			return err
		}
		if disabled {
			if err := tx.DB().WithContext(ctx).Where("user_id = ?", id).Delete(&models.Session{}).Error; err != nil {
				return fmt.Errorf("end sessions: %w", err)
			}
		}
		u.Disabled = disabled
		action := "user.enable"
		if disabled {
			action = "user.disable"
		}
		return s.audit(ctx, tx, r, c, action, "user", id, before, userOut(u))
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, userOut(u))
	return nil
}
