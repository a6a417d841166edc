package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/store"
)

// routingLua is the demo PACS's routing rule: cervical CR/DX instances that
// a modality sends by DICOM are forwarded to the cspine node; instances
// uploaded otherwise (REST imports) and cspine's own reports are not. The
// same file is used by docker-compose.yml (deploy/orthanc/route-cspine.lua).
func routingLua(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "orthanc", "route-cspine.lua"))
	require.NoError(t, err)
	return string(b)
}

// orthanc is a private Orthanc started by a test on loopback.
type orthanc struct {
	URL       string
	DICOMPort int
	log       *bytes.Buffer
}

func startOrthanc(t testing.TB, dicomPort int, nodeAE string, nodePort int) *orthanc {
	t.Helper()
	bin := dicomnodetest.Tool(t, "Orthanc")
	dir := t.TempDir()
	lua := filepath.Join(dir, "route-cspine.lua")
	require.NoError(t, os.WriteFile(lua, []byte(routingLua(t)), 0o644))
	httpPort := dicomnodetest.FreePort(t)
	cfg := map[string]any{
		"Name":                   "cspine-e2e",
		"StorageDirectory":       filepath.Join(dir, "storage"),
		"IndexDirectory":         filepath.Join(dir, "index"),
		"HttpPort":               httpPort,
		"DicomPort":              dicomPort,
		"DicomAet":               "ORTHANC",
		"RemoteAccessAllowed":    false,
		"AuthenticationEnabled":  false,
		"Plugins":                []string{},
		"LuaScripts":             []string{lua},
		"DicomModalities":        map[string]any{"cspine": []any{nodeAE, "127.0.0.1", nodePort}},
		"DicomAlwaysAllowStore":  true,
		"DicomCheckModalityHost": false,
		"SaveJobs":               false,
		"OverwriteInstances":     true,
		"StableAge":              1,
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath := filepath.Join(dir, "orthanc.json")
	require.NoError(t, os.WriteFile(cfgPath, b, 0o644))
	o := &orthanc{URL: fmt.Sprintf("http://127.0.0.1:%d", httpPort), DICOMPort: dicomPort, log: &bytes.Buffer{}}
	cmd := exec.Command(bin, cfgPath)
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+dicomnodetest.LoopbackShim(t), "TCP_NODELAY=1")
	cmd.Stdout, cmd.Stderr = &lockedWriter{b: o.log}, &lockedWriter{b: o.log}
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("Orthanc log:\n%s", tail(o.log.String(), 60))
		}
	})
	waitFor(t, 30*time.Second, "Orthanc to answer", func() bool {
		resp, err := http.Get(o.URL + "/system")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	dicomnodetest.WaitListening(t, dicomPort, 10*time.Second)
	return o
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (o *orthanc) do(t testing.TB, method, path string, body []byte, out any) {
	t.Helper()
	req, err := http.NewRequest(method, o.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, "%s %s: %s", method, path, b)
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
}

// studyInstances returns the SOP Class UIDs of the instances Orthanc holds
// in the study with the given Study Instance UID.
func (o *orthanc) studyInstances(t testing.TB, studyUID string) []string {
	t.Helper()
	var found []struct {
		ID   string `json:"ID"`
		Type string `json:"Type"`
	}
	o.do(t, http.MethodPost, "/tools/lookup", []byte(studyUID), &found)
	var classes []string
	for _, f := range found {
		if f.Type != "Study" {
			continue
		}
		var ins []struct {
			ID string `json:"ID"`
		}
		o.do(t, http.MethodGet, "/studies/"+f.ID+"/instances", nil, &ins)
		for _, in := range ins {
			var tags map[string]any
			o.do(t, http.MethodGet, "/instances/"+in.ID+"/simplified-tags", nil, &tags)
			c, _ := tags["SOPClassUID"].(string)
			classes = append(classes, c)
		}
	}
	return classes
}

func count(classes []string, class string) int {
	n := 0
	for _, c := range classes {
		if c == class {
			n++
		}
	}
	return n
}

const (
	srClass = "1.2.840.10008.5.1.4.1.1.88.33"
	scClass = "1.2.840.10008.5.1.4.1.1.7"
)

// TestOrthancRoutingAndPull: Orthanc as the PACS. Its Lua routing rule
// forwards a cervical CR/DX study sent by a modality to the node, and the
// reports land in the same study in Orthanc. A second study, imported into
// Orthanc without routing, is found by the node's scheduled pull (C-FIND),
// retrieved by C-MOVE, measured, and its reports land in Orthanc too.
func TestOrthancRoutingAndPull(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end (-short)")
	}
	dir := t.TempDir()
	lateral, ap := lateralAndAP(t, dir)
	other := phantoms(t, filepath.Join(dir, "ph2"), 3, 23, 0)
	var pulled truthLine
	for _, l := range other {
		// Flexion/extension views are not measured unless configured.
		if l.Measurable && l.StudyInstanceUID != lateral.StudyInstanceUID && l.Posture != "flexion" && l.Posture != "extension" {
			pulled = l
			break
		}
	}
	require.NotEmpty(t, pulled.File)

	db := newDatabase(t, store.SQLite)
	nodePort, orthancPort := dicomnodetest.FreePort(t), dicomnodetest.FreePort(t)
	o := startOrthanc(t, orthancPort, "CSPINE", nodePort)
	n := startNode(t, nodeOpts{DSN: db.DSN, DataDir: filepath.Join(dir, "data"), DICOMPort: nodePort,
		Destinations: []string{fmt.Sprintf("ORTHANC@127.0.0.1:%d", orthancPort)},
		Extra: fmt.Sprintf(`pull:
  peer: ORTHANC@127.0.0.1:%d
  lookback: 48h
`, orthancPort)})
	_ = n

	// Routing: a modality sends the study to Orthanc.
	storescu2(t, "MODALITY", "ORTHANC", orthancPort, lateral.File, ap)
	waitFor(t, 90*time.Second, "SR and SC in the routed study in Orthanc", func() bool {
		cl := o.studyInstances(t, lateral.StudyInstanceUID)
		return count(cl, srClass) == 1 && count(cl, scClass) == 1
	})
	cl := o.studyInstances(t, lateral.StudyInstanceUID)
	require.Len(t, cl, 4, "lateral, AP, SR and SC in one study: %v", cl)

	// Pull: a study imported through REST is never routed. It is dated
	// today, as a study to pull would be.
	fresh := filepath.Join(dir, "pulled.dcm")
	b, err := os.ReadFile(pulled.File)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(fresh, b, 0o644))
	dicomnodetest.Run(t, false, "dcmodify", "-nb", "-m", "(0008,0020)="+time.Now().Format("20060102"), fresh)
	b, err = os.ReadFile(fresh)
	require.NoError(t, err)
	o.do(t, http.MethodPost, "/instances", b, nil)
	time.Sleep(2 * time.Second)
	_, err = db.St.StudyGetByUID(ctxb(), pulled.StudyInstanceUID)
	require.Error(t, err, "the imported study must not have been routed")
	// Restart the node with a pull every 2 seconds (none until now, so
	// that the routed study above could only arrive by routing).
	n.stop()
	n.opts.PullSchedule = "@every 2s"
	n2 := startNode(t, n.opts)
	waitFor(t, 90*time.Second, "SR and SC in the pulled study in Orthanc", func() bool {
		cl := o.studyInstances(t, pulled.StudyInstanceUID)
		return count(cl, srClass) == 1 && count(cl, scClass) == 1
	})
	st, err := db.St.StudyGetByUID(ctxb(), pulled.StudyInstanceUID)
	require.NoError(t, err)
	require.Equal(t, "pull", st.Source)
	require.True(t, n2.logContains(`"msg":"pull finished"`))
}

// storescu2 sends files to any AE with DCMTK.
func storescu2(t testing.TB, callingAE, calledAE string, port int, files ...string) {
	t.Helper()
	args := append([]string{"-aet", callingAE, "-aec", calledAE, "127.0.0.1", itoa(port)}, files...)
	dicomnodetest.Run(t, false, "storescu", args...)
}
