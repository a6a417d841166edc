package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Peer is an accepted caller: AETitle ("*" any) at Host ("" any; an IP, a
// CIDR prefix or a host name). In YAML: "AE@HOST", "AE", or a mapping.
type Peer struct {
	AETitle string `yaml:"ae_title"`
	Host    string `yaml:"host"`
}

// String formats p as AE@HOST.
func (p Peer) String() string {
	if p.Host == "" {
		return p.AETitle
	}
	return p.AETitle + "@" + p.Host
}

// ParsePeer parses "AE@HOST", "AE" or "*@HOST".
func ParsePeer(s string) (Peer, error) {
	ae, host, _ := strings.Cut(strings.TrimSpace(s), "@")
	p := Peer{AETitle: strings.TrimSpace(ae), Host: strings.TrimSpace(host)}
	if err := p.check(); err != nil {
		return Peer{}, fmt.Errorf("peer %q: %w", s, err)
	}
	return p, nil
}

func (p Peer) check() error {
	if p.AETitle != "*" {
		if err := CheckAETitle(p.AETitle); err != nil {
			return err
		}
	}
	if p.Host == "" {
		return nil
	}
	if _, _, err := net.ParseCIDR(p.Host); err == nil {
		return nil
	}
	if net.ParseIP(p.Host) != nil {
		return nil
	}
	return checkHostName(p.Host)
}

// UnmarshalYAML accepts the short string form or a mapping.
func (p *Peer) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := ParsePeer(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*p = v
		return nil
	}
	type plain Peer
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	*p = Peer(v)
	return nil
}

// ParseDestination parses "AE@HOST:PORT" (the name is the AE title).
func ParseDestination(s string) (Destination, error) {
	ae, hp, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok {
		return Destination{}, fmt.Errorf("destination %q: want AE@HOST:PORT", s)
	}
	host, portStr, err := net.SplitHostPort(hp)
	if err != nil {
		return Destination{}, fmt.Errorf("destination %q: want AE@HOST:PORT: %v", s, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return Destination{}, fmt.Errorf("destination %q: port %q is not a number", s, portStr)
	}
	d := Destination{Name: ae, AETitle: ae, Host: host, Port: port}
	if err := d.check(); err != nil {
		return Destination{}, fmt.Errorf("destination %q: %w", s, err)
	}
	return d, nil
}

// Address is HOST:PORT.
func (d Destination) Address() string { return net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) }

// String formats d as AE@HOST:PORT.
func (d Destination) String() string { return d.AETitle + "@" + d.Address() }

func (d Destination) check() error {
	if err := CheckAETitle(d.AETitle); err != nil {
		return err
	}
	if d.Host == "" {
		return fmt.Errorf("host is required")
	}
	if net.ParseIP(d.Host) == nil {
		if err := checkHostName(d.Host); err != nil {
			return err
		}
	}
	if d.Port < 1 || d.Port > 65535 {
		return fmt.Errorf("port %d is outside 1–65535", d.Port)
	}
	return nil
}

// UnmarshalYAML accepts the short string form or a mapping.
func (d *Destination) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, err := ParseDestination(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*d = v
		return nil
	}
	type plain Destination
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	*d = Destination(v)
	if d.Name == "" {
		d.Name = d.AETitle
	}
	return nil
}

// CheckAETitle checks an Application Entity Title (PS3.5 Table 6.2-1, AE):
// 1–16 characters of the default repertoire without backslash or control
// characters, not only spaces.
func CheckAETitle(ae string) error {
	switch {
	case strings.TrimSpace(ae) == "":
		return fmt.Errorf("AE title is empty")
	case len(ae) > 16:
		return fmt.Errorf("AE title %q is longer than 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("AE title %q has a character not allowed in an AE title (%q)", ae, r)
		}
	}
	return nil
}

func checkHostName(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("host name %q is too long", h)
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is not an IP address, CIDR prefix or host name", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("host %q is not an IP address, CIDR prefix or host name", h)
			}
		}
	}
	return nil
}
