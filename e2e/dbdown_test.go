package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
)

// TestDatabaseDownWhileReceiving: PostgreSQL is stopped between two sends
// and comes back after them. Each instance gets one of two defined
// answers: success (it is durable in the write-ahead spool and is recorded
// once the database is back, without a re-send) or A700 Out of Resources
// (the node has found that it cannot record; the sender keeps its copy).
// Right after the database stops the node still answers success (the
// write-ahead spool holds the instances); once its materialiser has failed
// it refuses. Nothing answered success is lost, a re-send of everything
// gives no second row, and every study is analysed and reported once.
func TestDatabaseDownWhileReceiving(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	files, pg, db, dest, n := privatePGSetup(t, 10, 11, 12)

	// The first two studies arrive while all is well.
	storescu(t, "PACS", n.DICOMPort, files[:2]...)
	waitFor(t, 30*time.Second, "first studies recorded", func() bool {
		return db.count(t, &models.Instance{}, "") == 2
	})

	pg.pgctl(t, "stop", "-m", "fast")
	// Two sends while the database is down: the first right away, the
	// second once the node has had time to find its database gone.
	acked, refused := sendVerbose(t, n.DICOMPort, files[2:7])
	t.Logf("database just stopped: %d of %d answered success, %d refused with A700", len(acked), 5, refused)
	time.Sleep(3 * time.Second)
	acked2, refused2 := sendVerbose(t, n.DICOMPort, files[7:])
	t.Logf("database down for 3 s: %d of %d answered success, %d refused with A700", len(acked2), len(files)-7, refused2)
	require.Positive(t, refused2, "the node answered success to everything although it has not been able to record anything for seconds")
	acked = append(acked, acked2...)

	pg.pgctl(t, "start")
	// Everything answered success is recorded once the database is back,
	// without a re-send.
	for _, f := range acked {
		uid := dump(t, f, "0008,0018")
		require.NotEmpty(t, uid)
		waitFor(t, 60*time.Second, "acknowledged instance "+uid+" recorded", func() bool {
			return db.count(t, &models.Instance{}, "sop_instance_uid = ?", uid) == 1
		})
	}
	// The sender re-sends everything; nothing is recorded twice.
	storescu(t, "PACS", n.DICOMPort, files...)
	waitFor(t, 180*time.Second, "every report delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == int64(len(files))
	})
	require.Equal(t, int64(len(files)), db.count(t, &models.Instance{}, ""))
	require.Equal(t, int64(len(files)), db.count(t, &models.Analysis{}, ""))
	time.Sleep(time.Second)
	require.Len(t, received(t, dest)["SR"], len(files))
}

// sendVerbose sends files over one association with storescu -v and
// returns the files answered success and how many were answered A700; it
// fails the test if any other answer came (or none).
func sendVerbose(t *testing.T, port int, files []string) (acked []string, refused int) {
	t.Helper()
	// -nh: go on after a refusal (storescu halts by default).
	send := exec.Command(dicomnodetest.Tool(t, "storescu"), append([]string{"-v", "-nh", "-aet", "PACS", "-aec", "CSPINE",
		"127.0.0.1", itoa(port)}, files...)...)
	send.Env = dicomnodetest.DCMTKEnv(t, false)
	out, _ := send.CombinedOutput() // storescu exits non-zero when an instance was refused
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if _, f, ok := strings.Cut(line, "Sending file: "); ok {
			cur = strings.TrimSpace(f)
		}
		switch {
		case strings.Contains(line, "Received Store Response (Success)"):
			acked = append(acked, cur)
		case strings.Contains(line, "Received Store Response (Refused: OutOfResources)"):
			refused++
		}
	}
	require.Equal(t, len(files), len(acked)+refused, "each instance must be answered success or A700:\n%s", out)
	return acked, refused
}
