package connectors

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// TLSOptions are a peer's TLS settings, as the options require_tls,
// disable_tls, root_ca, tls_host, certificate, private_key and
// skip_cert_verification give them. By default TLS is tried and plain
// text used when the server answers no TLS handshake (as Postgres'
// sslmode=prefer). A value, safe for concurrent use.
type TLSOptions struct {
	RequireTLS     bool
	DisableTLS     bool
	RootCA         string // PEM of the CA to verify the server with
	TLSHost        string // server name to verify instead of the host
	Certificate    string // PEM client certificate (with PrivateKey)
	PrivateKey     string // PEM key of Certificate
	SkipCertVerify bool
}

// Validate reports settings that cannot work, as an *OptionError naming the
// option: TLS both required and disabled, a certificate without its key
// (or the reverse), a root_ca or a certificate and key that are not PEM.
func (t TLSOptions) Validate() error {
	switch {
	case t.RequireTLS && t.DisableTLS:
		return &OptionError{Key: "disable_tls", Reason: "conflicts with require_tls = true"}
	case (t.Certificate == "") != (t.PrivateKey == ""):
		key := "private_key"
		if t.Certificate == "" {
			key = "certificate"
		}
		return &OptionError{Key: key, Missing: true, Reason: "certificate and private_key go together"}
	}
	if t.RootCA != "" {
		if ok := x509.NewCertPool().AppendCertsFromPEM([]byte(t.RootCA)); !ok {
			return &OptionError{Key: "root_ca", Reason: "not a PEM certificate"}
		}
	}
	if t.Certificate != "" {
		if _, err := tls.X509KeyPair([]byte(t.Certificate), []byte(t.PrivateKey)); err != nil {
			return &OptionError{Key: "certificate", Reason: fmt.Sprintf("not a PEM certificate and key pair: %v", err)}
		}
	}
	return nil
}

// Config returns the TLS settings for connecting to host, or nil when TLS
// is disabled. Without require_tls and root_ca the certificate is not
// verified (as sslmode=prefer). The settings are assumed valid (Validate);
// a bad PEM is left out. A new value on each call, owned by the caller.
func (t TLSOptions) Config(host string) *tls.Config {
	if t.DisableTLS {
		return nil
	}
	tc := &tls.Config{ServerName: host, InsecureSkipVerify: t.SkipCertVerify || (!t.RequireTLS && t.RootCA == "")}
	if t.TLSHost != "" {
		tc.ServerName = t.TLSHost
	}
	if t.RootCA != "" {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(t.RootCA))
		tc.RootCAs = pool
	}
	if t.Certificate != "" {
		if pair, err := tls.X509KeyPair([]byte(t.Certificate), []byte(t.PrivateKey)); err == nil {
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	return tc
}
