package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/ingest"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
	"github.com/cspine/cspine/store/storetest"
)

// outcomeLog collects the outcomes a handler reports.
type outcomeLog struct {
	mu  sync.Mutex
	out []string
}

func (l *outcomeLog) add(o string) { l.mu.Lock(); l.out = append(l.out, o); l.mu.Unlock() }

// replayOne starts a handler on dataDir, which must replay exactly one
// record from its write-ahead spool with the outcome want, and closes it.
func replayOne(t *testing.T, ctx context.Context, db *store.DB, dataDir, want string) *testBundle {
	t.Helper()
	var log outcomeLog
	b := setupWAL(t, db, dataDir, &ingest.Options{OnOutcome: log.add})
	require.Equal(t, 1, b.replayed)
	require.NoError(t, b.h.Flush(ctx))
	require.NoError(t, b.h.Close(ctx))
	require.Equal(t, []string{want}, log.get())
	return b
}

func (l *outcomeLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.out...)
}

// instance is a Part-10 file to send.
type instance struct {
	uid  string
	data []byte
}

func imageData(t *testing.T, img dicomnodetest.Image) instance {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.dcm")
	require.NoError(t, dicomnodetest.WriteImage(p, img))
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return instance{img.SOPInstanceUID, b}
}

// sendStored sends ins to a handler on dataDir and waits until they are
// recorded.
func sendStored(t *testing.T, db *store.DB, dataDir string, ins ...instance) {
	t.Helper()
	ctx := context.Background()
	b := setupWAL(t, db, dataDir, nil)
	for _, in := range ins {
		st, err := streamBytes(b.h, in.uid, in.data)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	require.NoError(t, b.h.Flush(ctx))
	require.NoError(t, b.h.Close(ctx))
}

// sendPending sends ins to a handler on dataDir whose database cannot
// record them, and stops it: they are answered success and stay in the
// write-ahead spool, to be replayed by the next handler (their spool files
// are linked: the materialiser fails at the database).
func sendPending(t *testing.T, db *store.DB, dataDir string, ins ...instance) {
	t.Helper()
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances RENAME TO instances_away").Error)
	b := setupWAL(t, db, dataDir, nil)
	for _, in := range ins {
		st, err := streamBytes(b.h, in.uid, in.data)
		require.NoError(t, err)
		require.Equal(t, dimse.StatusSuccess, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.Error(t, b.h.Close(ctx)) // not recorded: stays in the write-ahead spool
	require.NoError(t, db.Gorm.Exec("ALTER TABLE instances_away RENAME TO instances").Error)
}

// snapshotWAL returns the files of the write-ahead spool's directory;
// restore writes them back.
func snapshotWAL(t *testing.T, dir string) (restore func()) {
	t.Helper()
	es, err := os.ReadDir(dir)
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		files[e.Name()] = b
	}
	return func() {
		for name, b := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o640))
		}
	}
}

// A record replayed at start whose instance the database already has is
// counted by what it is: "replayed" when the row was made from this very
// reception (the node stopped after the batch's commit, before the record
// was freed), "duplicate" only when a peer sent the instance again.
func TestWALReplayOutcome(t *testing.T) {
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		for i, tc := range []struct {
			name string
			// sentBefore: the instance was received and recorded before
			// (another reception of it).
			sentBefore bool
			// committed: the pending record's row was committed before
			// the crash, but the record was not freed.
			committed bool
			want      string
		}{
			{name: "not recorded before the crash", want: ingest.OutcomeStored},
			{name: "recorded before the crash", committed: true, want: ingest.OutcomeReplayed},
			{name: "sent again before the crash", sentBefore: true, want: ingest.OutcomeDuplicate},
			{name: "sent again and recorded before the crash", sentBefore: true, committed: true,
				want: ingest.OutcomeDuplicate},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				img := crashImage(100 + i)
				img.StudyInstanceUID = img.SOPInstanceUID + ".0"
				img.SeriesInstanceUID = img.SOPInstanceUID + ".0.1"
				in := imageData(t, img)
				dataDir := t.TempDir()
				if tc.sentBefore {
					sendStored(t, db, dataDir, in)
				}
				sendPending(t, db, dataDir, in)
				if tc.committed {
					// Crash after the commit: the record is materialised,
					// then the write-ahead spool is put back as it was.
					restore := snapshotWAL(t, filepath.Join(dataDir, "spool", ".wal"))
					b := setupWAL(t, db, dataDir, nil)
					require.Equal(t, 1, b.replayed)
					require.NoError(t, b.h.Flush(ctx))
					require.NoError(t, b.h.Close(ctx))
					restore()
				}
				b := replayOne(t, ctx, db, dataDir, tc.want)
				var rows int64
				require.NoError(t, db.Gorm.Model(&models.Instance{}).Where("sop_instance_uid = ?", img.SOPInstanceUID).
					Count(&rows).Error)
				require.Equal(t, int64(1), rows)
				require.Len(t, spoolFiles(t, b.spool), 1)
			})
		}
	})
}

// A crash after the materialiser linked a spool file but before the
// syncfs that makes its data durable can leave that file empty, truncated
// or partly unwritten (zeros). On replay such a file is replaced by the
// record's data, not kept with the record beside it as a variant
// (<UID>~2.dcm); a file identical to the record is reused. Another data
// set with the same SOP Instance UID is still kept beside the first as a
// variant, and a recorded file is never replaced.
func TestWALReplayReplacesLeftover(t *testing.T) {
	// trailer: an element after the pixel data (Data Set Trailing Padding).
	trailer := []byte{0xfc, 0xff, 0xfc, 0xff, 'O', 'B', 0, 0, 4, 0, 0, 0, 1, 2, 3, 4}
	storetest.Each(t, nil, func(t *testing.T, db *store.DB) {
		for i, tc := range []struct {
			name string
			// first: a data set with the SOP Instance UID recorded
			// before (or, unrecorded, kept in the spool).
			first, firstUnrecorded bool
			// seed of the replayed data set (first's is 1); plus: the
			// replayed one is first's with an element appended.
			seed int
			plus bool
			// leftover is what the crash left of the replayed record's
			// spool file, at (the name its materialiser linked); nil:
			// nothing (it crashed before linking).
			at       string
			leftover func(data []byte) []byte
			want     string
			// wantFiles: the spool's files and which data each holds
			// ("first" or "replayed"); wantPath the row's file.
			wantFiles map[string]string
			wantPath  string
		}{
			{name: "empty leftover", seed: 1, at: ".dcm", leftover: func([]byte) []byte { return nil },
				want: ingest.OutcomeStored, wantFiles: map[string]string{".dcm": "replayed"}, wantPath: ".dcm"},
			{name: "truncated leftover", seed: 1, at: ".dcm", leftover: func(d []byte) []byte { return d[:len(d)/2] },
				want: ingest.OutcomeStored, wantFiles: map[string]string{".dcm": "replayed"}, wantPath: ".dcm"},
			{name: "leftover with unwritten pages", seed: 1, at: ".dcm",
				leftover: func(d []byte) []byte {
					return append(append([]byte(nil), d[:4096]...), make([]byte, len(d)-4096)...)
				},
				want: ingest.OutcomeStored, wantFiles: map[string]string{".dcm": "replayed"}, wantPath: ".dcm"},
			{name: "identical file reused", seed: 1, at: ".dcm", leftover: func(d []byte) []byte { return d },
				want: ingest.OutcomeStored, wantFiles: map[string]string{".dcm": "replayed"}, wantPath: ".dcm"},
			{name: "variant kept beside the first", first: true, seed: 2, at: "~2.dcm",
				want: ingest.OutcomeVariant, wantFiles: map[string]string{".dcm": "first", "~2.dcm": "replayed"},
				wantPath: ".dcm"},
			{name: "variant's truncated leftover", first: true, seed: 2, at: "~2.dcm",
				leftover: func(d []byte) []byte { return d[:len(d)/3] },
				want:     ingest.OutcomeVariant, wantFiles: map[string]string{".dcm": "first", "~2.dcm": "replayed"},
				wantPath: ".dcm"},
			{name: "unrecorded file of another data set kept", firstUnrecorded: true, seed: 2, at: "~2.dcm",
				want: ingest.OutcomeStored, wantFiles: map[string]string{".dcm": "first", "~2.dcm": "replayed"},
				wantPath: "~2.dcm"},
			// The recorded file is a prefix of the replayed data: it could
			// be a leftover, but its row says it is complete.
			{name: "recorded file never replaced", first: true, plus: true, at: "~2.dcm",
				want: ingest.OutcomeVariant, wantFiles: map[string]string{".dcm": "first", "~2.dcm": "replayed"},
				wantPath: ".dcm"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx := context.Background()
				uid := fmt.Sprintf("1.2.5.%d", i)
				img := dicomnodetest.Image{SOPInstanceUID: uid, StudyInstanceUID: uid + ".0", SeriesInstanceUID: uid + ".0.1",
					Seed: 1}
				first := imageData(t, img)
				img.Seed = tc.seed
				replayed := imageData(t, img)
				if tc.plus {
					replayed.data = append(append([]byte(nil), first.data...), trailer...)
				}
				dataDir := t.TempDir()
				spool := filepath.Join(dataDir, "spool")
				if tc.first {
					sendStored(t, db, dataDir, first)
				}
				if tc.firstUnrecorded {
					require.NoError(t, os.MkdirAll(spool, 0o750))
					require.NoError(t, os.WriteFile(filepath.Join(spool, uid+".dcm"), first.data, 0o640))
				}
				sendPending(t, db, dataDir, replayed)
				// The crash: what its materialiser linked is left as
				// tc.leftover says.
				at := filepath.Join(spool, uid+tc.at)
				if tc.leftover == nil {
					require.NoError(t, os.Remove(at))
				} else {
					require.NoError(t, os.WriteFile(at, tc.leftover(replayed.data), 0o640))
				}

				b := replayOne(t, ctx, db, dataDir, tc.want)
				files := map[string]string{}
				for _, p := range spoolFiles(t, spool) {
					got, err := os.ReadFile(p)
					require.NoError(t, err)
					name := strings.TrimPrefix(filepath.Base(p), uid)
					switch {
					case bytes.Equal(got, replayed.data):
						files[name] = "replayed"
					case bytes.Equal(got, first.data):
						files[name] = "first"
					default:
						files[name] = fmt.Sprintf("%d other bytes", len(got))
					}
				}
				require.Equal(t, tc.wantFiles, files)
				in, err := b.st.InstanceGetBySOPUID(ctx, uid)
				require.NoError(t, err)
				require.Equal(t, "spool/"+uid+tc.wantPath, in.SpoolPath)
				hd, err := ingest.ReadHeader(filepath.Join(dataDir, in.SpoolPath))
				require.NoError(t, err)
				require.Equal(t, hd.SHA256, in.SHA256)
			})
		}
	})
}
