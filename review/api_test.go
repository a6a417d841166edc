package review_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"gorm.io/gorm"

	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/pipeline/result"
	"github.com/cspine/cspine/report/reporttest"
	"github.com/cspine/cspine/report/sr"
	"github.com/cspine/cspine/review"
	"github.com/cspine/cspine/review/reviewtest"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

const password = "correct horse battery staple"

type bundle struct {
	srv     *httptest.Server
	db      *gorm.DB
	st      *models.Store
	dataDir string
	cases   []reviewtest.Case
	users   map[string]*models.User
}

func setup(t *testing.T, db *store.DB, cfg review.Config) *bundle {
	t.Helper()
	b := &bundle{db: db.Gorm, st: models.NewStore(db.Gorm), dataDir: t.TempDir(), users: map[string]*models.User{}}
	b.cases = reviewtest.Seed(t, db.Gorm, b.dataDir, reviewtest.Options{Count: 2})
	require.Len(t, b.cases, 2)
	ctx := context.Background()
	for _, u := range []struct{ name, role string }{{"alice", models.RoleAdmin}, {"bob", models.RoleReviewer}, {"carol", models.RoleReviewer}} {
		usr, err := review.CreateUser(ctx, b.st, u.name, strings.ToUpper(u.name[:1])+u.name[1:]+" Tester", u.role, password)
		require.NoError(t, err)
		b.users[u.name] = usr
	}
	require.NoError(t, b.st.UserSetDisabled(ctx, b.users["carol"].ID, true))
	h, err := review.New(review.Deps{DB: db.Gorm, DataDir: b.dataDir, Device: reviewtest.Device, InstitutionName: "Test Hospital",
		Logger: slog.New(slog.DiscardHandler), Config: cfg})
	require.NoError(t, err)
	b.srv = httptest.NewServer(h)
	t.Cleanup(b.srv.Close)
	return b
}

// client is a browser-like API client: a cookie jar and the CSRF token.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
}

func (b *bundle) client(t *testing.T) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, base: b.srv.URL, hc: &http.Client{Jar: jar}}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), string(r.body))
}

func (r resp) errCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	require.NotEmpty(t, e.Error.Message)
	return e.Error.Code
}

// do sends a request; body may be nil, a string (sent raw) or a value
// (marshalled). The CSRF token is sent when the client has one.
func (c *client) do(method, path string, body any, hdr ...string) resp {
	c.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(v)
	default:
		bs, err := json.Marshal(v)
		require.NoError(c.t, err)
		rd = bytes.NewReader(bs)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	require.NoError(c.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.csrf != "" {
		req.Header.Set(review.CSRFHeader, c.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := c.hc.Do(req)
	require.NoError(c.t, err)
	defer res.Body.Close()
	bs, err := io.ReadAll(res.Body)
	require.NoError(c.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: bs}
}

func (c *client) login(user string) {
	c.t.Helper()
	r := c.do("POST", "/api/v1/login", map[string]string{"username": user, "password": password})
	require.Equal(c.t, http.StatusOK, r.status, string(r.body))
	var s struct {
		CSRFToken string `json:"csrf_token"`
	}
	r.json(c.t, &s)
	require.NotEmpty(c.t, s.CSRFToken)
	c.csrf = s.CSRFToken
}

// snapshot summarises every table a review action may change.
func (b *bundle) snapshot(t *testing.T) string {
	t.Helper()
	var parts []string
	for _, q := range []string{
		"SELECT COUNT(*) FROM review_tasks", "SELECT COUNT(*) FROM review_landmarks", "SELECT COUNT(*) FROM reports",
		"SELECT COUNT(*) FROM transfers", "SELECT COUNT(*) FROM jobs", "SELECT COUNT(*) FROM audit_events",
		"SELECT COUNT(*) FROM landmarks", "SELECT COUNT(*) FROM users",
		"SELECT COALESCE(SUM(version), 0) FROM review_tasks",
		"SELECT COUNT(*) FROM review_tasks WHERE state = 'pending'",
		"SELECT COUNT(*) FROM transfers WHERE status = 'pending'",
	} {
		var n int64
		require.NoError(t, b.db.Raw(q).Scan(&n).Error)
		parts = append(parts, fmt.Sprint(n))
	}
	var lms []models.Landmark
	require.NoError(t, b.db.Order("id").Find(&lms).Error)
	parts = append(parts, fmt.Sprint(lms))
	return strings.Join(parts, "|")
}

func flagged(b *bundle) reviewtest.Case {
	for _, c := range b.cases {
		if c.Flagged {
			return c
		}
	}
	panic("no flagged case")
}

func unflagged(b *bundle) reviewtest.Case {
	for _, c := range b.cases {
		if !c.Flagged {
			return c
		}
	}
	panic("no unflagged case")
}

func truthOf(c reviewtest.Case, name string) result.TruthLandmark {
	for _, l := range c.Truth.Landmarks {
		if l.Name == name {
			return l
		}
	}
	panic(name)
}

type caseView struct {
	Analysis struct {
		ID         int64 `json:"id"`
		Parameters struct {
			C7SlopeDeg  *float64 `json:"c7_slope_deg"`
			C2C7CobbDeg *float64 `json:"c2c7_cobb_deg"`
		} `json:"parameters"`
		Reasons []struct{ Key, Meaning string } `json:"reasons"`
	} `json:"analysis"`
	Image struct {
		Rows, Columns int
		Available     bool
		WindowWidth   float64 `json:"window_width"`
	} `json:"image"`
	Landmarks []struct {
		Name       string
		X, Y       float64
		Confidence *float64
		Stage      string
	} `json:"landmarks"`
	C7Stages *struct {
		Disagree bool
		Global   []struct{ Name string }
		DistPx   map[string]float64 `json:"distance_px"`
	} `json:"c7_stages"`
	Review struct {
		State   string
		Version int
		TaskID  int64 `json:"task_id"`
	} `json:"review"`
	Reports []struct {
		ID               int64
		Revision         int
		VerificationFlag string `json:"verification_flag"`
		SendStatus       string `json:"send_status"`
		Transfers        []struct {
			ID     int64
			Status string
		}
	} `json:"reports"`
}

func (c *client) caseView(id int64) caseView {
	c.t.Helper()
	r := c.do("GET", fmt.Sprintf("/api/v1/analyses/%d", id), nil)
	require.Equal(c.t, 200, r.status, string(r.body))
	var v caseView
	r.json(c.t, &v)
	return v
}

func landmarksBody(v caseView, moved map[string][2]float64) []map[string]any {
	var out []map[string]any
	for _, l := range v.Landmarks {
		x, y := l.X, l.Y
		if p, ok := moved[l.Name]; ok {
			x, y = p[0], p[1]
		}
		out = append(out, map[string]any{"name": l.Name, "x": x, "y": y})
	}
	return out
}

func TestAPI(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db, review.Config{})
		fc, uc := flagged(b), unflagged(b)
		anon := b.client(t)
		bob := b.client(t)
		alice := b.client(t)
		run := func(name string, fn func(t *testing.T)) {
			t.Run(name, func(t *testing.T) {
				anon.t, bob.t, alice.t = t, t, t
				fn(t)
			})
		}

		run("public", func(t *testing.T) {
			r := anon.do("GET", "/", nil)
			require.Equal(t, 200, r.status)
			require.Contains(t, string(r.body), "<title>cspine review</title>")
			require.Contains(t, r.header.Get("Content-Security-Policy"), "default-src 'self'")
			require.Equal(t, "DENY", r.header.Get("X-Frame-Options"))
			r = anon.do("GET", "/static/app.js", nil)
			require.Equal(t, 200, r.status)
			r = anon.do("GET", "/static/", nil)
			require.Equal(t, 404, r.status, "no directory listing")
			r = anon.do("GET", "/api/v1/openapi.json", nil)
			require.Equal(t, 200, r.status)
			var doc map[string]any
			r.json(t, &doc)
			require.Equal(t, "3.1.0", doc["openapi"])
			r = anon.do("GET", "/api/v1/no-such-thing", nil)
			require.Equal(t, 404, r.status)
			require.Equal(t, "not_found", r.errCode(t))
			r = anon.do("GET", "/api/v1/login", nil)
			require.Equal(t, 405, r.status)
			require.Equal(t, "POST", r.header.Get("Allow"))
			r = anon.do("DELETE", "/api/v1/analyses/1", nil)
			require.Equal(t, 405, r.status)
			r = anon.do("PUT", "/api/v1/users", nil)
			require.Equal(t, 405, r.status)
			require.Contains(t, r.header.Get("Allow"), "GET")
			for _, p := range []string{"/api/v1/worklist", "/api/v1/session", fmt.Sprintf("/api/v1/analyses/%d", fc.AnalysisID),
				fmt.Sprintf("/api/v1/analyses/%d/image", fc.AnalysisID), "/api/v1/transfers", "/api/v1/users", "/api/v1/audit"} {
				r = anon.do("GET", p, nil)
				require.Equal(t, 401, r.status, p)
				require.Equal(t, "unauthorized", r.errCode(t))
			}
			before := b.snapshot(t)
			r = anon.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/approve", fc.AnalysisID), map[string]any{"version": 1})
			require.Equal(t, 401, r.status)
			require.Equal(t, before, b.snapshot(t))
		})

		run("login", func(t *testing.T) {
			c := b.client(t)
			r := c.do("POST", "/api/v1/login", map[string]string{"username": "bob", "password": "wrong password!!"})
			require.Equal(t, 401, r.status)
			require.Equal(t, "bad_credentials", r.errCode(t))
			r = c.do("POST", "/api/v1/login", map[string]string{"username": "carol", "password": password})
			require.Equal(t, 401, r.status, "a disabled account cannot log in")
			r = c.do("POST", "/api/v1/login", `{"username": "bob", "password": `)
			require.Equal(t, 400, r.status)
			r = c.do("POST", "/api/v1/login", map[string]any{"username": "bob", "password": password, "admin": true})
			require.Equal(t, 400, r.status, "unknown fields are refused")
			r = c.do("POST", "/api/v1/login", map[string]string{"username": "bob", "password": password}, "Origin", "https://evil.example")
			require.Equal(t, 403, r.status, "cross-site login")
			var n int64
			require.NoError(t, b.db.Model(&models.AuditEvent{}).Where("action = ?", "auth.login_failed").Count(&n).Error)
			require.GreaterOrEqual(t, n, int64(2))

			// Rate limit: 5 failures per username, then 429 even with the right password.
			for i := 0; i < 5; i++ {
				r = c.do("POST", "/api/v1/login", map[string]string{"username": "mallory", "password": "guess number " + fmt.Sprint(i)})
				require.Equal(t, 401, r.status)
			}
			r = c.do("POST", "/api/v1/login", map[string]string{"username": "mallory", "password": "guess number 6"})
			require.Equal(t, 429, r.status)
			require.NotEmpty(t, r.header.Get("Retry-After"))

			r = bob.do("POST", "/api/v1/login", map[string]string{"username": "bob", "password": password})
			require.Equal(t, 200, r.status, string(r.body))
			ck := r.header.Get("Set-Cookie")
			require.Contains(t, ck, review.SessionCookie+"=")
			require.Contains(t, ck, "HttpOnly")
			require.Contains(t, ck, "SameSite=Strict")
			require.NotContains(t, ck, "Secure", "plain HTTP without SecureCookies")
			var s struct {
				CSRFToken string `json:"csrf_token"`
				User      struct{ Username, Role string }
			}
			r.json(t, &s)
			require.Equal(t, "reviewer", s.User.Role)
			bob.csrf = s.CSRFToken
			r = bob.do("GET", "/api/v1/session", nil)
			require.Equal(t, 200, r.status)
			alice.login("alice")
		})

		run("worklist", func(t *testing.T) {
			var wl struct {
				Items []struct {
					AnalysisID     int64 `json:"analysis_id"`
					ReviewRequired bool  `json:"review_required"`
					Status         string
					Modality       string
					Reasons        []struct{ Key string }
				}
				Total        int64
				ReasonCounts map[string]int64 `json:"reason_counts"`
				StatusCounts map[string]int64 `json:"status_counts"`
			}
			r := bob.do("GET", "/api/v1/worklist", nil)
			require.Equal(t, 200, r.status, string(r.body))
			r.json(t, &wl)
			require.EqualValues(t, 2, wl.Total)
			require.Len(t, wl.Items, 2)
			require.True(t, wl.Items[0].ReviewRequired, "flagged first")
			require.Equal(t, fc.AnalysisID, wl.Items[0].AnalysisID)
			require.Equal(t, "pending", wl.Items[0].Status)
			require.Len(t, wl.Items[0].Reasons, 2)
			require.Equal(t, map[string]int64{"c7_low_confidence": 1, "c7_stage_disagreement": 1}, wl.ReasonCounts)
			require.EqualValues(t, 2, wl.StatusCounts["pending"])
			mod := wl.Items[0].Modality
			require.NotEmpty(t, mod)

			count := func(q string) int64 {
				t.Helper()
				r := bob.do("GET", "/api/v1/worklist?"+q, nil)
				require.Equal(t, 200, r.status, q+": "+string(r.body))
				var w struct {
					Total int64
					Items []json.RawMessage
				}
				r.json(t, &w)
				return w.Total
			}
			require.EqualValues(t, 1, count("reason=c7_low_confidence"))
			require.EqualValues(t, 0, count("reason=no_pixel_spacing"))
			require.EqualValues(t, 2, count("status=pending"))
			require.EqualValues(t, 0, count("status=verified"))
			require.EqualValues(t, 1, count("flagged=false"))
			require.EqualValues(t, 1, count("flagged=true"))
			require.EqualValues(t, 0, count("from=2999-01-01"))
			require.EqualValues(t, 2, count("from=2000-01-01&to=2999-12-31"))
			require.EqualValues(t, 0, count("to=2000-01-01"))
			require.GreaterOrEqual(t, count("modality="+mod), int64(1))
			require.EqualValues(t, 0, count("modality=MR"))
			r = bob.do("GET", "/api/v1/worklist?per_page=1&page=2&sort=newest", nil)
			require.Equal(t, 200, r.status)
			r.json(t, &wl)
			require.Len(t, wl.Items, 1)
			require.EqualValues(t, 2, wl.Total)
			for _, q := range []string{"reason=bogus", "status=done", "page=0", "per_page=1000", "from=2020-13-01", "to=yesterday",
				"flagged=maybe", "sort=random", "color=red", "modality=C%25"} {
				r := bob.do("GET", "/api/v1/worklist?"+q, nil)
				require.Equal(t, 400, r.status, q)
				require.Equal(t, "bad_request", r.errCode(t))
			}
		})

		run("case", func(t *testing.T) {
			before := auditCount(t, b, "case.view")
			v := bob.caseView(fc.AnalysisID)
			require.Equal(t, auditCount(t, b, "case.view"), before+1, "every case view is audited")
			require.Len(t, v.Landmarks, 23)
			require.True(t, v.Image.Available)
			require.Equal(t, 1000, v.Image.Rows)
			require.Equal(t, 800, v.Image.Columns)
			require.Greater(t, v.Image.WindowWidth, 0.0)
			require.NotNil(t, v.C7Stages)
			require.True(t, v.C7Stages.Disagree)
			require.Len(t, v.C7Stages.Global, 4)
			require.InDelta(t, math.Hypot(reviewtest.Displacement.X, reviewtest.Displacement.Y), v.C7Stages.DistPx["C7_inf_post"], 0.02)
			require.Equal(t, "pending", v.Review.State)
			require.Equal(t, 1, v.Review.Version)
			require.Len(t, v.Reports, 1)
			require.Equal(t, "UNVERIFIED", v.Reports[0].VerificationFlag)
			require.Equal(t, "sent", v.Reports[0].SendStatus)
			require.Len(t, v.Analysis.Reasons, 2)
			require.NotEmpty(t, v.Analysis.Reasons[0].Meaning)

			v = bob.caseView(uc.AnalysisID)
			require.Nil(t, v.C7Stages)
			require.Equal(t, 0, v.Review.Version)

			for p, want := range map[string]int{
				"/api/v1/analyses/999999": 404, "/api/v1/analyses/abc": 400, "/api/v1/analyses/-4": 400, "/api/v1/analyses/0": 400,
				"/api/v1/analyses/999999/landmarks": 404, "/api/v1/analyses/999999/reports": 404, "/api/v1/studies/999999": 404,
				"/api/v1/studies/x": 400, "/api/v1/analyses/999999/image": 404,
			} {
				r := bob.do("GET", p, nil)
				require.Equal(t, want, r.status, p)
			}
			r := bob.do("GET", fmt.Sprintf("/api/v1/analyses/%d/landmarks", fc.AnalysisID), nil)
			require.Equal(t, 200, r.status)
			var lm struct {
				Machine []struct{ Name, Stage string }
				Human   []json.RawMessage
			}
			r.json(t, &lm)
			require.Len(t, lm.Machine, 27, "23 final + 4 global C7")
			require.Empty(t, lm.Human)
			r = bob.do("GET", fmt.Sprintf("/api/v1/studies/%d", fc.StudyID), nil)
			require.Equal(t, 200, r.status)
			require.Contains(t, string(r.body), fmt.Sprintf(`"id":%d`, fc.AnalysisID))
			r = bob.do("GET", fmt.Sprintf("/api/v1/analyses/%d/reports", fc.AnalysisID), nil)
			require.Equal(t, 200, r.status)
			require.Contains(t, string(r.body), `"send_status":"sent"`)
		})

		run("image", func(t *testing.T) {
			base := fmt.Sprintf("/api/v1/analyses/%d/image", fc.AnalysisID)
			r := bob.do("GET", base, nil)
			require.Equal(t, 200, r.status, string(r.body))
			require.Equal(t, "image/png", r.header.Get("Content-Type"))
			im, err := png.Decode(bytes.NewReader(r.body))
			require.NoError(t, err)
			require.Equal(t, 1024, im.Bounds().Dy(), "the larger side is size (default 1024)")
			r = bob.do("GET", base+"?size=500", nil)
			im, err = png.Decode(bytes.NewReader(r.body))
			require.NoError(t, err)
			require.Equal(t, 500, im.Bounds().Dy())
			require.Equal(t, 400, im.Bounds().Dx())
			r = bob.do("GET", base+"?x=100&y=200&w=100&h=50&size=400&wc=2000&ww=3000", nil)
			require.Equal(t, 200, r.status, string(r.body))
			im, err = png.Decode(bytes.NewReader(r.body))
			require.NoError(t, err)
			require.Equal(t, 400, im.Bounds().Dx(), "zoomed in 4×")
			// A narrow and a wide window give different pictures.
			a := bob.do("GET", base+"?size=64&wc=1000&ww=10", nil)
			c := bob.do("GET", base+"?size=64&wc=1000&ww=100000", nil)
			require.Equal(t, 200, a.status)
			require.NotEqual(t, a.body, c.body)
			require.Equal(t, 1, auditCount(t, b, "case.image"), "image access audited once per session and case")
			for _, q := range []string{"w=0", "x=-1", "x=790&w=20", "y=999&h=5", "size=99999", "size=2", "wc=10", "ww=50",
				"wc=1&ww=-3", "wc=abc&ww=1", "x=1.5", "wc=NaN&ww=1"} {
				r := bob.do("GET", base+"?"+q, nil)
				require.Equal(t, 400, r.status, q)
			}
		})

		run("measure", func(t *testing.T) {
			path := fmt.Sprintf("/api/v1/analyses/%d/measure", fc.AnalysisID)
			truth := truthOf(fc, "C7_inf_post")
			r := bob.do("POST", path, map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": truth.X, "y": truth.Y}}})
			require.Equal(t, 200, r.status, string(r.body))
			var m struct {
				Facing     string
				Parameters struct {
					C7SlopeDeg  float64 `json:"c7_slope_deg"`
					C2C7CobbDeg float64 `json:"c2c7_cobb_deg"`
				}
				Implausible []string
			}
			r.json(t, &m)
			require.InDelta(t, fc.Truth.Parameters.C7SlopeDeg, m.Parameters.C7SlopeDeg, 0.01, "moving C7_inf_post back gives the true slope")
			require.InDelta(t, fc.Truth.Parameters.C2C7CobbDeg, m.Parameters.C2C7CobbDeg, 0.01)
			require.Greater(t, math.Abs(m.Parameters.C7SlopeDeg-fc.Machine.Parameters.C7SlopeDeg), 1.0)
			require.Equal(t, fc.Truth.Facing, m.Facing)
			require.Empty(t, m.Implausible)

			before := b.snapshot(t)
			for name, tc := range map[string]struct {
				body   any
				status int
				hdr    []string
			}{
				"unknown name":   {map[string]any{"landmarks": []map[string]any{{"name": "C8_inf_post", "x": 1, "y": 1}}}, 400, nil},
				"missing y":      {map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 1}}}, 400, nil},
				"string x":       {`{"landmarks":[{"name":"C7_inf_post","x":"12","y":3}]}`, 400, nil},
				"malformed":      {`{"landmarks":[{"name":"C7_inf_post","x":12,"y":3}`, 400, nil},
				"outside x":      {map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 800, "y": 3}}}, 422, nil},
				"negative y":     {map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 8, "y": -0.5}}}, 422, nil},
				"duplicate":      {map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 8, "y": 5}, {"name": "C7_inf_post", "x": 9, "y": 5}}}, 400, nil},
				"empty":          {map[string]any{"landmarks": []any{}}, 400, nil},
				"no CSRF":        {map[string]any{"landmarks": []any{}}, 403, []string{review.CSRFHeader, ""}},
				"wrong CSRF":     {map[string]any{"landmarks": []any{}}, 403, []string{review.CSRFHeader, "forged"}},
				"foreign origin": {map[string]any{"landmarks": []any{}}, 403, []string{"Origin", "https://evil.example"}},
				"form post":      {"landmarks=1", 415, []string{"Content-Type", "application/x-www-form-urlencoded"}},
			} {
				r := bob.do("POST", path, tc.body, tc.hdr...)
				require.Equal(t, tc.status, r.status, name+": "+string(r.body))
			}
			r = bob.do("POST", "/api/v1/analyses/999999/measure", map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 1, "y": 1}}})
			require.Equal(t, 404, r.status)
			require.Equal(t, before, b.snapshot(t))
		})

		run("bad decisions change nothing", func(t *testing.T) {
			v := bob.caseView(fc.AnalysisID)
			truth := truthOf(fc, "C7_inf_post")
			good := landmarksBody(v, map[string][2]float64{"C7_inf_post": {truth.X, truth.Y}})
			before := b.snapshot(t)
			base := fmt.Sprintf("/api/v1/analyses/%d/review/", fc.AnalysisID)
			for name, tc := range map[string]struct {
				path   string
				body   any
				status int
				hdr    []string
			}{
				"22 landmarks":     {"correct", map[string]any{"version": 1, "landmarks": good[:22]}, 400, nil},
				"outside":          {"correct", map[string]any{"version": 1, "landmarks": landmarksBody(v, map[string][2]float64{"C7_inf_post": {5000, 10}})}, 422, nil},
				"unchanged":        {"correct", map[string]any{"version": 1, "landmarks": landmarksBody(v, nil)}, 400, nil},
				"stale version":    {"correct", map[string]any{"version": 7, "landmarks": good}, 409, nil},
				"no landmarks":     {"correct", map[string]any{"version": 1}, 400, nil},
				"malformed coords": {"correct", `{"version":1,"landmarks":[{"name":"C2_centroid","x":[1],"y":2}]}`, 400, nil},
				"reject no reason": {"reject", map[string]any{"version": 1, "reason": "  "}, 400, nil},
				"approve no CSRF":  {"approve", map[string]any{"version": 1}, 403, []string{review.CSRFHeader, ""}},
				"approve stale":    {"approve", map[string]any{"version": 0}, 409, nil},
				"approve extra":    {"approve", map[string]any{"version": 1, "state": "verified"}, 400, nil},
				"reopen reviewer":  {"reopen", map[string]any{"version": 1, "reason": "again"}, 403, nil},
				"negative version": {"approve", map[string]any{"version": -1}, 400, nil},
			} {
				r := bob.do("POST", base+tc.path, tc.body, tc.hdr...)
				require.Equal(t, tc.status, r.status, name+": "+string(r.body))
			}
			r := bob.do("POST", "/api/v1/analyses/999999/review/correct", map[string]any{"version": 1, "landmarks": good})
			require.Equal(t, 404, r.status)
			r = bob.do("POST", "/api/v1/analyses/abc/review/approve", map[string]any{"version": 1})
			require.Equal(t, 400, r.status)
			require.Equal(t, before, b.snapshot(t))
		})

		run("correct", func(t *testing.T) {
			v := bob.caseView(fc.AnalysisID)
			truth := truthOf(fc, "C7_inf_post")
			r := bob.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/correct", fc.AnalysisID), map[string]any{
				"version": v.Review.Version, "comment": "C7 corner moved to the endplate",
				"landmarks": landmarksBody(v, map[string][2]float64{"C7_inf_post": {truth.X, truth.Y}}),
			})
			require.Equal(t, 200, r.status, string(r.body))
			var d struct {
				Review struct{ State string }
				Report struct {
					ID               int64
					Revision         int
					VerificationFlag string `json:"verification_flag"`
					SendStatus       string `json:"send_status"`
					Transfers        []struct {
						Status, Destination string
						JobID               *int64 `json:"job_id"`
						JobState            string `json:"job_state"`
					}
				}
			}
			r.json(t, &d)
			require.Equal(t, "corrected", d.Review.State)
			require.Equal(t, 2, d.Report.Revision)
			require.Equal(t, "VERIFIED", d.Report.VerificationFlag)
			require.Equal(t, "sending", d.Report.SendStatus)
			require.Len(t, d.Report.Transfers, 1)
			require.Equal(t, "pending", d.Report.Transfers[0].Status)
			require.Equal(t, "pacs", d.Report.Transfers[0].Destination)
			require.NotNil(t, d.Report.Transfers[0].JobID)
			require.Equal(t, "available", d.Report.Transfers[0].JobState)

			ctx := context.Background()
			// The machine result is unchanged, the human one beside it.
			a, err := b.st.AnalysisGetByID(ctx, fc.AnalysisID)
			require.NoError(t, err)
			for _, l := range a.Landmarks {
				if l.Name == "C7_inf_post" && l.Stage == result.StageRefined {
					require.NotEqual(t, truth.X, l.X, "machine landmark kept")
				}
			}
			require.InDelta(t, fc.Machine.Parameters.C7SlopeDeg, *a.C7SlopeDeg, 1e-9)
			var task models.ReviewTask
			require.NoError(t, b.db.Preload("Landmarks").Where("analysis_id = ?", fc.AnalysisID).Order("id DESC").Take(&task).Error)
			require.Equal(t, models.ReviewCorrected, task.State)
			require.Len(t, task.Landmarks, 23)
			require.Equal(t, b.users["bob"].ID, *task.DecidedByUserID)
			require.InDelta(t, fc.Truth.Parameters.C7SlopeDeg, *task.C7SlopeDeg, 0.01)

			// The send job is on the durable queue.
			var job models.Job
			require.NoError(t, b.db.Take(&job, *d.Report.Transfers[0].JobID).Error)
			require.Equal(t, jobs.KindSend, job.Kind)

			// The amended SR: VERIFIED, predecessor, verifying observer, corrected points.
			rep, err := b.st.ReportGetByID(ctx, d.Report.ID)
			require.NoError(t, err)
			prev, err := b.st.ReportGetByID(ctx, fc.ReportID)
			require.NoError(t, err)
			require.Equal(t, prev.ID, *rep.PredecessorID)
			require.Equal(t, models.Verified, rep.VerificationFlag)
			ds, err := dicom.ParseFile(filepath.Join(b.dataDir, rep.SRPath), nil)
			require.NoError(t, err)
			require.Equal(t, "VERIFIED", dsString(t, ds, tag.VerificationFlag))
			require.Contains(t, dsDump(ds), "Tester^Bob", "Verifying Observer Name")
			require.Contains(t, dsDump(ds), prev.SRSOPInstanceUID, "Predecessor Documents Sequence")
			rd, err := sr.Read(ds)
			require.NoError(t, err)
			pt, found := rd.Landmarks()["C7_inf_post"]
			require.True(t, found, "C7_inf_post in the amended SR")
			require.InDelta(t, truth.X, pt.X, 0.01)
			require.InDelta(t, truth.Y, pt.Y, 0.01)
			require.Equal(t, "VERIFIED", rd.Verification)
			_, err = os.Stat(filepath.Join(b.dataDir, rep.SCPath))
			require.NoError(t, err)
			// The amended objects pass dciodvfy, dcmdump -E and dsrdump.
			reporttest.Validate(t, filepath.Join(b.dataDir, rep.SRPath), true)
			reporttest.Validate(t, filepath.Join(b.dataDir, rep.SCPath), false)

			// Audit: who, what, before and after.
			evs, err := b.st.AuditEventListByEntity(ctx, "analysis", fmt.Sprint(fc.AnalysisID))
			require.NoError(t, err)
			last := evs[len(evs)-1]
			require.Equal(t, "review.correct", last.Action)
			require.Equal(t, "bob", last.Actor)
			require.NotNil(t, last.BeforeJSON)
			require.NotNil(t, last.AfterJSON)
			require.Contains(t, *last.AfterJSON, fmt.Sprint(truth.X))
			require.Contains(t, *last.BeforeJSON, "machine_landmarks")

			// Deciding again is a conflict and changes nothing.
			before := b.snapshot(t)
			r = bob.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/approve", fc.AnalysisID), map[string]any{"version": 2})
			require.Equal(t, 409, r.status)
			require.Equal(t, before, b.snapshot(t))
		})

		run("approve unflagged", func(t *testing.T) {
			v := bob.caseView(uc.AnalysisID)
			r := bob.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/approve", uc.AnalysisID), map[string]any{"version": v.Review.Version})
			require.Equal(t, 200, r.status, string(r.body))
			v = bob.caseView(uc.AnalysisID)
			require.Equal(t, "verified", v.Review.State)
			require.Len(t, v.Reports, 2)
			require.Equal(t, "VERIFIED", v.Reports[1].VerificationFlag)
		})

		run("reopen and reject", func(t *testing.T) {
			v := alice.caseView(fc.AnalysisID)
			r := alice.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/reopen", fc.AnalysisID), map[string]any{"version": v.Review.Version, "reason": "second look"})
			require.Equal(t, 200, r.status, string(r.body))
			v = bob.caseView(fc.AnalysisID)
			require.Equal(t, "pending", v.Review.State)
			reports := len(v.Reports)
			r = bob.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/reject", fc.AnalysisID), map[string]any{"version": v.Review.Version, "reason": "C7 not visible"})
			require.Equal(t, 200, r.status, string(r.body))
			v = bob.caseView(fc.AnalysisID)
			require.Equal(t, "rejected", v.Review.State)
			require.Len(t, v.Reports, reports, "a rejection issues no report")
			r = bob.do("GET", "/api/v1/worklist?status=rejected", nil)
			require.Contains(t, string(r.body), fmt.Sprintf(`"analysis_id":%d`, fc.AnalysisID))
		})

		run("transfers", func(t *testing.T) {
			ctx := context.Background()
			r := bob.do("GET", "/api/v1/transfers?status=pending", nil)
			require.Equal(t, 200, r.status)
			var l struct {
				Transfers []struct{ ID int64 }
			}
			r.json(t, &l)
			require.Len(t, l.Transfers, 2)
			id := l.Transfers[0].ID
			before := b.snapshot(t)
			r = bob.do("POST", fmt.Sprintf("/api/v1/transfers/%d/retry", id), nil)
			require.Equal(t, 409, r.status, "a pending transfer is not retried")
			r = bob.do("POST", "/api/v1/transfers/999999/retry", nil)
			require.Equal(t, 404, r.status)
			r = bob.do("GET", "/api/v1/transfers?status=lost", nil)
			require.Equal(t, 400, r.status)
			require.Equal(t, before, b.snapshot(t))

			require.NoError(t, b.st.TransferMarkSending(ctx, id))
			require.NoError(t, b.st.TransferMarkFailed(ctx, id, "association rejected", nil, nil))
			r = bob.do("POST", fmt.Sprintf("/api/v1/transfers/%d/retry", id), nil)
			require.Equal(t, 200, r.status, string(r.body))
			tr, err := b.st.TransferGetByID(ctx, id)
			require.NoError(t, err)
			require.Equal(t, models.TransferPending, tr.Status)
			require.Equal(t, 1, auditCount(t, b, "transfer.retry"))
		})

		run("admin", func(t *testing.T) {
			before := b.snapshot(t)
			r := bob.do("GET", "/api/v1/users", nil)
			require.Equal(t, 403, r.status)
			r = bob.do("POST", "/api/v1/users", map[string]string{"username": "eve", "role": "admin", "password": password})
			require.Equal(t, 403, r.status, "a reviewer cannot create accounts")
			r = bob.do("GET", "/api/v1/audit", nil)
			require.Equal(t, 403, r.status)
			r = alice.do("POST", "/api/v1/users", map[string]string{"username": "dave", "role": "reviewer", "password": "short"})
			require.Equal(t, 400, r.status)
			r = alice.do("POST", "/api/v1/users", map[string]string{"username": "dave", "role": "root", "password": password})
			require.Equal(t, 400, r.status)
			r = alice.do("POST", "/api/v1/users", map[string]string{"username": "bob", "role": "reviewer", "password": password})
			require.Equal(t, 409, r.status)
			require.Equal(t, before, b.snapshot(t))
			r = alice.do("POST", "/api/v1/users", map[string]string{"username": "dave", "display_name": "Dave D", "role": "reviewer", "password": password})
			require.Equal(t, 201, r.status, string(r.body))
			r = alice.do("GET", "/api/v1/users", nil)
			require.Equal(t, 200, r.status)
			require.Contains(t, string(r.body), `"username":"dave"`)
			require.NotContains(t, string(r.body), "$2a$", "no password hashes")
			// Disable and enable accounts.
			before = b.snapshot(t)
			carolID := b.users["carol"].ID
			for name, tc := range map[string]struct {
				c      *client
				path   string
				status int
			}{
				"reviewer": {bob, fmt.Sprintf("/api/v1/users/%d/enable", carolID), 403},
				"self":     {alice, fmt.Sprintf("/api/v1/users/%d/disable", b.users["alice"].ID), 409},
				"unknown":  {alice, "/api/v1/users/999999/disable", 404},
				"bad id":   {alice, "/api/v1/users/x/disable", 400},
			} {
				r := tc.c.do("POST", tc.path, nil)
				require.Equal(t, tc.status, r.status, name)
			}
			require.Equal(t, before, b.snapshot(t))
			r = alice.do("POST", fmt.Sprintf("/api/v1/users/%d/enable", carolID), nil)
			require.Equal(t, 200, r.status, string(r.body))
			carol := b.client(t)
			carol.login("carol")
			require.Equal(t, 200, carol.do("GET", "/api/v1/worklist", nil).status)
			r = alice.do("POST", fmt.Sprintf("/api/v1/users/%d/disable", carolID), nil)
			require.Equal(t, 200, r.status, string(r.body))
			require.Equal(t, 401, carol.do("GET", "/api/v1/worklist", nil).status, "disabling ends the sessions")
			require.Equal(t, 1, auditCount(t, b, "user.disable"))

			r = alice.do("GET", fmt.Sprintf("/api/v1/audit?entity_type=analysis&entity_id=%d", fc.AnalysisID), nil)
			require.Equal(t, 200, r.status)
			for _, a := range []string{"case.view", "review.correct", "review.reopen", "review.reject"} {
				require.Contains(t, string(r.body), `"action":"`+a+`"`)
			}
			r = alice.do("GET", "/api/v1/audit?limit=0", nil)
			require.Equal(t, 400, r.status)
		})

		run("logout", func(t *testing.T) {
			old := bob.csrf
			r := bob.do("POST", "/api/v1/logout", nil)
			require.Equal(t, 204, r.status)
			r = bob.do("GET", "/api/v1/session", nil)
			require.Equal(t, 401, r.status)
			bob.csrf = old
			r = bob.do("POST", fmt.Sprintf("/api/v1/analyses/%d/measure", fc.AnalysisID), map[string]any{"landmarks": []any{}})
			require.Equal(t, 401, r.status)
		})
	})
}

func TestBehindTLSProxy(t *testing.T) {
	b := setup(t, storetest.SQLite(t, nil), review.Config{SecureCookies: true, AllowedOrigins: []string{"https://cspine.hospital.example"}})
	c := b.client(t)
	r := c.do("POST", "/api/v1/login", map[string]string{"username": "bob", "password": password}, "Origin", "https://cspine.hospital.example")
	require.Equal(t, 200, r.status)
	require.Contains(t, r.header.Get("Set-Cookie"), "Secure")
	// The cookie jar will not send a Secure cookie over plain HTTP; send it by hand.
	var ck string
	for _, v := range r.header.Values("Set-Cookie") {
		ck, _, _ = strings.Cut(v, ";")
	}
	var s struct {
		CSRFToken string `json:"csrf_token"`
	}
	r.json(t, &s)
	c.csrf = s.CSRFToken
	path := fmt.Sprintf("/api/v1/analyses/%d/measure", flagged(b).AnalysisID)
	body := map[string]any{"landmarks": []map[string]any{{"name": "C7_inf_post", "x": 10, "y": 10}}}
	r = c.do("POST", path, body, "Cookie", ck, "Origin", "https://cspine.hospital.example")
	require.Equal(t, 200, r.status, string(r.body))
	r = c.do("POST", path, body, "Cookie", ck, "Origin", "https://elsewhere.example")
	require.Equal(t, 403, r.status)
}

func auditCount(t *testing.T, b *bundle, action string) int {
	t.Helper()
	var n int64
	require.NoError(t, b.db.Model(&models.AuditEvent{}).Where("action = ?", action).Count(&n).Error)
	return int(n)
}

func dsString(t *testing.T, ds dicom.Dataset, tg tag.Tag) string {
	t.Helper()
	e, err := ds.FindElementByTag(tg)
	require.NoError(t, err)
	v, _ := e.Value.GetValue().([]string)
	return strings.Join(v, `\`)
}

func dsDump(ds dicom.Dataset) string { return ds.String() }

// TestSourceGoneOrNothingToAmend: a purged source image is a 410 and a case
// whose machine report was never issued is a 409, both without any change.
func TestSourceGoneOrNothingToAmend(t *testing.T) {
	b := setup(t, storetest.SQLite(t, nil), review.Config{})
	fc, uc := flagged(b), unflagged(b)
	c := b.client(t)
	c.login("bob")
	ctx := context.Background()

	// No machine report yet for the unflagged case.
	require.NoError(t, b.db.Where("report_id IN (SELECT id FROM reports WHERE analysis_id = ?)", uc.AnalysisID).Delete(&models.Transfer{}).Error)
	require.NoError(t, b.db.Where("analysis_id = ?", uc.AnalysisID).Delete(&models.Report{}).Error)
	before := b.snapshot(t)
	r := c.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/approve", uc.AnalysisID), map[string]any{"version": 0})
	require.Equal(t, 409, r.status, string(r.body))
	require.Contains(t, string(r.body), "not been issued")
	require.Equal(t, before, b.snapshot(t))

	// The spool file purged by retention.
	require.NoError(t, b.st.InstanceMarkPurged(ctx, fc.InstanceID))
	r = c.do("GET", fmt.Sprintf("/api/v1/analyses/%d/image", fc.AnalysisID), nil)
	require.Equal(t, 410, r.status)
	require.Equal(t, "purged", r.errCode(t))
	v := c.caseView(fc.AnalysisID)
	require.False(t, v.Image.Available, "the case still opens, without the image")
	before = b.snapshot(t)
	r = c.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/approve", fc.AnalysisID), map[string]any{"version": v.Review.Version})
	require.Equal(t, 410, r.status, string(r.body))
	require.Equal(t, before, b.snapshot(t))
	// Rejecting needs no image.
	r = c.do("POST", fmt.Sprintf("/api/v1/analyses/%d/review/reject", fc.AnalysisID), map[string]any{"version": v.Review.Version, "reason": "image gone"})
	require.Equal(t, 200, r.status, string(r.body))
}

// TestConcurrentDecisions: two reviewers approving the same case at once
// give one decision, one report and one 409.
func TestConcurrentDecisions(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		b := setup(t, db, review.Config{})
		fc := flagged(b)
		c1, c2 := b.client(t), b.client(t)
		c1.login("bob")
		c2.login("alice")
		v := c1.caseView(fc.AnalysisID)
		statuses := make(chan int, 2)
		for _, c := range []*client{c1, c2} {
			go func() {
				// The client's require calls must stay on the test goroutine:
				// send the raw request here.
				req, _ := http.NewRequest("POST", c.base+fmt.Sprintf("/api/v1/analyses/%d/review/approve", fc.AnalysisID),
					strings.NewReader(fmt.Sprintf(`{"version": %d}`, v.Review.Version)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(review.CSRFHeader, c.csrf)
				res, err := c.hc.Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				res.Body.Close()
				statuses <- res.StatusCode
			}()
		}
		got := []int{<-statuses, <-statuses}
		require.ElementsMatch(t, []int{200, 409}, got)
		var n int64
		require.NoError(t, b.db.Model(&models.Report{}).Where("analysis_id = ?", fc.AnalysisID).Count(&n).Error)
		require.EqualValues(t, 2, n, "the machine report and one amendment")
		rep, err := b.st.ReportGetLatest(context.Background(), fc.AnalysisID)
		require.NoError(t, err)
		_, err = os.Stat(filepath.Join(b.dataDir, rep.SRPath))
		require.NoError(t, err, "the committed report's file is there")
		files, err := filepath.Glob(filepath.Join(b.dataDir, "reports", fmt.Sprintf("analysis-%d", fc.AnalysisID), "r2-*"))
		require.NoError(t, err)
		require.Len(t, files, 2, "only the winner's SR and SC are left")
	})
}
