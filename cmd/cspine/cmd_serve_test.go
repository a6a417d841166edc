package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/config"
)

func TestLoadServeConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "cspine.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`data_dir: /from/file
dicom:
  listen: "127.0.0.1:1104"
  ae_title: FILEAE
  allowed_peers: [OLD@10.0.0.1]
destinations:
  - PACS@10.0.0.5:104
`), 0o600))
	env := map[string]string{"CSPINE_AE_TITLE": "ENVAE", "CSPINE_HTTP_LISTEN": "127.0.0.1:9999"}
	getenv := func(k string) string { return env[k] }

	tests := []struct {
		name  string
		flags serveFlags
		set   []string
		check func(t *testing.T, c *config.Config)
	}{
		{"file and environment", serveFlags{config: file}, nil, func(t *testing.T, c *config.Config) {
			require.Equal(t, "ENVAE", c.DICOM.AETitle) // environment beats the file
			require.Equal(t, "/from/file", c.DataDir)
			require.Equal(t, "127.0.0.1:9999", c.HTTP.Listen)
			require.Len(t, c.DICOM.AllowedPeers, 1)
		}},
		{"flags beat both", serveFlags{config: file, aeTitle: "FLAGAE", listen: "127.0.0.1:2104", httpListen: "127.0.0.1:8081",
			database: "sqlite:/tmp/x.db", dataDir: "/from/flag", allow: repeated{"PACS@10.0.0.5", "*@10.1.0.0/16"},
			destinations: repeated{"ARCHIVE@10.0.0.6:11112"}},
			[]string{"ae-title", "listen", "http", "database", "data-dir"}, func(t *testing.T, c *config.Config) {
				require.Equal(t, "FLAGAE", c.DICOM.AETitle)
				require.Equal(t, "127.0.0.1:2104", c.DICOM.Listen)
				require.Equal(t, "127.0.0.1:8081", c.HTTP.Listen)
				require.Equal(t, "sqlite:/tmp/x.db", c.DSN())
				require.Equal(t, "/from/flag", c.DataDir)
				require.Equal(t, []config.Peer{{AETitle: "PACS", Host: "10.0.0.5"}, {AETitle: "*", Host: "10.1.0.0/16"}}, c.DICOM.AllowedPeers)
				require.Len(t, c.Dests, 2)
				d, ok := c.Destination("ARCHIVE")
				require.True(t, ok)
				require.Equal(t, 11112, d.Port)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set := map[string]bool{}
			for _, s := range tt.set {
				set[s] = true
			}
			f := tt.flags
			c, err := loadServeConfig(&f, set, getenv)
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestServeBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"serve", "--allow", "bad title with spaces far too long@host"},
		{"serve", "--destination", "PACS@host"},
		{"serve", "--ae-title", "", "--data-dir", ""},
		{"serve", "extra"},
	} {
		var out, errOut bytes.Buffer
		code := runMain(context.Background(), args, &out, &errOut)
		require.NotEqual(t, 0, code, "%v", args)
		require.NotEmpty(t, errOut.String(), "%v", args)
	}
}
