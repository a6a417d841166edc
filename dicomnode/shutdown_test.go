package dicomnode_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/association"
	"github.com/cspine/cspine/dicomnode/dicomnodetest"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
)

// slowNode starts a node whose handler signals entered and waits for
// release or its context.
func slowNode(t *testing.T) (*dicomnode.Node, string, chan struct{}, chan struct{}, chan error) {
	t.Helper()
	entered, release := make(chan struct{}, 8), make(chan struct{})
	h := services.StoreHandlerFunc(func(ctx context.Context, req *services.StoreRequest) (dimse.Status, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return dimse.StatusSuccess, nil
		case <-ctx.Done():
			return dimse.StatusOutOfResources, ctx.Err()
		}
	})
	n, err := dicomnode.New(dicomnode.Config{AETitles: []string{"CSPINE"}, Logger: discardLogger()}, h)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- n.Serve(context.Background(), ln) }()
	return n, ln.Addr().String(), entered, release, served
}

func dialStore(t *testing.T, addr string) *services.Client {
	t.Helper()
	c, err := dicomnode.Dial(context.Background(), addr, dicomnode.DialOpts{CallingAETitle: "SCU", CalledAETitle: "CSPINE",
		Contexts: dicomnode.StorageContexts(map[string][]string{association.CRImageStorage: {association.ExplicitVRLittleEndian}})})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	files, _ := dicomnodetest.WriteSeries(t.TempDir(), uidRoot+".60", 1, 16, 16)
	n, addr, entered, release, served := slowNode(t)
	busy := dialStore(t, addr)
	idle := dialStore(t, addr)
	res := make(chan dimse.Status, 1)
	go func() {
		st, err := busy.StoreFile(context.Background(), files[0])
		if err != nil {
			t.Error(err)
		}
		res <- st
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- n.Shutdown(ctx)
	}()
	// The idle association is aborted at once; new ones are refused.
	if _, err := idle.Echo(context.Background()); err == nil {
		t.Fatal("idle association still served during shutdown")
	}
	time.Sleep(50 * time.Millisecond)
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still open during shutdown")
	}
	// The message in progress completes with success.
	close(release)
	if st := <-res; st != dimse.StatusSuccess {
		t.Fatalf("in-flight C-STORE: %v", st)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, dicomnode.ErrNodeClosed) {
		t.Fatalf("Serve returned %v", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	files, _ := dicomnodetest.WriteSeries(t.TempDir(), uidRoot+".61", 1, 16, 16)
	n, addr, entered, _, _ := slowNode(t)
	c := dialStore(t, addr)
	errc := make(chan error, 1)
	go func() {
		_, err := c.StoreFile(context.Background(), files[0])
		errc <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := n.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if err := <-errc; err == nil {
		t.Fatal("store on an aborted association succeeded")
	}
}

// TestClientContextCancel: cancelling the context of an SCU operation
// aborts the association and returns promptly.
func TestClientContextCancel(t *testing.T) {
	t.Parallel()
	files, _ := dicomnodetest.WriteSeries(t.TempDir(), uidRoot+".62", 1, 16, 16)
	n, addr, entered, release, _ := slowNode(t)
	defer func() {
		close(release)
		n.Shutdown(context.Background())
	}()
	c := dialStore(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.StoreFile(ctx, files[0])
		errc <- err
	}()
	<-entered
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("StoreFile did not return after cancel")
	}
}
