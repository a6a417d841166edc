package ingest

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store"
)

// How the materialiser batches: at most this many records or bytes (but
// at least one record) per batch, that is per directory fsync and per
// database commit.
const (
	batchMaxN     = 128
	batchMaxBytes = 256 << 20
	// acquireWait bounds how long a C-STORE waits for room in the
	// write-ahead spool before it is answered A700.
	acquireWait = 30 * time.Second
	// batchDelay is the pause in arrivals after which the materialiser
	// starts; batchMaxWait bounds how long it lets records gather.
	batchDelay   = 20 * time.Millisecond
	batchMaxWait = 500 * time.Millisecond
	// batchTimeout bounds the database work of one batch (a database that
	// hangs is then a failure, tried again).
	batchTimeout = 2 * time.Minute
	// inMemoryMax: records up to this size are materialised from memory.
	inMemoryMax = 64 << 20
)

// WALDir returns the directory of the write-ahead spool.
func (h *Handler) WALDir() string {
	return filepath.Join(h.spool.Dir, ".wal", h.opts.NodeName)
}

// Start opens the write-ahead spool (Options.WAL; without it Start does
// nothing), queues the records an earlier run left un-materialised, and
// starts the materialiser. It returns the number of records replayed; they
// are materialised in the background (Flush waits for them). Call it
// before the node listens.
func (h *Handler) Start(ctx context.Context) (int, error) {
	if !h.opts.WAL || h.wal != nil {
		return 0, nil
	}
	rej, err := services.NewSpoolStore(filepath.Join(h.spool.Dir, ".rejected"))
	if err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	rej.Logger = h.log
	segs := h.opts.WALSegments
	if segs == 0 {
		segs = DefaultWALSegments
	}
	w, recs, err := openWAL(h.WALDir(), h.opts.WALSegmentSize, h.opts.WALMaxBytes, segs, h.log)
	if err != nil {
		return 0, fmt.Errorf("ingest: %w", err)
	}
	// Segments whose header was never written (a crash while one was
	// made) are made anew.
	for _, s := range w.segs {
		if s.seq == 0 {
			s.f.Close()
			if err := w.makeSegment(s); err != nil {
				w.closeFiles()
				return 0, fmt.Errorf("ingest: %w", err)
			}
		}
	}
	d, err := os.Open(h.spool.Dir)
	if err != nil {
		w.closeFiles()
		return 0, fmt.Errorf("ingest: %w", err)
	}
	h.wal, h.rejected, h.syncDir = w, rej, d
	h.walStop, h.walDone = make(chan struct{}), make(chan struct{})
	h.walCtx, h.walCancel = context.WithCancel(context.Background())
	go h.materialiser()
	if len(recs) > 0 {
		h.log.Info("write-ahead spool: replaying instances not yet recorded", "instances", len(recs))
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(recs), nil
}

// Flush waits until every instance answered success so far has its spool
// file and database row.
func (h *Handler) Flush(ctx context.Context) error {
	if h.wal == nil {
		return nil
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for !h.wal.idle() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ingest: flush: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Close refuses further instances, waits (until ctx ends) for those
// received to be materialised, and stops the materialiser. What it could
// not materialise stays in the write-ahead spool for the next Start.
func (h *Handler) Close(ctx context.Context) error {
	if h.wal == nil {
		return nil
	}
	w := h.wal
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.cond.Broadcast()
	w.mu.Unlock()
	ferr := h.Flush(ctx)
	close(h.walStop)
	// A database call that hangs is given up: what it was recording stays
	// in the write-ahead spool.
	h.walCancel()
	<-h.walDone
	// Wait for writers still holding a segment (the node should have
	// stopped them already).
	w.mu.Lock()
	for {
		held := w.making
		for _, s := range w.segs {
			held = held || s.held
		}
		if !held || ctx.Err() != nil {
			break
		}
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
		w.mu.Lock()
	}
	w.mu.Unlock()
	w.closeFiles()
	return ferr
}

// BeginStore implements services.StreamStorer: with the write-ahead spool
// the data set is streamed into a segment; without it, ErrNoStream.
func (h *Handler) BeginStore(ctx context.Context, req *services.StoreRequest) (services.StoreStream, error) {
	if h.wal == nil {
		return nil, services.ErrNoStream
	}
	seg, err := h.wal.acquire(acquireWait)
	if err != nil {
		h.outcome(OutcomeFailed)
		return nil, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	return &walStream{h: h, rw: h.wal.newRecordWriter(seg)}, nil
}

// walStream is one instance being written into the write-ahead spool.
type walStream struct {
	h    *Handler
	rw   *recordWriter
	done bool
}

func (s *walStream) Write(p []byte) (int, error) { return s.rw.Write(p) }

func (s *walStream) Abort() {
	if s.done {
		return
	}
	s.done = true
	// The writer goroutine first: once the segment is given back another
	// association writes at the same offset, and a chunk still being
	// written would land on its data.
	s.rw.release()
	s.h.wal.release(s.rw.seg, nil, 0, false)
}

// Commit checks that the data set names its study and series, makes the
// record durable (one fdatasync) and answers success.
func (s *walStream) Commit(ctx context.Context, req *services.StoreRequest) (dimse.Status, error) {
	h := s.h
	defer func() {
		if !s.done {
			s.Abort()
		}
	}()
	study, series, complete, err := services.HeadStudySeries(req.Head, req.DataSetSize > int64(len(req.Head)), req.TransferSyntaxUID)
	if err == nil && !complete {
		// A long header: parse what was written.
		study, series, err = s.readUIDs()
	}
	if err != nil {
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	if study == "" || series == "" {
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: no Study or Series Instance UID", req.SOPInstanceUID)
	}
	if err := h.checkSeries(ctx, study, series); err != nil {
		h.log.Warn("instance refused: its series belongs to another study", "sop_instance_uid", req.SOPInstanceUID, "err", err)
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	if err := ctx.Err(); err != nil {
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	meta := &walRecordMeta{SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID,
		TransferSyntaxUID: req.TransferSyntaxUID, CallingAETitle: req.CallingAETitle, CalledAETitle: req.CalledAETitle,
		MoveOriginatorAETitle: req.MoveOriginatorAETitle, MoveOriginatorMessageID: req.MoveOriginatorMessageID,
		Source: h.opts.Source, Received: req.Received}
	if req.MoveOriginatorAETitle != "" {
		meta.Source = models.SourcePull
	}
	if req.RemoteAddr != nil {
		meta.PeerAddress = req.RemoteAddr.String()
	}
	rec, end, err := s.rw.commit(meta)
	s.done = true
	s.rw.release()
	if err != nil {
		// After a failed fdatasync the page cache may not say what is on
		// disk: the segment takes nothing more until it is reset.
		h.wal.release(s.rw.seg, nil, 0, true)
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	h.wal.release(s.rw.seg, rec, end, false)
	return dimse.StatusSuccess, nil
}

// readUIDs parses the header of the data written so far.
func (s *walStream) readUIDs() (study, series string, err error) {
	if err := s.rw.flush(); err != nil {
		return "", "", err
	}
	ds, err := parseHeader(s.rw.dataReader(), s.rw.len)
	if err != nil {
		return "", "", err
	}
	hd := headerOf(ds)
	return hd.StudyInstanceUID, hd.SeriesInstanceUID, nil
}

func (h *Handler) materialiser() {
	defer close(h.walDone)
	defer h.syncDir.Close()
	// The materialiser is background work: on its own thread (which ends
	// with it) at a lower CPU priority, so that the C-STOREs being
	// answered get the processor first. Best effort.
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 10)
	backoff := 100 * time.Millisecond
	for {
		recs := h.wal.take(h.walStop, batchMaxN, batchMaxBytes)
		if recs == nil {
			return
		}
		// While instances keep arriving, let them gather (until a batch is
		// full, they pause for batchDelay, or batchMaxWait passed): fewer,
		// larger batches mean fewer flushes and less processor time
		// taken from the C-STOREs being answered.
		for start := time.Now(); len(recs) < batchMaxN && time.Since(start) < batchMaxWait; {
			n := h.wal.queued()
			select {
			case <-h.walStop:
			case <-time.After(batchDelay):
			}
			if h.wal.queued() == n {
				break // a pause
			}
			recs = h.wal.take(h.walStop, batchMaxN, batchMaxBytes)
		}
		recs = h.wal.take(h.walStop, batchMaxN, batchMaxBytes)
		if recs == nil {
			return
		}
		ctx, cancel := context.WithTimeout(h.walCtx, batchTimeout)
		err := h.materialise(ctx, recs)
		cancel()
		if err != nil {
			h.log.Error("write-ahead spool: cannot record received instances; C-STOREs are refused until it can",
				"instances", len(recs), "retry_in", backoff, "err", err)
			h.wal.setFailing(err)
			select {
			case <-h.walStop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		h.wal.done(recs)
	}
}

// item is one record being materialised.
type item struct {
	rec *walRecord
	// path is the file linked into the spool: tmp, a copy out of the
	// segment (removed after), or the record's own data file.
	path     string
	tmp      string
	f        *os.File
	hdr      *Header
	kept     services.Kept
	rejected bool
	// failed: set aside because of a fault of ours (its data does not
	// match its checksum), not of the instance.
	failed  bool
	in      *models.Instance
	outcome string
}

// materialise makes the spool files and database rows of recs: each file
// copied out of its segment (header parsed and hashed on the way), all
// linked under their final names, made durable with one syncfs, and all
// rows inserted in one transaction. It is
// idempotent (an instance whose file or row exists is recognised as
// such, and what a crash left of a replayed record's file is replaced:
// replaceLeftover), so a batch that failed, or was interrupted by a
// crash, is simply done again.
func (h *Handler) materialise(ctx context.Context, recs []*walRecord) error {
	items := make([]item, len(recs))
	defer func() {
		for _, it := range items {
			if it.f != nil {
				it.f.Close()
			}
			if it.tmp != "" {
				os.Remove(it.tmp)
			}
		}
	}()
	var buf []byte
	for i, r := range recs {
		it := &items[i]
		it.rec = r
		var hdr *Header
		var sum uint32
		var err error
		switch {
		case r.ext != "":
			// A large instance in its own data file, durable and complete:
			// linked into the spool as it is.
			it.path = r.ext
			var rerr error
			if hdr, sum, err, rerr = readHeaderCRC(r.ext); rerr != nil {
				return fmt.Errorf("materialise %s: %w", r.meta.SOPInstanceUID, rerr)
			}
		case r.dataLen <= inMemoryMax:
			f, cerr := os.CreateTemp(h.incoming, "wal-*.dcm")
			if cerr != nil {
				return fmt.Errorf("materialise: %w", cerr)
			}
			it.tmp, it.f, it.path = f.Name(), f, f.Name()
			// One read of the record: checked, parsed and hashed in
			// memory, written out.
			buf = slices.Grow(buf[:0], int(r.dataLen))[:r.dataLen]
			if _, err := r.seg.f.ReadAt(buf, r.dataOff); err != nil {
				return fmt.Errorf("materialise %s: read: %w", r.meta.SOPInstanceUID, err)
			}
			if _, err := f.Write(buf); err != nil {
				return fmt.Errorf("materialise %s: %w", r.meta.SOPInstanceUID, err)
			}
			sum = crc32.Checksum(buf, castagnoli)
			hdr, err = headerFromBytes(buf)
			_ = unix.SyncFileRange(int(f.Fd()), 0, r.dataLen, unix.SYNC_FILE_RANGE_WRITE)
		default:
			f, cerr := os.CreateTemp(h.incoming, "wal-*.dcm")
			if cerr != nil {
				return fmt.Errorf("materialise: %w", cerr)
			}
			it.tmp, it.f, it.path = f.Name(), f, f.Name()
			if err := copyOut(f, r); err != nil {
				return fmt.Errorf("materialise %s: %w", r.meta.SOPInstanceUID, err)
			}
			_ = unix.SyncFileRange(int(f.Fd()), 0, r.dataLen, unix.SYNC_FILE_RANGE_WRITE)
			var rerr error
			if hdr, sum, err, rerr = readHeaderCRC(it.tmp); rerr != nil {
				return fmt.Errorf("materialise %s: %w", r.meta.SOPInstanceUID, rerr)
			}
		}
		it.hdr = hdr
		if sum != r.dataCRC {
			// Not what was answered success (the record's CRC was computed
			// as the data arrived): never recorded as the instance; set
			// aside for inspection.
			h.log.Error("write-ahead spool: data of an instance answered success does not match its checksum; set aside in spool/.rejected, not recorded",
				"sop_instance_uid", r.meta.SOPInstanceUID, "crc_recorded", r.dataCRC, "crc_read", sum)
			it.rejected, it.failed = true, true
			continue
		}
		if err == nil && (hdr.StudyInstanceUID == "" || hdr.SeriesInstanceUID == "") {
			err = errors.New("no Study or Series Instance UID")
		}
		if err != nil {
			h.log.Error("write-ahead spool: instance answered success cannot be parsed; kept in spool/.rejected",
				"sop_instance_uid", r.meta.SOPInstanceUID, "err", err)
			it.rejected = true
		}
	}
	// claimed: the files this batch linked (or found identical).
	claimed := map[string]bool{}
	for i := range items {
		it := &items[i]
		sp := h.spool
		if it.rejected {
			sp = h.rejected
		}
		var k services.Kept
		replaced := false
		if it.rec.replayed && !it.failed {
			var err error
			if k, replaced, err = h.replaceLeftover(ctx, sp, it, claimed); err != nil {
				return fmt.Errorf("materialise %s: %w", it.rec.meta.SOPInstanceUID, err)
			}
		}
		if !replaced {
			var err error
			if k, err = sp.Link(it.path, it.rec.meta.SOPInstanceUID); err != nil {
				return fmt.Errorf("materialise: %w", err)
			}
		}
		it.kept = k
		claimed[k.Path] = true
	}
	// One syncfs makes the whole batch durable, files and names, with
	// one journal commit and one cache flush (an fsync per file and one
	// per directory would each flush the disk's cache, competing with the
	// fdatasync of the C-STOREs being answered). It also writes back what
	// others left dirty on this file system, which only delays the batch.
	if err := h.syncFS(); err != nil {
		// Some write-back failed (perhaps of this batch, perhaps not): the
		// names this batch made go, so that the next try writes and links
		// its files anew rather than finding them there (their page cache
		// may say what the disk does not).
		for _, it := range items {
			if it.kept.Path != "" && !it.kept.Duplicate {
				os.Remove(it.kept.Path)
			}
		}
		return fmt.Errorf("materialise: %w", err)
	}
	var ps []models.InstanceRecordParams
	var idx []int
	for i := range items {
		it := &items[i]
		if it.rejected {
			it.outcome = OutcomeRejected
			if it.failed {
				it.outcome = OutcomeFailed
			}
			continue
		}
		ps = append(ps, h.params(it))
		idx = append(idx, i)
	}
	res, errs, err := h.store.InstanceRecordBatch(ctx, ps)
	if err != nil && len(ps) > 1 {
		// An instance the database refuses must not hold back the others
		// (nor, retried for ever, every instance after them): each on its
		// own.
		h.log.Warn("write-ahead spool: batch not recorded; recording its instances one by one",
			"instances", len(ps), "err", err)
		res, errs, err = h.recordOneByOne(ctx, ps)
	} else if err != nil && models.IsDataError(err) {
		res, errs, err = []*models.Instance{nil}, []error{err}, nil
	}
	if err != nil {
		// The database fails (down, disconnected): everything is tried
		// again later.
		return fmt.Errorf("materialise: %w", err)
	}
	aside := false
	for k, i := range idx {
		it := &items[i]
		switch {
		case errs[k] == nil:
			it.in, it.outcome = res[k], OutcomeStored
		case errors.Is(errs[k], models.ErrAlreadyExists) && ownRow(res[k], &ps[k]):
			// This reception's row, made by an earlier attempt at this
			// record whose end was not seen: not a re-send.
			if it.rec.replayed {
				// By a run that stopped after the commit: counted
				// (perhaps) by that run.
				it.outcome = OutcomeReplayed
			} else {
				// By this run, in a batch that failed after its commit
				// (nothing of it was reported).
				it.in, it.outcome = res[k], OutcomeStored
			}
		case errors.Is(errs[k], models.ErrAlreadyExists):
			it.outcome = OutcomeDuplicate
			if it.kept.Variant {
				it.outcome = OutcomeVariant
			}
		default:
			// A problem of this instance alone (the database refuses its
			// values): set aside, the others are recorded.
			if err := h.setAside(ctx, it); err != nil {
				return fmt.Errorf("materialise: %w", err)
			}
			h.log.Error("write-ahead spool: instance answered success cannot be recorded; set aside in spool/.rejected",
				"sop_instance_uid", it.rec.meta.SOPInstanceUID, "err", errs[k])
			it.outcome = OutcomeFailed
			if errors.Is(errs[k], models.ErrSeriesOfOtherStudy) {
				// Could not be checked before the answer (the database did
				// not say, or another node recorded the series meanwhile).
				it.outcome = OutcomeRejected
			}
			aside = true
		}
	}
	if aside {
		if err := h.syncFS(); err != nil {
			return fmt.Errorf("materialise: %w", err)
		}
	}
	for _, it := range items {
		switch it.outcome {
		case OutcomeVariant:
			h.log.Warn("instance re-sent with different content; kept beside the first, not analysed",
				"sop_instance_uid", it.rec.meta.SOPInstanceUID, "spool_path", it.kept.Path)
		case OutcomeDuplicate:
			h.log.Info("instance re-sent; already stored", "sop_instance_uid", it.rec.meta.SOPInstanceUID)
		}
		h.outcome(it.outcome)
		if it.in != nil && h.opts.OnStored != nil {
			h.opts.OnStored(it.in)
		}
	}
	return nil
}

// replaceLeftover repairs what the materialiser of a crashed run may have
// left of a replayed record in sp. That run linked the record's file
// under its name and stopped before the syncfs that makes the file's data
// durable, so the name may now hold an empty, truncated or partly
// unwritten file, which Link would take for another instance (keeping the
// record beside it as a variant, the damaged file under the first name).
// Walking the names Link walks, the first file that can be such a
// leftover (no longer than the record's data, every byte the data's or
// zero) is replaced atomically by the record's data (a temporary file,
// fsynced, renamed over it; the batch's syncfs makes the name durable)
// and returned as kept there, as the crashed run's Link returned it.
// It returns false, leaving the rest to Link, at a free name or a file
// identical to the record (size and CRC-32C), which Link reuses. Every
// other file is left as Link leaves it: another data set with the same
// SOP Instance UID (a variant, or the first), a file this batch linked
// (claimed), the file the instance's row names.
func (h *Handler) replaceLeftover(ctx context.Context, sp *services.SpoolStore, it *item, claimed map[string]bool) (services.Kept, bool, error) {
	uid := it.rec.meta.SOPInstanceUID
	for n := 1; n <= services.MaxVariants; n++ {
		final := sp.PathAt(uid, n) // the names services.SpoolStore.Link walks
		st, err := os.Lstat(final)
		if errors.Is(err, os.ErrNotExist) {
			return services.Kept{}, false, nil
		}
		if err != nil {
			return services.Kept{}, false, fmt.Errorf("replace leftover: %w", err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		same, leftover, err := compareLeftover(final, it.path, it.rec.dataLen, it.rec.dataCRC)
		if err != nil {
			return services.Kept{}, false, fmt.Errorf("replace leftover: %w", err)
		}
		if same {
			return services.Kept{}, false, nil
		}
		if !leftover || claimed[final] {
			continue
		}
		in, err := h.store.InstanceGetBySOPUID(ctx, uid)
		switch {
		case errors.Is(err, models.ErrNotFound):
		case err != nil:
			return services.Kept{}, false, fmt.Errorf("replace leftover: %w", err)
		case filepath.Join(h.dataDir, filepath.FromSlash(in.SpoolPath)) == final:
			continue // recorded: made durable before its row
		}
		if err := replaceFile(it.path, final, h.incoming); err != nil {
			return services.Kept{}, false, fmt.Errorf("replace leftover: %w", err)
		}
		h.log.Warn("write-ahead spool: incomplete spool file left by a crash replaced by the instance's data",
			"sop_instance_uid", uid, "spool_path", final, "size_found", st.Size(), "size", it.rec.dataLen)
		return services.Kept{Path: final, Variant: n > 1}, true, nil
	}
	return services.Kept{}, false, nil
}

// compareLeftover compares the file at path with data, a file holding a
// record's data (dataLen bytes, CRC-32C dataCRC): same says it is
// identical, leftover that it can be what a crash left of a file of that
// data (no longer, and every byte the data's or zero: a file whose
// write-back had not finished reads short, empty or with zeros).
func compareLeftover(path, data string, dataLen int64, dataCRC uint32) (same, leftover bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, false, err
	}
	size := st.Size()
	if size > dataLen {
		return false, false, nil
	}
	d, err := os.Open(data)
	if err != nil {
		return false, false, err
	}
	defer d.Close()
	const chunk = 64 << 10
	a, b := make([]byte, chunk), make([]byte, chunk)
	c := uint32(0)
	for off := int64(0); off < size; {
		n := int(min(chunk, size-off))
		if _, err := f.ReadAt(a[:n], off); err != nil {
			return false, false, err
		}
		if _, err := d.ReadAt(b[:n], off); err != nil {
			return false, false, err
		}
		for i := range n {
			if a[i] != b[i] && a[i] != 0 {
				return false, false, nil
			}
		}
		c = crc32.Update(c, castagnoli, a[:n])
		off += int64(n)
	}
	return size == dataLen && c == dataCRC, true, nil
}

// replaceFile replaces dst atomically by a copy of src: the copy is
// written to a temporary file in tmpDir (on dst's file system), fsynced,
// and renamed over dst. The rename is durable once dst's directory is.
func replaceFile(src, dst, tmpDir string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.CreateTemp(tmpDir, "replace-*.dcm")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, in)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), dst)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("replace %s: %w", filepath.Base(dst), err)
	}
	return nil
}

// ownRow reports whether in, the row already recorded for p's SOP
// Instance UID, was made from p's own reception (the same arrival time,
// to the microsecond the database keeps, peer and content) rather than
// from another sending of the instance.
func ownRow(in *models.Instance, p *models.InstanceRecordParams) bool {
	return in != nil && !p.Instance.ReceivedAt.IsZero() &&
		in.ReceivedAt.Equal(store.Normalize(p.Instance.ReceivedAt)) &&
		in.CallingAETitle == p.Instance.CallingAETitle && in.PeerAddress == p.Instance.PeerAddress &&
		in.SHA256 == p.Instance.SHA256
}

// recordOneByOne records each instance in a transaction of its own. An
// instance whose values the database refuses (models.IsDataError) gets
// that error in errs; any other failure ends it with err.
func (h *Handler) recordOneByOne(ctx context.Context, ps []models.InstanceRecordParams) ([]*models.Instance, []error, error) {
	res, errs := make([]*models.Instance, len(ps)), make([]error, len(ps))
	for i := range ps {
		r, e, err := h.store.InstanceRecordBatch(ctx, ps[i:i+1])
		switch {
		case err == nil:
			res[i], errs[i] = r[0], e[0]
		case models.IsDataError(err):
			errs[i] = err
		default:
			return nil, nil, err
		}
	}
	return res, errs, nil
}

// setAside moves an instance that cannot be recorded from the spool to
// spool/.rejected (the caller makes it durable). The spool file is
// removed unless the instance has a row (a copy of it).
func (h *Handler) setAside(ctx context.Context, it *item) error {
	if _, err := h.rejected.Link(it.path, it.rec.meta.SOPInstanceUID); err != nil {
		return err
	}
	if it.kept.Path == "" {
		return nil
	}
	if it.kept.Duplicate {
		_, err := h.store.InstanceGetBySOPUID(ctx, it.rec.meta.SOPInstanceUID)
		if !errors.Is(err, models.ErrNotFound) {
			return err // nil: recorded, its file stays
		}
	}
	if err := os.Remove(it.kept.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	it.kept = services.Kept{}
	return nil
}

func (h *Handler) params(it *item) models.InstanceRecordParams {
	m := it.rec.meta
	p := it.hdr.recordParams()
	p.Source = m.Source
	p.Instance.SOPInstanceUID = m.SOPInstanceUID
	p.Instance.SOPClassUID = m.SOPClassUID
	p.Instance.TransferSyntaxUID = m.TransferSyntaxUID
	if rel, err := filepath.Rel(h.dataDir, it.kept.Path); err == nil {
		p.Instance.SpoolPath = filepath.ToSlash(rel)
	}
	p.Instance.SizeBytes = it.hdr.Size
	p.Instance.SHA256 = it.hdr.SHA256
	p.Instance.CallingAETitle = m.CallingAETitle
	p.Instance.CalledAETitle = m.CalledAETitle
	p.Instance.PeerAddress = m.PeerAddress
	p.Instance.ReceivedAt = m.Received
	p.Study.CallingAETitle = m.CallingAETitle
	cleanParams(&p)
	return p
}

// copyOut copies the record's data into f (copy_file_range, falling back
// to read and write).
func copyOut(f *os.File, r *walRecord) error {
	off, left := r.dataOff, r.dataLen
	for left > 0 {
		n, err := unix.CopyFileRange(int(r.seg.f.Fd()), &off, int(f.Fd()), nil, int(left), 0)
		if err != nil || n == 0 {
			break
		}
		left -= int64(n)
	}
	if left == 0 {
		return nil
	}
	done := r.dataLen - left
	if _, err := f.Seek(done, io.SeekStart); err != nil {
		return err
	}
	_, err := io.Copy(f, io.NewSectionReader(r.seg.f, r.dataOff+done, left))
	return err
}

var _ services.StreamStorer = (*Handler)(nil)

// syncFS commits the file system holding the spool (syncfs(2): data,
// metadata and journal, then a cache flush). Since Linux 5.8 it reports
// the write-back errors of the file system since h.syncDir was opened
// (each once), which is when the materialiser started.
func (h *Handler) syncFS() error {
	if err := unix.Syncfs(int(h.syncDir.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", h.syncDir.Name(), err)
	}
	return nil
}
