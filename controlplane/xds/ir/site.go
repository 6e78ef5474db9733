package ir

import (
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/lienthong/lienthong/catalog"
)

// Site is what the control plane cannot know from the catalog: where, on
// the agency's own hosts, Envoy finds the gateway, the backends and its
// certificate files.
type Site struct {
	// OutboundAddress is where the member's own systems reach Envoy.
	OutboundAddress string `json:"outboundAddress,omitempty"`
	// GatewayAddress is the agency gateway's gRPC address (ext_authz, ext_proc).
	GatewayAddress string `json:"gatewayAddress,omitempty"`
	// AdapterAddress is the gateway's adapter endpoint, the backend of every
	// dataset not listed in Backends (PostgreSQL, SOAP, or REST behind it).
	AdapterAddress string `json:"adapterAddress,omitempty"`
	// Backends maps "<provider system>/<dataset>" to a plain REST backend's host:port.
	Backends map[string]string `json:"backends,omitempty"`
	// CertDir holds cert.pem and key.pem of the gateway system.
	CertDir string `json:"certDir,omitempty"`
	// MaxRequestBytes is the gateway's maxRequestBytes (default 1 MiB, as
	// the gateway's): ext_authz sends a verification's body up to one byte
	// more.
	MaxRequestBytes int64 `json:"maxRequestBytes,omitempty"`
}

// DefaultSite is the layout deploy/envoy describes: gateway, adapter and
// outbound door on loopback, certificates in /etc/lienthong/envoy.
var DefaultSite = Site{
	OutboundAddress: "127.0.0.1:15001",
	GatewayAddress:  "127.0.0.1:9001",
	AdapterAddress:  "127.0.0.1:9002",
	CertDir:         "/etc/lienthong/envoy",
	MaxRequestBytes: 1 << 20,
}

// maxBodyBytes bounds MaxRequestBytes: Envoy buffers the body for
// ext_authz in memory, per request.
const maxBodyBytes = 64 << 20

// Validate checks the addresses of a site as an operator wrote it, so a
// typo is refused when the file is loaded rather than when an edge is built.
func (s Site) Validate() error {
	var errs []error
	for field, addr := range map[string]string{"outboundAddress": s.OutboundAddress, "gatewayAddress": s.GatewayAddress, "adapterAddress": s.AdapterAddress} {
		if addr == "" {
			continue
		}
		if _, _, err := splitAddress(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	for ref, addr := range s.Backends {
		system, code, ok := strings.Cut(ref, "/")
		if _, err := catalog.ParseSystemID(system); err != nil || !ok || !catalog.ValidDatasetCode(code) {
			errs = append(errs, fmt.Errorf("backends: %q must be <provider system id>/<dataset code>", ref))
		}
		if _, _, err := splitAddress(addr); err != nil {
			errs = append(errs, fmt.Errorf("backends[%s]: %w", ref, err))
		}
	}
	if s.MaxRequestBytes < 0 || s.MaxRequestBytes > maxBodyBytes {
		errs = append(errs, fmt.Errorf("maxRequestBytes %d must be between 1 and %d", s.MaxRequestBytes, maxBodyBytes))
	}
	if s.CertDir != "" && !path.IsAbs(s.CertDir) {
		errs = append(errs, fmt.Errorf("certDir %q must be an absolute path", s.CertDir))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

func (s Site) withDefaults() Site {
	if s.OutboundAddress == "" {
		s.OutboundAddress = DefaultSite.OutboundAddress
	}
	if s.GatewayAddress == "" {
		s.GatewayAddress = DefaultSite.GatewayAddress
	}
	if s.AdapterAddress == "" {
		s.AdapterAddress = DefaultSite.AdapterAddress
	}
	if s.CertDir == "" {
		s.CertDir = DefaultSite.CertDir
	}
	if s.MaxRequestBytes <= 0 || s.MaxRequestBytes > maxBodyBytes {
		s.MaxRequestBytes = DefaultSite.MaxRequestBytes
	}
	return s
}

func splitAddress(addr string) (string, uint32, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 || host == "" {
		return "", 0, fmt.Errorf("address %q must be host:port with a port 1-65535", addr)
	}
	return host, uint32(n), nil
}
