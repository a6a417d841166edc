package dicomnodetest

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// InMountNamespace lets a test mount a small tmpfs (a disk that fills)
// without privileges: called from the test as started by go test, it
// re-runs that test alone under `unshare -rm` (private user and mount
// namespaces), fails unless the re-run passed, logs the re-run's lines
// containing logMarker, and returns false; called in the re-run, it
// returns true and the test goes on to MountTmpfs. env names the variable
// that marks the re-run.
func InMountNamespace(t *testing.T, env, logMarker string) bool {
	t.Helper()
	if os.Getenv(env) != "" {
		return true
	}
	cmd := exec.Command(Tool(t, "unshare"), "-rm", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s re-runs itself under `unshare -rm` (user and mount namespaces) to mount a small tmpfs; "+
			"the machine must allow that: %v\n%s", t.Name(), err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name())) {
		t.Fatalf("child did not pass:\n%s", out)
	}
	if logMarker != "" {
		for _, l := range bytes.Split(out, []byte("\n")) {
			if bytes.Contains(l, []byte(logMarker)) {
				t.Logf("child: %s", bytes.TrimSpace(l))
			}
		}
	}
	return false
}

// MountTmpfs mounts a tmpfs of the given size (mount's syntax: "600k",
// "1m") on dir for the rest of the test; only inside InMountNamespace.
func MountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v %s", dir, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
}
