package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/cspine/cspine/models"
	"github.com/cspine/cspine/store/storetest"
)

func TestUserCommand(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			var dsn string
			if dialect == "postgres" {
				dsn, _ = storetest.CreatePostgresDB(t)
			} else {
				dsn = storetest.SQLiteDSN(t)
			}
			run := func(stdin string, args ...string) (int, string, string) {
				userStdin = strings.NewReader(stdin)
				var out, errb bytes.Buffer
				code := runMain(context.Background(), append([]string{"user"}, append(args, "--database", dsn)...), &out, &errb)
				return code, out.String(), errb.String()
			}
			t.Setenv("CSPINE_USER_PASSWORD", "")

			code, out, errs := run("a long enough secret\n", "add", "--username", "admin", "--role", "admin", "--display-name", "Ada Admin")
			require.Equal(t, 0, code, errs)
			require.Contains(t, out, "added admin (admin)")
			code, _, errs = run("a long enough secret\n", "add", "--username", "admin")
			require.Equal(t, 1, code)
			require.Contains(t, errs, "exists already")
			code, _, errs = run("short\n", "add", "--username", "rita")
			require.Equal(t, 1, code)
			require.Contains(t, errs, "at least 12")
			code, _, errs = run("", "add", "--username", "rita")
			require.Equal(t, 1, code)
			require.Contains(t, errs, "no password")
			code, _, _ = run("", "add", "--username", "rita", "--role", "root")
			require.Equal(t, 2, code)
			code, _, _ = run("", "frobnicate")
			require.Equal(t, 2, code)
			t.Setenv("CSPINE_USER_PASSWORD", "from the environment")
			code, _, errs = run("", "add", "--username", "rita")
			require.Equal(t, 0, code, errs)

			code, out, _ = run("", "list")
			require.Equal(t, 0, code)
			require.Contains(t, out, "admin")
			require.Contains(t, out, "rita")
			require.Contains(t, out, "reviewer")

			code, _, errs = run("", "disable", "--username", "rita")
			require.Equal(t, 0, code, errs)
			code, out, _ = run("", "list")
			require.Equal(t, 0, code)
			require.Contains(t, out, "disabled")
			code, _, _ = run("", "disable", "--username", "nobody")
			require.Equal(t, 1, code)

			t.Setenv("CSPINE_USER_PASSWORD", "")
			code, _, errs = run("a new long password\n", "passwd", "--username", "admin")
			require.Equal(t, 0, code, errs)

			db := storetest.Open(t, dsn, nil)
			st := models.NewStore(db.Gorm)
			u, err := st.UserGetByUsername(context.Background(), "admin")
			require.NoError(t, err)
			require.Equal(t, models.RoleAdmin, u.Role)
			require.Equal(t, "Ada Admin", u.DisplayName)
			require.NoError(t, bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("a new long password")))
			evs, err := st.AuditEventListByEntity(context.Background(), "user", "1")
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(evs), 2)
		})
	}
}
