//go:build !linux

package services

import "os"

// writebackWriter is a plain writer where sync_file_range does not exist.
type writebackWriter struct {
	f *os.File
}

func (w *writebackWriter) Write(p []byte) (int, error) { return w.f.Write(p) }
