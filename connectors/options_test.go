package connectors_test

import (
	"errors"
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

var spec = connectors.OptionSpec{PeerType: "TOY", Keys: []string{"flag", "host", "name", "port", "root_ca"},
	Refused: map[string]string{"bucket": "no staging here"}}

// parse reads toy options in a fixed order and returns the first error.
func parse(opts map[string]string) (host, name string, port int, flag bool, err error) {
	v, err := spec.Parse(opts)
	if err != nil {
		return "", "", 0, false, err
	}
	host = v.Required("host")
	name = v.NonEmpty("name", "dflt")
	port = v.Port("port", 7)
	flag = v.Bool("flag")
	if err := v.Err(); err != nil {
		return "", "", 0, false, err
	}
	return host, name, port, flag, v.TLS().Validate()
}

func TestOptionSpec(t *testing.T) {
	host, name, port, flag, err := parse(map[string]string{"host": "h"})
	if err != nil || host != "h" || name != "dflt" || port != 7 || flag {
		t.Fatalf("defaults: %q %q %d %v %v", host, name, port, flag, err)
	}
	host, name, port, flag, err = parse(map[string]string{"host": "h", "name": "n", "port": " 9440 ", "flag": "TRUE"})
	if err != nil || host != "h" || name != "n" || port != 9440 || !flag {
		t.Fatalf("given: %q %q %d %v %v", host, name, port, flag, err)
	}
	for _, c := range []struct {
		opts map[string]string
		want connectors.OptionError
		text string
	}{
		{map[string]string{"zeta": "1", "alpha": "1", "host": "h"}, connectors.OptionError{Key: "alpha", Unknown: true,
			Reason: "a TOY peer accepts flag, host, name, port, root_ca"},
			`unknown option "alpha": a TOY peer accepts flag, host, name, port, root_ca`},
		{map[string]string{"bucket": "b", "host": "h"}, connectors.OptionError{Key: "bucket", Unknown: true, Reason: "no staging here"},
			`unknown option "bucket": no staging here`},
		{map[string]string{"host": " "}, connectors.OptionError{Key: "host", Missing: true}, `option "host" is required`},
		// The first bad value in reading order wins.
		{map[string]string{"name": "", "port": "x"}, connectors.OptionError{Key: "host", Missing: true}, `option "host" is required`},
		{map[string]string{"host": "h", "name": "  ", "port": "x"}, connectors.OptionError{Key: "name", Reason: "must not be empty"},
			`invalid value for option "name": must not be empty`},
		{map[string]string{"host": "h", "port": "65536"}, connectors.OptionError{Key: "port",
			Reason: `"65536" is not a port number (1-65535)`}, `invalid value for option "port": "65536" is not a port number (1-65535)`},
		{map[string]string{"host": "h", "flag": "maybe"}, connectors.OptionError{Key: "flag", Reason: `"maybe" is not a boolean`},
			`invalid value for option "flag": "maybe" is not a boolean`},
		{map[string]string{"host": "h", "root_ca": "nope"}, connectors.OptionError{Key: "root_ca", Reason: "not a PEM certificate"},
			`invalid value for option "root_ca": not a PEM certificate`},
	} {
		_, _, _, _, err := parse(c.opts)
		var oe *connectors.OptionError
		if !errors.As(err, &oe) || *oe != c.want || err.Error() != c.text {
			t.Errorf("%v: got %#v (%v), want %#v (%s)", c.opts, oe, err, c.want, c.text)
		}
	}
}

func TestTLSOptions(t *testing.T) {
	for _, c := range []struct {
		tls  connectors.TLSOptions
		want string
	}{
		{connectors.TLSOptions{RequireTLS: true, DisableTLS: true}, `invalid value for option "disable_tls": conflicts with require_tls = true`},
		{connectors.TLSOptions{Certificate: "c"}, `option "private_key" is required: certificate and private_key go together`},
		{connectors.TLSOptions{PrivateKey: "k"}, `option "certificate" is required: certificate and private_key go together`},
	} {
		if err := c.tls.Validate(); err == nil || err.Error() != c.want {
			t.Errorf("%+v: got %v, want %s", c.tls, err, c.want)
		}
	}
	if tc := (connectors.TLSOptions{DisableTLS: true}).Config("h"); tc != nil {
		t.Errorf("disabled TLS has a config: %+v", tc)
	}
	tc := (connectors.TLSOptions{}).Config("h")
	if tc == nil || tc.ServerName != "h" || !tc.InsecureSkipVerify {
		t.Errorf("preferred TLS: %+v", tc)
	}
	tc = (connectors.TLSOptions{RequireTLS: true, TLSHost: "name"}).Config("h")
	if tc == nil || tc.ServerName != "name" || tc.InsecureSkipVerify {
		t.Errorf("required TLS: %+v", tc)
	}
}
