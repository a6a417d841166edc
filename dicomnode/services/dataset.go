package services

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
	"github.com/suyashkumar/dicom/pkg/uid"
)

// EncodeDataSet encodes elements (no group 0002) in transfer syntax ts, as
// sent in a DIMSE data set (an identifier of C-FIND/C-MOVE/C-GET).
func EncodeDataSet(elems []*dicom.Element, ts string) ([]byte, error) {
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return nil, fmt.Errorf("encode data set: %w", err)
	}
	var buf bytes.Buffer
	w, err := dicom.NewWriter(&buf)
	if err != nil {
		return nil, err
	}
	w.SetTransferSyntax(bo, implicit)
	for _, e := range elems {
		if err := w.WriteElement(e); err != nil {
			return nil, fmt.Errorf("encode data set element %v: %w", e.Tag, err)
		}
	}
	return buf.Bytes(), nil
}

// DecodeDataSet decodes a data set without file meta in transfer syntax ts.
// It never panics on malformed input.
func DecodeDataSet(b []byte, ts string) (ds *dicom.Dataset, err error) {
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return nil, fmt.Errorf("decode data set: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			ds, err = nil, fmt.Errorf("decode data set: panic in parser: %v", r)
		}
	}()
	p, err := newRawParser(b, ts)
	if err != nil {
		return nil, fmt.Errorf("decode data set: %w", err)
	}
	p.SetTransferSyntax(bo, implicit)
	out := &dicom.Dataset{}
	for {
		e, err := p.Next()
		if errors.Is(err, dicom.ErrorEndOfDICOM) || errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode data set: %w", err)
		}
		out.Elements = append(out.Elements, e)
	}
}

// headerIDs reads the SOP Class and SOP Instance UIDs from the beginning of
// a data set. prefix holds its first bytes; truncated says whether the data
// set continues beyond them. complete is false when the prefix ended before
// both UIDs were read.
func headerIDs(prefix []byte, truncated bool, ts string) (class, instance string, complete bool, err error) {
	complete, err = scanHead(prefix, truncated, ts, func(e *dicom.Element) bool {
		switch e.Tag {
		case tag.SOPClassUID:
			class = firstString(e)
		case tag.SOPInstanceUID:
			instance = firstString(e)
			return true
		}
		return e.Tag.Group > 0x0008
	})
	return class, instance, complete, err
}

// scanHead parses the elements at the beginning of a data set (head: its
// first bytes; truncated: whether it continues beyond them; ts: its
// transfer syntax) and gives each to visit until visit returns true or the
// data set ends (complete), or head ends first (not complete).
func scanHead(head []byte, truncated bool, ts string, visit func(*dicom.Element) bool) (complete bool, err error) {
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return false, err
	}
	defer func() {
		if r := recover(); r != nil {
			complete, err = false, fmt.Errorf("panic in parser: %v", r)
		}
	}()
	p, err := newRawParser(head, ts, dicom.SkipPixelData())
	if err != nil {
		return false, err
	}
	p.SetTransferSyntax(bo, implicit)
	for {
		e, err := p.Next()
		if err != nil {
			if errors.Is(err, dicom.ErrorEndOfDICOM) {
				return true, nil
			}
			if truncated && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return false, nil
			}
			return false, err
		}
		if visit(e) {
			return true, nil
		}
	}
}

func firstString(e *dicom.Element) string {
	if s, ok := e.Value.GetValue().([]string); ok && len(s) > 0 {
		return s[0]
	}
	return ""
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// newRawParser returns a parser for a data set without file meta, encoded
// in transfer syntax ts. NewParser can only be told the transfer syntax
// through a File Meta Information group (without one it guesses, trying
// each syntax on the first 100 bytes, which can allocate whatever length a
// wrong guess decodes), so a minimal group is put in front of b.
func newRawParser(b []byte, ts string, opts ...dicom.ParseOption) (*dicom.Parser, error) {
	meta := EncodeFileMeta(FileMeta{MediaStorageSOPClassUID: "1.2", MediaStorageSOPInstanceUID: "1.2",
		TransferSyntaxUID: ts, ImplementationClassUID: "1.2"})
	in := io.MultiReader(bytes.NewReader(meta), bytes.NewReader(b))
	opts = append(opts, dicom.AllowUnknownSpecificCharacterSet())
	return dicom.NewParser(in, int64(len(meta)+len(b)), nil, opts...)
}

// HeadStudySeries reads the Study and Series Instance UIDs from the first
// bytes of a data set, like headerIDs: head holds its first bytes,
// truncated says whether the data set continues beyond them, and complete
// is false when head ended before the parser passed both (the caller must
// then read further to know).
func HeadStudySeries(head []byte, truncated bool, ts string) (study, series string, complete bool, err error) {
	complete, err = scanHead(head, truncated, ts, func(e *dicom.Element) bool {
		switch {
		case e.Tag == tag.StudyInstanceUID:
			study = firstString(e)
		case e.Tag == tag.SeriesInstanceUID:
			series = firstString(e)
			return true
		}
		return e.Tag.Group > 0x0020 || (e.Tag.Group == 0x0020 && e.Tag.Element > 0x000E)
	})
	return study, series, complete, err
}
