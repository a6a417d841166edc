package e2e

import (
	"bytes"
	"context"
	"strconv"
	"sync"
)

func itoa(i int) string { return strconv.Itoa(i) }

func ctxb() context.Context { return context.Background() }

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
