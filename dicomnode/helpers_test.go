package dicomnode_test

import (
	"bufio"
	"io"
	"log/slog"
)

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReader(r) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
