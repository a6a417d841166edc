package reporttest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Tool returns the path of an external tool. A missing tool fails the test
// with a clear message (scripts/setup.sh installs them); only under
// `go test -short` is the test skipped instead.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			tb.Skipf("%s not installed (skipped in -short mode)", name)
		}
		tb.Fatalf("%s not found in PATH: install it with scripts/setup.sh (%v)", name, err)
	}
	return p
}

// Python is the interpreter with Debian's python3-pydicom.
const Python = "/usr/bin/python3"

// Run runs a tool with a timeout and returns its combined output and error.
func Run(tb testing.TB, name string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	err := cmd.Run()
	return out.String(), err
}

// WriteTemp writes b to a file in a test temp dir and returns its path.
func WriteTemp(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

var dciodvfyLine = regexp.MustCompile(`^(Error|Warning) - `)

// Dciodvfy runs dicom3tools' dciodvfy on a file and returns its error and
// warning lines and the full output.
func Dciodvfy(tb testing.TB, path string) (errs, warns []string, out string) {
	tb.Helper()
	Tool(tb, "dciodvfy")
	out, _ = Run(tb, "dciodvfy", path)
	for _, l := range strings.Split(out, "\n") {
		m := dciodvfyLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if m[1] == "Error" {
			errs = append(errs, l)
		} else {
			warns = append(warns, l)
		}
	}
	return errs, warns, out
}

// PyDicom runs a Python script with pydicom available; args follow the
// script. It fails the test when the script fails.
func PyDicom(tb testing.TB, script string, args ...string) string {
	tb.Helper()
	if _, err := os.Stat(Python); err != nil {
		if testing.Short() {
			tb.Skip("no /usr/bin/python3 (skipped in -short mode)")
		}
		tb.Fatalf("%s missing: install python3-pydicom with scripts/setup.sh", Python)
	}
	p := WriteTemp(tb, "check.py", []byte(script))
	out, err := Run(tb, Python, append([]string{p}, args...)...)
	if err != nil {
		tb.Fatalf("pydicom script failed: %v\n%s", err, out)
	}
	return out
}
