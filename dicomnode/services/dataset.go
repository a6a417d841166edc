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
	p, err := newRawParser(b)
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
	bo, implicit, err := uid.ParseTransferSyntaxUID(ts)
	if err != nil {
		return "", "", false, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic in parser: %v", r)
		}
	}()
	p, err := newRawParser(prefix, dicom.SkipPixelData())
	if err != nil {
		return "", "", false, err
	}
	p.SetTransferSyntax(bo, implicit)
	for {
		e, err := p.Next()
		if err != nil {
			if errors.Is(err, dicom.ErrorEndOfDICOM) {
				return class, instance, true, nil
			}
			if truncated && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return class, instance, false, nil
			}
			return class, instance, false, err
		}
		switch e.Tag {
		case tag.SOPClassUID:
			class = firstString(e)
		case tag.SOPInstanceUID:
			instance = firstString(e)
			return class, instance, true, nil
		}
		if e.Tag.Group > 0x0008 {
			return class, instance, true, nil
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

// newRawParser returns a parser for a data set without file meta; the
// caller sets the transfer syntax. NewParser, told to skip the meta,
// still tries to guess a transfer syntax from the first 100 bytes and fails
// on shorter input; the guess is irrelevant since we set it, so the input is
// padded for the peek (the parser is limited to len(b) bytes) and a failed
// guess is ignored.
func newRawParser(b []byte, opts ...dicom.ParseOption) (*dicom.Parser, error) {
	padded := make([]byte, len(b), len(b)+128)
	copy(padded, b)
	padded = append(padded, make([]byte, 128)...)
	opts = append(opts, dicom.SkipMetadataReadOnNewParserInit(), dicom.AllowUnknownSpecificCharacterSet())
	p, err := dicom.NewParser(bytes.NewReader(padded), int64(len(b)), nil, opts...)
	if p == nil {
		return nil, err
	}
	return p, nil
}
