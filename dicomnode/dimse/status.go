package dimse

import "fmt"

// Status is the value of (0000,0900) (PS3.7 Annex C).
type Status uint16

// Status codes used by the DIMSE-C services (PS3.7 Annex C, PS3.4 B.2.3,
// C.4).
const (
	StatusSuccess Status = 0x0000
	StatusCancel  Status = 0xFE00
	StatusPending Status = 0xFF00
	// StatusPendingWarning: C-FIND pending, optional keys not supported.
	StatusPendingWarning Status = 0xFF01

	// Warnings (C-STORE).
	StatusCoercionOfDataElements             Status = 0xB000
	StatusElementsDiscarded                  Status = 0xB006
	StatusDataSetDoesNotMatchSOPClassWarning Status = 0xB007
	// StatusSubOperationsCompleteWithFailures: C-MOVE/C-GET warning.
	StatusSubOperationsCompleteWithFailures Status = 0xB000

	// Failures.
	StatusOutOfResources              Status = 0xA700
	StatusOutOfResourcesMatches       Status = 0xA701 // C-MOVE/C-GET: unable to calculate number of matches
	StatusOutOfResourcesSubOperations Status = 0xA702 // C-MOVE/C-GET: unable to perform sub-operations
	StatusMoveDestinationUnknown      Status = 0xA801
	StatusDataSetDoesNotMatchSOPClass Status = 0xA900
	StatusCannotUnderstand            Status = 0xC000
	StatusSOPClassNotSupported        Status = 0x0122
	StatusNoSuchSOPClass              Status = 0x0118
	StatusUnrecognizedOperation       Status = 0x0211
	StatusDuplicateInvocation         Status = 0x0210
	StatusProcessingFailure           Status = 0x0110
	StatusNotAuthorized               Status = 0x0124
)

// Kind is the category of a status.
type Kind int

// Status kinds.
const (
	KindSuccess Kind = iota
	KindWarning
	KindFailure
	KindPending
	KindCancel
)

// Kind returns the category of s following PS3.7 Annex C.
func (s Status) Kind() Kind {
	switch {
	case s == StatusSuccess:
		return KindSuccess
	case s == StatusCancel:
		return KindCancel
	case s == StatusPending || s == StatusPendingWarning:
		return KindPending
	case s == 0x0001 || s&0xF000 == 0xB000 || s == 0x0107 || s == 0x0116:
		return KindWarning
	default:
		return KindFailure
	}
}

// IsFailure reports whether s is a failure status.
func (s Status) IsFailure() bool { return s.Kind() == KindFailure }

func (s Status) String() string {
	name := ""
	switch s {
	case StatusSuccess:
		name = "success"
	case StatusCancel:
		name = "cancel"
	case StatusPending:
		name = "pending"
	case StatusPendingWarning:
		name = "pending (warning)"
	case StatusOutOfResources:
		name = "refused: out of resources"
	case StatusOutOfResourcesSubOperations:
		name = "refused: out of resources, unable to perform sub-operations"
	case StatusMoveDestinationUnknown:
		name = "refused: move destination unknown"
	case StatusDataSetDoesNotMatchSOPClass:
		name = "error: data set does not match SOP class"
	case StatusCannotUnderstand:
		name = "error: cannot understand"
	case StatusSOPClassNotSupported:
		name = "refused: SOP class not supported"
	case StatusProcessingFailure:
		name = "processing failure"
	}
	if name == "" {
		switch s.Kind() {
		case KindWarning:
			name = "warning"
		default:
			name = "failure"
		}
	}
	return fmt.Sprintf("0x%04X (%s)", uint16(s), name)
}
