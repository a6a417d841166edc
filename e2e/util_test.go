package e2e

import (
	"context"
	"strconv"
)

func itoa(i int) string { return strconv.Itoa(i) }

func ctxb() context.Context { return context.Background() }
