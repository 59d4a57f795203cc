package connectors

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// OptionError reports a bad peer or mirror option. The executor turns it into
// a SQL error that points at the option in the statement.
type OptionError struct {
	Key string
	// Unknown is true when the key itself is not accepted.
	Unknown bool
	// Missing is true when a required key was not given.
	Missing bool
	Reason  string
}

func (e *OptionError) Error() string {
	switch {
	case e.Unknown:
		return fmt.Sprintf("unknown option %q%s", e.Key, suffix(e.Reason))
	case e.Missing:
		return fmt.Sprintf("option %q is required%s", e.Key, suffix(e.Reason))
	default:
		return fmt.Sprintf("invalid value for option %q: %s", e.Key, e.Reason)
	}
}

func suffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// OptionSpec declares the options a kind of peer accepts. Connectors parse
// their peers' options with it, so that every kind reports a bad option in
// the same words. A spec is a value, safe for concurrent use.
type OptionSpec struct {
	// PeerType names the kind in errors, e.g. "CLICKHOUSE".
	PeerType string
	// Keys are the accepted keys, sorted; an unknown key's error lists them.
	Keys []string
	// Refused are keys other systems (PeerDB) accept that this kind
	// refuses, with why; a refused key is reported as unknown, with the why.
	Refused map[string]string
}

// Parse checks that opts (keys lower-case) holds only accepted keys and
// returns them for the typed readers. Keys are checked in sorted order; the
// first refused or unknown one is an *OptionError with Unknown set.
func (s OptionSpec) Parse(opts map[string]string) (*OptionValues, error) {
	known := make(map[string]bool, len(s.Keys))
	for _, k := range s.Keys {
		known[k] = true
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if why, ok := s.Refused[k]; ok {
			return nil, &OptionError{Key: k, Unknown: true, Reason: why}
		}
		if !known[k] {
			return nil, &OptionError{Key: k, Unknown: true,
				Reason: "a " + s.PeerType + " peer accepts " + strings.Join(s.Keys, ", ")}
		}
	}
	return &OptionValues{opts: opts}, nil
}

// OptionValues reads a peer's options as typed values. A reader that finds
// a bad value returns its default and keeps the error; Err returns the
// first one, so a connector reads its options in the order it wants them
// reported. Not safe for concurrent use.
type OptionValues struct {
	opts map[string]string
	err  error
}

// Err returns the first bad value the readers met, as an *OptionError, or nil.
func (v *OptionValues) Err() error { return v.err }

func (v *OptionValues) fail(err *OptionError) {
	if v.err == nil {
		v.err = err
	}
}

// String returns key's value as given, or def when key is absent.
func (v *OptionValues) String(key, def string) string {
	if s, ok := v.opts[key]; ok {
		return s
	}
	return def
}

// Required returns key's value; a missing or blank one is an error
// (Missing).
func (v *OptionValues) Required(key string) string {
	s := v.opts[key]
	if strings.TrimSpace(s) == "" {
		v.fail(&OptionError{Key: key, Missing: true})
	}
	return s
}

// NonEmpty returns key's value, or def when key is absent; a blank value
// is an error.
func (v *OptionValues) NonEmpty(key, def string) string {
	s, ok := v.opts[key]
	if !ok {
		return def
	}
	if strings.TrimSpace(s) == "" {
		v.fail(&OptionError{Key: key, Reason: "must not be empty"})
		return def
	}
	return s
}

// Port returns key's value as a port number (1-65535, spaces around it
// ignored), or def when key is absent.
func (v *OptionValues) Port(key string, def int) int {
	s, ok := v.opts[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		v.fail(&OptionError{Key: key, Reason: fmt.Sprintf("%q is not a port number (1-65535)", s)})
		return def
	}
	return n
}

// Bool returns key's value as a boolean (as strconv.ParseBool reads it),
// or false when key is absent.
func (v *OptionValues) Bool(key string) bool {
	s, ok := v.opts[key]
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		v.fail(&OptionError{Key: key, Reason: fmt.Sprintf("%q is not a boolean", s)})
	}
	return b
}

// TLS reads the TLS options a peer may accept: require_tls, disable_tls,
// skip_cert_verification, root_ca, tls_host, certificate and private_key
// (a kind that does not accept a key never has it). The result is not
// validated: see TLSOptions.Validate.
func (v *OptionValues) TLS() TLSOptions {
	return TLSOptions{
		RequireTLS:     v.Bool("require_tls"),
		DisableTLS:     v.Bool("disable_tls"),
		SkipCertVerify: v.Bool("skip_cert_verification"),
		RootCA:         v.String("root_ca", ""),
		TLSHost:        v.String("tls_host", ""),
		Certificate:    v.String("certificate", ""),
		PrivateKey:     v.String("private_key", ""),
	}
}
