package services

import (
	"os"

	"golang.org/x/sys/unix"
)

// writebackWriter writes to f and asks the kernel to start writing each
// further MiB back to disk (sync_file_range SYNC_FILE_RANGE_WRITE: it does
// not wait and promises nothing; durability still comes from fsync).
type writebackWriter struct {
	f           *os.File
	off, queued int64
}

const writebackChunk = 1 << 20

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.queued >= writebackChunk {
		// Errors are ignored: this is only a hint.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.queued, w.off-w.queued, unix.SYNC_FILE_RANGE_WRITE)
		if w.queued > 0 {
			_ = unix.SyncFileRange(int(w.f.Fd()), 0, w.queued, unix.SYNC_FILE_RANGE_WAIT_BEFORE)
		}
		w.queued = w.off
	}
	return n, err
}
