package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// pgCluster is a private PostgreSQL cluster (initdb, pg_ctl) on its own
// port in a temporary directory, so that a test can restart it without
// disturbing the shared server other tests use.
type pgCluster struct {
	dir, data string
	port      int
	asUser    string // run the server tools as this user ("" = ourselves)
}

func (c *pgCluster) run(t testing.TB, tool string, args ...string) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install PostgreSQL server binaries (initdb, pg_ctl): %v", tool, err)
	}
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %v: %s", tool, args, out)
}

func startPGCluster(t testing.TB) *pgCluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "cspine-pg-")
	require.NoError(t, err)
	c := &pgCluster{dir: dir, data: filepath.Join(dir, "data"), port: dicomnodetest.FreePort(t)}
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		require.NoError(t, err, "running as root needs the postgres user to own a private cluster")
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		c.asUser = "postgres"
	}
	t.Cleanup(func() {
		c.pgctl(t, "stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	c.run(t, "initdb", "-D", c.data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	c.pgctl(t, "start")
	return c
}

func (c *pgCluster) pgctl(t testing.TB, action string, extra ...string) {
	t.Helper()
	args := []string{"-D", c.data, "-w", "-t", "60", "-l", filepath.Join(c.dir, "server.log")}
	if action != "stop" {
		args = append(args, "-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", c.port, c.dir))
	}
	args = append(append(args, action), extra...)
	if action == "stop" {
		// Best effort at cleanup.
		path, err := exec.LookPath("pg_ctl")
		if err != nil {
			return
		}
		cmd := exec.Command(path, args...)
		if c.asUser != "" {
			cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
		}
		_ = cmd.Run()
		return
	}
	c.run(t, "pg_ctl", args...)
}

func (c *pgCluster) dsn() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// TestPostgresRestart: PostgreSQL is restarted while the node receives,
// analyses and sends. The node recovers without manual action: what the
// sender had to re-send (A700 while the database was away) is accepted
// afterwards, every instance is analysed once and every report delivered.
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	files, pg, db, dest, n := privatePGSetup(t, 12, 9, 24)

	send := exec.Command(dicomnodetest.Tool(t, "storescu"), append([]string{"-aet", "PACS", "-aec", "CSPINE",
		"127.0.0.1", itoa(n.DICOMPort)}, files...)...)
	send.Env = dicomnodetest.DCMTKEnv(t, false)
	require.NoError(t, send.Start())
	waitFor(t, 60*time.Second, "receiving under way", func() bool {
		return db.count(t, &models.Instance{}, "") >= 3
	})
	t.Logf("restarting PostgreSQL with %d instances received, %d analysed",
		db.count(t, &models.Instance{}, ""), db.count(t, &models.Analysis{}, ""))
	pg.pgctl(t, "restart", "-m", "fast")
	_ = send.Wait()
	refused := db.count(t, &models.Instance{}, "")
	t.Logf("after the restart the first send had %d of %d instances stored", refused, len(files))
	// The sender re-sends what was refused while the database was away
	// (instances already stored are recognised as duplicates), retrying as
	// a PACS does: until the write-ahead spool has recorded what it holds
	// on the restarted database, the node still answers A700 (out of
	// resources) for a moment after pg_ctl returns.
	attempts := 0
	waitEvery(t, time.Second, 60*time.Second, "the re-send accepted", func() bool {
		attempts++
		resend := exec.Command(dicomnodetest.Tool(t, "storescu"), append([]string{"-aet", "PACS", "-aec", "CSPINE",
			"127.0.0.1", itoa(n.DICOMPort)}, files...)...)
		resend.Env = dicomnodetest.DCMTKEnv(t, false)
		return resend.Run() == nil
	})
	t.Logf("re-send accepted at attempt %d", attempts)
	waitFor(t, 180*time.Second, "every report delivered", func() bool {
		return db.count(t, &models.Transfer{}, "status = ?", models.TransferSent) == int64(len(files))
	})
	require.Equal(t, int64(len(files)), db.count(t, &models.Instance{}, ""))
	require.Equal(t, int64(len(files)), db.count(t, &models.Analysis{}, ""))
	require.Equal(t, int64(0), db.count(t, &models.Job{}, "state <> ?", models.JobCompleted))
	time.Sleep(time.Second)
	require.Len(t, received(t, dest)["SR"], len(files))
	t.Logf("node warnings during the outage: %d", countLines(t, n, `"level":"WARN"`))
}

// privatePGSetup prepares a test against a private PostgreSQL cluster: the
// lateral phantoms of count images from seed made into nStudies studies,
// the cluster, a node using it, and a storescp destination writing to dest.
func privatePGSetup(t *testing.T, count int, seed uint64, nStudies int) (files []string, pg *pgCluster, db *database, dest string, n *node) {
	t.Helper()
	dir := t.TempDir()
	base := laterals(phantoms(t, filepath.Join(dir, "ph"), count, seed, 0))
	require.NotEmpty(t, base)
	files = studies(t, base, nStudies, filepath.Join(dir, "studies"))
	pg = startPGCluster(t)
	dbh := storetest.Open(t, pg.dsn(), nil)
	db = &database{DSN: pg.dsn(), Dialect: store.Postgres, DB: dbh, St: models.NewStore(dbh.Gorm)}
	dest = filepath.Join(dir, "pacs")
	scp := storescp(t, "PACS", dest, 0)
	n = startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"),
		Destinations: []string{fmt.Sprintf("PACS@127.0.0.1:%d", scp.Port)}})
	return files, pg, db, dest, n
}
