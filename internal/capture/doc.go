// Package capture records the event stream to a file and replays it, for
// incident captures analysed later, elsewhere, without privileges
// (tcptrace -w FILE, tcptrace -r FILE).
//
// # Format, version 2
//
// A capture (.tcpt) is a 10-byte preamble — the magic "\x89TCPTRC\n" and a
// u16 format version — then framed records, append-only. A frame is: type
// byte ('H' header, 'N' namespace, 'E' events, 'T' end), a reserved zero
// byte, u32 payload length, the low 16 bits of the CRC32C of those 6 bytes,
// the payload and its CRC32C (all little-endian). Records are numbered from
// 1, the header. A file ending inside a record or without a 'T' record was
// cut short: readers return every complete record and report "cut short at
// record N (byte offset X)"; a checksum mismatch is an error naming the
// record; unknown record types are skipped.
//
// 'H' is JSON: format, tool version, host, kernel release, clock offset
// (wall ns − CLOCK_MONOTONIC ns, so replays print recorded times), start
// (monotonic and wall), rotation sequence, the recorder's netns, whether
// the source reported timewait sockets (events.KindTimeWait). 'N' is
// JSON: a network namespace's TIME_WAIT sysctls as the live diagnosis
// reads them (ledger.SysctlNames through ledger.ReadSysctls; every one
// "unknown" if the namespace was unreadable; files written before
// tcp_tw_reuse_delay was recorded lack it), written before the first event
// in it. 'T' is
// JSON: end time, event count, final loss counters; it is written, then the
// file is synced, on a clean close.
//
// 'E' holds a uvarint count and that many events, each encoded against the
// previous event of its connection (one of the 16384 most recent, by id in
// order of first appearance): a uvarint mask of the fields that changed, a
// uvarint connection reference, the zigzag time delta from the previous
// event, then the changed fields as uvarints, task names through a table
// of 4096, addresses through a ring of the 8 last ones. Loss notices,
// timewait events and a connection's first event are encoded against the
// zero Event. Coder state is reset per file, so each rotated file decodes
// alone. Version 2 added the timewait fields (TwOp, Remain) and the
// header's timewait flag; version 1 files are read too. FORMAT.md has the
// field table.
//
// A capture is written and read front to back, never seeked: Create and
// Open work on files (rotation, the overwrite refusal, fsync at close),
// NewWriter and NewReader on any stream (a pipe, standard output or input).
package capture
