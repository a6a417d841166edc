package services

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cspine/cspine/dicomnode/dimse"
)

// SpoolStore is the default durable StoreHandler: it keeps each received
// instance as <Dir>/<SOP Instance UID>.dcm. Files are complete Part-10
// files; they appear under their final name atomically (hard link from the
// fsynced temporary file, then fsync of the directory), so a crash or a
// full disk never leaves a half-written instance under a final name.
//
// A re-sent instance (same SOP Instance UID) with an identical data set in
// the same transfer syntax is recognised and not stored twice, whichever AE
// sent it; one with a different data set is kept next to the first as
// <UID>~N.dcm, since nothing received is thrown away.
//
// The service layer wraps SpoolStore: call Keep, record the instance in the
// database, and only then answer success.
type SpoolStore struct {
	Dir    string
	Logger *slog.Logger
}

// NewSpoolStore creates dir and its temporary sub-directory.
func NewSpoolStore(dir string) (*SpoolStore, error) {
	s := &SpoolStore{Dir: dir}
	if err := os.MkdirAll(s.TempDir(), 0o750); err != nil {
		return nil, fmt.Errorf("spool store: %w", err)
	}
	return s, nil
}

// TempDir implements TempDirer: incoming files are written in Dir/.incoming,
// on the same file system as Dir.
func (s *SpoolStore) TempDir() string { return filepath.Join(s.Dir, ".incoming") }

// Kept describes an instance kept by the SpoolStore.
type Kept struct {
	// Path of the instance's file.
	Path string
	// Duplicate: an identical copy was already kept at Path; nothing was written.
	Duplicate bool
	// Variant: a different instance with the same SOP Instance UID was
	// already kept; this one was kept at Path (a ~N name).
	Variant bool
}

// HandleStore implements StoreHandler.
func (s *SpoolStore) HandleStore(ctx context.Context, req *StoreRequest) (dimse.Status, error) {
	k, err := s.Keep(ctx, req)
	if err != nil {
		return dimse.StatusOutOfResources, err
	}
	if k.Variant {
		s.log().Warn("spool: instance re-sent with different content, kept both", "path", k.Path)
	}
	return dimse.StatusSuccess, nil
}

func (s *SpoolStore) log() *slog.Logger {
	if s.Logger == nil {
		return slog.Default()
	}
	return s.Logger
}

// Keep makes req.Path durable under its final name in Dir: fsync of the
// file, hard link to the final name (which must not exist yet), fsync of
// Dir. Only then is the instance safe to acknowledge.
func (s *SpoolStore) Keep(ctx context.Context, req *StoreRequest) (Kept, error) {
	if err := syncFile(req.Path); err != nil {
		return Kept{}, fmt.Errorf("spool: sync received file: %w", err)
	}
	k, err := s.Link(req.Path, req.SOPInstanceUID)
	if err != nil || k.Duplicate {
		return k, err
	}
	if err := s.SyncDir(); err != nil {
		os.Remove(k.Path)
		return Kept{}, err
	}
	return k, nil
}

// Link hard-links the file at path under the final name of SOP Instance
// UID uid (never overwriting), recognising an identical copy already kept
// (Kept.Duplicate) and keeping a different one beside it (Kept.Variant).
// It syncs nothing: the caller must have made the file durable and must
// call SyncDir before relying on the new name (Keep does both; a batch of
// Links can share one SyncDir).
func (s *SpoolStore) Link(path, uid string) (Kept, error) {
	for n := 1; n <= MaxVariants; n++ {
		final := s.PathAt(uid, n)
		name := filepath.Base(final)
		err := os.Link(path, final)
		if err == nil {
			return Kept{Path: final, Variant: n > 1}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return Kept{}, fmt.Errorf("spool: link %s: %w", name, err)
		}
		same, err := sameContent(path, final)
		if err != nil {
			return Kept{}, fmt.Errorf("spool: compare with %s: %w", name, err)
		}
		if same {
			return Kept{Path: final, Duplicate: true}, nil
		}
	}
	return Kept{}, fmt.Errorf("spool: too many variants of %s", FileName(uid))
}

// SyncDir fsyncs Dir, making the names Link created durable.
func (s *SpoolStore) SyncDir() error {
	if err := syncDir(s.Dir); err != nil {
		return fmt.Errorf("spool: sync directory: %w", err)
	}
	return nil
}

// MaxVariants is how many different data sets with one SOP Instance UID
// the spool keeps (the first and its variants).
const MaxVariants = 999

// PathAt is where the spool keeps the n-th data set (from 1) received
// with this SOP Instance UID: UID.dcm, then UID~2.dcm, UID~3.dcm, ...
// (variants). Link walks these names in order.
func (s *SpoolStore) PathAt(uid string, n int) string {
	base := FileName(uid)
	if n > 1 {
		return filepath.Join(s.Dir, fmt.Sprintf("%s~%d.dcm", base, n))
	}
	return filepath.Join(s.Dir, base+".dcm")
}

// FileName maps a UID to a safe file name: a valid UID is used as is, any
// other character is replaced and a hash suffix keeps names distinct.
func FileName(uid string) string {
	ok := uid != "" && len(uid) <= 64
	for _, r := range uid {
		if (r < '0' || r > '9') && r != '.' {
			ok = false
		}
	}
	if ok && uid[0] != '.' {
		return uid
	}
	clean := strings.Map(func(r rune) rune {
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, uid)
	if len(clean) > 64 {
		clean = clean[:64]
	}
	h := sha256.Sum256([]byte(uid))
	return fmt.Sprintf("x%s-%x", strings.TrimLeft(clean, "."), h[:6])
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// sameContent reports whether two kept files hold the same instance: for
// Part-10 files the same data set in the same transfer syntax (the File
// Meta Information may differ, e.g. the Source AE Title of a re-send
// through another gateway); for anything else, the same bytes.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	sa, err := fa.Stat()
	if err != nil {
		return false, err
	}
	sb, err := fb.Stat()
	if err != nil {
		return false, err
	}
	ra, rb := bufio.NewReaderSize(fa, 64<<10), bufio.NewReaderSize(fb, 64<<10)
	ma, na, errA := ReadFileMeta(ra)
	mb, nb, errB := ReadFileMeta(rb)
	if errA != nil || errB != nil {
		if _, err := fa.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		if _, err := fb.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		ra.Reset(fa)
		rb.Reset(fb)
		na, nb = 0, 0
	} else if ma.TransferSyntaxUID != mb.TransferSyntaxUID || ma.MediaStorageSOPClassUID != mb.MediaStorageSOPClassUID {
		return false, nil
	}
	if sa.Size()-na != sb.Size()-nb {
		return false, nil
	}
	return equalReaders(ra, rb)
}

func equalReaders(ra, rb io.Reader) (bool, error) {
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(ra, ba)
		nb, eb := io.ReadFull(rb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == io.EOF || eb == io.ErrUnexpectedEOF, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}
