package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// laterals returns the phantom files the node measures by default:
// measurable neutral laterals (flexion and extension views are skipped
// unless configured).
//
// KNOWN BUG (report/sc, not this package): for a source whose spacing
// comes from Imager Pixel Spacing / ERMF, sc.Build writes a Pixel Spacing
// Calibration Description longer than LO's 64 characters and fails, so no
// report can be built for those images (the analyze job is cancelled and
// the instance marked failed with that error). The fault, scale-out and
// benchmark tests measure the service, so they leave those images out
// until report/sc is fixed.
func laterals(lines []truthLine) []string {
	var out []string
	for _, l := range lines {
		if l.Measurable && l.SpacingSource != "imager_ermf" && l.Posture != "flexion" && l.Posture != "extension" {
			out = append(out, l.File)
		}
	}
	return out
}

// TestDestinationDown: the destination is down when the reports are ready;
// the transfer fails and is retried with backoff; when the destination
// comes back, delivery resumes by itself and the reports arrive once.
func TestDestinationDown(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lat, _ := lateralAndAP(t, dir)
	db := newDatabase(t, store.SQLite)
	destPort := dicomnodetest.FreePort(t)
	dest := filepath.Join(dir, "pacs")
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", destPort)}, Args: []string{"--allow", "PACS@127.0.0.1"}})
	// Only PACS@127.0.0.1 may call (--allow): another AE title is rejected.
	out, err := dicomnodetest.Run(t, true, "storescu", "-aet", "INTRUDER", "-aec", "CSPINE", "127.0.0.1", itoa(n.DICOMPort), lat.File)
	require.Error(t, err, "a caller not allowed was accepted: %s", out)
	require.Contains(t, out, "Association Rejected")
	storescu(t, "PACS", n.DICOMPort, lat.File)

	waitFor(t, 60*time.Second, "two failed delivery attempts", func() bool {
		trs, err := db.St.TransferListByStatus(ctxb(), models.TransferFailed, 10)
		return err == nil && len(trs) == 1 && trs[0].Attempts >= 2 && trs[0].NextAttemptAt != nil
	})
	require.Contains(t, n.metrics(t), `cspine_send_failures_total{outcome="retry"}`)

	storescp(t, "PACS", dest, destPort) // the destination comes back
	waitFor(t, 30*time.Second, "delivery after the destination returned", func() bool {
		trs, err := db.St.TransferListByStatus(ctxb(), models.TransferSent, 10)
		return err == nil && len(trs) == 1
	})
	time.Sleep(time.Second)
	r := received(t, dest)
	require.Len(t, r["SR"], 1)
	require.Len(t, r["SC"], 1)
}

// TestCrashRecovery: the node is killed with SIGKILL while receiving, while
// analysing and while sending, and restarted each time. The sender re-sends
// what was not acknowledged. In the end every accepted instance is analysed
// exactly once and each report reaches the destination; a report can reach
// it twice only when the kill fell between the destination's
// acknowledgement and our record of it, and then it is the same object (same
// SOP Instance UID, so the PACS replaces it).
//
// SIGKILL ends the process, not the machine: the page cache survives, so
// this test does not show that what was answered success survives a power
// loss (that rests on the fdatasync before the answer, which no test here
// can cut power under). It shows that the write-ahead spool's records are
// complete and replayed: every instance the sender had an answer of
// success for is recorded after the restart, by SOP Instance UID, with
// the data set that was sent.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	files := laterals(phantoms(t, filepath.Join(dir, "ph"), 30, 5, 0))
	require.GreaterOrEqual(t, len(files), 14)
	db := newDatabase(t, store.Postgres)
	dest := filepath.Join(dir, "pacs")
	require.NoError(t, os.MkdirAll(dest, 0o755))
	scp := dicomnodetest.StartServer(t, "storescp", "-aet", "PACS", "-od", dest, "+uf", "PORT")
	opts := nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", scp.Port)}}
	n := startNode(t, opts)
	opts.DICOMPort, opts.HTTPPort = n.DICOMPort, n.HTTPPort

	// 1. Killed while receiving.
	send := exec.Command(dicomnodetest.Tool(t, "storescu"), append([]string{"-v", "-aet", "PACS", "-aec", "CSPINE",
		"127.0.0.1", itoa(n.DICOMPort)}, files...)...)
	send.Env = dicomnodetest.DCMTKEnv(t, false)
	// The node is killed as soon as the sender has three answers: their
	// rows may not be written yet (the write-ahead spool records them in
	// batches), and the whole send takes only tens of milliseconds.
	pr, pw := io.Pipe()
	send.Stdout, send.Stderr = pw, pw
	var sendOut bytes.Buffer
	var ackedFiles []string // answered success, in order
	three, scanned := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(scanned)
		sc, cur := bufio.NewScanner(pr), ""
		for sc.Scan() {
			sendOut.WriteString(sc.Text() + "\n")
			if _, f, ok := strings.Cut(sc.Text(), "Sending file: "); ok {
				cur = strings.TrimSpace(f)
			}
			if strings.Contains(sc.Text(), "Received Store Response (Success)") {
				ackedFiles = append(ackedFiles, cur)
				if len(ackedFiles) == 3 {
					close(three)
				}
			}
		}
	}()
	require.NoError(t, send.Start())
	select {
	case <-three:
	case <-time.After(30 * time.Second):
		t.Fatal("no three answers from the node in 30 s")
	}
	n.kill()
	_ = send.Wait() // fails: the node died under it
	pw.Close()
	<-scanned
	acked := len(ackedFiles)
	recordedAtKill := map[string]bool{}
	var atKill []string
	require.NoError(t, db.DB.Gorm.Model(&models.Instance{}).Pluck("sop_instance_uid", &atKill).Error)
	for _, uid := range atKill {
		recordedAtKill[uid] = true
	}
	t.Logf("killed while receiving: %d of %d instances acknowledged to the sender, %d recorded", acked, len(files), len(atKill))
	require.Less(t, acked, len(files), "the kill came too late to test receiving")
	require.Positive(t, acked)

	// Every instance answered success is recorded after the restart (the
	// restarted node records from its write-ahead spool what the dead one
	// answered but had not recorded yet), under the SOP Instance UID of
	// the file sent, and its spool file holds the data set sent (the file
	// meta differs: the node writes its own) and matches the SHA-256
	// recorded.
	n = startNode(t, opts)
	var unrecorded []string
	for _, f := range ackedFiles {
		require.NotEmpty(t, f, "an answer of success without the file it answered:\n%s", sendOut.String())
		uid := dump(t, f, "0008,0018")
		require.NotEmpty(t, uid, "SOP Instance UID of %s", f)
		if !recordedAtKill[uid] {
			unrecorded = append(unrecorded, uid)
		}
		var in models.Instance
		waitFor(t, 30*time.Second, "acknowledged instance "+uid+" recorded", func() bool {
			return db.DB.Gorm.Where("sop_instance_uid = ?", uid).Take(&in).Error == nil
		})
		kept := filepath.Join(opts.DataDir, in.SpoolPath)
		b, err := os.ReadFile(kept)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		require.Equal(t, in.SHA256, hex.EncodeToString(sum[:]), "spool file of %s", uid)
		require.Equal(t, dataSetSHA256(t, f), dataSetSHA256(t, kept), "data set of %s: spool file differs from the file sent", uid)
	}
	t.Logf("after the restart: %d recorded; %d acknowledged but not recorded at the kill, recorded by replay: %v",
		db.count(t, &models.Instance{}, ""), len(unrecorded), unrecorded)
	t.Run("replay exercised", func(t *testing.T) {
		if len(unrecorded) == 0 {
			t.Skip("every acknowledged instance was already recorded when the node was killed (timing): " +
				"the replay of the write-ahead spool was not exercised this run; the checks above still hold")
		}
	})
	storescu(t, "PACS", n.DICOMPort, files...) // the sender re-sends the study

	// 2. Killed while analysing.
	waitEvery(t, 20*time.Millisecond, 60*time.Second, "an analysis running after the first ones", func() bool {
		return db.count(t, &models.Analysis{}, "") >= 2 &&
			db.count(t, &models.Job{}, "kind = ? AND state = ?", "analyze", models.JobRunning) >= 1
	})
	n.kill()
	t.Logf("killed while analysing after %d analyses (%d analyze jobs held by the dead node)",
		db.count(t, &models.Analysis{}, ""), db.count(t, &models.Job{}, "kind = ? AND state = ?", "analyze", models.JobRunning))
	require.Less(t, db.count(t, &models.Analysis{}, ""), int64(len(files)), "the kill came too late to test analysing")

	// 3. Killed while sending.
	n = startNode(t, opts)
	waitEvery(t, 5*time.Millisecond, 90*time.Second, "a delivery running after the first ones", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) >= 2 &&
			db.count(t, &models.Job{}, "kind = ? AND state = ?", "send", models.JobRunning) >= 1
	})
	n.kill()
	sent := db.count(t, &models.Transfer{}, "status = ?", models.TransferSent)
	t.Logf("killed while sending after %d deliveries (%d send jobs held by the dead node)", sent,
		db.count(t, &models.Job{}, "kind = ? AND state = ?", "send", models.JobRunning))

	n = startNode(t, opts)
	waitFor(t, 120*time.Second, "every report delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == int64(len(files))
	})

	// Every accepted instance once, analysed once, no job left or dead.
	require.Equal(t, int64(len(files)), db.count(t, &models.Instance{}, ""))
	require.Equal(t, int64(len(files)), db.count(t, &models.Instance{}, "state = ?", models.InstanceAnalyzed))
	require.Equal(t, int64(len(files)), db.count(t, &models.Analysis{}, ""))
	require.Equal(t, int64(len(files)), db.count(t, &models.Report{}, ""))
	require.Equal(t, int64(0), db.count(t, &models.Job{}, "state <> ?", models.JobCompleted))

	// The destination holds exactly the recorded reports.
	var reps []models.Report
	require.NoError(t, db.DB.Gorm.Find(&reps).Error)
	want := map[string]bool{}
	for _, r := range reps {
		want[r.SRSOPInstanceUID] = true
		want[*r.SCSOPInstanceUID] = true
	}
	time.Sleep(time.Second)
	r := received(t, dest)
	seen := map[string]int{}
	for _, f := range append(r["SR"], r["SC"]...) {
		seen[dump(t, f, "0008,0018")]++
	}
	var extra, dups []string
	for uid, k := range seen {
		if !want[uid] {
			extra = append(extra, uid)
		}
		if k > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", uid, k))
		}
	}
	sort.Strings(dups)
	require.Empty(t, extra, "objects that are not recorded reports")
	require.Len(t, seen, len(want), "every report object arrived")
	t.Logf("objects delivered twice (kill between acknowledgement and record): %d %s", len(dups), strings.Join(dups, " "))
	require.LessOrEqual(t, len(dups), 2*4, "at most the in-flight deliveries of one kill are repeated")
}

// TestDeadLetterManualRetry: a study is assembled on demand (cspine queue
// complete-study, the quiet time being an hour); its delivery fails until
// the transfer is dead (2 attempts); once the destination is back, an
// operator's manual retry (cspine queue retry-transfer) delivers it.
func TestDeadLetterManualRetry(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lat, _ := lateralAndAP(t, dir)
	db := newDatabase(t, store.SQLite)
	destPort := dicomnodetest.FreePort(t)
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"), QuietTime: time.Hour, MaxAttempts: 2,
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", destPort)}})
	storescu(t, "PACS", n.DICOMPort, lat.File)
	time.Sleep(2 * time.Second)
	require.Zero(t, db.count(t, &models.Job{}, ""), "nothing may be assembled before the quiet time")
	require.Contains(t, n.cli(t, "queue", "complete-study", lat.StudyInstanceUID), "study assembled")

	waitFor(t, 60*time.Second, "the transfer to be dead", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferDead) == 1
	})
	waitFor(t, 10*time.Second, "the dead letter counted in the metrics", func() bool {
		return strings.Contains(n.metrics(t), `cspine_send_failures_total{outcome="dead"} 1`)
	})
	status := n.cli(t, "queue", "status")
	require.Regexp(t, `dead\s+1`, status)

	dest := filepath.Join(dir, "pacs")
	storescp(t, "PACS", dest, destPort)
	var trs []models.Transfer
	require.NoError(t, db.DB.Gorm.Find(&trs).Error)
	require.Len(t, trs, 1)
	n.cli(t, "queue", "retry-transfer", itoa(int(trs[0].ID)))
	waitFor(t, 30*time.Second, "delivery after the manual retry", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == 1
	})
	time.Sleep(time.Second)
	r := received(t, dest)
	require.Len(t, r["SR"], 1)
	require.Len(t, r["SC"], 1)
	require.Equal(t, int64(1), db.count(t, &models.AuditEvent{}, "action = ? AND entity_id = ?", "transfer.retry", itoa(int(trs[0].ID))))
	require.Equal(t, int64(1), db.count(t, &models.AuditEvent{}, "action = ? AND entity_id = ?", "study.complete", lat.StudyInstanceUID))
}

// dataSetSHA256 returns the SHA-256 (hex) of a Part-10 file's data set,
// after its file meta information, re-encoded by dcmconv in Implicit VR
// Little Endian (storescu may send in another transfer syntax than the
// file's, which changes the encoding, not the content).
func dataSetSHA256(t testing.TB, path string) string {
	t.Helper()
	conv := filepath.Join(t.TempDir(), "ti.dcm")
	dicomnodetest.Run(t, false, "dcmconv", "+ti", path, conv)
	b, err := os.ReadFile(conv)
	require.NoError(t, err)
	_, n, err := services.ReadFileMeta(bufio.NewReader(bytes.NewReader(b)))
	require.NoError(t, err, "file meta of %s", path)
	sum := sha256.Sum256(b[n:])
	return hex.EncodeToString(sum[:])
}
