package ingest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The write-ahead spool (WAL) lets a C-STORE be answered after one
// fdatasync of data written into an already allocated, already written
// segment file: no file is created, no directory or inode changes, so no
// file-system journal commit is waited for. The per-instance spool file
// and the database row are made later, in batches, by the materialiser;
// a segment is reused only once every record in it is materialised, and
// the records of segments not yet reused are replayed at start.
//
// Segment file (<wal>/seg-NNNN, segmentSize bytes, zero-filled when made):
//
//	page 0: segment header: magic "CSPWSEG1", seq u64, crc32c u32
//	then records, each starting on a page boundary:
//	  header page: magic "CSPWREC1", seq u64 (of the segment), recNo u64,
//	    metaLen u32, dataLen u64, dataCRC u32, hdrCRC u32 (over the
//	    preceding 40 bytes and the metadata), metadata (JSON, walRecordMeta)
//	  data: the Part-10 file, padded with zeros to a page boundary.
//
// A writer holds a segment exclusively while it writes a record, so the
// records of one segment are in order and a reader stops at the first
// page that is not a valid record of the segment's current seq (zeros, a
// record of an earlier use of the file, or a torn write whose CRC does not
// match). A segment is reused by giving it a new seq (header rewritten and
// fdatasynced), which invalidates everything in it at once.
//
// The data of an instance over extThreshold goes to a data file of its own
// (<wal>/ext-N.dcm, the Part-10 bytes exactly), named in the record's
// metadata; the record then holds only its header page. The file and its
// name are made durable before the record; the file is removed once the
// record is done, and a record whose data file is missing is skipped on
// replay (it was done).

const (
	walPage     = 4096
	walHdrFixed = 40
	walHdrSize  = walHdrFixed + 4
	walBufSize  = 1 << 20
	// walChunk: the data is written and its write-back started every
	// walChunk bytes as it arrives, so that little is left for the
	// fdatasync of the commit.
	walChunk     = 64 << 10
	segMagic     = "CSPWSEG1"
	recMagic     = "CSPWREC1"
	walMaxMetaSz = walPage - walHdrSize

	// DefaultWALSegmentSize and DefaultWALMaxBytes are the defaults of
	// Options.WALSegmentSize and Options.WALMaxBytes.
	DefaultWALSegmentSize = 64 << 20
	DefaultWALMaxBytes    = 1 << 30
	DefaultWALSegments    = 5
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// walRecordMeta is everything the instance's row needs besides the file:
// it is durable with the file in the same record.
type walRecordMeta struct {
	SOPClassUID             string    `json:"c"`
	SOPInstanceUID          string    `json:"i"`
	TransferSyntaxUID       string    `json:"t"`
	CallingAETitle          string    `json:"a"`
	CalledAETitle           string    `json:"d"`
	PeerAddress             string    `json:"p,omitempty"`
	MoveOriginatorAETitle   string    `json:"m,omitempty"`
	MoveOriginatorMessageID uint16    `json:"n,omitempty"`
	Source                  string    `json:"s"`
	Received                time.Time `json:"r"`
	// Ext names the file (in the write-ahead spool's directory) holding
	// the data of a large instance; the segment then holds only the
	// header page.
	Ext string `json:"x,omitempty"`
}

type segment struct {
	f    *os.File
	path string
	seq  uint64
	// off is where the next record starts.
	off int64
	// held: a writer is writing a record, or the segment is being reset.
	held bool
	// pending counts committed records not yet materialised.
	pending int
	// broken: an fdatasync failed; the segment takes no more records and
	// is reset (or dropped) once its records are materialised.
	broken bool
}

type walRecord struct {
	seg   *segment
	recNo uint64
	meta  walRecordMeta
	// The data: dataLen bytes at dataOff in the segment, or from 0 in the
	// file ext (a full path) when the record has one.
	dataOff int64
	dataLen int64
	// dataCRC is the CRC-32C of the data, checked again when it is
	// materialised.
	dataCRC uint32
	ext     string
	// replayed: read from the write-ahead spool at start (left by an
	// earlier run), not received by this one.
	replayed bool
}

// dataFile opens the record's data for reading (close it after).
func (r *walRecord) dataFile() (io.ReaderAt, func(), error) {
	if r.ext == "" {
		return r.seg.f, func() {}, nil
	}
	f, err := os.Open(r.ext)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

type wal struct {
	dir     string
	segSize int64
	maxSegs int
	log     *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	segs    []*segment
	nextSeq uint64
	nextRec uint64
	// queue holds committed records not yet materialised, in commit order
	// (the materialiser takes them from the front and removes them when
	// done).
	queue  []*walRecord
	closed bool
	// nextName numbers new segment files, nextExt data files.
	nextName int
	nextExt  int
	// failing is the materialiser's last error (nil after a success).
	failing error
	kick    chan struct{}
	// making: a spare segment is being made.
	making bool
}

func openWAL(dir string, segSize, maxBytes int64, minSegs int, log *slog.Logger) (*wal, []*walRecord, error) {
	if segSize < 2*walPage {
		segSize = DefaultWALSegmentSize
	}
	segSize = (segSize + walPage - 1) / walPage * walPage
	if maxBytes <= 0 {
		maxBytes = DefaultWALMaxBytes
	}
	w := &wal{dir: dir, segSize: segSize, maxSegs: max(1, int(maxBytes/segSize)), log: log, nextSeq: 1,
		kick: make(chan struct{}, 1)}
	w.cond = sync.NewCond(&w.mu)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	names, err := filepath.Glob(filepath.Join(dir, "seg-*"))
	if err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	sort.Strings(names)
	var recs []*walRecord
	for _, name := range names {
		var k int
		if _, err := fmt.Sscanf(filepath.Base(name), "seg-%d", &k); err == nil {
			w.nextName = max(w.nextName, k+1)
		}
		seg, rs, err := readSegment(name)
		if err != nil {
			w.closeFiles()
			return nil, nil, err
		}
		w.segs = append(w.segs, seg)
		w.nextSeq = max(w.nextSeq, seg.seq+1)
		recs = append(recs, rs...)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].recNo < recs[j].recNo })
	used := map[string]bool{}
	for _, r := range recs {
		w.nextRec = max(w.nextRec, r.recNo+1)
		r.seg.pending++
		r.replayed = true
		if r.ext != "" {
			used[r.ext] = true
		}
	}
	w.queue = append(w.queue, recs...)
	// Data files no valid record names: never acknowledged.
	exts, err := filepath.Glob(filepath.Join(dir, "ext-*.dcm"))
	if err != nil {
		w.closeFiles()
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	for _, e := range exts {
		var k int
		if _, err := fmt.Sscanf(filepath.Base(e), "ext-%d.dcm", &k); err == nil {
			w.nextExt = max(w.nextExt, k+1)
		}
		if !used[e] {
			os.Remove(e)
		}
	}
	for len(w.segs) < max(1, minSegs) && len(w.segs) < w.maxSegs {
		seg, err := w.newSegment()
		if err != nil {
			w.closeFiles()
			return nil, nil, err
		}
		seg.held = false
	}
	return w, recs, nil
}

func (w *wal) closeFiles() {
	for _, s := range w.segs {
		s.f.Close()
	}
}

// readSegment opens a segment and reads its valid records.
func readSegment(path string) (*segment, []*walRecord, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	seg := &segment{f: f, path: path, off: walPage}
	var hdr [walPage]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, nil, fmt.Errorf("wal: read segment header %s: %w", path, err)
	}
	if string(hdr[:8]) != segMagic || crc32.Checksum(hdr[:16], castagnoli) != binary.LittleEndian.Uint32(hdr[16:]) {
		// Never completely made (a crash while it was created): reset it.
		seg.seq = 0
		return seg, nil, nil
	}
	seg.seq = binary.LittleEndian.Uint64(hdr[8:])
	var recs []*walRecord
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	for seg.off+walPage <= st.Size() {
		r, next, ok := readRecord(f, seg, seg.off, st.Size(), filepath.Dir(path))
		if !ok {
			break
		}
		if r != nil {
			recs = append(recs, r)
		}
		seg.off = next
	}
	return seg, recs, nil
}

// readRecord reads and verifies the record at off.
func readRecord(f *os.File, seg *segment, off, size int64, dir string) (*walRecord, int64, bool) {
	var hdr [walPage]byte
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return nil, 0, false
	}
	if string(hdr[:8]) != recMagic || binary.LittleEndian.Uint64(hdr[8:]) != seg.seq {
		return nil, 0, false
	}
	metaLen := int(binary.LittleEndian.Uint32(hdr[24:]))
	dataLen := int64(binary.LittleEndian.Uint64(hdr[28:]))
	dataCRC := binary.LittleEndian.Uint32(hdr[36:])
	if metaLen > walMaxMetaSz || dataLen < 0 {
		return nil, 0, false
	}
	c := crc32.Update(crc32.Checksum(hdr[:walHdrFixed], castagnoli), castagnoli, hdr[walHdrSize:walHdrSize+metaLen])
	if c != binary.LittleEndian.Uint32(hdr[walHdrFixed:]) {
		return nil, 0, false
	}
	r := &walRecord{seg: seg, recNo: binary.LittleEndian.Uint64(hdr[16:]), dataOff: off + walPage, dataLen: dataLen,
		dataCRC: dataCRC}
	if err := json.Unmarshal(hdr[walHdrSize:walHdrSize+metaLen], &r.meta); err != nil {
		return nil, 0, false
	}
	next := off + walPage + roundPage(dataLen)
	if r.meta.Ext != "" {
		if filepath.Base(r.meta.Ext) != r.meta.Ext {
			return nil, 0, false
		}
		r.ext, r.dataOff, next = filepath.Join(dir, r.meta.Ext), 0, off+walPage
	} else if off+walPage+dataLen > size {
		return nil, 0, false
	}
	src, done, err := r.dataFile()
	if errors.Is(err, os.ErrNotExist) && r.ext != "" {
		// Its data file was durable before the record was written, and is
		// removed only once the record is done: skip it.
		return nil, next, true
	}
	if err != nil {
		return nil, 0, false
	}
	defer done()
	h := crc32.New(castagnoli)
	if n, err := io.Copy(h, io.NewSectionReader(src, r.dataOff, dataLen)); err != nil || n != dataLen || h.Sum32() != dataCRC {
		return nil, 0, false
	}
	return r, next, true
}

func roundPage(n int64) int64 { return (n + walPage - 1) / walPage * walPage }

// newSegment creates, zero-fills and syncs a segment file; w.mu must not
// be held. It is returned held.
func (w *wal) newSegment() (*segment, error) {
	w.mu.Lock()
	if len(w.segs) >= w.maxSegs {
		w.mu.Unlock()
		return nil, errWALFull
	}
	seg := &segment{path: filepath.Join(w.dir, fmt.Sprintf("seg-%04d", w.nextName)), held: true, broken: true}
	w.nextName++
	w.segs = append(w.segs, seg) // a place holder: not usable until made
	w.mu.Unlock()
	err := w.makeSegment(seg)
	if err != nil {
		w.mu.Lock()
		w.forget(seg)
		w.mu.Unlock()
		os.Remove(seg.path)
		return nil, err
	}
	return seg, nil
}

func (w *wal) makeSegment(seg *segment) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("wal: create segment: %w", err)
	}
	zero := make([]byte, walBufSize)
	for off := int64(0); off < w.segSize; off += walBufSize {
		n := min(walBufSize, w.segSize-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			f.Close()
			return fmt.Errorf("wal: fill segment: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("wal: sync segment: %w", err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	seg.f = f
	if err := w.reset(seg); err != nil {
		f.Close()
		return err
	}
	return nil
}

// reset gives seg a new seq, which invalidates every record in it; seg must
// be held (or not yet shared).
func (w *wal) reset(seg *segment) error {
	w.mu.Lock()
	seq := w.nextSeq
	w.nextSeq++
	w.mu.Unlock()
	var hdr [walPage]byte
	copy(hdr[:], segMagic)
	binary.LittleEndian.PutUint64(hdr[8:], seq)
	binary.LittleEndian.PutUint32(hdr[16:], crc32.Checksum(hdr[:16], castagnoli))
	if _, err := seg.f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("wal: reset segment: %w", err)
	}
	if err := unix.Fdatasync(int(seg.f.Fd())); err != nil {
		return fmt.Errorf("wal: reset segment: %w", err)
	}
	w.mu.Lock()
	seg.seq, seg.off, seg.broken = seq, walPage, false
	w.mu.Unlock()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("wal: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("wal: sync directory: %w", err)
	}
	return nil
}

var (
	errWALFull   = errors.New("write-ahead spool is full")
	errWALClosed = errors.New("write-ahead spool is closed")
)

// minFree is the space a segment must have left to take a new record (an
// eighth of the segment if that is less; a record that does not fit grows
// the file, which costs a journal commit).
const minFree = 4 << 20

// acquire returns a segment to write one record into, held. It waits (up
// to timeout) while every segment is in use and no new one may be made.
func (w *wal) acquire(timeout time.Duration) (*segment, error) {
	deadline := time.Now().Add(timeout)
	var timer *time.Timer
	w.mu.Lock()
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if w.closed {
			w.mu.Unlock()
			return nil, errWALClosed
		}
		if w.failing != nil {
			err := w.failing
			w.mu.Unlock()
			return nil, fmt.Errorf("instances received earlier cannot be recorded: %w", err)
		}
		var best *segment
		free := min(minFree, w.segSize/8)
		for _, s := range w.segs {
			if s.held || s.broken || s.off+free > w.segSize {
				continue
			}
			// Prefer the fullest, so that the others drain and are reset.
			if best == nil || s.off > best.off {
				best = s
			}
		}
		if best != nil {
			best.held = true
			w.spareLocked()
			w.mu.Unlock()
			return best, nil
		}
		if len(w.segs) < w.maxSegs {
			w.mu.Unlock()
			seg, err := w.newSegment()
			if err == nil {
				return seg, nil
			}
			if !errors.Is(err, errWALFull) {
				return nil, err
			}
			w.mu.Lock()
			continue
		}
		if time.Now().After(deadline) {
			w.mu.Unlock()
			return nil, errWALFull
		}
		if timer == nil {
			timer = time.AfterFunc(time.Until(deadline), func() {
				w.mu.Lock()
				w.cond.Broadcast()
				w.mu.Unlock()
			})
		}
		w.cond.Wait()
	}
}

// spareLocked starts making a new segment in the background when no
// empty one is left, so that C-STOREs rarely wait for one to be made.
func (w *wal) spareLocked() {
	if w.making || w.closed || len(w.segs) >= w.maxSegs {
		return
	}
	for _, s := range w.segs {
		if !s.held && !s.broken && s.pending == 0 && s.off == walPage {
			return
		}
	}
	w.making = true
	go func() {
		seg, err := w.newSegment()
		w.mu.Lock()
		defer w.mu.Unlock()
		w.making = false
		if err != nil {
			if !errors.Is(err, errWALFull) {
				w.log.Warn("write-ahead spool: cannot make a spare segment", "err", err)
			}
			return
		}
		seg.held = false
		w.cond.Broadcast()
	}()
}

// release gives seg back after a write that committed rec (nil: nothing
// committed; the bytes written after seg.off are ignored).
func (w *wal) release(seg *segment, rec *walRecord, end int64, broken bool) {
	w.mu.Lock()
	seg.held = false
	if broken {
		seg.broken = true
	}
	if rec != nil {
		seg.off = end
		seg.pending++
		w.queue = append(w.queue, rec)
	}
	// Reset when nothing in it is pending and it is broken, or its
	// records were all done while this writer held it (done left it):
	// otherwise they would be replayed at the next start.
	reset := seg.pending == 0 && (seg.broken || (rec == nil && seg.off > walPage))
	if reset {
		seg.held = true
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	if rec != nil {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	if reset {
		w.resetOrDrop(seg)
	}
}

// forget removes seg from the segments in use; w.mu is held.
func (w *wal) forget(seg *segment) {
	w.segs = slices.DeleteFunc(w.segs, func(s *segment) bool { return s == seg })
}

// resetOrDrop resets a held segment with nothing pending, or drops it when
// that fails.
func (w *wal) resetOrDrop(seg *segment) {
	err := w.reset(seg)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.cond.Broadcast()
	seg.held = false
	if err == nil {
		return
	}
	w.log.Error("write-ahead spool: segment dropped", "segment", seg.path, "err", err)
	w.forget(seg)
	seg.f.Close()
	os.Remove(seg.path)
}

// done marks records as materialised; segments left with nothing pending
// and no writer are reset (in the caller's goroutine).
func (w *wal) done(recs []*walRecord) {
	// Data files of records done: their instances are linked into the
	// spool (and durable there); a record whose data file is gone is
	// skipped if replayed.
	for _, r := range recs {
		if r.ext != "" {
			os.Remove(r.ext)
		}
	}
	var reset []*segment
	w.mu.Lock()
	w.queue = w.queue[len(recs):]
	w.failing = nil
	for _, r := range recs {
		r.seg.pending--
		if r.seg.pending == 0 && !r.seg.held && r.seg.off > walPage {
			r.seg.held = true
			reset = append(reset, r.seg)
		}
	}
	w.cond.Broadcast()
	w.mu.Unlock()
	for _, s := range reset {
		w.resetOrDrop(s)
	}
}

// recordWriter writes one record into a held segment.
type recordWriter struct {
	w     *wal
	seg   *segment
	start int64 // the record's header page
	// f is where the data goes (the segment, or the data file ext of a
	// large instance); pos is where buf goes in f.
	f   *os.File
	pos int64
	buf *[]byte
	n   int
	len int64
	crc uint32
	ext *os.File
	// Full chunks are written by a goroutine while the next arrives
	// (started at the first full chunk): jobs carries them, free brings
	// the buffers back, done is closed when it ends, werr is its error.
	jobs chan chunkJob
	free chan *[]byte
	done chan struct{}
	werr error
}

type chunkJob struct {
	buf *[]byte
	f   *os.File
	pos int64
}

// chunkPool holds walChunk-byte buffers.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, walChunk); return &b }}

func (w *wal) newRecordWriter(seg *segment) *recordWriter {
	return &recordWriter{w: w, seg: seg, start: seg.off, f: seg.f, pos: seg.off + walPage, buf: chunkPool.Get().(*[]byte)}
}

func (r *recordWriter) Write(p []byte) (int, error) {
	r.crc = crc32.Update(r.crc, castagnoli, p)
	r.len += int64(len(p))
	written := 0
	for len(p) > 0 {
		c := copy((*r.buf)[r.n:walChunk], p)
		r.n += c
		p = p[c:]
		written += c
		if r.n == walChunk {
			if err := r.pass(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// extThreshold: an instance larger than this gets its own data file, so
// that it is written once (its file is linked into the spool as it is)
// rather than into a segment and then copied.
const extThreshold = 1 << 20

// pass hands the full buffer to the writer goroutine and takes another.
func (r *recordWriter) pass() error {
	if r.ext == nil && r.len > extThreshold {
		if err := r.toExt(); err != nil {
			return err
		}
	}
	if r.jobs == nil {
		r.jobs, r.free, r.done = make(chan chunkJob, 2), make(chan *[]byte, 3), make(chan struct{})
		go r.writer()
		r.free <- chunkPool.Get().(*[]byte)
	}
	select {
	case <-r.done:
		return r.werr
	case r.jobs <- chunkJob{r.buf, r.f, r.pos}:
	}
	r.pos += walChunk
	r.n = 0
	select {
	case <-r.done:
		return r.werr
	case r.buf = <-r.free:
	}
	return nil
}

// toExt moves the record's data so far out of the segment into a new
// data file, where the rest will go.
func (r *recordWriter) toExt() error {
	if err := r.drain(); err != nil {
		return err
	}
	r.w.mu.Lock()
	name := filepath.Join(r.w.dir, fmt.Sprintf("ext-%d.dcm", r.w.nextExt))
	r.w.nextExt++
	r.w.mu.Unlock()
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	r.ext = f
	written := r.pos - (r.start + walPage)
	off := r.start + walPage
	for left := written; left > 0; {
		n, err := unix.CopyFileRange(int(r.seg.f.Fd()), &off, int(f.Fd()), nil, int(left), 0)
		if err != nil || n == 0 {
			if _, err := io.Copy(f, io.NewSectionReader(r.seg.f, off, left)); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			break
		}
		left -= int64(n)
	}
	r.f, r.pos = f, written
	return nil
}

// writer writes chunks at their place and starts their write-back (a
// hint; the fdatasync at commit is what makes them durable).
func (r *recordWriter) writer() {
	defer close(r.done)
	var hintFile *os.File
	var hinted int64 // write-back of hintFile started up to here
	for j := range r.jobs {
		if testBeforeChunkWrite != nil {
			testBeforeChunkWrite(r)
		}
		if r.werr == nil {
			if _, err := j.f.WriteAt(*j.buf, j.pos); err != nil {
				r.werr = fmt.Errorf("wal: write: %w", err)
			} else {
				if j.f != hintFile {
					hintFile, hinted = j.f, j.pos
				}
				// Every chunk in a segment (its records are small), every
				// MiB of a data file (each call costs processor time).
				if end := j.pos + int64(len(*j.buf)); j.f != r.ext || end-hinted >= 1<<20 {
					_ = unix.SyncFileRange(int(j.f.Fd()), hinted, end-hinted, unix.SYNC_FILE_RANGE_WRITE)
					hinted = end
				}
			}
		}
		r.free <- j.buf
	}
}

// testBeforeChunkWrite, set by tests only, is called by the writer
// goroutine before each chunk it writes.
var testBeforeChunkWrite func(*recordWriter)

// drain waits for the writer goroutine to write what it was given.
func (r *recordWriter) drain() error {
	if r.jobs == nil {
		return nil
	}
	close(r.jobs)
	<-r.done
	for len(r.free) > 0 {
		chunkPool.Put(<-r.free)
	}
	r.jobs = nil
	return r.werr
}

// flush writes everything received so far and waits for it: into the
// segment the buffer padded to a page boundary, into a data file exactly.
func (r *recordWriter) flush() error {
	if err := r.drain(); err != nil {
		return err
	}
	if r.n == 0 {
		return nil
	}
	n := r.n
	if r.ext == nil {
		n = int(roundPage(int64(r.n)))
		clear((*r.buf)[r.n:n])
	}
	if _, err := r.f.WriteAt((*r.buf)[:n], r.pos); err != nil {
		return fmt.Errorf("wal: write: %w", err)
	}
	r.pos += int64(n)
	r.n = 0
	return nil
}

// dataReader reads the data written so far (after flush).
func (r *recordWriter) dataReader() *io.SectionReader {
	if r.ext != nil {
		return io.NewSectionReader(r.ext, 0, r.len)
	}
	return io.NewSectionReader(r.seg.f, r.start+walPage, r.len)
}

// commit writes the rest and the header page, and syncs: after it returns
// nil the record survives a crash. It returns the record and the offset
// after it in the segment.
func (r *recordWriter) commit(meta *walRecordMeta) (*walRecord, int64, error) {
	if err := r.flush(); err != nil {
		return nil, 0, err
	}
	rec := &walRecord{seg: r.seg, dataOff: r.start + walPage, dataLen: r.len, dataCRC: r.crc}
	end := r.pos
	if r.ext != nil {
		// The data file and its name first, then the record naming it.
		if err := r.ext.Sync(); err != nil {
			return nil, 0, fmt.Errorf("wal: sync data file: %w", err)
		}
		if err := syncDir(r.w.dir); err != nil {
			return nil, 0, err
		}
		meta.Ext = filepath.Base(r.ext.Name())
		rec.ext, rec.dataOff, end = r.ext.Name(), 0, r.start+walPage
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, 0, fmt.Errorf("wal: %w", err)
	}
	if len(mb) > walMaxMetaSz {
		return nil, 0, fmt.Errorf("wal: record metadata of %d bytes", len(mb))
	}
	r.w.mu.Lock()
	recNo := r.w.nextRec
	r.w.nextRec++
	r.w.mu.Unlock()
	hdr := (*r.buf)[:walPage]
	clear(hdr)
	copy(hdr, recMagic)
	binary.LittleEndian.PutUint64(hdr[8:], r.seg.seq)
	binary.LittleEndian.PutUint64(hdr[16:], recNo)
	binary.LittleEndian.PutUint32(hdr[24:], uint32(len(mb)))
	binary.LittleEndian.PutUint64(hdr[28:], uint64(r.len))
	binary.LittleEndian.PutUint32(hdr[36:], r.crc)
	copy(hdr[walHdrSize:], mb)
	c := crc32.Update(crc32.Checksum(hdr[:walHdrFixed], castagnoli), castagnoli, mb)
	binary.LittleEndian.PutUint32(hdr[walHdrFixed:], c)
	if _, err := r.seg.f.WriteAt(hdr, r.start); err != nil {
		return nil, 0, fmt.Errorf("wal: write record header: %w", err)
	}
	if err := unix.Fdatasync(int(r.seg.f.Fd())); err != nil {
		return nil, 0, fmt.Errorf("wal: fdatasync: %w", err)
	}
	rec.recNo, rec.meta = recNo, *meta
	if r.ext != nil {
		r.ext.Close()
		r.ext = nil // kept: the record owns it now
	}
	return rec, end, nil
}

// release frees the writer; a data file of a record not committed is
// removed.
func (r *recordWriter) release() {
	_ = r.drain()
	if r.ext != nil {
		r.ext.Close()
		os.Remove(r.ext.Name())
		r.ext = nil
	}
	if r.buf != nil {
		chunkPool.Put(r.buf)
		r.buf = nil
	}
}

// take waits for records to materialise and returns up to maxN of them
// (and at most maxBytes, but at least one) from the front of the queue.
func (w *wal) take(stop <-chan struct{}, maxN int, maxBytes int64) []*walRecord {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			n, bytes := 0, int64(0)
			for n < len(w.queue) && n < maxN && (n == 0 || bytes+w.queue[n].dataLen <= maxBytes) {
				bytes += w.queue[n].dataLen
				n++
			}
			out := append([]*walRecord(nil), w.queue[:n]...)
			w.mu.Unlock()
			return out
		}
		w.mu.Unlock()
		select {
		case <-stop:
			return nil
		case <-w.kick:
		}
	}
}

// queued returns the number of records not yet materialised.
func (w *wal) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// idle reports whether every committed record is materialised.
func (w *wal) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) == 0
}

func (w *wal) setFailing(err error) {
	w.mu.Lock()
	w.failing = err
	w.cond.Broadcast()
	w.mu.Unlock()
}
