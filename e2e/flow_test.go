package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// lateralAndAP returns a measurable lateral phantom and an AP phantom
// rewritten into the lateral's study.
func lateralAndAP(t *testing.T, dir string) (lateral truthLine, apFile string) {
	t.Helper()
	lines := phantoms(t, filepath.Join(dir, "ph"), 6, 11, 0.5)
	var ap truthLine
	for _, l := range lines {
		if l.Measurable && lateral.File == "" && l.Posture != "flexion" && l.Posture != "extension" {
			lateral = l
		}
		if l.Reason == "ap_view" && ap.File == "" {
			ap = l
		}
	}
	require.NotEmpty(t, lateral.File, "phantom set has no measurable lateral")
	require.NotEmpty(t, ap.File, "phantom set has no AP view")
	return lateral, intoStudy(t, ap.File, lateral.File, dir)
}

// TestStoreAnalyzeSend: storescu sends a study with a lateral and an AP
// image; the lateral is measured; the SR and the SC arrive at a storescp
// destination; the database holds the study, the analysis, its landmarks
// and the transfers. On PostgreSQL and on SQLite.
func TestStoreAnalyzeSend(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	for _, dialect := range []string{store.Postgres, store.SQLite} {
		t.Run(dialect, func(t *testing.T) {
			dir := t.TempDir()
			lateral, ap := lateralAndAP(t, dir)
			db := newDatabase(t, dialect)
			dest := filepath.Join(dir, "pacs")
			scp := storescp(t, "PACS", dest, 0)
			n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
				Destinations: []string{"PACS@127.0.0.1:" + itoa(scp.Port)}})

			storescu(t, "PACS", n.DICOMPort, lateral.File, ap)

			waitFor(t, 60*time.Second, "SR and SC at the destination", func() bool {
				r := received(t, dest)
				return len(r["SR"]) == 1 && len(r["SC"]) == 1
			})
			// The study, one analysis of the lateral, its landmarks, the report and the sent transfer.
			study, err := db.St.StudyGetByUID(ctxb(), lateral.StudyInstanceUID)
			require.NoError(t, err)
			require.Equal(t, models.StudyComplete, study.State)
			require.Equal(t, 2, study.InstanceCount)
			lat, err := db.St.InstanceGetBySOPUID(ctxb(), lateral.SOPInstanceUID)
			require.NoError(t, err)
			require.Equal(t, models.InstanceAnalyzed, lat.State)
			require.Equal(t, int64(1), db.count(t, &models.Instance{}, "state = ? AND study_id = ?", models.InstanceSkipped, study.ID))
			require.Equal(t, int64(1), db.count(t, &models.Analysis{}, ""))
			name, version := refModel(t)
			an, err := db.St.AnalysisGetBySource(ctxb(), lat.ID, name, version, "hierarchical")
			require.NoError(t, err)
			require.Equal(t, models.AnalysisOK, an.Status)
			require.NotNil(t, an.C2C7CobbDeg)
			require.GreaterOrEqual(t, len(an.Landmarks), 23)
			reps, err := db.St.ReportListByAnalysis(ctxb(), an.ID)
			require.NoError(t, err)
			require.Len(t, reps, 1)
			trs, err := db.St.TransferListByReport(ctxb(), reps[0].ID)
			require.NoError(t, err)
			require.Len(t, trs, 1)
			waitFor(t, 10*time.Second, "transfer recorded as sent", func() bool {
				tr, err := db.St.TransferGetByID(ctxb(), trs[0].ID)
				return err == nil && tr.Status == models.TransferSent
			})
			sent, err := db.St.TransferGetByID(ctxb(), trs[0].ID)
			require.NoError(t, err)
			st2, err := db.St.StudyGetByID(ctxb(), study.ID)
			require.NoError(t, err)
			t.Logf("one study, idle node: study complete → reports acknowledged in %v", sent.SentAt.Sub(*st2.CompletedAt).Round(time.Millisecond))
			if an.ReviewRequired {
				require.Equal(t, int64(1), db.count(t, &models.ReviewTask{}, "analysis_id = ?", an.ID))
			}
			// What arrived is the report we recorded, about the lateral.
			r := received(t, dest)
			require.Equal(t, reps[0].SRSOPInstanceUID, dump(t, r["SR"][0], "0008,0018"))
			require.Equal(t, *reps[0].SCSOPInstanceUID, dump(t, r["SC"][0], "0008,0018"))
			require.Equal(t, lateral.StudyInstanceUID, dump(t, r["SR"][0], "0020,000D"))
			require.Equal(t, lateral.StudyInstanceUID, dump(t, r["SC"][0], "0020,000D"))
			for _, f := range []string{r["SR"][0], r["SC"][0]} {
				out, _ := dicomnodetest.Run(t, false, "dcmdump", "-q", "+P", "0008,1155", f)
				require.Contains(t, out, lateral.SOPInstanceUID, "%s does not reference the lateral", filepath.Base(f))
			}
			out, _ := dicomnodetest.Run(t, false, "dsrdump", r["SR"][0])
			require.Contains(t, out, "Imaging Measurement Report")

			// The review UI (package review) is mounted at "/" on the HTTP port.
			for _, path := range []string{"/", "/api/v1/openapi.json"} {
				resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", n.HTTPPort, path))
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, 200, resp.StatusCode, path)
			}

			// No patient data in the logs (info level): name, ID, birth date, accession.
			for _, tg := range []string{"0010,0010", "0010,0020", "0010,0030", "0008,0050"} {
				if v := dump(t, lateral.File, tg); len(v) > 3 {
					require.False(t, n.logContains(v), "the node log holds patient data %s = %q", tg, v)
				}
			}

			waitFor(t, 10*time.Second, "the delivery counted in the metrics", func() bool {
				return strings.Contains(n.metrics(t), `cspine_reports_delivered_total 1`)
			})
			require.Contains(t, n.metrics(t), `cspine_received_instances_total{outcome="stored"} 2`)
		})
	}
}

// TestRoutingByCallingAE: routing.by_calling_ae sends the reports of a
// study from one calling AE to two destinations (neither of them the
// caller), each its own transfer.
func TestRoutingByCallingAE(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lat, _ := lateralAndAP(t, dir)
	db := newDatabase(t, store.SQLite)
	pacs, archive := filepath.Join(dir, "pacs"), filepath.Join(dir, "archive")
	p1, p2 := storescp(t, "PACS", pacs, 0), storescp(t, "ARCHIVE", archive, 0)
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", p1.Port), fmt.Sprintf("ARCHIVE@127.0.0.1:%d", p2.Port)},
		Extra:        "routing:\n  default: calling\n  by_calling_ae:\n    CR_ROOM_3: [PACS, ARCHIVE]\n"})
	storescu(t, "CR_ROOM_3", n.DICOMPort, lat.File)
	waitFor(t, 60*time.Second, "reports at both destinations", func() bool {
		a, b := received(t, pacs), received(t, archive)
		return len(a["SR"]) == 1 && len(a["SC"]) == 1 && len(b["SR"]) == 1 && len(b["SC"]) == 1
	})
	var trs []models.Transfer
	require.NoError(t, db.DB.Gorm.Order("destination").Find(&trs).Error)
	require.Len(t, trs, 2)
	require.Equal(t, "ARCHIVE", trs[0].Destination)
	require.Equal(t, "PACS", trs[1].Destination)
}

// refModel is the name and version of the shipped reference models.
func refModel(t *testing.T) (name, version string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "refmodels", "manifest.json"))
	require.NoError(t, err)
	var m struct{ Name, Version string }
	require.NoError(t, json.Unmarshal(b, &m))
	return m.Name, m.Version
}
