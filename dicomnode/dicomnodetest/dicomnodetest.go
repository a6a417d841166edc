// Package dicomnodetest holds test helpers for the DICOM node: locating
// DCMTK tools, building an LD_PRELOAD shim that keeps DCMTK servers on the
// loopback interface, starting storescp and dcmqrscp on free ports, and
// writing small synthetic DICOM images.
package dicomnodetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tool returns the path of a DCMTK (or other) executable. A missing tool
// fails the test (tools are installed in CI by scripts/setup.sh); under
// -short it skips.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testing.Short() {
			t.Skipf("%s not installed (-short)", name)
		}
		t.Fatalf("%s not found in PATH: install dcmtk (scripts/setup.sh): %v", name, err)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

const shimSource = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
/* Turn binds to the wildcard address into binds to the loopback address. */
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
	static int (*real)(int, const struct sockaddr *, socklen_t);
	if (!real) real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
	if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memcpy(&a, addr, sizeof a);
		if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			return real(fd, (struct sockaddr *)&a, sizeof a);
		}
	}
	if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a6;
		memcpy(&a6, addr, sizeof a6);
		if (IN6_IS_ADDR_UNSPECIFIED(&a6.sin6_addr)) {
			a6.sin6_addr = in6addr_loopback;
			return real(fd, (struct sockaddr *)&a6, sizeof a6);
		}
	}
	return real(fd, addr, len);
}
`

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
)

// LoopbackShim compiles (once per test binary) the LD_PRELOAD library that
// turns wildcard binds into loopback binds, and returns its path.
func LoopbackShim(t testing.TB) string {
	t.Helper()
	gcc := Tool(t, "gcc")
	shimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cspine-shim-")
		if err != nil {
			shimErr = err
			return
		}
		src := filepath.Join(dir, "bindlo.c")
		if err := os.WriteFile(src, []byte(shimSource), 0o600); err != nil {
			shimErr = err
			return
		}
		shimPath = filepath.Join(dir, "bindlo.so")
		out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-o", shimPath, src, "-ldl").CombinedOutput()
		if err != nil {
			shimErr = fmt.Errorf("compile shim: %v: %s", err, out)
		}
	})
	if shimErr != nil {
		t.Fatal(shimErr)
	}
	return shimPath
}

// DCMTKEnv is the environment for DCMTK tools: TCP_NODELAY=1 (else Nagle's
// algorithm limits them to ~11 images/s) and, when shim is true, the
// loopback LD_PRELOAD shim.
func DCMTKEnv(t testing.TB, shim bool) []string {
	env := append(os.Environ(), "TCP_NODELAY=1")
	if shim {
		env = append(env, "LD_PRELOAD="+LoopbackShim(t))
	}
	return env
}

// WaitListening waits until something accepts TCP connections on port.
func WaitListening(t testing.TB, port int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on 127.0.0.1:%d after %v", port, timeout)
}

// Process is a started server process, stopped at test cleanup.
type Process struct {
	Port int
	Cmd  *exec.Cmd
	Out  *strings.Builder
}

// StartServer starts a DCMTK server (storescp, dcmqrscp) with args, whose
// listening port must be given as the placeholder "PORT". It waits until
// the port accepts connections and kills the process at cleanup.
func StartServer(t testing.TB, tool string, args ...string) *Process {
	t.Helper()
	return StartServerOnPort(t, FreePort(t), tool, args...)
}

// StartServerOnPort is StartServer on a given port (for servers whose port
// is in a configuration file written beforehand).
func StartServerOnPort(t testing.TB, port int, tool string, args ...string) *Process {
	t.Helper()
	path := Tool(t, tool)
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "PORT", strconv.Itoa(port))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = DCMTKEnv(t, true)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = &syncWriter{b: out}, &syncWriter{b: out}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", tool, err)
	}
	p := &Process{Port: port, Cmd: cmd, Out: out}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	WaitListening(t, port, 10*time.Second)
	return p
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Run runs a DCMTK client tool and returns its combined output; it fails the
// test when the exit status is not 0 unless allowFail.
func Run(t testing.TB, allowFail bool, tool string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Tool(t, tool), args...)
	cmd.Env = DCMTKEnv(t, false)
	out, err := cmd.CombinedOutput()
	if err != nil && !allowFail {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out), err
}
