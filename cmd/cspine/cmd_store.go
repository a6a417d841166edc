package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/cspine/cspine/dicomnode"
	"github.com/cspine/cspine/dicomnode/dimse"
	"github.com/cspine/cspine/dicomnode/services"
)

func init() {
	register(command{
		name:    "store",
		summary: "send DICOM files to a peer with C-STORE",
		usage: `Usage: cspine store --to AE@HOST:PORT [flags] FILE|DIR...

Sends Part-10 files (directories are walked) to AE at HOST:PORT over one
association, each in its own transfer syntax (no transcoding). Exit status 1
when any file was not stored with success or warning.`,
		run: runStore,
	})
}

func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := commands["store"]
	flags := newFlagSet(c, stderr)
	var sf scuFlags
	sf.register(flags)
	to := flags.String("to", "", "destination AE@HOST:PORT (required)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *to == "" || flags.NArg() == 0 {
		return fmt.Errorf("%w: need --to and at least one file", errUsage)
	}
	ae, addr, host, err := parsePeer(*to)
	if err != nil {
		return err
	}
	o, err := sf.dialOpts(ae, host)
	if err != nil {
		return err
	}
	var files []string
	for _, a := range flags.Args() {
		err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("list %s: %w", a, err)
		}
	}
	// One presentation context per (SOP class, transfer syntax) pair found.
	pairs := map[string][]string{}
	seen := map[[2]string]bool{}
	var sendable []string
	for _, f := range files {
		meta, err := readMeta(f)
		if err != nil {
			fmt.Fprintf(stderr, "skip %s: %v\n", f, err)
			continue
		}
		k := [2]string{meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID}
		if !seen[k] {
			seen[k] = true
			pairs[k[0]] = append(pairs[k[0]], k[1])
		}
		sendable = append(sendable, f)
	}
	if len(seen) > 128 {
		return fmt.Errorf("the files need %d presentation contexts, more than the 128 of one association", len(seen))
	}
	if len(sendable) == 0 {
		return fmt.Errorf("no DICOM file to send")
	}
	sort.Strings(sendable)
	o.Contexts = dicomnode.StorageContexts(pairs)
	cl, err := dicomnode.Dial(ctx, addr, o)
	if err != nil {
		return err
	}
	failed := len(files) - len(sendable)
	for _, f := range sendable {
		st, err := cl.StoreFile(ctx, f)
		switch {
		case err != nil:
			failed++
			fmt.Fprintf(stderr, "%s: %v\n", f, err)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		case st.Kind() == dimse.KindFailure:
			failed++
			fmt.Fprintf(stderr, "%s: status %v\n", f, st)
		default:
			fmt.Fprintf(stdout, "%s: %v\n", f, st)
		}
	}
	if err := cl.Release(ctx); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files not stored", failed, len(files))
	}
	return nil
}

func readMeta(path string) (services.FileMeta, error) {
	f, err := os.Open(path)
	if err != nil {
		return services.FileMeta{}, err
	}
	defer f.Close()
	m, _, err := services.ReadFileMeta(bufio.NewReader(f))
	return m, err
}
