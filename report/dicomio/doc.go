// Package dicomio holds what both report writers (sr, sc) need to produce
// valid DICOM Part-10 objects with github.com/suyashkumar/dicom, which writes
// elements exactly in the order and with the bytes it is given:
//
//   - element constructors that pad odd-length values the way PS3.5 §6.2
//     requires for each VR (space for text, NUL for UI);
//   - NewDataset, which sorts elements in ascending tag order at every
//     nesting level and rejects duplicates;
//   - SpecificCharacterSet chosen from the content (default repertoire when
//     every text value is ASCII, "ISO_IR 192" otherwise);
//   - deterministic UIDs under the 2.25 root (PS3.5 §B.2) derived from
//     stable inputs, so that a re-send replaces rather than duplicates;
//   - Source, the facts about the measured image that every report copies
//     (Patient, General Study and Patient Study modules, references);
//   - Encode, which adds the File Meta Information and writes Explicit VR
//     Little Endian.
package dicomio
