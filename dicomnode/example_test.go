package dicomnode_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/services"
)

// A node that keeps what it receives in a spool directory, verified with
// our own C-ECHO SCU.
func Example() {
	dir, _ := os.MkdirTemp("", "spool-")
	defer os.RemoveAll(dir)
	spool, err := services.NewSpoolStore(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	node, err := dicomnode.New(dicomnode.Config{
		AETitles: []string{"CSPINE"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, spool)
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx := context.Background()
	go node.Serve(ctx, ln)
	defer node.Shutdown(ctx)

	c, err := dicomnode.Dial(ctx, ln.Addr().String(), dicomnode.DialOpts{
		CallingAETitle: "MODALITY", CalledAETitle: "CSPINE", Contexts: dicomnode.VerificationContexts()})
	if err != nil {
		fmt.Println(err)
		return
	}
	status, err := c.Echo(ctx)
	fmt.Println(status, err)
	fmt.Println(c.Release(ctx))
	// Output:
	// 0x0000 (success) <nil>
	// <nil>
}
