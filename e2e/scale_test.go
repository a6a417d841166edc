package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// studies makes n single-image studies from the base images: copies with
// new Study, Series and SOP Instance UIDs (dcmodify -gst -gse -gin).
func studies(t testing.TB, base []string, n int, dir string) []string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	out := make([]string, n)
	for i := range out {
		b, err := os.ReadFile(base[i%len(base)])
		require.NoError(t, err)
		out[i] = filepath.Join(dir, fmt.Sprintf("study%04d.dcm", i))
		require.NoError(t, os.WriteFile(out[i], b, 0o644))
	}
	for i := 0; i < n; i += 50 {
		args := append([]string{"-nb", "-gst", "-gse", "-gin"}, out[i:min(i+50, n)]...)
		dicomnodetest.Run(t, false, "dcmodify", args...)
	}
	return out
}

// TestScaleOut: two `cspine serve` processes share one PostgreSQL and one
// data directory; 50 studies are sent, half to each; every study is
// assembled and analysed exactly once, both nodes do some of the work, and
// every report reaches the destination once.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	base := laterals(phantoms(t, filepath.Join(dir, "ph"), 12, 7, 0))
	require.NotEmpty(t, base)
	files := studies(t, base, 50, filepath.Join(dir, "studies"))
	db := newDatabase(t, store.Postgres)
	dest := filepath.Join(dir, "pacs")
	scp := storescp(t, "PACS", dest, 0)
	data := filepath.Join(dir, "data") // shared by both nodes
	mk := func() nodeOpts {
		return nodeOpts{DSN: db.DSN, DataDir: data, Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", scp.Port)}}
	}
	a, b := startNode(t, mk()), startNode(t, mk())

	var wg sync.WaitGroup
	for i, n := range []*node{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			half := files[i*25 : (i+1)*25]
			storescu(t, "PACS", n.DICOMPort, half...)
		}()
	}
	wg.Wait()
	waitFor(t, 180*time.Second, "50 reports delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == 50
	})
	require.Equal(t, int64(50), db.count(t, &models.Study{}, ""))
	require.Equal(t, int64(50), db.count(t, &models.Analysis{}, ""))
	require.Equal(t, int64(50), db.count(t, &models.Instance{}, "state = ?", models.InstanceAnalyzed))
	require.Equal(t, int64(50), db.count(t, &models.Report{}, ""))
	require.Equal(t, int64(50), db.count(t, &models.Job{}, "kind = ? AND state = ?", "analyze", models.JobCompleted))
	require.Equal(t, int64(0), db.count(t, &models.Job{}, "state <> ?", models.JobCompleted))
	var perInstance []struct {
		InstanceID int64
		N          int64
	}
	require.NoError(t, db.DB.Gorm.Model(&models.Analysis{}).Select("instance_id, COUNT(*) AS n").
		Group("instance_id").Having("COUNT(*) > 1").Scan(&perInstance).Error)
	require.Empty(t, perInstance, "instances analysed more than once")

	ca, cb := countLines(t, a, `"msg":"instance analysed"`), countLines(t, b, `"msg":"instance analysed"`)
	sa, sb := countLines(t, a, `"msg":"study assembled"`), countLines(t, b, `"msg":"study assembled"`)
	t.Logf("analyses: node A %d, node B %d; studies assembled: node A %d, node B %d", ca, cb, sa, sb)
	require.Equal(t, 50, ca+cb)
	require.Equal(t, 50, sa+sb)
	require.Positive(t, ca)
	require.Positive(t, cb)
	time.Sleep(time.Second)
	require.Len(t, received(t, dest)["SR"], 50)
}

func countLines(t testing.TB, n *node, s string) int {
	t.Helper()
	b, err := os.ReadFile(n.logPath)
	require.NoError(t, err)
	return strings.Count(string(b), s)
}
