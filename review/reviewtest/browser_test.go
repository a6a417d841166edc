package reviewtest_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"gorm.io/gorm"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/jobs"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/report/sr"
	"github.com/cspine/cspine/review"
	"github.com/cspine/cspine/review/reviewtest"
	"github.com/cspine/cspine/store/storetest"
	"github.com/cspine/cspine/worker"
)

var updateDocs = flag.Bool("update-docs", false, "write the screenshots into docs/img (run from the repository)")

const password = "correct horse battery staple"

// chromium finds the browser; the test fails (not skips) without it.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install the Debian packages chromium and chromium-driver (scripts/setup.sh)")
	return ""
}

func screenshotPath(t *testing.T, name string) string {
	if *updateDocs {
		dir := filepath.Join("..", "..", "docs", "img")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return filepath.Join(dir, name)
	}
	return filepath.Join(t.TempDir(), name)
}

// pressedLeft marks a mouse move with the left button held (a drag).
func pressedLeft(p *input.DispatchMouseEventParams) {
	p.Button = input.MouseButtonLeft
	p.Buttons = 1
}

// evalInt runs JavaScript that yields (a promise of) an integer.
func evalInt(ctx context.Context, t *testing.T, expr string) int {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[int](expr, chromedp.EvalAwaitPromise))
	require.NoError(t, err, expr)
	return v
}

func evalBool(ctx context.Context, t *testing.T, expr string) bool {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	require.NoError(t, err, expr)
	return v
}

type point struct{ X, Y float64 }

func evalPoint(ctx context.Context, t *testing.T, expr string) point {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[point](expr))
	require.NoError(t, err, expr)
	return v
}

func screenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	b, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(screenshotPath(t, name), b, 0o644))
}

// waitJS polls a JavaScript condition.
func waitJS(ctx context.Context, t *testing.T, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func textOf(ctx context.Context, t *testing.T, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return strings.TrimSpace(s)
}

func degrees(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "°"), 64)
	require.NoError(t, err, s)
	return v
}

// TestBrowserReview drives the review page in headless Chromium: log in,
// open the flagged phantom case, drag C7_inf_post, watch C7 slope and the
// C2–C7 angle change, approve, and find the amended SR; a reviewer cannot
// do what needs the admin role, a disabled one nothing, and a request
// without the CSRF token fails.
func TestBrowserReview(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (headless Chromium) skipped in -short mode")
	}
	exe := chromium(t)
	db := storetest.SQLite(t, nil)
	dataDir := t.TempDir()
	// The destination: a DCMTK storescp on loopback, where the machine
	// reports "went" and the amended one goes through the node's send worker.
	pacsDir := t.TempDir()
	pacs := dicomnodetest.StartServer(t, "storescp", "-aet", "STORESCP", "-od", pacsDir, "PORT")
	cases := reviewtest.Seed(t, db.Gorm, dataDir, reviewtest.Options{Count: 2,
		Destination: &reviewtest.Destination{Name: "pacs", AETitle: "STORESCP", Host: "127.0.0.1", Port: pacs.Port}})
	var fc, uc reviewtest.Case
	for _, c := range cases {
		if c.Flagged {
			fc = c
		} else {
			uc = c
		}
	}
	st := models.NewStore(db.Gorm)
	ctx := context.Background()
	bob, err := review.CreateUser(ctx, st, "bob", "Bob Reviewer", models.RoleReviewer, password)
	require.NoError(t, err)
	_, err = review.CreateUser(ctx, st, "alice", "Alice Admin", models.RoleAdmin, password)
	require.NoError(t, err)
	// The node's durable send path: a job pool running the send worker.
	quiet := slog.New(slog.DiscardHandler)
	sender, err := worker.NewSender(st, worker.SenderConfig{DataDir: dataDir, CallingAETitle: "CSPINE", Logger: quiet})
	require.NoError(t, err)
	jc := jobs.NewClient(db.Gorm, jobs.ClientConfig{})
	fin := &worker.Finisher{St: st, Jobs: jc, Log: quiet}
	pool, err := jobs.NewPool(db.Gorm, jobs.PoolConfig{Workers: map[string]jobs.Worker{jobs.KindSend: sender}, Concurrency: 1,
		PollInterval: 200 * time.Millisecond, Logger: quiet, OnFinish: fin.OnFinish})
	require.NoError(t, err)
	require.NoError(t, pool.Start(ctx))
	defer pool.Stop(ctx)
	h, err := review.New(review.Deps{DB: db.Gorm, DataDir: dataDir, Device: reviewtest.Device, InstitutionName: "Test Hospital",
		Logger: quiet, Notify: pool.Notify})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	defer srv.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 2*time.Minute)
	defer cancelT()

	// Log in.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login")),
		chromedp.SendKeys(chromedp.CSS("#login-user"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#worklist tbody tr[data-id]")),
	))
	// The flagged case is first; its reasons are shown.
	first, err := chromedp.Run(bctx, chromedp.AttributeValue(chromedp.CSS("#worklist tbody tr[data-id]"), "data-id"))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(fc.AnalysisID), first.Value)
	require.Contains(t, textOf(bctx, t, "#worklist tbody tr"), "c7_low_confidence")
	require.Contains(t, textOf(bctx, t, "#reason-counts"), "c7_stage_disagreement: 1")
	screenshot(bctx, t, "review-worklist.png")

	// Open the flagged case.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS("#worklist tbody tr[data-id]")),
		chromedp.WaitVisible(chromedp.CSS("#case-view")),
	))
	waitJS(bctx, t, `window.cspine.imageLoaded()`)
	require.Contains(t, textOf(bctx, t, "#reasons"), "c7_stage_disagreement")
	require.Contains(t, textOf(bctx, t, "#c7-stages"), "C7_inf_post")
	// Window/level: new values re-render the image on the server.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SetValue(chromedp.CSS("#wc"), "1500"),
		chromedp.SetValue(chromedp.CSS("#ww"), "900"),
	))
	require.True(t, evalBool(bctx, t, `document.querySelector("#ww").dispatchEvent(new Event("change"))`))
	waitJS(bctx, t, `window.cspine.imageSrc().includes("wc=1500") && window.cspine.imageSrc().includes("ww=900")`)
	// Zoom in with the keyboard: the visible region is fetched at full resolution.
	require.NoError(t, chromedp.Do(bctx, chromedp.Focus(chromedp.CSS("#view")),
		chromedp.KeyEvent("+"), chromedp.KeyEvent("+"), chromedp.KeyEvent("+"), chromedp.KeyEvent("+")))
	waitJS(bctx, t, `window.cspine.regionLoaded()`)
	require.NoError(t, chromedp.Do(bctx, chromedp.KeyEvent("0"), chromedp.Click(chromedp.CSS("#wl-reset"))))
	waitJS(bctx, t, `window.cspine.imageLoaded() && !window.cspine.imageSrc().includes("wc=")`)

	slope0 := degrees(t, textOf(bctx, t, "#param-c7_slope_deg td.current"))
	cobb0 := degrees(t, textOf(bctx, t, "#param-c2c7_cobb_deg td.current"))
	require.InDelta(t, fc.Machine.Parameters.C7SlopeDeg, slope0, 0.06)

	// Drag C7_inf_post from the machine's position to the true corner.
	truth := func() (x, y float64) {
		for _, l := range fc.Truth.Landmarks {
			if l.Name == "C7_inf_post" {
				return l.X, l.Y
			}
		}
		t.Fatal("no truth C7_inf_post")
		return
	}
	tx, ty := truth()
	from := evalPoint(bctx, t, `window.cspine.screenPos("C7_inf_post")`)
	to := evalPoint(bctx, t, fmt.Sprintf(`window.cspine.sourceToPage(%f, %f)`, tx, ty))
	actions := []chromedp.Action[chromedp.Void]{chromedp.MouseEvent(chromedp.MousePressed, from.X, from.Y, chromedp.ButtonLeft, chromedp.ClickCount(1))}
	for i := 1; i <= 10; i++ {
		f := float64(i) / 10
		actions = append(actions, chromedp.MouseEvent(chromedp.MouseMoved, from.X+(to.X-from.X)*f, from.Y+(to.Y-from.Y)*f, pressedLeft),
			chromedp.Sleep(20*time.Millisecond))
	}
	actions = append(actions, chromedp.MouseEvent(chromedp.MouseReleased, to.X, to.Y, chromedp.ButtonLeft, chromedp.ClickCount(1)))
	require.NoError(t, chromedp.Do(bctx, actions...))
	waitJS(bctx, t, `!window.cspine.measuring() && document.querySelector("#param-c7_slope_deg").classList.contains("changed")`)
	time.Sleep(200 * time.Millisecond)
	waitJS(bctx, t, `!window.cspine.measuring()`)
	slope1 := degrees(t, textOf(bctx, t, "#param-c7_slope_deg td.current"))
	cobb1 := degrees(t, textOf(bctx, t, "#param-c2c7_cobb_deg td.current"))
	require.Greater(t, math.Abs(slope1-slope0), 1.0, "C7 slope changes: %v → %v", slope0, slope1)
	require.Greater(t, math.Abs(cobb1-cobb0), 1.0, "C2–C7 angle changes: %v → %v", cobb0, cobb1)
	require.InDelta(t, fc.Truth.Parameters.C7SlopeDeg, slope1, 0.6, "dragged to the true corner")
	moved := evalPoint(bctx, t, `window.cspine.landmark("C7_inf_post")`)
	require.InDelta(t, tx, moved.X, 1.0)
	require.InDelta(t, ty, moved.Y, 1.0)
	require.Contains(t, textOf(bctx, t, "#approve"), "Approve with corrections (1 moved)")
	screenshot(bctx, t, "review-case.png")

	// A request without the CSRF token fails; with it, it works.
	measureJS := `fetch("/api/v1/analyses/%d/measure", {method: "POST", headers: %s, body: JSON.stringify({landmarks: [{name: "C7_inf_post", x: 10, y: 10}]})}).then(r => r.status)`
	status := evalInt(bctx, t, fmt.Sprintf(measureJS, fc.AnalysisID, `{"Content-Type": "application/json"}`))
	require.Equal(t, 403, status, "no CSRF token")
	status = evalInt(bctx, t, fmt.Sprintf(`fetch("/api/v1/session").then(r => r.json()).then(s => `+measureJS+`)`,
		fc.AnalysisID, `{"Content-Type": "application/json", "X-CSRF-Token": s.csrf_token}`))
	require.Equal(t, 200, status, "with the CSRF token")

	// Approve (with the correction).
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#approve"))))
	waitJS(bctx, t, `document.querySelector("#state-badge") && document.querySelector("#state-badge").textContent === "corrected"`)
	waitJS(bctx, t, `document.querySelector('#reports tr[data-revision="2"]') !== null`)
	require.Equal(t, "VERIFIED", textOf(bctx, t, `#reports tr[data-revision="2"] td:nth-child(2)`))
	require.Contains(t, textOf(bctx, t, `#reports tr[data-revision="2"]`), "pacs (STORESCP)")
	// The page follows the delivery until the send worker has sent it.
	waitJS(bctx, t, `document.querySelector('#reports tr[data-revision="2"] td:nth-child(3)').textContent === "sent"`)
	require.True(t, evalBool(bctx, t, `(document.querySelector("#actions").scrollIntoView(), true)`))
	screenshot(bctx, t, "review-decided.png")

	// The amended SR in the outbox: VERIFIED, the corrected coordinates,
	// the send job queued.
	rep, err := st.ReportGetLatest(ctx, fc.AnalysisID)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Revision)
	require.Equal(t, models.Verified, rep.VerificationFlag)
	ts, err := st.TransferListByReport(ctx, rep.ID)
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, models.TransferSent, ts[0].Status)
	require.NotNil(t, ts[0].JobID)
	// At the destination: storescp names files by a modality prefix (SRc,
	// SC, ...) and the SOP Instance UID.
	atPACS := receivedFile(t, pacsDir, rep.SRSOPInstanceUID)
	receivedFile(t, pacsDir, *rep.SCSOPInstanceUID)
	ds, err := dicom.ParseFile(atPACS, nil)
	require.NoError(t, err)
	vf, err := ds.FindElementByTag(tag.VerificationFlag)
	require.NoError(t, err)
	require.Equal(t, []string{"VERIFIED"}, vf.Value.GetValue())
	got, err := sr.Read(ds)
	require.NoError(t, err)
	p := got.Landmarks()["C7_inf_post"]
	require.InDelta(t, moved.X, p.X, 0.01)
	require.InDelta(t, moved.Y, p.Y, 0.01)
	task, err := st.ReviewTaskGetByID(ctx, *rep.ReviewTaskID)
	require.NoError(t, err)
	require.Equal(t, models.ReviewCorrected, task.State)
	require.Equal(t, bob.ID, *task.DecidedByUserID)

	// A reviewer has no Reopen button and the API refuses the admin action.
	require.True(t, evalBool(bctx, t, `document.querySelector("#reopen").hidden`))
	status = evalInt(bctx, t, fmt.Sprintf(`fetch("/api/v1/session").then(r => r.json()).then(s =>
		fetch("/api/v1/analyses/%d/review/reopen", {method: "POST", headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf_token},
		body: JSON.stringify({version: %d, reason: "again"})})).then(r => r.status)`, fc.AnalysisID, task.Version))
	require.Equal(t, 403, status)

	// A reviewer whose account was disabled cannot act any more: the
	// approval of the other case is refused and the page asks to log in.
	before := countRows(t, db.Gorm.Model(&models.Report{}))
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/#/case/"+fmt.Sprint(uc.AnalysisID))))
	waitJS(bctx, t, `window.cspine.imageLoaded() && !document.querySelector("#approve").disabled`)
	require.NoError(t, st.UserSetDisabled(ctx, bob.ID, true))
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#approve")), chromedp.WaitVisible(chromedp.CSS("#login"))))
	require.Equal(t, before, countRows(t, db.Gorm.Model(&models.Report{})))
	// And cannot log in again.
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), "bob"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
	))
	waitJS(bctx, t, `document.querySelector("#login-error").textContent.includes("disabled")`)

	// An administrator sees the accounts (bob disabled), the audit log and
	// the deliveries.
	require.True(t, evalBool(bctx, t, `(document.querySelector("#login-user").value = "", document.querySelector("#login-pass").value = "", true)`))
	require.NoError(t, chromedp.Do(bctx,
		chromedp.SendKeys(chromedp.CSS("#login-user"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#login-pass"), password),
		chromedp.Click(chromedp.CSS("#login-submit")),
		chromedp.WaitVisible(chromedp.CSS("#nav-admin")),
		chromedp.Navigate(srv.URL+"/#/admin"),
		chromedp.WaitVisible(chromedp.CSS("#audit tbody tr")),
	))
	require.Contains(t, textOf(bctx, t, `#users tr[data-user="bob"]`), "disabled")
	// Enable bob again from the page.
	require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`#users tr[data-user="bob"] button`))))
	waitJS(bctx, t, `document.querySelector('#users tr[data-user="bob"]').textContent.includes("active")`)
	u, err := st.UserGetByID(ctx, bob.ID)
	require.NoError(t, err)
	require.False(t, u.Disabled)
	require.Contains(t, textOf(bctx, t, "#audit"), "review.correct")
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/#/transfers"), chromedp.WaitVisible(chromedp.CSS("#transfers-view"))))
	require.NoError(t, chromedp.Do(bctx, chromedp.SetValue(chromedp.CSS("#t-status"), "sent")))
	require.True(t, evalBool(bctx, t, `document.querySelector("#t-status").dispatchEvent(new Event("change"))`))
	waitJS(bctx, t, `document.querySelector("#transfers tbody").textContent.includes("STORESCP")`)

	// Every case view and the action were audited.
	evs, err := st.AuditEventListByEntity(ctx, "analysis", fmt.Sprint(fc.AnalysisID))
	require.NoError(t, err)
	var actions2 []string
	for _, e := range evs {
		actions2 = append(actions2, e.Action)
	}
	require.Contains(t, actions2, "case.view")
	require.Contains(t, actions2, "review.correct")
	b, _ := json.Marshal(actions2)
	t.Logf("audit of the case: %s", b)
}

func receivedFile(t *testing.T, dir, uid string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*."+uid))
	require.NoError(t, err)
	require.Len(t, m, 1, "%s at the destination", uid)
	return m[0]
}

func countRows(t *testing.T, q *gorm.DB) int64 {
	t.Helper()
	var n int64
	require.NoError(t, q.Count(&n).Error)
	return n
}
