package reporttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bindShim makes a 0.0.0.0 (or ::) bind a loopback bind: Orthanc 1.10 has
// no option to choose the address of its DICOM port.
const bindShim = `#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
	static int (*real_bind)(int, const struct sockaddr *, socklen_t);
	if (!real_bind) real_bind = dlsym(RTLD_NEXT, "bind");
	if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		struct sockaddr_in a;
		memcpy(&a, addr, sizeof a);
		if (a.sin_addr.s_addr == htonl(INADDR_ANY)) {
			a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			return real_bind(fd, (struct sockaddr *)&a, sizeof a);
		}
	}
	if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 a;
		memcpy(&a, addr, sizeof a);
		if (memcmp(&a.sin6_addr, &in6addr_any, sizeof a.sin6_addr) == 0) {
			a.sin6_addr = in6addr_loopback;
			return real_bind(fd, (struct sockaddr *)&a, sizeof a);
		}
	}
	return real_bind(fd, addr, len);
}
`

// Orthanc is a private Orthanc server started for one test, listening on
// 127.0.0.1 only, with its own configuration and temporary storage.
type Orthanc struct {
	URL       string
	DICOMPort int
	cmd       *exec.Cmd
	log       *bytes.Buffer
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartOrthanc starts Orthanc and stops it when the test ends.
func StartOrthanc(tb testing.TB) *Orthanc {
	tb.Helper()
	bin := Tool(tb, "Orthanc")
	gcc := Tool(tb, "gcc")
	dir := tb.TempDir()
	shimC := filepath.Join(dir, "bindshim.c")
	shim := filepath.Join(dir, "bindshim.so")
	if err := os.WriteFile(shimC, []byte(bindShim), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-o", shim, shimC, "-ldl").CombinedOutput(); err != nil {
		tb.Fatalf("compile bind shim: %v\n%s", err, out)
	}
	httpPort, dicomPort := freePort(tb), freePort(tb)
	cfg := map[string]any{
		"Name":                  "cspine-reporttest",
		"StorageDirectory":      filepath.Join(dir, "storage"),
		"IndexDirectory":        filepath.Join(dir, "index"),
		"HttpPort":              httpPort,
		"DicomPort":             dicomPort,
		"DicomAet":              "CSPINETEST",
		"RemoteAccessAllowed":   false,
		"AuthenticationEnabled": false,
		"HttpServerEnabled":     true,
		"Plugins":               []string{},
		"ConcurrentJobs":        1,
		"SaveJobs":              false,
		"OverwriteInstances":    true,
	}
	cb, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "orthanc.json")
	if err := os.WriteFile(cfgPath, cb, 0o644); err != nil {
		tb.Fatal(err)
	}
	o := &Orthanc{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), DICOMPort: dicomPort, log: &bytes.Buffer{}}
	o.cmd = exec.Command(bin, cfgPath)
	o.cmd.Env = append(os.Environ(), "LD_PRELOAD="+shim, "TCP_NODELAY=1")
	o.cmd.Stdout, o.cmd.Stderr = o.log, o.log
	if err := o.cmd.Start(); err != nil {
		tb.Fatalf("start Orthanc: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	tb.Cleanup(func() {
		_ = o.cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			tb.Fatalf("Orthanc exited: %v\n%s", err, o.log.String())
		default:
		}
		resp, err := http.Get(o.URL + "/system")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Orthanc did not answer in 30 s:\n%s", o.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	o.checkLoopbackOnly(tb, httpPort, dicomPort)
	return o
}

// checkLoopbackOnly fails the test if Orthanc's ports accept connections on
// a non-loopback address of this machine.
func (o *Orthanc) checkLoopbackOnly(tb testing.TB, ports ...int) {
	tb.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.To4() == nil {
			continue
		}
		for _, p := range ports {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), fmt.Sprint(p)), 300*time.Millisecond)
			if err == nil {
				c.Close()
				tb.Fatalf("Orthanc port %d reachable on %s: not loopback-only", p, ipn.IP)
			}
		}
	}
}

// Upload stores a DICOM instance through the REST API (POST /instances) and
// returns Orthanc's answer (ID, ParentStudy, Status...).
func (o *Orthanc) Upload(tb testing.TB, b []byte) map[string]string {
	tb.Helper()
	resp, err := http.Post(o.URL+"/instances", "application/dicom", bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("upload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("upload: HTTP %d: %s\n%s", resp.StatusCode, body, o.log.String())
	}
	var out map[string]string
	if err := json.Unmarshal(body, &out); err != nil {
		tb.Fatalf("upload answer %s: %v", body, err)
	}
	return out
}

// Get fetches a REST resource into v (JSON), or returns the raw body and
// content type when v is nil.
func (o *Orthanc) Get(tb testing.TB, path string, v any) ([]byte, string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, o.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: HTTP %d: %s", path, resp.StatusCode, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			tb.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return body, strings.TrimSpace(resp.Header.Get("Content-Type"))
}
