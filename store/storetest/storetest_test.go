package storetest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/store/storetest"
)

// TestCheckPostgresExplains: without a server the error says how to start
// one (CI must fail loudly, not skip).
func TestCheckPostgresExplains(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = storetest.CheckPostgres(ctx, "postgres://postgres:pw@"+addr+"/postgres?sslmode=disable")
	require.Error(t, err)
	require.Contains(t, err.Error(), "PostgreSQL is not reachable at postgres://postgres:xxxxx@"+addr)
	require.Contains(t, err.Error(), "pg_ctlcluster --skip-systemctl-redirect")
	require.NotContains(t, err.Error(), ":pw@")
}

func TestCreatePostgresDB(t *testing.T) {
	t.Parallel()
	db := storetest.Postgres(t, nil)
	require.Equal(t, "postgres", db.Dialect)
	require.NoError(t, db.Ping(context.Background()))
}
