// Package association implements association control (PS3.8 §7.1, the ACSE
// part of the upper layer): negotiation of presentation contexts and user
// information as pure functions (NegotiateAcceptor, NegotiateRequestor), the
// acceptance policy of an AE (Policy), and an Association type that owns the
// transport connection, reads PDUs under the ARTIM and idle timers of PS3.8
// §9.1.5, and handles release and abort in both directions.
//
// # The PS3.8 state machine
//
// The state machine of PS3.8 §9.2 is not a table here. Each side runs in
// one goroutine per connection and its state is where that goroutine is in
// the code:
//
//	Sta1  idle                          no Association (before Accept/Request, after close)
//	Sta2  transport open, await RQ      Accept, reading with the ARTIM deadline
//	Sta3  await local A-ASSOCIATE resp  Accept, between Policy.Check/NegotiateAcceptor and the AC/RJ write
//	Sta4  await transport open          Dial (net.Dialer with the ARTIM timeout)
//	Sta5  await A-ASSOCIATE-AC/RJ       Request, reading with the ARTIM deadline
//	Sta6  association established       NextPDV / Write
//	Sta7  await A-RELEASE-RP            Release (P-DATA still accepted and dropped)
//	Sta8  await local A-RELEASE resp    NextPDV on A-RELEASE-RQ (answered at once)
//	Sta9-12 release collision           not supported: aborted
//	Sta13 await transport close         after A-ABORT or A-RELEASE-RP: we close at once
//
// Events that PS3.8 maps to AA-1…AA-8 (an unrecognised PDU type, a PDU
// unexpected in the state, an invalid length or parameter, a PDV on a
// context that was not accepted, ARTIM or idle expiry) send A-ABORT when
// the transport still works and close it. An A-ABORT received (AA-3) closes
// the transport and is returned as *AbortError. The raw-socket tests of
// package dicomnode drive each of these paths.
package association
