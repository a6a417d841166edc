// Package ingest is the node's C-STORE intervention: it implements
// services.StoreHandler (and services.StreamStorer) so that an instance is
// answered success only once it is durable, with everything its database
// row needs.
//
// With the write-ahead spool (Options.WAL, what cspine serve uses) the
// data set is streamed into a preallocated, already written segment file
// under spool/.wal as it arrives; Commit checks that it names its study and
// series and that the series is not recorded (or answered success) under
// another study (else C000), writes a record header (SOP class and instance, transfer syntax,
// calling and called AE, peer, C-MOVE originator, push or pull, arrival
// time, CRC-32C of header and data) and fdatasyncs: one cache flush, no
// file created, no journal commit. Then it answers success. An instance
// over 1 MiB continues in a data file of its own (fsync of it and of the
// directory before the record naming it), which is later linked into the
// spool as it is rather than copied. A background
// materialiser takes the records in batches: each record's data is checked
// against its CRC-32C (a mismatch is set aside in spool/.rejected, outcome
// "failed", never recorded), each small instance's file is written to the
// spool (header parsed and SHA-256 computed on the way) and linked under
// its SOP Instance UID, one syncfs makes the batch durable, and one
// transaction records the rows (models.InstanceRecordBatch; strings made
// valid UTF-8 without NULs). If that transaction fails, the instances are
// recorded one by one: one whose values the database refuses
// (models.IsDataError) is set aside in spool/.rejected (outcome "failed"),
// the others are recorded; any other failure is the database's and the
// whole batch is tried again. Only then are the records done; a segment whose records are all done is
// reused. Start replays, after a crash, every valid record of segments not
// yet reused (materialising is idempotent: a file or row already there is
// recognised; an instance whose row was made from the record's own
// reception before the crash is counted "replayed", not "duplicate"; a
// spool file the crash left incomplete, linked before the syncfs that
// would have made its data durable, is replaced atomically by the
// record's data rather than kept beside it as a variant); a record whose
// CRC does not match (a torn write, never acknowledged) ends its
// segment's replay.
//
// Without the write-ahead spool (HandleStore, a temporary file) Handler
//
//  1. reads the header (pixel data skipped) and the SHA-256 of the file in
//     one pass;
//  2. keeps the file in the spool (services.SpoolStore.Keep: fsync, hard
//     link under its SOP Instance UID, fsync of the directory);
//  3. records the study, series and instance rows and the study's
//     bookkeeping (instance count, last arrival, which restarts the
//     assembly quiet time) in one transaction (models.Store.InstanceRecord);
//  4. answers success.
//
// A full disk, a write error or a database that cannot record answers A700
// (out of resources) and keeps nothing half-written, so the sender keeps
// its copy and sends again: without the write-ahead spool at once; with
// it, when no segment can take the instance (none free, none can be made)
// or while the materialiser fails (from its first failed batch until one
// succeeds; what was answered success before stays in the write-ahead
// spool and is recorded when it can be). A re-sent instance (same SOP
// Instance UID) is recognised and answered success without a second row;
// one with different content is kept beside the first as <UID>~2.dcm. A
// file kept by an earlier attempt whose row never committed is recorded
// when the instance is sent again (or replayed).
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"

	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
	"github.com/cspine/cspine/models"
)

// Options configure a Handler. A nil *Options means defaults.
type Options struct {
	// Source is recorded on new studies: models.SourcePush (default) or
	// models.SourcePull. Instances that are C-MOVE sub-operations are
	// always recorded as pulled.
	Source string
	// OnStored is called after each instance is answered success with a new
	// row (metrics, waking the assembler). It must not block.
	OnStored func(in *models.Instance)
	// NodeName, when set, gives this node its own incoming directory
	// (spool/.incoming/NodeName), so that nodes sharing one data
	// directory never touch each other's partial files. It must be stable
	// across restarts of the node (CleanIncoming).
	NodeName string
	// OnOutcome is called for every instance with its outcome: "stored",
	// "duplicate" (a peer sent an instance already stored, with the same
	// data set), "variant" (a peer sent another data set with the SOP
	// Instance UID of one already stored), "replayed" (an instance replayed
	// from the write-ahead spool at start whose row an earlier run had
	// already made from this same reception: it stopped after the
	// database commit, before the spool forgot the record), "rejected" or
	// "failed" (metrics).
	OnOutcome func(outcome string)
	Logger    *slog.Logger
	// WAL turns on the write-ahead spool for instances received through
	// the DICOM node (services.StreamStorer): an instance is answered
	// success once it is fdatasynced, with everything its row needs, in a
	// preallocated segment under spool/.wal; its spool file and row are
	// made in batches by a background materialiser, and replayed by Start
	// after a crash. Start must be called before the node listens, Close
	// after it stopped. Without WAL every instance is kept and recorded
	// before its answer (HandleStore).
	WAL bool
	// WALSegmentSize and WALMaxBytes size the write-ahead spool's segment
	// files and bound their total (defaults DefaultWALSegmentSize and
	// DefaultWALMaxBytes). The segments stay allocated once made. Each
	// association holds a segment while it receives an instance; one that
	// finds none free (all held, none can be made) waits up to 30 s and is
	// then answered A700. With the defaults that is 16 segments, fewer
	// than the DICOM node's default of 32 associations: set WALMaxBytes to
	// at least associations × WALSegmentSize to never refuse for this
	// (cspine serve sets it to (max_associations + 1) segments).
	WALSegmentSize, WALMaxBytes int64
	// WALSegments is how many segments Start makes ready if fewer exist
	// (default DefaultWALSegments): one per association receiving at the
	// same time, and a spare. More are made when needed, up to WALMaxBytes.
	WALSegments int
}

// Handler implements services.StoreHandler and services.TempDirer.
type Handler struct {
	store    *models.Store
	spool    *services.SpoolStore
	dataDir  string
	opts     Options
	log      *slog.Logger
	incoming string

	wal     *wal
	walStop chan struct{}
	walDone chan struct{}
	// walCtx is the materialiser's database calls' context, cancelled by
	// Close once its wait is over.
	walCtx    context.Context
	walCancel context.CancelFunc
	rejected  *services.SpoolStore
	// syncDir is the spool directory, open as long as the materialiser
	// runs: syncfs reports the write-back errors of the file system since
	// the descriptor it is given was opened, so a descriptor opened for
	// each batch would miss those of write-back started before.
	syncDir *os.File

	// seriesOf maps Series Instance UIDs to the Study Instance UID they
	// belong to, as recorded or answered success (checkSeries).
	seriesMu sync.Mutex
	seriesOf map[string]string
}

// New returns a Handler keeping files in spool, which must lie inside
// dataDir (instance rows record the path relative to dataDir).
func New(store *models.Store, spool *services.SpoolStore, dataDir string, opts *Options) (*Handler, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Source == "" {
		o.Source = models.SourcePush
	}
	absData, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("ingest: data dir: %w", err)
	}
	absSpool, err := filepath.Abs(spool.Dir)
	if err != nil {
		return nil, fmt.Errorf("ingest: spool dir: %w", err)
	}
	if rel, err := filepath.Rel(absData, absSpool); err != nil || strings.HasPrefix(rel, "..") {
		return nil, fmt.Errorf("ingest: spool %s is not inside the data directory %s", spool.Dir, dataDir)
	}
	spool.Dir = absSpool
	h := &Handler{store: store, spool: spool, dataDir: absData, opts: o, log: o.Logger, incoming: spool.TempDir()}
	if o.NodeName != "" {
		if strings.ContainsAny(o.NodeName, `/\`) || o.NodeName == "." || o.NodeName == ".." {
			return nil, fmt.Errorf("ingest: node name %q is not a plain directory name", o.NodeName)
		}
		h.incoming = filepath.Join(spool.TempDir(), o.NodeName)
	}
	if err := os.MkdirAll(h.incoming, 0o750); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return h, nil
}

// TempDir implements services.TempDirer: the spool's incoming directory
// (this node's own when Options.NodeName is set), on the spool's file
// system.
func (h *Handler) TempDir() string { return h.incoming }

// Outcomes reported to Options.OnOutcome.
const (
	OutcomeStored    = "stored"
	OutcomeDuplicate = "duplicate"
	OutcomeVariant   = "variant"
	OutcomeReplayed  = "replayed"
	OutcomeRejected  = "rejected"
	OutcomeFailed    = "failed"
)

func (h *Handler) outcome(o string) {
	if h.opts.OnOutcome != nil {
		h.opts.OnOutcome(o)
	}
}

// HandleStore implements services.StoreHandler.
func (h *Handler) HandleStore(ctx context.Context, req *services.StoreRequest) (dimse.Status, error) {
	hdr, err := ReadHeader(req.Path)
	if err != nil {
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	if hdr.StudyInstanceUID == "" || hdr.SeriesInstanceUID == "" {
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: no Study or Series Instance UID", req.SOPInstanceUID)
	}
	if err := ctx.Err(); err != nil {
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	kept, err := h.spool.Keep(ctx, req)
	if err != nil {
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	rel, err := filepath.Rel(h.dataDir, kept.Path)
	if err != nil {
		h.undo(kept)
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
	source := h.opts.Source
	if req.MoveOriginatorAETitle != "" {
		source = models.SourcePull
	}
	p := hdr.recordParams()
	p.Source = source
	p.Instance.SOPInstanceUID = req.SOPInstanceUID
	p.Instance.SOPClassUID = req.SOPClassUID
	p.Instance.TransferSyntaxUID = req.TransferSyntaxUID
	p.Instance.SpoolPath = filepath.ToSlash(rel)
	p.Instance.SizeBytes = hdr.Size
	p.Instance.SHA256 = hdr.SHA256
	p.Instance.CallingAETitle = req.CallingAETitle
	p.Instance.CalledAETitle = req.CalledAETitle
	if req.RemoteAddr != nil {
		p.Instance.PeerAddress = req.RemoteAddr.String()
	}
	p.Instance.ReceivedAt = req.Received
	p.Study.CallingAETitle = req.CallingAETitle
	cleanParams(&p)
	in, err := h.store.InstanceRecord(ctx, p)
	switch {
	case err == nil:
		h.log.Debug("instance stored", "sop_instance_uid", req.SOPInstanceUID, "study_id", in.StudyID)
		h.outcome(OutcomeStored)
		if h.opts.OnStored != nil {
			h.opts.OnStored(in)
		}
		return dimse.StatusSuccess, nil
	case errors.Is(err, models.ErrSeriesOfOtherStudy):
		h.undo(kept)
		h.outcome(OutcomeRejected)
		return dimse.StatusCannotUnderstand, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	case errors.Is(err, models.ErrAlreadyExists):
		if kept.Variant {
			// Nothing received is thrown away: the spool keeps it beside
			// the first; the database keeps describing the first.
			h.log.Warn("instance re-sent with different content; kept beside the first, not analysed",
				"sop_instance_uid", req.SOPInstanceUID, "spool_path", p.Instance.SpoolPath)
			h.outcome(OutcomeVariant)
			return dimse.StatusSuccess, nil
		}
		h.log.Info("instance re-sent; already stored", "sop_instance_uid", req.SOPInstanceUID)
		h.outcome(OutcomeDuplicate)
		return dimse.StatusSuccess, nil
	default:
		h.undo(kept)
		h.outcome(OutcomeFailed)
		return dimse.StatusOutOfResources, fmt.Errorf("ingest %s: %w", req.SOPInstanceUID, err)
	}
}

// seriesLookupWait bounds the database look-up of checkSeries; seriesOfMax
// bounds its memory (the map is emptied when it is reached).
const (
	seriesLookupWait = 2 * time.Second
	seriesOfMax      = 1 << 16
)

// checkSeries returns ErrSeriesOfOtherStudy if series is recorded (or was
// answered success) under a study other than study; otherwise series is
// taken to belong to study from now on. When the database cannot say
// (down, slow) it returns nil: the instance is accepted and, should its
// series turn out to be another study's, set aside when recorded.
func (h *Handler) checkSeries(ctx context.Context, study, series string) error {
	h.seriesMu.Lock()
	owner, ok := h.seriesOf[series]
	h.seriesMu.Unlock()
	if !ok {
		qctx, cancel := context.WithTimeout(ctx, seriesLookupWait)
		s, err := h.store.SeriesStudyUID(qctx, series)
		cancel()
		switch {
		case errors.Is(err, models.ErrNotFound):
			s = study
		case err != nil:
			h.log.Debug("ingest: cannot look up the study of a series", "series_instance_uid", series, "err", err)
			return nil
		}
		h.seriesMu.Lock()
		if prev, ok := h.seriesOf[series]; ok {
			s = prev
		} else {
			if h.seriesOf == nil || len(h.seriesOf) >= seriesOfMax {
				h.seriesOf = map[string]string{}
			}
			h.seriesOf[series] = s
		}
		h.seriesMu.Unlock()
		owner = s
	}
	if owner != study {
		return fmt.Errorf("series %s is recorded under study %s, not %s: %w", series, owner, study, models.ErrSeriesOfOtherStudy)
	}
	return nil
}

// undo removes a file Keep has just linked when its row could not be
// written, so that the spool holds nothing the database does not know.
// A duplicate (an earlier identical copy) is left: it may be recorded.
func (h *Handler) undo(k services.Kept) {
	if k.Duplicate || k.Path == "" {
		return
	}
	if err := os.Remove(k.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.log.Error("ingest: could not remove unrecorded spool file", "path", k.Path, "err", err)
	}
}

// Header is what ingest reads from a received file.
type Header struct {
	StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID string
	PatientID, PatientName, AccessionNumber, StudyDate  string
	StudyDescription                                    string
	Modality, SeriesDescription, BodyPartExamined       string
	ProtocolName                                        string
	SeriesNumber, InstanceNumber                        *int
	ViewPosition, PatientOrientation, ImageLaterality   string
	Rows, Columns                                       int
	// Size of the file and its SHA-256 (hex).
	Size   int64
	SHA256 string
}

// ReadHeader parses the header of a Part-10 file (pixel data skipped) and
// hashes the whole file in the same pass.
func ReadHeader(path string) (*Header, error) {
	h, _, perr, err := readHeaderCRC(path)
	if err == nil {
		err = perr
	}
	return h, err
}

// readHeaderCRC is ReadHeader that also returns the CRC-32C (Castagnoli)
// of the whole file. err says the file could not be read; perr that it
// was read (sum is valid) but its header could not be parsed (h is nil).
func readHeaderCRC(path string) (h *Header, sum uint32, perr, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("read header: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, nil, fmt.Errorf("read header: %w", err)
	}
	hash := sha256.New()
	c := crc32.New(castagnoli)
	w := io.MultiWriter(hash, c)
	ds, perr := parseHeader(io.TeeReader(f, w), st.Size())
	if _, err := io.Copy(w, f); err != nil {
		return nil, 0, nil, fmt.Errorf("read header: hash: %w", err)
	}
	if perr != nil {
		return nil, c.Sum32(), fmt.Errorf("read header: %w", perr), nil
	}
	h = headerOf(ds)
	h.Size, h.SHA256 = st.Size(), hex.EncodeToString(hash.Sum(nil))
	return h, c.Sum32(), nil, nil
}

// headerFromBytes is ReadHeader of a file held in memory.
func headerFromBytes(b []byte) (*Header, error) {
	ds, err := parseHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	h := headerOf(ds)
	sum := sha256.Sum256(b)
	h.Size, h.SHA256 = int64(len(b)), hex.EncodeToString(sum[:])
	return h, nil
}

// headerOf extracts the Header fields (but Size and SHA256) from ds.
func headerOf(ds dicom.Dataset) *Header {
	h := &Header{}
	str := func(t tag.Tag) string {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return ""
		}
		v, ok := e.Value.GetValue().([]string)
		if !ok {
			return ""
		}
		return strings.TrimRight(strings.Join(v, `\`), " \x00")
	}
	num := func(t tag.Tag) *int {
		e, err := ds.FindElementByTag(t)
		if err != nil {
			return nil
		}
		switch v := e.Value.GetValue().(type) {
		case []string:
			if len(v) > 0 {
				if n, err := strconv.Atoi(strings.TrimSpace(v[0])); err == nil {
					return &n
				}
			}
		case []int:
			if len(v) > 0 {
				n := v[0]
				return &n
			}
		}
		return nil
	}
	h.StudyInstanceUID = str(tag.StudyInstanceUID)
	h.SeriesInstanceUID = str(tag.SeriesInstanceUID)
	h.SOPInstanceUID = str(tag.SOPInstanceUID)
	h.PatientID, h.PatientName = str(tag.PatientID), str(tag.PatientName)
	h.AccessionNumber, h.StudyDate = str(tag.AccessionNumber), str(tag.StudyDate)
	h.StudyDescription = str(tag.StudyDescription)
	h.Modality, h.SeriesDescription = str(tag.Modality), str(tag.SeriesDescription)
	h.BodyPartExamined, h.ProtocolName = str(tag.BodyPartExamined), str(tag.ProtocolName)
	h.SeriesNumber, h.InstanceNumber = num(tag.SeriesNumber), num(tag.InstanceNumber)
	h.ViewPosition, h.PatientOrientation = str(tag.ViewPosition), str(tag.PatientOrientation)
	h.ImageLaterality = str(tag.ImageLaterality)
	if n := num(tag.Rows); n != nil {
		h.Rows = *n
	}
	if n := num(tag.Columns); n != nil {
		h.Columns = *n
	}
	return h
}

// parseHeader parses up to the pixel data; it never panics.
func parseHeader(r io.Reader, size int64) (ds dicom.Dataset, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed data set: %v", p)
		}
	}()
	p, err := dicom.NewParser(r, size, nil, dicom.SkipPixelData())
	if err != nil {
		return dicom.Dataset{}, err
	}
	// Everything Header needs is in groups 0008 to 0028: stop after them
	// (elements are in ascending order), before the pixel data.
	ds = p.GetMetadata()
	for {
		e, err := p.Next()
		if errors.Is(err, dicom.ErrorEndOfDICOM) || (err == nil && e.Tag.Group > 0x0028) {
			return ds, nil
		}
		if err != nil {
			return ds, err
		}
		ds.Elements = append(ds.Elements, e)
	}
}

// cleanParams makes every string of p valid UTF-8 without NUL bytes, as
// the database requires (PostgreSQL refuses both, and the whole batch
// with them): a string that is not UTF-8 is read as ISO 8859-1 (the most
// common character set of headers that do not name theirs; every byte is
// a character, so nothing is lost), NULs are removed.
func cleanParams(p *models.InstanceRecordParams) {
	for _, v := range []reflect.Value{reflect.ValueOf(&p.Instance).Elem(), reflect.ValueOf(&p.Study).Elem(),
		reflect.ValueOf(&p.Series).Elem()} {
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.String && f.CanSet() {
				f.SetString(cleanString(f.String()))
			}
		}
	}
	p.Source = cleanString(p.Source)
}

func cleanString(s string) string {
	if !utf8.ValidString(s) {
		r := make([]rune, len(s))
		for i := range len(s) {
			r[i] = rune(s[i])
		}
		s = string(r)
	}
	return strings.ReplaceAll(s, "\x00", "")
}

func (h *Header) recordParams() models.InstanceRecordParams {
	return models.InstanceRecordParams{
		Instance: models.Instance{
			SOPInstanceUID: h.SOPInstanceUID, InstanceNumber: h.InstanceNumber,
			ViewPosition: h.ViewPosition, PatientOrientation: h.PatientOrientation,
			ImageLaterality: h.ImageLaterality, ImageRows: h.Rows, ImageColumns: h.Columns,
		},
		Study: models.Study{
			StudyInstanceUID: h.StudyInstanceUID, AccessionNumber: h.AccessionNumber, PatientID: h.PatientID,
			PatientName: h.PatientName, StudyDate: h.StudyDate, StudyDescription: h.StudyDescription,
		},
		Series: models.Series{
			SeriesInstanceUID: h.SeriesInstanceUID, Modality: h.Modality, SeriesNumber: h.SeriesNumber,
			SeriesDescription: h.SeriesDescription, BodyPartExamined: h.BodyPartExamined, ProtocolName: h.ProtocolName,
		},
	}
}

var _ services.StoreHandler = (*Handler)(nil)
var _ services.TempDirer = (*Handler)(nil)

// CleanIncoming removes files left in the spool's incoming directory by a
// process that died while receiving (their senders were never answered
// success, so they send again). Call it at start, before the node listens.
func (h *Handler) CleanIncoming() (int, error) {
	es, err := os.ReadDir(h.incoming)
	if err != nil {
		return 0, fmt.Errorf("clean incoming: %w", err)
	}
	n := 0
	for _, e := range es {
		if e.Type().IsRegular() {
			if err := os.Remove(filepath.Join(h.incoming, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return n, fmt.Errorf("clean incoming: %w", err)
			}
			n++
		}
	}
	return n, nil
}
