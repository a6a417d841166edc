package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/store/storetest"
)

func TestMigrateCommand(t *testing.T) {
	t.Parallel()
	pgDSN, _ := storetest.CreatePostgresDB(t)
	for name, dsn := range map[string]string{
		"sqlite":   "sqlite:" + filepath.Join(t.TempDir(), "sub", "cspine.db"),
		"postgres": pgDSN,
	} {
		t.Run(name, func(t *testing.T) {
			run := func(args ...string) (int, string, string) {
				var out, errOut bytes.Buffer
				code := runMain(context.Background(), append([]string{"migrate", "--database", dsn}, args...), &out, &errOut)
				return code, out.String(), errOut.String()
			}
			code, out, errOut := run("--status")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "schema version 0 (this cspine: 1): 1 migration(s) pending")

			code, out, errOut = run()
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "schema migrated from version 0 to 1")

			code, out, _ = run()
			require.Equal(t, 0, code)
			require.Contains(t, out, "already at version 1")

			code, out, _ = run("--status")
			require.Equal(t, 0, code)
			require.Contains(t, out, ": current")

			code, out, errOut = run("--down", "1")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "from version 1 to 0")

			code, _, errOut = run("--down", "1")
			require.Equal(t, 1, code)
			require.Contains(t, errOut, "no migration is applied")

			code, out, errOut = run("--force", "1")
			require.Equal(t, 0, code, errOut)
			require.Contains(t, out, "recorded as 1 (clean)")
			code, out, _ = run("--status")
			require.Equal(t, 0, code)
			require.Contains(t, out, ": current")
		})
	}
}

func TestMigrateCommandUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{args: []string{"migrate", "--status", "--down", "1"}, code: 2, want: "exclude each other"},
		{args: []string{"migrate", "--force", "1", "--down", "1"}, code: 2, want: "exclude each other"},
		{args: []string{"migrate", "--force", "-3"}, code: 2, want: "0 or more"},
		{args: []string{"migrate", "--down", "-1"}, code: 2, want: "positive"},
		{args: []string{"migrate", "extra"}, code: 2, want: "unexpected arguments"},
		{args: []string{"migrate", "--database", "mysql://x/y"}, code: 1, want: "mysql"},
		{args: []string{"migrate", "--database", "postgres://u:pw@h/db"}, code: 1, want: "PGPASSWORD"},
		{args: []string{"migrate", "--config", "/nonexistent.yaml"}, code: 1, want: "no such file"},
	} {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), tc.args, &out, &errOut)
		require.Equal(t, tc.code, code, "%v: %s", tc.args, errOut.String())
		require.Contains(t, errOut.String(), tc.want, tc.args)
	}
}
