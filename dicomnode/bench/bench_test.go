// Package bench compares the ingest throughput of our node with DCMTK's
// storescp, both receiving from DCMTK storescu over one association and
// writing every instance to disk, in the same run on the same machine.
//
// Run it with ./run.sh (or go test -run '^$' -bench . -benchtime 3x); it is
// not part of the normal test run. Receivers:
//
//   - cspine: the node as cmd/cspine serves it, ingest.Handler with a
//     PostgreSQL database (a scratch database on the test server, see
//     store/storetest): every instance is durable on disk and recorded
//     before the answer says success;
//   - spool: the node with services.SpoolStore only (fsync of file and
//     directory, no database record);
//   - storescp: DCMTK storescp, default options (no fsync);
//   - nofsync: our node without any fsync or database (not durable; the
//     ceiling set by the sender).
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store/storetest"
)

const uidRoot = "1.2.826.0.1.3680043.10.1999.90"

type workload struct {
	name       string
	n          int
	rows, cols int
	// assocs is the number of storescu processes sending the files in
	// parallel, one association each.
	assocs int
}

var workloads = []workload{
	{"small", 500, 256, 256, 1},  // 128 KiB of pixels each
	{"large", 50, 2560, 2048, 1}, // 10 MiB of pixels each (2560×2048×16 bit)
	// Not in the protocol: the small set over 4 parallel associations,
	// as PACS routing often sends; concurrent fsyncs share journal commits.
	{"small-4assoc", 500, 256, 256, 4},
}

// dataset returns the files of w, generated once into a cache directory
// (deterministic content, so a cached copy is as good as a new one).
func dataset(b *testing.B, w workload) ([]string, int64) {
	b.Helper()
	dir := filepath.Join(os.TempDir(), "cspine-bench-data", fmt.Sprintf("%d-%dx%d", w.n, w.rows, w.cols))
	stamp := filepath.Join(dir, "complete")
	if _, err := os.Stat(stamp); err != nil {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := dicomnodetest.WriteSeries(dir, fmt.Sprintf("%s.%d", uidRoot, w.rows), w.n, w.rows, w.cols); err != nil {
			b.Fatal(err)
		}
		os.WriteFile(stamp, nil, 0o644)
	}
	var files []string
	var total int64
	for i := 0; i < w.n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("img%04d.dcm", i))
		st, err := os.Stat(p)
		if err != nil {
			b.Fatal(err)
		}
		total += st.Size()
		files = append(files, p)
	}
	return files, total
}

// receiver is a running storage SCP writing into dir.
type receiver struct {
	port int
	dir  string
	// count returns the number of instances written (and recorded).
	count func(testing.TB) int
	// reset empties the receiver between rounds (files are removed by the
	// benchmark).
	reset func(testing.TB)
	// settle waits until what was answered success is also in its final
	// place (the write-ahead spool's files and rows); nil when there is
	// nothing to wait for.
	settle func(testing.TB)
}

// startCSPINE starts the node as cmd/cspine serves it: ingest.Handler
// with the write-ahead spool and a PostgreSQL database.
func startCSPINE(b testing.TB, out string) receiver { return startIngest(b, out, true) }

// startSync starts ingest.Handler without the write-ahead spool: each
// instance is kept (fsync, link, directory fsync) and its row committed
// before the answer.
func startSync(b testing.TB, out string) receiver { return startIngest(b, out, false) }

func startIngest(b testing.TB, out string, wal bool) receiver {
	db := storetest.Postgres(b, nil)
	st := models.NewStore(db.Gorm)
	spool, err := services.NewSpoolStore(filepath.Join(out, "spool"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := ingest.New(st, spool, out, &ingest.Options{Logger: slog.New(slog.DiscardHandler), WAL: wal})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := h.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	r := startNode(b, spool.Dir, h)
	b.Cleanup(func() { h.Close(context.Background()) })
	files := r.count
	if wal {
		r.settle = func(b testing.TB) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if err := h.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	r.count = func(b testing.TB) int {
		var rows int64
		if err := db.Gorm.Model(&models.Instance{}).Count(&rows).Error; err != nil {
			b.Fatal(err)
		}
		if n := files(b); int64(n) != rows {
			b.Fatalf("cspine: %d files in the spool but %d instance rows", n, rows)
		}
		return int(rows)
	}
	r.reset = func(b testing.TB) {
		if err := db.Gorm.Exec("TRUNCATE instances, series, studies CASCADE").Error; err != nil {
			b.Fatal(err)
		}
	}
	return r
}

// startSpool starts the node with services.SpoolStore only.
func startSpool(b testing.TB, out string) receiver {
	spool, err := services.NewSpoolStore(out)
	if err != nil {
		b.Fatal(err)
	}
	return startNode(b, out, spool)
}

func startNode(b testing.TB, out string, h services.StoreHandler) receiver {
	n, err := dicomnode.New(dicomnode.Config{AETitles: []string{"CSPINE"},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, h)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go n.Serve(context.Background(), ln)
	b.Cleanup(func() { n.Shutdown(context.Background()) })
	return receiver{port: ln.Addr().(*net.TCPAddr).Port, dir: out,
		count: func(testing.TB) int { return countFiles(out) }, reset: func(testing.TB) {}}
}

// ceilingStore keeps files like SpoolStore but without any fsync. It is
// not durable and exists only here, to measure how fast the sender can go:
// the gap between it and SpoolStore is the price of the durable answer.
type ceilingStore struct{ *services.SpoolStore }

func (c ceilingStore) HandleStore(ctx context.Context, req *services.StoreRequest) (dimse.Status, error) {
	if err := os.Link(req.Path, filepath.Join(c.Dir, services.FileName(req.SOPInstanceUID)+".dcm")); err != nil {
		return dimse.StatusOutOfResources, err
	}
	return dimse.StatusSuccess, nil
}

func startCeiling(b testing.TB, out string) receiver {
	spool, err := services.NewSpoolStore(out)
	if err != nil {
		b.Fatal(err)
	}
	return startNode(b, out, ceilingStore{spool})
}

func startStorescp(b testing.TB, out string) receiver {
	p := dicomnodetest.StartServer(b, "storescp", "-aet", "CSPINE", "-od", out, "PORT")
	return receiver{port: p.Port, dir: out, count: func(testing.TB) int { return countFiles(out) }, reset: func(testing.TB) {}}
}

// countFiles counts the files in dir, but those whose names start with a
// dot (work directories).
func countFiles(dir string) int {
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			n++
		}
	}
	return n
}

func clean(b *testing.B, dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngest: storescu → cspine (ingest with PostgreSQL), spool
// (SpoolStore only), storescp, and our node without fsync (the ceiling). One iteration sends every file of the
// workload once to each receiver, over one association each, in rotating
// order, so that the load of a shared machine falls on all of them alike.
// Reported: images/s of each receiver and the ratios to storescp.
func BenchmarkIngest(b *testing.B) {
	type recv struct {
		name  string
		start func(testing.TB, string) receiver
	}
	recvs := []recv{{"cspine", startCSPINE}, {"storescp", startStorescp}, {"sync", startSync}, {"spool", startSpool},
		{"nofsync", startCeiling}}
	// CSPINE_BENCH_ONLY=a,b keeps cspine, storescp and the receivers
	// named (for profiling one of them).
	if only := os.Getenv("CSPINE_BENCH_ONLY"); only != "" {
		keep := recvs[:2]
		for _, r := range recvs[2:] {
			if slices.Contains(strings.Split(only, ","), r.name) {
				keep = append(keep, r)
			}
		}
		recvs = keep
	}
	for _, w := range workloads {
		b.Run(w.name, func(b *testing.B) {
			files, total := dataset(b, w)
			rs := make([]receiver, len(recvs))
			for i, r := range recvs {
				out, err := os.MkdirTemp(filepath.Join(os.TempDir(), "cspine-bench-data"), "out-")
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { os.RemoveAll(out) })
				rs[i] = r.start(b, out)
			}
			spent := make([]time.Duration, len(recvs))
			// settled: until the last instance is in its final place
			// (spool file and row), for receivers that finish after the
			// answer (the write-ahead spool).
			settled := make([]time.Duration, len(recvs))
			b.SetBytes(total * int64(len(recvs)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for k := range recvs {
					j := (i + k) % len(recvs)
					start := time.Now()
					sendParallel(b, rs[j].port, files, w.assocs)
					d := time.Since(start)
					spent[j] += d
					if rs[j].settle != nil {
						rs[j].settle(b)
						d = time.Since(start)
					}
					settled[j] += d
					b.StopTimer()
					if got := rs[j].count(b); got != len(files) {
						b.Fatalf("%s kept %d of %d files", recvs[j].name, got, len(files))
					}
					clean(b, rs[j].dir)
					rs[j].reset(b)
					b.StartTimer()
				}
			}
			rate := func(j int) float64 { return float64(len(files)*b.N) / spent[j].Seconds() }
			for j, r := range recvs {
				b.ReportMetric(rate(j), r.name+"_img/s")
				if r.name != "storescp" {
					b.ReportMetric(rate(j)/rate(1), "ratio_"+r.name)
				}
				if settled[j] != spent[j] {
					b.ReportMetric(float64(len(files)*b.N)/settled[j].Seconds()/rate(1), "ratio_"+r.name+"_settled")
				}
			}
		})
	}
}

// sendParallel runs storescu over assocs associations in parallel, each
// sending its share of files.
func sendParallel(b *testing.B, port int, files []string, assocs int) {
	var wg sync.WaitGroup
	errs := make(chan error, assocs)
	for k := 0; k < assocs; k++ {
		var part []string
		for i := k; i < len(files); i += assocs {
			part = append(part, files[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-aec", "CSPINE", "127.0.0.1", strconv.Itoa(port)}, part...)
			if out, err := dicomnodetest.Run(b, true, "storescu", args...); err != nil {
				errs <- fmt.Errorf("storescu: %v\n%s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}
