package review

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/cspine/cspine/models"
)

// access says who may call a route.
type access int

const (
	public   access = iota // anyone (login, the page, the OpenAPI document)
	loggedIn               // any active account
	adminOnly
)

// route is one endpoint. The table in routes is the single source of the
// API: the OpenAPI document is checked against it by a test.
type route struct {
	method, path string
	access       access
	handle       func(w http.ResponseWriter, r *http.Request, c *reqCtx) error
}

// reqCtx carries what middleware learned about a request.
type reqCtx struct {
	requestID string
	user      *models.User    // nil on public routes without a session
	session   *models.Session // nil likewise
}

func (s *server) routeTable() []route {
	return []route{
		{"GET", "/api/v1/openapi.json", public, s.handleOpenAPI},
		{"POST", "/api/v1/login", public, s.handleLogin},
		{"POST", "/api/v1/logout", loggedIn, s.handleLogout},
		{"GET", "/api/v1/session", loggedIn, s.handleSession},
		{"GET", "/api/v1/worklist", loggedIn, s.handleWorklist},
		{"GET", "/api/v1/studies/{id}", loggedIn, s.handleStudy},
		{"GET", "/api/v1/analyses/{id}", loggedIn, s.handleCase},
		{"GET", "/api/v1/analyses/{id}/landmarks", loggedIn, s.handleLandmarks},
		{"GET", "/api/v1/analyses/{id}/image", loggedIn, s.handleImage},
		{"POST", "/api/v1/analyses/{id}/measure", loggedIn, s.handleMeasure},
		{"POST", "/api/v1/analyses/{id}/review/approve", loggedIn, s.handleApprove},
		{"POST", "/api/v1/analyses/{id}/review/correct", loggedIn, s.handleCorrect},
		{"POST", "/api/v1/analyses/{id}/review/reject", loggedIn, s.handleReject},
		{"POST", "/api/v1/analyses/{id}/review/reopen", adminOnly, s.handleReopen},
		{"GET", "/api/v1/analyses/{id}/reports", loggedIn, s.handleReports},
		{"GET", "/api/v1/transfers", loggedIn, s.handleTransfers},
		{"POST", "/api/v1/transfers/{id}/retry", loggedIn, s.handleTransferRetry},
		{"GET", "/api/v1/users", adminOnly, s.handleUsers},
		{"POST", "/api/v1/users", adminOnly, s.handleUserCreate},
		{"POST", "/api/v1/users/{id}/disable", adminOnly, s.handleUserDisable},
		{"POST", "/api/v1/users/{id}/enable", adminOnly, s.handleUserEnable},
		{"GET", "/api/v1/audit", adminOnly, s.handleAudit},
	}
}

func (s *server) routes() {
	// Paths that exist with other methods answer 405 with Allow; others 404.
	allow := map[string][]string{}
	for _, rt := range s.routeTable() {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	other := http.NewServeMux()
	for p, ms := range allow {
		methods := strings.Join(ms, ", ")
		other.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: "method_not_allowed", msg: "use " + methods})
		})
	}
	other.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: "not_found", msg: "no such API endpoint"})
	})
	s.mux.Handle("/api/", other)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", staticHandler()))
	s.mux.HandleFunc("GET /{$}", s.handleIndex)
}

// apiError is an error with its HTTP answer.
type apiError struct {
	status int
	code   string
	msg    string
	// retryAfter, when set, is sent as Retry-After.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.msg }

func errBadRequest(format string, a ...any) error {
	return &apiError{status: http.StatusBadRequest, code: "bad_request", msg: fmt.Sprintf(format, a...)}
}

func errNotFound(what string) error {
	return &apiError{status: http.StatusNotFound, code: "not_found", msg: what + " not found"}
}

func errConflict(format string, a ...any) error {
	return &apiError{status: http.StatusConflict, code: "conflict", msg: fmt.Sprintf(format, a...)}
}

var (
	errUnauthorized = &apiError{status: http.StatusUnauthorized, code: "unauthorized", msg: "login required"}
	errForbidden    = &apiError{status: http.StatusForbidden, code: "forbidden", msg: "your account may not do this"}
	errCSRF         = &apiError{status: http.StatusForbidden, code: "csrf", msg: "missing or wrong CSRF token (X-CSRF-Token header)"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(e.retryAfter.Seconds()+0.999)))
	}
	var b errorBody
	b.Error.Code, b.Error.Message = e.code, e.msg
	writeJSON(w, e.status, b)
}

// statusWriter records the status for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// middleware adds security headers, a request id and panic recovery to
// every response.
func (s *server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		id := newRequestID()
		h.Set("X-Request-ID", id)
		r = r.WithContext(withRequestID(r.Context(), id))
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("review: panic", "request_id", id, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.status == 0 {
					writeError(sw, &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error (request " + id + ")"})
				}
			}
			// The path holds ids only, never patient data; the query is not logged.
			s.log.Debug("review: request", "request_id", id, "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "ms", time.Since(start).Milliseconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// wrap authenticates, authorises and checks CSRF for one route, then runs
// its handler and turns its error into a JSON answer.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c := &reqCtx{requestID: requestIDFrom(r.Context())}
		err := s.authorize(w, r, rt, c)
		if err == nil {
			err = rt.handle(w, r, c)
		}
		if err == nil {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			s.log.Error("review: request failed", "request_id", c.requestID, "method", r.Method, "route", rt.path, "err", err)
			ae = &apiError{status: http.StatusInternalServerError, code: "internal", msg: "internal error (request " + c.requestID + ")"}
		} else if ae.status >= 500 {
			s.log.Error("review: request failed", "request_id", c.requestID, "route", rt.path, "err", err)
		}
		writeError(w, ae)
	})
}

func (s *server) authorize(w http.ResponseWriter, r *http.Request, rt route, c *reqCtx) error {
	if rt.access == public {
		// A session is optional; login works without one.
		return nil
	}
	u, se, err := s.sessionFrom(r)
	if err != nil {
		return err
	}
	if u == nil {
		return errUnauthorized
	}
	c.user, c.session = u, se
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if err := s.checkCSRF(r, se); err != nil {
			s.log.Warn("review: CSRF check failed", "request_id", c.requestID, "user_id", u.ID, "route", rt.path)
			return err
		}
	}
	if rt.access == adminOnly && u.Role != models.RoleAdmin {
		return errForbidden
	}
	return nil
}

// decodeJSON reads a JSON request body into v, refusing unknown fields,
// trailing data and bodies over 1 MiB.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type", msg: "send application/json"}
		}
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errBadRequest("malformed JSON body: %v", err)
	}
	if dec.More() {
		return errBadRequest("malformed JSON body: trailing data")
	}
	return nil
}

// pathID parses the {id} path value.
func pathID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		return 0, errBadRequest("id %q is not a positive integer", v)
	}
	return id, nil
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
