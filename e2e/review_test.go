package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// TestReviewAmendment: the review UI mounted by cspine serve. The first
// administrator comes from CSPINE_ADMIN_PASSWORD; through the review API
// (session cookie and CSRF token) a flagged case is approved, and the
// amended SR (VERIFIED) and its overlay reach the destination through the
// node's durable send path, after the machine report.
func TestReviewAmendment(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lat, _ := lateralAndAP(t, dir)
	db := newDatabase(t, store.SQLite)
	dest := filepath.Join(dir, "pacs")
	scp := storescp(t, "PACS", dest, 0)
	const password = "correct horse battery staple"
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", scp.Port)},
		Env:          []string{"CSPINE_ADMIN_PASSWORD=" + password}})
	storescu(t, "PACS", n.DICOMPort, lat.File)
	waitFor(t, 60*time.Second, "the machine report delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == 1
	})
	var an models.Analysis
	require.NoError(t, db.DB.Gorm.First(&an).Error)
	if !an.ReviewRequired {
		t.Fatalf("the phantom's analysis is not flagged: this test needs a flagged case (reasons %v)", an.Reasons())
	}

	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", n.HTTPPort)
	post := func(path, csrf string, body any) (int, []byte) {
		b, _ := json.Marshal(body)
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set("X-CSRF-Token", csrf)
		}
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	code, body := post("/api/v1/login", "", map[string]string{"username": "admin", "password": password})
	require.Equal(t, 200, code, "%s", body)
	var sess struct {
		CSRFToken string `json:"csrf_token"`
	}
	require.NoError(t, json.Unmarshal(body, &sess))

	var task models.ReviewTask
	require.NoError(t, db.DB.Gorm.Where("analysis_id = ?", an.ID).First(&task).Error)
	path := fmt.Sprintf("/api/v1/analyses/%d/review/approve", an.ID)
	code, body = post(path, "", map[string]any{"version": task.Version, "comment": "checked"})
	require.Equal(t, 403, code, "approve without the CSRF token: %s", body)
	code, body = post(path, sess.CSRFToken, map[string]any{"version": task.Version, "comment": "checked"})
	require.Equal(t, 200, code, "%s", body)

	waitFor(t, 60*time.Second, "the amended report delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == 2
	})
	time.Sleep(time.Second)
	r := received(t, dest)
	require.Len(t, r["SR"], 2)
	flags := map[string]bool{}
	for _, f := range r["SR"] {
		flags[dump(t, f, "0040,a493")] = true
	}
	require.True(t, flags["VERIFIED"], "no VERIFIED SR at the destination: %v", flags)
	require.True(t, flags["UNVERIFIED"], "the machine report is missing: %v", flags)
}
