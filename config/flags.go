package config

import (
	"flag"
	"fmt"
	"strings"
)

// Flags are the command-line settings of cspine serve (the highest
// precedence). Bind them to a FlagSet, parse, then call Load.
type Flags struct {
	ConfigFile   string
	DICOMListen  string
	AETitle      string
	HTTPListen   string
	DSN          string
	DataDir      string
	Allow        []string
	Destinations []string
}

// BindFlags registers --config, --listen, --ae-title, --http, --database,
// --data-dir, --allow (repeatable) and --destination (repeatable) on fs.
func BindFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.ConfigFile, "config", "", "YAML configuration `file`")
	fs.StringVar(&f.DICOMListen, "listen", "", "DICOM listen address `HOST:PORT` (dicom.listen)")
	fs.StringVar(&f.AETitle, "ae-title", "", "our DICOM `AE` title (dicom.ae_title)")
	fs.StringVar(&f.HTTPListen, "http", "", "HTTP listen address `HOST:PORT` (http.listen)")
	fs.StringVar(&f.DSN, "database", "", "database `DSN`: postgres://USER@HOST/DB or sqlite:PATH (no password: use PGPASSWORD)")
	fs.StringVar(&f.DataDir, "data-dir", "", "data `directory` (data_dir)")
	fs.Func("allow", "accept associations from `AE@HOST` (repeatable; replaces dicom.allowed_peers)", func(s string) error {
		f.Allow = append(f.Allow, s)
		return nil
	})
	fs.Func("destination", "send reports to `AE@HOST:PORT` (repeatable; replaces destinations)", func(s string) error {
		f.Destinations = append(f.Destinations, s)
		return nil
	})
	return f
}

// Load loads the configuration file named by --config, the environment
// (getenv; nil: os.Getenv), then applies the flags that were set, and
// validates the result.
func (f *Flags) Load(getenv func(string) string) (*Config, error) {
	// Validate once, after the flags: a flag may fix a value.
	c, err := loadUnvalidated(f.ConfigFile, getenv)
	if err != nil {
		return nil, err
	}
	var probs []Problem
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.DICOM.Listen, f.DICOMListen)
	set(&c.DICOM.AETitle, f.AETitle)
	set(&c.HTTP.Listen, f.HTTPListen)
	set(&c.Database.DSN, f.DSN)
	set(&c.DataDir, f.DataDir)
	if len(f.Allow) > 0 {
		c.DICOM.AllowedPeers = nil
		for _, s := range f.Allow {
			p, err := ParsePeer(s)
			if err != nil {
				probs = append(probs, Problem{Field: "--allow", Msg: err.Error()})
				continue
			}
			c.DICOM.AllowedPeers = append(c.DICOM.AllowedPeers, p)
		}
	}
	if len(f.Destinations) > 0 {
		c.Dests = nil
		for _, s := range f.Destinations {
			d, err := ParseDestination(s)
			if err != nil {
				probs = append(probs, Problem{Field: "--destination", Msg: err.Error()})
				continue
			}
			c.Dests = append(c.Dests, d)
		}
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// String summarises the flags that were set (for logs; no secrets can be
// in them since a DSN password is refused).
func (f *Flags) String() string {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("--%s=%s", name, v))
		}
	}
	add("config", f.ConfigFile)
	add("listen", f.DICOMListen)
	add("ae-title", f.AETitle)
	add("http", f.HTTPListen)
	add("data-dir", f.DataDir)
	for _, a := range f.Allow {
		add("allow", a)
	}
	for _, d := range f.Destinations {
		add("destination", d)
	}
	return strings.Join(parts, " ")
}
