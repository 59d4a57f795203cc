// Package connectors holds what every database connector shares: the option
// errors that peer and mirror validation report, and the interfaces through
// which the executor reaches a connector without importing it (federated
// reads for client sessions: FederatedReader, federated.go). Each database
// has its own sub-package (connectors/postgres, ...).
package connectors

import "fmt"

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
